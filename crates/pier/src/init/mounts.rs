//! `mounts` of config.json, in order, each onto a destination resolved inside the rootfs
//! (`mount(2)`, runtime-spec "Mounts"). Bind mounts take their flags in a second, remount
//! step, as the kernel ignores them on the first `MS_BIND`; `r<flag>` options then go to the
//! whole tree with `mount_setattr(2)`. A tmpfs or /dev asked read-only is mounted writable
//! and made read-only as the very last step ([`ReadonlyLater`]), as runc does: /dev still
//! gets /dev/pts, the devices and the console, a tmpfs its copied-up files and its mode.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{mount, mount_change, mount_remount, MountFlags, MountPropagationFlags};

use super::copyup;
use super::resolve::{ensure_in_root, fd_path, open_in_root, open_in_root_with, Leaf};
use crate::cgroups::Hierarchy;
use crate::spec::{BindKind, Mount, NamespaceKind, Plan, Propagation, PropagationKind};

/// `MS_REMOUNT`, which rustix's `MountFlags` leaves to `mount_remount`.
const MS_REMOUNT: MountFlags = MountFlags::from_bits_retain(libc::MS_REMOUNT as _);

/// A mount that config.json wants read-only but that was mounted writable: an `O_PATH` fd of
/// its root and the flags to remount it with (read-only added).
pub struct ReadonlyLater {
    root: OwnedFd,
    flags: MountFlags,
    destination: String,
}

/// The host paths the mounts come from, opened (`O_PATH`) by the init while it is still
/// pier's identity: in a user namespace its root may not search the directories they are
/// in (the state directory is 0700), as runc's init opens bind sources before it joins one.
pub struct Sources {
    /// One entry per `plan.mounts` entry: the bind source, None for other mounts.
    binds: Vec<Option<OwnedFd>>,
    /// Per entry: the source is a detached (idmapped) tree to `move_mount`, not a path's fd.
    detached: Vec<bool>,
    /// The notify directory, when pier relays sd_notify.
    notify: Option<OwnedFd>,
}

