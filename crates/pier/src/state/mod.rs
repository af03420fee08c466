//! The container directory `<root>/<id>/`: its lock, `state.json`, and the status derived from
//! what is on disk and in /proc.
//!
//! Layout: `state.json` (written to a temporary name and renamed, so a reader never sees half
//! a file), `cgroup.json` (the cgroup create is about to make, recorded first), `exec.fifo` (present from create until start: the init blocks opening it for
//! writing), and `notify/` (the sd_notify socket directory, see `notify`). Commands that change
//! a container hold an exclusive `flock(2)` on the directory while they change it (and drop it
//! before waiting on the container); commands that only read take no lock.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, ErrorKind};
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use rustix::fs::{FlockOperation, Mode, OFlags};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::error::ContainerError;
use crate::spec::SPEC_VERSION;

/// Name of the exec fifo inside the container directory.
pub const EXEC_FIFO: &str = "exec.fifo";

/// Where create records the cgroup it is about to make (before state.json exists).
const CGROUP_RECORD: &str = "cgroup.json";
const ROOTFS_BIND_RECORD: &str = "rootfs-bind.json";

/// The rootfs bind mount `create` makes in pier's own mount namespace for a container that has
/// none of its own (`container::rootfs_bind`): enough for `delete` to detach it, and only it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RootfsBind {
    /// `root.path`, absolute.
    pub rootfs: PathBuf,
    /// The mount id (`statx(2)` STATX_MNT_ID) at `rootfs` before the bind.
    pub below: u64,
    /// The bind's own mount id, once it is made.
    pub ours: Option<u64>,
}

/// The OCI states (runtime-spec "State"), plus runc's `paused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Creating,
    Created,
    Running,
    Paused,
    Stopped,
}

impl Status {
    /// The lowercase name used in `state` and `list` output.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Creating => "creating",
            Status::Created => "created",
            Status::Running => "running",
            Status::Paused => "paused",
            Status::Stopped => "stopped",
        }
    }
}

/// What `state.json` holds: the OCI state fields plus what later commands need.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct State {
    pub oci_version: String,
    pub id: String,
    /// Host pid of the container's init.
    pub pid: i32,
    /// Start time of `pid` in clock ticks since boot (`/proc/<pid>/stat` field 22), so a
    /// reused pid is never mistaken for the init.
    pub pid_start_time: u64,
    pub bundle: PathBuf,
    pub rootfs: PathBuf,
    /// RFC 3339 creation time, nanoseconds, UTC.
    pub created: String,
    /// Name of the user that created the container (runc's `owner`).
    pub owner: String,
    pub annotations: BTreeMap<String, String>,
    /// The cgroup, as the `cgroups` module persists it.
    pub cgroup: crate::cgroups::CgroupState,
    /// Whether the init runs in its own pid namespace (kill --all semantics).
    pub own_pid_namespace: bool,
    /// config.json's `hooks`, for the points after create (poststart in start, poststop in
    /// delete), as runc keeps them in its state.json. Absent in a state.json written before
    /// hooks were supported: none.
    #[serde(default)]
    pub hooks: crate::spec::Hooks,
}

/// Check a container id: `^[A-Za-z0-9][A-Za-z0-9_.+-]*$`, at most 255 bytes, never `..`.
///
/// # Errors
/// [`ContainerError::InvalidId`].
pub fn validate_id(id: &str) -> Result<(), ContainerError> {
    let mut chars = id.chars();
    let first_ok = chars.next().is_some_and(|c| c.is_ascii_alphanumeric());
    let rest_ok = chars.all(|c| c.is_ascii_alphanumeric() || "_.+-".contains(c));
    // 255: one path component (NAME_MAX), as the id names a directory and cgroups.
    if !first_ok || !rest_ok || id.len() > 255 || id.contains("..") {
        return Err(ContainerError::InvalidId(id.to_string()));
    }
    Ok(())
}

