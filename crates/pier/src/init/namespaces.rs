//! Namespaces joined by `path` (`setns(2)`), the UTS names, and the session keyring.
//!
//! New namespaces come from `clone3` flags; this module joins the existing ones named in
//! config.json, user namespace first so the others are joined with its privileges. A pid or
//! time namespace is entered by the parent before `clone3` (they apply to children only).

use anyhow::{bail, Context, Result};
use std::os::fd::AsFd;

use rustix::fs::{Mode, OFlags};
use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::spec::{NamespaceKind, Plan};

/// setns into every namespace of the plan that has a `path`, except pid and time.
pub fn join(plan: &Plan) -> Result<()> {
    let mut joined: Vec<_> = plan
        .namespaces
        .iter()
        .filter(|n| n.path.is_some() && !matches!(n.kind, NamespaceKind::Pid | NamespaceKind::Time))
        .collect();
    joined.sort_by_key(|n| n.kind != NamespaceKind::User);
    for ns in joined {
        let path = ns.path.as_ref().expect("filtered on path");
        let fd = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
            .with_context(|| format!("open namespace {}", path.display()))?;
        if ns.kind == NamespaceKind::User && is_own_user_namespace(&fd) {
            // pier cloned the init inside it (spawn's joined user namespace helper).
            continue;
        }
        match move_into_link_name_space(fd.as_fd(), Some(link_type(ns.kind))) {
            Err(rustix::io::Errno::INVAL) => bail!(
                "join {:?} namespace {}: not a {} namespace (setns: EINVAL)",
                ns.kind,
                path.display(),
                format!("{:?}", ns.kind).to_lowercase()
            ),
            other => {
                other.with_context(|| format!("join {:?} namespace {}", ns.kind, path.display()))?
            }
        }
    }
    Ok(())
}

/// Whether `fd` is the user namespace this process is in (same nsfs inode and device).
fn is_own_user_namespace(fd: &std::os::fd::OwnedFd) -> bool {
    let own = rustix::fs::stat("/proc/self/ns/user");
    let other = rustix::fs::fstat(fd);
    matches!((own, other), (Ok(a), Ok(b)) if a.st_ino == b.st_ino && a.st_dev == b.st_dev)
}

/// In a user namespace (new or joined), become its root: gid 0, no supplementary groups
/// (where `setgroups` is allowed), uid 0, as runc's init does first. Files the init creates
/// then have an owner the namespace maps (the kernel refuses unmapped ones, EOVERFLOW).
/// The capabilities the namespace gave the process stay (`capabilities(7)`, user ids 0).
pub fn become_root(plan: &Plan) -> Result<()> {
    if !plan.has_namespace(NamespaceKind::User) {
        return Ok(());
    }
    let root_gid = rustix::process::Gid::ROOT;
    rustix::thread::set_thread_res_gid(root_gid, root_gid, root_gid)
        .context("setresgid(0) in the user namespace (is gid 0 mapped?)")?;
    match rustix::thread::set_thread_groups(&[]) {
        // setgroups is denied in this namespace (an unprivileged creator's).
        Ok(()) | Err(rustix::io::Errno::PERM) => {}
        Err(e) => return Err(e).context("setgroups([]) in the user namespace"),
    }
    let root_uid = rustix::process::Uid::ROOT;
    rustix::thread::set_thread_res_uid(root_uid, root_uid, root_uid)
        .context("setresuid(0) in the user namespace (is uid 0 mapped?)")?;
    Ok(())
}

/// A new cgroup namespace, rooted at the container's cgroups now that the parent has placed
/// this process in every hierarchy (`cgroup_namespaces(7)`).
pub fn unshare_cgroup(plan: &Plan) -> Result<()> {
    if plan.creates_namespace(NamespaceKind::Cgroup) {
        crate::sys::unshare_cgroup_namespace().context("unshare the cgroup namespace")?;
    }
    Ok(())
}

/// The setns(2) `nstype` for a kind.
pub fn link_type(kind: NamespaceKind) -> LinkNameSpaceType {
    match kind {
        NamespaceKind::Pid => LinkNameSpaceType::ProcessID,
        NamespaceKind::Network => LinkNameSpaceType::Network,
        NamespaceKind::Mount => LinkNameSpaceType::Mount,
        NamespaceKind::Ipc => LinkNameSpaceType::InterProcessCommunication,
        NamespaceKind::Uts => LinkNameSpaceType::HostNameAndNISDomainName,
        NamespaceKind::User => LinkNameSpaceType::User,
        NamespaceKind::Cgroup => LinkNameSpaceType::ControlGroup,
        NamespaceKind::Time => LinkNameSpaceType::Time,
    }
}

/// In a new network namespace, bring the loopback interface up (the kernel then gives it
/// 127.0.0.1 and ::1), as runc does: podman `--network none`, pods and Docker's networks
/// expect a working `lo`. A joined namespace is left as its owner set it up.
pub fn loopback_up(plan: &Plan) -> Result<()> {
    if !plan.creates_namespace(NamespaceKind::Network) {
        return Ok(());
    }
    let socket = rustix::net::socket_with(
        rustix::net::AddressFamily::INET,
        rustix::net::SocketType::DGRAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )
    .context("bring lo up: socket")?;
    crate::sys::set_link_up(socket.as_fd(), c"lo").context("bring lo up")
}

/// `hostname` and `domainname` (`sethostname(2)`, `setdomainname(2)`).
pub fn set_uts_names(plan: &Plan) -> Result<()> {
    if let Some(name) = &plan.hostname {
        rustix::system::sethostname(name.as_bytes()).context("sethostname")?;
    }
    if let Some(name) = &plan.domainname {
        rustix::system::setdomainname(name.as_bytes()).context("setdomainname")?;
    }
    Ok(())
}

/// A new session keyring named after the container, unless `--no-new-keyring`. A kernel
/// without keyrings (ENOSYS) is not an error, as in runc.
pub fn join_keyring(id: &str, no_new_keyring: bool) -> Result<()> {
    if no_new_keyring {
        return Ok(());
    }
    let name = std::ffi::CString::new(id)?;
    match crate::sys::join_session_keyring(&name) {
        Err(e) if e.raw_os_error() == Some(libc::ENOSYS) => Ok(()),
        other => other.context("join a new session keyring"),
    }
}