impl Sources {
    /// Open every bind source (relative ones are relative to the bundle) and `notify_dir`;
    /// take a copy of the idmapped trees pier made (`idmapped`, per mount).
    ///
    /// # Errors
    /// A bind source that does not exist or cannot be opened, named with its mount.
    pub fn open(
        plan: &Plan,
        idmapped: &[Option<OwnedFd>],
        notify_dir: Option<&std::path::Path>,
    ) -> Result<Sources> {
        let open = |path: &std::path::Path| {
            rustix::fs::open(path, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        };
        let mut binds = Vec::with_capacity(plan.mounts.len());
        let mut detached = vec![false; plan.mounts.len()];
        for (i, m) in plan.mounts.iter().enumerate() {
            if let Some(Some(tree)) = idmapped.get(i) {
                binds.push(Some(tree.try_clone().context("dup the idmapped tree")?));
                detached[i] = true;
                continue;
            }
            let source = plan.bundle.join(&m.source);
            // crun's copy-symlink reads the link itself, by path.
            if m.bind.is_none() || (m.copy_symlink && source.is_symlink()) {
                binds.push(None);
                continue;
            }
            let fd = open(&source)
                .with_context(|| format!("bind source {}", source.display()))
                .with_context(|| format!("mount {} on {}", describe(m), m.destination))?;
            binds.push(Some(fd));
        }
        let notify = notify_dir
            .map(|d| open(d).with_context(|| format!("open {}", d.display())))
            .transpose()?;
        Ok(Sources {
            binds,
            detached,
            notify,
        })
    }
}

/// Mount every entry of `plan.mounts` under the rootfs opened as `root`, bind mounts from
/// `sources`. Returns the mounts to make read-only last ([`remount_readonly`]).
pub fn mount_all(
    plan: &Plan,
    root: BorrowedFd<'_>,
    sources: &Sources,
    cgroup_dirs: &[std::path::PathBuf],
) -> Result<Vec<ReadonlyLater>> {
    let mut later = Vec::new();
    for (i, m) in plan.mounts.iter().enumerate() {
        let source = sources.binds[i]
            .as_ref()
            .map(|fd| (fd, sources.detached[i]));
        let result = if m.fstype == "cgroup" || m.fstype == "cgroup2" {
            mount_cgroup(plan, m, root, cgroup_dirs)
        } else {
            mount_one(plan, m, root, source, &mut later)
        };
        result.with_context(|| format!("mount {} on {}", describe(m), m.destination))?;
    }
    Ok(later)
}

/// The last step before the process: remount what [`mount_all`] left writable read-only
/// (after `pivot_root`, so through the fds kept, never a path the container may have moved).
///
/// # Errors
/// The remount fails.
pub fn remount_readonly(later: Vec<ReadonlyLater>) -> Result<()> {
    for m in later {
        rustix::process::fchdir(&m.root)
            .and_then(|()| mount_remount(".", m.flags, ""))
            .with_context(|| format!("remount {} read-only", m.destination))?;
    }
    rustix::process::chdir("/").context("chdir /")?;
    Ok(())
}

fn describe(m: &Mount) -> String {
    if m.bind.is_some() {
        format!("bind {}", m.source)
    } else {
        format!("{} ({})", m.source, m.fstype)
    }
}

/// Whether `m` is read-only only at the end: a tmpfs, or anything on /dev (runc's rule).
fn readonly_last(m: &Mount) -> bool {
    m.flags.readonly && (m.fstype == "tmpfs" || m.destination.trim_end_matches('/') == "/dev")
}

/// Mount one entry; `source` is a bind mount's opened source ([`Sources`]) and whether it is
/// a detached tree.
fn mount_one(
    plan: &Plan,
    m: &Mount,
    root: BorrowedFd<'_>,
    source: Option<(&OwnedFd, bool)>,
    later: &mut Vec<ReadonlyLater>,
) -> Result<()> {
    let Some(bind) = m.bind else {
        return mount_fs(plan, m, root, later);
    };
    let Some((source, detached)) = source else {
        return copy_symlink(&plan.bundle.join(&m.source), root, &m.destination);
    };
    let meta = rustix::fs::fstat(source).context("stat the bind source")?;
    let is_dir = rustix::fs::FileType::from_raw_mode(meta.st_mode).is_dir();
    let leaf = if is_dir { Leaf::Dir } else { Leaf::File };
    let target = ensure_in_root(root, &m.destination, leaf)?;
    let mut flags = MountFlags::BIND;
    if bind == BindKind::Recursive {
        flags |= MountFlags::REC;
    }
    if detached {
        rustix::mount::move_mount(
            source,
            "",
            &target,
            "",
            rustix::mount::MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH
                | rustix::mount::MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
        )
        .context("attach the idmapped mount (move_mount)")?;
    } else {
        mount(fd_path(source), fd_path(&target), "", flags, None)?;
    }
    drop(target);
    remount_with_options(m, root, later)
}

/// A bind mount's flags, in the remount step (read-only maybe left for last); then
/// [`finish_mount`].
fn remount_with_options(
    m: &Mount,
    root: BorrowedFd<'_>,
    later: &mut Vec<ReadonlyLater>,
) -> Result<()> {
    let mut extra = flags_of(m);
    if readonly_last(m) {
        extra -= MountFlags::RDONLY;
    }
    // Reopen: the old fd names the covered directory, not the new mount.
    let target = open_in_root(root, &m.destination)?;
    let mut flags = MountFlags::BIND | extra;
    if !extra.is_empty() {
        flags = remount_bind(&target, extra).context("remount the bind mount with its options")?;
    }
    finish_mount(m, root, target, flags, later)
}

/// `mount(MS_REMOUNT|MS_BIND|flags)` on the mount `target` is on; returns the flags used. A
/// mount that came from a more privileged mount namespace (a host mount in a user namespace)
/// has its nosuid, nodev, noexec and atime flags locked (`mount_namespaces(7)`): on EPERM,
/// retry keeping them, as runc does.
pub fn remount_bind(target: &OwnedFd, flags: MountFlags) -> rustix::io::Result<MountFlags> {
    let path = fd_path(target);
    let flags = MountFlags::BIND | flags;
    match mount_remount(path.as_str(), flags, "") {
        Err(rustix::io::Errno::PERM) => {
            let flags = flags | locked_flags(target);
            mount_remount(path.as_str(), flags, "").map(|()| flags)
        }
        other => other.map(|()| flags),
    }
}

/// The flags of the mount `fd` is on that a less privileged namespace may not clear.
fn locked_flags(fd: &impl AsFd) -> MountFlags {
    use rustix::fs::StatVfsMountFlags as V;
    let Ok(st) = rustix::fs::fstatvfs(fd) else {
        return MountFlags::empty();
    };
    let pairs = [
        (V::NOSUID, MountFlags::NOSUID),
        (V::NODEV, MountFlags::NODEV),
        (V::NOEXEC, MountFlags::NOEXEC),
        (V::NOATIME, MountFlags::NOATIME),
        (V::NODIRATIME, MountFlags::NODIRATIME),
        (V::RELATIME, MountFlags::RELATIME),
    ];
    pairs
        .iter()
        .filter(|(v, _)| st.f_flag.contains(*v))
        .fold(MountFlags::empty(), |a, (_, m)| a | *m)
}

/// In a user namespace the kernel refuses sysfs without a network namespace the user
/// namespace owns, and mqueue without such an IPC namespace: bind the host's (recursively,
/// with the entry's flags), as `runc spec --rootless` configures it.
fn userns_fallback(plan: &Plan, m: &Mount) -> Option<&'static str> {
    if !crate::rootless::userns_rules(plan) {
        return None;
    }
    match m.fstype.as_str() {
        "sysfs" => Some("/sys"),
        "mqueue" => Some("/dev/mqueue"),
        _ => None,
    }
}