/// A container id that passed [`validate_id`]: what [`ContainerDir::create`] takes, so the
/// id is checked once, before config.json is read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContainerId(String);

impl ContainerId {
    /// Check `id` (see [`validate_id`]).
    ///
    /// # Errors
    /// [`ContainerError::InvalidId`].
    pub fn parse(id: &str) -> Result<ContainerId, ContainerError> {
        validate_id(id)?;
        Ok(ContainerId(id.to_string()))
    }

    /// The id.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// An open, locked container directory.
pub struct ContainerDir {
    path: PathBuf,
    fd: OwnedFd,
}

impl ContainerDir {
    /// Make `<root>/<id>` (and `root`, mode 0700) and lock it.
    ///
    /// # Errors
    /// [`ContainerError::Exists`], or an I/O error.
    pub fn create(root: &Path, id: &ContainerId) -> Result<ContainerDir> {
        fs::create_dir_all(root)
            .with_context(|| format!("create state root {}", root.display()))?;
        let path = root.join(id.as_str());
        match rustix::fs::mkdir(&path, Mode::from_raw_mode(0o711)) {
            Err(rustix::io::Errno::EXIST) => return Err(ContainerError::Exists.into()),
            other => other.with_context(|| format!("create {}", path.display()))?,
        }
        let dir = Self::lock(path.clone(), FlockOperation::LockExclusive);
        if dir.is_err() {
            let _ = fs::remove_dir_all(&path);
        }
        dir
    }

    /// Open and lock an existing container directory.
    ///
    /// # Errors
    /// [`ContainerError::InvalidId`], [`ContainerError::NotExist`], or an I/O error.
    pub fn open(root: &Path, id: &str) -> Result<ContainerDir> {
        Self::open_with(root, id, FlockOperation::LockExclusive)
    }

    /// Open an existing container directory without locking it, for commands that only read
    /// (`state`, `list`, `kill`): state.json is replaced atomically, so a reader never waits
    /// on a create or start that is slow or stuck.
    ///
    /// # Errors
    /// As [`ContainerDir::open`].
    pub fn open_unlocked(root: &Path, id: &str) -> Result<ContainerDir> {
        validate_id(id)?;
        let path = root.join(id);
        match rustix::fs::open(
            &path,
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(ContainerDir { path, fd }),
            Err(rustix::io::Errno::NOENT) => Err(ContainerError::NotExist.into()),
            Err(e) => Err(e).with_context(|| format!("open {}", path.display())),
        }
    }

    fn open_with(root: &Path, id: &str, op: FlockOperation) -> Result<ContainerDir> {
        validate_id(id)?;
        match Self::lock(root.join(id), op) {
            Err(e) if is_not_found(&e) => Err(ContainerError::NotExist.into()),
            other => other,
        }
    }

    /// Release the lock (the directory stays open), before a long wait on the container.
    pub fn unlock(&self) {
        let _ = rustix::fs::flock(&self.fd, FlockOperation::Unlock);
    }

    fn lock(path: PathBuf, op: FlockOperation) -> Result<ContainerDir> {
        let fd = rustix::fs::open(
            &path,
            OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::RDONLY,
            Mode::empty(),
        )
        .map_err(io::Error::from)
        .with_context(|| format!("open {}", path.display()))?;
        rustix::fs::flock(&fd, op).with_context(|| format!("lock {}", path.display()))?;
        Ok(ContainerDir { path, fd })
    }

    /// The directory's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory fd (for `*at` calls and binding sockets inside it).
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Write `state.json` atomically (temporary file + rename).
    pub fn write_state(&self, state: &State) -> Result<()> {
        let tmp = self.path.join(".state.json.tmp");
        let json = serde_json::to_vec(state)?;
        fs::write(&tmp, json).with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, self.path.join("state.json")).context("rename state.json")?;
        Ok(())
    }

