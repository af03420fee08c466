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

use super::{ready, Container};
use crate::error::ContainerError;
use crate::hooks::{self, HookState, Point};
use crate::notify::{self, Session, WaitMode};
use crate::state::{self, ContainerDir, Status, EXEC_FIFO};
use crate::supervise::{self, BlockedSignals};

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
        release(&self.dir, self.init()?).map_err(|e| match self.cgroup().oom_cause() {
            Some(cause) => e.context(format!("killed by {cause}")),
            None => e,
        })?;
        self.dir.unlock();
        // runtime.md "Lifecycle" step 9: after the user process started; a failure is a
        // warning.
        let state = HookState::of_state(&self.state, Status::Running, Some(self.state.pid));
        hooks::run_warn(Point::Poststart, &self.state.hooks.poststart, &state, None);
        Ok(Started { session, mode })
    }

    /// After [`Container::start`], for `start` and `run -d`: wait as the mode says (signals
    /// forwarded to the init meanwhile) until the container's READY=1 has reached the
    /// service manager, then hand the relay to a detached process; pier's exit status
    /// ([`ready::wait_ready`] says which for each ending: 0 once acknowledged, the init's
    /// status when it exits before READY=1 or right after it, 1 for a READY=1 the manager did
    /// not process in time).
    ///
    /// # Errors
    /// The wait loop or the detached relay's fork fails.
    pub fn wait_ready(&self, started: Started, signals: &BlockedSignals) -> Result<u8> {
        let Started { session, mode } = started;
        ready::wait_ready(self, session, mode, signals)
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
}

/// The init, as the process a READY=1 is awaited from.
impl ready::Awaited for Container {
    fn name(&self) -> String {
        format!("container {}", self.state.id)
    }

    fn pidfd(&self) -> Result<BorrowedFd<'_>> {
        self.init()
    }

    /// Reaped only when this pier is the init's parent (`run`, `create`+`start` in one
    /// process); otherwise read from the zombie its parent has not reaped yet.
    fn exit_status(&self, reap: bool) -> Option<u8> {
        if !self.parent {
            return state::zombie_exit_code(self.state.pid);
        }
        let init = self.init().ok()?;
        match reap {
            true => supervise::reap(init).ok(),
            false => supervise::exit_status_unreaped(init).ok(),
        }
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