fn bind_host_path(
    root: BorrowedFd<'_>,
    m: &Mount,
    host: &str,
    later: &mut Vec<ReadonlyLater>,
) -> Result<()> {
    let target = ensure_in_root(root, &m.destination, Leaf::Dir)?;
    mount(
        host,
        fd_path(&target),
        "",
        MountFlags::BIND | MountFlags::REC,
        None,
    )
    .with_context(|| {
        format!(
            "bind {host} (no {} of its own in a user namespace)",
            m.fstype
        )
    })?;
    drop(target);
    remount_with_options(m, root, later)
}

/// A filesystem (not bind) mount: tmpfs, proc, sysfs, devpts, mqueue, overlay...
fn mount_fs(
    plan: &Plan,
    m: &Mount,
    root: BorrowedFd<'_>,
    later: &mut Vec<ReadonlyLater>,
) -> Result<()> {
    let tmpfs = m.fstype == "tmpfs";
    // runc gives a tmpfs the mode of the directory it covers, and copies that up if asked.
    let covered = open_in_root_with(root, &m.destination, OFlags::RDONLY | OFlags::DIRECTORY)
        .ok()
        .filter(|_| tmpfs);
    let covered_mode = covered
        .as_ref()
        .and_then(|fd| rustix::fs::fstat(fd).ok())
        .map(|st| Mode::from_raw_mode(st.st_mode & 0o7777));
    let target = ensure_in_root(root, &m.destination, Leaf::Dir)?;
    if matches!(m.fstype.as_str(), "proc" | "sysfs") {
        refuse_symlinked_destination(root, &m.destination)?;
    }
    let data = (!m.data.is_empty())
        .then(|| std::ffi::CString::new(m.data.clone()))
        .transpose()?;
    let mut flags = flags_of(m);
    if readonly_last(m) {
        flags -= MountFlags::RDONLY;
    }
    let made = mount(
        &m.source,
        fd_path(&target),
        &m.fstype,
        flags,
        data.as_deref(),
    );
    drop(target);
    match (made, userns_fallback(plan, m)) {
        (Err(rustix::io::Errno::PERM), Some(host)) => return bind_host_path(root, m, host, later),
        (made, _) => made?,
    }
    if tmpfs {
        let new = open_in_root_with(root, &m.destination, OFlags::RDONLY | OFlags::DIRECTORY)?;
        if let (Some(from), true) = (&covered, m.tmpcopyup) {
            copyup::copy_dir(from.as_fd(), new.as_fd())?;
        }
        if let Some(mode) = covered_mode {
            rustix::fs::fchmod(&new, mode)
                .context("give the tmpfs the covered directory's mode")?;
        }
    }
    let target = open_in_root(root, &m.destination)?;
    finish_mount(m, root, target, flags - MS_REMOUNT, later)
}

