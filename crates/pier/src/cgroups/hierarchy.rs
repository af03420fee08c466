//! The cgroup hierarchies mounted on this host (`/proc/self/mountinfo`) and pier's own place in
//! each (`/proc/self/cgroup`), see `cgroups(7)` and `proc_pid_mountinfo(5)`.

use std::borrow::Cow;
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use anyhow::{Context, Result};
use rustix::process::Pid;

/// One mounted hierarchy: cgroup2, or a v1 hierarchy with its controllers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hierarchy {
    /// Where it is mounted (`/sys/fs/cgroup/memory`).
    pub mountpoint: PathBuf,
    /// v1 controllers (`["cpu"]`, `["name=systemd"]`); empty for cgroup2.
    pub controllers: Vec<String>,
    /// pier's own cgroup in this hierarchy (`/user.slice/…`).
    pub own_path: String,
}

impl Hierarchy {
    /// Whether this is the cgroup2 (unified) hierarchy.
    pub fn is_v2(&self) -> bool {
        self.controllers.is_empty()
    }

    /// The container's directory for a `cgroupsPath`: absolute from the hierarchy's root,
    /// relative from pier's own cgroup.
    pub fn container_dir(&self, path: &str) -> Result<PathBuf> {
        self.container_dir_from(&self.own_path, path)
    }

    /// [`Hierarchy::container_dir`] with a relative `path` taken from the cgroup `base` (a
    /// path inside the hierarchy, see [`relative_base`]).
    pub fn container_dir_from(&self, base: &str, path: &str) -> Result<PathBuf> {
        let inner = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("{}/{}", base.trim_end_matches('/'), path)
        };
        let inner = inner.trim_start_matches('/');
        if inner.is_empty() {
            anyhow::bail!("cgroupsPath {path:?} names the root cgroup");
        }
        if inner.split('/').any(|c| c == "..") {
            // /proc/self/cgroup says `/..` when pier's cgroup is outside its cgroup
            // namespace's root (entered with nsenter, say): no path under the mount names it.
            anyhow::bail!(
                "pier's own cgroup {base:?} is outside the root of its cgroup namespace; give an \
                 absolute cgroupsPath"
            );
        }
        Ok(self.mountpoint.join(inner))
    }

    /// pier's own cgroup's directory in this hierarchy.
    pub fn own_dir(&self) -> PathBuf {
        self.mountpoint.join(self.own_path.trim_start_matches('/'))
    }

    /// mkdir -p the container's directory; a v1 cpuset gets its parent's cpus and mems
    /// (an empty cpuset refuses tasks).
    pub fn make_dir(&self, dir: &Path) -> Result<()> {
        if self.controllers.iter().any(|c| c == "cpuset") {
            return make_cpuset_dir(&self.mountpoint, dir);
        }
        fs::create_dir_all(dir).with_context(|| format!("create cgroup {}", dir.display()))
    }
}

fn make_cpuset_dir(mountpoint: &Path, dir: &Path) -> Result<()> {
    if let Some(parent) = dir.parent() {
        if parent != mountpoint && !parent.exists() {
            make_cpuset_dir(mountpoint, parent)?;
        }
    }
    if !dir.exists() {
        fs::create_dir(dir).with_context(|| format!("create cgroup {}", dir.display()))?;
    }
    for file in ["cpuset.cpus", "cpuset.mems"] {
        let current = fs::read_to_string(dir.join(file)).unwrap_or_default();
        if current.trim().is_empty() {
            let parent = dir.parent().context("cpuset has no parent")?;
            let value = fs::read_to_string(parent.join(file))
                .with_context(|| format!("read parent {file}"))?;
            fs::write(dir.join(file), value.trim()).with_context(|| format!("write {file}"))?;
        }
    }
    Ok(())
}

/// Whether `dir` is on a cgroup2 filesystem.
pub fn is_cgroup2(dir: &Path) -> bool {
    const CGROUP2_SUPER_MAGIC: i64 = 0x6367_7270;
    rustix::fs::statfs(dir).is_ok_and(|s| s.f_type == CGROUP2_SUPER_MAGIC)
}

/// What [`mounted`] read, and in which process: `create` needs the list twice (directories,
/// then limits), and the container's init, a clone of that process, needs it again.
static MOUNTED: OnceLock<(Pid, Vec<Hierarchy>)> = OnceLock::new();

