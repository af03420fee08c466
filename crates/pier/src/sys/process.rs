//! Child processes: the one place pier forks.
//!
//! Two safe primitives stand on two private `unsafe fn`s:
//! - [`clone_child`] (and [`fork_helper`], its plain form): `clone3(2)` of a child that runs a
//!   closure and `_exit`s. Its preconditions are discharged here: it refuses to fork unless
//!   this process is single-threaded (so the child may allocate and take locks), the child
//!   closes every fd it was not told to keep before the closure runs, and the child never
//!   returns or unwinds into the caller's frames (so no destructor of the parent's values runs
//!   twice).
//! - [`fork_exec`]: a child that only places stdio, changes directory and `execve`s, with no
//!   allocation: safe from a multi-threaded process too (the test binaries run hooks).
//!
//! The one rule a closure must follow that types do not carry: it may use only the fds it was
//! told to keep (the others are closed under their owners, which the child never drops).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use super::CStringArray;

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

/// A child this process forked: its pid, and a pidfd that refers to it (no pid reuse).
pub struct Child {
    pub pid: i32,
    pub pidfd: OwnedFd,
}

/// What a raw fork returned in the calling process.
enum Forked {
    Parent(Child),
    Child,
}

/// Fork a child with `clone3(2)` (`CLONE_PIDFD`, `exit_signal = SIGCHLD`, the namespace flags
/// `ns_flags` (`CLONE_NEW*`, and `CLONE_PARENT` for a sibling of the caller, which then exits
/// with the caller's own exit signal), and `CLONE_INTO_CGROUP` when `cgroup` is a cgroup v2 directory
/// fd). In the child: every fd but those in `keep` is closed, `body` runs, and the child
/// `_exit`s with its return code (1 if it panics); this returns only in the parent.
///
/// `body` may use only the fds in `keep` (the others are closed under their owners). Values
/// `body` owns are dropped in the child and, when the closure is not called, in the parent:
/// move into it what only the child keeps, borrow what the parent keeps.
///
/// # Errors
/// `EDEADLK` if this process has more than one thread (a lock held by another thread would
/// stay held forever in the child); otherwise the `clone3` errno: `EINVAL` for a bad flag
/// combination, `EPERM` without the privilege a namespace needs, `ENOSPC`/`EUSERS` at
/// namespace limits, `EBUSY`/`EOPNOTSUPP` for a `cgroup` fd that cannot take processes.
pub fn clone_child(
    ns_flags: libc::c_int,
    cgroup: Option<BorrowedFd<'_>>,
    keep: &[RawFd],
    body: impl FnOnce() -> i32,
) -> io::Result<Child> {
    if !single_threaded()? {
        return Err(io::Error::from_raw_os_error(libc::EDEADLK));
    }
    // SAFETY: checked just above that no other thread exists; the child branch below never
    // returns from this function.
    match unsafe { clone3(ns_flags, cgroup) }? {
        Forked::Parent(child) => Ok(child),
        Forked::Child => {
            close_all_except(keep);
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(body)).unwrap_or(1);
            super::exit_immediately(code)
        }
    }
}

/// A helper process: [`clone_child`] without namespaces or cgroup (the systemd scope holder,
/// the detached notify relay).
///
/// # Errors
/// As [`clone_child`].
pub fn fork_helper(keep: &[RawFd], body: impl FnOnce() -> i32) -> io::Result<Child> {
    clone_child(0, None, keep, body)
}

/// Whether this process has one thread (`num_threads`, field 20 of `proc_pid_stat(5)`).
fn single_threaded() -> io::Result<bool> {
    let stat = std::fs::read_to_string("/proc/self/stat")?;
    // Field 2 (comm) may hold spaces and parentheses: count from the last ')'.
    let threads = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().nth(17))
        .and_then(|n| n.parse::<u64>().ok())
        .ok_or_else(|| io::Error::other("unreadable /proc/self/stat"))?;
    Ok(threads == 1)
}

/// `clone3(2)` (see [`clone_child`] for the flags).
///
/// # Safety
/// Like `fork(2)`, the child continues from this call with a copy of the address space: the
/// caller must be single-threaded, or the child must only make async-signal-safe calls (no
/// allocation, no lock). The child must never return into frames whose values the parent
/// also drops (it ends in `execve` or `_exit`).
unsafe fn clone3(ns_flags: libc::c_int, cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut pidfd: RawFd = -1;
    // With CLONE_PARENT the child signals the caller's parent with the caller's own exit
    // signal; clone3 refuses one given (EINVAL).
    let exit_signal = if ns_flags & libc::CLONE_PARENT != 0 {
        0
    } else {
        libc::SIGCHLD as u64
    };
    let mut args = CloneArgs {
        flags: CLONE_PIDFD | (ns_flags as u32 as u64),
        pidfd: std::ptr::addr_of_mut!(pidfd) as u64,
        exit_signal,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid, fully initialised clone_args of the size passed; no stack is
    // given, so the child runs on a copy of the caller's stack like fork(2). The threading
    // and no-return rules are this function's own preconditions.
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
            Ok(Forked::Parent(Child {
                pid: pid as i32,
                pidfd,
            }))
        }
    }
}

