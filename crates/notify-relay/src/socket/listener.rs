//! The container-side socket: bound through a directory fd, receiving like systemd's manager.

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SocketAddrUnix, SocketFlags, SocketType,
};

use crate::{DropReason, Received, RelayError, NOTIFY_BUFFER_MAX};

/// Receive buffer the listener asks for, as systemd's manager does (8 MiB).
pub const RECEIVE_BUFFER: usize = 8 << 20;

/// Most fds one `sendmsg` can carry (`SCM_MAX_FD`, unix(7)).
pub const SCM_MAX_FD: usize = 253;

/// What one [`Listener::recv`] call found.
#[derive(Debug)]
pub enum Recv {
    /// A datagram within the limits, with credentials.
    Datagram(Received),
    /// A datagram that was read and refused: [`DropReason::TooLarge`] (`MSG_TRUNC`),
    /// [`DropReason::ControlTruncated`] (`MSG_CTRUNC`), [`DropReason::Empty`] or
    /// [`DropReason::NoCredentials`]. Any fds that came with it are already closed.
    Rejected(DropReason),
    /// Nothing queued (`EAGAIN`); poll [`Listener::as_fd`] for `POLLIN`.
    WouldBlock,
}

/// The container-side `AF_UNIX`/`SOCK_DGRAM` socket: non-blocking, close-on-exec,
/// `SO_PASSCRED`, an 8 MiB receive buffer, mode 0777 so any container user can send.
/// Dropping it closes the socket but leaves the socket file; its owner removes the directory.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    payload: Vec<u8>,
    control: Vec<MaybeUninit<u8>>,
}

impl Listener {
    /// Binds socket `name` inside the directory `dir` (any fd of it, `O_PATH` is enough)
    /// through `/proc/self/fd/<dir>/<name>`, so the length of the directory's path never meets
    /// the 108-byte `sun_path` limit and the process's cwd is untouched.
    ///
    /// # Errors
    /// [`RelayError::Address`] if `name` is empty, `.`/`..` or contains `/`;
    /// [`RelayError::Io`] if a socket call fails, e.g. `EADDRINUSE` when `name` exists.
    /// On error no socket file is left behind.
    pub fn bind_in(dir: impl AsFd, name: &str) -> Result<Self, RelayError> {
        if name.is_empty() || name == "." || name == ".." || name.contains(['/', '\0']) {
            return Err(RelayError::Address {
                address: name.to_owned(),
                reason: "a socket name must be one path component",
            });
        }
        let dir = dir.as_fd();
        let via_proc = format!("/proc/self/fd/{}/{name}", dir.as_raw_fd());
        let fd = socket_for_listening().map_err(|e| RelayError::io("create notify socket", e))?;
        let addr = SocketAddrUnix::new(via_proc.as_str())
            .map_err(|e| RelayError::io(format!("notify socket address {via_proc}"), e))?;
        net::bind(&fd, &addr).map_err(|e| RelayError::io(format!("bind {via_proc}"), e))?;
        if let Err(e) = rustix::fs::chmodat(dir, name, Mode::from_raw_mode(0o777), AtFlags::empty())
        {
            let _ = rustix::fs::unlinkat(dir, name, AtFlags::empty());
            return Err(RelayError::io(format!("chmod 0777 {via_proc}"), e));
        }
        Ok(Self {
            fd,
            payload: vec![0; NOTIFY_BUFFER_MAX + 1],
            control: vec![
                MaybeUninit::uninit();
                rustix::cmsg_space!(ScmRights(SCM_MAX_FD), ScmCredentials(1))
            ],
        })
    }

    /// Binds at `path` (any length): opens its directory `O_PATH` and calls
    /// [`Listener::bind_in`].
    ///
    /// # Errors
    /// As [`Listener::bind_in`], and [`RelayError::Io`] if the directory cannot be opened.
    pub fn bind(path: &Path) -> Result<Self, RelayError> {
        let (dir, name) = split_path(path)?;
        let dir_fd = rustix::fs::open(
            dir,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| RelayError::io(format!("open directory {}", dir.display()), e))?;
        Self::bind_in(&dir_fd, name)
    }

    /// Receives one datagram without blocking.
    ///
    /// Reads with `MSG_TRUNC` (so the real length of an oversized datagram is known) and
    /// `MSG_CMSG_CLOEXEC`, into a payload buffer of 4097 bytes and a control buffer for 253
    /// fds plus `SCM_CREDENTIALS`. `EINTR` is retried.
    ///
    /// # Errors
    /// [`RelayError::Io`] for any error other than `EAGAIN`/`EINTR`.
    pub fn recv(&mut self) -> Result<Recv, RelayError> {
        let mut control = RecvAncillaryBuffer::new(&mut self.control);
        let flags = RecvFlags::TRUNC | RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT;
        let msg = loop {
            let mut iov = [IoSliceMut::new(&mut self.payload)];
            match net::recvmsg(&self.fd, &mut iov, &mut control, flags) {
                Ok(msg) => break msg,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(Recv::WouldBlock),
                Err(e) => return Err(RelayError::io("receive on notify socket", e)),
            }
        };
        let mut fds = Vec::new();
        let mut creds = None;
        for message in control.drain() {
            match message {
                RecvAncillaryMessage::ScmRights(received) => fds.extend(received),
                RecvAncillaryMessage::ScmCredentials(ucred) => creds = Some(ucred),
                _ => {}
            }
        }
        let reject = if msg.flags.contains(ReturnFlags::CTRUNC) {
            Some(DropReason::ControlTruncated)
        } else if msg.bytes > NOTIFY_BUFFER_MAX || msg.flags.contains(ReturnFlags::TRUNC) {
            Some(DropReason::TooLarge { bytes: msg.bytes })
        } else if msg.bytes == 0 {
            Some(DropReason::Empty)
        } else {
            None
        };
        // A rejected datagram's fds are closed here, when `fds` goes out of scope.
        if let Some(reason) = reject {
            return Ok(Recv::Rejected(reason));
        }
        let Some(ucred) = creds else {
            return Ok(Recv::Rejected(DropReason::NoCredentials));
        };
        Ok(Recv::Datagram(Received {
            payload: self.payload[..msg.bytes].to_vec(),
            fds,
            pid: ucred.pid.as_raw_nonzero().get(),
            uid: ucred.uid.as_raw(),
            gid: ucred.gid.as_raw(),
        }))
    }
}

impl AsFd for Listener {
    /// The socket, to poll for `POLLIN` from an embedder's event loop.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

fn socket_for_listening() -> rustix::io::Result<OwnedFd> {
    let fd = net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
        None,
    )?;
    net::sockopt::set_socket_passcred(&fd, true)?;
    if net::sockopt::set_socket_recv_buffer_size_force(&fd, RECEIVE_BUFFER).is_err() {
        net::sockopt::set_socket_recv_buffer_size(&fd, RECEIVE_BUFFER)?;
    }
    Ok(fd)
}

/// Splits an absolute or relative socket path into its directory and its file name.
pub(crate) fn split_path(path: &Path) -> Result<(&Path, &str), RelayError> {
    let refuse = |reason| RelayError::Address {
        address: path.display().to_string(),
        reason,
    };
    let name = path
        .file_name()
        .ok_or_else(|| refuse("no file name"))?
        .to_str()
        .ok_or_else(|| refuse("file name is not UTF-8"))?;
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    Ok((dir, name))
}
