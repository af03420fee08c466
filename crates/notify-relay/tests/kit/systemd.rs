//! A stand-in for systemd's notify socket (`manager_dispatch_notify_fd` in systemd's
//! `src/core/manager.c`): `SOCK_DGRAM` with `SO_PASSCRED` and an 8 MiB receive buffer, one
//! `recvmsg` per datagram with `SCM_CREDENTIALS` and `SCM_RIGHTS`. systemd reads into a
//! 4096-byte buffer ([`BUFFER`], `NOTIFY_BUFFER_MAX`); this reads the whole datagram and says
//! whether systemd would have cut it ([`Got::truncated`]), so a test sees what was sent. A
//! `BARRIER=1` datagram's fds are closed right after reading, as systemd does, which is how the
//! sender's `sd_notify_barrier()` learns that everything before it was read (unless the test
//! asked to keep them, [`FakeSystemd::keeping_barrier_fds`]).
//!
//! The workspace's one fake systemd: notify-relay's tests (`tests/common/mod.rs`) and pier's
//! (`tests/notify_support/mod.rs`) both pull this file in with `#[path]`.
#![forbid(unsafe_code)]

use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SocketAddrUnix, SocketFlags, SocketType,
};

/// Longest any single wait may take: a test that waits this long has failed.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// systemd's `NOTIFY_BUFFER_MAX`: a longer datagram is cut (and then ignored) by systemd.
pub const BUFFER: usize = 4096;

/// The largest datagram read whole (a unix datagram's payload is bounded by the send buffer).
const READ_MAX: usize = 1 << 16;

/// One datagram as the fake systemd saw it.
#[derive(Debug)]
pub struct Got {
    /// The payload, lossily decoded, whole (even past [`BUFFER`]).
    pub payload: String,
    /// The fds that came with it (none for `BARRIER=1`: closed on arrival, unless kept).
    pub fds: Vec<OwnedFd>,
    /// How many fds arrived, including closed barrier fds.
    pub fd_count: usize,
    /// `SCM_CREDENTIALS` pid, in the host's pid namespace.
    pub pid: i32,
    /// `SCM_CREDENTIALS` uid.
    pub uid: u32,
    /// `SCM_CREDENTIALS` gid.
    pub gid: u32,
    /// systemd would have cut it: longer than [`BUFFER`], or its control data was cut.
    pub truncated: bool,
}

/// The fake systemd notify socket; [`FakeSystemd::notify_socket`] is the `NOTIFY_SOCKET`
/// value to give the sender.
pub struct FakeSystemd {
    fd: OwnedFd,
    notify_socket: String,
    keep_barrier_fds: bool,
    _dir: Option<tempfile::TempDir>,
}

impl FakeSystemd {
    /// Bound at `<tempdir>/notify` (an absolute path).
    pub fn bind_path() -> Self {
        let dir = tempdir();
        let path = dir.path().join("notify");
        let fd = socket();
        net::bind(&fd, &SocketAddrUnix::new(path.as_path()).expect("addr"))
            .expect("bind fake systemd");
        Self::bound(fd, path.display().to_string(), Some(dir))
    }

    /// Bound at a path of about `len` bytes (> 108, beyond `sun_path`): nested directories,
    /// bound through `/proc/self/fd/<dir fd>/notify` as systemd's own long paths are.
    pub fn bind_long_path(len: usize) -> Self {
        let dir = tempdir();
        let mut parent = dir.path().to_path_buf();
        while parent.as_os_str().len() + "/notify".len() < len {
            let room = len - parent.as_os_str().len() - "/notify".len();
            parent.push("d".repeat(room.saturating_sub(1).clamp(1, 50)));
        }
        std::fs::create_dir_all(&parent).expect("long dir");
        let dir_fd = rustix::fs::open(
            &parent,
            rustix::fs::OFlags::PATH | rustix::fs::OFlags::DIRECTORY,
            rustix::fs::Mode::empty(),
        )
        .expect("open long dir");
        let via_proc = format!("/proc/self/fd/{}/notify", dir_fd.as_raw_fd());
        let fd = socket();
        net::bind(&fd, &SocketAddrUnix::new(via_proc.as_str()).expect("addr"))
            .expect("bind long path");
        Self::bound(fd, parent.join("notify").display().to_string(), Some(dir))
    }

