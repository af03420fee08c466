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
        // Hooks: poststart runs here (runtime-spec: after the user process has started).
        self.dir.unlock();
        Ok(Started { session, mode })
    }

    /// After [`Container::start`], for `start` and `run -d`: wait as the mode says (signals
    /// forwarded to the init meanwhile), then hand the relay to a detached process. An init
    /// that exits before READY=1 makes this return its status (1 when unknown); 0 stays 0, so
    /// systemd judges a clean exit without READY=1 as it would uncontained (`Result=protocol`).
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
            Ended::Ready => {
                session.barrier();
                session.detach(init)?;
                Ok(0)
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

    /// The init's exit status once it has exited: reaped when this process is its parent,
    /// else read from the zombie.
    fn exit_code(&self) -> Option<u8> {
        if !self.parent {
            return state::zombie_exit_code(self.state.pid);
        }
        supervise::reap(self.init().ok()?).ok()
    }
}

/// Open the exec fifo, wait for the init's byte (or its death), and remove the fifo.
fn release(dir: &ContainerDir, init_pidfd: BorrowedFd<'_>) -> Result<()> {
    let fifo = rustix::fs::openat(
        dir.fd(),
        EXEC_FIFO,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open exec.fifo")?;
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
            let mut byte = [0u8; 1];
            match rustix::io::read(&fifo, &mut byte) {
                Ok(1) => break,
                Err(rustix::io::Errno::AGAIN) => continue,
                _ if init_gone => bail!("container init exited before it was started"),
                Ok(_) | Err(_) => bail!("exec.fifo closed before the container init started"),
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
