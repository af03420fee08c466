//! The end of a container: [`delete`] (the verb's rules), [`Container::kill`] (SIGKILL and a
//! bounded wait) and [`Container::destroy`]: its processes, cgroup and state directory go.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::Signal;

use super::Container;
use crate::cgroups::Cgroup;
use crate::error::ContainerError;
use crate::hooks::{self, HookState, Point};
use crate::state::{ContainerDir, Status};

/// How long a kill waits for the init to exit.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// `delete [--force] <id>`: remove a stopped (or created) container and every trace of it;
/// `force` kills a running or paused one first. With `force`, an id that does not exist is
/// not an error (runc).
///
/// # Errors
/// [`ContainerError::NotExist`]; [`ContainerError::StillRunning`] without `force`; an init
/// that does not die; a directory that cannot be removed.
pub fn delete(root: &Path, id: &str, force: bool) -> Result<()> {
    let dir = match ContainerDir::open(root, id) {
        Err(e) if force && e.downcast_ref() == Some(&ContainerError::NotExist) => return Ok(()),
        other => other?,
    };
    let Some(state) = dir.read_state()? else {
        // A create that died before writing state (we hold its lock, so it is gone): its
        // init dies with it (parent-death signal, or EOF on the channel); what is left is
        // the directory and the cgroup it recorded before making it.
        if let Some(cgroup) = dir.read_cgroup_record()? {
            remove_cgroup(&Cgroup::from_state(&cgroup), false);
        }
        super::rootfs_bind::release(&dir);
        return dir.remove();
    };
    let mut container = Container {
        dir,
        state,
        init: std::cell::OnceCell::new(),
        parent: false,
    };
    match container.status() {
        Status::Stopped => {}
        Status::Created => container.kill()?,
        _ if force => container.kill()?,
        _ => return Err(ContainerError::StillRunning(id.to_string()).into()),
    }
    container.destroy()
}

/// Remove the cgroup, waiting (bounded) for exiting processes to leave it; with
/// `kill_leftovers`, SIGKILL what is still in it meanwhile. A cgroup still busy after that
/// holds another container's processes (a shared cgroupsPath) and is left, with a warning.
fn remove_cgroup(cgroup: &Cgroup, kill_leftovers: bool) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match cgroup.destroy() {
            Ok(()) => return,
            Err(_) if Instant::now() < deadline => {
                if kill_leftovers {
                    let _ = cgroup.kill_all(Signal::KILL);
                }
                // cgroupfs has no event for "now empty" on every hierarchy (v1): poll.
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                tracing::warn!(
                    "cgroup not removed, it still has processes of another container: {e:#}"
                );
                return;
            }
        }
    }
}

impl Container {
    /// SIGKILL the init and the whole cgroup (thawing a paused one so the signals land), and
    /// wait, bounded, for the init to exit.
    ///
    /// # Errors
    /// The init is still there after [`KILL_TIMEOUT`].
    pub fn kill(&mut self) -> Result<()> {
        let cgroup = self.cgroup();
        let (pid, parent) = (self.state.pid, self.parent);
        let Ok(pidfd) = self.init() else {
            return Ok(()); // already gone
        };
        let _ = rustix::process::pidfd_send_signal(pidfd, Signal::KILL);
        cgroup.kill_all(Signal::KILL)?;
        if cgroup.is_frozen() {
            // A paused container: the SIGKILLs are pending; thawing lets them land.
            cgroup.thaw()?;
        }
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        let timeout = Timespec {
            tv_sec: KILL_TIMEOUT.as_secs() as i64,
            tv_nsec: 0,
        };
        let ready =
            poll(&mut fds, Some(&timeout)).context("wait for the container's init to exit")?;
        if ready == 0 {
            anyhow::bail!("container init {pid} did not exit within {KILL_TIMEOUT:?} of SIGKILL");
        }
        if parent {
            let _ = crate::supervise::reap(pidfd);
        }
        Ok(())
    }

    /// Remove the cgroup (waiting, bounded, for killed processes to leave it), the rootfs bind
    /// of a container without a mount namespace (`rootfs_bind::release`) and the state
    /// directory. The init must have exited ([`Container::kill`]).
    ///
    /// # Errors
    /// The directory cannot be removed.
    pub fn destroy(self) -> Result<()> {
        // Without its own pid namespace the container's other processes outlive the init:
        // they are the container's, so they go too (runc does the same). With one, anything
        // left belongs to someone else sharing the cgroupsPath.
        remove_cgroup(&self.cgroup(), !self.state.own_pid_namespace);
        super::rootfs_bind::release(&self.dir);
        let removed = self.dir.remove();
        // runtime.md "Lifecycle" step 13: after the container is deleted; a failure is a
        // warning.
        let state = HookState::of_state(&self.state, Status::Stopped, None);
        hooks::run_warn(Point::Poststop, &self.state.hooks.poststop, &state, None);
        removed
    }

    /// Undo a create after a later step failed (the create half of `run`): kill the init,
    /// then [`Container::destroy`].
    pub fn abort(mut self) {
        let _ = self.kill();
        let _ = self.destroy();
    }
}
