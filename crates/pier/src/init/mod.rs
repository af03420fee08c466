//! The container's init before `execve`: one ordered list of small steps ([`prepare`]).
//!
//! This code runs in the child of `clone3`, inside the new namespaces, still as pier. It never
//! returns: it either `execve`s the container process or reports its error to the parent over
//! the channel and `_exit(1)`s. Order is security-relevant and reads top to bottom.
//!
//! The seccomp filter (`linux.seccomp`) is built in [`prepare`], so a profile libseccomp or
//! the kernel refuses fails `create`, and loaded as late as the kernel allows, because every
//! syscall pier makes after loading is filtered too and a profile may deny any of them:
//! - with `noNewPrivileges` (or CAP_SYS_ADMIN kept in the effective set), after the exec
//!   fifo and after the fds, signal dispositions and mask are reset, right before `execve`
//!   (`process::exec`): only `execve` itself, which every profile must allow, follows (and
//!   the allocation of its argv/envp pointer arrays);
//! - otherwise loading needs CAP_SYS_ADMIN (`seccomp(2)`), which `identity::apply` drops, so
//!   it is loaded right before it, as runc does. The filter then also sees the identity
//!   syscalls (setgroups, setres[ug]id, capset, prctl), the executable lookup, the `Ready`
//!   message, the exec fifo and the steps before `execve`; a profile that denies those makes
//!   `create` or `start` fail (never run the container unfiltered).

mod console;
mod copyup;
mod exec;
mod hooks;
mod identity;
mod mounts;
mod namespaces;
mod process;
mod procfs;
mod resolve;
mod rootfs;
mod seccomp;

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::channel::{ChildEnd, ToChild, ToParent};
use crate::hooks::HookState;
use crate::spec::Plan;

pub use exec::{run as run_exec, ExecContext};
pub use namespaces::link_type;
pub use process::set_limits;

/// Everything the child needs, moved into it by `clone3`.
pub struct InitContext<'a> {
    pub id: &'a str,
    pub plan: &'a Plan,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--no-new-keyring`.
    pub no_new_keyring: bool,
    /// How many fds from 3 on cross `execve` (LISTEN_FDS + `--preserve-fds`).
    pub keep_fds: u32,
    /// Socket activation: add `LISTEN_PID=<own pid>` next to the LISTEN_FDS in `extra_env`.
    pub listen_fds: bool,
    /// Variables added to `process.env` (NOTIFY_SOCKET, LISTEN_*), replacing same-named ones.
    pub extra_env: Vec<String>,
    /// The container's cgroup directories (for `cgroup` bind mounts without a cgroup ns).
    pub cgroup_dirs: Vec<PathBuf>,
    /// Per `plan.mounts` entry, the detached idmapped tree pier made ([`crate::spawn::idmapped_trees`]).
    pub idmapped: Vec<Option<OwnedFd>>,
    /// `<root>/<id>/notify`, bind-mounted at /run/notify when pier relays sd_notify.
    pub notify_dir: Option<PathBuf>,
    /// Where `notify_dir` is bound in the container (`notify::CONTAINER_DIR`), passed in so
    /// that init does not reach up into the notify glue.
    pub notify_target: &'a str,
}

impl InitContext<'_> {
    /// The fds the init keeps of those the clone copied; `sys::clone_child` closes the others
    /// (the cgroup directory, the state directory, pier's own) before [`run`], so nothing of
    /// pier's crosses into the container (CVE-2024-21626 class): stdio, the fds asked for, the
    /// channel, the fifo, the idmapped trees, and the log file until [`run`] closes it.
    pub fn fds_to_keep(&self, channel: &ChildEnd, fifo: &OwnedFd) -> Vec<RawFd> {
        let mut keep: Vec<RawFd> = (0..3 + self.keep_fds as RawFd).collect();
        keep.extend([channel.as_fd().as_raw_fd(), fifo.as_raw_fd()]);
        keep.extend(self.idmapped.iter().flatten().map(AsRawFd::as_raw_fd));
        keep.extend(crate::logging::log_fd());
        keep
    }
}

/// Run the init in the child (only the fds of [`InitContext::fds_to_keep`] open); never
/// returns.
pub fn run(ctx: &InitContext<'_>, channel: ChildEnd, fifo: OwnedFd) -> ! {
    // Until pier has recorded this container, its death (an engine's timeout SIGKILL) must
    // take the half-made container with it: nothing would know to clean it up.
    if rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
        .is_err()
    {
        crate::sys::exit_immediately(1);
    }
    // The only procfs handle the init holds while it waits on the fifo: the process
    // directories of the container's own pid namespace. Made now, while this process still
    // has the capabilities fsopen(2) needs and before any mount of config.json exists.
    let procfs = match procfs::ProcFs::pids_or_host() {
        Ok(p) => p,
        Err(e) => fail(&channel, e),
    };
    let fd_dir = match procfs.open(
        "self/fd",
        rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
    ) {
        Ok(d) => d,
        Err(e) => fail(&channel, e),
    };
    let ignored_signals = process::ignored_signals();
    let (exec, hook_state) = match prepare(ctx, &channel) {
        Ok(prepared) => prepared,
        Err(e) => fail(&channel, e),
    };
    if channel.send(&ToParent::Ready).is_err() {
        crate::sys::exit_immediately(1);
    }
    // Step 5: pier wrote state.json; from now on the container outlives pier.
    match channel.recv() {
        Ok(Some(ToChild::Committed)) => {
            let cleared = rustix::process::set_parent_process_death_signal(None);
            if cleared.is_err() || channel.send(&ToParent::Committed).is_err() {
                crate::sys::exit_immediately(1);
            }
        }
        _ => crate::sys::exit_immediately(1),
    }
    drop(channel);
    // From here on the init only writes to stderr: the log file goes before the wait.
    crate::logging::close_file_from(3 + ctx.keep_fds as RawFd);
    // Step 7: startContainer once `start` is there to hear how it went.
    let start_hooks = || hooks::start_container(ctx.plan, hook_state.as_ref(), &exec.envp);
    match process::wait_for_start(fd_dir.as_fd(), fifo, start_hooks) {
        Ok(None) => {}
        Ok(Some(_told_start)) => crate::sys::exit_immediately(1),
        Err(e) => {
            eprintln!("pier: container init: {e:#}");
            crate::sys::exit_immediately(1);
        }
    }
    drop(procfs);
    let err = process::exec(&exec, ctx.keep_fds, ignored_signals, Some(fd_dir.as_fd()));
    // The parent is gone by now (create returned): stderr is the container's.
    eprintln!("pier: container init: {err:#}");
    crate::sys::exit_immediately(127)
}

