//! `pier exec`'s process: one `clone3` into the init's pid namespace, placed in the
//! container's cgroups, which then joins the init's other namespaces itself and `execve`s
//! (the exec sequence of [`crate::channel`]).

use std::os::fd::{AsFd, BorrowedFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::process::DumpableBehavior;
use rustix::thread::{LinkNameSpaceType, ThreadNameSpaceType};

use super::Spawned;
use crate::cgroups::Cgroup;
use crate::channel::{self, ParentEnd, ToChild, ToParent};
use crate::init::ExecContext;
use crate::spec::Process;
use crate::sys::Forked;

/// The init's namespaces that `setns(pidfd, …)` joins, with their `/proc/<pid>/ns` names.
const JOINED: [(&str, ThreadNameSpaceType); 6] = [
    ("user", ThreadNameSpaceType::USER),
    ("mnt", ThreadNameSpaceType::MOUNT),
    ("net", ThreadNameSpaceType::NETWORK),
    ("ipc", ThreadNameSpaceType::INTER_PROCESS_COMMUNICATION),
    ("uts", ThreadNameSpaceType::HOST_NAME_AND_NIS_DOMAIN_NAME),
    ("cgroup", ThreadNameSpaceType::CONTROL_GROUP),
];

/// Start `process` in the container whose init is `init_pid` (with `init_pidfd`, checked by
/// the caller to be that init). Returns once the process has `execve`d; with
/// `process.terminal`, [`Spawned::console`] holds the pty master.
///
/// # Errors
/// clone3 or cgroup placement fails, or the process reports an error (runc's wording for a
/// missing executable or cwd) or dies. It is killed and reaped before returning an error.
pub fn spawn_exec(
    process: &Process,
    seccomp: Option<&crate::spec::Seccomp>,
    init_pid: i32,
    init_pidfd: BorrowedFd<'_>,
    cgroup: &Cgroup,
    keep_fds: u32,
) -> Result<Spawned> {
    let ctx = ExecContext {
        process,
        seccomp,
        init_pidfd,
        namespaces: namespaces_to_join(init_pid)?,
        keep_fds,
    };
    let (parent, child) = channel::pair().context("socketpair")?;
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .context("PR_SET_DUMPABLE")?;
    let clone = || crate::sys::clone3(0, None).context("clone3");
    let forked = with_namespaces_for_children(init_pid, init_pidfd, clone)?;
    match forked {
        Forked::Child => {
            drop(parent);
            crate::init::run_exec(&ctx, child)
        }
        Forked::Parent { pid, pidfd } => {
            drop(child);
            super::after_clone(pid, pidfd, |spawned| handshake(spawned, cgroup, &parent))
        }
    }
}

/// The namespaces of the init that are not pier's own (same inode = nothing to join).
fn namespaces_to_join(init_pid: i32) -> Result<ThreadNameSpaceType> {
    let mut flags = ThreadNameSpaceType::empty();
    for (name, flag) in JOINED {
        if differs(init_pid, name)? {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// Whether the init's namespace `name` (a `/proc/<pid>/ns` entry) is not pier's own.
fn differs(init_pid: i32, name: &str) -> Result<bool> {
    let theirs = rustix::fs::stat(format!("/proc/{init_pid}/ns/{name}"))
        .with_context(|| format!("read the container init's {name} namespace"))?;
    let ours = rustix::fs::stat(format!("/proc/self/ns/{name}"))
        .with_context(|| format!("read our {name} namespace"))?;
    Ok((theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino))
}

/// Enter the init's pid (and, if it has its own, time) namespace for children
/// (`setns(pidfd, CLONE_NEWPID|CLONE_NEWTIME)` changes only `pid_for_children` and
/// `time_for_children`), run `clone`, and (in the parent) return to our own.
fn with_namespaces_for_children(
    init_pid: i32,
    init_pidfd: BorrowedFd<'_>,
    clone: impl FnOnce() -> Result<Forked>,
) -> Result<Forked> {
    let mut joined = vec![(
        "pid_for_children",
        ThreadNameSpaceType::PROCESS_ID,
        LinkNameSpaceType::ProcessID,
    )];
    if differs(init_pid, "time")? {
        joined.push((
            "time_for_children",
            ThreadNameSpaceType::TIME,
            LinkNameSpaceType::Time,
        ));
    }
    let mut own = Vec::new();
    for (name, _, kind) in &joined {
        let path = format!("/proc/self/ns/{name}");
        let fd = rustix::fs::open(
            path.as_str(),
            OFlags::RDONLY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("open {path}"))?;
        own.push((fd, *kind));
    }
    let flags = joined
        .iter()
        .fold(ThreadNameSpaceType::empty(), |acc, (_, flag, _)| {
            acc | *flag
        });
    let result = rustix::thread::move_into_thread_name_spaces(init_pidfd, flags)
        .context("join the container's pid namespace")
        .and_then(|()| clone());
    // Only pier goes back: the child must keep them (a restored time_for_children would
    // take effect at its execve).
    if !matches!(result, Ok(Forked::Child)) {
        for (fd, kind) in own {
            let _ = rustix::thread::move_into_link_name_space(fd.as_fd(), Some(kind));
        }
    }
    result
}

/// Steps 2 to 4 of the exec sequence, on the parent side.
fn handshake(spawned: &mut Spawned, cgroup: &Cgroup, channel: &ParentEnd) -> Result<()> {
    cgroup
        .add_process(spawned.pid)
        .context("join the container's cgroup")?;
    channel
        .send(&ToChild::Go)
        .context("release the exec'd process")?;
    let mut ready = false;
    loop {
        match channel
            .recv_with_fd()
            .context("read from the exec'd process")?
        {
            Some((ToParent::Ready, _)) => ready = true,
            Some((ToParent::Console(name), Some(master))) => spawned.console = Some((name, master)),
            Some((ToParent::Console(_), None)) => bail!("the exec'd process sent no pty master"),
            Some((ToParent::Error(chain), _)) => bail!("{chain}"),
            Some((ToParent::Committed, _)) => bail!("unexpected Committed from the exec'd process"),
            None if ready => return Ok(()),
            None => bail!(
                "the exec'd process exited during setup ({})",
                super::exit_status(spawned)
            ),
        }
    }
}
