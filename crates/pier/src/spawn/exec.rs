//! `pier exec`'s process: one `clone3` into the init's pid namespace, placed in the
//! container's cgroups, which then joins the init's other namespaces itself and `execve`s
//! (the exec sequence of [`super::protocol`]).

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::process::DumpableBehavior;
use rustix::thread::{LinkNameSpaceType, ThreadNameSpaceType};

use super::protocol::{Channel, ToChild, ToParent};
use super::Spawned;
use crate::cgroups::Cgroup;
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
    init_pid: i32,
    init_pidfd: BorrowedFd<'_>,
    cgroup: &Cgroup,
    keep_fds: u32,
) -> Result<Spawned> {
    let ctx = ExecContext {
        process,
        init_pidfd,
        namespaces: namespaces_to_join(init_pid)?,
        keep_fds,
    };
    let (parent, child) = Channel::pair().context("socketpair")?;
    rustix::process::set_dumpable_behavior(DumpableBehavior::NotDumpable)
        .context("PR_SET_DUMPABLE")?;
    let forked =
        with_pid_namespace_of(init_pidfd, || crate::sys::clone3(0, None).context("clone3"))?;
    match forked {
        Forked::Child => {
            drop(parent);
            crate::init::run_exec(&ctx, child)
        }
        Forked::Parent { pid, pidfd } => {
            drop(child);
            let mut spawned = Spawned {
                pid,
                pidfd,
                console: None,
            };
            match handshake(&mut spawned, cgroup, &parent) {
                Ok(()) => Ok(spawned),
                Err(e) => {
                    super::kill_and_reap(&spawned);
                    Err(e)
                }
            }
        }
    }
}

/// The namespaces of the init that are not pier's own (same inode = nothing to join).
fn namespaces_to_join(init_pid: i32) -> Result<ThreadNameSpaceType> {
    let mut flags = ThreadNameSpaceType::empty();
    for (name, flag) in JOINED {
        let theirs = rustix::fs::stat(format!("/proc/{init_pid}/ns/{name}"))
            .with_context(|| format!("read the container init's {name} namespace"))?;
        let ours = rustix::fs::stat(format!("/proc/self/ns/{name}"))
            .with_context(|| format!("read our {name} namespace"))?;
        if (theirs.st_dev, theirs.st_ino) != (ours.st_dev, ours.st_ino) {
            flags |= flag;
        }
    }
    Ok(flags)
}

/// Enter the init's pid namespace for children (`setns(pidfd, CLONE_NEWPID)` changes only
/// `pid_for_children`), run `f` (the clone), and return to our own.
fn with_pid_namespace_of<T>(
    init_pidfd: BorrowedFd<'_>,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    let own = rustix::fs::open(
        "/proc/self/ns/pid_for_children",
        OFlags::RDONLY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("open /proc/self/ns/pid_for_children")?;
    rustix::thread::move_into_thread_name_spaces(init_pidfd, ThreadNameSpaceType::PROCESS_ID)
        .context("join the container's pid namespace")?;
    let result = f();
    restore(&own);
    result
}

fn restore(own: &OwnedFd) {
    let _ =
        rustix::thread::move_into_link_name_space(own.as_fd(), Some(LinkNameSpaceType::ProcessID));
}

/// Steps 2 to 4 of the exec sequence, on the parent side.
fn handshake(spawned: &mut Spawned, cgroup: &Cgroup, channel: &Channel) -> Result<()> {
    cgroup
        .add_process(spawned.pid)
        .context("join the container's cgroup")?;
    channel
        .send(&ToChild::Go)
        .context("release the exec'd process")?;
    let mut ready = false;
    loop {
        match channel
            .recv_with_fd::<ToParent>()
            .context("read from the exec'd process")?
        {
            Some((ToParent::Ready, _)) => ready = true,
            Some((ToParent::Console(name), Some(master))) => spawned.console = Some((name, master)),
            Some((ToParent::Console(_), None)) => bail!("the exec'd process sent no pty master"),
            Some((ToParent::Error(chain), _)) => bail!("{chain}"),
            None if ready => return Ok(()),
            None => bail!(
                "the exec'd process exited during setup ({})",
                super::exit_status(spawned)
            ),
        }
    }
}
