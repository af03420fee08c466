//! The container-side socket: bound through a directory fd, receiving like systemd's manager.

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::Path;

use rustix::fs::{AtFlags, Mode, OFlags};
use rustix::io::Errno;
use rustix::net::{
    self, AddressFamily, RecvFlags, ReturnFlags, SocketAddrUnix, SocketFlags, SocketType,
};

use crate::sys::{self, SenderPidfd};
use crate::{DropReason, Received, RelayError, NOTIFY_BUFFER_MAX};

/// Receive buffer the listener asks for, as systemd's manager does (8 MiB).
pub const RECEIVE_BUFFER: usize = 8 << 20;

/// Most fds one `sendmsg` can carry (`SCM_MAX_FD`, unix(7)).
pub const SCM_MAX_FD: usize = 253;

/// Most datagrams one [`Listener::recv_many`] reads (one `recvmmsg(2)`).
pub const RECV_BATCH: usize = 16;

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
/// `SO_PASSCRED`, an 8 MiB receive buffer, mode 0777 so any container user can send; with
/// [`Listener::set_sender_pidfds`], `SO_PASSPIDFD` too.
/// Dropping it closes the socket but leaves the socket file; its owner removes the directory.
#[derive(Debug)]
pub struct Listener {
    fd: OwnedFd,
    payload: Vec<u8>,
    control: Vec<u8>,
    /// [`Listener::recv_many`]'s buffers, allocated on its first call.
    slots: Vec<sys::Slot>,
    sender_pidfds: bool,
    main_pid_pidfds: bool,
    /// What is known of the socket's peek offset (`SO_PEEK_OFF`), with which a batch is
    /// peeked at in one call.
    peek_offset: PeekOffset,
}

