//! `pier run`: create + start, then (unless `--detach`) wait for the container: every signal
//! pier receives is forwarded to the init, and pier exits with the init's status (128+N when
//! it was killed by signal N). The container is deleted afterwards unless `--keep`.

use std::os::fd::AsFd;

use anyhow::{Context, Result};
use rustix::event::{poll, PollFd, PollFlags};
use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions};

use crate::cli::{Global, RunArgs};
use crate::sys::{self, SigSet};

use super::create::{create, Created};

/// Run the container; returns pier's exit status.
pub fn run(global: &Global, args: &RunArgs) -> Result<u8> {
    // Block every signal before the clone so none is lost between start and the loop; the
    // init restores an empty mask before execve.
    let old_mask = sys::sigprocmask_set(&SigSet::full()).context("block signals")?;
    let result = run_blocked(global, args);
    let _ = sys::sigprocmask_set(&old_mask);
    result
}

fn run_blocked(global: &Global, args: &RunArgs) -> Result<u8> {
    let signals = sys::signalfd(&SigSet::full()).context("signalfd")?;
    let created = create(global, &args.create)?;
    if let Err(e) = super::start::release(&created.dir, created.init.pidfd.as_fd()) {
        crate::spawn::kill_and_reap(&created.init);
        let _ = super::delete::destroy(created.dir, &created.state);
        return Err(e);
    }
    if args.create.detach {
        return Ok(0);
    }
    let code = wait(&created, signals.as_fd())?;
    if !args.keep {
        super::delete::destroy(created.dir, &created.state)?;
    }
    Ok(code)
}

/// Forward signals until the init exits; return its status as an exit code.
fn wait(created: &Created, signals: std::os::fd::BorrowedFd<'_>) -> Result<u8> {
    let pidfd = created.init.pidfd.as_fd();
    loop {
        let mut fds = [PollFd::new(&signals, PollFlags::IN), PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, None) {
            Err(rustix::io::Errno::INTR) => continue,
            other => other.context("poll")?,
        };
        while let Some(signo) = sys::read_signalfd(signals)? {
            if signo == libc::SIGCHLD {
                continue;
            }
            if let Some(sig) = Signal::from_named_raw(signo) {
                let _ = pidfd_send_signal(pidfd, sig);
            }
        }
        if !fds[1].revents().is_empty() {
            let status = waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED).context("waitid")?;
            return Ok(exit_code(status));
        }
    }
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