/// After mounting `m` (whose root `target` is), with `flags`: its recursive attributes, its
/// propagation, and the read-only remount to do last.
fn finish_mount(
    m: &Mount,
    root: BorrowedFd<'_>,
    target: OwnedFd,
    flags: MountFlags,
    later: &mut Vec<ReadonlyLater>,
) -> Result<()> {
    if m.recursive != crate::spec::MountAttrs::default() {
        crate::sys::mount_setattr_recursive(target.as_fd(), m.recursive.set, m.recursive.clear)
            .context("set the recursive mount attributes (mount_setattr)")?;
    }
    apply_propagation(root, &m.destination, m.propagation)?;
    if readonly_last(m) {
        later.push(ReadonlyLater {
            root: target,
            flags: flags | MountFlags::RDONLY,
            destination: m.destination.clone(),
        });
    }
    Ok(())
}

/// crun's `copy-symlink`: the bind source is a symlink, so the destination becomes the same
/// symlink (its parent directories created inside the rootfs).
fn copy_symlink(source: &std::path::Path, root: BorrowedFd<'_>, destination: &str) -> Result<()> {
    let link = std::fs::read_link(source)
        .with_context(|| format!("read the symlink {}", source.display()))?;
    let (parent, name) = destination
        .trim_end_matches('/')
        .rsplit_once('/')
        .context("destination")?;
    let dir = ensure_in_root(
        root,
        if parent.is_empty() { "/" } else { parent },
        Leaf::Dir,
    )?;
    match rustix::fs::symlinkat(link.as_path(), &dir, name) {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::EXIST)
            if rustix::fs::readlinkat(&dir, name, Vec::new())
                .is_ok_and(|t| t.as_bytes() == link.as_os_str().as_encoded_bytes()) =>
        {
            Ok(())
        }
        Err(e) => Err(e).context("create the symlink"),
    }
}

/// The MS_* flags an entry's options asked for.
fn flags_of(m: &Mount) -> MountFlags {
    let f = &m.flags;
    let pairs = [
        (f.readonly, MountFlags::RDONLY),
        (f.nosuid, MountFlags::NOSUID),
        (f.nodev, MountFlags::NODEV),
        (f.noexec, MountFlags::NOEXEC),
        (f.sync, MountFlags::SYNCHRONOUS),
        (f.dirsync, MountFlags::DIRSYNC),
        (f.mand, MountFlags::PERMIT_MANDATORY_FILE_LOCKING),
        (f.noatime, MountFlags::NOATIME),
        (f.nodiratime, MountFlags::NODIRATIME),
        (f.relatime, MountFlags::RELATIME),
        (f.strictatime, MountFlags::STRICTATIME),
        (f.nosymfollow, MountFlags::NOSYMFOLLOW),
        (f.lazytime, MountFlags::LAZYTIME),
        (f.silent, MountFlags::SILENT),
        (
            f.iversion,
            MountFlags::from_bits_retain(libc::MS_I_VERSION as _),
        ),
        (
            f.posixacl,
            MountFlags::from_bits_retain(libc::MS_POSIXACL as _),
        ),
        (f.remount, MS_REMOUNT),
    ];
    pairs
        .iter()
        .filter(|(on, _)| *on)
        .fold(MountFlags::empty(), |acc, (_, f)| acc | *f)
}

