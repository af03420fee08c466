//! `pier start <id>`: release a created container's init through the exec fifo; with
//! NOTIFY_SOCKET, wait for its READY=1 (or its exit, or a timeout) and leave a detached relay
//! ([`Container::start`], [`Container::wait_ready`]).

use anyhow::Result;

use crate::cli::{Global, StartArgs};
use crate::container::{Container, StartContainerFailed};
use crate::supervise::BlockedSignals;
use crate::undo::Undo;

/// Start the container; returns pier's exit status.
pub fn run(global: &Global, args: &StartArgs) -> Result<u8> {
    let container = Container::open_to_start(&global.root, &args.id)?;
    let signals = BlockedSignals::block()?;
    // Stopped and destroyed (with its poststop hooks) if its startContainer hook fails
    // (runtime.md "Lifecycle" step 7), as in `run`.
    let mut container = Undo::new(container, Container::abort);
    match container.start(args.notify_wait.as_deref(), true) {
        Ok(started) => container.keep().wait_ready(started, &signals),
        Err(e) if e.is::<StartContainerFailed>() => Err(e),
        // Not created, a bad wait mode, an init that died: the container stays as it was.
        Err(e) => {
            container.keep();
            Err(e)
        }
    }
}
