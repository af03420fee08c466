//! `pier exec`'s process: one `clone3` into the init's pid namespace, placed in the
//! container's cgroups, which then joins the init's other namespaces itself and `execve`s
//! (the exec sequence of [`crate::channel`]). An unprivileged pier clones it from a helper
//! that has joined the init's user namespace first.

use std::os::fd::{AsRawFd, BorrowedFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::process::DumpableBehavior;
use rustix::thread::ThreadNameSpaceType;

use super::Spawned;
use crate::cgroups::Cgroup;
use crate::channel;
use crate::init::ExecContext;
use crate::spec::{NamespaceKind, Process};
use crate::undo::Undo;

/// The init's namespaces that `setns(pidfd, …)` joins, with their `/proc/<pid>/ns` names.
const JOINED: [(&str, ThreadNameSpaceType); 6] = [
    ("user", ThreadNameSpaceType::USER),
    ("mnt", ThreadNameSpaceType::MOUNT),
    ("net", ThreadNameSpaceType::NETWORK),
    ("ipc", ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION),
    ("uts", ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME),
    ("cgroup", ThreadNameSpaceType::CONTROL_GROUP),
];

/// Start `process` in the container whose init is `init_pid` (with `init_pidfd`, checked by
/// the caller to be that init). Returns once the process has `execve`d; with
/// `process.terminal`, [`Spawned::console`] holds the pty master.
///
/// # Errors
/// clone3 or cgroup placement fails, or the process reports an error (runc's wording for a
/// missing executable or cwd) or dies. It is killed and reaped before returning an error,
/// and when the returned guard is dropped without [`Undo::keep`].
pub fn spawn_exec(
    process: &Process,
    seccomp: Option<&crate::spec::Seccomp>,
    init_pid: i32,
    init_pidfd: BorrowedFd<'_>,
    cgroup: &Cgroup,
    keep_fds: u32,
) -> Result<Undo<Spawned>> {
    let mut namespaces = namespaces_to_join(init_pid)?;
    // Unprivileged, pier may not enter the pid namespace of a user namespace it is not in
    // (setns(2) also wants CAP_SYS_ADMIN in the caller's own): a helper joins the init's user
    // namespace first, as runc's nsexec does before the others, and clones from there.
    let via_userns =
        namespaces.contains(ThreadNameSpaceType::USER) && crate::rootless::unprivileged();
    if via_userns {
        namespaces.remove(ThreadNameSpaceType::USER);
    }
    // In pier's own mount namespace there is no namespace to join for the container's files:
    // its root is the init's chroot (runc's exec would stay on the host's root).
    let root = if namespaces.contains(ThreadNameSpaceType::MOUNT) {
        None
    } else {
        Some(init_root(init_pid, init_pidfd)?)
    };
    let ctx = ExecContext {
        process,
        seccomp,
        init_pidfd: Some(
            init_pidfd
                .try_clone_to_owned()
                .context("dup the init pidfd")?,
        ),
        namespaces,
        root,
        keep_fds,
    };
    let (parent, child) = channel::pair().context("socketpair")?;
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .context("PR_SET_DUMPABLE")?;
    // The child keeps its channel end and its copy of the init pidfd, not the parent's end;
    // the closure owns both, so the parent's copies close when it returns.
    let keep = ctx.fds_to_keep(&child);
    let body = move || crate::init::run_exec(ctx, child);
    let exec = if via_userns {
        let mut flags = ThreadNameSpaceType::USER | ThreadNameSpaceType::PROCESS_ID;
        if differs(init_pid, "time")? {
            flags |= ThreadNameSpaceType::TIME;
        }
        let enter = || {
            rustix::thread::move_into_thread_name_spaces(init_pidfd, flags)
                .context("join the container's user and pid namespaces")
        };
        super::clone_from_helper(enter, &[init_pidfd.as_raw_fd()], 0, None, &keep, body)?
    } else {
        let clone = || crate::sys::clone_child(0, None, &keep, body).context("clone3");
        with_namespaces_for_children(init_pid, init_pidfd, clone)?
    };
    super::after_clone(exec, |spawned| {
        super::handshake(spawned, super::Setup::Exec, cgroup, &parent)
    })
}

/// An `O_PATH` fd of the init's root directory (`/proc/<pid>/root`), checked to be the
/// init's: its pidfd still refers to a live process after the open, so the pid was not reused.
fn init_root(init_pid: i32, init_pidfd: BorrowedFd<'_>) -> Result<std::os::fd::OwnedFd> {
    let root = rustix::fs::open(
        format!("/proc/{init_pid}/root"),
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open the container init's root")?;
    // A pidfd is readable once its process has exited (pidfd_open(2)).
    let mut fds = [rustix::event::PollFd::new(
        &init_pidfd,
        rustix::event::PollFlags::IN,
    )];
    let zero = rustix::event::Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    if rustix::event::poll(&mut fds, Some(&zero)).context("poll the init's pidfd")? != 0 {
        bail!("the container init exited");
    }
    Ok(root)
}

/// The namespaces of the init that are not pier's own (same inode = nothing to join).
fn namespaces_to_join(init_pid: i32) -> Result<ThreadNameSpaceType> {
    let mut flags = ThreadNameSpaceType::empty();
    for (name, flag) in JOINED {
        if differs(init_pid, name)? {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// Whether the init's namespace `name` (a `/proc/<pid>/ns` entry) is not pier's own.
fn differs(init_pid: i32, name: &str) -> Result<bool> {
    let theirs = rustix::fs::stat(format!("/proc/{init_pid}/ns/{name}"))
        .with_context(|| format!("read the container init's {name} namespace"))?;
    let ours = rustix::fs::stat(format!("/proc/self/ns/{name}"))
        .with_context(|| format!("read our {name} namespace"))?;
    Ok((theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino))
}

/// Enter the init's pid (and, if it has its own, time) namespace for children through its
/// pidfd (`setns(pidfd, CLONE_NEWPID|CLONE_NEWTIME)` changes only `pid_for_children` and
/// `time_for_children`) for `clone` ([`super::for_children`]).
fn with_namespaces_for_children(
    init_pid: i32,
    init_pidfd: BorrowedFd<'_>,
    clone: impl FnOnce() -> Result<crate::sys::Child>,
) -> Result<crate::sys::Child> {
    let mut kinds = vec![NamespaceKind::Pid];
    if differs(init_pid, "time")? {
        kinds.push(NamespaceKind::Time);
    }
    let flags = kinds
        .iter()
        .fold(ThreadNameSpaceType::empty(), |acc, kind| {
            acc | match kind {
                NamespaceKind::Time => ThreadNameSpaceType::TIME,
                _ => ThreadNameSpaceType::PROCESS_ID,
            }
        });
    let enter = || {
        rustix::thread::move_into_thread_name_spaces(init_pidfd, flags)
            .context("join the container's pid namespace")
    };
    super::for_children(&kinds, enter, clone)
}
