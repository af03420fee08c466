//! `pier exec --detach --notify-socket own`: wait for the process's READY=1 as `run -d` waits
//! for the init's ([`crate::container::Container::wait_ready`]), then leave a detached relay.

use std::os::fd::AsFd;
use std::time::Instant;

use anyhow::Result;

use crate::notify::{Session, WaitMode};
use crate::spawn::Spawned;
use crate::supervise::{self, BlockedSignals, Ended, Until};

/// Wait as `mode` says (signals forwarded to the process meanwhile) until the process's
/// READY=1 has reached the manager, then hand the relay to a detached process that lives as
/// long as the exec'd process; returns pier's exit status. With the default identity the
/// READY datagram names the process as the unit's `MAINPID=` (and `MAINPIDFD=1` for systemd
/// 257+), so the unit follows it after pier exits.
///
/// A process that exits before READY=1 makes this return its status (0 stays 0: systemd
/// then judges it as the same service uncontained, `Result=protocol`). One that exits right
/// after its READY=1 was forwarded is left unreaped: it is the unit's main pid now, and its
/// status is for the manager, which reaps it once pier has exited; pier returns 0.
///
/// # Errors
/// The wait loop or the detached relay's fork fails.
pub fn wait_ready(
    spawned: &Spawned,
    mut session: Session,
    mode: WaitMode,
    signals: &BlockedSignals,
) -> Result<u8> {
    let process = spawned.pidfd.as_fd();
    let until = match mode {
        WaitMode::NoWait => return session.detach(process).map(|_| 0),
        WaitMode::Ready => Until::Ready(None),
        WaitMode::AtMost(d) => Until::Ready(Some(Instant::now() + d)),
    };
    match supervise::wait(process, signals.fd(), Some(&mut session), None, until)? {
        Ended::Ready => session.detach(process).map(|_| 0),
        Ended::TimedOut => {
            if session.ready_unacknowledged() {
                tracing::error!(
                    "exec'd process {}: its READY=1 did not reach the service manager in time; \
                     relaying goes on in the background",
                    spawned.pid
                );
            } else {
                tracing::warn!(
                    "exec'd process {} sent no READY=1 in time; relaying goes on in the \
                     background",
                    spawned.pid
                );
            }
            let code = u8::from(session.ready_unacknowledged());
            session.detach(process).map(|_| code)
        }
        Ended::Exited => {
            session.finish();
            if session.ready_forwarded() {
                return Ok(0);
            }
            let code = supervise::reap(process).unwrap_or(1);
            tracing::error!(
                "exec'd process {} exited before READY=1 (exit status {code})",
                spawned.pid
            );
            Ok(code)
        }
    }
}
