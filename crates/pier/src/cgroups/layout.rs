//! Which of the container's cgroup directories serves each controller.
//!
//! On a v1 or hybrid host a controller lives in the v1 hierarchy that mounts it; a controller
//! that no v1 hierarchy mounts may still be available on the cgroup2 hierarchy (this host's
//! hugetlb). On a pure v2 host every controller is in the one directory. `cgroups(7)`,
//! kernel `Documentation/admin-guide/cgroup-v2.rst` ("Controlling Controllers").

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use super::hierarchy::{self, Hierarchy};

/// A resource controller pier writes limits to or reads statistics from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Controller {
    Cpu,
    Cpuacct,
    Cpuset,
    Memory,
    Pids,
    /// `blkio` on v1, `io` on v2.
    Io,
    Hugetlb,
    /// v1 `devices`; on v2 an eBPF program on the directory.
    Devices,
    /// v1 `freezer`; on v2 the core `cgroup.freeze` file.
    Freezer,
    NetCls,
    NetPrio,
}

impl Controller {
    /// The v1 controller name (`/proc/cgroups`).
    pub fn v1_name(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Io => "blkio",
            Controller::Hugetlb => "hugetlb",
            Controller::Devices => "devices",
            Controller::Freezer => "freezer",
            Controller::NetCls => "net_cls",
            Controller::NetPrio => "net_prio",
        }
    }

    /// The v2 controller name (`cgroup.controllers`); `None` for what v2 provides without a
    /// controller (devices, freezer) or not at all (net_cls, net_prio).
    pub fn v2_name(self) -> Option<&'static str> {
        match self {
            Controller::Cpu | Controller::Cpuacct => Some("cpu"),
            Controller::Cpuset => Some("cpuset"),
            Controller::Memory => Some("memory"),
            Controller::Pids => Some("pids"),
            Controller::Io => Some("io"),
            Controller::Hugetlb => Some("hugetlb"),
            Controller::Devices
            | Controller::Freezer
            | Controller::NetCls
            | Controller::NetPrio => None,
        }
    }
}

/// The mounted hierarchy `dir` lies in: the one with the longest mountpoint above it.
fn owner<'a>(dir: &Path, mounted: &'a [Hierarchy]) -> Option<&'a Hierarchy> {
    mounted
        .iter()
        .filter(|h| lies_in(dir, &h.mountpoint))
        .max_by_key(|h| h.mountpoint.as_os_str().len())
}

/// Whether `dir` lies in `mountpoint`, by whole components (`/a/bc` is not in `/a/b`).
/// Compared as bytes, not with `Path::starts_with`'s component walk (`list` asks this for
/// each directory of each container against each hierarchy): mountinfo's mountpoints and
/// the directories pier makes below them are normalised (no `//`, `.` or trailing `/`).
fn lies_in(dir: &Path, mountpoint: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (dir, mountpoint) = (
        dir.as_os_str().as_bytes(),
        mountpoint.as_os_str().as_bytes(),
    );
    dir.starts_with(mountpoint)
        && (dir.len() == mountpoint.len()
            || mountpoint.ends_with(b"/")
            || dir[mountpoint.len()] == b'/')
}

/// The files that say whether a container whose directories are `dirs` is frozen:
/// `freezer.state` in each v1 hierarchy that carries the freezer, `cgroup.freeze` in the
/// cgroup2 directory. Only these can exist among its directories, so reading them answers
/// what probing both names in every directory would (`list` asks this for every container).
pub fn freezer_files(dirs: &[PathBuf], mounted: &[Hierarchy]) -> Vec<(PathBuf, Version)> {
    dirs.iter()
        .filter_map(|dir| {
            let h = owner(dir, mounted)?;
            if h.is_v2() {
                Some((dir.join("cgroup.freeze"), Version::V2))
            } else if h
                .controllers
                .iter()
                .any(|c| c == Controller::Freezer.v1_name())
            {
                Some((dir.join("freezer.state"), Version::V1))
            } else {
                None
            }
        })
        .collect()
}

/// Which cgroup version a directory belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    V1,
    V2,
}

/// Where one controller is served: a directory and its version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Target<'a> {
    pub dir: &'a Path,
    pub version: Version,
}

/// The container's directories, each with the controllers its hierarchy carries.
#[derive(Debug, Clone, Default)]
pub struct Layout {
    /// (v1 controllers of the hierarchy, the container's directory in it).
    v1: Vec<(Vec<String>, PathBuf)>,
    v2: Option<V2>,
}

#[derive(Debug, Clone)]
struct V2 {
    mountpoint: PathBuf,
    dir: PathBuf,
    /// Controllers the cgroup2 root offers (its `cgroup.controllers`).
    available: Vec<String>,
}

