//! The process entry point of the `pier` binary: a C `main` instead of Rust's runtime
//! start-up (`src/main.rs` is `#![no_main]` and includes this file as its module `entry`;
//! it is not part of the library, whose test binaries have their own `main`).
//!
//! Rust's start-up (`std::rt::lang_start`) costs every pier process ~14 system calls and
//! ~50 k instructions it does not need: the stack-overflow handler (`sigaltstack`, a guard
//! page, and glibc's `pthread_getattr_np` reading `/proc/self/maps` with `sscanf`),
//! `sched_getaffinity`, naming the main thread. [`main`] keeps the two steps of it whose
//! effects pier relies on, in std's order, and std's exit path:
//! 1. fds 0, 1 and 2 are open: any that is closed is opened on `/dev/null` (`O_RDWR`), so
//!    that no file pier opens later becomes its stdin, stdout or stderr (std's
//!    `sanitize_standard_fds`; the process aborts if `/dev/null` cannot be opened);
//! 2. `SIGPIPE` is ignored (std's default `sigpipe`): a write to a closed pipe or socket
//!    fails with `EPIPE` instead of killing pier. The container's init resets it before
//!    `execve` (`sys::reset_signals_in`), and `std::process::Command` children get the
//!    default back, as under std's start-up;
//! 3. a panic that unwinds out of pier's `main` (debug builds; release builds abort) ends the
//!    process with status 101, as std's start-up does;
//! 4. the exit goes through `std::process::exit`, which flushes Rust's stdout as std does
//!    after `main` returns.
//!
//! `std::env::args` needs no start-up on glibc: std records argc/argv from `.init_array`.
#![allow(unsafe_code)]

use std::ffi::{c_char, c_int};

/// The C entry point (`main(3)`'s signature; glibc's `__libc_start_main` calls it). Runs
/// `crate::pier_main` and exits with its status.
// SAFETY: the binary is `#![no_main]`, so std emits no `main` symbol of its own and this is
// the only one; the signature is the C one that the C start-up code calls.
#[unsafe(no_mangle)]
extern "C" fn main(_argc: c_int, _argv: *const *const c_char) -> c_int {
    open_closed_stdio();
    ignore_sigpipe();
    let status = std::panic::catch_unwind(crate::pier_main).map_or(101, i32::from);
    std::process::exit(status)
}

/// Step 1: `poll(2)` fds 0-2 with no events (`POLLNVAL` marks a closed one); where that
/// fails, `fcntl(F_GETFD)` each. A closed one is opened on `/dev/null`, lowest first, so the
/// new fd takes its number.
fn open_closed_stdio() {
    let mut fds = [0, 1, 2].map(|fd| libc::pollfd {
        fd,
        events: 0,
        revents: 0,
    });
    // SAFETY: `fds` is a valid array of 3 pollfd that poll may write `revents` into.
    let polled = unsafe { libc::poll(fds.as_mut_ptr(), 3, 0) } != -1;
    for pfd in fds {
        let closed = if polled {
            pfd.revents & libc::POLLNVAL != 0
        } else {
            // SAFETY: F_GETFD takes no argument and only reads the fd table.
            let flags = unsafe { libc::fcntl(pfd.fd, libc::F_GETFD) };
            flags == -1 && std::io::Error::last_os_error().raw_os_error() == Some(libc::EBADF)
        };
        if closed {
            // SAFETY: the path is a NUL-terminated literal; the fd returned is left open on
            // purpose, as the standard stream it replaces.
            let fd = unsafe { libc::open(c"/dev/null".as_ptr(), libc::O_RDWR) };
            if fd != pfd.fd {
                std::process::abort();
            }
        }
    }
}

/// Step 2: `signal(SIGPIPE, SIG_IGN)`.
fn ignore_sigpipe() {
    // SAFETY: setting a signal's disposition to SIG_IGN installs no handler code and the
    // process is still single-threaded.
    if unsafe { libc::signal(libc::SIGPIPE, libc::SIG_IGN) } == libc::SIG_ERR {
        std::process::abort();
    }
}