/// [`clone3`] without namespaces, or, where a seccomp profile refuses clone3 (`ENOSYS` or
/// `EPERM`, as Docker's default profile does), `fork(2)` and then `pidfd_open(2)` on the child
/// (race-free: an unreaped child's pid cannot be reused).
///
/// # Safety
/// As [`clone3`].
unsafe fn fork_with_pidfd() -> io::Result<Forked> {
    // SAFETY: the caller upholds clone3's preconditions, which are this function's.
    match unsafe { clone3(0, None) } {
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOSYS | libc::EPERM)) => {}
        other => return other,
    }
    // SAFETY: as for clone3 above (the same preconditions, upheld by the caller).
    let pid = unsafe { libc::fork() };
    match pid {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => {
            let raw = rustix::process::Pid::from_raw(pid).expect("fork returned a positive pid");
            match rustix::process::pidfd_open(raw, rustix::process::PidfdFlags::empty()) {
                Ok(pidfd) => Ok(Forked::Parent(Child { pid, pidfd })),
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

/// What [`fork_exec`] runs: everything allocated before the fork.
pub struct ExecImage {
    pub path: std::ffi::CString,
    pub argv: CStringArray,
    pub envp: CStringArray,
    /// The working directory, if not the caller's.
    pub cwd: Option<std::ffi::CString>,
}

/// Fork a child that makes `stdio` its fds 0, 1 and 2, changes to `image.cwd`, marks every
/// other fd close-on-exec, resets signal dispositions and the mask, and `execve`s `image`. If
/// a step fails, the child writes its errno (4 native-endian bytes) to `exec_error` and
/// `_exit`s 127; `exec_error` should be close-on-exec, so EOF on its other end means the
/// `execve` worked. The child allocates nothing: callable from a multi-threaded process.
///
/// `stdio` must not be fds 0 to 2 themselves (duplicate them above 2 first), so that placing
/// one cannot overwrite another.
///
/// # Errors
/// The errno of clone3 or fork, or of pidfd_open (the child is then killed and reaped).
pub fn fork_exec(
    image: &ExecImage,
    stdio: [BorrowedFd<'_>; 3],
    exec_error: BorrowedFd<'_>,
) -> io::Result<Child> {
    // SAFETY: the child branch runs only `exec_child`, which makes async-signal-safe calls on
    // memory prepared before the fork, and ends in execve or _exit.
    match unsafe { fork_with_pidfd() }? {
        Forked::Parent(child) => Ok(child),
        Forked::Child => exec_child(image, stdio, exec_error),
    }
}

/// The error a [`fork_exec`] child wrote to `exec_error` before `_exit`, read from the
/// pipe's other end once the parent has closed its copy of the write end; `None` when EOF (or
/// any read error) comes first: `execve` worked and closed the pipe.
pub fn exec_error(read_end: OwnedFd) -> Option<io::Error> {
    use std::io::Read;
    let mut errno = [0u8; 4];
    std::fs::File::from(read_end).read_exact(&mut errno).ok()?;
    Some(io::Error::from_raw_os_error(i32::from_ne_bytes(errno)))
}

/// The child of [`fork_exec`].
fn exec_child(image: &ExecImage, stdio: [BorrowedFd<'_>; 3], exec_error: BorrowedFd<'_>) -> ! {
    let fail = |errno: i32| -> ! {
        let _ = rustix::io::write(exec_error, &errno.to_ne_bytes());
        super::exit_immediately(127)
    };
    let errno_of = |e: io::Error| {
        e.raw_os_error()
            .unwrap_or(rustix::io::Errno::IO.raw_os_error())
    };
    for (fd, target) in stdio.into_iter().zip(0..) {
        if let Err(e) = dup_onto_stdio(fd, target) {
            fail(errno_of(e));
        }
    }
    if let Some(cwd) = &image.cwd {
        if let Err(e) = rustix::process::chdir(cwd.as_c_str()) {
            fail(e.raw_os_error());
        }
    }
    if let Err(e) = super::close_range_cloexec(3) {
        fail(errno_of(e));
    }
    super::reset_signal_dispositions();
    if let Err(e) = super::sigprocmask_set(&super::SigSet::empty()) {
        fail(errno_of(e));
    }
    let e = super::execve_arrays(&image.path, &image.argv, &image.envp);
    fail(errno_of(e))
}

/// SIGKILL the child `pidfd` refers to and reap it (idempotent; errors ignored: it is gone).
pub fn kill_and_reap(pidfd: BorrowedFd<'_>) {
    let _ = rustix::process::pidfd_send_signal(pidfd, rustix::process::Signal::KILL);
    let _ = rustix::process::waitid(
        rustix::process::WaitId::PidFd(pidfd),
        rustix::process::WaitIdOptions::EXITED,
    );
}

/// `dup3(old, target, 0)` for `target` in 0..=2: make a standard stream a copy of `old`
/// without `O_CLOEXEC`, so it crosses `execve` (a pty, a pipe, /dev/null). Whatever was at
/// `target` is closed: the standard streams are never owned by a value in pier's memory
/// (`std` treats them as borrowed globals).
///
/// # Errors
/// `EINVAL` for a `target` above 2; the `dup3` errno.
pub fn dup_onto_stdio(old: BorrowedFd<'_>, target: RawFd) -> io::Result<()> {
    if !(0..=2).contains(&target) {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    // SAFETY: dup3 only manipulates the fd table; `old` is a valid open fd, and `target` is a
    // standard stream, which no OwnedFd in this process owns.
    if unsafe { libc::dup3(old.as_raw_fd(), target, 0) } == -1 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// `close_range(2)` over every fd not in `keep`. Only for the child of [`clone_child`], which
/// never drops the values owning the closed fds (it `_exit`s).
fn close_all_except(keep: &[RawFd]) {
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
            // SAFETY: close_range only closes fds; the owners of the closed ones are never
            // dropped or used in this child (clone_child's contract).
            unsafe { libc::syscall(libc::SYS_close_range, first, fd - 1, 0u32) };
        }
        first = fd.saturating_add(1);
    }
}
