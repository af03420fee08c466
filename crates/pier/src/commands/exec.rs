//! `pier exec [flags] <id> [command args…]`: run a new process in a created, running (or,
//! with `--ignore-paused`, paused) container, as runc's `exec.go` does.
//!
//! The process is a runtime-spec `process` from `--process FILE`, or the container's own
//! config.json `process` overridden by the flags ([`super::exec_process`]). It is started by
//! [`crate::spawn::exec::spawn_exec`]. In the foreground pier forwards every signal to it,
//! proxies its terminal with `--tty`, and exits with its status (128+N when killed by signal
//! N); with `--detach` it returns once the process has `execve`d. Every failure is reported
//! as `exec failed: …` with exit status 255, as runc does.

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{bail, Context, Result};
use rustix::process::{waitid, WaitId, WaitIdOptions};

use crate::cgroups::Cgroup;
use crate::cli::{ExecArgs, Global};
use crate::error::ContainerError;
use crate::spawn::Spawned;
use crate::state::{self, ContainerDir, State, Status};
use crate::supervise::{self, Until};

/// runc's exit status for an exec that could not start its process.
const EXEC_FAILED: u8 = 255;

/// Run `exec`; returns pier's exit status.
pub fn run(global: &Global, args: &ExecArgs) -> Result<u8> {
    match exec(global, args) {
        Ok(code) => Ok(code),
        Err(e) => {
            crate::logging::report_failure(global, &e.context("exec failed"));
            Ok(EXEC_FAILED)
        }
    }
}

fn exec(global: &Global, args: &ExecArgs) -> Result<u8> {
    let dir = ContainerDir::open_unlocked(&global.root, &args.id)?;
    let saved = dir.read_state()?.ok_or(ContainerError::NotRunning)?;
    check_status(state::status(&dir, Some(&saved)), args.ignore_paused)?;
    // The container's config: the defaults of the process, and its seccomp profile, which
    // applies to every process in it (fail closed: no readable config.json, no exec).
    let config = crate::spec::load(&saved.bundle).context("read the container's config.json")?;
    let mut process = super::exec_process::build(args, &config.process)?;
    process.personality = config.process.personality; // also with --process FILE, as runc
    let seccomp = config.seccomp.as_ref();
    check_host_side(args, process.terminal)?;
    let init = super::kill::open_init(&saved)?;
    if args.detach {
        let spawned = start(&saved, &process, seccomp, init.as_fd(), args)?;
        drop(dir);
        return hand_over_console(spawned, args).map(|()| 0);
    }
    let (signals, old_mask) = supervise::block_signals()?;
    let started = start(&saved, &process, seccomp, init.as_fd(), args);
    drop(dir);
    let code = started.and_then(|spawned| foreground(spawned, signals.as_fd()));
    let _ = crate::sys::sigprocmask_set(&old_mask);
    code
}

/// runc's rules: created and running containers take an exec; paused ones only with
/// `--ignore-paused`; stopped ones never.
fn check_status(status: Status, ignore_paused: bool) -> Result<()> {
    match status {
        Status::Created | Status::Running => Ok(()),
        Status::Paused if ignore_paused => Ok(()),
        Status::Paused => {
            bail!("cannot exec in a paused container (use --ignore-paused to override)")
        }
        Status::Stopped | Status::Creating => Err(ContainerError::NotRunning.into()),
    }
}

/// runc's terminal rules (`utils_linux.go` checkTerminal) and the preserved fds.
fn check_host_side(args: &ExecArgs, terminal: bool) -> Result<()> {
    match (terminal, args.detach, args.console_socket.is_some()) {
        (true, true, false) => {
            bail!("cannot allocate tty if pier will detach without setting console socket")
        }
        (_, _, true) if !(terminal && args.detach) => {
            bail!("cannot use console socket if pier will not detach or allocate tty")
        }
        _ => {}
    }
    for fd in 3..3 + args.preserve_fds as i32 {
        if !crate::sys::fd_is_open(fd) {
            bail!(
                "fd {fd} is not open: --preserve-fds {} passes fds 3 onwards",
                args.preserve_fds
            );
        }
    }
    Ok(())
}

/// Spawn the process and write `--pid-file`.
fn start(
    saved: &State,
    process: &crate::spec::Process,
    seccomp: Option<&crate::spec::Seccomp>,
    init: BorrowedFd<'_>,
    args: &ExecArgs,
) -> Result<Spawned> {
    let cgroup = Cgroup::from_state(&saved.cgroup);
    let spawned = crate::spawn::exec::spawn_exec(
        process,
        seccomp,
        saved.pid,
        init,
        &cgroup,
        args.preserve_fds,
    )
    .context("unable to start container process")?;
    if let Some(path) = &args.pid_file {
        if let Err(e) = super::create::write_pid_file(path, spawned.pid) {
            crate::spawn::kill_and_reap(&spawned);
            return Err(e);
        }
    }
    Ok(spawned)
}

/// `--detach --tty`: the pty master goes to `--console-socket`.
fn hand_over_console(spawned: Spawned, args: &ExecArgs) -> Result<()> {
    if let (Some(path), Some((name, master))) = (&args.console_socket, &spawned.console) {
        if let Err(e) = crate::tty::send_to_console_socket(path, name, master.as_fd()) {
            crate::spawn::kill_and_reap(&spawned);
            return Err(e);
        }
    }
    Ok(())
}

/// Wait for the process, forwarding signals and proxying its terminal; its exit code.
fn foreground(mut spawned: Spawned, signals: BorrowedFd<'_>) -> Result<u8> {
    let mut tty = spawned
        .console
        .take()
        .map(|(_, master)| crate::tty::Proxy::new(master));
    let pidfd = spawned.pidfd.as_fd();
    supervise::wait(pidfd, signals, None, tty.as_mut(), Until::Exit)?;
    let status = waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED).context("waitid")?;
    if let Some(t) = tty.as_mut() {
        t.drain();
    }
    Ok(super::run::exit_code(status))
}
