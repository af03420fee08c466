//! The parent's part of user namespaces: writing the child's id maps (`/proc/<pid>/uid_map`,
//! `gid_map`, `user_namespaces(7)`) before it is released, and the idmapped mount trees.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::mount::OpenTreeFlags;

use crate::spec::{BindKind, IdMapping, MountIdmap, NamespaceKind, Plan};
use crate::sys::Forked;

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

/// For every idmapped mount of the plan (None for the others): a detached copy of its source
/// (`open_tree(OPEN_TREE_CLONE)`, the whole tree for `rbind`) made idmapped with
/// `mount_setattr(MOUNT_ATTR_IDMAP)`. Made by pier, host root, before the clone: the kernel
/// wants CAP_SYS_ADMIN over the filesystem's user namespace, which the init inside a user
/// namespace lacks; the init attaches the tree with `move_mount` (runc does the same).
///
/// # Errors
/// The source cannot be opened, or the kernel or filesystem refuses idmapped mounts.
pub fn idmapped_trees(plan: &Plan) -> Result<Vec<Option<OwnedFd>>> {
    let mut namespaces: Vec<(&MountIdmap, OwnedFd)> = Vec::new();
    let mut trees = Vec::with_capacity(plan.mounts.len());
    for m in &plan.mounts {
        let Some(idmap) = &m.idmap else {
            trees.push(None);
            continue;
        };
        let context = || format!("idmapped mount {} on {}", m.source, m.destination);
        let same = |(other, _): &&(&MountIdmap, OwnedFd)| {
            other.uid_mappings == idmap.uid_mappings && other.gid_mappings == idmap.gid_mappings
        };
        if !namespaces.iter().any(|n| same(&n)) {
            let userns = user_namespace_with(idmap).with_context(context)?;
            namespaces.push((idmap, userns));
        }
        let userns = &namespaces.iter().find(|n| same(n)).expect("just made").1;
        let source = plan.bundle.join(&m.source);
        let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
        if m.bind == Some(BindKind::Recursive) {
            flags |= OpenTreeFlags::AT_RECURSIVE;
        }
        let tree = rustix::mount::open_tree(rustix::fs::CWD, &source, flags)
            .with_context(|| format!("open_tree {}", source.display()))
            .with_context(context)?;
        crate::sys::mount_setattr_idmap(tree.as_fd(), userns.as_fd(), idmap.recursive)
            .context("mount_setattr(MOUNT_ATTR_IDMAP)")
            .with_context(context)?;
        trees.push(Some(tree));
    }
    Ok(trees)
}

/// A user namespace with `idmap`'s maps, held by an fd: a child is cloned into a new one, its
/// maps written, `/proc/<pid>/ns/user` opened, then the child exits (`user_namespaces(7)`).
fn user_namespace_with(idmap: &MountIdmap) -> Result<OwnedFd> {
    let (reader, writer) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    match crate::sys::clone3(libc::CLONE_NEWUSER, None).context("clone3(CLONE_NEWUSER)")? {
        Forked::Child => {
            crate::sys::close_inherited(writer.as_fd());
            // Until pier closes its end: EOF (or pier's death).
            let _ = rustix::io::read(&reader, &mut [0u8; 1]);
            crate::sys::exit_immediately(0)
        }
        Forked::Parent { pid, pidfd } => {
            drop(reader);
            let opened = write_map(pid, "uid_map", &idmap.uid_mappings)
                .and_then(|()| write_map(pid, "gid_map", &idmap.gid_mappings))
                .and_then(|()| {
                    rustix::fs::open(
                        format!("/proc/{pid}/ns/user"),
                        OFlags::RDONLY | OFlags::CLOEXEC,
                        Mode::empty(),
                    )
                    .context("open the user namespace")
                });
            drop(writer);
            let _ = rustix::process::waitid(
                rustix::process::WaitId::PidFd(pidfd.as_fd()),
                rustix::process::WaitIdOptions::EXITED,
            );
            opened
        }
    }
}
