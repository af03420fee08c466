//! `linux.uidMappings` / `linux.gidMappings` and the user namespace they go with
//! (runtime-spec config-linux "User namespace mappings", `user_namespaces(7)`), plus the
//! `uidMappings`/`gidMappings` of an idmapped mount (runtime-spec config "Mounts").
//!
//! The checks are runc's validator rules, plus the ones the kernel would otherwise report as
//! a bare `EINVAL` when the map is written: empty or overflowing ranges, overlaps, more than
//! 340 lines (the limit of `/proc/<pid>/uid_map` since Linux 4.15).

use anyhow::{bail, Result};
use oci_spec::runtime::LinuxIdMapping;

use super::plan::{IdMapping, NamespaceKind, Plan};

/// Lines a `uid_map`/`gid_map` may have (`user_namespaces(7)`).
const MAX_RANGES: usize = 340;

/// Convert and check one mapping list; `what` names the field in errors.
///
/// # Errors
/// A range of size 0, one whose end passes 2^32, more than 340 ranges, or two ranges that
/// overlap on the container side or on the host side.
pub fn mappings_of(list: Option<&Vec<LinuxIdMapping>>, what: &str) -> Result<Vec<IdMapping>> {
    let maps: Vec<IdMapping> = list
        .into_iter()
        .flatten()
        .map(|m| IdMapping {
            container_id: m.container_id(),
            host_id: m.host_id(),
            size: m.size(),
        })
        .collect();
    if maps.len() > MAX_RANGES {
        bail!(
            "config.json: {what} has {} ranges, the kernel takes at most {MAX_RANGES}",
            maps.len()
        );
    }
    for m in &maps {
        if m.size == 0 {
            bail!("config.json: {what} range {} has size 0", m.describe());
        }
        if u64::from(m.container_id) + u64::from(m.size) > 1 << 32
            || u64::from(m.host_id) + u64::from(m.size) > 1 << 32
        {
            bail!(
                "config.json: {what} range {} goes past id 4294967295",
                m.describe()
            );
        }
    }
    for (i, a) in maps.iter().enumerate() {
        for b in &maps[i + 1..] {
            if overlap(a.container_id, b.container_id, a.size, b.size) {
                bail!(
                    "config.json: {what} ranges {} and {} overlap inside the container",
                    a.describe(),
                    b.describe()
                );
            }
            if overlap(a.host_id, b.host_id, a.size, b.size) {
                bail!(
                    "config.json: {what} ranges {} and {} overlap on the host",
                    a.describe(),
                    b.describe()
                );
            }
        }
    }
    Ok(maps)
}

fn overlap(a: u32, b: u32, a_size: u32, b_size: u32) -> bool {
    let (a, b) = (u64::from(a), u64::from(b));
    a < b + u64::from(b_size) && b < a + u64::from(a_size)
}

/// runc's user namespace rules (libcontainer/configs/validate), checked on the whole Plan:
/// mappings need a user namespace; a new user namespace needs both mappings; the process's
/// ids and uid/gid 0 (the init becomes root in the namespace first, as runc's) must be mapped.
///
/// # Errors
/// Each rule broken, naming the field.
pub fn check(plan: &Plan) -> Result<()> {
    let has_maps = !plan.uid_mappings.is_empty() || !plan.gid_mappings.is_empty();
    if !plan.has_namespace(NamespaceKind::User) {
        if has_maps {
            bail!("config.json: user namespace mappings specified, but user namespace isn't enabled in the config");
        }
        return Ok(());
    }
    if !plan.creates_namespace(NamespaceKind::User) {
        // Joined by path: the namespace already has its maps (runc checks the config's
        // against them; pier uses the namespace's and ignores the config's).
        return Ok(());
    }
    if plan.uid_mappings.is_empty() || plan.gid_mappings.is_empty() {
        bail!(
            "config.json: a new user namespace needs both linux.uidMappings and linux.gidMappings"
        );
    }
    let p = &plan.process;
    for (id, maps, what, field) in [
        (0, &plan.uid_mappings, "uid 0 (the namespace's root)", "uid"),
        (0, &plan.gid_mappings, "gid 0 (the namespace's root)", "gid"),
        (p.uid, &plan.uid_mappings, "process.user.uid", "uid"),
        (p.gid, &plan.gid_mappings, "process.user.gid", "gid"),
    ] {
        if !maps.iter().any(|m| m.maps_container_id(id)) {
            bail!("config.json: {what} {id} is not mapped by linux.{field}Mappings");
        }
    }
    if let Some(g) = p
        .additional_gids
        .iter()
        .find(|g| !plan.gid_mappings.iter().any(|m| m.maps_container_id(**g)))
    {
        bail!("config.json: process.user.additionalGids {g} is not mapped by linux.gidMappings");
    }
    Ok(())
}

