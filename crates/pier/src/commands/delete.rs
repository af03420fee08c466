//! `pier delete [--force] <id>`: remove a stopped (or created) container and every trace of
//! it: its processes, cgroup and state directory. `--force` kills a running one first.

use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::Signal;

use crate::cgroups::Cgroup;
use crate::cli::{DeleteArgs, Global};
use crate::error::ContainerError;
use crate::state::{self, ContainerDir, State, Status};

/// How long `delete --force` waits for a killed init to exit.
const KILL_TIMEOUT: Duration = Duration::from_secs(10);

/// Delete the container.
pub fn run(global: &Global, args: &DeleteArgs) -> Result<()> {
    let dir = match ContainerDir::open(&global.root, &args.id) {
        Err(e) if args.force && e.downcast_ref() == Some(&ContainerError::NotExist) => {
            return Ok(())
        }
        other => other?,
    };
    let Some(saved) = dir.read_state()? else {
        // A create that died before writing state: nothing runs, only the directory is left.
        return dir.remove();
    };
    match state::status(&dir, Some(&saved)) {
        Status::Stopped => {}
        Status::Created => kill_and_wait(&saved)?,
        _ if args.force => kill_and_wait(&saved)?,
        _ => return Err(ContainerError::StillRunning(args.id.clone()).into()),
    }
    destroy(dir, &saved)
}

/// SIGKILL the init (and the whole cgroup) and wait, bounded, for the init to exit.
pub fn kill_and_wait(saved: &State) -> Result<()> {
    let cgroup = Cgroup::from_state(&saved.cgroup);
    let Ok(pidfd) = super::kill::open_init(saved) else {
        return Ok(()); // already gone
    };
    let _ = rustix::process::pidfd_send_signal(&pidfd, Signal::KILL);
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
    let ready = poll(&mut fds, Some(&timeout)).context("wait for the container's init to exit")?;
    if ready == 0 {
        anyhow::bail!(
            "container init {} did not exit within {KILL_TIMEOUT:?} of SIGKILL",
            saved.pid
        );
    }
    Ok(())
}

/// Remove the cgroup (waiting, bounded, for killed processes to leave it) and the directory.
pub fn destroy(dir: ContainerDir, saved: &State) -> Result<()> {
    let cgroup = Cgroup::from_state(&saved.cgroup);
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        match cgroup.destroy() {
            Ok(()) => break,
            Err(_) if Instant::now() < deadline => {
                // Without its own pid namespace the container's other processes outlive the
                // init: they are the container's, so they go too (runc does the same). With
                // one, anything left belongs to someone else sharing the cgroupsPath.
                if !saved.own_pid_namespace {
                    let _ = cgroup.kill_all(Signal::KILL);
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => {
                tracing::warn!(
                    "cgroup not removed, it still has processes of another container: {e:#}"
                );
                break;
            }
        }
    }
    dir.remove()
}
