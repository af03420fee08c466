//! Creating the container's init: one `clone3` into the new namespaces and the cgroup, then
//! the message sequence of [`crate::channel`] until the child is blocked on the exec fifo.

pub mod exec;
mod userns;

pub use userns::{check_joined_maps, idmapped_trees};

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::process::DumpableBehavior;

use crate::activation::Activation;
use crate::cgroups::Cgroup;
use crate::channel::{self, ParentEnd, ToChild, ToParent};
use crate::hooks::{self, HookState, Point};
use crate::init::InitContext;
use crate::notify;
use crate::spec::{NamespaceKind, Plan};
use crate::state::Status;
use crate::undo::Undo;

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

/// What `create` asks of the container init. [`spawn_init`] builds the child's
/// [`InitContext`] from it (the fds it keeps, its added environment, the idmapped trees,
/// where the notify directory goes), so the lifecycle layer does not know the child's shape.
pub struct InitRequest<'a> {
    /// The container id.
    pub id: &'a str,
    /// The loaded config.json.
    pub plan: &'a Plan,
    /// `--no-pivot`.
    pub no_pivot: bool,
    /// `--no-new-keyring`.
    pub no_new_keyring: bool,
    /// `--preserve-fds`: how many fds after the LISTEN_FDS ones (from 3 on) cross `execve`.
    pub preserve_fds: u32,
    /// The socket activation pier was given (sd_listen_fds(3)), passed on to the init.
    pub activation: Activation,
    /// The sd_notify directory and environment ([`notify::prepare`]), when pier relays.
    pub notify: Option<notify::ContainerSide>,
}

impl<'a> InitRequest<'a> {
    /// The init's context: everything the child needs, moved into it by `clone3`. `cgroup` is
    /// the container's (its directories, for `cgroup` bind mounts without a cgroup ns).
    ///
    /// # Errors
    /// An idmapped mount's tree cannot be made ([`idmapped_trees`]).
    fn context(&'a self, cgroup: &Cgroup) -> Result<InitContext<'a>> {
        let listen_fds = self.activation.listen_fds;
        let mut extra_env = self
            .notify
            .as_ref()
            .map(|n| n.env.clone())
            .unwrap_or_default();
        extra_env.extend(self.activation.env());
        Ok(InitContext {
            id: self.id,
            plan: self.plan,
            no_pivot: self.no_pivot,
            no_new_keyring: self.no_new_keyring,
            keep_fds: listen_fds + self.preserve_fds,
            listen_fds: listen_fds > 0,
            extra_env,
            notify_dir: self.notify.as_ref().map(|n| n.host_dir.clone()),
            notify_target: notify::CONTAINER_DIR,
            cgroup_dirs: cgroup.state().dirs.clone(),
            idmapped: idmapped_trees(self.plan)?,
        })
    }
}

/// Clone the init asked for by `request` and drive it to the exec fifo. `fifo` is an
/// `O_PATH` fd of exec.fifo; the child keeps none of pier's other fds (the container
/// directory's lock among them).
///
/// # Errors
/// An idmapped tree cannot be made, clone3 fails, cgroup placement fails, or the child
/// reports an error (its chain is returned) or dies. The child is killed and reaped before
/// returning an error.
pub fn spawn_init(
    request: &InitRequest<'_>,
    cgroup: &Cgroup,
    fifo: OwnedFd,
) -> Result<Undo<Spawned>> {
    let ctx = &request.context(cgroup)?;
    let (parent, child) = channel::pair().context("socketpair")?;
    // Unprivileged, pier writes the child's id maps as their owner, but the /proc/<pid> files
    // of a non-dumpable process belong to root (proc(5)): that child starts dumpable and
    // makes itself non-dumpable on Go, as runc's stage-1 child does around its maps.
    let maps_as_owner =
        crate::rootless::unprivileged() && ctx.plan.creates_namespace(NamespaceKind::User);
    if !maps_as_owner {
        rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
            .context("PR_SET_DUMPABLE")?;
    }
    let flags = clone_flags(ctx.plan);
    // The child keeps its channel end and the fifo (not the parent's end, not the lock); the
    // closure owns both, so the parent's copies close when it returns.
    let keep = ctx.fds_to_keep(&child, &fifo);
    let body = move || crate::init::run(ctx, child, fifo);
    let init = with_joined_pid_namespace(ctx.plan, || match joined_user_namespace(ctx.plan) {
        Some(userns) if flags != 0 => clone_in_user_namespace(userns, flags, cgroup, &keep, body),
        _ => clone(flags, cgroup, &keep, body),
    });
    if maps_as_owner {
        // pier itself is not dumpable for the rest of its run, as in the other case.
        let _ = rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable);
    }
    after_clone(init?, |spawned| {
        handshake(spawned, Setup::Init(ctx), cgroup, &parent)?;
        spawned.channel = Some(parent);
        Ok(())
    })
}

