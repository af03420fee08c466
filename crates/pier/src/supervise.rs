//! The loop of a pier process that waits on its container: every signal pier receives goes
//! to the init (through its pidfd), the notify listener is pumped, and the wait ends when the
//! init exits, or at `READY=1`, or at a deadline, whichever the caller asked for.

use std::os::fd::BorrowedFd;
use std::time::Instant;

use anyhow::{Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_send_signal, Signal};

use crate::notify::Session;
use crate::sys;

/// When to stop waiting.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// The init exits.
    Exit,
    /// A forwarded `READY=1`, the init's exit, or the deadline (if any).
    Ready(Option<Instant>),
}

/// Why the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Ready,
    Exited,
    TimedOut,
}

/// Wait as asked. `signals` is a signalfd for the signals pier has blocked.
pub fn wait(init: BorrowedFd<'_>, signals: BorrowedFd<'_>, mut session: Option<&mut Session>, until: Until) -> Result<Ended> {
    loop {
        let timeout = match until {
            Until::Ready(Some(deadline)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Ended::TimedOut);
                }
                Some(Timespec { tv_sec: left.as_secs() as i64, tv_nsec: left.subsec_nanos() as i64 })
            }
            _ => None,
        };
        let (init_exited, notify_readable) = {
            let mut fds = vec![PollFd::new(&signals, PollFlags::IN), PollFd::new(&init, PollFlags::IN)];
            if let Some(s) = session.as_deref() {
                fds.push(PollFd::from_borrowed_fd(s.fd(), PollFlags::IN));
            }
            match poll(&mut fds, timeout.as_ref()) {
                Err(rustix::io::Errno::INTR) => continue,
                other => other.context("poll")?,
            };
            (!fds[1].revents().is_empty(), fds.get(2).is_some_and(|f| !f.revents().is_empty()))
        };
        forward_signals(init, signals)?;
        if notify_readable || init_exited {
            if let Some(s) = session.as_deref_mut() {
                if s.pump() && matches!(until, Until::Ready(_)) {
                    return Ok(Ended::Ready);
                }
            }
        }
        if init_exited {
            return Ok(Ended::Exited);
        }
    }
}

/// Read every pending signal and send it on to the init (SIGCHLD is pier's own business).
fn forward_signals(init: BorrowedFd<'_>, signals: BorrowedFd<'_>) -> Result<()> {
    while let Some(signo) = sys::read_signalfd(signals)? {
        if signo == libc::SIGCHLD {
            continue;
        }
        if let Some(sig) = Signal::from_named_raw(signo) {
            let _ = pidfd_send_signal(init, sig);
        }
    }
    Ok(())
}

/// Block every signal and return a signalfd for them, with the mask to restore.
pub fn block_signals() -> Result<(std::os::fd::OwnedFd, sys::SigSet)> {
    let old = sys::sigprocmask_set(&sys::SigSet::full()).context("block signals")?;
    let fd = sys::signalfd(&sys::SigSet::full()).context("signalfd")?;
    Ok((fd, old))
}