    /// Record, before `create` makes it, where the container's cgroup goes (`cgroup.json`,
    /// written like state.json), so a `delete` after a killed create can remove it.
    pub fn write_cgroup_record(&self, cgroup: &crate::cgroups::CgroupState) -> Result<()> {
        let tmp = self.path.join(".cgroup.json.tmp");
        fs::write(&tmp, serde_json::to_vec(cgroup)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, self.path.join(CGROUP_RECORD)).context("rename cgroup.json")?;
        Ok(())
    }

    /// What [`ContainerDir::write_cgroup_record`] wrote; `None` if create died before it.
    pub fn read_cgroup_record(&self) -> Result<Option<crate::cgroups::CgroupState>> {
        match fs::read(self.path.join(CGROUP_RECORD)) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).context("parse cgroup.json")?,
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("read cgroup.json"),
        }
    }

    /// Record the rootfs bind of a container without a mount namespace (`rootfs-bind.json`,
    /// written like state.json): before the bind, then with its mount id.
    pub fn write_rootfs_bind_record(&self, bind: &RootfsBind) -> Result<()> {
        let tmp = self.path.join(".rootfs-bind.json.tmp");
        fs::write(&tmp, serde_json::to_vec(bind)?)
            .with_context(|| format!("write {}", tmp.display()))?;
        fs::rename(&tmp, self.path.join(ROOTFS_BIND_RECORD)).context("rename rootfs-bind.json")?;
        Ok(())
    }

    /// What [`ContainerDir::write_rootfs_bind_record`] wrote; `None` for a container with its
    /// own mount namespace.
    pub fn read_rootfs_bind_record(&self) -> Result<Option<RootfsBind>> {
        match fs::read(self.path.join(ROOTFS_BIND_RECORD)) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).context("parse rootfs-bind.json")?,
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("read rootfs-bind.json"),
        }
    }

    /// Read `state.json`; `None` when the container is still being created.
    pub fn read_state(&self) -> Result<Option<State>> {
        match fs::read(self.path.join("state.json")) {
            Ok(bytes) => Ok(Some(
                serde_json::from_slice(&bytes).context("parse state.json")?,
            )),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e).context("read state.json"),
        }
    }

    /// Whether `exec.fifo` still exists (the container has not been started).
    pub fn has_exec_fifo(&self) -> bool {
        self.path.join(EXEC_FIFO).exists()
    }

    /// Remove the directory and everything in it. The lock goes with the fd.
    pub fn remove(self) -> Result<()> {
        match fs::remove_dir_all(&self.path) {
            Err(e) if e.kind() != ErrorKind::NotFound => {
                Err(e).with_context(|| format!("remove {}", self.path.display()))
            }
            _ => Ok(()),
        }
    }
}

fn is_not_found(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == ErrorKind::NotFound)
            || c.downcast_ref::<rustix::io::Errno>() == Some(&rustix::io::Errno::NOENT)
    })
}

/// The ids of every container directory under `root`, sorted (for `list`).
pub fn list_ids(root: &Path) -> Result<Vec<String>> {
    let entries = match fs::read_dir(root) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e).with_context(|| format!("read {}", root.display())),
    };
    let mut ids: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|id| validate_id(id).is_ok())
        .collect();
    ids.sort();
    Ok(ids)
}

/// Start time of `pid` in clock ticks since boot, or None if it does not exist or is a zombie
/// (`proc_pid_stat(5)`: field 3 state, field 22 starttime).
pub fn process_start_time(pid: i32) -> Option<u64> {
    let stat = stat_fields(pid)?;
    let fields: Vec<&str> = stat.split(' ').collect();
    if fields.first() == Some(&"Z") || fields.first() == Some(&"X") {
        return None;
    }
    fields.get(19)?.parse().ok()
}

/// The exit status of a zombie not yet reaped by its parent (`proc_pid_stat(5)` field 52,
/// a wait status), as an exit code (128+N when killed by signal N).
pub fn zombie_exit_code(pid: i32) -> Option<u8> {
    let raw: i32 = stat_fields(pid)?.split(' ').nth(49)?.trim().parse().ok()?;
    let (code, sig) = ((raw >> 8) & 0xff, raw & 0x7f);
    Some(if sig != 0 {
        (128 + sig) as u8
    } else {
        code as u8
    })
}

