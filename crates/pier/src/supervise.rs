//! The loop of a pier process that waits on its container: every signal pier receives goes
//! to the init (through its pidfd), the notify listener is pumped, and the wait ends when the
//! init exits, or at `READY=1`, or at a deadline, whichever the caller asked for.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::time::Instant;

use anyhow::{Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions};

use crate::notify::Session;
use crate::sys;
use crate::tty::Proxy;

/// When to stop waiting.
#[derive(Debug, Clone, Copy)]
pub enum Until {
    /// The init exits.
    Exit,
    /// A forwarded `READY=1` that the manager has processed (acknowledged by a barrier
    /// behind it, [`Session::await_ready_ack`]), the init's exit, or the deadline (if any).
    Ready(Option<Instant>),
}

/// Why the wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ended {
    Ready,
    Exited,
    TimedOut,
}

/// What is readable after one poll.
#[derive(Default)]
struct Ready {
    init_exited: bool,
    notify: bool,
    pty: bool,
    stdin: bool,
    /// The host's notify socket has room for the relay's backlog.
    host_writable: bool,
    /// The manager has processed the forwarded READY=1 (its barrier fd hung up).
    ready_ack: bool,
}

/// Wait as asked. `signals` is a signalfd for the signals pier has blocked; `tty` is a
/// foreground terminal to proxy (SIGWINCH then resizes the pty instead of being forwarded).
pub fn wait(
    init: BorrowedFd<'_>,
    signals: BorrowedFd<'_>,
    mut session: Option<&mut Session>,
    mut tty: Option<&mut Proxy>,
    until: Until,
) -> Result<Ended> {
    loop {
        let timeout = match until {
            Until::Ready(Some(deadline)) => {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Ok(Ended::TimedOut);
                }
                Some(Timespec {
                    tv_sec: left.as_secs() as i64,
                    tv_nsec: left.subsec_nanos() as i64,
                })
            }
            _ => None,
        };
        let Some(ready) = poll_once(init, signals, session.as_deref(), tty.as_deref(), timeout)?
        else {
            continue;
        };
        forward_signals(init, signals, tty.as_deref())?;
        if let Some(t) = tty.as_deref_mut() {
            if ready.stdin {
                t.copy_in();
            }
            if ready.pty {
                t.copy_out();
            }
        }
        if ready.host_writable {
            if let Some(s) = session.as_deref_mut() {
                s.flush();
            }
        }
        if ready.notify || ready.init_exited {
            if let Some(s) = session.as_deref_mut() {
                let waiting = matches!(until, Until::Ready(_)) && !s.ready_unacknowledged();
                if s.pump() && waiting && !s.await_ready_ack() {
                    return Ok(Ended::Ready);
                }
            }
        }
        if ready.ready_ack {
            if let Some(s) = session.as_deref_mut() {
                s.ready_acknowledged();
            }
            return Ok(Ended::Ready);
        }
        if ready.init_exited {
            return Ok(Ended::Exited);
        }
    }
}

/// One poll over the signalfd, the init, and (if any) the notify socket, pty and stdin;
/// `None` when interrupted.
fn poll_once(
    init: BorrowedFd<'_>,
    signals: BorrowedFd<'_>,
    session: Option<&Session>,
    tty: Option<&Proxy>,
    timeout: Option<Timespec>,
) -> Result<Option<Ready>> {
    let mut fds = vec![
        PollFd::new(&signals, PollFlags::IN),
        PollFd::new(&init, PollFlags::IN),
    ];
    let notify_at = session.map(|s| {
        fds.push(PollFd::from_borrowed_fd(s.fd(), PollFlags::IN));
        fds.len() - 1
    });
    let pty_at = tty.map(|t| {
        fds.push(PollFd::from_borrowed_fd(t.master(), PollFlags::IN));
        fds.len() - 1
    });
    let stdin_at = tty.and_then(Proxy::stdin).map(|fd| {
        fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
        fds.len() - 1
    });
    // Datagrams waiting for a stalled host manager: forward them once it reads again.
    let backlog_at = session.and_then(Session::backlog_fd).map(|fd| {
        fds.push(PollFd::from_borrowed_fd(fd, PollFlags::OUT));
        fds.len() - 1
    });
    // A READY=1 waiting for the manager: its barrier's read end hangs up once processed.
    let ack_at = session.and_then(Session::ready_ack_fd).map(|fd| {
        fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
        fds.len() - 1
    });
    match poll(&mut fds, timeout.as_ref()) {
        Err(rustix::io::Errno::INTR) => return Ok(None),
        other => other.context("poll")?,
    };
    let hit = |at: Option<usize>| at.is_some_and(|i| !fds[i].revents().is_empty());
    Ok(Some(Ready {
        init_exited: hit(Some(1)),
        notify: hit(notify_at),
        pty: hit(pty_at),
        stdin: hit(stdin_at),
        host_writable: hit(backlog_at),
        ready_ack: hit(ack_at),
    }))
}