/// The socket's peek offset, as far as the listener knows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PeekOffset {
    /// Never set: off (`-1`), every peek sees the first datagram.
    Untried,
    /// The socket refused it when first set: off, as `Untried`; batches are not peeked at.
    Refused,
    /// 0: the next peek sees the first datagram.
    Zero,
    /// Past the first datagram (a peek moved it and the receives did not bring it back).
    Moved,
    /// Moved, and setting it back failed: no peek is trusted, every datagram is received
    /// with its sender's pidfd.
    Lost,
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
            control: vec![0; sys::control_len(SCM_MAX_FD)],
            slots: Vec::new(),
            sender_pidfds: false,
            main_pid_pidfds: false,
            peek_offset: PeekOffset::Untried,
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

    /// Asks the kernel for a pidfd of the sender with every datagram (`SO_PASSPIDFD`, unix(7),
    /// Linux 6.5), or stops asking; returns whether datagrams now carry one
    /// ([`Received::pidfd`]). A kernel without it (`ENOPROTOOPT`) leaves it off: the sender
    /// checks then use `SCM_CREDENTIALS` pids. It costs the kernel a new fd per datagram
    /// (about 5 us here, 4-5 times the rest of a receive; docs/notify.md), so turn it on when
    /// the relay checks every sender ([`crate::Relay::wants_sender_pidfds`]).
    pub fn set_sender_pidfds(&mut self, on: bool) -> bool {
        match sys::set_pass_pidfd(self.fd.as_fd(), on) {
            Ok(()) => self.sender_pidfds = on,
            Err(errno) => {
                tracing::debug!(%errno, on, "notify: SO_PASSPIDFD refused; sender checks use SCM_CREDENTIALS pids");
                self.sender_pidfds = false;
            }
        }
        self.sender_pidfds
    }

    /// Whether received datagrams carry a pidfd of their sender ([`Listener::set_sender_pidfds`]).
    pub fn sender_pidfds(&self) -> bool {
        self.sender_pidfds
    }

    /// Asks for a pidfd of the sender only with datagrams that have a `MAINPID=` line, or
    /// stops; returns whether that works here (`SO_PASSPIDFD`, Linux 6.5). Each datagram is
    /// first peeked at (`MSG_PEEK`, no control buffer, so no fd is installed); for one naming
    /// a `MAINPID=`, `SO_PASSPIDFD` is on for its receive only. The kernel makes the pidfd
    /// from the sender's `struct pid` kept with the datagram, so it names the sender even if
    /// its pid has been reused since; a sender reaped before the receive gets none (or one
    /// that says so), and [`Received::sender_reaped`] tells. The cost is a peek per
    /// datagram ([`Listener::recv`]) or per batch ([`Listener::recv_many`]) and, for the rare
    /// `MAINPID=` one, two `setsockopt` calls and the pidfd (docs/performance.md);
    /// [`Listener::set_sender_pidfds`] takes precedence.
    pub fn set_main_pid_pidfds(&mut self, on: bool) -> bool {
        let works = !on
            || (sys::set_pass_pidfd(self.fd.as_fd(), true).is_ok()
                && sys::set_pass_pidfd(self.fd.as_fd(), self.sender_pidfds).is_ok());
        self.main_pid_pidfds = on && works;
        works
    }

    /// Whether datagrams naming a `MAINPID=` carry a pidfd ([`Listener::set_main_pid_pidfds`]).
    pub fn main_pid_pidfds(&self) -> bool {
        self.main_pid_pidfds
    }

    /// Receives one datagram without blocking.
    ///
    /// Reads with `MSG_TRUNC` (so the real length of an oversized datagram is known) and
    /// `MSG_CMSG_CLOEXEC`, into a payload buffer of 4097 bytes and a control buffer for 253
    /// fds, `SCM_CREDENTIALS` and `SCM_PIDFD`. `EINTR` is retried. Every fd the kernel passed
    /// (`SCM_RIGHTS`, `SCM_PIDFD`) is owned by the result, so none can leak.
    ///
    /// # Errors
    /// [`RelayError::Io`] for any error other than `EAGAIN`/`EINTR`.
    pub fn recv(&mut self) -> Result<Recv, RelayError> {
        let once = self.main_pid_pidfds && !self.sender_pidfds;
        let mut peeked = 0;
        let for_main_pid = match once {
            false => false,
            // A peek would not see the first datagram: take it with its pidfd, whatever it is.
            true if !self.peek_at_head() => sys::set_pass_pidfd(self.fd.as_fd(), true).is_ok(),
            true => match self.peek_main_pid()? {
                None => return Ok(Recv::WouldBlock),
                Some((names, copied)) => {
                    peeked = copied;
                    names && sys::set_pass_pidfd(self.fd.as_fd(), true).is_ok()
                }
            },
        };
        let msg = self.receive();
        if for_main_pid {
            // Off again: a failure would leave it on, which costs but is still right.
            let _ = sys::set_pass_pidfd(self.fd.as_fd(), false);
        }
        let msg = match msg? {
            Some(msg) => msg,
            None => return Ok(Recv::WouldBlock),
        };
        self.received_after_peek(peeked, msg.bytes);
        Ok(classify(msg, &self.payload))
    }

    /// `recvmsg` of the next datagram (`MSG_TRUNC`, `MSG_CMSG_CLOEXEC`, non-blocking);
    /// `None` when none is queued.
    fn receive(&mut self) -> Result<Option<sys::Message>, RelayError> {
        let flags = RecvFlags::TRUNC | RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT;
        loop {
            match sys::recvmsg(self.fd.as_fd(), &mut self.payload, &mut self.control, flags) {
                Ok(msg) => return Ok(Some(msg)),
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(None),
                Err(e) => return Err(RelayError::io("receive on notify socket", e)),
            }
        }
    }

    /// Peeks at the next datagram's payload (no control buffer: the kernel installs no fd
    /// and sends no credentials for a peek without room); whether a line of it starts with
    /// `MAINPID=` and how many bytes were copied, `None` when nothing is queued.
    fn peek_main_pid(&mut self) -> Result<Option<(bool, usize)>, RelayError> {
        let flags = RecvFlags::PEEK | RecvFlags::TRUNC | RecvFlags::DONTWAIT;
        let msg = loop {
            match sys::recvmsg(self.fd.as_fd(), &mut self.payload, &mut [], flags) {
                Ok(msg) => break msg,
                Err(Errno::INTR) => continue,
                Err(Errno::AGAIN) => return Ok(None),
                Err(e) => return Err(RelayError::io("peek on notify socket", e)),
            }
        };
        let copied = msg.bytes.min(self.payload.len());
        self.peeked(copied);
        Ok(Some((names_main_pid(&self.payload[..copied]), copied)))
    }

    /// Receives up to `max` (at most [`RECV_BATCH`]) datagrams without blocking, in one
    /// `recvmmsg(2)` (the system call is what a busy relay spends its time on), each read and
    /// judged as [`Listener::recv`] does; in order, into `out`. Adds nothing when nothing is
    /// queued (`EAGAIN`): poll [`Listener::as_fd`] for `POLLIN`. The batch's buffers
    /// (`RECV_BATCH` times 4097 payload bytes and a control buffer) are allocated on the
    /// first call and kept.
    ///
    /// With [`Listener::set_main_pid_pidfds`] (and no sender pidfds) no datagram naming a
    /// `MAINPID=` may be received without its pidfd, and `SO_PASSPIDFD` applies to a whole
    /// receive: so the queue is first peeked at in one `recvmmsg(MSG_PEEK)` with
    /// `SO_PEEK_OFF` (no control buffer, so no fd is installed), and the datagrams before the
    /// first one naming a `MAINPID=` are received as one batch without pidfds; a first
    /// datagram naming one is received alone, with its pidfd, as [`Listener::recv`] does.
    /// Where the socket refuses `SO_PEEK_OFF`, every datagram is peeked at and received alone.
    ///
    /// # Errors
    /// As [`Listener::recv`].
    pub fn recv_many(&mut self, max: usize, out: &mut Vec<Recv>) -> Result<(), RelayError> {
        let (mut take, mut peeked) = (max.clamp(1, RECV_BATCH), 0);
        if self.main_pid_pidfds && !self.sender_pidfds {
            match self.peek_clean_prefix(take)? {
                None => return Ok(()),
                Some((clean, copied)) if clean > 0 => (take, peeked) = (clean, copied),
                Some(_) => {
                    match self.recv()? {
                        Recv::WouldBlock => {}
                        recv => out.push(recv),
                    }
                    return Ok(());
                }
            }
        }
        let flags = RecvFlags::TRUNC | RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT;
        let slots = batch_slots(&mut self.slots, take);
        let mut messages = Vec::with_capacity(slots.len());
        match recv_batch(self.fd.as_fd(), slots, flags, true, &mut messages) {
            Ok(true) => {}
            Ok(false) => return Ok(()),
            Err(e) => return Err(RelayError::io("receive on notify socket", e)),
        }
        let received = messages.iter().map(|m| m.bytes).sum();
        out.extend(
            messages
                .into_iter()
                .zip(slots.iter())
                .map(|(msg, slot)| classify(msg, &slot.payload)),
        );
        self.received_after_peek(peeked, received);
        Ok(())
    }

    /// Peeks at up to `max` queued datagrams in one call; how many at the head of the queue
    /// can be received without a pidfd: `Some((n, _))`, `n` > 0, when none of the first `n`
    /// names a `MAINPID=`, `Some((0, _))` when the first does or batches cannot be peeked at
    /// here (the caller takes it alone, with [`Listener::recv`]), `None` when nothing is
    /// queued; with the bytes the peeks copied (what they moved the offset by).
    ///
    /// The peek offset starts at 0 and moves past each datagram peeked, so the peeks see the
    /// queue in order, except that the kernel skips empty datagrams at a nonzero offset (and
    /// any it has peeked at before): the first `n` peeked are then the first `n` non-empty
    /// ones, and the first `n` queued are among them or empty, never one naming a `MAINPID=`.
    /// A datagram longer than the buffer moves the offset only by the buffer's length, so the
    /// peeks after it are not trusted: the count ends with it (it is refused as too large).
    fn peek_clean_prefix(&mut self, max: usize) -> Result<Option<(usize, usize)>, RelayError> {
        if !self.rewind_peek() {
            return Ok(Some((0, 0)));
        }
        let flags = RecvFlags::PEEK | RecvFlags::TRUNC | RecvFlags::DONTWAIT;
        let slots = batch_slots(&mut self.slots, max);
        let mut peeked = Vec::with_capacity(slots.len());
        match recv_batch(self.fd.as_fd(), slots, flags, false, &mut peeked) {
            Ok(true) => {}
            Ok(false) => return Ok(None),
            Err(e) => return Err(RelayError::io("peek on notify socket", e)),
        }
        let copied: usize = peeked
            .iter()
            .zip(slots.iter())
            .map(|(msg, slot)| msg.bytes.min(slot.payload.len()))
            .sum();
        let clean = clean_prefix(&peeked, slots);
        self.peeked(copied);
        Ok(Some((clean, copied)))
    }

    /// Makes the next peek start at the first datagram: sets the peek offset to 0
    /// (`SO_PEEK_OFF`, `EINTR` retried) unless it is known to be 0; whether it is now. The
    /// first call learns whether the socket takes it.
    fn rewind_peek(&mut self) -> bool {
        match self.peek_offset {
            PeekOffset::Zero => return true,
            PeekOffset::Refused | PeekOffset::Lost => return false,
            PeekOffset::Untried | PeekOffset::Moved => {}
        }
        let set = loop {
            match sys::set_peek_offset(self.fd.as_fd(), 0) {
                Err(Errno::INTR) => continue,
                other => break other,
            }
        };
        self.peek_offset = match (set, self.peek_offset) {
            (Ok(()), _) => PeekOffset::Zero,
            (Err(errno), PeekOffset::Untried) => {
                tracing::debug!(%errno, "notify: SO_PEEK_OFF refused; MAINPID= peeks one datagram at a time");
                PeekOffset::Refused
            }
            (Err(errno), _) => {
                tracing::warn!(%errno, "notify: the peek offset cannot be reset; every datagram is received with its sender's pidfd");
                PeekOffset::Lost
            }
        };
        self.peek_offset == PeekOffset::Zero
    }

    /// Whether a single peek now sees the first datagram (the offset is off or 0, or could
    /// be set back to 0).
    fn peek_at_head(&mut self) -> bool {
        match self.peek_offset {
            PeekOffset::Untried | PeekOffset::Refused | PeekOffset::Zero => true,
            PeekOffset::Moved => self.rewind_peek(),
            PeekOffset::Lost => false,
        }
    }

    /// A peek that copied `bytes` moved an offset in use by as much.
    fn peeked(&mut self, bytes: usize) {
        if self.peek_offset == PeekOffset::Zero && bytes > 0 {
            self.peek_offset = PeekOffset::Moved;
        }
    }

    /// Datagrams of `received` bytes in all (their whole lengths) were received after peeks
    /// that moved the offset from 0 by `peeked` bytes: each receive moves it back by the
    /// datagram's length (to no less than 0), so it is 0 again when at least as much was
    /// received as peeked, and the next batch needs no `SO_PEEK_OFF` call.
    /// Without a peek (`peeked` 0) nothing is known: a receive may not bring back an offset
    /// an earlier peek moved.
    fn received_after_peek(&mut self, peeked: usize, received: usize) {
        if self.peek_offset == PeekOffset::Moved && peeked > 0 && received >= peeked {
            self.peek_offset = PeekOffset::Zero;
        }
    }
}

