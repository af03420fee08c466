//! The parent's part of a new user namespace: writing the child's id maps
//! (`/proc/<pid>/uid_map`, `gid_map`, `user_namespaces(7)`) before it is released.

use anyhow::{Context, Result};

use crate::spec::{IdMapping, NamespaceKind, Plan};

/// Write `plan.uid_mappings` and `gid_mappings` for the child `pid` when the plan creates a
/// user namespace. pier is root in the parent namespace, so it writes any ranges itself (no
/// newuidmap) and leaves `setgroups` allowed, as runc does.
///
/// # Errors
/// The kernel refuses a map (EPERM: a host id pier may not map; EINVAL: a bad line).
pub fn write_id_maps(pid: i32, plan: &Plan) -> Result<()> {
    if !plan.creates_namespace(NamespaceKind::User) {
        return Ok(());
    }
    write_map(pid, "uid_map", &plan.uid_mappings)?;
    write_map(pid, "gid_map", &plan.gid_mappings)
}

/// One map file, in one `write(2)` as the kernel requires.
fn write_map(pid: i32, file: &str, maps: &[IdMapping]) -> Result<()> {
    let text: String = maps.iter().map(|m| m.map_line() + "\n").collect();
    let path = format!("/proc/{pid}/{file}");
    std::fs::write(&path, text.as_bytes()).with_context(|| {
        format!(
            "write {file} of the container's user namespace ({})",
            text.trim().replace('\n', ", ")
        )
    })
}