/// Read every pending signal and send it on to the init (SIGCHLD is pier's own business;
/// with a terminal, SIGWINCH resizes the pty, which signals the container's foreground).
fn forward_signals(
    init: BorrowedFd<'_>,
    signals: BorrowedFd<'_>,
    tty: Option<&Proxy>,
) -> Result<()> {
    while let Some(signo) = sys::read_signalfd(signals)? {
        if signo == libc::SIGCHLD {
            continue;
        }
        if let (libc::SIGWINCH, Some(t)) = (signo, tty) {
            t.resize();
            continue;
        }
        if let Some(sig) = Signal::from_named_raw(signo) {
            let _ = pidfd_send_signal(init, sig);
        }
    }
    Ok(())
}

/// Every signal blocked, readable from a signalfd; the old mask comes back on drop. A waiting
/// pier blocks them before it clones (so none is lost between the clone and its wait loop);
/// the init restores an empty mask before `execve`.
pub struct BlockedSignals {
    fd: OwnedFd,
    old: Option<sys::SigSet>,
}

impl BlockedSignals {
    /// Block every signal and open a signalfd for them.
    ///
    /// # Errors
    /// `sigprocmask(2)` or `signalfd(2)` fails (the mask is restored).
    pub fn block() -> Result<BlockedSignals> {
        let old = sys::sigprocmask_set(&sys::SigSet::full()).context("block signals")?;
        match sys::signalfd(&sys::SigSet::full()) {
            Ok(fd) => Ok(BlockedSignals { fd, old: Some(old) }),
            Err(e) => {
                let _ = sys::sigprocmask_set(&old);
                Err(e).context("signalfd")
            }
        }
    }

    /// The signalfd (every signal, non-blocking).
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

impl Drop for BlockedSignals {
    fn drop(&mut self) {
        if let Some(old) = self.old.take() {
            let _ = sys::sigprocmask_set(&old);
        }
    }
}

/// The one foreground supervisor (a foreground `run` and `exec`): forward every signal to the
/// process, relay sd_notify (`session`), proxy its terminal (`console`, the pty master) until
/// it exits; then reap it, drain the pty and the notify socket. Returns its exit code.
///
/// # Errors
/// The wait loop or `waitid(2)` fails.
pub fn foreground(
    process: BorrowedFd<'_>,
    signals: &BlockedSignals,
    mut session: Option<Session>,
    console: Option<OwnedFd>,
) -> Result<u8> {
    let mut tty = console.map(Proxy::new);
    wait(
        process,
        signals.fd(),
        session.as_mut(),
        tty.as_mut(),
        Until::Exit,
    )?;
    let code = reap(process)?;
    if let Some(t) = tty.as_mut() {
        t.drain();
    }
    drop(tty);
    if let Some(s) = session.as_mut() {
        s.finish();
    }
    Ok(code)
}

/// Reap a child of this process (`waitid(P_PIDFD)`) and turn its status into an exit code.
///
/// # Errors
/// `waitid(2)` fails (not our child, or already reaped).
pub fn reap(pidfd: BorrowedFd<'_>) -> Result<u8> {
    let status = waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED).context("waitid")?;
    Ok(exit_code(status))
}

/// Whether the process of `pidfd` has exited (a zombie counts), without waiting.
pub fn has_exited(pidfd: BorrowedFd<'_>) -> bool {
    let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
    let zero = Timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    matches!(poll(&mut fds, Some(&zero)), Ok(n) if n > 0)
}

/// The exit status of an exited process (as [`reap`]) without reaping it (`WNOWAIT`): its
/// parent, or the manager it is reparented to, still can.
///
/// # Errors
/// `waitid` fails (not a child of this process, or not exited).
pub fn exit_status_unreaped(pidfd: BorrowedFd<'_>) -> Result<u8> {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOWAIT;
    let status = waitid(WaitId::PidFd(pidfd), options).context("waitid")?;
    Ok(exit_code(status))
}

/// The shell convention: the exit code, or 128 + the signal that killed the process.
pub fn exit_code(status: Option<rustix::process::WaitIdStatus>) -> u8 {
    match status {
        Some(s) => match (s.exit_status(), s.terminating_signal()) {
            (Some(code), _) => code as u8,
            (_, Some(sig)) => (128 + sig) as u8,
            _ => 1,
        },
        None => 1,
    }
}