/// Every cgroup hierarchy mounted in this mount namespace, with pier's own path in it.
///
/// Read once per process (pier mounts no hierarchy, and moves itself only once the container's
/// directories are placed: into a leaf of its cgroup, `super::SELF_LEAF`, so `own_path` stays
/// the cgroup the placement used); a process that inherited another's copy (a clone) reads its
/// own.
///
/// # Errors
/// `/proc/self/mountinfo` or `/proc/self/cgroup` cannot be read.
pub fn mounted() -> Result<Vec<Hierarchy>> {
    mounted_ref().map(Cow::into_owned)
}

/// [`mounted`], borrowed from the process's copy when it has one (`list` asks for every
/// container).
///
/// # Errors
/// As [`mounted`].
pub fn mounted_ref() -> Result<Cow<'static, [Hierarchy]>> {
    let pid = rustix::process::getpid();
    if let Some((by, list)) = MOUNTED.get() {
        if *by == pid {
            return Ok(Cow::Borrowed(list.as_slice()));
        }
    }
    let list = read_mounted()?;
    let _ = MOUNTED.set((pid, list.clone()));
    Ok(Cow::Owned(list))
}

impl Hierarchy {
    /// The hierarchies as pier read them before it cloned this process (the container's init):
    /// the init's mount namespace is a copy of pier's, so the same hierarchies are mounted at
    /// the same places, and the mounts the init has made since are inside its rootfs (a
    /// duplicate would be dropped by [`parse`] anyway). `own_path` is pier's, not the init's.
    /// Read afresh when pier had not read them, and not to be used after joining another mount
    /// namespace.
    ///
    /// # Errors
    /// As [`mounted`], when the list has to be read.
    pub fn mounted_before_clone() -> Result<Vec<Hierarchy>> {
        match MOUNTED.get() {
            Some((_, list)) => Ok(list.clone()),
            None => read_mounted(),
        }
    }
}

fn read_mounted() -> Result<Vec<Hierarchy>> {
    let mountinfo = read_proc("/proc/self/mountinfo")?;
    let own = read_proc("/proc/self/cgroup")?;
    Ok(parse(&mountinfo, &own))
}

/// Read a procfs file whole. procfs reports a size of 0, so `fs::read_to_string` would probe
/// with reads of 32, 32, 64, ... bytes; reads into a page-sized buffer, doubled when full, take
/// a typical mountinfo in one read plus the one that returns 0.
fn read_proc(path: &str) -> Result<String> {
    let mut file = fs::File::open(path).with_context(|| format!("read {path}"))?;
    let mut buf = vec![0u8; 4096];
    let mut len = 0;
    loop {
        if len == buf.len() {
            buf.resize(2 * len, 0);
        }
        match file.read(&mut buf[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e).with_context(|| format!("read {path}")),
        }
    }
    buf.truncate(len);
    String::from_utf8(buf).with_context(|| format!("read {path}: not UTF-8"))
}

/// The cgroup a relative `cgroupsPath` (or the default one, the container id) starts from, in
/// a hierarchy where pier's own cgroup is `own`: that cgroup, or with `beside` its parent, as
/// runc's fs2 driver always does (libcontainer/cgroups/fs2/defaultpath.go: "the current user
/// scope most probably has tasks in it already, making it impossible to enable controllers
/// for its sub-cgroup"). The parent of the root cgroup is the root.
pub fn relative_base(own: &str, beside: bool) -> &str {
    if !beside {
        return own;
    }
    match own.trim_end_matches('/').rsplit_once('/') {
        Some((parent, _)) if !parent.is_empty() => parent,
        _ => "/",
    }
}

/// Whether systemd delegated the cgroup `dir` (a unit with `Delegate=yes`, a delegated scope):
/// systemd marks such a cgroup with the extended attribute `trusted.delegate` (and, since
/// 252, `user.delegate`, which an unprivileged reader and a user manager can use) set to `1`.
pub fn is_delegated(dir: &Path) -> bool {
    ["trusted.delegate", "user.delegate"].iter().any(|name| {
        let mut value = [0u8; 4];
        matches!(rustix::fs::getxattr(dir, *name, &mut value[..]), Ok(n) if value[..n] == *b"1")
    })
}

