//! pier's own binary out of the container's reach: the CVE-2019-5736 class.
//!
//! The container's init and every `exec`'d process are forks of pier that only become the
//! container's program at their last `execve`. Until then `/proc/<pid>/exe` and
//! `/proc/<pid>/map_files/*` of that process name the file pier runs from, and an entrypoint
//! that makes the kernel run `/proc/self/exe` (a `#!/proc/self/exe` script, a symlink to it)
//! runs that file inside the container. If that file were pier's host binary, a container
//! process could reopen it for writing once no process runs it and replace pier for the next
//! caller. So `create`, `run` and `exec` re-execute pier from a copy that cannot be written
//! back, as runc 1.2 does for `runc init` (`libcontainer/exeseal`), first thing in `main`,
//! before argv is parsed ([`early`], on a scan of argv; [`reexec`] checks after the parse
//! and re-executes then if that did not happen), so that the parse runs once:
//!
//! 1. a read-only overlayfs of the binary's directory (`fsopen("overlay")`, two lower layers
//!    and no upper one, so its superblock is read-only and no remount can make it writable;
//!    `fsmount` read-only, never attached to any mount tree). No copy: the pages are the
//!    host binary's page cache. Needs CAP_SYS_ADMIN and a kernel with overlayfs (5.2+ for
//!    `fsopen`); the second layer is the state root, which must not overlap the binary's
//!    directory.
//! 2. otherwise a sealed memfd copy (`memfd_create`, `F_SEAL_SEAL|SHRINK|GROW|WRITE`, and
//!    `F_SEAL_EXEC` where the kernel has it): writes and truncation fail with `EPERM`. It
//!    costs a copy of the binary per invocation, and the memory stays pinned while a process
//!    forked from it lives (a created init, the detached notify relay), so it is the fallback.
//!
//! The re-executed process carries [`SEALED_MARK`] in its environment, removes it at once
//! (nothing pier starts inherits it) and checks that `/proc/self/exe` really is such a copy;
//! it never re-executes twice. A pier started from a file that already is such a copy (a
//! read-only overlayfs the administrator mounted and runs pier from) is not re-executed.

use std::ffi::{CString, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::OnceLock;

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags, SealFlags, StatVfsMountFlags};
use rustix::mount::{
    fsconfig_create, fsconfig_set_string, fsmount, fsopen, FsMountFlags, FsOpenFlags,
    MountAttrFlags,
};

/// The environment variable that marks the re-executed pier (removed at its start): `overlay`,
/// or `memfd:` followed by why no overlayfs could be used (logged by the re-executed pier).
pub const SEALED_MARK: &str = "_PIER_SEALED_EXE";

/// `OVERLAYFS_SUPER_MAGIC` of `<linux/magic.h>`.
const OVERLAYFS_SUPER_MAGIC: i64 = 0x794c_7630;

/// The seals a memfd copy must carry (`memfd_create(2)`, "File sealing").
fn base_seals() -> SealFlags {
    SealFlags::SEAL | SealFlags::SHRINK | SealFlags::GROW | SealFlags::WRITE
}

/// How the running binary is sealed, for the debug record and the tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// A read-only overlayfs over the binary's directory.
    Overlay,
    /// A sealed memfd copy.
    Memfd,
}

impl Seal {
    /// `a read-only overlayfs` / `a sealed memfd copy`.
    pub fn describe(self) -> &'static str {
        match self {
            Seal::Overlay => "a read-only overlayfs",
            Seal::Memfd => "a sealed memfd copy",
        }
    }
}

/// What the re-executed pier found at its start: how its binary is sealed, and why the
/// overlayfs was not used when it is a memfd copy (for the debug record), or why its binary
/// is not a sealed copy at all. Set once, by [`early`].
static STARTED: OnceLock<std::result::Result<(Seal, Option<String>), String>> = OnceLock::new();

