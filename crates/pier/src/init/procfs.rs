//! A procfs instance the init made itself (`fsopen("proc")` + `fsmount`, `proc(5)`), for
//! every write pier makes into /proc from inside the container's namespaces (sysctl) and for
//! reopening the exec fifo: the CVE-2025-52881 / CVE-2024-21626 classes.
//!
//! The mount is detached: it is in no mount tree, so nothing config.json or the image mounts
//! (a tmpfs or a bind over /proc/sys, a symlink in a volume under /proc) can cover or redirect
//! a path inside it. Paths are resolved with `openat2(RESOLVE_BENEATH | RESOLVE_NO_XDEV |
//! RESOLVE_NO_MAGICLINKS)` (only procfs's own `self` link is followed) and every opened fd is
//! checked to be on procfs (`fstatfs` `PROC_SUPER_MAGIC`) before it is written.
//!
//! The instance is of the caller's pid namespace (the container's, once cloned into it); its
//! `/proc/sys` shows the caller's network and UTS namespaces, as the container's own /proc would.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
    MountAttrFlags,
};

/// The root of a private, detached procfs mount.
pub struct ProcFs(OwnedFd);

impl ProcFs {
    /// A full procfs (with `sys/`), for the sysctl writes during set-up (pier's /proc where no
    /// procfs can be made; set-up runs before the root switch). Never held past the set-up: it
    /// would reach /proc/sys without the container's read-only mount on it.
    ///
    /// # Errors
    /// Neither can be opened.
    pub fn full() -> Result<ProcFs> {
        Self::make(None).or_else(|e| Self::host().map_err(|_| e))
    }

    /// A procfs with only the process directories (`subset=pid`, Linux 5.8), for the exec
    /// fifo: the only procfs handle a created init holds while it waits, and it reaches nothing
    /// the container's own /proc does not. Falls back to a full one on kernels without
    /// `subset=`. No fallback to pier's /proc: see [`ProcFs::pids_or_host`].
    ///
    /// # Errors
    /// As [`ProcFs::make`].
    pub fn pids_only() -> Result<ProcFs> {
        Self::make(Some("pid")).or_else(|_| Self::make(None))
    }

    /// [`ProcFs::pids_only`], or where this process may not make a procfs (a user namespace
    /// that does not own the pid namespace), pier's own /proc (the init's fifo reopen needs
    /// one; the exec'd process's fd listing does not).
    ///
    /// # Errors
    /// Neither can be opened.
    pub fn pids_or_host() -> Result<ProcFs> {
        Self::pids_only().or_else(|e| Self::host().map_err(|_| e))
    }

    /// The fallback where this process may not make a procfs (a user namespace that does not
    /// own the pid namespace): pier's /proc, opened before any mount of config.json and
    /// before the root switch, checked to be the root of a procfs.
    fn host() -> Result<ProcFs> {
        let root = rustix::fs::open(
            "/proc",
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .context("open /proc")?;
        check_on_procfs(&root, "/proc")?;
        // PROC_ROOT_INO: the root of the procfs, not a directory bound over /proc.
        if rustix::fs::fstat(&root)?.st_ino != 1 {
            bail!("/proc is not the root of a procfs");
        }
        Ok(ProcFs(root))
    }

    /// `fsopen("proc")`, `subset=` if given, `fsmount` nosuid/nodev/noexec.
    ///
    /// # Errors
    /// `fsopen`/`fsmount` fail (no CAP_SYS_ADMIN over the pid namespace, kernel < 5.2).
    fn make(subset: Option<&str>) -> Result<ProcFs> {
        let fs = fsopen("proc", FsOpenFlags::FSOPEN_CLOEXEC).context("fsopen(proc)")?;
        if let Some(subset) = subset {
            fsconfig_set_string(&fs, "subset", subset).context("procfs subset=")?;
        }
        fsconfig_create(&fs).context("create a procfs")?;
        let attrs = MountAttrFlags::MOUNT_ATTR_NOSUID
            | MountAttrFlags::MOUNT_ATTR_NODEV
            | MountAttrFlags::MOUNT_ATTR_NOEXEC;
        let root = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs).context("fsmount(proc)")?;
        check_on_procfs(&root, "the new procfs")?;
        Ok(ProcFs(root))
    }

    /// Open `path` (relative to the procfs root, e.g. `sys/net/ipv4/ip_forward`) with
    /// `flags`, resolved beneath the root, never crossing a mount or a magic link; checked to
    /// be on procfs.
    ///
    /// # Errors
    /// The path does not exist (an unknown sysctl), leaves the root, or is not on procfs.
    pub fn open(&self, path: &str, flags: OFlags) -> Result<OwnedFd> {
        let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_XDEV | ResolveFlags::NO_MAGICLINKS;
        let fd = loop {
            match openat2(
                &self.0,
                path,
                flags | OFlags::CLOEXEC,
                Mode::empty(),
                resolve,
            ) {
                Err(rustix::io::Errno::AGAIN | rustix::io::Errno::INTR) => continue,
                other => break other,
            }
        }
        .with_context(|| format!("open /proc/{path}"))?;
        check_on_procfs(&fd, path)?;
        Ok(fd)
    }

    /// Write `value` to `path` (one `write(2)`, as sysctl(8) does).
    ///
    /// # Errors
    /// As [`ProcFs::open`], or the kernel refuses the value.
    pub fn write(&self, path: &str, value: &str) -> Result<()> {
        let fd = self.open(path, OFlags::WRONLY | OFlags::TRUNC)?;
        rustix::io::write(&fd, value.as_bytes()).with_context(|| format!("write /proc/{path}"))?;
        Ok(())
    }
}

/// Reopen the `O_PATH` fd `fd` of this process with `flags` through `fd_dir`, this process's
/// `self/fd` directory opened beforehand with [`ProcFs::open`] (following that one magic link
/// is the point; a plain `openat(2)`, so it works after a seccomp profile that denies
/// `openat2(2)` is loaded: runtime-tools' default one does), and check that the result is the
/// same inode.
///
/// # Errors
/// The reopen fails or lands on another file.
pub fn reopen(fd_dir: BorrowedFd<'_>, fd: &impl AsFd, flags: OFlags) -> Result<OwnedFd> {
    use std::os::fd::AsRawFd;
    let name = fd.as_fd().as_raw_fd().to_string();
    let reopened = rustix::fs::openat(
        fd_dir,
        name.as_str(),
        flags | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("reopen fd {name}"))?;
    let (a, b) = (rustix::fs::fstat(fd)?, rustix::fs::fstat(&reopened)?);
    if (a.st_dev, a.st_ino) != (b.st_dev, b.st_ino) {
        bail!("reopening fd {name} through procfs gave another file");
    }
    Ok(reopened)
}

fn check_on_procfs(fd: &impl AsFd, what: &str) -> Result<()> {
    let st = rustix::fs::fstatfs(fd).with_context(|| format!("fstatfs {what}"))?;
    if st.f_type != libc::PROC_SUPER_MAGIC {
        bail!("{what} is not on procfs");
    }
    Ok(())
}