/// The parent's side of a clone: run `handshake`. The child is killed and reaped when the
/// returned guard is dropped without [`Undo::keep`] (a failed handshake drops it at once).
pub(crate) fn after_clone(
    child: crate::sys::Child,
    handshake: impl FnOnce(&mut Spawned) -> Result<()>,
) -> Result<Undo<Spawned>> {
    let mut spawned = Undo::new(
        Spawned {
            pid: child.pid,
            pidfd: child.pidfd,
            console: None,
            channel: None,
        },
        |s| kill_and_reap(&s),
    );
    handshake(&mut spawned)?;
    Ok(spawned)
}

fn clone(
    flags: libc::c_int,
    cgroup: &Cgroup,
    keep: &[RawFd],
    body: impl FnOnce() -> i32,
) -> Result<crate::sys::Child> {
    // Tried twice, so borrowed by the first try and moved into the second.
    let mut body = Some(body);
    let mut run = || body.take().map_or(1, |b| b());
    match crate::sys::clone_child(flags, cgroup.clone_into_fd(), keep, &mut run) {
        // A cgroup2 directory that cannot take processes directly (no-internal-process rule,
        // or a threaded subtree): clone outside it and place the child by pid instead.
        Err(e) if cgroup.clone_into_fd().is_some() && e.raw_os_error() != Some(libc::EPERM) => {
            crate::sys::clone_child(flags, None, keep, run).context("clone3")
        }
        other => other.context("clone3"),
    }
}

/// The user namespace config.json joins by path, if any.
fn joined_user_namespace(plan: &Plan) -> Option<&std::path::Path> {
    plan.namespaces
        .iter()
        .find(|n| n.kind == NamespaceKind::User)
        .and_then(|n| n.path.as_deref())
}

/// What the helper of [`clone_from_helper`] reports: the child's host pid (its pidfd
/// attached), or why it could not clone it.
type CloneReport = std::result::Result<i32, String>;

/// [`clone`] from inside the user namespace `userns`, so that the namespaces `flags` creates
/// are owned by it (the container's root can then mount in its mount namespace, procfs for
/// its pid namespace...). A helper joins `userns` (setns(2): pier itself could not come back)
/// and clones the init ([`clone_from_helper`]). runc's nsexec does the same with its stage-1
/// and stage-2 children.
///
/// # Errors
/// `userns` cannot be opened or is not a user namespace; the helper cannot be forked; the
/// clone in it fails (its error is returned).
fn clone_in_user_namespace(
    userns: &std::path::Path,
    flags: libc::c_int,
    cgroup: &Cgroup,
    keep: &[RawFd],
    body: impl FnOnce() -> i32,
) -> Result<crate::sys::Child> {
    let ns = open_ns(userns)?;
    let enter = || match rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::User),
    ) {
        Err(rustix::io::Errno::INVAL) => bail!("not a user namespace (setns: EINVAL)"),
        other => other.context("join the user namespace"),
    };
    clone_from_helper(
        enter,
        &[ns.as_raw_fd()],
        flags,
        cgroup.clone_into_fd(),
        keep,
        body,
    )
}

