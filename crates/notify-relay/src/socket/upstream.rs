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

use super::backlog::Backlog;
use super::hangup::wait_for_hangup;
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
    backlog: Backlog,
    /// The backlog was full and the manager read nothing for [`STALL_WAIT`]: until it reads
    /// again, a full backlog drops at once instead of waiting.
    stuck: bool,
}

/// How long a full backlog waits for the manager to read before it starts dropping: the
/// longest a container's send is held by a stalled manager (once per stall).
pub const STALL_WAIT: Duration = Duration::from_millis(10);

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
            backlog: Backlog::default(),
            stuck: false,
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
            Transport::Unix(unix) => unix.send(out, self.send_timeout, &self.address, false),
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
        if self.flush_for(timeout)? > 0 {
            return Ok(false);
        }
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

impl Upstream {
    /// Send `out` without waiting: at once if the manager's queue has room and nothing is
    /// waiting before it, else into the bounded [`Backlog`] (sent by [`Upstream::flush`],
    /// which this calls first). The container is never held by a stalled manager.
    ///
    /// # Errors
    /// A send that failed for another reason than a full queue (no listener, refused
    /// credentials and the retry failed, ...): `out` is not queued.
    pub fn enqueue(&mut self, out: Outgoing) -> Result<(), RelayError> {
        self.flush()?;
        self.enqueue_after_flush(out).map_err(|(error, _)| error)
    }

    /// [`Upstream::enqueue`] once the backlog has been flushed; a failed datagram comes back
    /// with the error.
    fn enqueue_after_flush(&mut self, out: Outgoing) -> Result<(), (RelayError, Outgoing)> {
        if self.backlog.is_full() && !self.stuck {
            // A manager that reads, only slower than the container sends: wait for it (the
            // container's own queue then fills and its sends wait too, as without a relay);
            // one that reads nothing for STALL_WAIT is stuck.
            if let Err(error) = self.flush_while(STALL_WAIT, Backlog::is_full) {
                return Err((error, out));
            }
            self.stuck = self.backlog.is_full();
        }
        if !self.backlog.is_empty() {
            self.backlog.push(out);
            return Ok(());
        }
        // A manager that is only busy (its queue full for a moment) gets up to STALL_WAIT
        // before the datagram goes into the backlog.
        let deadline = Instant::now() + STALL_WAIT;
        loop {
            match self.try_send(&out) {
                Ok(true) => return Ok(()),
                Ok(false) if !self.stuck => match self.wait_writable(deadline) {
                    Ok(true) => continue,
                    Ok(false) => {}
                    Err(error) => return Err((error, out)),
                },
                Ok(false) => {}
                Err(error) => return Err((error, out)),
            }
            self.stuck = true;
            self.backlog.push(out);
            return Ok(());
        }
    }

    /// [`Upstream::enqueue`] of each of `outs`, in order, with as few system calls as the
    /// manager's queue allows: while nothing waits in the backlog, runs of datagrams go in
    /// one `sendmmsg(2)` each (at most [`SEND_BATCH`]); a datagram such a call could not take
    /// (a full queue, refused credentials, a re-created socket, ...) goes through
    /// [`Upstream::enqueue`], which waits, queues, retries or fails it exactly as for a
    /// single datagram. Returns the datagrams that failed: their index in `outs`, the error
    /// and the datagram (its fds still open).
    pub fn enqueue_all(&mut self, outs: Vec<Outgoing>) -> Vec<(usize, RelayError, Outgoing)> {
        let mut failed = Vec::new();
        let mut queue = std::collections::VecDeque::from(outs);
        let mut index = 0;
        while !queue.is_empty() {
            if let Err(error) = self.flush() {
                tracing::warn!(%error, "notify: forwarding failed");
            }
            if self.backlog.is_empty() {
                let sent = match &mut self.transport {
                    Transport::Unix(unix) => unix.send_many(queue.make_contiguous()),
                    #[cfg(feature = "vsock")]
                    Transport::Vsock(_) => 0,
                };
                queue.drain(..sent);
                index += sent;
            }
            let Some(out) = queue.pop_front() else {
                break;
            };
            if let Err((error, out)) = self.enqueue_after_flush(out) {
                failed.push((index, error, out));
            }
            index += 1;
        }
        failed
    }

