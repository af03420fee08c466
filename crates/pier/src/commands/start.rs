//! `pier start <id>`: release a created container's init through the exec fifo.
//!
//! The fifo is opened non-blocking and polled together with the init's pidfd, so an init that
//! died while waiting makes `start` fail at once instead of hanging.

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::fs::{Mode, OFlags};

use crate::cli::Global;
use crate::error::ContainerError;
use crate::state::{self, ContainerDir, Status, EXEC_FIFO};

/// Start the container; returns the exit status (0).
pub fn run(global: &Global, id: &str) -> Result<u8> {
    let dir = ContainerDir::open(&global.root, id)?;
    let saved = dir.read_state()?.ok_or(ContainerError::CannotStart("not been created"))?;
    match state::status(&dir, Some(&saved)) {
        Status::Created => {}
        Status::Stopped => return Err(ContainerError::CannotStart("stopped").into()),
        Status::Running | Status::Paused => bail!("cannot start an already running container"),
        Status::Creating => return Err(ContainerError::CannotStart("not been created").into()),
    }
    let pidfd = super::kill::open_init(&saved)?;
    release(&dir, pidfd.as_fd())?;
    Ok(0)
}

/// Open the exec fifo, wait for the init's byte (or its death), and remove the fifo.
pub fn release(dir: &ContainerDir, init_pidfd: BorrowedFd<'_>) -> Result<()> {
    let fifo = rustix::fs::openat(dir.fd(), EXEC_FIFO, OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC, Mode::empty())
        .context("open exec.fifo")?;
    loop {
        let mut fds = [PollFd::new(&fifo, PollFlags::IN), PollFd::new(&init_pidfd, PollFlags::IN)];
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
    rustix::fs::unlinkat(dir.fd(), EXEC_FIFO, rustix::fs::AtFlags::empty()).context("remove exec.fifo")?;
    Ok(())
}