impl Layout {
    /// Match each directory to the mounted hierarchy it lies in and read which controllers
    /// cgroup2 offers.
    ///
    /// # Errors
    /// mountinfo or `/proc/self/cgroup` cannot be read.
    pub fn load(dirs: &[PathBuf]) -> Result<Layout> {
        let mounted = hierarchy::mounted()?;
        let v2_root = mounted
            .iter()
            .find(|h| h.is_v2())
            .map(|h| h.mountpoint.clone());
        let available = v2_root
            .and_then(|m| fs::read_to_string(m.join("cgroup.controllers")).ok())
            .unwrap_or_default();
        Ok(Layout::new(dirs, &mounted, &available))
    }

    /// Pure part of [`Layout::load`]: `available` is the cgroup2 root's `cgroup.controllers`.
    pub fn new(dirs: &[PathBuf], mounted: &[Hierarchy], available: &str) -> Layout {
        let mut layout = Layout::default();
        for dir in dirs {
            let Some(h) = owner(dir, mounted) else {
                continue;
            };
            if h.is_v2() {
                layout.v2 = Some(V2 {
                    mountpoint: h.mountpoint.clone(),
                    dir: dir.clone(),
                    available: available.split_whitespace().map(String::from).collect(),
                });
            } else {
                layout.v1.push((h.controllers.clone(), dir.clone()));
            }
        }
        layout
    }

    /// The directory serving `c`: its v1 hierarchy if one mounts it, else cgroup2 if it offers
    /// it (devices and freezer: whenever there is a cgroup2 directory).
    pub fn target(&self, c: Controller) -> Option<Target<'_>> {
        let v1 = self
            .v1
            .iter()
            .find(|(ctrls, _)| ctrls.iter().any(|n| n == c.v1_name()));
        if let Some((_, dir)) = v1 {
            return Some(Target {
                dir,
                version: Version::V1,
            });
        }
        let v2 = self.v2.as_ref()?;
        let offered = match c.v2_name() {
            Some(name) => v2.available.iter().any(|a| a == name),
            None => matches!(c, Controller::Devices | Controller::Freezer),
        };
        offered.then_some(Target {
            dir: &v2.dir,
            version: Version::V2,
        })
    }

    /// The cgroup2 directory, if any.
    pub fn v2_dir(&self) -> Option<&Path> {
        self.v2.as_ref().map(|v| v.dir.as_path())
    }

    /// Whether the host has only cgroup2 (no v1 hierarchy, not even the named `systemd` one).
    pub fn is_pure_v2(&self) -> bool {
        self.v1.is_empty() && self.v2.is_some()
    }

    /// Enable every controller cgroup2 offers, one at a time, ignoring refusals.
    pub fn enable_v2_best_effort(&self) {
        let Some(v2) = &self.v2 else { return };
        for name in &v2.available {
            let _ = self.enable_v2(&[name.as_str()]);
        }
    }

    /// Whether the cgroup2 root offers controller `name` (for `unified` keys).
    pub fn v2_offers(&self, name: &str) -> bool {
        self.v2
            .as_ref()
            .is_some_and(|v| v.available.iter().any(|a| a == name))
    }

    /// Write `+name` to `cgroup.subtree_control` of every ancestor of the cgroup2 directory,
    /// from the root down, where it is not already enabled, so the directory gets the
    /// controller's files.
    ///
    /// # Errors
    /// An ancestor refuses: [`Busy`] when it holds processes itself (`EBUSY`, the
    /// no-internal-process rule), the write's error otherwise (`EACCES`: not the caller's).
    pub fn enable_v2(&self, names: &[&str]) -> Result<()> {
        let Some(v2) = &self.v2 else { return Ok(()) };
        let Ok(inner) = v2.dir.strip_prefix(&v2.mountpoint) else {
            return Ok(());
        };
        let components: Vec<_> = inner.components().collect();
        let mut ancestors = vec![v2.mountpoint.clone()];
        for c in &components[..components.len().saturating_sub(1)] {
            let next = ancestors.last().expect("starts non-empty").join(c);
            ancestors.push(next);
        }
        for ancestor in ancestors {
            let control = ancestor.join("cgroup.subtree_control");
            let enabled = fs::read_to_string(&control).unwrap_or_default();
            for name in names {
                if enabled.split_whitespace().any(|e| e == *name) {
                    continue;
                }
                match fs::write(&control, format!("+{name}")) {
                    Err(e) if e.raw_os_error() == Some(rustix::io::Errno::BUSY.raw_os_error()) => {
                        return Err(Busy {
                            cgroup: ancestor,
                            controller: (*name).to_string(),
                        }
                        .into());
                    }
                    written => written.with_context(|| {
                        format!("enable the {name} controller in {}", control.display())
                    })?,
                }
            }
        }
        Ok(())
    }
}