/// The first thing `main` does, before argv is parsed: when `command` (the subcommand found
/// by [`crate::cli::scan`]) forks processes into a container (`create`, `run`, `exec`),
/// re-execute pier from a sealed copy of itself now, so that clap, logging and the rest of
/// start-up run once, in the sealed process. In the re-executed process it removes
/// [`SEALED_MARK`] and records whether `/proc/self/exe` really is sealed, for [`reexec`].
/// A failure here is not reported: [`reexec`], after parsing, tries again and reports it.
pub fn early(command: Option<&str>, root: &Path) {
    if let Some(mark) = std::env::var_os(SEALED_MARK) {
        // pier is single-threaded here (nothing has been started yet).
        std::env::remove_var(SEALED_MARK);
        let checked = open_self_exe()
            .ok()
            .and_then(|exe| sealed(&exe))
            .map(|seal| {
                let why = mark.to_string_lossy();
                (seal, why.strip_prefix("memfd:").map(str::to_owned))
            })
            .ok_or_else(|| {
                "/proc/self/exe is neither a sealed memfd nor on a read-only overlayfs".to_owned()
            });
        let _ = STARTED.set(checked);
        return;
    }
    if matches!(command, Some("create" | "run" | "exec")) {
        if let Ok(exe) = open_self_exe() {
            if sealed(&exe).is_none() {
                let _ = reexec_from_copy(&exe, root);
            }
        }
    }
}

/// For `create`, `run` and `exec`, once argv is parsed: make sure pier runs from a sealed
/// copy of itself. Normally [`early`] has re-executed it already, and this only checks what
/// the re-executed process found and logs it; otherwise (the early scan of argv did not
/// recognise the command line, or its attempt failed) it re-executes pier now, with the same
/// argv, environment and fds (the caller's fds 3.. have no close-on-exec; all of pier's own
/// have it). `root` is the state root, the overlay's preferred second layer. A pier started
/// from a file that is already sealed (run from a read-only overlayfs, say) is not
/// re-executed.
///
/// # Errors
/// `/proc/self/exe` cannot be read, neither copy can be made, `execveat(2)` fails, or the
/// re-executed binary is not sealed.
pub fn reexec(root: &Path) -> Result<Seal> {
    match STARTED.get() {
        Some(Ok((seal, why))) => {
            match why {
                Some(why) => tracing::debug!(
                    "seal pier's binary: no read-only overlayfs ({why}), running from {}",
                    seal.describe()
                ),
                None => tracing::debug!("seal pier's binary: running from {}", seal.describe()),
            }
            return Ok(*seal);
        }
        Some(Err(e)) => bail!("pier's re-executed binary is not a sealed copy: {e}"),
        None => {}
    }
    let exe = open_self_exe()?;
    if let Some(seal) = sealed(&exe) {
        tracing::debug!(
            "seal pier's binary: started from {} already",
            seal.describe()
        );
        return Ok(seal);
    }
    let err = reexec_from_copy(&exe, root);
    Err(err).context("re-execute pier from its sealed copy")
}

