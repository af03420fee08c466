//! Every `unsafe` in pier: the few system calls that rustix does not expose.
//!
//! Each function is named after its system call and documents it against the man page, in
//! rustix's style. Everything else in the crate goes through rustix's safe API.
//!
//! The rule for `unsafe` (the crate root has `#![deny(unsafe_code)]`; only this module
//! allows it): every `unsafe` block has a `// SAFETY:` line, and no function exported from
//! here has a precondition its caller could break. An operation that has one (forking while
//! other threads hold locks, closing an fd a value still owns) is a private `unsafe fn`
//! behind a safe wrapper that discharges it: [`clone_child`] checks the process is
//! single-threaded and closes the fds not kept inside the child it never returns from,
//! [`fork_exec`] runs only allocation-free code in its child, [`dup_onto_stdio`] replaces
//! only the standard streams.
//!
//! One file here is not part of this module: `entry.rs`, the binary's C `main` (the binary
//! is `#![no_main]`), which `src/main.rs` includes by path so that the library and its test
//! binaries do not define `main`.
#![allow(unsafe_code)]

pub mod bpf;
mod process;

pub use process::{
    clone_child, dup_onto_stdio, exec_error, fork_exec, fork_helper, kill_and_reap, Child,
    ExecImage,
};

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// `execve(2)`: replace the process image. Only returns on failure.
pub fn execve(path: &CStr, argv: &[CString], envp: &[CString]) -> io::Error {
    execve_arrays(
        path,
        &CStringArray::new(argv.to_vec()),
        &CStringArray::new(envp.to_vec()),
    )
}

/// A NULL-terminated array of C strings for `execve(2)`, built before a fork so that the
/// child (of a possibly multi-threaded process: the test binaries) allocates nothing.
pub struct CStringArray {
    /// Owns the strings the pointers point into (moving the Vec keeps the heap buffers).
    _strings: Vec<CString>,
    pointers: Vec<*const libc::c_char>,
}

impl CStringArray {
    /// The array of `strings`, NULL-terminated.
    pub fn new(strings: Vec<CString>) -> CStringArray {
        let pointers = strings
            .iter()
            .map(|s| s.as_ptr())
            .chain(std::iter::once(std::ptr::null()))
            .collect();
        CStringArray {
            _strings: strings,
            pointers,
        }
    }
}

/// `execve(2)` with prepared arrays; allocates nothing. Only returns on failure.
pub fn execve_arrays(path: &CStr, argv: &CStringArray, envp: &CStringArray) -> io::Error {
    // SAFETY: `path` is NUL-terminated; both arrays hold pointers into CStrings they own,
    // which outlive the call, and end with a null pointer, as execve(2) requires.
    unsafe {
        libc::execve(
            path.as_ptr(),
            argv.pointers.as_ptr(),
            envp.pointers.as_ptr(),
        )
    };
    io::Error::last_os_error()
}

/// `execveat(fd, "", argv, envp, AT_EMPTY_PATH)` (Linux 3.19, `execveat(2)`): replace the
/// process image with the file `fd` refers to (an `O_PATH` fd will do), not with a path.
/// Allocates nothing. Only returns on failure.
pub fn execveat_empty_path(
    fd: BorrowedFd<'_>,
    argv: &CStringArray,
    envp: &CStringArray,
) -> io::Error {
    // SAFETY: the path is an empty NUL-terminated string; both arrays hold pointers into
    // CStrings they own, which outlive the call, and end with a null pointer, as execveat(2)
    // requires; `fd` is open for the duration of the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd.as_raw_fd(),
            c"".as_ptr(),
            argv.pointers.as_ptr(),
            envp.pointers.as_ptr(),
            libc::AT_EMPTY_PATH,
        )
    };
    io::Error::last_os_error()
}

/// `close_range(first, ~0U, CLOSE_RANGE_CLOEXEC)` (Linux 5.11): mark every fd from `first`
/// up close-on-exec, so that nothing not asked for crosses `execve`.
pub fn close_range_cloexec(first: u32) -> io::Result<()> {
    // SAFETY: close_range only changes fd flags; it touches no memory.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            u32::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `fcntl(fd, F_SETFD, FD_CLOEXEC)` on every fd from `first` up that the directory `fd_dir`
/// lists (an `O_PATH` fd of the host's `/proc/self/fd`, opened before the root switch so that
/// a `/proc` in the container cannot hide an fd): the fallback of [`close_range_cloexec`]
/// where that syscall fails (Linux < 5.11, or a seccomp profile that denies it, as the
/// runtime-tools default profile does), as runc's `CloseExecFrom` falls back.
///
/// Errors: opening or reading `fd_dir`; an fd closed meanwhile (`EBADF`) is skipped.
pub fn cloexec_listed_from(first: u32, fd_dir: BorrowedFd<'_>) -> io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let dir = rustix::fs::openat(
        fd_dir,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let mut fds = Vec::new();
    for entry in rustix::fs::Dir::new(dir)? {
        let entry = entry?;
        if let Some(fd) = entry
            .file_name()
            .to_str()
            .ok()
            .and_then(|n| n.parse::<u32>().ok())
        {
            fds.extend((fd >= first).then_some(fd));
        }
    }
    for fd in fds {
        // SAFETY: F_SETFD touches only the fd's flags; a closed fd yields EBADF, no UB.
        if unsafe { libc::fcntl(fd as RawFd, libc::F_SETFD, libc::FD_CLOEXEC) } == -1 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EBADF) {
                return Err(err);
            }
        }
    }
    Ok(())
}

