//! What config.json may ask of a rootless container (pier's euid is not 0): runc's
//! `validate/rootless.go` rules and its `setupUser` rule on additional groups, with runc's
//! messages, checked before anything is created.

use anyhow::{bail, Result};

use super::plan::{IdMapping, NamespaceKind, Plan};

/// Check `plan` for a pier run by an unprivileged user.
///
/// # Errors
/// No user namespace; a new one without uid or gid mappings; a mount's `uid=`/`gid=` option
/// naming an id the container does not map; `process.user.additionalGids` (an unprivileged
/// user cannot setgroups in its user namespace).
pub fn check_rootless(plan: &Plan) -> Result<()> {
    if !plan.has_namespace(NamespaceKind::User) {
        bail!("rootless container requires user namespaces");
    }
    if plan.creates_namespace(NamespaceKind::User) {
        if plan.uid_mappings.is_empty() {
            bail!("rootless containers requires at least one UID mapping");
        }
        if plan.gid_mappings.is_empty() {
            bail!("rootless containers requires at least one GID mapping");
        }
        for m in &plan.mounts {
            check_mount_ids(&m.data, "uid", &plan.uid_mappings)?;
            check_mount_ids(&m.data, "gid", &plan.gid_mappings)?;
        }
    }
    if !plan.process.additional_gids.is_empty() {
        bail!("cannot set any additional groups in a rootless container");
    }
    Ok(())
}

/// A `uid=N` (`gid=N`) option in a mount's data must name an id inside the container's maps.
fn check_mount_ids(data: &str, key: &str, maps: &[IdMapping]) -> Result<()> {
    for opt in data.split(',') {
        let Some(value) = opt.strip_prefix(key).and_then(|v| v.strip_prefix('=')) else {
            continue;
        };
        let mapped = value.parse::<u32>().is_ok_and(|id| {
            maps.iter()
                .any(|m| id >= m.container_id && id - m.container_id < m.size)
        });
        if !mapped {
            bail!("cannot specify {key}= mount options for unmapped {key} in rootless containers");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(container_id: u32, size: u32) -> Vec<IdMapping> {
        vec![IdMapping {
            container_id,
            host_id: 1000,
            size,
        }]
    }

    #[test]
    fn mount_ids_must_be_mapped() {
        assert!(check_mount_ids("mode=620,gid=5", "gid", &one(0, 1)).is_err());
        assert!(check_mount_ids("mode=620,gid=5", "gid", &one(0, 6)).is_ok());
        assert!(check_mount_ids("mode=620,gid=5", "uid", &one(0, 1)).is_ok());
        assert!(check_mount_ids("uid=0", "uid", &one(0, 1)).is_ok());
        let err = check_mount_ids("uid=x", "uid", &one(0, 1)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot specify uid= mount options for unmapped uid in rootless containers"
        );
    }
}
