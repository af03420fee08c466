//! `pier exec [flags] <id> [command args…]`: run a new process in a created, running (or,
//! with `--ignore-paused`, paused) container, as runc's `exec.go` does.
//!
//! The process is a runtime-spec `process` from `--process FILE`, or the container's own
//! config.json `process` overridden by the flags ([`process`]), started by
//! [`Container::exec`]. In the foreground pier forwards every signal to it, proxies its
//! terminal with `--tty`, and exits with its status (128+N when killed by signal N); with
//! `--detach` it returns once the process has `execve`d. Every failure is reported as
//! `exec failed: …` with exit status 255, as runc does. `--notify-socket container` (a pier
//! extension) gives the process the container's relayed `NOTIFY_SOCKET`; `--notify-socket own`
//! a socket of this exec's own, relayed to pier's `NOTIFY_SOCKET`: in the foreground pier
//! relays as the unit's main process, with `--detach` it waits for READY=1 as `run -d` does
//! (`ExecProcess::wait_ready`) and leaves a detached relay (docs/notify.md).

mod process;

use anyhow::Result;

use crate::cli::{ExecArgs, Global};
use crate::container::{Container, ExecOptions};
use crate::error::ExitWith;
use crate::notify::{wait_mode, ExecNotify};
use crate::supervise::BlockedSignals;

/// runc's exit status for an exec that could not start its process.
const EXEC_FAILED: u8 = 255;

/// Run `exec`; returns pier's exit status.
pub fn run(global: &Global, args: &ExecArgs) -> Result<u8> {
    exec(global, args).map_err(failed)
}

/// An exec failure as runc reports it: `exec failed: …`, status 255.
pub(super) fn failed(e: anyhow::Error) -> anyhow::Error {
    ExitWith {
        code: EXEC_FAILED,
        error: e.context("exec failed"),
    }
    .into()
}

fn exec(global: &Global, args: &ExecArgs) -> Result<u8> {
    let (mut container, config) =
        Container::open_for_exec(&global.root, &args.id, args.ignore_paused)?;
    let mut process = process::build(args, &config.process)?;
    process.personality = config.process.personality; // also with --process FILE, as runc
                                                      // The preserved fds were checked in main, before pier opened any fd of its own.
    crate::tty::check_terminal(process.terminal, args.detach, args.console_socket.is_some())?;
    let notify = container.exec_notify(args.notify_socket.as_deref())?;
    set_env(&mut process.env, notify.env());
    // `exec -d --notify-socket own` waits for READY=1 like `run -d`.
    let wait = match (&notify, args.detach) {
        (ExecNotify::Own(_), true) => Some(wait_mode(
            args.notify_wait.as_deref(),
            container.annotations(),
        )?),
        _ => None,
    };
    let opts = ExecOptions {
        preserve_fds: args.preserve_fds,
        pid_file: args.pid_file.as_deref(),
        console_socket: args.console_socket.as_deref(),
        detach: args.detach,
    };
    let signals = match args.detach && wait.is_none() {
        true => None,
        false => Some(BlockedSignals::block()?),
    };
    let exec = container.exec(&process, config.seccomp.as_ref(), &opts, notify)?;
    drop(container);
    match (signals, wait) {
        (None, _) => Ok(0),
        (Some(signals), Some(mode)) => exec.wait_ready(mode, &signals),
        (Some(signals), None) => exec.wait_exit(&signals),
    }
}

/// Replace (or add) the variables of `entries` in `env`.
fn set_env(env: &mut Vec<String>, entries: Vec<String>) {
    for entry in entries {
        let key = entry.split('=').next().unwrap_or_default().to_owned();
        env.retain(|e| e.split('=').next() != Some(key.as_str()));
        env.push(entry);
    }
}
