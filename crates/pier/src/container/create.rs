//! [`Container::create`]: everything up to the container init blocked on the exec fifo.
//!
//! config.json is read and validated before anything is made; after that, a failure at any
//! step undoes every earlier one (init, cgroup, state directory), so a failed create leaves
//! nothing behind.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};

use super::Container;
use crate::cgroups::{Bus, Cgroup};
use crate::hooks::{self, HookState, Point};
use crate::spawn::{self, InitRequest, Spawned};
use crate::spec::{self, NamespaceKind, Plan};
use crate::state::{self, ContainerDir, ContainerId, State, Status, EXEC_FIFO};
use crate::undo::Undo;

/// What `create` (and the create half of `run`) is asked for: runc's create flags.
pub struct CreateOptions<'a> {
    /// `--root`.
    pub root: &'a Path,
    /// The container id (checked here, once).
    pub id: &'a str,
    /// `--bundle`.
    pub bundle: &'a Path,
    /// `--console-socket`: receives the pty master with `process.terminal`.
    pub console_socket: Option<&'a Path>,
    /// `--pid-file`.
    pub pid_file: Option<&'a Path>,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--no-new-keyring`.
    pub no_new_keyring: bool,
    /// `--preserve-fds`.
    pub preserve_fds: u32,
    /// `--systemd-cgroup`.
    pub systemd_cgroup: bool,
    /// `--rootless` resolved ([`crate::rootless::uses_rootless_cgroups`]): cgroups pier may not
    /// create are skipped, as runc's rootless cgroup manager does.
    pub rootless_cgroups: bool,
    /// A `run` that waits: it may keep a terminal's pty master to proxy instead of sending it
    /// to a console socket.
    pub foreground: bool,
}

impl Container {
    /// Create the container: its init blocked on the exec fifo, state.json written. Returns
    /// it with the pty master when a foreground `run` keeps the terminal.
    ///
    /// # Errors
    /// Invalid id or config, a missing rootfs, an id in use, or any set-up step; nothing is
    /// left behind in each case.
    pub fn create(opts: &CreateOptions<'_>) -> Result<(Container, Option<OwnedFd>)> {
        let id = ContainerId::parse(opts.id)?;
        let bundle = spec::absolute_bundle(opts.bundle)?;
        let plan = spec::load(&bundle)?;
        check_host_side(&plan, opts)?;
        // Removed again on any failure below, after create_in's own guards (init, cgroup).
        let dir = Undo::new(ContainerDir::create(opts.root, &id)?, |d| {
            super::rootfs_bind::release(&d);
            let _ = d.remove();
        });
        match create_in(&dir, &plan, opts) {
            Ok((state, mut init)) => {
                let console = init.console.take().map(|(_, master)| master);
                let container = Container {
                    dir: dir.keep(),
                    state,
                    init: std::cell::OnceCell::from(init.pidfd),
                    parent: true,
                };
                Ok((container, console))
            }
            Err(e) => {
                drop(dir);
                // As runc, whose failed create destroys the container and so runs poststop
                // (runtime.md "Lifecycle": a failing create hook continues at steps 12, 13),
                // from the bundle like the create hooks.
                let state = HookState::of_plan(&plan, opts.id, Status::Stopped, None);
                let cwd = Some(plan.bundle.as_path());
                hooks::run_warn(Point::Poststop, &plan.hooks.poststop, &state, cwd);
                Err(e)
            }
        }
    }
}

/// Checks that need the host but create nothing.
fn check_host_side(plan: &Plan, opts: &CreateOptions<'_>) -> Result<()> {
    if !plan.rootfs.is_dir() {
        bail!("rootfs ({}) does not exist", plan.rootfs.display());
    }
    crate::tty::check_terminal(
        plan.process.terminal,
        !opts.foreground,
        opts.console_socket.is_some(),
    )?;
    if crate::rootless::unprivileged() {
        spec::check_rootless(plan)?;
    }
    crate::spawn::check_joined_maps(plan)?;
    crate::notify::check_annotations(&plan.annotations)?;
    if plan.hostname.is_some()
        && !plan.creates_namespace(NamespaceKind::Uts)
        && !plan.has_namespace(NamespaceKind::Uts)
    {
        bail!("unable to set hostname without a private UTS namespace");
    }
    Ok(())
}

