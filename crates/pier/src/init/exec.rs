//! The child side of `pier exec`: a process cloned into the init's pid namespace and cgroup
//! joins the init's other namespaces through its pidfd, then takes the same last steps as the
//! init (limits, terminal, cwd, identity, executable lookup) and `execve`s at once: there is
//! no exec fifo. Steps are the init's own functions; only the order and the namespace join
//! are specific to exec.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};

use rustix::fs::OFlags;

use anyhow::{bail, Context, Result};
use rustix::thread::ThreadNameSpaceType;

use super::{console, identity, process, seccomp};
use crate::channel::{ChildEnd, ToChild, ToParent};
use crate::spec::Process;

/// Everything the exec'd process needs, moved into it by `clone3`.
pub struct ExecContext<'a> {
    /// The process to run (runtime-spec `process`, already merged with the exec flags).
    pub process: &'a Process,
    /// A pidfd of the container's init, for `setns(2)`.
    pub init_pidfd: BorrowedFd<'a>,
    /// The init's namespaces that differ from pier's (pid excluded: the clone is already in it).
    pub namespaces: ThreadNameSpaceType,
    /// How many fds from 3 on cross `execve` (`--preserve-fds`).
    pub keep_fds: u32,
    /// The container's seccomp profile, loaded as for the init.
    pub seccomp: Option<&'a crate::spec::Seccomp>,
}

/// Run the exec'd process's set-up in the child; never returns.
pub fn run(ctx: &ExecContext<'_>, channel: ChildEnd) -> ! {
    // Nothing of pier's exec crosses into the container (its state directory, signalfd, log
    // file, ...): only stdio, the fds asked for, the channel and the init's pidfd (closed once
    // the namespaces are joined) stay, before any path of the container is resolved.
    let mut keep: Vec<RawFd> = (0..3 + ctx.keep_fds as RawFd).collect();
    keep.extend([channel.as_fd().as_raw_fd(), ctx.init_pidfd.as_raw_fd()]);
    keep.extend(crate::logging::log_fd());
    crate::sys::close_all_except(&keep);
    let ignored_signals = process::ignored_signals();
    // The container's pid namespace's process directories (never the host's /proc), to mark
    // fds close-on-exec where close_range(2) fails (`process::exec`).
    let fd_dir = super::procfs::ProcFs::pids_only()
        .and_then(|p| p.open("self/fd", OFlags::PATH | OFlags::DIRECTORY))
        .ok();
    let exec = match prepare(ctx, &channel) {
        Ok(exec) => exec,
        Err(e) => super::fail(&channel, e),
    };
    // The channel is close-on-exec: after Ready, EOF tells the parent that execve worked.
    if channel.send(&ToParent::Ready).is_err() {
        crate::sys::exit_immediately(1);
    }
    let err = process::exec(
        &exec,
        ctx.keep_fds,
        ignored_signals,
        fd_dir.as_ref().map(AsFd::as_fd),
    );
    super::fail(&channel, err)
}

/// The steps, in order (protocol table, exec sequence, step 3).
fn prepare(ctx: &ExecContext<'_>, channel: &ChildEnd) -> Result<process::Exec> {
    match channel.recv().context("wait for the parent")? {
        Some(ToChild::Go) => {}
        Some(other) => bail!("unexpected {other:?} from the parent"),
        None => bail!("the parent went away"),
    }
    // Through the host's /proc, before the container's mount namespace is the only one left.
    process::apply_limits(ctx.process)?;
    if !ctx.namespaces.is_empty() {
        rustix::thread::move_into_thread_name_spaces(ctx.init_pidfd, ctx.namespaces)
            .context("join the container's namespaces")?;
    }
    crate::sys::close_raw(ctx.init_pidfd.as_raw_fd());
    if let Some(fd) = crate::logging::log_fd().filter(|fd| *fd >= 3 + ctx.keep_fds as RawFd) {
        crate::sys::close_raw(fd);
    }
    console::setup_for_exec(ctx.process, channel)?;
    process::enter_cwd(ctx.process).map_err(|e| {
        anyhow::anyhow!(
            "chdir to cwd ({:?}) set in config.json failed: {}",
            ctx.process.cwd,
            e.root_cause()
        )
    })?;
    process::set_personality(ctx.process)?;
    // Built before the identity change; loaded there or right before execve, as for the init.
    let mut filter = ctx.seccomp.map(seccomp::build).transpose()?;
    if seccomp::loads_early(ctx.process) {
        filter.take().map(|f| f.load()).transpose()?;
    }
    identity::apply(ctx.process)?;
    let mut exec = process::resolve(ctx.process, &[])?;
    exec.seccomp = filter;
    Ok(exec)
}
