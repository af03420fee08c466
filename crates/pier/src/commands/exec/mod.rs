//! `pier exec [flags] <id> [command args…]`: run a new process in a created, running (or,
//! with `--ignore-paused`, paused) container, as runc's `exec.go` does.
//!
//! The process is a runtime-spec `process` from `--process FILE`, or the container's own
//! config.json `process` overridden by the flags ([`process`]), started by
//! [`Container::exec`]. In the foreground pier forwards every signal to it, proxies its
//! terminal with `--tty`, and exits with its status (128+N when killed by signal N); with
//! `--detach` it returns once the process has `execve`d. Every failure is reported as
//! `exec failed: …` with exit status 255, as runc does.

mod process;

use std::os::fd::AsFd;

use anyhow::{bail, Result};

use crate::cli::{ExecArgs, Global};
use crate::container::{Container, ExecOptions};
use crate::error::ExitWith;
use crate::supervise::{self, BlockedSignals};

/// runc's exit status for an exec that could not start its process.
const EXEC_FAILED: u8 = 255;

/// Run `exec`; returns pier's exit status.
pub fn run(global: &Global, args: &ExecArgs) -> Result<u8> {
    exec(global, args).map_err(|e| {
        ExitWith {
            code: EXEC_FAILED,
            error: e.context("exec failed"),
        }
        .into()
    })
}

fn exec(global: &Global, args: &ExecArgs) -> Result<u8> {
    let (mut container, config) =
        Container::open_for_exec(&global.root, &args.id, args.ignore_paused)?;
    let mut process = process::build(args, &config.process)?;
    process.personality = config.process.personality; // also with --process FILE, as runc
    check_host_side(args, process.terminal)?;
    let opts = ExecOptions {
        preserve_fds: args.preserve_fds,
        pid_file: args.pid_file.as_deref(),
        console_socket: args.console_socket.as_deref(),
    };
    let signals = match args.detach {
        true => None,
        false => Some(BlockedSignals::block()?),
    };
    let mut spawned = container.exec(&process, config.seccomp.as_ref(), &opts)?;
    drop(container);
    let Some(signals) = signals else {
        return Ok(0);
    };
    let console = spawned.console.take().map(|(_, master)| master);
    supervise::foreground(spawned.pidfd.as_fd(), &signals, None, console)
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
