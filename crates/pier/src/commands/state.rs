//! `pier state <id>`: the OCI state as indented JSON (runtime-spec "State", runc's extras).

use anyhow::Result;
use serde_json::{json, Value};

use crate::cli::Global;
use crate::state::{self, ContainerDir, State, Status};

/// Print the state of one container.
pub fn run(global: &Global, id: &str) -> Result<()> {
    let dir = ContainerDir::open_unlocked(&global.root, id)?;
    let saved = dir.read_state()?;
    let status = state::status(&dir, saved.as_ref());
    println!(
        "{}",
        serde_json::to_string_pretty(&state_json(id, status, saved.as_ref()))?
    );
    Ok(())
}

/// The JSON object of `state` and of each `list --format json` entry. `pid` is 0 once the
/// container has stopped, as runc reports it.
pub fn state_json(id: &str, status: Status, saved: Option<&State>) -> Value {
    let Some(s) = saved else {
        return json!({"ociVersion": "1.2.0", "id": id, "pid": 0, "status": status.as_str(), "bundle": "", "rootfs": "", "created": "", "owner": ""});
    };
    let pid = if status == Status::Stopped { 0 } else { s.pid };
    let mut v = json!({
        "ociVersion": s.oci_version,
        "id": s.id,
        "pid": pid,
        "status": status.as_str(),
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": s.owner,
    });
    if !s.annotations.is_empty() {
        v["annotations"] = json!(s.annotations);
    }
    v
}