    /// Bound at an abstract name unique to this process and `tag` (`NOTIFY_SOCKET=@name`).
    pub fn bind_abstract(tag: &str) -> Self {
        let name = format!("pier-fake-systemd/{}/{tag}", std::process::id());
        let fd = socket();
        let addr = SocketAddrUnix::new_abstract_name(name.as_bytes()).expect("addr");
        net::bind(&fd, &addr).expect("bind abstract");
        Self::bound(fd, format!("@{name}"), None)
    }

    fn bound(fd: OwnedFd, notify_socket: String, dir: Option<tempfile::TempDir>) -> Self {
        Self {
            fd,
            notify_socket,
            keep_barrier_fds: false,
            _dir: dir,
        }
    }

    /// Keep a `BARRIER=1` datagram's fds in its [`Got`] (closed when it drops), for a test
    /// that inspects them.
    pub fn keeping_barrier_fds(mut self) -> Self {
        self.keep_barrier_fds = true;
        self
    }

    /// The value for `NOTIFY_SOCKET`: the path, or `@name`.
    pub fn notify_socket(&self) -> &str {
        &self.notify_socket
    }

    /// The socket, to poll.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Waits up to `timeout` for a datagram to be queued.
    pub fn wait_readable(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        loop {
            let left = Timespec::try_from(deadline.saturating_duration_since(Instant::now()))
                .expect("timespec");
            let mut fds = [PollFd::new(&self.fd, PollFlags::IN)];
            match poll(&mut fds, Some(&left)) {
                Ok(n) => return n > 0,
                Err(rustix::io::Errno::INTR) => continue,
                Err(e) => panic!("poll fake systemd: {e}"),
            }
        }
    }

    /// Whether a datagram is queued right now.
    pub fn pending(&self) -> bool {
        self.wait_readable(Duration::ZERO)
    }

    /// The next datagram; panics if none comes within [`HANG_GUARD`].
    pub fn recv(&self) -> Got {
        self.recv_within(HANG_GUARD)
            .unwrap_or_else(|| panic!("fake systemd: nothing arrived within {HANG_GUARD:?}"))
    }

    /// The next datagram's payload, skipping `BARRIER=1` datagrams (a relay's own upstream
    /// barriers); panics on one systemd would have cut.
    pub fn recv_payload(&self) -> String {
        loop {
            let got = self.recv();
            assert!(
                !got.truncated,
                "datagram longer than {BUFFER} bytes forwarded: {:.80}",
                got.payload
            );
            if got.payload != "BARRIER=1" {
                return got.payload;
            }
        }
    }

    /// The next datagram within `timeout`, if any.
    pub fn recv_within(&self, timeout: Duration) -> Option<Got> {
        if !self.wait_readable(timeout) {
            return None;
        }
        Some(self.recv_now())
    }

    fn recv_now(&self) -> Got {
        let mut buf = vec![0u8; READ_MAX];
        let mut space =
            vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(253), ScmCredentials(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let flags = RecvFlags::CMSG_CLOEXEC | RecvFlags::DONTWAIT | RecvFlags::TRUNC;
        let msg =
            net::recvmsg(&self.fd, &mut iov, &mut control, flags).expect("fake systemd recvmsg");
        let (mut fds, mut creds) = (Vec::new(), None);
        for m in control.drain() {
            match m {
                RecvAncillaryMessage::ScmRights(r) => fds.extend(r),
                RecvAncillaryMessage::ScmCredentials(c) => creds = Some(c),
                _ => {}
            }
        }
        let creds = creds.expect("systemd requires SCM_CREDENTIALS (SO_PASSCRED)");
        let payload = String::from_utf8_lossy(&buf[..msg.bytes.min(READ_MAX)]).into_owned();
        let fd_count = fds.len();
        if !self.keep_barrier_fds && payload.lines().any(|l| l == "BARRIER=1") {
            fds.clear(); // systemd closes barrier fds at once
        }
        Got {
            payload,
            fds,
            fd_count,
            pid: creds.pid.as_raw_nonzero().get(),
            uid: creds.uid.as_raw(),
            gid: creds.gid.as_raw(),
            truncated: msg.bytes > BUFFER
                || msg
                    .flags
                    .intersects(ReturnFlags::TRUNC | ReturnFlags::CTRUNC),
        }
    }
}

fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("pier-test-systemd")
        .tempdir()
        .expect("tempdir")
}

fn socket() -> OwnedFd {
    let fd = net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .expect("socket");
    net::sockopt::set_socket_passcred(&fd, true).expect("SO_PASSCRED");
    let _ = net::sockopt::set_socket_recv_buffer_size_force(&fd, 8 << 20);
    fd
}
