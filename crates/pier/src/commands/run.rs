//! `pier run`: create + start, then (unless `--detach`) wait for the container: every signal
//! pier receives is forwarded to the init, sd_notify datagrams are relayed for its whole life,
//! and pier exits with the init's status (128+N when it was killed by signal N). The container
//! is deleted afterwards unless `--keep`. With `--detach` it waits for READY=1 like `start`.

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{Context, Result};
use rustix::process::{waitid, WaitId, WaitIdOptions};

use crate::cli::{Global, RunArgs};
use crate::notify;
use crate::supervise::{self, Until};

use super::create::{create, Created};

/// Run the container; returns pier's exit status.
pub fn run(global: &Global, args: &RunArgs) -> Result<u8> {
    // Block every signal before the clone so none is lost between start and the loop; the
    // init restores an empty mask before execve.
    let (signals, old_mask) = supervise::block_signals()?;
    let result = run_blocked(global, args, signals.as_fd());
    let _ = crate::sys::sigprocmask_set(&old_mask);
    result
}

fn run_blocked(global: &Global, args: &RunArgs, signals: BorrowedFd<'_>) -> Result<u8> {
    let detach = args.create.detach;
    let created = create(global, &args.create, !detach)?;
    let started = notify::wait_mode(args.notify_wait.as_deref(), &created.state.annotations)
        .and_then(|mode| {
            Ok((
                mode,
                notify::start_session(&created.dir, &created.state, detach)?,
            ))
        })
        .and_then(|(mode, session)| {
            super::start::release(&created.dir, created.init.pidfd.as_fd())?;
            created.dir.unlock();
            Ok((mode, session))
        });
    let (mode, session) = match started {
        Ok(s) => s,
        Err(e) => {
            crate::spawn::kill_and_reap(&created.init);
            let _ = super::delete::destroy(created.dir, &created.state);
            return Err(e);
        }
    };
    let init = created.init.pidfd.as_fd();
    if detach {
        return super::start::wait_ready(&created.state, init, signals, session, mode, || {
            reap(init).ok()
        });
    }
    foreground(created, signals, session, args.keep)
}

fn foreground(
    mut created: Created,
    signals: BorrowedFd<'_>,
    mut session: Option<notify::Session>,
    keep: bool,
) -> Result<u8> {
    let mut tty = created
        .init
        .console
        .take()
        .map(|(_, master)| crate::tty::Proxy::new(master));
    let init = created.init.pidfd.as_fd();
    supervise::wait(init, signals, session.as_mut(), tty.as_mut(), Until::Exit)?;
    let code = reap(init)?;
    if let Some(t) = tty.as_mut() {
        t.drain();
    }
    drop(tty);
    if let Some(s) = session.as_mut() {
        s.finish();
    }
    if !keep {
        super::delete::destroy(created.dir, &created.state)?;
    }
    Ok(code)
}

/// Reap the init (pier is its parent) and turn its status into an exit code.
fn reap(init: BorrowedFd<'_>) -> Result<u8> {
    let status = waitid(WaitId::PidFd(init), WaitIdOptions::EXITED).context("waitid")?;
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
