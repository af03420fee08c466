//! `pier start <id>`: release a created container's init through the exec fifo; with
//! NOTIFY_SOCKET, wait for its READY=1 (or its exit, or a timeout) and leave a detached relay
//! ([`Container::start`], [`Container::wait_ready`]).

use anyhow::Result;

use crate::cli::{Global, StartArgs};
use crate::container::Container;
use crate::supervise::BlockedSignals;

/// Start the container; returns pier's exit status.
pub fn run(global: &Global, args: &StartArgs) -> Result<u8> {
    let mut container = Container::open_to_start(&global.root, &args.id)?;
    let signals = BlockedSignals::block()?;
    let started = container.start(args.notify_wait.as_deref(), true)?;
    container.wait_ready(started, &signals)
}
