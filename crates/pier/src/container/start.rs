//! [`Container::start`]: release a created container's init through the exec fifo, with the
//! notify session bound first; then wait for it as the verb asks ([`Container::wait_ready`]
//! for `start` and `run -d`, [`Container::wait_exit`] for a foreground `run`).
//!
//! The fifo is opened non-blocking and polled together with the init's pidfd, so an init that
//! died while waiting makes `start` fail at once instead of hanging.

use std::os::fd::{BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};

use super::Container;
use crate::error::ContainerError;
use crate::hooks::{self, HookState, Point};
use crate::notify::{self, Session, WaitMode};
use crate::state::{self, ContainerDir, Status, EXEC_FIFO};
use crate::supervise::{self, BlockedSignals, Ended, Until};

/// A released container: its sd_notify session (when pier relays) and how to wait for READY.
pub struct Started {
    session: Option<Session>,
    mode: WaitMode,
}

impl Container {
    /// Start a created container: bind the notify socket, release the init, drop the lock.
    /// `notify_wait` is `--notify-wait`; `detached` chooses the relay's identity (a foreground
    /// `run` is the unit's main process itself).
    ///
    /// # Errors
    /// The container is not `created` (runc's messages), the wait mode or a notify annotation
    /// is invalid, or the init died before it was released.
    pub fn start(&mut self, notify_wait: Option<&str>, detached: bool) -> Result<Started> {
        match self.status() {
            Status::Created => {}
            Status::Stopped => return Err(ContainerError::CannotStart("stopped").into()),
            Status::Running | Status::Paused => {
                bail!("cannot start an already running container")
            }
            Status::Creating => return Err(ContainerError::CannotStart("not been created").into()),
        }
        let mode = notify::wait_mode(notify_wait, &self.state.annotations)?;
        self.init()?;
        let session = notify::start_session(&self.dir, &self.state, detached)?;
        release(&self.dir, self.init()?)?;
        self.dir.unlock();
        // runtime.md "Lifecycle" step 9: after the user process started; a failure is a
        // warning.
        let state = HookState::of_state(&self.state, Status::Running, Some(self.state.pid));
        hooks::run_warn(Point::Poststart, &self.state.hooks.poststart, &state, None);
        Ok(Started { session, mode })
    }

    /// After [`Container::start`], for `start` and `run -d`: wait as the mode says (signals
    /// forwarded to the init meanwhile) until the container's READY=1 has reached the
    /// service manager (a barrier behind it completed), then hand the relay to a detached
    /// process. A READY=1 the manager has not processed by the wait's deadline makes this
    /// return 1 (the relay still goes on); no READY=1 by then returns 0. An init
    /// that exits before READY=1 makes this return its status (1 when unknown); 0 stays 0, so
    /// systemd judges a clean exit without READY=1 as it would uncontained (`Result=protocol`).
    /// One that exits right after its READY=1 was forwarded returns its status too, and is
    /// left unreaped (see `exited_after_ready`).
    ///
    /// # Errors
    /// The wait loop or the detached relay's fork fails.
    pub fn wait_ready(&mut self, started: Started, signals: &BlockedSignals) -> Result<u8> {
        let Started { session, mode } = started;
        let Some(mut session) = session else {
            return Ok(0);
        };
        let init = self.init()?;
        let until = match mode {
            WaitMode::NoWait => return session.detach(init).map(|_| 0),
            WaitMode::Ready => Until::Ready(None),
            WaitMode::AtMost(d) => Until::Ready(Some(std::time::Instant::now() + d)),
        };
        match supervise::wait(init, signals.fd(), Some(&mut session), None, until)? {
            // Acknowledged with the init still alive: the manager took it as the main pid.
            // Gone by now: it may have been a zombie when the READY was read (see
            // `exited_after_ready`).
            Ended::Ready if supervise::has_exited(init) => {
                session.finish();
                Ok(self.exited_after_ready())
            }
            Ended::Ready => {
                session.detach(init)?;
                Ok(0)
            }
            Ended::TimedOut if session.ready_unacknowledged() => {
                tracing::error!(
                    "container {}: its READY=1 did not reach the service manager in time (the \
                     manager is not reading its notify socket); relaying goes on in the background",
                    self.state.id
                );
                session.detach(init)?;
                Ok(1)
            }
            Ended::TimedOut => {
                tracing::warn!(
                    "container {} sent no READY=1 in time; relaying goes on in the background",
                    self.state.id
                );
                session.detach(init)?;
                Ok(0)
            }
            Ended::Exited => {
                session.finish();
                if session.ready_forwarded() {
                    return Ok(self.exited_after_ready());
                }
                let code = self.exit_code();
                let shown = code.map_or("unknown".to_string(), |c| c.to_string());
                tracing::error!(
                    "container {} exited before READY=1 (exit status {shown})",
                    self.state.id
                );
                Ok(code.unwrap_or(1))
            }
        }
    }

