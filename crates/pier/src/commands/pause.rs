//! `pier pause <id>`: freeze every process of a running (or created) container through the
//! cgroup freezer; `state` then reports `paused` (runc `pause.go`).

use anyhow::{Context, Result};

use crate::cgroups::Cgroup;
use crate::cli::Global;
use crate::error::ContainerError;
use crate::state::{self, ContainerDir, Status};

/// Pause the container.
///
/// # Errors
/// [`ContainerError::NotRunning`] unless it is running or created; a freezer failure.
pub fn run(global: &Global, id: &str) -> Result<()> {
    let dir = ContainerDir::open(&global.root, id)?;
    let saved = dir.read_state()?.ok_or(ContainerError::NotRunning)?;
    match state::status(&dir, Some(&saved)) {
        Status::Running | Status::Created => {}
        Status::Paused => return Ok(()),
        Status::Stopped | Status::Creating => return Err(ContainerError::NotRunning.into()),
    }
    Cgroup::from_state(&saved.cgroup)
        .freeze()
        .context("pause the container")
}
