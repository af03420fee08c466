//! Shared pieces of the integration tests: the workspace's fake systemd notify socket (it checks
//! credentials and fds like systemd's manager), a relay rig, and sender helpers.
#![allow(dead_code)]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use notify_relay::{Address, Config, Identity, Listener, Policy, Pumped, Relay, Upstream};
use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::net::{self, SendAncillaryBuffer, SendAncillaryMessage, SendFlags};

/// The workspace's one fake systemd notify socket (pier's notify tests pull in the same file).
#[path = "../kit/systemd.rs"]
mod systemd;

/// notify-relay's tests look at barrier fds, so they keep them ([`fake_systemd`]).
#[allow(unused_imports)]
pub use systemd::{FakeSystemd, Got, HANG_GUARD};

/// A fake systemd bound at a path, keeping the fds of barriers for the test to inspect.
pub fn fake_systemd() -> FakeSystemd {
    FakeSystemd::bind_path().keeping_barrier_fds()
}

/// As [`fake_systemd`], bound at an abstract name unique to `tag`.
pub fn fake_systemd_abstract(tag: &str) -> FakeSystemd {
    FakeSystemd::bind_abstract(tag).keeping_barrier_fds()
}

/// The fake systemd's address, as the relay parses `NOTIFY_SOCKET`.
pub fn address_of(systemd: &FakeSystemd) -> Address {
    Address::parse(systemd.notify_socket()).expect("parse NOTIFY_SOCKET")
}

/// A relay's connected upstream to `systemd`.
pub fn upstream_to(systemd: &FakeSystemd) -> Upstream {
    Upstream::connect(&address_of(systemd)).expect("connect upstream")
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
        let systemd = fake_systemd();
        let upstream = upstream_to(&systemd);
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
