//! `pier start <id>`: release a created container's init through the exec fifo; with
//! NOTIFY_SOCKET, wait for its READY=1 (or its exit, or a timeout) and leave a detached relay.
//!
//! The fifo is opened non-blocking and polled together with the init's pidfd, so an init that
//! died while waiting makes `start` fail at once instead of hanging.

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};

use crate::cli::{Global, StartArgs};
use crate::error::ContainerError;
use crate::notify::{self, Session, WaitMode};
use crate::state::{self, ContainerDir, State, Status, EXEC_FIFO};
use crate::supervise::{self, Ended, Until};

/// Start the container; returns pier's exit status.
pub fn run(global: &Global, args: &StartArgs) -> Result<u8> {
    let dir = ContainerDir::open(&global.root, &args.id)?;
    let saved = dir
        .read_state()?
        .ok_or(ContainerError::CannotStart("not been created"))?;
    match state::status(&dir, Some(&saved)) {
        Status::Created => {}
        Status::Stopped => return Err(ContainerError::CannotStart("stopped").into()),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Creating => return Err(ContainerError::CannotStart("not been created").into()),
    }
    let mode = notify::wait_mode(args.notify_wait.as_deref(), &saved.annotations)?;
    let pidfd = super::kill::open_init(&saved)?;
    let (signals, old_mask) = supervise::block_signals()?;
    let session = notify::start_session(&dir, &saved, true)?;
    release(&dir, pidfd.as_fd())?;
    dir.unlock();
    let code = wait_ready(
        &saved,
        pidfd.as_fd(),
        signals.as_fd(),
        session,
        mode,
        || state::zombie_exit_code(saved.pid),
    );
    let _ = crate::sys::sigprocmask_set(&old_mask);
    code
}

/// After release, for `start` and `run -d`: wait as `mode` says, then hand the relay to a
/// detached process. An init that exits before READY=1 makes this return its status (never 0).
pub fn wait_ready(
    state: &State,
    init: BorrowedFd<'_>,
    signals: BorrowedFd<'_>,
    session: Option<Session>,
    mode: WaitMode,
    exit_code: impl FnOnce() -> Option<u8>,
) -> Result<u8> {
    let Some(mut session) = session else {
        return Ok(0);
    };
    let until = match mode {
        WaitMode::NoWait => return session.detach(init).map(|_| 0),
        WaitMode::Ready => Until::Ready(None),
        WaitMode::AtMost(d) => Until::Ready(Some(std::time::Instant::now() + d)),
    };
    match supervise::wait(init, signals, Some(&mut session), None, until)? {
        Ended::Ready => {
            session.barrier();
            session.detach(init)?;
            Ok(0)
        }
        Ended::TimedOut => {
            tracing::warn!(
                "container {} sent no READY=1 in time; relaying goes on in the background",
                state.id
            );
            session.detach(init)?;
            Ok(0)
        }
        Ended::Exited => {
            session.finish();
            let code = exit_code();
            let shown = code.map_or("unknown".to_string(), |c| c.to_string());
            tracing::error!(
                "container {} exited before READY=1 (exit status {shown})",
                state.id
            );
            Ok(code.filter(|c| *c != 0).unwrap_or(1))
        }
    }
}

/// Open the exec fifo, wait for the init's byte (or its death), and remove the fifo.
pub fn release(dir: &ContainerDir, init_pidfd: BorrowedFd<'_>) -> Result<()> {
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