/// `/proc/<pid>/stat` from field 3 on, space-separated. The command name (field 2) may hold
/// spaces and parentheses, so the line is split after its last ')'. One read of up to 1 KiB:
/// procfs returns as much of the line as asked for (fs::read_to_string would stat the file,
/// see size 0, and read it 32, 32, 64, ... bytes at a time).
fn stat_fields(pid: i32) -> Option<String> {
    let mut buf = [0u8; 1024];
    let len = io::Read::read(
        &mut fs::File::open(format!("/proc/{pid}/stat")).ok()?,
        &mut buf,
    )
    .ok()?;
    let stat = std::str::from_utf8(&buf[..len]).ok()?;
    Some(stat.get(stat.rfind(')')? + 2..)?.to_string())
}

impl State {
    /// Whether the recorded init still exists (same pid and start time, not a zombie).
    pub fn init_alive(&self) -> bool {
        self.pid > 0 && process_start_time(self.pid) == Some(self.pid_start_time)
    }
}

/// Derive the status from the state, the exec fifo and the cgroup freezer.
pub fn status(dir: &ContainerDir, state: Option<&State>) -> Status {
    let Some(state) = state else {
        return Status::Creating;
    };
    if !state.init_alive() {
        return Status::Stopped;
    }
    if dir.has_exec_fifo() {
        return Status::Created;
    }
    if crate::cgroups::Cgroup::from_state(&state.cgroup).is_frozen() {
        return Status::Paused;
    }
    Status::Running
}

/// The JSON object of `state` and of each `list --format json` entry. `pid` is 0 once the
/// container has stopped, as runc reports it.
pub fn oci_json(id: &str, status: Status, saved: Option<&State>) -> Value {
    let Some(s) = saved else {
        return json!({"ociVersion": SPEC_VERSION, "id": id, "pid": 0, "status": status.as_str(), "bundle": "", "rootfs": "", "created": "", "owner": ""});
    };
    let pid = if status == Status::Stopped { 0 } else { s.pid };
    let mut v = json!({
        "ociVersion": SPEC_VERSION,
        "id": s.id,
        "pid": pid,
        "status": status.as_str(),
        "bundle": s.bundle,
        "rootfs": s.rootfs,
        "created": s.created,
        "owner": s.owner,
    });
    if !s.annotations.is_empty() {
        v["annotations"] = json!(s.annotations);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids() {
        for ok in ["a", "c1", "A.b_c+d-e", "0"] {
            assert!(validate_id(ok).is_ok(), "{ok}");
        }
        let long = "a".repeat(256);
        for bad in [
            "",
            "..",
            "a/b",
            "/a",
            ".a",
            "-a",
            "a..b",
            "a b",
            "a\nb",
            long.as_str(),
        ] {
            assert!(validate_id(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn own_start_time_is_known_and_a_missing_pid_is_not() {
        assert!(process_start_time(std::process::id() as i32).is_some());
        assert!(process_start_time(i32::MAX).is_none());
    }

    #[test]
    fn create_refuses_a_duplicate_and_open_reports_absence() {
        let root = tempfile::tempdir().unwrap();
        let id = ContainerId::parse("c1").unwrap();
        let dir = ContainerDir::create(root.path(), &id).unwrap();
        let err = ContainerDir::create(root.path(), &id).err().unwrap();
        assert_eq!(
            err.downcast_ref::<ContainerError>(),
            Some(&ContainerError::Exists)
        );
        dir.remove().unwrap();
        let err = ContainerDir::open(root.path(), "c1").err().unwrap();
        assert_eq!(
            err.downcast_ref::<ContainerError>(),
            Some(&ContainerError::NotExist)
        );
    }
}