/// Set a mount's propagation (`mount(NULL, target, NULL, MS_SHARED|…, NULL)`).
pub fn apply_propagation(
    root: BorrowedFd<'_>,
    destination: &str,
    p: Option<Propagation>,
) -> Result<()> {
    let Some(p) = p else { return Ok(()) };
    let target = open_in_root(root, destination)?;
    mount_change(fd_path(&target), propagation_flags(p)).context("set mount propagation")?;
    Ok(())
}

/// rustix flags for a Plan propagation.
pub fn propagation_flags(p: Propagation) -> MountPropagationFlags {
    let kind = match p.kind {
        PropagationKind::Shared => MountPropagationFlags::SHARED,
        PropagationKind::Slave => MountPropagationFlags::DOWNSTREAM,
        PropagationKind::Private => MountPropagationFlags::PRIVATE,
        PropagationKind::Unbindable => MountPropagationFlags::UNBINDABLE,
    };
    if p.recursive {
        kind | MountPropagationFlags::REC
    } else {
        kind
    }
}

/// A `cgroup` mount. A pure cgroup2 host gets a cgroup2 mount. A v1 or hybrid host gets a
/// tmpfs with one directory per v1 hierarchy (not the hybrid's cgroup2 one, as runc): a fresh cgroup mount of that hierarchy when the
/// container has its own cgroup namespace (the namespace root is the container's cgroup),
/// otherwise a bind mount of the container's own directory, so the host tree stays hidden.
fn mount_cgroup(
    plan: &Plan,
    m: &Mount,
    root: BorrowedFd<'_>,
    cgroup_dirs: &[std::path::PathBuf],
) -> Result<()> {
    // pier read the hierarchies before the clone; our mount namespace is a copy of its one
    // unless config.json joined another.
    let hierarchies = if plan
        .namespaces
        .iter()
        .any(|n| n.kind == NamespaceKind::Mount && n.path.is_some())
    {
        crate::cgroups::hierarchy_list()?
    } else {
        Hierarchy::mounted_before_clone()?
    };
    let flags = flags_of(m);
    let target = ensure_in_root(root, &m.destination, Leaf::Dir)?;
    if hierarchies.len() == 1 && hierarchies[0].is_v2() {
        match mount("cgroup2", fd_path(&target), "cgroup2", flags, None) {
            // A user namespace without a cgroup namespace of its own: bind the container's
            // cgroup directory instead, as runc does.
            Err(rustix::io::Errno::PERM | rustix::io::Errno::BUSY)
                if crate::rootless::userns_rules(plan) =>
            {
                drop(target);
                mount_hierarchy(
                    &hierarchies[0],
                    root,
                    &m.destination,
                    false,
                    cgroup_dirs,
                    flags,
                )?;
            }
            made => made?,
        }
        return apply_propagation(root, &m.destination, m.propagation);
    }
    mount(
        "tmpfs",
        fd_path(&target),
        "tmpfs",
        flags - MountFlags::RDONLY,
        Some(c"mode=755"),
    )?;
    let own_ns = plan.creates_namespace(crate::spec::NamespaceKind::Cgroup);
    // A hybrid host's cgroup2 (`unified`) tree is not shown, as runc does not: the
    // container gets the v1 hierarchies, named ones included.
    for h in hierarchies.iter().filter(|h| !h.is_v2()) {
        let name = h
            .mountpoint
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let dest = format!("{}/{}", m.destination, name);
        mount_hierarchy(h, root, &dest, own_ns, cgroup_dirs, flags)?;
        link_comounted(root, &m.destination, &name)?;
    }
    if flags.contains(MountFlags::RDONLY) {
        let target = open_in_root(root, &m.destination)?;
        mount_remount(fd_path(&target), flags, "mode=755")?;
    }
    apply_propagation(root, &m.destination, m.propagation)
}

