//! The container lifecycle: a [`Container`] owns its locked state directory, its recorded
//! [`State`] (and through it the cgroup), and, while this process holds one, a pidfd of its
//! init. Every verb in `commands/` is glue over it: parse the arguments, call one or two of
//! these methods, print runc-shaped output.
//!
//! ```text
//! create   Container::create      Plan, state dir, cgroup, exec fifo, spawn the init   (create.rs)
//! start    Container::start       release the exec fifo, the notify session            (start.rs)
//!          Container::wait_ready  start, run -d: READY=1, then a detached relay
//!          Container::wait_exit   foreground run: until the init exits, its status
//! signal   Container::signal      kill (pidfd; the whole cgroup with --all)
//! exec     Container::exec        a new process in the container                      (exec.rs)
//! destroy  Container::destroy     kill, remove the cgroup and the state dir            (destroy.rs)
//! ```
//! `run` is create, start, wait_exit (or wait_ready), destroy.
//!
//! OCI hook points (runtime-spec "Lifecycle"; runc's order; docs/hooks.md), for `hooks`:
//! - `prestart` and `createRuntime` (pier, the runtime's namespaces) and `createContainer`
//!   (the init, the container's): while the init is in its setup, its namespaces made and
//!   its mounts done, before `pivot_root`: step 3a of the `channel.rs` table, from
//!   [`Container::create`] (`spawn::spawn_init`, `init::hooks::before_pivot`);
//! - `startContainer`: in the init, after `start` opened the exec fifo, before `execve`;
//!   its failure travels back through the fifo and `start` aborts the container (start.rs);
//! - `poststart`: in [`Container::start`], after the exec fifo is released (start.rs);
//! - `poststop`: in [`Container::destroy`], after the cgroup and the state dir are removed,
//!   and after a failed create (create.rs, destroy.rs).
//!
//! config.json's hooks are recorded in state.json for start and delete.

mod create;
mod destroy;
mod exec;
mod ready;
mod rootfs_bind;
mod start;

use std::cell::OnceCell;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::cgroups::Cgroup;
use crate::error::ContainerError;
use crate::state::{self, ContainerDir, State, Status};

pub use create::CreateOptions;
pub use destroy::delete;
pub use exec::ExecOptions;
pub use start::StartContainerFailed;

/// Whether opening a container takes its directory's `flock(2)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    /// Commands that change the container (start, delete, pause, update...).
    Exclusive,
    /// Commands that only read or signal (state, kill, exec): never wait on a slow create.
    None,
}

/// A recorded container (state.json exists).
pub struct Container {
    dir: ContainerDir,
    state: State,
    /// A pidfd of the init, once opened (checked against its start time) or spawned.
    init: OnceCell<OwnedFd>,
    /// Whether this process spawned the init (it is the init's parent and can reap it).
    parent: bool,
}

impl Container {
    /// Open a recorded container.
    ///
    /// # Errors
    /// [`ContainerError::InvalidId`], [`ContainerError::NotExist`], or
    /// [`ContainerError::NotRunning`] while it is still being created (no state.json yet).
    pub fn open(root: &Path, id: &str, lock: Lock) -> Result<Container> {
        Self::open_or(root, id, lock, ContainerError::NotRunning)
    }

    /// Open a container to start it (locked).
    ///
    /// # Errors
    /// As [`Container::open`], but "cannot start a container that has not been created"
    /// while it is still being created.
    pub fn open_to_start(root: &Path, id: &str) -> Result<Container> {
        Self::open_or(
            root,
            id,
            Lock::Exclusive,
            ContainerError::CannotStart("not been created"),
        )
    }

    /// As [`Container::open`], with the error to report for a container still being created.
    fn open_or(root: &Path, id: &str, lock: Lock, creating: ContainerError) -> Result<Container> {
        let dir = match lock {
            Lock::Exclusive => ContainerDir::open(root, id)?,
            Lock::None => ContainerDir::open_unlocked(root, id)?,
        };
        let state = dir.read_state()?.ok_or(creating)?;
        Ok(Container {
            dir,
            state,
            init: OnceCell::new(),
            parent: false,
        })
    }

    /// Open a container whose init is alive (created, running or paused), with its status.
    ///
    /// # Errors
    /// As [`Container::open`]; [`ContainerError::NotRunning`] once it has stopped.
    pub fn open_live(root: &Path, id: &str, lock: Lock) -> Result<(Container, Status)> {
        let container = Self::open(root, id, lock)?;
        match container.status() {
            Status::Stopped | Status::Creating => Err(ContainerError::NotRunning.into()),
            live => Ok((container, live)),
        }
    }

    /// The status derived from state.json, the exec fifo, /proc and the freezer.
    pub fn status(&self) -> Status {
        state::status(&self.dir, Some(&self.state))
    }

    /// The container's cgroup, as recorded.
    pub fn cgroup(&self) -> Cgroup {
        Cgroup::from_state(&self.state.cgroup)
    }

    /// A pidfd for the recorded init, checked against its start time after opening (so it
    /// refers to the init and not to a process that reused its pid).
    ///
    /// # Errors
    /// [`ContainerError::NotRunning`] when the init has exited.
    pub fn init(&self) -> Result<BorrowedFd<'_>> {
        if self.init.get().is_none() {
            let _ = self.init.set(open_init(&self.state)?);
        }
        Ok(self.init.get().expect("just set").as_fd())
    }

    /// Send `signal` to the init (through its pidfd), or with `all` to every process of the
    /// cgroup whatever the init's state (runc: success when the cgroup is gone or empty).
    ///
    /// # Errors
    /// [`ContainerError::NotRunning`] when the init has exited (without `all`).
    pub fn signal(&self, signal: Signal, all: bool) -> Result<()> {
        if all {
            let cgroup = self.cgroup();
            if !cgroup.exists() {
                return Ok(());
            }
            return cgroup.kill_all(signal);
        }
        match pidfd_send_signal(self.init()?, signal) {
            Err(rustix::io::Errno::SRCH) => Err(ContainerError::NotRunning.into()),
            other => other.context("send signal"),
        }
    }
}

fn open_init(state: &State) -> Result<OwnedFd> {
    let pid = Pid::from_raw(state.pid).ok_or(ContainerError::NotRunning)?;
    let pidfd = pidfd_open(pid, PidfdFlags::empty()).map_err(|_| ContainerError::NotRunning)?;
    if !state.init_alive() {
        return Err(ContainerError::NotRunning.into());
    }
    Ok(pidfd)
}

/// Write a pid file atomically: a temporary file beside it, then rename (as runc does), for
/// `create --pid-file` and `exec --pid-file`.
///
/// # Errors
/// The path has no file name, or the write or rename fails.
pub fn write_pid_file(path: &Path, pid: i32) -> Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let name = path.file_name().context("--pid-file has no file name")?;
    let tmp = dir.join(format!(".{}.tmp", name.to_string_lossy()));
    std::fs::write(&tmp, pid.to_string()).with_context(|| format!("write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("rename to {}", path.display()))?;
    Ok(())
}
