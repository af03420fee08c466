//! The host-side sender: connects to `$NOTIFY_SOCKET` and sends datagrams with optional
//! credentials and fds, bounded in time (sd_notify(3); `sd_pid_notify_with_fds`).

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::fs::{Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    self, AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType, UCred,
};
use rustix::pipe::{pipe_with, PipeFlags};

use super::listener::{split_path, SCM_MAX_FD};
use crate::{Address, Outgoing, RelayError};

/// How long one send may block on a full upstream queue before the datagram is dropped
/// (`SO_SNDTIMEO`, socket(7)).
pub const SEND_TIMEOUT: Duration = Duration::from_secs(1);

/// Paths at least this long do not fit `sun_path` with its NUL and are reached through
/// their directory's fd.
const SUN_PATH_MAX: usize = 108;

/// A connection to the host's notify socket.
#[derive(Debug)]
pub struct Upstream {
    address: Address,
    transport: Transport,
    send_timeout: Duration,
}

#[derive(Debug)]
enum Transport {
    Unix(UnixUpstream),
    #[cfg(feature = "vsock")]
    Vsock(super::vsock::VsockUpstream),
}

/// A connected `AF_UNIX` datagram socket and what it needs to reconnect.
#[derive(Debug)]
struct UnixUpstream {
    fd: OwnedFd,
    addr: SocketAddrUnix,
    /// Keeps the directory of a long path open for `/proc/self/fd/<dir>/<name>`.
    _dir: Option<OwnedFd>,
    /// The kernel refused a foreign credential pid once (`EPERM`); don't ask again.
    credentials_refused: bool,
    /// A send timed out: the receiver is not reading. Until a send gets through again, sends
    /// do not wait (`MSG_DONTWAIT`), so a stuck manager costs one timeout, not one per
    /// datagram, and the relay keeps draining the container and watching signals.
    stalled: bool,
}

impl Upstream {
    /// Connects to `address`: an `AF_UNIX`/`SOCK_DGRAM` close-on-exec socket for paths and
    /// abstract names (a path longer than `sun_path` is reached through its directory's fd),
    /// or vsock as libsystemd does it (with the `vsock` feature).
    ///
    /// # Errors
    /// [`RelayError::Io`] when the socket does not exist or refuses (e.g. `ENOENT`,
    /// `ECONNREFUSED`), [`RelayError::Unsupported`] for vsock without the feature.
    pub fn connect(address: &Address) -> Result<Self, RelayError> {
        let transport = match address {
            Address::Path(_) | Address::Abstract(_) => {
                let (addr, dir) = unix_address(address)?;
                let fd = connect_unix(&addr, SEND_TIMEOUT)
                    .map_err(|e| RelayError::io(format!("connect to {address}"), e))?;
                Transport::Unix(UnixUpstream {
                    fd,
                    addr,
                    _dir: dir,
                    credentials_refused: false,
                    stalled: false,
                })
            }
            #[cfg(feature = "vsock")]
            Address::Vsock { kind, cid, port } => {
                Transport::Vsock(super::vsock::VsockUpstream::connect(*kind, *cid, *port)?)
            }
            #[cfg(not(feature = "vsock"))]
            Address::Vsock { .. } => {
                return Err(RelayError::Unsupported {
                    what: "vsock (built without the `vsock` feature)",
                    address: address.to_string(),
                })
            }
        };
        Ok(Self {
            address: address.clone(),
            transport,
            send_timeout: SEND_TIMEOUT,
        })
    }

    /// Connects to `$NOTIFY_SOCKET`; `Ok(None)` when it is unset.
    ///
    /// # Errors
    /// As [`Address::from_env`] and [`Upstream::connect`].
    pub fn from_env() -> Result<Option<Self>, RelayError> {
        Address::from_env()?.map(|a| Self::connect(&a)).transpose()
    }

    /// The address this upstream sends to.
    pub fn address(&self) -> &Address {
        &self.address
    }

