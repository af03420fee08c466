//! Creating the container's init: one `clone3` into the new namespaces and the cgroup, then
//! the message sequence of [`crate::channel`] until the child is blocked on the exec fifo.

pub mod exec;
mod userns;

pub use userns::idmapped_trees;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::process::{DumpableBehavior, Signal};

use crate::cgroups::Cgroup;
use crate::channel::{self, ParentEnd, ToChild, ToParent};
use crate::init::InitContext;
use crate::spec::{NamespaceKind, Plan};
use crate::sys::Forked;

/// The init, blocked on the exec fifo.
pub struct Spawned {
    /// Host pid.
    pub pid: i32,
    /// A pidfd for it (exit detection that also sees a zombie; signals without pid reuse).
    pub pidfd: OwnedFd,
    /// With `process.terminal`: the pty's name and master, allocated inside the container.
    pub console: Option<(String, OwnedFd)>,
    /// The channel, until [`Spawned::commit`].
    channel: Option<ParentEnd>,
}

impl Spawned {
    /// Step 5 of the protocol: the container is recorded, the init may outlive pier.
    ///
    /// # Errors
    /// The init is gone.
    pub fn commit(&mut self) -> Result<()> {
        let Some(channel) = self.channel.take() else {
            return Ok(());
        };
        channel
            .send(&ToChild::Committed)
            .context("tell the container init it is recorded")?;
        match channel.recv().context("read from the container init")? {
            Some(ToParent::Committed) => Ok(()),
            _ => bail!(
                "container init exited before it was recorded ({})",
                exit_status(self)
            ),
        }
    }
}

/// Clone the init and drive it to the exec fifo. `fifo` is an `O_PATH` fd of exec.fifo;
/// `lock` is the container directory fd, which the child closes at once.
///
/// # Errors
/// clone3 fails, cgroup placement fails, or the child reports an error (its chain is
/// returned) or dies. The child is killed and reaped before returning an error.
pub fn spawn_init(
    ctx: &InitContext<'_>,
    cgroup: &Cgroup,
    fifo: OwnedFd,
    lock: BorrowedFd<'_>,
) -> Result<Spawned> {
    let (parent, child) = channel::pair().context("socketpair")?;
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .context("PR_SET_DUMPABLE")?;
    let flags = clone_flags(ctx.plan);
    let forked = with_joined_pid_namespace(ctx.plan, || clone(flags, cgroup))?;
    match forked {
        Forked::Child => {
            drop(parent);
            crate::sys::close_inherited(lock);
            crate::init::run(ctx, child, fifo)
        }
        Forked::Parent { pid, pidfd } => {
            drop(child);
            drop(fifo);
            after_clone(pid, pidfd, |spawned| {
                handshake(spawned, ctx.plan, cgroup, &parent)?;
                spawned.channel = Some(parent);
                Ok(())
            })
        }
    }
}

/// The parent's side of a clone: run `handshake`, or kill and reap the child if it fails.
pub(crate) fn after_clone(
    pid: i32,
    pidfd: OwnedFd,
    handshake: impl FnOnce(&mut Spawned) -> Result<()>,
) -> Result<Spawned> {
    let mut spawned = Spawned {
        pid,
        pidfd,
        console: None,
        channel: None,
    };
    match handshake(&mut spawned) {
        Ok(()) => Ok(spawned),
        Err(e) => {
            kill_and_reap(&spawned);
            Err(e)
        }
    }
}

fn clone(flags: libc::c_int, cgroup: &Cgroup) -> Result<Forked> {
    match crate::sys::clone3(flags, cgroup.clone_into_fd()) {
        // A cgroup2 directory that cannot take processes directly (no-internal-process rule,
        // or a threaded subtree): clone outside it and place the child by pid instead.
        Err(e) if cgroup.clone_into_fd().is_some() && e.raw_os_error() != Some(libc::EPERM) => {
            crate::sys::clone3(flags, None).context("clone3")
        }
        other => other.context("clone3"),
    }
}

