//! `pier state <id>`: the OCI state as indented JSON (runtime-spec "State", runc's extras).

use anyhow::Result;

use crate::cli::Global;
use crate::state::{self, ContainerDir};

/// Print the state of one container.
pub fn run(global: &Global, id: &str) -> Result<()> {
    let dir = ContainerDir::open_unlocked(&global.root, id)?;
    let saved = dir.read_state()?;
    let status = state::status(&dir, saved.as_ref());
    println!(
        "{}",
        serde_json::to_string_pretty(&state::oci_json(id, status, saved.as_ref()))?
    );
    Ok(())
}
