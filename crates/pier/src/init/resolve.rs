//! Paths inside the rootfs, resolved by the kernel with `openat2(RESOLVE_IN_ROOT)`: a symlink
//! in the image (`/mnt -> /etc` or `-> ../../..`) is followed as if the rootfs were `/`, so no
//! mount, device or write ever lands outside it (the CVE-2021-30465 class). Mounts then target
//! the resolved inode through `/proc/self/fd/N`, never the path string again.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{openat2, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// What to create at the end of a missing path.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leaf {
    Dir,
    File,
}

/// Open `path` (absolute inside the container) as an `O_PATH` fd, resolved inside `root`.
pub fn open_in_root(root: BorrowedFd<'_>, path: &str) -> rustix::io::Result<OwnedFd> {
    open_in_root_with(root, path, OFlags::PATH)
}

/// Open `path` inside `root` with `flags` (for reads and writes of /proc/sys, /etc/passwd).
pub fn open_in_root_with(
    root: BorrowedFd<'_>,
    path: &str,
    flags: OFlags,
) -> rustix::io::Result<OwnedFd> {
    openat2_retrying(
        root,
        relative(path),
        flags,
        ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS,
    )
}

/// `openat2(dir, path, flags | O_CLOEXEC, resolve)`, again while it fails with EAGAIN: with
/// RESOLVE_IN_ROOT or RESOLVE_BENEATH that means a rename or a mount anywhere on the system
/// raced the resolution and "the caller should retry" (`openat2(2)`); containers being set
/// up at the same time make that common.
pub fn openat2_retrying(
    dir: BorrowedFd<'_>,
    path: &str,
    flags: OFlags,
    resolve: ResolveFlags,
) -> rustix::io::Result<OwnedFd> {
    let mut tries = 0;
    loop {
        match openat2(dir, path, flags | OFlags::CLOEXEC, Mode::empty(), resolve) {
            Err(Errno::AGAIN) if tries < 1000 => tries += 1,
            other => return other,
        }
    }
}

/// Open `path` inside `root`, creating missing components (directories, and `leaf` at the
/// end) inside the root, following the image's symlinks within the root as the kernel would.
///
/// # Errors
/// A component that exists but is not a directory, a symlink loop (more than 40 links), or
/// a creation that fails (read-only image).
pub fn ensure_in_root(root: BorrowedFd<'_>, path: &str, leaf: Leaf) -> Result<OwnedFd> {
    ensure(root, path, leaf, 0).with_context(|| format!("resolve {path} inside the rootfs"))
}

fn ensure(root: BorrowedFd<'_>, path: &str, leaf: Leaf, depth: u32) -> Result<OwnedFd> {
    if depth > 40 {
        bail!("too many levels of symbolic links");
    }
    match open_in_root(root, path) {
        Ok(fd) => return Ok(fd),
        Err(Errno::NOENT) => {}
        Err(e) => return Err(e.into()),
    }
    let path = path.trim_end_matches('/');
    let (parent, name) = match path.rsplit_once('/') {
        Some((p, n)) => (if p.is_empty() { "/" } else { p }, n),
        None => ("/", path),
    };
    if name.is_empty() || name == "." || name == ".." {
        bail!("cannot create {path:?}");
    }
    let parent_fd = ensure(root, parent, Leaf::Dir, depth + 1)?;
    let made = match leaf {
        Leaf::Dir => rustix::fs::mkdirat(&parent_fd, name, Mode::from_raw_mode(0o755)),
        Leaf::File => rustix::fs::openat(
            &parent_fd,
            name,
            OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW,
            Mode::from_raw_mode(0o644),
        )
        .map(drop),
    };
    match made {
        Ok(()) => Ok(open_in_root(root, &format!("{parent}/{name}"))?),
        Err(Errno::EXIST) => {
            // A dangling symlink: create its target, inside the root.
            let target = rustix::fs::readlinkat(&parent_fd, name, Vec::new())
                .with_context(|| format!("{path} exists but cannot be opened"))?;
            let target = target.to_string_lossy().into_owned();
            let next = if target.starts_with('/') {
                target
            } else {
                format!("{parent}/{target}")
            };
            ensure(root, &next, leaf, depth + 1)
        }
        Err(e) => Err(e).with_context(|| format!("create {path}")),
    }
}

/// The `/proc/self/fd/N` path that names `fd`'s inode for `mount(2)` and `open(2)`.
pub fn fd_path(fd: &impl AsFd) -> String {
    format!("/proc/self/fd/{}", fd.as_fd().as_raw_fd())
}

fn relative(path: &str) -> &str {
    let p = path.trim_start_matches('/');
    if p.is_empty() {
        "."
    } else {
        p
    }
}