/// A cgroup that refused to enable a controller for its children because processes are in it
/// (`EBUSY`): cgroup v2's no-internal-process rule (kernel `cgroup-v2.rst`, "No Internal
/// Process Constraint"; systemd.io/CGROUP_DELEGATION: processes only in leaves).
#[derive(Debug, thiserror::Error)]
#[error(
    "cannot enable the {controller} controller in {}: processes are in that cgroup (cgroup v2's \
     no-internal-process rule: only a cgroup without processes enables controllers for its \
     children)",
    .cgroup.display()
)]
pub struct Busy {
    /// The refusing cgroup's directory.
    pub cgroup: PathBuf,
    /// The controller it did not enable.
    pub controller: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hybrid() -> Vec<Hierarchy> {
        let h = |m: &str, c: &[&str]| Hierarchy {
            mountpoint: PathBuf::from(m),
            controllers: c.iter().map(|s| s.to_string()).collect(),
            own_path: "/".into(),
        };
        vec![
            h("/sys/fs/cgroup/unified", &[]),
            h("/sys/fs/cgroup/memory", &["memory"]),
            h("/sys/fs/cgroup/cpu,cpuacct", &["cpu", "cpuacct"]),
        ]
    }

    #[test]
    fn v1_first_then_what_cgroup2_offers() {
        let dirs = [
            PathBuf::from("/sys/fs/cgroup/unified/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/c1"),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c1"),
        ];
        let l = Layout::new(&dirs, &hybrid(), "hugetlb\n");
        assert_eq!(l.target(Controller::Memory).unwrap().version, Version::V1);
        assert_eq!(
            l.target(Controller::Cpuacct).unwrap().dir,
            Path::new("/sys/fs/cgroup/cpu,cpuacct/c1")
        );
        let huge = l.target(Controller::Hugetlb).unwrap();
        assert_eq!(
            (huge.dir, huge.version),
            (Path::new("/sys/fs/cgroup/unified/c1"), Version::V2)
        );
        assert!(l.target(Controller::Pids).is_none());
        assert!(l.target(Controller::NetCls).is_none());
        assert_eq!(l.target(Controller::Freezer).unwrap().version, Version::V2);
    }

    #[test]
    fn pure_v2() {
        let mounted = vec![Hierarchy {
            mountpoint: "/sys/fs/cgroup".into(),
            controllers: vec![],
            own_path: "/".into(),
        }];
        let l = Layout::new(
            &[PathBuf::from("/sys/fs/cgroup/a/b")],
            &mounted,
            "cpuset cpu io memory pids",
        );
        assert_eq!(l.target(Controller::Cpuacct).unwrap().version, Version::V2);
        assert!(l.target(Controller::Hugetlb).is_none());
        assert!(l.v2_offers("io"));
        assert_eq!(
            freezer_files(&[PathBuf::from("/sys/fs/cgroup/a/b")], &mounted),
            [(
                PathBuf::from("/sys/fs/cgroup/a/b/cgroup.freeze"),
                Version::V2
            )]
        );
    }

    #[test]
    fn a_directory_lies_in_a_mountpoint_by_whole_components() {
        let cpu = Path::new("/sys/fs/cgroup/cpu");
        assert!(lies_in(Path::new("/sys/fs/cgroup/cpu/c1"), cpu));
        assert!(lies_in(cpu, cpu));
        assert!(!lies_in(Path::new("/sys/fs/cgroup/cpuacct/c1"), cpu));
        assert!(!lies_in(Path::new("/sys/fs/cgroup"), cpu));
        assert!(lies_in(Path::new("/sys/fs/cgroup/cpu/c1"), Path::new("/")));
        assert!(!lies_in(
            Path::new("/sys/fs/cgroup/cpu"),
            Path::new("/sys/fs/cgroup/cpu/c1")
        ));
    }

    #[test]
    fn freezer_files_name_the_v1_freezer_and_cgroup2_only() {
        let mut mounted = hybrid();
        mounted.push(Hierarchy {
            mountpoint: PathBuf::from("/sys/fs/cgroup/freezer"),
            controllers: vec!["freezer".into()],
            own_path: "/".into(),
        });
        let dirs = [
            PathBuf::from("/sys/fs/cgroup/unified/c1"),
            PathBuf::from("/sys/fs/cgroup/memory/c1"),
            PathBuf::from("/sys/fs/cgroup/freezer/c1"),
            PathBuf::from("/sys/fs/cgroup/cpu,cpuacct/c1"),
        ];
        assert_eq!(
            freezer_files(&dirs, &mounted),
            [
                (
                    PathBuf::from("/sys/fs/cgroup/unified/c1/cgroup.freeze"),
                    Version::V2
                ),
                (
                    PathBuf::from("/sys/fs/cgroup/freezer/c1/freezer.state"),
                    Version::V1
                ),
            ]
        );
        assert_eq!(freezer_files(&dirs[1..3], &mounted).len(), 1);
        assert!(freezer_files(&[PathBuf::from("/elsewhere/c1")], &mounted).is_empty());
    }
}