    /// Poll the socket for `POLLOUT` until `deadline`; false once it has passed.
    fn wait_writable(&self, deadline: Instant) -> Result<bool, RelayError> {
        let now = Instant::now();
        let Some(fd) = self.poll_fd().filter(|_| now < deadline) else {
            return Ok(false);
        };
        let wait = Timespec::try_from(deadline - now).unwrap_or(Timespec {
            tv_sec: 0,
            tv_nsec: 10_000_000,
        });
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::OUT)];
        match rustix::event::poll(&mut fds, Some(&wait)) {
            Ok(_) | Err(Errno::INTR) => Ok(true),
            Err(e) => Err(RelayError::io("poll the notify socket", e)),
        }
    }

    /// Send what waits in the backlog, in order, until the manager's queue is full again.
    /// Returns the number still waiting.
    ///
    /// # Errors
    /// A send failed for another reason than a full queue; that datagram is discarded.
    pub fn flush(&mut self) -> Result<usize, RelayError> {
        while let Some(out) = self.backlog.take_front() {
            match self.try_send(&out) {
                Ok(true) => {
                    self.stuck = false;
                    self.backlog.sent()
                }
                Ok(false) => {
                    self.backlog.put_back(out);
                    break;
                }
                Err(e) => {
                    self.backlog.sent();
                    return Err(e);
                }
            }
        }
        Ok(self.backlog.len())
    }

    /// Datagrams waiting in the backlog.
    pub fn backlog(&self) -> usize {
        self.backlog.len()
    }

    /// Takes the datagrams waiting for the manager out of this upstream (it is left with an
    /// empty backlog), to hand them to another connection ([`Upstream::set_backlog`]).
    pub fn take_backlog(&mut self) -> Backlog {
        std::mem::take(&mut self.backlog)
    }

    /// Makes `backlog` (from [`Upstream::take_backlog`] of an earlier connection to the same
    /// manager) what this upstream sends first, in order, replacing its own (empty) one.
    pub fn set_backlog(&mut self, backlog: Backlog) {
        self.backlog = backlog;
    }

    /// `sd_notify_barrier` without waiting: queues `BARRIER=1` with the write end of a fresh
    /// pipe behind everything waiting ([`Upstream::enqueue`]) and returns the read end, which
    /// polls `POLLHUP` once the manager has processed every datagram before the barrier and
    /// closed the fd (sd_notify(3), `BARRIER=1`). `None` on vsock (no fd passing).
    ///
    /// # Errors
    /// The pipe cannot be made, or as [`Upstream::enqueue`].
    pub fn start_barrier(&mut self) -> Result<Option<OwnedFd>, RelayError> {
        if self.poll_fd().is_none() {
            return Ok(None);
        }
        let (read, write) =
            pipe_with(PipeFlags::CLOEXEC).map_err(|e| RelayError::io("barrier pipe", e))?;
        self.enqueue(Outgoing {
            payload: b"BARRIER=1".to_vec(),
            fds: vec![write],
            pid_credential: None,
        })?;
        Ok(Some(read))
    }

    /// Datagrams dropped from a full backlog since this upstream was connected.
    pub fn backlog_dropped(&self) -> usize {
        self.backlog.dropped()
    }

    /// The socket to poll for `POLLOUT` while [`Upstream::backlog`] is not 0 (a unix socket:
    /// writable once the manager's queue has room; vsock sends never queue).
    pub fn poll_fd(&self) -> Option<BorrowedFd<'_>> {
        match &self.transport {
            Transport::Unix(unix) => Some(unix.fd.as_fd()),
            #[cfg(feature = "vsock")]
            Transport::Vsock(_) => None,
        }
    }

    /// One non-blocking send: Ok(false) when the manager's queue is full.
    fn try_send(&mut self, out: &Outgoing) -> Result<bool, RelayError> {
        let result = match &mut self.transport {
            Transport::Unix(unix) => unix.send(out, self.send_timeout, &self.address, true),
            #[cfg(feature = "vsock")]
            Transport::Vsock(_) => self.send(out),
        };
        match result {
            Ok(()) => Ok(true),
            Err(e) if e.raw_os_error() == Some(Errno::AGAIN.raw_os_error()) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Flush the backlog, waiting up to `timeout` for the manager to read (before a barrier
    /// and at the end of a relay). Returns the number still waiting.
    ///
    /// # Errors
    /// As [`Upstream::flush`].
    pub fn flush_for(&mut self, timeout: Duration) -> Result<usize, RelayError> {
        self.flush_while(timeout, |b| !b.is_empty())
    }

    /// Flush while `waiting(backlog)` holds, for at most `timeout`; the number left.
    fn flush_while(
        &mut self,
        timeout: Duration,
        waiting: impl Fn(&Backlog) -> bool,
    ) -> Result<usize, RelayError> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = self.flush()?;
            let now = Instant::now();
            if !waiting(&self.backlog) || now >= deadline {
                return Ok(left);
            }
            let Some(fd) = self.poll_fd() else {
                return Ok(left);
            };
            let wait = Timespec::try_from(deadline - now).unwrap_or(Timespec {
                tv_sec: 1,
                tv_nsec: 0,
            });
            let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::OUT)];
            match rustix::event::poll(&mut fds, Some(&wait)) {
                Ok(_) | Err(Errno::INTR) => {}
                Err(e) => return Err(RelayError::io("poll the notify socket", e)),
            }
        }
    }
}