/// Clone a child of pier from a helper process that first runs `enter` (joining namespaces
/// pier itself must not, or could not leave): the helper clones with `CLONE_PARENT`, so the
/// child is pier's as on the other paths, sends its pidfd back (SCM_RIGHTS) and is reaped.
/// `enter_fds` are the fds `enter` uses (kept in the helper besides `keep`).
///
/// # Errors
/// The helper cannot be forked; `enter` or the clone in it fails (its error is returned).
pub(crate) fn clone_from_helper(
    enter: impl FnOnce() -> Result<()>,
    enter_fds: &[RawFd],
    flags: libc::c_int,
    cgroup: Option<std::os::fd::BorrowedFd<'_>>,
    keep: &[RawFd],
    body: impl FnOnce() -> i32,
) -> Result<crate::sys::Child> {
    let (report, from_helper) = channel::pair_of::<CloneReport, ()>().context("socketpair")?;
    let mut helper_keep = keep.to_vec();
    helper_keep.extend(enter_fds);
    helper_keep.push(report.as_fd().as_raw_fd());
    helper_keep.extend(cgroup.map(|fd| fd.as_raw_fd()));
    let helper = crate::sys::fork_helper(&helper_keep, move || {
        let cloned = enter().and_then(|()| clone_as_parent(flags, cgroup, keep, body));
        let sent = match cloned {
            Ok(child) => report.send_with_fd(&Ok(child.pid), child.pidfd.as_fd()),
            Err(e) => report.send(&Err(format!("{e:#}"))),
        };
        i32::from(sent.is_err())
    })
    .context("fork the helper that joins the namespaces")?;
    let received = from_helper.recv_with_fd();
    crate::sys::kill_and_reap(helper.pidfd.as_fd());
    match received.context("read from the namespace helper")? {
        Some((Ok(pid), Some(pidfd))) => Ok(crate::sys::Child { pid, pidfd }),
        Some((Err(chain), _)) => bail!("{chain}"),
        _ => bail!("the namespace helper exited without cloning the child"),
    }
}

/// The helper's clone: `flags | CLONE_PARENT`, into `cgroup` where the kernel allows.
fn clone_as_parent(
    flags: libc::c_int,
    cgroup: Option<std::os::fd::BorrowedFd<'_>>,
    keep: &[RawFd],
    body: impl FnOnce() -> i32,
) -> Result<crate::sys::Child> {
    let flags = flags | libc::CLONE_PARENT;
    let mut body = Some(body);
    let mut run = || body.take().map_or(1, |b| b());
    match crate::sys::clone_child(flags, cgroup, keep, &mut run) {
        // As in [`clone`]: a cgroup2 directory that cannot take processes directly.
        Err(e) if cgroup.is_some() && e.raw_os_error() != Some(libc::EPERM) => {
            crate::sys::clone_child(flags, None, keep, run).context("clone3")
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

/// A pid (or time) namespace joined by path applies to children only: entered for the clone
/// ([`for_children`]), so nothing else pier forks lands in the container's.
fn with_joined_pid_namespace<T>(plan: &Plan, clone: impl FnOnce() -> Result<T>) -> Result<T> {
    let joined: Vec<_> = plan
        .namespaces
        .iter()
        .filter(|n| n.path.is_some() && matches!(n.kind, NamespaceKind::Pid | NamespaceKind::Time))
        .collect();
    let kinds: Vec<_> = joined.iter().map(|n| n.kind).collect();
    let enter = || {
        for ns in &joined {
            let target = open_ns(ns.path.as_ref().expect("filtered on path"))?;
            rustix::thread::move_into_link_name_space(
                target.as_fd(),
                Some(crate::init::link_type(ns.kind)),
            )
            .with_context(|| format!("join {:?} namespace", ns.kind))?;
        }
        Ok(())
    };
    for_children(&kinds, enter, clone)
}

/// The one way pier enters namespaces that apply to children only (pid and time: `setns(2)`
/// changes `pid_for_children` and `time_for_children`): open our own of `kinds`, `enter` the
/// container's, run `clone`, then return to ours, also when `enter` or `clone` failed. Only
/// pier returns here: the child keeps them (a restored time_for_children would apply at its
/// execve). The init (namespaces joined by path) and exec (the init's, through its pidfd)
/// use it.
pub(crate) fn for_children<T>(
    kinds: &[NamespaceKind],
    enter: impl FnOnce() -> Result<()>,
    clone: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let mut own = Vec::new();
    for kind in kinds {
        let name = match kind {
            NamespaceKind::Pid => "pid_for_children",
            NamespaceKind::Time => "time_for_children",
            other => bail!("{other:?} namespaces do not apply to children only"),
        };
        own.push((open_ns(format!("/proc/self/ns/{name}").as_ref())?, *kind));
    }
    let result = enter().and_then(|()| clone());
    for (fd, kind) in own {
        let _ = rustix::thread::move_into_link_name_space(
            fd.as_fd(),
            Some(crate::init::link_type(kind)),
        );
    }
    result
}

fn open_ns(path: &std::path::Path) -> Result<OwnedFd> {
    rustix::fs::open(path, OFlags::RDONLY | OFlags::CLOEXEC, Mode::empty())
        .with_context(|| format!("open namespace {}", path.display()))
}

/// Which child a [`handshake`] drives.
pub(crate) enum Setup<'a> {
    /// The container's init (protocol table steps 2 to 4): id maps and limits before Go,
    /// the runtime hooks on request, done at Ready (it then waits for Committed).
    Init(&'a InitContext<'a>),
    /// An exec'd process (exec sequence steps 2 to 4): done at EOF after Ready (its channel
    /// is close-on-exec, so EOF says execve worked).
    Exec,
}

impl Setup<'_> {
    /// The child's name in errors.
    fn who(&self) -> &'static str {
        match self {
            Setup::Init(_) => "the container init",
            Setup::Exec => "the exec'd process",
        }
    }
}

