//! The container's terminal on pier's side: handing the pty master to `--console-socket`
//! (one `sendmsg` with the pty name and one SCM_RIGHTS fd, the framing go-runc and conmon
//! check), or, for a foreground `run`, proxying it to pier's own stdio with the caller's
//! terminal in raw mode and its window size followed.

use std::io::IoSlice;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::Path;

use anyhow::{Context, Result};
use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags};
use rustix::termios::{OptionalActions, Termios};

/// runc's terminal rule (`utils_linux.go` checkTerminal), for `create`/`run` and `exec`
/// alike: a detached process with a terminal needs `--console-socket`, and a console socket
/// is only for a detached process with a terminal. `create` is always detached.
///
/// # Errors
/// The combination runc refuses, with runc's message.
pub fn check_terminal(terminal: bool, detach: bool, console_socket: bool) -> Result<()> {
    if detach && terminal && !console_socket {
        anyhow::bail!("cannot allocate tty if pier will detach without setting console socket (process.terminal is true)");
    }
    if console_socket && !(detach && terminal) {
        anyhow::bail!("cannot use console socket if pier will not detach or allocate tty (process.terminal is {terminal})");
    }
    Ok(())
}

/// Connect to the engine's console socket and send it the master (then close ours).
pub fn send_to_console_socket(path: &Path, name: &str, master: BorrowedFd<'_>) -> Result<()> {
    let socket = rustix::net::socket_with(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::STREAM,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    let addr = rustix::net::SocketAddrUnix::new(path).context("console socket path")?;
    rustix::net::connect(&socket, &addr)
        .with_context(|| format!("connect to the console socket {}", path.display()))?;
    let fds = [master];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(&fds));
    rustix::net::sendmsg(
        &socket,
        &[IoSlice::new(name.as_bytes())],
        &mut control,
        SendFlags::NOSIGNAL,
    )
    .context("send the pty master to the console socket")?;
    Ok(())
}

/// A foreground `run`'s terminal: copies stdin to the pty and the pty to stdout.
pub struct Proxy {
    master: OwnedFd,
    saved: Option<Termios>,
    stdin_open: bool,
}

impl Proxy {
    /// Start proxying `master`; a terminal on stdin goes raw (restored on drop) and lends
    /// its window size to the pty.
    pub fn new(master: OwnedFd) -> Proxy {
        let stdin = rustix::stdio::stdin();
        let saved = rustix::termios::tcgetattr(stdin).ok();
        if let Some(original) = &saved {
            let mut raw = original.clone();
            raw.make_raw();
            let _ = rustix::termios::tcsetattr(stdin, OptionalActions::Now, &raw);
        }
        let proxy = Proxy {
            master,
            saved,
            stdin_open: true,
        };
        proxy.resize();
        proxy
    }

    /// The pty master, to poll for output.
    pub fn master(&self) -> BorrowedFd<'_> {
        self.master.as_fd()
    }

    /// stdin, to poll for input, until it reached EOF.
    pub fn stdin(&self) -> Option<BorrowedFd<'static>> {
        self.stdin_open.then(rustix::stdio::stdin)
    }

    /// Copy what stdin has to the pty.
    pub fn copy_in(&mut self) {
        let mut buf = [0u8; 4096];
        match rustix::io::read(rustix::stdio::stdin(), &mut buf) {
            Ok(0) | Err(_) => self.stdin_open = false,
            Ok(n) => write_all(self.master.as_fd(), &buf[..n]),
        }
    }

    /// Copy what the pty has to stdout; false once the container side is closed.
    pub fn copy_out(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        match rustix::io::read(&self.master, &mut buf) {
            Ok(0) => false,
            Ok(n) => {
                write_all(rustix::stdio::stdout(), &buf[..n]);
                true
            }
            Err(rustix::io::Errno::AGAIN) | Err(rustix::io::Errno::INTR) => true,
            Err(_) => false,
        }
    }

    /// Everything left in the pty after the container exited.
    pub fn drain(&mut self) {
        let _ = rustix::io::ioctl_fionbio(&self.master, true);
        while self.copy_out() {}
    }

    /// Give the pty the caller's window size (on start and on SIGWINCH).
    pub fn resize(&self) {
        if let Ok(size) = rustix::termios::tcgetwinsize(rustix::stdio::stdin()) {
            let _ = rustix::termios::tcsetwinsize(&self.master, size);
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        if let Some(original) = &self.saved {
            let _ =
                rustix::termios::tcsetattr(rustix::stdio::stdin(), OptionalActions::Now, original);
        }
    }
}

fn write_all(fd: BorrowedFd<'_>, mut data: &[u8]) {
    while !data.is_empty() {
        match rustix::io::write(fd, data) {
            Ok(n) if n > 0 => data = &data[n..],
            Err(rustix::io::Errno::INTR) | Err(rustix::io::Errno::AGAIN) => continue,
            _ => return,
        }
    }
}