/// Idmapped mounts (runc's rules): bind mounts only, both maps; `idmap`/`ridmap` without
/// maps of its own take the container's `linux.uidMappings`/`gidMappings`.
///
/// # Errors
/// An idmapped mount that is not a bind mount, has only one of the two lists, or has none
/// while the container has no mappings either.
pub fn resolve_idmapped_mounts(plan: &mut Plan) -> Result<()> {
    let (uids, gids) = (plan.uid_mappings.clone(), plan.gid_mappings.clone());
    for m in &mut plan.mounts {
        let Some(idmap) = &mut m.idmap else { continue };
        let dest = &m.destination;
        if m.bind.is_none() {
            bail!("config.json: mounts {dest}: idmapped mounts are only supported for bind mounts");
        }
        if idmap.uid_mappings.is_empty() && idmap.gid_mappings.is_empty() {
            if uids.is_empty() {
                bail!("config.json: mounts {dest}: idmap without uidMappings/gidMappings needs the container's linux.uidMappings");
            }
            idmap.uid_mappings = uids.clone();
            idmap.gid_mappings = gids.clone();
        }
        if idmap.uid_mappings.is_empty() || idmap.gid_mappings.is_empty() {
            bail!("config.json: mounts {dest}: an idmapped mount needs both uidMappings and gidMappings");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn maps(v: serde_json::Value) -> Result<Vec<IdMapping>> {
        let list: Vec<LinuxIdMapping> = serde_json::from_value(v).unwrap();
        mappings_of(Some(&list), "linux.uidMappings")
    }

    #[test]
    fn one_and_many_ranges() {
        let m = maps(json!([{"containerID": 0, "hostID": 100000, "size": 65536}])).unwrap();
        assert_eq!(m[0].map_line(), "0 100000 65536");
        let m = maps(json!([
            {"containerID": 0, "hostID": 1000, "size": 1},
            {"containerID": 1, "hostID": 100000, "size": 65535}
        ]))
        .unwrap();
        assert_eq!(m.len(), 2);
        assert!(m[1].maps_container_id(65535) && !m[1].maps_container_id(65536));
    }

    #[test]
    fn bad_ranges_are_refused_with_the_reason() {
        let cases = [
            (
                json!([{"containerID": 0, "hostID": 1, "size": 0}]),
                "size 0",
            ),
            (
                json!([{"containerID": 4294967295u32, "hostID": 1, "size": 2}]),
                "past id",
            ),
            (
                json!([{"containerID": 0, "hostID": 1000, "size": 10},
                       {"containerID": 5, "hostID": 5000, "size": 10}]),
                "overlap inside",
            ),
            (
                json!([{"containerID": 0, "hostID": 1000, "size": 10},
                       {"containerID": 100, "hostID": 1009, "size": 10}]),
                "overlap on the host",
            ),
        ];
        for (v, needle) in cases {
            let err = format!("{:#}", maps(v.clone()).unwrap_err());
            assert!(err.contains(needle), "{v}: {err}");
        }
        let many: Vec<_> = (0..341u32)
            .map(|i| json!({"containerID": i, "hostID": 1000 + i, "size": 1}))
            .collect();
        assert!(format!("{:#}", maps(json!(many)).unwrap_err()).contains("at most 340"));
    }
}