    /// Sends one datagram, blocking at most [`SEND_TIMEOUT`] on a full upstream queue.
    ///
    /// With `pid_credential` set, the datagram carries `SCM_CREDENTIALS` {that pid, own uid,
    /// own gid}; if the kernel refuses (`EPERM`: no `CAP_SYS_ADMIN`) it is resent with the
    /// relay's own credentials, logged once, and later datagrams use own credentials directly;
    /// `ESRCH` (the pid is gone) falls back for that datagram. A connection refused because
    /// the upstream socket was re-created is reconnected once.
    ///
    /// # Errors
    /// [`RelayError::Io`] (`EAGAIN` after the timeout, `ECONNREFUSED`, …) — the datagram is
    /// lost, the caller logs and goes on. [`RelayError::Unsupported`] for fds over vsock.
    pub fn send(&mut self, out: &Outgoing) -> Result<(), RelayError> {
        match &mut self.transport {
            Transport::Unix(unix) => unix.send(out, self.send_timeout, &self.address),
            #[cfg(feature = "vsock")]
            Transport::Vsock(vsock) => {
                if !out.fds.is_empty() {
                    return Err(RelayError::Unsupported {
                        what: "passing fds",
                        address: self.address.to_string(),
                    });
                }
                vsock.send(&out.payload, self.send_timeout)
            }
        }
    }

    /// Changes how long [`Upstream::send`] may block (default [`SEND_TIMEOUT`]).
    ///
    /// # Errors
    /// [`RelayError::Io`] if `SO_SNDTIMEO` cannot be set.
    pub fn set_send_timeout(&mut self, timeout: Duration) -> Result<(), RelayError> {
        match &self.transport {
            Transport::Unix(unix) => net::sockopt::set_socket_timeout(
                &unix.fd,
                net::sockopt::Timeout::Send,
                Some(timeout),
            )
            .map_err(|e| RelayError::io("set SO_SNDTIMEO", e))?,
            #[cfg(feature = "vsock")]
            Transport::Vsock(_) => {}
        }
        self.send_timeout = timeout;
        Ok(())
    }

    /// `sd_notify_barrier` against the upstream: sends `BARRIER=1` with the write end of a
    /// fresh pipe, closes it, and waits up to `timeout` for `POLLHUP` on the read end, which
    /// comes when the receiver has processed every earlier datagram and closed the fd.
    ///
    /// Returns `Ok(true)` when the barrier completed, `Ok(false)` on timeout.
    ///
    /// # Errors
    /// As [`Upstream::send`]; [`RelayError::Unsupported`] on vsock (no fd passing).
    pub fn barrier(&mut self, timeout: Duration) -> Result<bool, RelayError> {
        let (read, write) =
            pipe_with(PipeFlags::CLOEXEC).map_err(|e| RelayError::io("barrier pipe", e))?;
        self.send(&Outgoing {
            payload: b"BARRIER=1".to_vec(),
            fds: vec![write],
            pid_credential: None,
        })?;
        wait_for_hangup(read.as_fd(), timeout).map_err(|e| RelayError::io("wait for barrier", e))
    }
}

impl UnixUpstream {
    /// See [`Upstream::send`].
    fn send(
        &mut self,
        out: &Outgoing,
        timeout: Duration,
        name: &Address,
    ) -> Result<(), RelayError> {
        let mut pid = out.pid_credential.filter(|_| !self.credentials_refused);
        let mut reconnected = false;
        loop {
            match send_datagram(self.fd.as_fd(), out, pid, self.stalled) {
                Ok(()) => {
                    self.stalled = false;
                    return Ok(());
                }
                Err(Errno::AGAIN) if !self.stalled => {
                    self.stalled = true;
                    tracing::warn!(upstream = %name, "the service manager is not reading; dropping until it does");
                    return Err(RelayError::io(format!("send to {name}"), Errno::AGAIN));
                }
                Err(Errno::PERM) if pid.is_some() => {
                    tracing::warn!(
                        pid,
                        upstream = %name,
                        "kernel refused SCM_CREDENTIALS with a foreign pid; sending as the relay"
                    );
                    self.credentials_refused = true;
                    pid = None;
                }
                Err(Errno::SRCH) if pid.is_some() => {
                    tracing::debug!(pid, "credential pid is gone; sending this one as the relay");
                    pid = None;
                }
                Err(Errno::CONNREFUSED | Errno::NOTCONN) if !reconnected => {
                    reconnected = true;
                    self.fd = connect_unix(&self.addr, timeout)
                        .map_err(|e| RelayError::io(format!("reconnect to {name}"), e))?;
                }
                Err(e) => {
                    return Err(RelayError::io(
                        format!("send {} bytes to {name}", out.payload.len()),
                        e,
                    ))
                }
            }
        }
    }
}

