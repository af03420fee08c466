//! The container's cgroup, on whatever hierarchies the host mounts (v1, hybrid or v2).
//!
//! Every mounted hierarchy gets a directory for the container (`cgroups(7)`): on this kind of
//! hybrid host that is each v1 controller, the named `systemd` hierarchy and the cgroup2
//! mount. The cgroup2 directory is handed to `clone3(CLONE_INTO_CGROUP)`, so the init never
//! runs outside it; the v1 directories receive the pid right after clone, before the init
//! does anything. Unmounted controllers (net_cls, perf_event here) are simply absent.

mod hierarchy;

use std::fs;
use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::spec::CgroupPlan;
pub use hierarchy::{mounted as hierarchy_list, Hierarchy};

/// What `state.json` keeps of the cgroup: one directory per hierarchy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CgroupState {
    /// Absolute directories, one per mounted hierarchy, v2 (if any) first.
    pub dirs: Vec<PathBuf>,
    /// The path inside each hierarchy (`/…/<id>`), as reported to users.
    pub path: String,
}

/// A container cgroup.
pub struct Cgroup {
    state: CgroupState,
    unified: Option<OwnedFd>,
}

impl Cgroup {
    /// Create the container's directory in every mounted hierarchy. `plan.path` absolute is
    /// taken from each hierarchy's root, relative (or the default, the id) from pier's own
    /// cgroup in that hierarchy, as runc does. On error, what was created is removed.
    ///
    /// # Errors
    /// A path with `..`, or a directory that cannot be made (permissions, a v1 cpuset that
    /// cannot be initialised).
    pub fn create(plan: &CgroupPlan, id: &str) -> Result<Cgroup> {
        let path = plan.path.clone().unwrap_or_else(|| id.to_string());
        if path.split('/').any(|c| c == "..") {
            anyhow::bail!("cgroupsPath {path:?} must not contain \"..\"");
        }
        let mut cgroup = Cgroup { state: CgroupState { dirs: Vec::new(), path: path.clone() }, unified: None };
        for h in hierarchy::mounted()? {
            let dir = h.container_dir(&path)?;
            let made = h.make_dir(&dir);
            if let Err(e) = made {
                cgroup.destroy().ok();
                return Err(e);
            }
            if h.is_v2() {
                cgroup.state.dirs.insert(0, dir);
            } else {
                cgroup.state.dirs.push(dir);
            }
        }
        cgroup.open_unified();
        Ok(cgroup)
    }

    /// The cgroup as recorded in `state.json`.
    pub fn from_state(state: &CgroupState) -> Cgroup {
        Cgroup { state: state.clone(), unified: None }
    }

    fn open_unified(&mut self) {
        let v2 = self.state.dirs.iter().find(|d| hierarchy::is_cgroup2(d));
        self.unified = v2.and_then(|d| {
            rustix::fs::open(d, rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC, rustix::fs::Mode::empty()).ok()
        });
    }

    /// The cgroup2 directory fd for `clone3(CLONE_INTO_CGROUP)`, if there is a v2 hierarchy.
    pub fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        self.unified.as_ref().map(|fd| fd.as_fd())
    }

    /// What to persist.
    pub fn state(&self) -> &CgroupState {
        &self.state
    }

    /// Write `pid` to `cgroup.procs` of every hierarchy (those clone3 did not place it in).
    ///
    /// # Errors
    /// A write that fails (the process is gone, or the controller refuses it).
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for dir in &self.state.dirs {
            let procs = dir.join("cgroup.procs");
            fs::write(&procs, pid.to_string()).with_context(|| format!("write {}", procs.display()))?;
        }
        Ok(())
    }

    /// Pids in the container's cgroup (from the first hierarchy that lists them).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let Some(dir) = self.state.dirs.first() else { return Ok(Vec::new()) };
        read_pids(dir)
    }

    /// Send `signal` to every process of the cgroup.
    pub fn kill_all(&self, signal: rustix::process::Signal) -> Result<()> {
        for pid in self.pids()? {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, signal);
            }
        }
        Ok(())
    }

    /// Whether the cgroup is frozen (v2 `cgroup.freeze`, v1 `freezer.state`).
    pub fn is_frozen(&self) -> bool {
        self.state.dirs.iter().any(|d| {
            let v2 = fs::read_to_string(d.join("cgroup.freeze")).is_ok_and(|s| s.trim() == "1");
            let v1 = fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN");
            v2 || v1
        })
    }

    /// Remove the container's directories (children first). Missing ones are fine.
    ///
    /// # Errors
    /// A directory that still holds processes.
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        for dir in &self.state.dirs {
            if let Err(e) = remove_tree(dir) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

fn read_pids(dir: &Path) -> Result<Vec<i32>> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("read {}", procs.display())),
    }
}

/// rmdir a cgroup directory and its sub-cgroups, deepest first (`rmdir(2)` on cgroupfs).
fn remove_tree(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove cgroup {}", dir.display()))
        }
        _ => Ok(()),
    }
}
