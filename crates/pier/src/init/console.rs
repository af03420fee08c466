//! `process.terminal`: a pty allocated inside the container's own devpts (`pts(4)`), so the
//! container never holds a host pty. The master goes to the parent over the channel (which
//! passes it to `--console-socket` or proxies it in a foreground `run`); the slave becomes the
//! controlling terminal and stdio of a new session, and is bind-mounted at /dev/console.
//!
//! Everything here runs after the root switch, in a tree the container's config and image
//! shaped, so nothing is done through a path the container controls (the CVE-2025-52565
//! class): the master must be on a devpts, the slave comes from the master (`TIOCGPTPEER`,
//! never the `/dev/pts/N` name, which a bind over /dev/pts can point anywhere), and it is
//! bound from that fd onto /dev/console opened without following a symlink
//! (`open_tree` + `move_mount`, no `/proc/self/fd` path: the container's /proc may be fake).

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
use rustix::mount::{MoveMountFlags, OpenTreeFlags};
use rustix::pty::OpenptFlags;

use crate::channel::{ChildEnd, ToParent};
use crate::spec::Process;

/// Allocate the pty (after the root switch) and hand the master to the parent.
pub fn setup(process: &Process, channel: &ChildEnd) -> Result<()> {
    allocate(process, channel, true)
}

/// For a process exec'd into a running container: the same pty, without touching
/// /dev/console (it belongs to the init's terminal).
pub fn setup_for_exec(process: &Process, channel: &ChildEnd) -> Result<()> {
    allocate(process, channel, false)
}

fn allocate(process: &Process, channel: &ChildEnd, dev_console: bool) -> Result<()> {
    if !process.terminal {
        return Ok(());
    }
    let master = rustix::fs::open(
        "/dev/pts/ptmx",
        OFlags::RDWR | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .context("process.terminal needs a devpts mount at /dev/pts: open /dev/pts/ptmx")?;
    check_on_devpts(&master)?;
    rustix::pty::unlockpt(&master).context("unlockpt")?;
    let slave = rustix::pty::ioctl_tiocgptpeer(
        &master,
        OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC,
    )
    .context("open the pty slave (TIOCGPTPEER)")?;
    let name = rustix::pty::ptsname(&master, Vec::new()).context("ptsname")?;
    let name = name.to_string_lossy().into_owned();
    if let Some((rows, cols)) = process.console_size {
        let size = rustix::termios::Winsize {
            ws_row: rows,
            ws_col: cols,
            ws_xpixel: 0,
            ws_ypixel: 0,
        };
        rustix::termios::tcsetwinsize(&slave, size).context("set the console size")?;
    }
    if dev_console {
        bind_dev_console(&slave)?;
    }
    channel
        .send_with_fd(&ToParent::Console(name), master.as_fd())
        .context("send the pty master")?;
    drop(master);
    become_session_leader(slave)
}

/// /dev/console is the container's pty, as on a real system's console: a bind of `slave`
/// (the fd, not its name) onto /dev/console, which is created as an empty file when missing
/// and must be a regular file or a device node, never a symlink (an image's
/// `/dev/console -> /proc/sys/kernel/core_pattern` is refused, as runc >= 1.2.8 refuses it).
///
/// # Errors
/// /dev/console is a symlink or a directory, or cannot be created; the bind fails.
fn bind_dev_console(slave: &OwnedFd) -> Result<()> {
    let target = open_console_target()?;
    let tree = rustix::mount::open_tree(
        slave,
        "",
        OpenTreeFlags::OPEN_TREE_CLONE
            | OpenTreeFlags::OPEN_TREE_CLOEXEC
            | OpenTreeFlags::AT_EMPTY_PATH,
    )
    .context("bind the pty at /dev/console: open_tree of the pty")?;
    rustix::mount::move_mount(
        &tree,
        "",
        &target,
        "",
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH | MoveMountFlags::MOVE_MOUNT_T_EMPTY_PATH,
    )
    .context("bind the pty at /dev/console")?;
    Ok(())
}

/// `/dev/console` as an `O_PATH` fd of the file itself (a symlink there is not followed and
/// refused), created empty (0600) when it does not exist. Device nodes are never opened.
fn open_console_target() -> Result<OwnedFd> {
    let flags = OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open("/dev/console", flags, Mode::empty()) {
        Err(rustix::io::Errno::NOENT) => {
            match rustix::fs::open(
                "/dev/console",
                OFlags::CREATE | OFlags::EXCL | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
                Mode::from_raw_mode(0o600),
            ) {
                Ok(created) => drop(created),
                Err(rustix::io::Errno::EXIST) => {}
                Err(e) => return Err(e).context("create /dev/console"),
            }
            rustix::fs::open("/dev/console", flags, Mode::empty())
        }
        other => other,
    }
    .context("open /dev/console")?;
    let kind = rustix::fs::FileType::from_raw_mode(rustix::fs::fstat(&fd)?.st_mode);
    use rustix::fs::FileType as T;
    let what = match kind {
        T::RegularFile | T::CharacterDevice => return Ok(fd),
        T::Symlink => "a symlink",
        T::Directory => "a directory",
        _ => "neither a file nor a device node",
    };
    anyhow::bail!("/dev/console in the container is {what}: refusing to bind the console onto it")
}

/// The pty master must come from a devpts (`DEVPTS_SUPER_MAGIC`), as runc >= 1.2.8 checks:
/// /dev/pts/ptmx is reached through the container's tree.
fn check_on_devpts(master: &OwnedFd) -> Result<()> {
    const DEVPTS_SUPER_MAGIC: i64 = 0x1cd1;
    let fs = rustix::fs::fstatfs(master).context("fstatfs the pty master")?;
    if fs.f_type as i64 != DEVPTS_SUPER_MAGIC {
        anyhow::bail!("/dev/pts/ptmx in the container is not on a devpts");
    }
    Ok(())
}

/// setsid, make the slave the controlling terminal, and make it fds 0, 1 and 2.
fn become_session_leader(slave: OwnedFd) -> Result<()> {
    rustix::process::setsid().context("setsid")?;
    rustix::process::ioctl_tiocsctty(&slave).context("TIOCSCTTY")?;
    for fd in 0..3 {
        crate::sys::dup_onto_stdio(slave.as_fd(), fd).context("make the pty stdio")?;
    }
    Ok(())
}