/// The parent's side of a child's set-up, for the init and exec alike: place it in the
/// cgroup (and, for the init, write its id maps and limits), release it with Go, then
/// answer its messages until it is done ([`Setup`]): the pty master it sends is kept in
/// [`Spawned::console`], an error it reports is returned.
pub(crate) fn handshake(
    spawned: &mut Spawned,
    setup: Setup<'_>,
    cgroup: &Cgroup,
    channel: &ParentEnd,
) -> Result<()> {
    let who = setup.who();
    cgroup
        .add_process(spawned.pid)
        .context("join the container's cgroup")?;
    if let Setup::Init(ctx) = &setup {
        userns::write_id_maps(spawned.pid, ctx.plan)?;
        let pid = rustix::process::Pid::from_raw(spawned.pid).context("child pid")?;
        crate::init::set_limits(Some(pid), &ctx.plan.process)?;
    }
    channel
        .send(&ToChild::Go)
        .with_context(|| format!("release {who}"))?;
    let mut ready = false;
    loop {
        match (
            channel
                .recv_with_fd()
                .with_context(|| format!("read from {who}"))?,
            &setup,
        ) {
            (Some((ToParent::Ready, _)), Setup::Init(_)) => return Ok(()),
            (Some((ToParent::Ready, _)), Setup::Exec) => ready = true,
            (Some((ToParent::RuntimeHooks, _)), Setup::Init(ctx)) => {
                let state = run_runtime_hooks(ctx, spawned.pid)?;
                channel
                    .send(&ToChild::RuntimeHooksDone(state))
                    .with_context(|| format!("resume {who} after its hooks"))?;
            }
            (Some((ToParent::Console(name), Some(master))), _) => {
                spawned.console = Some((name, master))
            }
            (Some((ToParent::Console(_), None)), _) => bail!("{who} sent no pty master"),
            (Some((ToParent::Error(chain), _)), _) => bail!("{chain}"),
            (Some((other, _)), _) => bail!("unexpected {other:?} from {who}"),
            (None, Setup::Exec) if ready => return Ok(()),
            (None, _) => bail!("{who} exited during setup ({})", ended(spawned, cgroup)),
        }
    }
}

/// Step 3a: prestart, then createRuntime (runtime.md "Lifecycle" steps 3 and 4), in pier's
/// namespaces with the bundle as working directory (as runc, which runs in the bundle).
/// Returns the state they read, status `creating` and the init's host pid.
fn run_runtime_hooks(ctx: &InitContext<'_>, pid: i32) -> Result<HookState> {
    let plan = ctx.plan;
    let state = HookState::of_plan(plan, ctx.id, Status::Creating, Some(pid));
    let cwd = Some(plan.bundle.as_path());
    hooks::run(Point::Prestart, &plan.hooks.prestart, &state, cwd)?;
    hooks::run(
        Point::CreateRuntime,
        &plan.hooks.create_runtime,
        &state,
        cwd,
    )?;
    Ok(state)
}

/// SIGKILL the child and reap it.
pub fn kill_and_reap(spawned: &Spawned) {
    crate::sys::kill_and_reap(spawned.pidfd.as_fd());
}

/// How a child that exited during set-up ended, naming the memory limit when the OOM killer
/// killed it (runc fails then with "unable to set memory limit to N (current usage: ..)").
fn ended(spawned: &Spawned, cgroup: &Cgroup) -> String {
    let status = exit_status(spawned);
    match cgroup.oom_cause() {
        Some(cause) => format!("{status}, by {cause}"),
        None => status,
    }
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
