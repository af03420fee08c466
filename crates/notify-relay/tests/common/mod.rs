//! Shared pieces of the integration tests: a fake systemd notify socket that checks
//! credentials and fds like systemd's manager, a relay rig, and sender helpers.
#![allow(dead_code)]

use std::io::IoSlice;
use std::io::IoSliceMut;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use notify_relay::{Address, Config, Identity, Listener, Policy, Pumped, Relay, Upstream};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::{
    self, AddressFamily, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix, SocketFlags, SocketType,
};

/// Hang guard for blocking test receives: a test that waits this long has failed.
pub const HANG_GUARD: Duration = Duration::from_secs(20);

/// One datagram as the fake systemd saw it.
#[derive(Debug)]
pub struct Got {
    pub payload: String,
    pub fds: Vec<OwnedFd>,
    pub pid: i32,
    pub uid: u32,
    pub gid: u32,
    pub truncated: bool,
}

/// Stand-in for systemd's notify socket: `SO_PASSCRED`, 8 MiB buffer, recvmsg with creds
/// and fds. Dropping a [`Got`] closes its fds, which is how systemd acknowledges a barrier.
pub struct FakeSystemd {
    fd: OwnedFd,
    pub address: Address,
    _dir: Option<tempfile::TempDir>,
}

impl FakeSystemd {
    /// Bound at `<tempdir>/notify`.
    pub fn bind_path() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("notify");
        let fd = Self::socket();
        net::bind(&fd, &SocketAddrUnix::new(path.as_path()).expect("addr")).expect("bind");
        Self {
            fd,
            address: Address::Path(path),
            _dir: Some(dir),
        }
    }

    /// Bound at an abstract name unique to this process and `tag`.
    pub fn bind_abstract(tag: &str) -> Self {
        let name = format!("notify-relay-test/{}/{tag}", std::process::id());
        let fd = Self::socket();
        let addr = SocketAddrUnix::new_abstract_name(name.as_bytes()).expect("addr");
        net::bind(&fd, &addr).expect("bind abstract");
        Self {
            fd,
            address: Address::Abstract(name.into_bytes()),
            _dir: None,
        }
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
        net::sockopt::set_socket_timeout(&fd, net::sockopt::Timeout::Recv, Some(HANG_GUARD))
            .expect("SO_RCVTIMEO");
        fd
    }

    pub fn upstream(&self) -> Upstream {
        Upstream::connect(&self.address).expect("connect upstream")
    }

    /// Receives one datagram; panics if none comes within [`HANG_GUARD`].
    pub fn recv(&self) -> Got {
        let mut buf = vec![0u8; 65536];
        let mut space =
            vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(253), ScmCredentials(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let mut iov = [IoSliceMut::new(&mut buf)];
        let msg = net::recvmsg(&self.fd, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)
            .unwrap_or_else(|e| panic!("fake systemd: nothing arrived ({e})"));
        let (mut fds, mut creds) = (Vec::new(), None);
        for m in control.drain() {
            match m {
                RecvAncillaryMessage::ScmRights(r) => fds.extend(r),
                RecvAncillaryMessage::ScmCredentials(c) => creds = Some(c),
                _ => {}
            }
        }
        let creds = creds.expect("systemd requires SCM_CREDENTIALS");
        Got {
            payload: String::from_utf8_lossy(&buf[..msg.bytes]).into_owned(),
            fds,
            pid: creds.pid.as_raw_nonzero().get(),
            uid: creds.uid.as_raw(),
            gid: creds.gid.as_raw(),
            truncated: msg.flags.contains(ReturnFlags::TRUNC),
        }
    }

    /// Whether a datagram is queued right now.
    pub fn pending(&self) -> bool {
        readable(self.fd.as_fd(), Duration::ZERO)
    }
}

/// A relay between a listener in a tempdir and a fake systemd.
pub struct Rig {
    pub dir: tempfile::TempDir,
    pub socket_path: PathBuf,
    pub listener: Listener,
    pub systemd: FakeSystemd,
    pub upstream: Upstream,
    pub relay: Relay,
}

impl Rig {
    /// A rig whose "container init" is `init_host_pid` (in this pid namespace).
    pub fn new(identity: Identity, init_host_pid: i32) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let socket_path = dir.path().join("notify.sock");
        let listener = Listener::bind(&socket_path).expect("bind listener");
        let systemd = FakeSystemd::bind_path();
        let upstream = systemd.upstream();
        let relay = Relay::new(Config {
            policy: Policy::default(),
            identity,
            init_host_pid,
            init_container_pid: init_host_pid,
        });
        Self {
            dir,
            socket_path,
            listener,
            systemd,
            upstream,
            relay,
        }
    }

    /// A connected sender, as a process in the container would have.
    pub fn sender(&self) -> UnixDatagram {
        UnixDatagram::unbound()
            .and_then(|s| s.connect(&self.socket_path).map(|()| s))
            .expect("connect to listener")
    }

    /// Relays what is queued.
    pub fn pump(&mut self) -> Pumped {
        notify_relay::pump(
            &mut self.listener,
            Some(&mut self.upstream),
            &mut self.relay,
        )
        .expect("pump")
    }
}

/// `sendmsg` with `SCM_RIGHTS`.
pub fn send_with_fds(socket: &UnixDatagram, payload: &[u8], fds: &[BorrowedFd<'_>]) {
    let mut space = vec![MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(253))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    assert!(control.push(SendAncillaryMessage::ScmRights(fds)));
    net::sendmsg(
        socket,
        &[IoSlice::new(payload)],
        &mut control,
        SendFlags::empty(),
    )
    .expect("sendmsg with fds");
}

/// Polls `fd` for input (or hangup) for at most `timeout`.
pub fn readable(fd: BorrowedFd<'_>, timeout: Duration) -> bool {
    let timeout = Timespec::try_from(timeout).expect("timespec");
    let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
    rustix::event::poll(&mut fds, Some(&timeout)).expect("poll") > 0
}

/// Whether the read end of a pipe sees `POLLHUP` within `timeout`.
pub fn hung_up(read: &OwnedFd, timeout: Duration) -> bool {
    let timeout = Timespec::try_from(timeout).expect("timespec");
    let mut fds = [PollFd::new(read, PollFlags::IN)];
    rustix::event::poll(&mut fds, Some(&timeout)).expect("poll");
    fds[0].revents().contains(PollFlags::HUP)
}

/// A stand-in container init: `cat` with a pipe on stdin, exits when the pipe is closed.
pub struct Init {
    pub child: Child,
    pub pidfd: OwnedFd,
}

impl Init {
    pub fn spawn() -> Self {
        let child = Command::new("cat")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn cat");
        let pidfd = rustix::process::pidfd_open(
            rustix::process::Pid::from_child(&child),
            rustix::process::PidfdFlags::empty(),
        )
        .expect("pidfd_open");
        Self { child, pidfd }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Makes the init exit and reaps it.
    pub fn stop(mut self) {
        drop(self.child.stdin.take());
        self.child.wait().expect("wait for init");
    }
}
