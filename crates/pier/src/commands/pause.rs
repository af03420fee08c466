//! `pier pause <id>`: freeze every process of a running (or created) container through the
//! cgroup freezer; `state` then reports `paused` (runc `pause.go`).

use anyhow::{Context, Result};

use crate::cgroups::Cgroup;
use crate::cli::Global;
use crate::state::{self, ContainerDir, Status};

/// Pause the container.
///
/// # Errors
/// [`ContainerError::NotRunning`] unless it is running or created; a freezer failure.
pub fn run(global: &Global, id: &str) -> Result<()> {
    let dir = ContainerDir::open(&global.root, id)?;
    let (saved, status) = state::live_state(&dir)?;
    if status == Status::Paused {
        return Ok(());
    }
    Cgroup::from_state(&saved.cgroup)
        .freeze()
        .context("pause the container")
}