fn mount_hierarchy(
    h: &Hierarchy,
    root: BorrowedFd<'_>,
    dest: &str,
    own_ns: bool,
    cgroup_dirs: &[std::path::PathBuf],
    flags: MountFlags,
) -> Result<()> {
    let dir = ensure_in_root(root, dest, Leaf::Dir)?;
    if own_ns {
        let (fstype, data) = if h.is_v2() {
            ("cgroup2", String::new())
        } else {
            ("cgroup", h.controllers.join(","))
        };
        let data = std::ffi::CString::new(data)?;
        match mount(
            "cgroup",
            fd_path(&dir),
            fstype,
            flags,
            Some(data.as_c_str()),
        ) {
            // A hierarchy a user namespace may not mount: bind the container's directory.
            Err(rustix::io::Errno::PERM) => {}
            made => return Ok(made?),
        }
    }
    // The container's directory; where pier made none (the rootless cgroup manager skipped
    // a hierarchy it may not write), the init is still in pier's own cgroup there: bind that,
    // as runc binds the init's current cgroup of every hierarchy.
    let source = match cgroup_dirs.iter().find(|d| d.starts_with(&h.mountpoint)) {
        Some(dir) => dir.clone(),
        None => h.mountpoint.join(h.own_path.trim_start_matches('/')),
    };
    mount(
        source.as_path(),
        fd_path(&dir),
        "",
        MountFlags::BIND | MountFlags::REC,
        None,
    )?;
    let reopened = open_in_root(root, dest)?;
    remount_bind(&reopened, flags)?;
    Ok(())
}

/// `cpu,cpuacct` is also reachable as `cpu` and `cpuacct` (symlinks), as on the host.
fn link_comounted(root: BorrowedFd<'_>, base: &str, name: &str) -> Result<()> {
    if !name.contains(',') {
        return Ok(());
    }
    let dir = open_in_root(root, base)?;
    for part in name.split(',') {
        match rustix::fs::symlinkat(name, &dir, part) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

/// Bind the notify directory read-only, nosuid, nodev, noexec at /run/notify (a read-only
/// mount does not stop `connect(2)` to the socket in it). The mount point is created only on
/// a tmpfs the container has, or in a rootfs that config.json does not mark read-only.
pub fn mount_notify_dir(
    plan: &Plan,
    root: BorrowedFd<'_>,
    sources: &Sources,
    dest: &str,
) -> Result<()> {
    let Some(host_dir) = sources.notify.as_ref() else {
        return Ok(());
    };
    let target = match open_in_root(root, dest) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => {
            let on_tmpfs = open_in_root(root, "/run").is_ok_and(|run| {
                rustix::fs::fstatfs(&run).is_ok_and(|st| st.f_type == libc::TMPFS_MAGIC)
            });
            if plan.root_readonly && !on_tmpfs {
                anyhow::bail!(
                    "NOTIFY_SOCKET is set but {dest} does not exist in the read-only rootfs and /run is not a tmpfs: \
                     add a tmpfs mount on /run, or create {dest} in the image"
                );
            }
            ensure_in_root(root, dest, Leaf::Dir).context("create /run/notify")?
        }
        Err(e) => return Err(e).context("resolve /run/notify"),
    };
    mount(
        fd_path(host_dir),
        fd_path(&target),
        "",
        MountFlags::BIND,
        None,
    )
    .context("bind the notify directory")?;
    let target = open_in_root(root, dest)?;
    let flags = MountFlags::RDONLY | MountFlags::NOSUID | MountFlags::NODEV | MountFlags::NOEXEC;
    remount_bind(&target, flags).context("remount /run/notify read-only")?;
    Ok(())
}

/// procfs and sysfs go only on a destination reached without any symlink: an image that makes
/// /proc a link elsewhere must not move them (the runc CVE-2019-19921 / CVE-2023-27561 class).
fn refuse_symlinked_destination(root: BorrowedFd<'_>, destination: &str) -> Result<()> {
    let relative = destination.trim_start_matches('/');
    let flags = rustix::fs::ResolveFlags::IN_ROOT | rustix::fs::ResolveFlags::NO_SYMLINKS;
    super::resolve::openat2_retrying(root, relative, rustix::fs::OFlags::PATH, flags)
        .map(drop)
        .with_context(|| {
            format!("{destination} must be a directory, not reached through a symlink")
        })
}
