//! The parent's part of user namespaces: writing the child's id maps (`/proc/<pid>/uid_map`,
//! `gid_map`, `user_namespaces(7)`) before it is released, and the idmapped mount trees.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::mount::OpenTreeFlags;

use crate::spec::{BindKind, IdMapping, MountIdmap, NamespaceKind, Plan};

/// Write `plan.uid_mappings` and `gid_mappings` for the child `pid` when the plan creates a
/// user namespace, as runc's nsexec: each map is written directly, and when the kernel says
/// EPERM to an unprivileged pier (a range that is not its own single id) through
/// `newuidmap`/`newgidmap` (package uidmap, ranges from /etc/subuid and /etc/subgid).
/// Unprivileged, `setgroups` is set to `deny` first when the gid map is exactly the caller's
/// own gid as 0, which the kernel requires for writing that map (`user_namespaces(7)`); as
/// root (or with other gid maps, left to newgidmap) it stays allowed, as runc does.
///
/// # Errors
/// The kernel refuses a map (EPERM: a host id pier may not map; EINVAL: a bad line), or the
/// mapping tool is missing or refuses the ranges (its message is included).
pub fn write_id_maps(pid: i32, plan: &Plan) -> Result<()> {
    if !plan.creates_namespace(NamespaceKind::User) {
        return Ok(());
    }
    let unprivileged = crate::rootless::unprivileged();
    if unprivileged && is_own_gid_as_root(&plan.gid_mappings) {
        let path = format!("/proc/{pid}/setgroups");
        std::fs::write(&path, "deny").with_context(|| format!("write deny to {path}"))?;
    }
    for (file, tool, maps) in [
        ("uid_map", "newuidmap", &plan.uid_mappings),
        ("gid_map", "newgidmap", &plan.gid_mappings),
    ] {
        match write_map(pid, file, maps) {
            Err(e) if unprivileged && is_eperm(&e) => map_with_tool(tool, pid, maps)?,
            other => other?,
        }
    }
    Ok(())
}

/// With a user namespace joined by path, config.json's mappings (if any) must be that
/// namespace's own, as runc 1.2 requires (containerd and CRI-O send both): the same ranges
/// are accepted with runc's warning, others refused with runc's message. The namespace's
/// maps are read from `/proc/<pid>/uid_map` for a `/proc/<pid>/ns/user` path, else by a
/// helper that joins it and reads its own.
///
/// # Errors
/// The maps differ, or cannot be read (the path is not a user namespace, or is gone).
pub fn check_joined_maps(plan: &Plan) -> Result<()> {
    let Some(path) = plan
        .namespaces
        .iter()
        .find(|n| n.kind == NamespaceKind::User)
        .and_then(|n| n.path.as_deref())
    else {
        return Ok(());
    };
    if plan.uid_mappings.is_empty() && plan.gid_mappings.is_empty() {
        return Ok(());
    }
    let (uid_map, gid_map) = namespace_maps(path)
        .with_context(|| format!("failed to cache mappings for userns {}", path.display()))?;
    let same = |given: &[IdMapping], actual: &str| {
        let mut given: Vec<String> = given.iter().map(IdMapping::map_line).collect();
        let mut actual: Vec<String> = actual
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .filter(|l| !l.is_empty())
            .collect();
        given.sort();
        actual.sort();
        given == actual
    };
    if !same(&plan.uid_mappings, &uid_map) || !same(&plan.gid_mappings, &gid_map) {
        anyhow::bail!("user namespaces enabled, but both namespace path and non-matching mapping specified -- you may only provide one");
    }
    tracing::warn!("config.json has both a userns path to join and a matching userns mapping specified -- you may only provide one");
    Ok(())
}

/// The `uid_map` and `gid_map` text of the user namespace at `path`.
fn namespace_maps(path: &std::path::Path) -> Result<(String, String)> {
    let pid = path
        .to_str()
        .and_then(|p| p.strip_prefix("/proc/"))
        .and_then(|p| p.strip_suffix("/ns/user"))
        .and_then(|p| p.parse::<u32>().ok())
        .filter(|pid| *pid > 0);
    if let Some(pid) = pid {
        let read = |f: &str| std::fs::read_to_string(format!("/proc/{pid}/{f}"));
        if let (Ok(u), Ok(g)) = (read("uid_map"), read("gid_map")) {
            return Ok((u, g));
        }
    }
    let ns = rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .with_context(|| format!("open {}", path.display()))?;
    let (to_pier, from_helper) =
        crate::channel::pair_of::<Result<(String, String), String>, ()>().context("socketpair")?;
    let keep = [ns.as_raw_fd(), to_pier.as_fd().as_raw_fd()];
    let helper = crate::sys::fork_helper(&keep, move || {
        let read = || -> Result<(String, String)> {
            rustix::thread::move_into_link_name_space(
                ns.as_fd(),
                Some(rustix::thread::LinkNameSpaceType::User),
            )
            .context("not a user namespace (setns)")?;
            let read = |f: &str| std::fs::read_to_string(format!("/proc/self/{f}"));
            Ok((read("uid_map")?, read("gid_map")?))
        };
        let report = read().map_err(|e| format!("{e:#}"));
        i32::from(to_pier.send(&report).is_err())
    })
    .context("fork")?;
    let got = from_helper.recv();
    crate::sys::kill_and_reap(helper.pidfd.as_fd());
    match got.context("read from the helper")? {
        Some(Ok(maps)) => Ok(maps),
        Some(Err(chain)) => anyhow::bail!("{chain}"),
        None => anyhow::bail!("the helper exited without an answer"),
    }
}

/// runc's `requiresRootOrMappingTool` negated: the gid map is `0 <egid> 1`.
fn is_own_gid_as_root(maps: &[IdMapping]) -> bool {
    let egid = rustix::process::getegid().as_raw();
    matches!(maps, [m] if m.container_id == 0 && m.host_id == egid && m.size == 1)
}

fn is_eperm(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.raw_os_error() == Some(libc::EPERM))
}

/// `newuidmap <pid> <containerID> <hostID> <size>...` (`newuidmap(1)`), found on `$PATH` and
/// run by [`crate::tool::run`] (its output captured for the error), with pier's environment.
///
/// # Errors
/// The tool is not on `$PATH`, cannot be executed, or exits non-zero (its stderr is quoted).
fn map_with_tool(tool: &str, pid: i32, maps: &[IdMapping]) -> Result<()> {
    let ranges: Vec<String> = maps.iter().map(IdMapping::map_line).collect();
    let what = format!(
        "{tool} {pid} for the rootless container ({})",
        ranges.join(", ")
    );
    let mut args = vec![tool.to_string(), pid.to_string()];
    for m in maps {
        args.extend([m.container_id, m.host_id, m.size].map(|n| n.to_string()));
    }
    let (status, said) = crate::tool::run(tool, &args)
        .with_context(|| format!("run {tool} (package uidmap) on $PATH"))
        .with_context(|| what.clone())?;
    if status.exit_status() != Some(0) {
        let status = super::describe_status(&status);
        anyhow::bail!("{what}: {status} ({})", said.trim());
    }
    Ok(())
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
    // The child keeps only the read end: EOF comes when pier closes its end (or dies).
    let child = crate::sys::clone_child(libc::CLONE_NEWUSER, None, &[reader.as_raw_fd()], || {
        let _ = rustix::io::read(&reader, &mut [0u8; 1]);
        0
    })
    .context("clone3(CLONE_NEWUSER)")?;
    let pid = child.pid;
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
        rustix::process::WaitId::PidFd(child.pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    );
    opened
}
