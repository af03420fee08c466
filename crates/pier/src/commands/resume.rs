//! `pier resume <id>`: thaw a paused container (runc `resume.go`).

use anyhow::{bail, Context, Result};

use crate::cli::Global;
use crate::container::{Container, Lock};
use crate::state::Status;

/// Resume the container.
///
/// # Errors
/// "container not paused" (runc's text) for a container in any other state.
pub fn run(global: &Global, id: &str) -> Result<()> {
    let container = Container::open(&global.root, id, Lock::Exclusive)?;
    if container.status() != Status::Paused {
        bail!("container not paused");
    }
    container.cgroup().thaw().context("resume the container")
}
