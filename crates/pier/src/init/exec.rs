//! The child side of `pier exec`: a process cloned into the init's pid namespace and cgroup
//! joins the init's other namespaces through its pidfd, then takes the same last steps as the
//! init (limits, terminal, cwd, identity, executable lookup) and `execve`s at once: there is
//! no exec fifo. Steps are the init's own functions; only the order and the namespace join
//! are specific to exec.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

use rustix::fs::OFlags;

use anyhow::{Context, Result};
use rustix::thread::ThreadNameSpaceType;

use super::{console, process};
use crate::channel::{ChildEnd, ToParent};
use crate::spec::Process;

/// Everything the exec'd process needs, moved into it by `clone3`.
pub struct ExecContext<'a> {
    /// The process to run (runtime-spec `process`, already merged with the exec flags).
    pub process: &'a Process,
    /// A pidfd of the container's init (this process's own copy), for `setns(2)`; closed once
    /// the namespaces are joined.
    pub init_pidfd: Option<OwnedFd>,
    /// The init's namespaces that differ from pier's (pid excluded: the clone is already in it).
    pub namespaces: ThreadNameSpaceType,
    /// The init's root directory, to `chroot` into, when its mount namespace is pier's (a
    /// container without a mount namespace: `container::rootfs_bind`).
    pub root: Option<OwnedFd>,
    /// How many fds from 3 on cross `execve` (`--preserve-fds`).
    pub keep_fds: u32,
    /// The container's seccomp profile, loaded as for the init.
    pub seccomp: Option<&'a crate::spec::Seccomp>,
}

impl ExecContext<'_> {
    /// The fds the exec'd process keeps of those the clone copied; `sys::clone_child` closes
    /// the others (pier's state directory, signalfd, ...) before [`run`], so nothing of pier's
    /// exec crosses into the container and no path of it is resolved with them open: stdio,
    /// the fds asked for, the channel, the init's pidfd, the init's root (a container without a mount namespace)
    /// and the log file (all closed later).
    pub fn fds_to_keep(&self, channel: &ChildEnd) -> Vec<RawFd> {
        let mut keep: Vec<RawFd> = (0..3 + self.keep_fds as RawFd).collect();
        keep.push(channel.as_fd().as_raw_fd());
        keep.extend(self.init_pidfd.as_ref().map(AsRawFd::as_raw_fd));
        keep.extend(self.root.as_ref().map(AsRawFd::as_raw_fd));
        keep.extend(crate::logging::log_fd());
        keep
    }
}

/// Run the exec'd process's set-up in the child (only the fds of
/// [`ExecContext::fds_to_keep`] open); never returns.
pub fn run(mut ctx: ExecContext<'_>, channel: ChildEnd) -> ! {
    let ignored_signals = process::ignored_signals();
    // The container's pid namespace's process directories (never the host's /proc), to mark
    // fds close-on-exec where close_range(2) fails (`process::exec`).
    let fd_dir = super::procfs::ProcFs::pids_only()
        .and_then(|p| p.open("self/fd", OFlags::PATH | OFlags::DIRECTORY))
        .ok();
    let exec = match prepare(&mut ctx, &channel) {
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
fn prepare(ctx: &mut ExecContext<'_>, channel: &ChildEnd) -> Result<process::Exec> {
    super::wait_for_go(channel)?;
    // Through the host's /proc, before the container's mount namespace is the only one left.
    process::apply_limits(ctx.process)?;
    let init_pidfd = ctx.init_pidfd.take().context("no init pidfd")?;
    if !ctx.namespaces.is_empty() {
        rustix::thread::move_into_thread_name_spaces(init_pidfd.as_fd(), ctx.namespaces)
            .context("join the container's namespaces")?;
    }
    drop(init_pidfd);
    if let Some(root) = ctx.root.take() {
        rustix::process::fchdir(&root).context("chdir to the container's root")?;
        drop(root);
        rustix::process::chroot(".").context("chroot to the container's root")?;
    }
    crate::logging::close_file_from(3 + ctx.keep_fds as RawFd);
    console::setup_for_exec(ctx.process, channel)?;
    process::enter_cwd(ctx.process).map_err(|e| {
        anyhow::anyhow!(
            "chdir to cwd ({:?}) set in config.json failed: {}",
            ctx.process.cwd,
            e.root_cause()
        )
    })?;
    super::last_steps(ctx.process, ctx.seccomp, &[])
}
