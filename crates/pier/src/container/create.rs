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
use crate::cgroups::Cgroup;
use crate::init::InitContext;
use crate::spawn::{self, Spawned};
use crate::spec::{self, NamespaceKind, Plan};
use crate::state::{self, ContainerDir, ContainerId, State, EXEC_FIFO};

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
        let dir = ContainerDir::create(opts.root, &id)?;
        let mut cgroup = None;
        match create_in(&dir, &plan, opts, &mut cgroup) {
            Ok((state, mut init)) => {
                let console = init.console.take().map(|(_, master)| master);
                let container = Container {
                    dir,
                    state,
                    init: std::cell::OnceCell::from(init.pidfd),
                    parent: true,
                };
                Ok((container, console))
            }
            Err(e) => {
                if let Some(cgroup) = cgroup {
                    let _ = cgroup.destroy();
                }
                let _ = dir.remove();
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
    // runc's rules (utils_linux.go checkTerminal).
    match (plan.process.terminal, opts.console_socket.is_some()) {
        (true, false) if !opts.foreground => {
            bail!("cannot allocate tty if pier will detach without setting console socket (process.terminal is true)")
        }
        (false, true) => bail!("cannot use console socket if pier will not detach or allocate tty (process.terminal is false)"),
        _ => {}
    }
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
    cgroup_slot: &mut Option<Cgroup>,
) -> Result<(State, Spawned)> {
    // Recorded before it is made: a create killed from here on leaves a cgroup that
    // `delete` finds (container::delete).
    let intended = Cgroup::intended(&plan.cgroup, opts.id, opts.systemd_cgroup)
        .context("create the container's cgroup")?;
    dir.write_cgroup_record(&intended)?;
    let made = if opts.systemd_cgroup {
        Cgroup::create_systemd(&plan.cgroup, opts.id)
    } else {
        Cgroup::create(&plan.cgroup, opts.id)
    };
    let cgroup = cgroup_slot.insert(made.context("create the container's cgroup")?);
    cgroup
        .apply(&plan.cgroup, &plan.devices)
        .context("apply linux.resources")?;
    let fifo = make_exec_fifo(dir)?;
    let notify = crate::notify::prepare(dir)?;
    let activation = crate::activation::Activation::from_env();
    let mut extra_env = notify.as_ref().map(|n| n.env.clone()).unwrap_or_default();
    extra_env.extend(activation.env());
    let ctx = InitContext {
        id: opts.id,
        plan,
        no_pivot: opts.no_pivot,
        no_new_keyring: opts.no_new_keyring,
        keep_fds: activation.listen_fds + opts.preserve_fds,
        listen_fds: activation.listen_fds > 0,
        extra_env,
        notify_dir: notify.map(|n| n.host_dir),
        notify_target: crate::notify::CONTAINER_DIR,
        cgroup_dirs: cgroup.state().dirs.clone(),
        idmapped: spawn::idmapped_trees(plan)?,
    };
    let mut init = spawn::spawn_init(&ctx, cgroup, fifo, dir.fd())?;
    // Hooks: the init's namespaces exist from here on (see the module list in mod.rs).
    let state = hand_over_console(&mut init, opts.console_socket)
        .and_then(|()| record(plan, opts.id, &init, cgroup));
    let written = state.and_then(|s| {
        dir.write_state(&s)?;
        if let Some(path) = opts.pid_file {
            super::write_pid_file(path, init.pid)?;
        }
        init.commit()?;
        Ok(s)
    });
    match written {
        Ok(s) => Ok((s, init)),
        Err(e) => {
            spawn::kill_and_reap(&init);
            Err(e)
        }
    }
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
    })
}