/// `CLONE_NEW*` for every namespace the plan creates, except cgroup: a cgroup namespace is
/// rooted where the process is when it is made, and on v1 hierarchies the child only reaches
/// its cgroups after the clone, so init unshares it once placed (step 2 of the protocol).
fn clone_flags(plan: &Plan) -> libc::c_int {
    plan.namespaces
        .iter()
        .filter(|n| n.path.is_none() && n.kind != NamespaceKind::Cgroup)
        .fold(0, |acc, n| acc | n.kind.clone_flag())
}

/// A pid (or time) namespace joined by path applies to children only: enter it for the
/// clone, then return to our own so nothing else pier forks lands in the container's. Only
/// pier returns: the child keeps them (a restored time_for_children would apply at execve).
fn with_joined_pid_namespace(plan: &Plan, f: impl FnOnce() -> Result<Forked>) -> Result<Forked> {
    let joined: Vec<_> = plan
        .namespaces
        .iter()
        .filter(|n| n.path.is_some() && matches!(n.kind, NamespaceKind::Pid | NamespaceKind::Time))
        .collect();
    let mut restore = Vec::new();
    for ns in &joined {
        let own = if ns.kind == NamespaceKind::Pid {
            "/proc/self/ns/pid_for_children"
        } else {
            "/proc/self/ns/time_for_children"
        };
        restore.push((open_ns(own.as_ref())?, ns.kind));
        let target = open_ns(ns.path.as_ref().expect("filtered on path"))?;
        rustix::thread::move_into_link_name_space(
            target.as_fd(),
            Some(crate::init::link_type(ns.kind)),
        )
        .with_context(|| format!("join {:?} namespace", ns.kind))?;
    }
    let result = f();
    if !matches!(result, Ok(Forked::Child)) {
        for (fd, kind) in restore {
            let _ = rustix::thread::move_into_link_name_space(
                fd.as_fd(),
                Some(crate::init::link_type(kind)),
            );
        }
    }
    result
}

fn open_ns(path: &std::path::Path) -> Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .with_context(|| format!("open namespace {}", path.display()))
}

/// Steps 2, 3b and 4 of the protocol table, on the parent side.
fn handshake(
    spawned: &mut Spawned,
    plan: &Plan,
    cgroup: &Cgroup,
    channel: &ParentEnd,
) -> Result<()> {
    cgroup
        .add_process(spawned.pid)
        .context("join the container's cgroup")?;
    userns::write_id_maps(spawned.pid, plan)?;
    let pid = rustix::process::Pid::from_raw(spawned.pid).context("child pid")?;
    crate::init::set_limits(Some(pid), &plan.process)?;
    channel
        .send(&ToChild::Go)
        .context("release the container init")?;
    loop {
        match channel
            .recv_with_fd()
            .context("read from the container init")?
        {
            Some((ToParent::Ready, _)) => return Ok(()),
            Some((ToParent::Console(name), Some(master))) => spawned.console = Some((name, master)),
            Some((ToParent::Console(_), None)) => bail!("container init sent no pty master"),
            Some((ToParent::Error(chain), _)) => bail!("{chain}"),
            Some((ToParent::Committed, _)) => bail!("unexpected Committed from the container init"),
            None => bail!(
                "container init exited during setup ({})",
                exit_status(spawned)
            ),
        }
    }
}

/// SIGKILL the child and reap it.
pub fn kill_and_reap(spawned: &Spawned) {
    let _ = rustix::process::pidfd_send_signal(&spawned.pidfd, Signal::KILL);
    let _ = rustix::process::waitid(
        rustix::process::WaitId::PidFd(spawned.pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    );
}

fn exit_status(spawned: &Spawned) -> String {
    match rustix::process::waitid(
        rustix::process::WaitId::PidFd(spawned.pidfd.as_fd()),
        rustix::process::WaitIdOptions::EXITED,
    ) {
        Ok(Some(status)) => describe_status(&status),
        _ => "status unknown".to_string(),
    }
}

/// `exit status N` or `killed by signal N`.
pub fn describe_status(status: &rustix::process::WaitIdStatus) -> String {
    match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        _ => "status unknown".to_string(),
    }
}