fn fail(channel: &ChildEnd, e: anyhow::Error) -> ! {
    let _ = channel.send(&ToParent::Error(format!("{e:#}")));
    crate::sys::exit_immediately(1)
}

/// The steps, in order. Each line is one concern; see the module of each for the why.
/// Returns what `execve` gets and, with hooks, the state startContainer reads.
fn prepare(
    ctx: &InitContext<'_>,
    channel: &ChildEnd,
) -> Result<(process::Exec, Option<HookState>)> {
    let plan = ctx.plan;
    wait_for_go(channel)?;
    // A rootless pier's child stayed dumpable for its id maps (spawn::spawn_init).
    rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
        .context("PR_SET_DUMPABLE")?;
    namespaces::join(plan)?;
    namespaces::unshare_cgroup(plan)?;
    namespaces::set_uts_names(plan)?;
    namespaces::loopback_up(plan)?;
    // Host paths first, while this is still pier's identity: a user namespace's root may
    // not reach them.
    let root = rootfs::prepare(plan)?;
    let sources = mounts::Sources::open(plan, &ctx.idmapped, ctx.notify_dir.as_deref())?;
    namespaces::become_root(plan)?;
    namespaces::join_keyring(ctx.id, ctx.no_new_keyring)?;
    let readonly_later = mounts::mount_all(plan, root.as_fd(), &sources, &ctx.cgroup_dirs)?;
    mounts::mount_notify_dir(plan, root.as_fd(), &sources, ctx.notify_target)?;
    drop(sources);
    rootfs::create_devices(plan, root.as_fd())?;
    rootfs::dev_symlinks(root.as_fd())?;
    rootfs::ensure_cwd(plan, root.as_fd())?;
    let env = container_env(ctx);
    // Before the old root goes (runc's order): the hooks may still reach host paths.
    let hook_state =
        hooks::before_pivot(plan, &process::environment(&plan.process, &env), channel)?;
    rootfs::sysctl(plan)?;
    rootfs::mask_paths(plan, root.as_fd())?;
    rootfs::readonly_paths(plan, root.as_fd())?;
    // rlimits and oom_score_adj were set by pier before it released this process.
    process::apply_umask(&plan.process);
    rootfs::switch_root(root, ctx.no_pivot, rootfs::own_mount_namespace(plan))?;
    console::setup(&plan.process, channel)?;
    rootfs::finish(plan, readonly_later)?;
    process::enter_cwd(&plan.process)?;
    let exec = last_steps(&plan.process, plan.seccomp.as_ref(), &env)?;
    Ok((exec, hook_state))
}

/// Step 2 of the protocol table and of the exec sequence: wait for the parent's Go.
fn wait_for_go(channel: &ChildEnd) -> Result<()> {
    match channel.recv().context("wait for the parent")? {
        Some(ToChild::Go) => Ok(()),
        Some(other) => anyhow::bail!("unexpected {other:?} from the parent"),
        None => anyhow::bail!("the parent went away"),
    }
}

/// The last steps of the init and of an exec'd process alike, once in their root and cwd:
/// personality, the seccomp filter (built here; loaded here or right before execve, see the
/// module documentation), the identity, and the executable lookup. Returns what `execve`
/// gets, `extra_env` added to `process.env`.
fn last_steps(
    process: &crate::spec::Process,
    seccomp: Option<&crate::spec::Seccomp>,
    extra_env: &[String],
) -> Result<process::Exec> {
    process::set_personality(process)?;
    let mut filter = seccomp.map(seccomp::build).transpose()?;
    if seccomp::loads_early(process) {
        filter.take().map(|f| f.load()).transpose()?;
    }
    identity::apply(process)?;
    let mut exec = process::resolve(process, extra_env)?;
    exec.seccomp = filter;
    Ok(exec)
}

/// What pier adds to `process.env`: `extra_env`, and `LISTEN_PID` (this process) next to
/// LISTEN_FDS.
fn container_env(ctx: &InitContext<'_>) -> Vec<String> {
    let mut env = ctx.extra_env.clone();
    if ctx.listen_fds {
        env.push(format!(
            "LISTEN_PID={}",
            rustix::process::getpid().as_raw_nonzero()
        ));
    }
    env
}
