//! `pier run`: create, start, then (unless `--detach`) wait for the container: every signal
//! pier receives is forwarded to the init, sd_notify datagrams are relayed for its whole life,
//! and pier exits with the init's status (128+N when it was killed by signal N). The container
//! is destroyed afterwards unless `--keep`. With `--detach` it waits for READY=1 like `start`.

use anyhow::Result;

use crate::cli::{Global, RunArgs};
use crate::container::Container;
use crate::supervise::BlockedSignals;

/// Run the container; returns pier's exit status.
pub fn run(global: &Global, args: &RunArgs) -> Result<u8> {
    let detach = args.create.detach;
    // Before the clone, so no signal is lost between start and the wait.
    let signals = BlockedSignals::block()?;
    let (mut container, console) =
        Container::create(&super::create_options(global, &args.create, !detach))?;
    let started = match container.start(args.notify_wait.as_deref(), detach) {
        Ok(started) => started,
        Err(e) => {
            container.abort();
            return Err(e);
        }
    };
    if detach {
        return container.wait_ready(started, &signals);
    }
    let code = container.wait_exit(started, console, &signals)?;
    if !args.keep {
        container.destroy()?;
    }
    Ok(code)
}