fn open_self_exe() -> Result<OwnedFd> {
    rustix::fs::open(
        "/proc/self/exe",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open /proc/self/exe")
}

/// Re-execute pier (`exe`, the running binary) from a read-only overlayfs of its directory,
/// else from a sealed memfd copy, marked with [`SEALED_MARK`] (`overlay`, or `memfd:` and
/// why the overlayfs could not be used). Only returns on failure.
fn reexec_from_copy(exe: &OwnedFd, root: &Path) -> anyhow::Error {
    let argv = match std::env::args_os().map(cstring).collect::<Result<Vec<_>>>() {
        Ok(argv) => argv,
        Err(e) => return e,
    };
    let env = std::env::vars_os()
        .map(|(k, v)| {
            let mut kv = k;
            kv.push("=");
            kv.push(v);
            cstring(kv)
        })
        .collect::<Result<Vec<_>>>();
    let env = match env {
        Ok(env) => env,
        Err(e) => return e,
    };
    let argv = crate::sys::CStringArray::new(argv);
    let with_mark = |mark: &str| {
        let mut envp = env.clone();
        envp.push(CString::new(format!("{SEALED_MARK}={mark}").replace('\0', "")).expect("no NUL"));
        crate::sys::CStringArray::new(envp)
    };
    // The second layer: the state root, or where it is missing or overlaps the binary's
    // directory (a binary and a root both under /tmp), /run or /dev.
    let mut why = None;
    for dummy in [root, Path::new("/run"), Path::new("/dev")] {
        match overlay(dummy, exe) {
            Ok(copy) => {
                let err =
                    crate::sys::execveat_empty_path(copy.as_fd(), &argv, &with_mark("overlay"));
                why = Some(format!("execveat: {err}"));
                break;
            }
            Err(e) => {
                why.get_or_insert(e);
            }
        }
    }
    let why = why.expect("three layers tried");
    let copy = match memfd_copy(exe) {
        Ok(copy) => copy,
        Err(e) => return e.context(format!("no read-only overlayfs either: {why}")),
    };
    let err =
        crate::sys::execveat_empty_path(copy.as_fd(), &argv, &with_mark(&format!("memfd:{why}")));
    anyhow::Error::from(err).context("execveat the sealed memfd copy")
}

fn cstring(s: OsString) -> Result<CString> {
    CString::new(s.as_bytes()).context("NUL in argv or environment")
}

/// How `exe` (the running binary) is sealed: a read-only overlayfs, or a memfd with all of
/// [`base_seals`]; `None` when it is neither (or cannot be checked). No error value is built
/// on this path, which every `create`, `run` and `exec` takes (an `anyhow` error captures a
/// backtrace under `RUST_BACKTRACE=1`: about 1 ms here).
fn sealed(exe: &impl AsFd) -> Option<Seal> {
    if rustix::fs::fcntl_get_seals(exe).is_ok_and(|s| s.contains(base_seals())) {
        return Some(Seal::Memfd);
    }
    let fs = rustix::fs::fstatfs(exe).ok()?;
    let vfs = rustix::fs::fstatvfs(exe).ok()?;
    (fs.f_type as i64 == OVERLAYFS_SUPER_MAGIC && vfs.f_flag.contains(StatVfsMountFlags::RDONLY))
        .then_some(Seal::Overlay)
}

/// An `O_PATH` fd of the running binary through a detached, read-only overlayfs whose lower
/// layers are the binary's directory (on top, so that a same-named entry of `dummy` cannot
/// mask it) and `dummy` (overlayfs needs two lower layers to run without an upper one).
///
/// # Errors
/// No overlayfs can be made (no CAP_SYS_ADMIN, no overlay support, overlapping layers, the
/// binary deleted), or the binary is not found through it.
fn overlay(dummy: &Path, running: &OwnedFd) -> std::result::Result<OwnedFd, String> {
    // Errors are plain strings: a missing state root (the first `create`) or an overlapping
    // layer is an expected failure here, and must cost no backtrace capture.
    let err = |what: &str, e: &dyn std::fmt::Display| format!("{what}: {e}");
    let exe =
        std::fs::read_link("/proc/self/exe").map_err(|e| err("readlink /proc/self/exe", &e))?;
    let (Some(dir), Some(name)) = (exe.parent(), exe.file_name()) else {
        return Err(format!("/proc/self/exe is {}", exe.display()));
    };
    let dummy = std::path::absolute(dummy).map_err(|e| err("state root", &e))?;
    let fs =
        fsopen("overlay", FsOpenFlags::FSOPEN_CLOEXEC).map_err(|e| err("fsopen(overlay)", &e))?;
    let lower = format!("{}:{}", escape_layer(dir), escape_layer(&dummy));
    fsconfig_set_string(&fs, "lowerdir", lower.as_str())
        .map_err(|e| err(&format!("overlayfs lowerdir={lower}"), &e))?;
    // xino would only add kernel log lines when the layers are on different filesystems.
    let _ = fsconfig_set_string(&fs, "xino", "off");
    fsconfig_create(&fs).map_err(|e| err("create the overlayfs", &e))?;
    let attrs = MountAttrFlags::MOUNT_ATTR_RDONLY
        | MountAttrFlags::MOUNT_ATTR_NOSUID
        | MountAttrFlags::MOUNT_ATTR_NODEV;
    let mnt = fsmount(&fs, FsMountFlags::FSMOUNT_CLOEXEC, attrs)
        .map_err(|e| err("fsmount(overlay)", &e))?;
    let file = rustix::fs::openat(
        &mnt,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| {
        err(
            &format!("open {} through the overlayfs", name.to_string_lossy()),
            &e,
        )
    })?;
    // Not the same inode numbers through overlayfs, but the same size and times: a file
    // bind-mounted over the binary's path (the layer sees what is under the mount) is not it.
    let a = rustix::fs::fstat(running).map_err(|e| err("fstat /proc/self/exe", &e))?;
    let b = rustix::fs::fstat(&file).map_err(|e| err("fstat the overlayfs copy", &e))?;
    let same = |s: &rustix::fs::Stat| (s.st_size, s.st_mtime, s.st_mtime_nsec);
    if !rustix::fs::FileType::from_raw_mode(b.st_mode).is_file() || same(&a) != same(&b) {
        return Err(format!(
            "{} through the overlayfs is not the running binary (a mount over it?)",
            exe.display()
        ));
    }
    Ok(file)
}

/// A path as one overlayfs layer: `\` and `:` escaped with `\`.
fn escape_layer(path: &Path) -> String {
    path.to_string_lossy()
        .replace('\\', "\\\\")
        .replace(':', "\\:")
}

/// A sealed memfd copy of `exe`, reopened read-only (an executable must have no writer:
/// `execve` fails with `ETXTBSY` while the memfd's own read-write fd is open).
///
/// # Errors
/// memfd_create, the copy (short or failed), the seals, or the reopen fail.
fn memfd_copy(exe: &OwnedFd) -> Result<OwnedFd> {
    use rustix::fs::MemfdFlags;
    let flags = MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING;
    // MFD_EXEC (Linux 6.3) where vm.memfd_noexec asks for it; older kernels refuse the flag.
    let memfd = rustix::fs::memfd_create("pier", flags | MemfdFlags::EXEC)
        .or_else(|_| rustix::fs::memfd_create("pier", flags))
        .context("memfd_create")?;
    let size = rustix::fs::fstat(exe)
        .context("fstat /proc/self/exe")?
        .st_size as u64;
    let mut offset = 0u64;
    while offset < size {
        let left = (size - offset) as usize;
        let n = rustix::fs::sendfile(&memfd, exe, Some(&mut offset), left)
            .context("copy pier's binary into a memfd")?;
        if n == 0 {
            bail!("pier's binary shrank while it was copied ({offset} of {size} bytes)");
        }
    }
    rustix::fs::fchmod(&memfd, Mode::from_raw_mode(0o511)).context("fchmod the memfd")?;
    // F_SEAL_EXEC (Linux 6.3): the mode cannot change either.
    let _ = rustix::fs::fcntl_add_seals(&memfd, SealFlags::EXEC);
    rustix::fs::fcntl_add_seals(&memfd, base_seals()).context("seal the memfd")?;
    let path = format!("/proc/self/fd/{}", memfd.as_raw_fd());
    rustix::fs::open(
        path.as_str(),
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("reopen the sealed memfd read-only")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_are_escaped() {
        assert_eq!(escape_layer(Path::new("/a:b\\c")), "/a\\:b\\\\c");
    }
}
