//! `pier resume <id>`: thaw a paused container (runc `resume.go`).

use anyhow::{bail, Context, Result};

use crate::cgroups::Cgroup;
use crate::cli::Global;
use crate::error::ContainerError;
use crate::state::{self, ContainerDir, Status};

/// Resume the container.
///
/// # Errors
/// "container not paused" (runc's text) for a container in any other state.
pub fn run(global: &Global, id: &str) -> Result<()> {
    let dir = ContainerDir::open(&global.root, id)?;
    let saved = dir.read_state()?.ok_or(ContainerError::NotRunning)?;
    if state::status(&dir, Some(&saved)) != Status::Paused {
        bail!("container not paused");
    }
    Cgroup::from_state(&saved.cgroup)
        .thaw()
        .context("resume the container")
}
