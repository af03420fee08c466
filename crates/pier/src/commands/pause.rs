//! `pier pause <id>`: freeze every process of a running (or created) container through the
//! cgroup freezer; `state` then reports `paused` (runc `pause.go`).

use anyhow::{Context, Result};

use crate::cli::Global;
use crate::container::{Container, Lock};
use crate::state::Status;

/// Pause the container.
///
/// # Errors
/// [`ContainerError::NotRunning`] unless it is running or created; a freezer failure.
pub fn run(global: &Global, id: &str) -> Result<()> {
    let (container, status) = Container::open_live(&global.root, id, Lock::Exclusive)?;
    if status == Status::Paused {
        return Ok(());
    }
    container.cgroup().freeze().context("pause the container")
}
