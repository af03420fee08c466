//! [`Container::exec`]: a new process in a created, running (or paused) container, as runc's
//! `exec.go` starts one: cloned into the init's pid namespace and cgroup by
//! `spawn::exec::spawn_exec`, returned once it has `execve`d.

use std::os::fd::AsFd;
use std::path::Path;

use anyhow::{bail, Context, Result};

use super::{Container, Lock};
use crate::error::ContainerError;
use crate::spawn::{self, Spawned};
use crate::spec::{Plan, Process, Seccomp};
use crate::state::Status;

/// Where an exec'd process's terminal and pid go.
pub struct ExecOptions<'a> {
    /// `--preserve-fds`: fds 3.. that cross `execve`.
    pub preserve_fds: u32,
    /// `--pid-file`.
    pub pid_file: Option<&'a Path>,
    /// `--console-socket` (with `--detach --tty`): receives the pty master.
    pub console_socket: Option<&'a Path>,
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
    /// pid file, and send the pty master to the console socket if one is given. With a
    /// terminal and no console socket, [`Spawned::console`] holds the master to proxy.
    ///
    /// # Errors
    /// The process cannot be started (runc's wording for a missing executable or cwd), or the
    /// pid file or console socket fails; the process is then killed and reaped.
    pub fn exec(
        &mut self,
        process: &Process,
        seccomp: Option<&Seccomp>,
        opts: &ExecOptions<'_>,
    ) -> Result<Spawned> {
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
        Ok(spawned.keep())
    }
}
