//! Every `unsafe` in pier: the few system calls that rustix does not expose.
//!
//! Each function is named after its system call and documents it against the man page, in
//! rustix's style. Everything else in the crate goes through rustix's safe API.
#![allow(unsafe_code)]

pub mod bpf;

use std::ffi::{CStr, CString};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// Namespace and process flags for [`clone3`], as in `<linux/sched.h>`.
pub use libc::{
    CLONE_NEWCGROUP, CLONE_NEWIPC, CLONE_NEWNET, CLONE_NEWNS, CLONE_NEWPID, CLONE_NEWTIME,
    CLONE_NEWUSER, CLONE_NEWUTS,
};

/// `CLONE_PIDFD`: return a pidfd for the child (Linux 5.2).
const CLONE_PIDFD: u64 = 0x1000;
/// `CLONE_INTO_CGROUP`: start the child in the cgroup v2 directory `cgroup` (Linux 5.7).
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of `clone3(2)`, version 2 (with `cgroup`).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// What [`clone3`] returned in the calling process.
pub enum Forked {
    /// In the parent: the child's pid and a pidfd that refers to it.
    Parent { pid: i32, pidfd: OwnedFd },
    /// In the child: a copy of the caller's (single-threaded) address space.
    Child,
}

/// `clone3(2)` with `CLONE_PIDFD`, `exit_signal = SIGCHLD`, the given namespace flags
/// (`CLONE_NEW*`), and `CLONE_INTO_CGROUP` when `cgroup` is a cgroup v2 directory fd.
///
/// Like `fork(2)`, the child continues from this call with a copy of the address space; the
/// caller must be single-threaded (pier never starts threads), so no lock can be held by a
/// thread that does not exist in the child.
///
/// # Errors
/// The `clone3` errno: `EINVAL` for a bad flag combination, `EPERM` without the privilege a
/// namespace needs, `ENOSPC`/`EUSERS` at namespace limits, `EBUSY`/`EOPNOTSUPP` for a
/// `cgroup` fd that cannot take processes.
pub fn clone3(ns_flags: libc::c_int, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    let mut args = CloneArgs {
        flags: CLONE_PIDFD | (ns_flags as u32 as u64),
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size passed; no stack is
    // given, so the child runs on a copy of the caller's stack like fork(2). pier is
    // single-threaded here, so the child inherits no lock held by another thread.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            std::ptr::addr_of_mut!(args),
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match ret {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => {
            // SAFETY: on success with CLONE_PIDFD the kernel stored a new, owned pidfd.
            let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd) };
            Ok(Forked::Parent {
                pid: pid as i32,
                pidfd,
            })
        }
    }
}

/// A child for `execve`: [`clone3`] without namespaces, or, where a seccomp profile refuses
/// clone3 (`ENOSYS` or `EPERM`, as Docker's default profile does), `fork(2)` and then
/// `pidfd_open(2)` on the child (race-free: an unreaped child's pid cannot be reused).
///
/// # Errors
/// The errno of clone3 (other than those two), fork, or pidfd_open (the child is then killed
/// and reaped).
pub fn fork_with_pidfd() -> io::Result<Forked> {
    match clone3(0, None) {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {}
        other => return other,
    }
    // SAFETY: pier is single-threaded, so the child inherits no lock held by another thread;
    // the child only execs or _exits.
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => {
            let raw = rustix::process::Pid::from_raw(pid).expect("fork returned a positive pid");
            match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) {
                Ok(pidfd) => Ok(Forked::Parent { pid, pidfd }),
                Err(e) => {
                    let _ = rustix::process::kill_process(raw, rustix::process::Signal::KILL);
                    let _ =
                        rustix::process::waitpid(Some(raw), rustix::process::WaitOptions::empty());
                    Err(e.into())
                }
            }
        }
    }
}

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

/// `dup3(old, new, 0)`: make fd number `new` a copy of `old` without `O_CLOEXEC`, so it
/// survives `execve` (LISTEN_FDS and `--preserve-fds` placement). Any fd at `new` is closed.
pub fn dup3_inheritable(old: BorrowedFd<'_>, new: RawFd) -> io::Result<()> {
    // SAFETY: dup3 only manipulates the fd table; `old` is a valid open fd. Replacing `new`
    // is intended: the caller owns the layout of fds 0..=new in this process.
    if unsafe { libc::dup3(old.as_raw_fd(), new, 0) } == -1 {
        return Err(io::Error::last_os_error());
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
/// dispositions whatever pier's parent set (e.g. SIGPIPE ignored by Rust's runtime).
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
/// (used by the child of [`clone3`], which must not unwind into the parent's code paths).
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit never returns and has no preconditions.
    unsafe { libc::_exit(code) }
}

/// The raw number of an fd we do not own (stdio), for [`clear_cloexec`] and friends.
pub fn raw(fd: BorrowedFd<'_>) -> RawFd {
    fd.as_raw_fd()
}

/// `close(2)` an fd that a value in this process's memory owns, without running its owner's
/// destructor. Only for the child of [`clone3`]: the owner's copy lives on in the parent,
/// which closes its own fd; the child must not keep the open file (a lock, a directory).
pub fn close_inherited(fd: BorrowedFd<'_>) {
    // SAFETY: the child never uses the owning value again (it execs or _exits), so no one
    // reads the closed fd number afterwards.
    unsafe { libc::close(fd.as_raw_fd()) };
}

/// `close(2)` of an fd number that no value in this process's memory will use again (the
/// child of [`clone3`] dropping a copied fd it must not keep: an owner's copy lives on in
/// the parent). Errors (`EBADF`) are ignored.
pub fn close_raw(fd: RawFd) {
    // SAFETY: only closes an fd; see the function's contract on owners.
    unsafe { libc::close(fd) };
}

/// Whether fd number `fd` is open in this process (`fcntl(fd, F_GETFD)` does not fail with
/// `EBADF`), for checking inherited fds such as `--preserve-fds`.
pub fn fd_is_open(fd: RawFd) -> bool {
    // SAFETY: F_GETFD reads only the fd's flags; a closed fd yields EBADF, no UB.
    unsafe { libc::fcntl(fd, libc::F_GETFD) != -1 }
}

/// `close_range(2)` over every fd not in `keep`: the explicit fd list of a detached helper
/// process. Values in memory that own the closed fds must never be dropped afterwards (the
/// caller only `_exit`s).
pub fn close_all_except(keep: &[RawFd]) {
    let mut keep: Vec<u32> = keep
        .iter()
        .filter(|fd| **fd >= 0)
        .map(|fd| *fd as u32)
        .collect();
    keep.sort_unstable();
    keep.dedup();
    let mut first = 0u32;
    for fd in keep.into_iter().chain(std::iter::once(u32::MAX)) {
        if fd > first {
            // SAFETY: close_range only closes fds; see the function's contract on owners.
            unsafe { libc::syscall(libc::SYS_close_range, first, fd - 1, 0u32) };
        }
        first = fd.saturating_add(1);
    }
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