/// `fcntl(fd, F_SETFD, 0)` on a raw fd number that this process inherited (stdio, preserved
/// fds): clear `FD_CLOEXEC` so it crosses `execve`.
pub fn clear_cloexec(fd: RawFd) -> io::Result<()> {
    // SAFETY: F_SETFD touches only the fd's flags; a closed fd yields EBADF, no UB.
    if unsafe { libc::fcntl(fd, libc::F_SETFD, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// A set of signals (`sigset_t`, `sigsetops(3)`).
pub struct SigSet(libc::sigset_t);

impl SigSet {
    /// Every signal.
    pub fn full() -> SigSet {
        // SAFETY: sigfillset initialises the zeroed sigset_t it is given.
        unsafe {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigfillset(&mut set);
            SigSet(set)
        }
    }

    /// No signal.
    pub fn empty() -> SigSet {
        // SAFETY: sigemptyset initialises the zeroed sigset_t it is given.
        unsafe {
            let mut set = std::mem::zeroed::<libc::sigset_t>();
            libc::sigemptyset(&mut set);
            SigSet(set)
        }
    }
}

/// `sigprocmask(SIG_SETMASK, set)`: replace the blocked-signal mask; returns the old mask.
pub fn sigprocmask_set(set: &SigSet) -> io::Result<SigSet> {
    let mut old = SigSet::empty();
    // SAFETY: both pointers are to valid sigset_t values owned by this frame.
    if unsafe { libc::sigprocmask(libc::SIG_SETMASK, &set.0, &mut old.0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(old)
}

/// `signalfd(-1, set, SFD_CLOEXEC|SFD_NONBLOCK)` (`signalfd(2)`): a readable fd for the
/// (blocked) signals in `set`. Read it with [`read_signalfd`].
pub fn signalfd(set: &SigSet) -> io::Result<OwnedFd> {
    // SAFETY: `set` is a valid sigset_t; a new fd is returned on success.
    let fd = unsafe { libc::signalfd(-1, &set.0, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK) };
    if fd == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: signalfd returned a new fd that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Read one `struct signalfd_siginfo` (128 bytes) from a signalfd; returns `ssi_signo`, or
/// `None` when no signal is pending.
pub fn read_signalfd(fd: BorrowedFd<'_>) -> io::Result<Option<i32>> {
    let mut info = [0u8; 128];
    match rustix::io::read(fd, &mut info) {
        Ok(128) => Ok(Some(
            u32::from_ne_bytes([info[0], info[1], info[2], info[3]]) as i32,
        )),
        Ok(_) => Ok(None),
        Err(rustix::io::Errno::AGAIN) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `signal(sig, SIG_DFL)` for every catchable signal: the container starts with default
/// dispositions whatever pier's parent set (e.g. SIGPIPE ignored by pier's own start-up, `entry.rs`).
pub fn reset_signal_dispositions() {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP {
            continue;
        }
        // SAFETY: installing SIG_DFL is always valid; errors (EINVAL) are ignored on purpose.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// `signal(sig, SIG_DFL)` for the signals of [`reset_signal_dispositions`] that are in `mask`
/// (bit `n - 1` for signal `n`, the layout of `SigIgn:` in `proc_pid_status(5)`): before
/// `execve(2)`, which resets caught signals itself, only the ignored ones need it.
pub fn reset_signals_in(mask: u64) {
    for sig in 1..libc::SIGRTMAX() {
        if sig == libc::SIGKILL || sig == libc::SIGSTOP || mask & (1u64 << (sig - 1)) == 0 {
            continue;
        }
        // SAFETY: installing SIG_DFL is always valid; errors (EINVAL) are ignored on purpose.
        unsafe { libc::signal(sig, libc::SIG_DFL) };
    }
}

/// `keyctl(KEYCTL_JOIN_SESSION_KEYRING, name)` (`keyctl_join_session_keyring(3)`): give the
/// container its own session keyring so it cannot see the host's keys.
pub fn join_session_keyring(name: &CStr) -> io::Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call.
    let ret =
        unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `_exit(2)`: end the process at once, without running destructors or atexit handlers
/// (the end of every child of [`clone_child`], which must not unwind into the parent's code
/// paths).
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// Whether fd number `fd` is open in this process (`fcntl(fd, F_GETFD)` does not fail with
/// `EBADF`), for checking inherited fds such as `--preserve-fds`.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads only the fd's flags; a closed fd yields EBADF, no UB.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// `unshare(CLONE_NEWCGROUP)` (`unshare(2)`, `cgroup_namespaces(7)`).
pub fn unshare_cgroup_namespace() -> io::Result<()> {
    // SAFETY: rustix marks unshare unsafe because CLONE_FILES/CLONE_FS can invalidate other
    // threads' assumptions; a new cgroup namespace changes only this process's view of
    // /proc/self/cgroup, and the init is single-threaded.
    unsafe { rustix::thread::unshare_unsafe(rustix::thread::UnshareFlags::NEWCGROUP) }?;
    Ok(())
}

/// `struct mount_attr` of `mount_setattr(2)`, first version (`MOUNT_ATTR_SIZE_VER0`, 32 bytes).
#[repr(C)]
struct MountAttr {
    attr_set: u64,
    attr_clr: u64,
    propagation: u64,
    userns_fd: u64,
}

/// `mount_setattr(fd, "", AT_EMPTY_PATH | AT_RECURSIVE, {set, clear})` (Linux 5.12): set and
/// clear `MOUNT_ATTR_*` bits on the mount whose root `fd` is, and on every mount below it.
///
/// # Errors
/// `EINVAL` for an unknown bit or an atime value without the whole atime field cleared,
/// `EPERM`, `ENOSYS` before Linux 5.12.
pub fn mount_setattr_recursive(fd: BorrowedFd<'_>, set: u64, clear: u64) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: set,
        attr_clr: clear,
        propagation: 0,
        userns_fd: 0,
    };
    mount_setattr(fd, libc::AT_RECURSIVE, &attr)
}

/// `MOUNT_ATTR_IDMAP` of `<linux/mount.h>`.
const MOUNT_ATTR_IDMAP: u64 = 0x0010_0000;

/// `mount_setattr(fd, "", AT_EMPTY_PATH [| AT_RECURSIVE], {MOUNT_ATTR_IDMAP, userns})`
/// (Linux 5.12, `mount_setattr(2)` "ID-mapped mounts"): make the detached mount tree `fd`
/// (from `open_tree(OPEN_TREE_CLONE)`) show file owners through the id maps of the user
/// namespace `userns`; only its top mount, or every mount of the tree with `recursive`.
///
/// # Errors
/// `EINVAL` for an attached mount or one already idmapped, `EPERM` without CAP_SYS_ADMIN
/// over the filesystem's user namespace, `EOPNOTSUPP`/`EINVAL` for a filesystem that does
/// not support idmapped mounts.
pub fn mount_setattr_idmap(
    fd: BorrowedFd<'_>,
    userns: BorrowedFd<'_>,
    recursive: bool,
) -> io::Result<()> {
    let attr = MountAttr {
        attr_set: MOUNT_ATTR_IDMAP,
        attr_clr: 0,
        propagation: 0,
        userns_fd: userns.as_raw_fd() as u64,
    };
    mount_setattr(fd, if recursive { libc::AT_RECURSIVE } else { 0 }, &attr)
}

fn mount_setattr(fd: BorrowedFd<'_>, flags: libc::c_int, attr: &MountAttr) -> io::Result<()> {
    // SAFETY: the path is a valid NUL-terminated string and `attr` a live, correctly sized
    // struct mount_attr that the kernel only reads; `fd` (and `userns_fd` when set) are open.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_mount_setattr,
            fd.as_raw_fd(),
            c"".as_ptr(),
            libc::AT_EMPTY_PATH | flags,
            attr as *const MountAttr,
            std::mem::size_of::<MountAttr>(),
        )
    };
    if ret == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Bring the network interface `name` up (`netdevice(7)`: `SIOCGIFFLAGS`, then
/// `SIOCSIFFLAGS` with `IFF_UP` added), through `socket`, an `AF_INET` datagram socket.
///
/// # Errors
/// `ENODEV` for no such interface, `EPERM` without CAP_NET_ADMIN in its network namespace.
pub fn set_link_up(socket: BorrowedFd<'_>, name: &CStr) -> io::Result<()> {
    let bytes = name.to_bytes_with_nul();
    if bytes.len() > libc::IFNAMSIZ {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut req: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in req.ifr_name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: SIOCGIFFLAGS reads ifr_name and writes ifr_flags of the live `req`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: SIOCGIFFLAGS filled the ifru_flags member of the union.
    unsafe { req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short };
    // SAFETY: SIOCSIFFLAGS only reads the live `req`.
    if unsafe { libc::ioctl(socket.as_raw_fd(), libc::SIOCSIFFLAGS, &req) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `personality(persona)` (`personality(2)`): set the execution domain and flags of this
/// process, which `execve(2)` keeps.
///
/// # Errors
/// `EINVAL` for a persona the kernel does not know.
pub fn set_personality(persona: u32) -> io::Result<()> {
    // SAFETY: personality only changes this process's execution domain; no memory is passed.
    if unsafe { libc::personality(libc::c_ulong::from(persona)) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
