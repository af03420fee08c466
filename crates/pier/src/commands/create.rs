//! `pier create`: everything up to the container init blocked on the exec fifo.
//!
//! config.json is read and validated before anything is made; after that, a failure at any
//! step undoes every earlier one (init, cgroup, state directory), so a failed create leaves
//! nothing behind.

use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};

use crate::cgroups::Cgroup;
use crate::cli::{CreateArgs, Global};
use crate::init::InitContext;
use crate::spawn::{self, Spawned};
use crate::spec::{self, NamespaceKind, Plan};
use crate::state::{self, ContainerDir, State, EXEC_FIFO};

/// A created container: its locked directory, recorded state and live init.
pub struct Created {
    pub dir: ContainerDir,
    pub state: State,
    pub init: Spawned,
}

/// `pier create`.
pub fn run(global: &Global, args: &CreateArgs) -> Result<()> {
    create(global, args, false).map(drop)
}

/// Create the container and return it (also used by `run`). `foreground` is a `run` that
/// waits: it may keep a terminal's pty master to proxy instead of sending it to a socket.
///
/// # Errors
/// Invalid id or config, a missing rootfs, an id in use, or any set-up step; nothing is
/// left behind in each case.
pub fn create(global: &Global, args: &CreateArgs, foreground: bool) -> Result<Created> {
    state::validate_id(&args.id)?;
    let bundle = spec::absolute_bundle(&args.bundle)?;
    let plan = spec::load(&bundle)?;
    check_host_side(&plan, args, foreground)?;
    let dir = ContainerDir::create(&global.root, &args.id)?;
    let mut cgroup = None;
    let result = create_in(&dir, &plan, args, global.systemd_cgroup, &mut cgroup);
    match result {
        Ok((state, init)) => Ok(Created { dir, state, init }),
        Err(e) => {
            if let Some(cgroup) = cgroup {
                let _ = cgroup.destroy();
            }
            let _ = dir.remove();
            Err(e)
        }
    }
}

/// Checks that need the host but create nothing.
fn check_host_side(plan: &Plan, args: &CreateArgs, foreground: bool) -> Result<()> {
    if !plan.rootfs.is_dir() {
        bail!("rootfs ({}) does not exist", plan.rootfs.display());
    }
    // runc's rules (utils_linux.go checkTerminal).
    match (plan.process.terminal, args.console_socket.is_some()) {
        (true, false) if !foreground => {
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
    args: &CreateArgs,
    systemd: bool,
    cgroup_slot: &mut Option<Cgroup>,
) -> Result<(State, Spawned)> {
    let made = if systemd {
        Cgroup::create_systemd(&plan.cgroup, &args.id)
    } else {
        Cgroup::create(&plan.cgroup, &args.id)
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
        id: &args.id,
        plan,
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        keep_fds: activation.listen_fds + args.preserve_fds,
        listen_fds: activation.listen_fds > 0,
        extra_env,
        notify_dir: notify.map(|n| n.host_dir),
        cgroup_dirs: cgroup.state().dirs.clone(),
        idmapped: spawn::idmapped_trees(plan)?,
    };
    let mut init = spawn::spawn_init(&ctx, cgroup, fifo, dir.fd())?;
    let state = hand_over_console(&mut init, args)
        .and_then(|()| record(dir, plan, &args.id, &init, cgroup));
    let written = state.and_then(|s| {
        dir.write_state(&s)?;
        if let Some(path) = &args.pid_file {
            write_pid_file(path, init.pid)?;
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
fn hand_over_console(init: &mut Spawned, args: &CreateArgs) -> Result<()> {
    match (&args.console_socket, init.console.take()) {
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

fn record(
    dir: &ContainerDir,
    plan: &Plan,
    id: &str,
    init: &Spawned,
    cgroup: &Cgroup,
) -> Result<State> {
    let _ = dir;
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

/// Write the pid file atomically: a temporary file beside it, then rename (as runc does).
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
