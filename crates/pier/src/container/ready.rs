//! The wait for READY=1 that `start`/`run -d` ([`Container::wait_ready`]) and
//! `exec -d --notify-socket own` ([`ExecProcess::wait_ready`]) share: forward signals and
//! relay until the process's READY=1 has reached the service manager (a barrier behind it
//! completed), then hand the relay to a detached process; pier's exit status says how it
//! ended (docs/notify.md, "start and run -d").
//!
//! [`Container::wait_ready`]: super::Container::wait_ready
//! [`ExecProcess::wait_ready`]: super::exec::ExecProcess::wait_ready

use std::os::fd::BorrowedFd;
use std::time::Instant;

use anyhow::Result;

use crate::notify::{Session, WaitMode};
use crate::supervise::{self, BlockedSignals, Ended, Until};

/// The process a READY=1 is awaited from: the container's init or an exec'd process.
pub(super) trait Awaited {
    /// How the log names it: `container ID`, `exec'd process PID`.
    fn name(&self) -> String;
    /// Its pidfd.
    ///
    /// # Errors
    /// The process is gone (a container's init that cannot be opened).
    fn pidfd(&self) -> Result<BorrowedFd<'_>>;
    /// Its exit status once it has exited (128+N for signal N), `None` when unknown. `reap`:
    /// collect it when this process is its parent; otherwise it is left unreaped (`WNOWAIT`)
    /// for whoever reaps it next.
    fn exit_status(&self, reap: bool) -> Option<u8>;
}

/// Wait as `mode` says for `process`'s READY=1 through `session`; pier's exit status:
/// - READY=1 acknowledged with the process alive: the relay goes on detached; 0.
/// - the process gone before (or when) its READY=1 was acknowledged: its status, the
///   process left unreaped. The READY named it `MAINPID=`, and systemd refuses a main pid
///   that is a zombie when it reads the datagram: taken, the manager reaps it (pier's exit
///   then is not the main process's); refused, pier still is the main process.
/// - exited before READY=1: its status, reaped (0 stays 0: systemd judges it as the same
///   service uncontained, `Result=protocol`); 1 when unknown.
/// - the deadline passed: 1 if a READY=1 was sent but not acknowledged, else 0; the relay
///   goes on detached.
///
/// Without a session (pier does not relay) or with [`WaitMode::NoWait`] this returns 0 at
/// once (detaching the relay).
///
/// # Errors
/// The wait loop or the detached relay's fork fails.
pub(super) fn wait_ready(
    process: &impl Awaited,
    session: Option<Session>,
    mode: WaitMode,
    signals: &BlockedSignals,
) -> Result<u8> {
    let Some(mut session) = session else {
        return Ok(0);
    };
    let pidfd = process.pidfd()?;
    let until = match mode {
        WaitMode::NoWait => return session.detach(pidfd).map(|_| 0),
        WaitMode::Ready => Until::Ready(None),
        WaitMode::AtMost(d) => Until::Ready(Some(Instant::now() + d)),
    };
    let ended = supervise::wait(pidfd, signals.fd(), Some(&mut session), None, until)?;
    match ended {
        Ended::Ready if !supervise::has_exited(pidfd) => session.detach(pidfd).map(|_| 0),
        Ended::Ready => {
            session.finish();
            Ok(exited_after_ready(process))
        }
        Ended::Exited if session.ready_forwarded() => {
            session.finish();
            Ok(exited_after_ready(process))
        }
        Ended::Exited => {
            session.finish();
            let code = process.exit_status(true);
            let shown = code.map_or("unknown".to_string(), |c| c.to_string());
            tracing::error!(
                "{} exited before READY=1 (exit status {shown})",
                process.name()
            );
            Ok(code.unwrap_or(1))
        }
        Ended::TimedOut => {
            let code = timed_out(process, &session);
            session.detach(pidfd).map(|_| code)
        }
    }
}

/// The process exited right after its READY=1 was forwarded: its status, left unreaped.
fn exited_after_ready(process: &impl Awaited) -> u8 {
    let code = process.exit_status(false);
    match code {
        Some(code) => tracing::debug!(
            "{} exited right after READY=1 (exit status {code})",
            process.name()
        ),
        // Reaped already by its parent (a manager that reaps at once, `create` having been
        // another process): pier's status stands in for it, if the manager refused it as
        // the main pid.
        None => tracing::warn!(
            "{} exited right after READY=1 and was reaped by another process: its exit \
             status is unknown, pier exits 1",
            process.name()
        ),
    }
    code.unwrap_or(1)
}

/// Log why the wait stopped at its deadline; pier's status: 1 for a READY=1 the manager has
/// not processed (it is not reading its notify socket), 0 for no READY=1 at all.
fn timed_out(process: &impl Awaited, session: &Session) -> u8 {
    let name = process.name();
    if session.ready_unacknowledged() {
        tracing::error!(
            "{name}: its READY=1 did not reach the service manager in time (the manager is \
             not reading its notify socket); relaying goes on in the background"
        );
        1
    } else {
        tracing::warn!("{name} sent no READY=1 in time; relaying goes on in the background");
        0
    }
}