    /// After [`Container::start`], for a foreground `run`: forward signals, relay sd_notify,
    /// proxy the terminal (`console`, the pty master), until the init exits; its exit code.
    ///
    /// # Errors
    /// The wait loop or reaping the init fails.
    pub fn wait_exit(
        &mut self,
        started: Started,
        console: Option<OwnedFd>,
        signals: &BlockedSignals,
    ) -> Result<u8> {
        let Started { session, .. } = started;
        supervise::foreground(self.init()?, signals, session, console)
    }

    /// The init exited right after its READY=1 was forwarded, which named it the main pid
    /// (`MAINPID=`). Whether the manager took it is unknown: systemd refuses a main pid that
    /// is a zombie by the time it reads the datagram. So the init is left unreaped and its
    /// status is pier's: taken, the manager reaps the init once pier has exited and pier's
    /// exit is not the main process's; refused, pier is still the main process and its
    /// status is the init's. Either way the unit ends as the same service uncontained.
    fn exited_after_ready(&self) -> u8 {
        let code = match self.parent {
            true => self
                .init()
                .ok()
                .and_then(|fd| supervise::exit_status_unreaped(fd).ok()),
            false => state::zombie_exit_code(self.state.pid),
        };
        tracing::debug!(
            "container {} exited right after READY=1 (exit status {code:?})",
            self.state.id
        );
        code.unwrap_or(1)
    }

    /// The init's exit status once it has exited: reaped when this process is its parent,
    /// else read from the zombie.
    fn exit_code(&self) -> Option<u8> {
        if !self.parent {
            return state::zombie_exit_code(self.state.pid);
        }
        supervise::reap(self.init().ok()?).ok()
    }
}

/// A startContainer hook failed (the init told `start` through the exec fifo and exited).
/// runtime.md "Lifecycle" step 7: the container is then stopped and destroyed, with its
/// poststop hooks: the caller does that with [`Container::abort`].
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct StartContainerFailed(String);

/// Open the exec fifo, wait for the init's answer (or its death), and remove the fifo. The
/// answer is one byte `0`, or `!` followed by the error of a startContainer hook until EOF
/// (the init exits after writing it).
///
/// # Errors
/// [`StartContainerFailed`], or the init died or closed the fifo without an answer.
fn release(dir: &ContainerDir, init_pidfd: BorrowedFd<'_>) -> Result<()> {
    let fifo = rustix::fs::openat(
        dir.fd(),
        EXEC_FIFO,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open exec.fifo")?;
    let mut answer = Vec::new();
    loop {
        let mut fds = [
            PollFd::new(&fifo, PollFlags::IN),
            PollFd::new(&init_pidfd, PollFlags::IN),
        ];
        match poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            other => other.context("wait for the container init")?,
        };
        let fifo_ready = !fds[0].revents().is_empty();
        let init_gone = !fds[1].revents().is_empty();
        if fifo_ready {
            match read_answer(&fifo, &mut answer) {
                Answer::Go => break,
                Answer::Pending => continue,
                Answer::Failed(message) => {
                    // The init exits at once; its exec.fifo goes with the container.
                    return Err(StartContainerFailed(message).into());
                }
                Answer::Eof if init_gone => bail!("container init exited before it was started"),
                Answer::Eof => bail!("exec.fifo closed before the container init started"),
            }
        }
        if init_gone {
            bail!("container init exited before it was started");
        }
    }
    rustix::fs::unlinkat(dir.fd(), EXEC_FIFO, rustix::fs::AtFlags::empty())
        .context("remove exec.fifo")?;
    Ok(())
}

/// What the exec fifo said so far.
enum Answer {
    /// `0`: the init goes on to `execve`.
    Go,
    /// Nothing yet, or part of an error.
    Pending,
    /// `!` and the error, complete (EOF).
    Failed(String),
    /// EOF without an answer.
    Eof,
}

/// Read what the fifo holds now into `answer` (non-blocking).
fn read_answer(fifo: &OwnedFd, answer: &mut Vec<u8>) -> Answer {
    let mut buf = [0u8; 4096];
    loop {
        match rustix::io::read(fifo, &mut buf) {
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => return Answer::Pending,
            Ok(0) | Err(_) if answer.first() == Some(&b'!') => {
                return Answer::Failed(String::from_utf8_lossy(&answer[1..]).into_owned())
            }
            Ok(0) | Err(_) => return Answer::Eof,
            Ok(n) => {
                answer.extend_from_slice(&buf[..n]);
                if answer.first() == Some(&b'0') {
                    return Answer::Go;
                }
                // An error is at most a few pages; a longer one is cut, not held.
                answer.truncate(64 * 1024);
            }
        }
    }
}
