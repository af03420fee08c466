//! `tmpcopyup`: what the image has at a tmpfs mount's destination is copied into the new tmpfs
//! (runc and crun do it; podman asks for it with `--tmpfs`, `--read-only` and quadlet
//! `ReadOnly=true`, so `--tmpfs /etc` keeps the image's files).
//!
//! The image is untrusted: everything is done relative to directory fds, no symlink is ever
//! followed (`O_NOFOLLOW`, `AT_SYMLINK_NOFOLLOW`), and symlinks are recreated as symlinks.
//! Regular files, directories, symlinks, device nodes, fifos and sockets are copied with
//! their mode, owner and times; hard links become separate copies and xattrs are not copied.

use std::ffi::CStr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use rustix::fs::{AtFlags, FileType, Mode, OFlags, Stat, Timestamps};

/// Copy the contents of directory `from` into directory `to` (both open directory fds).
///
/// # Errors
/// An entry that cannot be read or recreated (named in the message).
pub fn copy_dir(from: BorrowedFd<'_>, to: BorrowedFd<'_>) -> Result<()> {
    let mut dir = rustix::fs::Dir::read_from(from).context("read directory")?;
    while let Some(entry) = dir.read() {
        let entry = entry.context("read directory")?;
        let name = entry.file_name();
        if name == c"." || name == c".." {
            continue;
        }
        copy_entry(from, to, name)
            .with_context(|| format!("copy up {}", name.to_string_lossy()))?;
    }
    Ok(())
}

fn copy_entry(from: BorrowedFd<'_>, to: BorrowedFd<'_>, name: &CStr) -> Result<()> {
    let st = rustix::fs::statat(from, name, AtFlags::SYMLINK_NOFOLLOW)?;
    let mode = Mode::from_raw_mode(st.st_mode & 0o7777);
    match FileType::from_raw_mode(st.st_mode) {
        FileType::Directory => {
            rustix::fs::mkdirat(to, name, Mode::from_raw_mode(0o700))?;
            let src = open_nofollow(from, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
            let dst = open_nofollow(to, name, OFlags::RDONLY | OFlags::DIRECTORY)?;
            copy_dir(src.as_fd(), dst.as_fd())?;
            set_metadata(&dst, &st)
        }
        FileType::RegularFile => {
            let src = open_nofollow(from, name, OFlags::RDONLY)?;
            let dst = rustix::fs::openat(
                to,
                name,
                OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            )?;
            let (mut reader, mut writer) = (std::fs::File::from(src), std::fs::File::from(dst));
            std::io::copy(&mut reader, &mut writer)?;
            set_metadata(&OwnedFd::from(writer), &st)
        }
        FileType::Symlink => {
            let target = rustix::fs::readlinkat(from, name, Vec::new())?;
            rustix::fs::symlinkat(target.as_c_str(), to, name)?;
            set_owner_and_times_at(to, name, &st)
        }
        kind => {
            rustix::fs::mknodat(to, name, kind, mode, st.st_rdev)?;
            set_owner_and_times_at(to, name, &st)?;
            // mknod applied the umask.
            rustix::fs::chmodat(to, name, mode, AtFlags::empty())?;
            Ok(())
        }
    }
}

fn open_nofollow(dir: BorrowedFd<'_>, name: &CStr, flags: OFlags) -> rustix::io::Result<OwnedFd> {
    rustix::fs::openat(
        dir,
        name,
        flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

/// Owner first (chown clears set-id bits), then mode, then times.
fn set_metadata(fd: &OwnedFd, st: &Stat) -> Result<()> {
    rustix::fs::fchown(
        fd,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
    )?;
    rustix::fs::fchmod(fd, Mode::from_raw_mode(st.st_mode & 0o7777))?;
    rustix::fs::futimens(fd, &times_of(st))?;
    Ok(())
}

fn set_owner_and_times_at(dir: BorrowedFd<'_>, name: &CStr, st: &Stat) -> Result<()> {
    rustix::fs::chownat(
        dir,
        name,
        Some(rustix::fs::Uid::from_raw(st.st_uid)),
        Some(rustix::fs::Gid::from_raw(st.st_gid)),
        AtFlags::SYMLINK_NOFOLLOW,
    )?;
    rustix::fs::utimensat(dir, name, &times_of(st), AtFlags::SYMLINK_NOFOLLOW)?;
    Ok(())
}

fn times_of(st: &Stat) -> Timestamps {
    Timestamps {
        last_access: rustix::fs::Timespec {
            tv_sec: st.st_atime,
            tv_nsec: st.st_atime_nsec as _,
        },
        last_modification: rustix::fs::Timespec {
            tv_sec: st.st_mtime,
            tv_nsec: st.st_mtime_nsec as _,
        },
    }
}
