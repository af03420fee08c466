//! [`Container::exec`]: a new process in a created, running (or paused) container, as runc's
//! `exec.go` starts one: cloned into the init's pid namespace and cgroup by
//! `spawn::exec::spawn_exec`, returned once it has `execve`d as an [`ExecProcess`] that the
//! verb waits for: to its exit in the foreground, or (`exec -d --notify-socket own`) to its
//! READY=1 as `run -d` waits for the init's ([`ExecProcess::wait_ready`]).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{ready, Container, Lock};
use crate::error::ContainerError;
use crate::notify::{ExecNotify, Session, WaitMode};
use crate::spawn::{self, Spawned};
use crate::spec::{Plan, Process, Seccomp};
use crate::state::Status;
use crate::supervise::{self, BlockedSignals};

/// Where an exec'd process's terminal and pid go.
pub struct ExecOptions<'a> {
    /// `--preserve-fds`: fds 3.. that cross `execve`.
    pub preserve_fds: u32,
    /// `--pid-file`.
    pub pid_file: Option<&'a Path>,
    /// `--console-socket` (with `--detach --tty`): receives the pty master.
    pub console_socket: Option<&'a Path>,
    /// `--detach`: the relay of an own notify socket then names the process as the unit's
    /// main pid with its READY=1 (the relay's identity, docs/notify.md).
    pub detach: bool,
}

/// A started exec'd process: its pidfd, the pty master to proxy (a terminal without a
/// console socket), and its own notify session (`--notify-socket own`).
pub struct ExecProcess {
    spawned: Spawned,
    session: Option<Session>,
}

impl Container {
    /// Open a container for `exec` (no lock) and read its config.json: the defaults of the
    /// process, and the seccomp profile that applies to every process in it (fail closed: no
    /// readable config.json, no exec). runc's rules: created and running containers take an
    /// exec; paused ones only with `ignore_paused`; stopped ones never.
    ///
    /// # Errors
    /// [`ContainerError::NotRunning`], a paused container, or an unreadable config.json.
    pub fn open_for_exec(root: &Path, id: &str, ignore_paused: bool) -> Result<(Container, Plan)> {
        let container = Container::open(root, id, Lock::None)?;
        match container.status() {
            Status::Created | Status::Running => {}
            Status::Paused if ignore_paused => {}
            Status::Paused => {
                bail!("cannot exec in a paused container (use --ignore-paused to override)")
            }
            Status::Stopped | Status::Creating => return Err(ContainerError::NotRunning.into()),
        }
        let config = crate::spec::load(&container.state.bundle)
            .context("read the container's config.json")?;
        Ok((container, config))
    }

    /// sd_notify for an exec'd process: `exec --notify-socket` (`flag`) or the container's
    /// `org.pier.notify.exec` annotation ([`crate::notify::exec_notify`]); with `own` the
    /// exec's socket is bound now.
    ///
    /// # Errors
    /// An unknown mode, `container` when the container has no relayed socket, `own` without
    /// a notify directory or without pier's own `NOTIFY_SOCKET`.
    pub fn exec_notify(&self, flag: Option<&str>) -> Result<crate::notify::ExecNotify> {
        crate::notify::exec_notify(&self.dir, flag, &self.state.annotations)
    }

    /// The container's annotations (the notify choices an exec's relay follows).
    pub fn annotations(&self) -> &std::collections::BTreeMap<String, String> {
        &self.state.annotations
    }

    /// Start `process` in the container (with the container's `seccomp` profile), write the
    /// pid file, send the pty master to the console socket if one is given, and open the
    /// process's own notify session when `notify` is [`ExecNotify::Own`]. With a terminal and
    /// no console socket, the returned process holds the master to proxy.
    ///
    /// # Errors
    /// The process cannot be started (runc's wording for a missing executable or cwd), or the
    /// pid file, the console socket or the notify session fails; the process is then killed
    /// and reaped.
    pub fn exec(
        &mut self,
        process: &Process,
        seccomp: Option<&Seccomp>,
        opts: &ExecOptions<'_>,
        notify: ExecNotify,
    ) -> Result<ExecProcess> {
        let cgroup = self.cgroup();
        let pid = self.state.pid;
        let spawned = spawn::exec::spawn_exec(
            process,
            seccomp,
            pid,
            self.init()?,
            &cgroup,
            opts.preserve_fds,
        )
        .context("unable to start container process")?;
        // A failure from here drops `spawned`, which kills and reaps the process.
        if let Some(path) = opts.pid_file {
            super::write_pid_file(path, spawned.pid)?;
        }
        if let (Some(path), Some((name, master))) = (opts.console_socket, &spawned.console) {
            crate::tty::send_to_console_socket(path, name, master.as_fd())?;
        }
        let session = match notify {
            ExecNotify::Own(socket) => Some(socket.into_session(
                spawned.pid,
                spawned.pidfd.as_fd(),
                &self.state.annotations,
                opts.detach,
            )?),
            ExecNotify::None | ExecNotify::Container => None,
        };
        Ok(ExecProcess {
            spawned: spawned.keep(),
            session,
        })
    }
}

impl ExecProcess {
    /// In the foreground: forward signals, relay its own notify socket (if any), proxy the
    /// terminal, until the process exits; its exit status (128+N when killed by signal N).
    ///
    /// # Errors
    /// The wait loop or reaping the process fails.
    pub fn wait_exit(mut self, signals: &BlockedSignals) -> Result<u8> {
        let console = self.spawned.console.take().map(|(_, master)| master);
        supervise::foreground(self.spawned.pidfd.as_fd(), signals, self.session, console)
    }

    /// `exec -d --notify-socket own`: wait as `mode` says (signals forwarded meanwhile) until
    /// the process's READY=1 has reached the manager, then hand the relay to a detached
    /// process that lives as long as the exec'd process; pier's exit status, as
    /// [`Container::wait_ready`] for the init ([`ready::wait_ready`] says which). With the
    /// default identity the READY datagram names the process as the unit's `MAINPID=` (and
    /// `MAINPIDFD=1` for systemd 257+), so the unit follows it after pier exits. Without a
    /// session (no own notify socket) this returns 0 at once.
    ///
    /// # Errors
    /// The wait loop or the detached relay's fork fails.
    pub fn wait_ready(mut self, mode: WaitMode, signals: &BlockedSignals) -> Result<u8> {
        let session = self.session.take();
        ready::wait_ready(&self, session, mode, signals)
    }
}

/// The exec'd process (a child of this pier), as the process a READY=1 is awaited from.
impl ready::Awaited for ExecProcess {
    fn name(&self) -> String {
        format!("exec'd process {}", self.spawned.pid)
    }

    fn pidfd(&self) -> Result<BorrowedFd<'_>> {
        Ok(self.spawned.pidfd.as_fd())
    }

    fn exit_status(&self, reap: bool) -> Option<u8> {
        let pidfd = self.spawned.pidfd.as_fd();
        match reap {
            true => supervise::reap(pidfd).ok(),
            false => supervise::exit_status_unreaped(pidfd).ok(),
        }
    }
}
