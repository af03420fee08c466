//! The container's root filesystem: propagation, the rootfs bind mount, devices, /dev links,
//! masked and read-only paths, sysctls, then `pivot_root` (or `MS_MOVE` + `chroot`).
//!
//! Everything that touches a path inside the rootfs goes through `resolve` (openat2
//! RESOLVE_IN_ROOT) while the host /proc is still reachable for `/proc/self/fd/N` targets.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{mount, mount_bind_recursive, mount_change, MountFlags, MountPropagationFlags};

use super::mounts::{propagation_flags, remount_bind};
use super::resolve::{ensure_in_root, fd_path, open_in_root, Leaf};
use crate::spec::{Device, DeviceKind, NamespaceKind, Plan};

/// The first steps on the mounts, as runc's `prepareRoot`: give every mount the requested
/// `linux.rootfsPropagation` (rslave when unset: nothing the container mounts reaches the
/// host, host mounts still propagate in), so that with `rshared` a volume bound from a shared
/// host mount stays in the host's peer group and mounts made inside reach the host (CSI node
/// plugins, Kubernetes `Bidirectional`). Then make the mount holding the rootfs private if it
/// is shared (pivot_root(2) refuses a shared parent, and the next bind must not propagate
/// out), and bind the rootfs onto itself, private, so it is a mount point for pivot_root.
/// Returns an `O_PATH` fd of the rootfs mount.
///
/// Without a mount namespace of its own the container's mounts are pier's: none of this is
/// done to the host's mounts; `create` has bound the rootfs already (`container::rootfs_bind`).
pub fn prepare(plan: &Plan) -> Result<OwnedFd> {
    if own_mount_namespace(plan) {
        mount_change("/", propagation_flags(plan.rootfs_propagation))
            .context("set the propagation of / (linux.rootfsPropagation, default rslave)")?;
        make_parent_private(&plan.rootfs)?;
        mount_bind_recursive(&plan.rootfs, &plan.rootfs)
            .with_context(|| format!("bind the rootfs {} onto itself", plan.rootfs.display()))?;
        mount_change(&plan.rootfs, MountPropagationFlags::PRIVATE)
            .context("make the rootfs private")?;
    }
    let fd = rustix::fs::open(
        &plan.rootfs,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .with_context(|| format!("open rootfs {}", plan.rootfs.display()))?;
    Ok(fd)
}

/// Whether the container has a mount namespace (made or joined) rather than pier's.
pub fn own_mount_namespace(plan: &Plan) -> bool {
    plan.has_namespace(NamespaceKind::Mount)
}

/// runc's `rootfsParentMountPrivate`: the mount the rootfs directory is on (found by its
/// mount id in mountinfo), made private when it is shared.
fn make_parent_private(rootfs: &std::path::Path) -> Result<()> {
    let st = rustix::fs::statx(
        rustix::fs::CWD,
        rootfs,
        rustix::fs::AtFlags::empty(),
        rustix::fs::StatxFlags::MNT_ID,
    )
    .with_context(|| format!("statx {}", rootfs.display()))?;
    let mountinfo =
        std::fs::read_to_string("/proc/self/mountinfo").context("read /proc/self/mountinfo")?;
    let (point, shared) = mount_of_id(&mountinfo, st.stx_mnt_id)
        .with_context(|| format!("the mount of {} is not in mountinfo", rootfs.display()))?;
    if shared {
        mount_change(point.as_str(), MountPropagationFlags::PRIVATE)
            .with_context(|| format!("make {point}, the rootfs's parent mount, private"))?;
    }
    Ok(())
}

/// The mount point (unescaped) of mount `id` in `/proc/self/mountinfo` text
/// (`proc_pid_mountinfo(5)`), and whether it is shared (a `shared:N` optional field).
fn mount_of_id(mountinfo: &str, id: u64) -> Option<(String, bool)> {
    mountinfo.lines().find_map(|line| {
        let (fields, _) = line.split_once(" - ")?;
        let fields: Vec<&str> = fields.split(' ').collect();
        if fields.first()?.parse::<u64>().ok()? != id {
            return None;
        }
        let shared = fields.get(6..)?.iter().any(|f| f.starts_with("shared:"));
        Some((unescape_octal(fields.get(4)?), shared))
    })
}

/// mountinfo writes space, tab, newline and backslash in paths as `\040`-style octal.
fn unescape_octal(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let code = b.get(i + 1..i + 4).filter(|_| b[i] == b'\\').and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match code {
            Some(c) => {
                out.push(c);
                i += 4;
            }
            None => {
                out.push(b[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Create the device nodes (`mknod(2)`), replacing whatever the image has at those paths.
/// In a user namespace, where mknod is refused, bind-mount the host's node at the same path
/// instead (its owner and mode are the host's), as runc does.
pub fn create_devices(plan: &Plan, root: BorrowedFd<'_>) -> Result<()> {
    let bind = crate::rootless::userns_rules(plan);
    for d in &plan.devices {
        let made = if bind {
            bind_device(d, root)
        } else {
            create_device(d, root)
        };
        made.with_context(|| format!("create device {}", d.path))?;
    }
    Ok(())
}

/// An empty file at the device's path, with the host's node bound onto it.
fn bind_device(d: &Device, root: BorrowedFd<'_>) -> Result<()> {
    let target = ensure_in_root(root, &d.path, Leaf::File)?;
    mount(
        d.path.as_str(),
        fd_path(&target),
        "",
        MountFlags::BIND,
        None,
    )
    .with_context(|| format!("bind the host's {}", d.path))?;
    Ok(())
}

fn create_device(d: &Device, root: BorrowedFd<'_>) -> Result<()> {
    let (parent, name) = d.path.rsplit_once('/').context("device path")?;
    let dir = ensure_in_root(
        root,
        if parent.is_empty() { "/" } else { parent },
        Leaf::Dir,
    )?;
    let kind = match d.kind {
        DeviceKind::Char => rustix::fs::FileType::CharacterDevice,
        DeviceKind::Block => rustix::fs::FileType::BlockDevice,
        DeviceKind::Fifo => rustix::fs::FileType::Fifo,
    };
    let dev = rustix::fs::makedev(d.major, d.minor);
    let mode = Mode::from_raw_mode(d.mode);
    let made = rustix::fs::mknodat(&dir, name, kind, mode, dev);
    if made == Err(rustix::io::Errno::EXIST) {
        rustix::fs::unlinkat(&dir, name, rustix::fs::AtFlags::empty())?;
        rustix::fs::mknodat(&dir, name, kind, mode, dev)?;
    } else {
        made?;
    }
    let node = rustix::fs::openat(
        &dir,
        name,
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    // mknod applies the umask; set the exact mode and owner asked for.
    rustix::fs::chmodat(&dir, name, mode, rustix::fs::AtFlags::empty())?;
    rustix::fs::chownat(
        &dir,
        name,
        Some(rustix::fs::Uid::from_raw(d.uid)),
        Some(rustix::fs::Gid::from_raw(d.gid)),
        rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
    )?;
    drop(node);
    Ok(())
}

/// The /dev symlinks of runtime-spec "Default Devices": fd, stdin, stdout, stderr, ptmx.
/// An existing entry is left alone.
pub fn dev_symlinks(root: BorrowedFd<'_>) -> Result<()> {
    let Ok(dev) = open_in_root(root, "/dev") else {
        return Ok(());
    };
    let links = [
        ("/proc/self/fd", "fd"),
        ("/proc/self/fd/0", "stdin"),
        ("/proc/self/fd/1", "stdout"),
        ("/proc/self/fd/2", "stderr"),
        ("pts/ptmx", "ptmx"),
    ];
    for (target, name) in links {
        if name == "ptmx" {
            let _ = rustix::fs::unlinkat(&dev, name, rustix::fs::AtFlags::empty());
        }
        match rustix::fs::symlinkat(target, &dev, name) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(e).with_context(|| format!("symlink /dev/{name}")),
        }
    }
    Ok(())
}

/// `linux.maskedPaths`: a directory gets an empty read-only tmpfs, anything else /dev/null.
/// Paths the container does not have are skipped.
pub fn mask_paths(plan: &Plan, root: BorrowedFd<'_>) -> Result<()> {
    let mut null = None;
    for path in &plan.masked_paths {
        let Ok(target) = open_in_root(root, path) else {
            continue;
        };
        let is_dir = rustix::fs::fstat(&target)
            .is_ok_and(|st| rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir());
        let result = if is_dir {
            mount("tmpfs", fd_path(&target), "tmpfs", MountFlags::RDONLY, None)
        } else {
            let null = match &null {
                Some(fd) => fd,
                None => null.insert(open_null_device().with_context(|| format!("mask {path}"))?),
            };
            mount(fd_path(null), fd_path(&target), "", MountFlags::BIND, None)
        };
        result.with_context(|| format!("mask {path}"))?;
    }
    Ok(())
}

/// pier's `/dev/null` (never the image's: this runs before the root switch), opened `O_PATH`
/// without following a symlink and checked to be the null device, char 1:3, before anything
/// is bound from it: a masked path must never become a bind of some other file (the
/// CVE-2025-31133 class, where the runtime's /dev/null was replaced by a symlink to
/// /proc/sys/kernel/core_pattern or a regular file), as runc 1.2.8 checks.
///
/// # Errors
/// It cannot be opened, or it is not char 1:3.
fn open_null_device() -> Result<OwnedFd> {
    let fd = rustix::fs::open(
        "/dev/null",
        OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open /dev/null")?;
    let st = rustix::fs::fstat(&fd).context("fstat /dev/null")?;
    let is_char =
        rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::CharacterDevice;
    let rdev = st.st_rdev as rustix::fs::Dev;
    if !is_char || (rustix::fs::major(rdev), rustix::fs::minor(rdev)) != (1, 3) {
        anyhow::bail!("/dev/null is not the null device (char 1:3)");
    }
    Ok(fd)
}

/// `linux.readonlyPaths`: bind each onto itself and remount it read-only, keeping the
/// nosuid/nodev/noexec it had.
pub fn readonly_paths(plan: &Plan, root: BorrowedFd<'_>) -> Result<()> {
    for path in &plan.readonly_paths {
        let Ok(target) = open_in_root(root, path) else {
            continue;
        };
        mount_bind_recursive(fd_path(&target), fd_path(&target))
            .with_context(|| format!("bind {path}"))?;
        let target = open_in_root(root, path)?;
        let kept = kept_flags(&target);
        remount_bind(&target, MountFlags::RDONLY | kept)
            .with_context(|| format!("remount {path} read-only"))?;
    }
    Ok(())
}

/// The nosuid/nodev/noexec flags of the mount `fd` is on (`statvfs(3)` f_flag).
fn kept_flags(fd: &impl AsFd) -> MountFlags {
    let Ok(st) = rustix::fs::fstatvfs(fd) else {
        return MountFlags::empty();
    };
    let pairs = [
        (rustix::fs::StatVfsMountFlags::NOSUID, MountFlags::NOSUID),
        (rustix::fs::StatVfsMountFlags::NODEV, MountFlags::NODEV),
        (rustix::fs::StatVfsMountFlags::NOEXEC, MountFlags::NOEXEC),
    ];
    pairs
        .iter()
        .filter(|(v, _)| st.f_flag.contains(*v))
        .fold(MountFlags::empty(), |a, (_, m)| a | *m)
}

/// `linux.sysctl`: write each value to `/proc/sys/<key with dots as slashes>` inside.
pub fn sysctl(plan: &Plan) -> Result<()> {
    if plan.sysctl.is_empty() {
        return Ok(());
    }
    // A procfs of our own: a mount of config.json over /proc/sys (a volume with symlinks to
    // /proc/sys/kernel/core_pattern) cannot redirect these writes (CVE-2025-52881 class).
    let procfs = super::procfs::ProcFs::full().context("sysctl")?;
    for (key, value) in &plan.sysctl {
        let path = format!("sys/{}", key.replace('.', "/"));
        procfs
            .write(&path, value)
            .with_context(|| format!("sysctl {key}={value}"))?;
    }
    Ok(())
}

/// Make `process.cwd` exist inside the rootfs (runc creates it).
pub fn ensure_cwd(plan: &Plan, root: BorrowedFd<'_>) -> Result<()> {
    ensure_in_root(root, &plan.process.cwd, Leaf::Dir).map(drop)
}

/// Switch the root: `pivot_root(".", ".")` stacks the old root on top of the new one; from
/// a cwd in the old root (an fd opened before), make it rslave and detach it. Or `MS_MOVE` +
/// `chroot` with `--no-pivot`. In pier's own mount namespace (`own_mount_namespace` false)
/// only `chroot`: the host's root is neither pivoted nor covered (runc and crun do the same).
/// `rootfs` is the rootfs mount's fd from [`prepare`] (a user namespace's root may not reach
/// its path).
pub fn switch_root(rootfs: OwnedFd, no_pivot: bool, own_mount_namespace: bool) -> Result<()> {
    if !own_mount_namespace {
        rustix::process::fchdir(&rootfs).context("chdir to the rootfs")?;
        drop(rootfs);
        rustix::process::chroot(".").context("chroot")?;
        return rustix::process::chdir("/").context("chdir /");
    }
    let old_root = rustix::fs::open(
        "/",
        OFlags::DIRECTORY | OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open the old root")?;
    rustix::process::fchdir(&rootfs).context("chdir to the rootfs")?;
    drop(rootfs);
    if no_pivot {
        rustix::mount::mount_move(".", "/").context("move the rootfs onto /")?;
        rustix::process::chroot(".").context("chroot")?;
    } else {
        rustix::process::pivot_root(".", ".").context("pivot_root")?;
        rustix::process::fchdir(&old_root).context("fchdir to the old root")?;
        // Our unmount must not propagate back to the host.
        mount_change(
            ".",
            MountPropagationFlags::DOWNSTREAM | MountPropagationFlags::REC,
        )
        .context("make the old root rslave")?;
        rustix::mount::unmount(".", rustix::mount::UnmountFlags::DETACH)
            .context("detach the old root")?;
    }
    drop(old_root);
    rustix::process::chdir("/").context("chdir /")?;
    Ok(())
}

/// After the switch, the last steps on the mounts: the tmpfs and /dev mounts asked read-only
/// ([`super::mounts::remount_readonly`]), `root.readonly`, then `linux.rootfsPropagation`.
pub fn finish(plan: &Plan, readonly_later: Vec<super::mounts::ReadonlyLater>) -> Result<()> {
    super::mounts::remount_readonly(readonly_later)?;
    if plan.root_readonly {
        let root = rustix::fs::open("/", OFlags::PATH | OFlags::CLOEXEC, Mode::empty())?;
        let kept = kept_flags(&root);
        remount_bind(&root, MountFlags::RDONLY | kept).context("remount / read-only")?;
    }
    if !own_mount_namespace(plan) {
        // `/` is the rootfs bind in pier's namespace: it keeps the propagation it was given,
        // so that its detach at delete reaches wherever it was propagated.
        return Ok(());
    }
    // `/` itself only: the mounts below keep the propagation their options asked for.
    let mut root_only = plan.rootfs_propagation;
    root_only.recursive = false;
    mount_change("/", propagation_flags(root_only)).context("set rootfsPropagation")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_mount_of_an_id_and_whether_it_is_shared() {
        let text = "22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/sda1 rw\n\
                    61 22 0:5 / /srv/my\\040dir rw master:3 - tmpfs tmpfs rw\n\
                    62 22 0:6 / /x rw shared:4 master:3 - tmpfs tmpfs rw\n";
        assert_eq!(mount_of_id(text, 22), Some(("/".into(), true)));
        assert_eq!(mount_of_id(text, 61), Some(("/srv/my dir".into(), false)));
        assert_eq!(mount_of_id(text, 62), Some(("/x".into(), true)));
        assert_eq!(mount_of_id(text, 7), None);
    }
}