impl UnixUpstream {
    /// See [`Upstream::send`].
    fn send(
        &mut self,
        out: &Outgoing,
        timeout: Duration,
        name: &Address,
        nonblocking: bool,
    ) -> Result<(), RelayError> {
        let mut pid = out.pid_credential.filter(|_| !self.credentials_refused);
        let mut reconnected = false;
        loop {
            match send_datagram(self.fd.as_fd(), out, pid, nonblocking || self.stalled) {
                Ok(()) => {
                    self.stalled = false;
                    return Ok(());
                }
                Err(Errno::AGAIN) if nonblocking => {
                    return Err(RelayError::io(format!("send to {name}"), Errno::AGAIN));
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

/// Most datagrams one [`Upstream::enqueue_all`] hands to one `sendmmsg(2)`.
pub const SEND_BATCH: usize = 16;

impl UnixUpstream {
    /// One non-blocking `sendmmsg(2)` of the first [`SEND_BATCH`] of `outs`, each with its
    /// fds and credentials as [`send_datagram`] sends them; returns how many the kernel
    /// took, in order (0 on any error: the caller's single-datagram path sees and handles
    /// it on the first one not taken). Stops before a datagram with a credential pid that
    /// cannot be one, for the same reason.
    fn send_many(&mut self, outs: &[Outgoing]) -> usize {
        let pid_ok = |out: &Outgoing| {
            out.pid_credential
                .filter(|_| !self.credentials_refused)
                .is_none_or(|pid| rustix::process::Pid::from_raw(pid).is_some())
        };
        let batch = outs.iter().take(SEND_BATCH).take_while(|out| pid_ok(out));
        let batch: Vec<&Outgoing> = batch.collect();
        if batch.len() < 2 {
            return 0; // one datagram: the single path's sendmsg is as cheap
        }
        let fds: Vec<Vec<BorrowedFd<'_>>> = batch
            .iter()
            .map(|out| out.fds.iter().take(SCM_MAX_FD).map(AsFd::as_fd).collect())
            .collect();
        let credentials: Vec<Option<UCred>> = batch
            .iter()
            .map(|out| {
                let pid = out.pid_credential.filter(|_| !self.credentials_refused)?;
                Some(UCred {
                    pid: rustix::process::Pid::from_raw(pid)?,
                    uid: rustix::process::getuid(),
                    gid: rustix::process::getgid(),
                })
            })
            .collect();
        let mut spaces: Vec<Vec<MaybeUninit<u8>>> = fds
            .iter()
            .zip(&credentials)
            .map(|(fds, credentials)| {
                let rights = if fds.is_empty() {
                    0
                } else {
                    rustix::cmsg_space!(ScmRights(fds.len()))
                };
                let creds = credentials.map_or(0, |_| rustix::cmsg_space!(ScmCredentials(1)));
                vec![MaybeUninit::uninit(); rights + creds]
            })
            .collect();
        let mut controls: Vec<SendAncillaryBuffer<'_, '_, '_>> = spaces
            .iter_mut()
            .zip(fds.iter().zip(&credentials))
            .map(|(space, (fds, credentials))| {
                let mut control = SendAncillaryBuffer::new(space);
                if !fds.is_empty() {
                    control.push(SendAncillaryMessage::ScmRights(fds));
                }
                if let Some(credentials) = credentials {
                    control.push(SendAncillaryMessage::ScmCredentials(*credentials));
                }
                control
            })
            .collect();
        let iovs: Vec<[IoSlice<'_>; 1]> = batch
            .iter()
            .map(|out| [IoSlice::new(&out.payload)])
            .collect();
        let mut headers: Vec<net::MMsgHdr<'_>> = iovs
            .iter()
            .zip(controls.iter_mut())
            .map(|(iov, control)| net::MMsgHdr::new(iov, control))
            .collect();
        let flags = SendFlags::NOSIGNAL | SendFlags::DONTWAIT;
        match net::sendmmsg(&self.fd, &mut headers, flags) {
            Ok(sent) => {
                self.stalled &= sent == 0;
                sent
            }
            Err(_) => 0,
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
