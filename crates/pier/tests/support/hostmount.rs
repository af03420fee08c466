//! Host-side tmpfs mounts for tests that need a mount tree on the host (rbind, propagation),
//! detached again on drop.

use std::path::{Path, PathBuf};

use rustix::mount::{
    mount, mount_change, unmount, MountFlags, MountPropagationFlags, UnmountFlags,
};

/// A tmpfs mounted on the host at `path`; lazily unmounted (MNT_DETACH) on drop.
pub struct HostMount {
    path: PathBuf,
}

impl HostMount {
    /// Mounts a fresh tmpfs on the existing directory `path`.
    pub fn tmpfs(path: &Path) -> Self {
        mount(
            "tmpfs",
            path,
            "tmpfs",
            MountFlags::empty(),
            Some(c"size=1m"),
        )
        .unwrap_or_else(|e| panic!("mount tmpfs on {}: {e}", path.display()));
        HostMount {
            path: path.to_owned(),
        }
    }

    /// Makes this mount a shared peer group (`mount --make-shared`).
    pub fn make_shared(&self) -> &Self {
        mount_change(&self.path, MountPropagationFlags::SHARED).expect("make-shared");
        self
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for HostMount {
    fn drop(&mut self) {
        let _ = unmount(&self.path, UnmountFlags::DETACH);
    }
}
