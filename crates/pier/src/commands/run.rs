//! `pier run`: create, start, then (unless `--detach`) wait for the container: every signal
//! pier receives is forwarded to the init, sd_notify datagrams are relayed for its whole life,
//! and pier exits with the init's status (128+N when it was killed by signal N). The container
//! is destroyed afterwards unless `--keep`. With `--detach` it waits for READY=1 like `start`.

use anyhow::Result;

use crate::cli::{Global, RunArgs};
use crate::container::Container;
use crate::supervise::BlockedSignals;
use crate::undo::Undo;

/// Run the container; returns pier's exit status.
pub fn run(global: &Global, args: &RunArgs) -> Result<u8> {
    let detach = args.create.detach;
    // Before the clone, so no signal is lost between start and the wait.
    let signals = BlockedSignals::block()?;
    let (container, console) =
        Container::create(&super::create_options(global, &args.create, !detach))?;
    // Killed and destroyed unless it starts.
    let mut container = Undo::new(container, Container::abort);
    let started = container.start(args.notify_wait.as_deref(), detach)?;
    let mut container = container.keep();
    if detach {
        return container.wait_ready(started, &signals);
    }
    let code = container.wait_exit(started, console, &signals)?;
    if !args.keep {
        container.destroy()?;
    }
    Ok(code)
}