/// The `sockaddr_un` for a path or abstract address, and the directory fd a long path needs.
fn unix_address(address: &Address) -> Result<(SocketAddrUnix, Option<OwnedFd>), RelayError> {
    let context = || format!("notify socket address {address}");
    match address {
        Address::Abstract(name) => Ok((
            SocketAddrUnix::new_abstract_name(name).map_err(|e| RelayError::io(context(), e))?,
            None,
        )),
        Address::Path(path) if path.as_os_str().len() < SUN_PATH_MAX => Ok((
            SocketAddrUnix::new(path.as_path()).map_err(|e| RelayError::io(context(), e))?,
            None,
        )),
        Address::Path(path) => {
            let (dir, name) = split_path(path)?;
            let dir_fd = open_dir(dir)?;
            let via_proc = format!("/proc/self/fd/{}/{name}", dir_fd.as_raw_fd());
            let addr = SocketAddrUnix::new(via_proc).map_err(|e| RelayError::io(context(), e))?;
            Ok((addr, Some(dir_fd)))
        }
        Address::Vsock { .. } => unreachable!("vsock has no sockaddr_un"),
    }
}

fn open_dir(dir: &Path) -> Result<OwnedFd, RelayError> {
    rustix::fs::open(
        dir,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| RelayError::io(format!("open directory {}", dir.display()), e))
}

fn connect_unix(addr: &SocketAddrUnix, timeout: Duration) -> rustix::io::Result<OwnedFd> {
    let fd = net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )?;
    net::sockopt::set_socket_timeout(&fd, net::sockopt::Timeout::Send, Some(timeout))?;
    net::connect(&fd, addr)?;
    Ok(fd)
}

/// One `sendmsg` with `SCM_RIGHTS` for the fds and, with `pid`, `SCM_CREDENTIALS`.
fn send_datagram(
    fd: BorrowedFd<'_>,
    out: &Outgoing,
    pid: Option<i32>,
    dont_wait: bool,
) -> rustix::io::Result<()> {
    let fds: Vec<BorrowedFd<'_>> = out.fds.iter().take(SCM_MAX_FD).map(AsFd::as_fd).collect();
    let mut space =
        [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(SCM_MAX_FD), ScmCredentials(1))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    if !fds.is_empty() {
        control.push(SendAncillaryMessage::ScmRights(&fds));
    }
    if let Some(pid) = pid {
        let pid = rustix::process::Pid::from_raw(pid).ok_or(Errno::SRCH)?;
        control.push(SendAncillaryMessage::ScmCredentials(UCred {
            pid,
            uid: rustix::process::getuid(),
            gid: rustix::process::getgid(),
        }));
    }
    let iov = [IoSlice::new(&out.payload)];
    let flags = if dont_wait {
        SendFlags::NOSIGNAL | SendFlags::DONTWAIT
    } else {
        SendFlags::NOSIGNAL
    };
    net::sendmsg(fd, &iov, &mut control, flags).map(drop)
}

/// Polls `fd` until `POLLHUP` (true) or until `timeout` has passed (false).
pub(crate) fn wait_for_hangup(fd: BorrowedFd<'_>, timeout: Duration) -> rustix::io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = Timespec::try_from(left).map_err(|_| Errno::INVAL)?;
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&left)) {
            Ok(0) => return Ok(false),
            Ok(_) if fds[0].revents().contains(PollFlags::HUP) => return Ok(true),
            Ok(_) => {
                // Data on a barrier pipe: nobody should write; drain it and keep waiting.
                let mut sink = [0u8; 64];
                rustix::io::read(fd, &mut sink)?;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}
