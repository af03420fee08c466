//! A container without a mount namespace of its own (runtime-spec config-linux.md
//! "Namespaces": with no `mount` entry "the container ... inherit[s] the runtime's" one): its
//! mounts are made in pier's mount namespace. As runc and crun, the init then mounts under the
//! rootfs and `chroot`s into it (never `pivot_root`, which would move the host's root); unlike
//! runc, which leaves every such mount behind after `delete`, `create` first binds the rootfs
//! onto itself, so that everything the container mounts is below that one bind, and `delete`
//! (or a failed create) detaches it with all of them. The host's mounts are not otherwise
//! touched: their propagation is left as it is (runc's `rslave` of `/` and private parent are
//! skipped), so the bind and what is mounted below it propagate to the peers of the mount the
//! rootfs is on exactly as its detach does.

use std::path::Path;

use anyhow::{Context, Result};
use rustix::mount::{mount_bind_recursive, unmount, UnmountFlags};

use crate::spec::{NamespaceKind, Plan};
use crate::state::{ContainerDir, RootfsBind};

/// Whether the container shares pier's mount namespace (no `mount` in linux.namespaces).
pub fn needed(plan: &Plan) -> bool {
    !plan.has_namespace(NamespaceKind::Mount)
}

/// Bind the rootfs onto itself (recursively: mounts an engine made below it stay visible),
/// recorded in the state directory before and after, so that [`release`] finds it whenever
/// create stops.
///
/// # Errors
/// statx(2) or mount(2) fails, or the record cannot be written.
pub fn bind(plan: &Plan, dir: &ContainerDir) -> Result<()> {
    let mut record = RootfsBind {
        rootfs: plan.rootfs.clone(),
        below: mount_id(&plan.rootfs)?,
        ours: None,
    };
    dir.write_rootfs_bind_record(&record)?;
    mount_bind_recursive(&plan.rootfs, &plan.rootfs).with_context(|| {
        format!(
            "bind the rootfs {} onto itself (no mount namespace)",
            plan.rootfs.display()
        )
    })?;
    record.ours = Some(mount_id(&plan.rootfs)?);
    dir.write_rootfs_bind_record(&record)
}

/// Detach the bind [`bind`] made, with everything mounted below it; nothing when the
/// container has its own mount namespace, or when what is on the rootfs now is not that bind
/// (already gone: a mount id that is neither ours nor the one below is someone else's).
/// Failures are warnings: the rest of the container still goes.
pub fn release(dir: &ContainerDir) {
    let record = match dir.read_rootfs_bind_record() {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::warn!("rootfs bind not released: {e:#}");
            return;
        }
    };
    let Ok(top) = mount_id(&record.rootfs) else {
        return;
    };
    // `ours` unset: create stopped between the bind and its second record.
    let is_ours = record.ours.map_or(top != record.below, |ours| ours == top);
    if is_ours {
        let detached = unmount(
            &record.rootfs,
            UnmountFlags::DETACH | UnmountFlags::NOFOLLOW,
        );
        if let Err(e) = detached {
            tracing::warn!("detach the rootfs bind {}: {e}", record.rootfs.display());
        }
    }
}

/// The id of the mount `path` is on (`statx(2)` STATX_MNT_ID).
fn mount_id(path: &Path) -> Result<u64> {
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        path,
        rustix::fs::AtFlags::empty(),
        rustix::fs::StatxFlags::MNT_ID,
    )
    .with_context(|| format!("statx {}", path.display()))?;
    Ok(st.stx_mnt_id)
}