fn create_in(
    dir: &ContainerDir,
    plan: &Plan,
    opts: &CreateOptions<'_>,
) -> Result<(State, Spawned)> {
    // Recorded before it is made: a create killed from here on leaves a cgroup that
    // `delete` finds (container::delete).
    // runc's rootless systemd driver asks the user's own manager, on the session bus.
    let systemd = opts.systemd_cgroup.then_some(if opts.rootless_cgroups {
        Bus::User
    } else {
        Bus::System
    });
    let intended = Cgroup::intended(&plan.cgroup, opts.id, systemd, opts.rootless_cgroups)
        .context("create the container's cgroup")?;
    dir.write_cgroup_record(&intended)?;
    let made = if let Some(bus) = systemd {
        Cgroup::create_systemd(&plan.cgroup, opts.id, bus)
    } else if opts.rootless_cgroups {
        Cgroup::create_rootless(&plan.cgroup, opts.id)
    } else {
        Cgroup::create(&plan.cgroup, opts.id)
    };
    // Destroyed on any failure below (dropped after the init's guard, so after its kill).
    let cgroup = Undo::new(made.context("create the container's cgroup")?, |c| {
        let _ = c.destroy();
    });
    cgroup
        .apply(&plan.cgroup, &plan.devices, opts.rootless_cgroups)
        .context("apply linux.resources")?;
    let fifo = make_exec_fifo(dir)?;
    if super::rootfs_bind::needed(plan) {
        super::rootfs_bind::bind(plan, dir)?;
    }
    let request = InitRequest {
        id: opts.id,
        plan,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        preserve_fds: opts.preserve_fds,
        activation: crate::activation::Activation::from_env(),
        notify: crate::notify::prepare(dir, &plan.annotations)?,
    };
    // Killed and reaped on any failure below.
    let mut init = spawn::spawn_init(&request, &cgroup, fifo)?;
    hand_over_console(&mut init, opts.console_socket)?;
    let state = record(plan, opts.id, &init, &cgroup)?;
    dir.write_state(&state)?;
    if let Some(path) = opts.pid_file {
        super::write_pid_file(path, init.pid)?;
    }
    init.commit().map_err(|e| match cgroup.oom_cause() {
        Some(cause) => e.context(format!("killed by {cause}")),
        None => e,
    })?;
    // Committed: the cgroup is recorded in state.json and the init outlives pier.
    drop(cgroup.keep());
    Ok((state, init.keep()))
}

/// Send the pty master to `--console-socket` (then pier holds no copy of it).
fn hand_over_console(init: &mut Spawned, console_socket: Option<&Path>) -> Result<()> {
    match (console_socket, init.console.take()) {
        (Some(path), Some((name, master))) => {
            crate::tty::send_to_console_socket(path, &name, master.as_fd())
        }
        (None, console) => {
            init.console = console;
            Ok(())
        }
        (Some(_), None) => bail!("the container init allocated no terminal"),
    }
}

fn make_exec_fifo(dir: &ContainerDir) -> Result<OwnedFd> {
    rustix::fs::mkfifoat(dir.fd(), EXEC_FIFO, Mode::from_raw_mode(0o622))
        .context("create exec.fifo")?;
    // mkfifo applies the umask; the container user (any uid) must be able to open it.
    rustix::fs::chmodat(
        dir.fd(),
        EXEC_FIFO,
        Mode::from_raw_mode(0o622),
        rustix::fs::AtFlags::empty(),
    )?;
    let fifo = rustix::fs::openat(
        dir.fd(),
        EXEC_FIFO,
        OFlags::PATH | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open exec.fifo")?;
    Ok(fifo)
}

fn record(plan: &Plan, id: &str, init: &Spawned, cgroup: &Cgroup) -> Result<State> {
    let start =
        state::process_start_time(init.pid).context("container init exited during create")?;
    Ok(State {
        oci_version: plan.oci_version.clone(),
        id: id.to_string(),
        pid: init.pid,
        pid_start_time: start,
        bundle: plan.bundle.clone(),
        rootfs: plan.rootfs.clone(),
        created: humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string(),
        owner: String::new(),
        annotations: plan.annotations.clone(),
        cgroup: cgroup.state().clone(),
        own_pid_namespace: plan.creates_namespace(NamespaceKind::Pid),
        hooks: plan.hooks.clone(),
    })
}
