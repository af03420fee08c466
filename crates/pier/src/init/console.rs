//! `process.terminal`: a pty allocated inside the container's own devpts (`pts(4)`), so the
//! container never holds a host pty. The master goes to the parent over the channel (which
//! passes it to `--console-socket` or proxies it in a foreground `run`); the slave becomes the
//! controlling terminal and stdio of a new session, and is bind-mounted at /dev/console.

use std::os::fd::{AsFd, OwnedFd};

use anyhow::{Context, Result};
use rustix::fs::{Mode, OFlags};
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
        bind_dev_console(&name)?;
    }
    channel
        .send_with_fd(&ToParent::Console(name), master.as_fd())
        .context("send the pty master")?;
    drop(master);
    become_session_leader(slave)
}

/// /dev/console is the container's pty, as on a real system's console.
fn bind_dev_console(pts: &str) -> Result<()> {
    match rustix::fs::open(
        "/dev/console",
        OFlags::CREATE | OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::from_raw_mode(0o600),
    ) {
        Ok(fd) => drop(fd),
        Err(rustix::io::Errno::EXIST) => {}
        Err(e) => return Err(e).context("create /dev/console"),
    }
    rustix::mount::mount_bind(pts, "/dev/console").context("bind the pty at /dev/console")?;
    Ok(())
}

/// setsid, make the slave the controlling terminal, and make it fds 0, 1 and 2.
fn become_session_leader(slave: OwnedFd) -> Result<()> {
    rustix::process::setsid().context("setsid")?;
    rustix::process::ioctl_tiocsctty(&slave).context("TIOCSCTTY")?;
    for fd in 0..3 {
        crate::sys::dup3_inheritable(slave.as_fd(), fd).context("make the pty stdio")?;
    }
    Ok(())
}