/// How many of the peeked datagrams (`peeked`, payloads in `slots`) come before the first
/// naming a `MAINPID=`; a datagram longer than its buffer ends the count (it included).
fn clean_prefix(peeked: &[sys::Message], slots: &[sys::Slot]) -> usize {
    let mut clean = 0;
    for (msg, slot) in peeked.iter().zip(slots) {
        if names_main_pid(&slot.payload[..msg.bytes.min(slot.payload.len())]) {
            break;
        }
        clean += 1;
        if msg.bytes > slot.payload.len() {
            break;
        }
    }
    clean
}

/// The first `count` batch buffers, allocated (all [`RECV_BATCH`]) on first use.
/// [`sys::recvmmsg`] retried on `EINTR`: `Ok(false)` when nothing is queued (`EAGAIN`).
fn recv_batch(
    fd: BorrowedFd<'_>,
    slots: &mut [sys::Slot],
    flags: RecvFlags,
    control: bool,
    out: &mut Vec<sys::Message>,
) -> Result<bool, Errno> {
    loop {
        match sys::recvmmsg(fd, slots, flags, control, out) {
            Ok(()) => return Ok(true),
            Err(Errno::INTR) => continue,
            Err(Errno::AGAIN) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
}

fn batch_slots(slots: &mut Vec<sys::Slot>, count: usize) -> &mut [sys::Slot] {
    if slots.is_empty() {
        *slots = (0..RECV_BATCH)
            .map(|_| sys::Slot {
                payload: vec![0; NOTIFY_BUFFER_MAX + 1],
                control: vec![0; sys::control_len(SCM_MAX_FD)],
            })
            .collect();
    }
    &mut slots[..count]
}

/// Judges one received datagram (its payload in `payload`): refused for a truncated control
/// or payload, an empty one or missing credentials (its fds closed with it), else the
/// [`Received`] datagram.
fn classify(msg: sys::Message, payload: &[u8]) -> Recv {
    let reject = if msg.flags.contains(ReturnFlags::CTRUNC) {
        Some(DropReason::ControlTruncated)
    } else if msg.bytes > NOTIFY_BUFFER_MAX || msg.flags.contains(ReturnFlags::TRUNC) {
        Some(DropReason::TooLarge { bytes: msg.bytes })
    } else if msg.bytes == 0 {
        Some(DropReason::Empty)
    } else {
        None
    };
    // A rejected datagram's fds (and pidfd) are closed here, with `msg`.
    if let Some(reason) = reject {
        return Recv::Rejected(reason);
    }
    let Some(creds) = msg.credentials else {
        return Recv::Rejected(DropReason::NoCredentials);
    };
    let (pidfd, sender_reaped) = match msg.pidfd {
        SenderPidfd::Pidfd(pidfd) => (Some(pidfd), false),
        SenderPidfd::NotSent => (None, false),
        SenderPidfd::Unavailable(errno) => {
            tracing::debug!(sender = creds.pid, %errno, "notify: no pidfd of the sender");
            (None, errno == Errno::SRCH)
        }
    };
    Recv::Datagram(Received {
        payload: payload[..msg.bytes].to_vec(),
        fds: msg.fds,
        pid: creds.pid,
        uid: creds.uid,
        gid: creds.gid,
        pidfd,
        sender_reaped,
    })
}

impl AsFd for Listener {
    /// The socket, to poll for `POLLIN` from an embedder's event loop.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Whether a line of `payload` starts with `MAINPID=` (what the relay would check).
fn names_main_pid(payload: &[u8]) -> bool {
    payload
        .split(|&b| b == b'\n')
        .any(|line| line.starts_with(b"MAINPID="))
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
    // Only safe because `recv` parses SCM_PIDFD: an unparsed one leaks an fd per datagram.
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