/// Pure parser of `mountinfo` and `/proc/self/cgroup` contents.
pub fn parse(mountinfo: &str, own_cgroups: &str) -> Vec<Hierarchy> {
    let mut out: Vec<Hierarchy> = Vec::new();
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        let pre: Vec<&str> = pre.split(' ').collect();
        let post: Vec<&str> = post.split(' ').collect();
        let (Some(mountpoint), Some(fstype), Some(opts)) = (pre.get(4), post.first(), post.get(2))
        else {
            continue;
        };
        let controllers: Vec<String> = match *fstype {
            "cgroup2" => Vec::new(),
            "cgroup" => opts
                .split(',')
                .filter(|o| {
                    !matches!(*o, "rw" | "ro")
                        && !o.starts_with("release_agent")
                        && *o != "clone_children"
                        && *o != "noprefix"
                        && *o != "xattr"
                })
                .map(String::from)
                .collect(),
            _ => continue,
        };
        if out.iter().any(|h| h.controllers == controllers) {
            continue; // the same hierarchy mounted twice
        }
        let own_path = own_path(own_cgroups, &controllers).unwrap_or_else(|| "/".to_string());
        out.push(Hierarchy {
            mountpoint: PathBuf::from(mountpoint),
            controllers,
            own_path,
        });
    }
    out
}

fn own_path(own_cgroups: &str, controllers: &[String]) -> Option<String> {
    own_cgroups.lines().find_map(|line| {
        let mut parts = line.splitn(3, ':');
        let (_, list, path) = (parts.next()?, parts.next()?, parts.next()?);
        let mut listed: Vec<&str> = list.split(',').filter(|c| !c.is_empty()).collect();
        let mut wanted: Vec<&str> = controllers.iter().map(String::as_str).collect();
        listed.sort_unstable();
        wanted.sort_unstable();
        (listed == wanted).then(|| path.to_string())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MOUNTINFO: &str = "\
30 24 0:26 / /sys/fs/cgroup ro,nosuid - tmpfs tmpfs ro,mode=755
31 30 0:27 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
32 30 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/cpu,cpuacct rw,relatime - cgroup cgroup rw,cpu,cpuacct
34 30 0:30 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
";
    const OWN: &str = "4:memory:/work\n3:cpu,cpuacct:/\n1:name=systemd:/init.scope\n0::/sess\n";

    #[test]
    fn hybrid_host() {
        let h = parse(MOUNTINFO, OWN);
        assert_eq!(h.len(), 4);
        assert!(h[0].is_v2());
        assert_eq!(h[0].own_path, "/sess");
        assert_eq!(h[1].controllers, ["name=systemd"]);
        assert_eq!(h[2].controllers, ["cpu", "cpuacct"]);
        assert_eq!(h[3].own_path, "/work");
    }

    #[test]
    fn relative_and_absolute_paths() {
        let h = &parse(MOUNTINFO, OWN)[3];
        assert_eq!(
            h.container_dir("c1").unwrap(),
            Path::new("/sys/fs/cgroup/memory/work/c1")
        );
        assert_eq!(
            h.container_dir("/a/b").unwrap(),
            Path::new("/sys/fs/cgroup/memory/a/b")
        );
        assert!(h.container_dir("/").is_err());
    }

    #[test]
    fn an_own_cgroup_outside_the_namespace_root_is_refused_for_a_relative_path() {
        let mut h = parse(MOUNTINFO, OWN).remove(0);
        h.own_path = "/../../host1".to_string();
        let err = h.container_dir("c1").unwrap_err().to_string();
        assert!(
            err.contains("outside the root of its cgroup namespace"),
            "{err}"
        );
        assert!(h.container_dir("/abs/c1").is_ok());
    }

    #[test]
    fn a_relative_path_starts_beside_pier_s_cgroup_when_asked() {
        let unit = "/system.slice/web.service";
        assert_eq!(relative_base(unit, true), "/system.slice");
        assert_eq!(relative_base(unit, false), unit);
        assert_eq!(relative_base("/init.scope", true), "/");
        assert_eq!(relative_base("/", true), "/");
        let v2 = &parse(MOUNTINFO, OWN)[0];
        assert_eq!(
            v2.container_dir_from(relative_base("/sys/web.service", true), "c1")
                .unwrap(),
            Path::new("/sys/fs/cgroup/unified/sys/c1")
        );
    }
}
