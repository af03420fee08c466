//! `pier kill [--all] <id> [signal]`: signal the init through a pidfd (never a reused pid), or
//! every process of the container's cgroup with `--all`.

use anyhow::{Context, Result};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

use crate::cgroups::Cgroup;
use crate::cli::{Global, KillArgs};
use crate::error::ContainerError;
use crate::state::{ContainerDir, State};

/// Deliver the signal.
///
/// With `--all`, as runc: every process of the container's cgroup, whatever the state of the
/// init (the containerd shim sends `kill --all ID 9` on every stop and exit, after the init
/// may have exited and left daemonized children); success when the cgroup is gone or empty.
pub fn run(global: &Global, args: &KillArgs) -> Result<()> {
    let signal = crate::signals::parse(&args.signal)?;
    let dir = ContainerDir::open_unlocked(&global.root, &args.id)?;
    let state = dir.read_state()?.ok_or(ContainerError::NotRunning)?;
    let signal = Signal::from_named_raw(signal).context("signal")?;
    if args.all {
        let cgroup = Cgroup::from_state(&state.cgroup);
        if !cgroup.exists() {
            return Ok(());
        }
        return cgroup.kill_all(signal);
    }
    signal_init(&state, signal)
}

/// Send `signal` to the container's init if it is still the process recorded in `state`.
///
/// # Errors
/// [`ContainerError::NotRunning`] when the init has exited.
pub fn signal_init(state: &State, signal: Signal) -> Result<()> {
    let pidfd = open_init(state)?;
    match pidfd_send_signal(&pidfd, signal) {
        Err(rustix::io::Errno::SRCH) => Err(ContainerError::NotRunning.into()),
        other => other.context("send signal"),
    }
}

/// A pidfd for the recorded init, checked against its start time after opening (so the fd
/// refers to the init and not to a process that reused its pid).
pub fn open_init(state: &State) -> Result<std::os::fd::OwnedFd> {
    let pid = Pid::from_raw(state.pid).ok_or(ContainerError::NotRunning)?;
    let pidfd = pidfd_open(pid, PidfdFlags::empty()).map_err(|_| ContainerError::NotRunning)?;
    if !state.init_alive() {
        return Err(ContainerError::NotRunning.into());
    }
    Ok(pidfd)
}
