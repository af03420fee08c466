//! Unit tests of the pure core, with fds from pipes and a fake pid lookup.

use std::os::fd::{AsRawFd, OwnedFd};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::pipe::{pipe_with, PipeFlags};

use super::*;
use crate::SenderAccess;

const INIT_HOST: i32 = 4000;
const SENDER_HOST: i32 = 4007;
const SENDER_CONTAINER: i32 = 7;

fn relay(identity: Identity, policy: Policy) -> Relay {
    Relay::new(Config {
        policy,
        identity,
        init_host_pid: INIT_HOST,
        init_container_pid: 1,
    })
    .with_pid_lookup(|pid| (pid == SENDER_HOST).then_some(SENDER_CONTAINER))
}

fn plain() -> Relay {
    relay(Identity::AsRelay, Policy::default())
}

fn datagram(payload: &[u8], pid: i32, fds: Vec<OwnedFd>) -> Received {
    Received {
        payload: payload.to_vec(),
        fds,
        pid,
        uid: 0,
        gid: 0,
        pidfd: None,
        sender_reaped: false,
    }
}

fn text(outcome: &Outcome) -> Option<String> {
    outcome.forward.as_ref().map(Outgoing::text)
}

/// A pipe: (read end, write end). The read end polls HUP once every write end is closed.
fn pipe() -> (OwnedFd, OwnedFd) {
    pipe_with(PipeFlags::CLOEXEC).expect("pipe")
}

/// The pipe's write end is closed everywhere: waits (poll, up to 5 s) for POLLHUP, since a
/// child that another test thread is spawning holds a copy of every fd until its execve
/// closes the CLOEXEC ones.
fn hung_up(read: &OwnedFd) -> bool {
    poll_hup(read, 5)
}

/// The pipe's write end is still open somewhere, right now (no wait).
fn still_open(read: &OwnedFd) -> bool {
    !poll_hup(read, 0)
}

fn poll_hup(read: &OwnedFd, seconds: i64) -> bool {
    let mut fds = [PollFd::new(read, PollFlags::IN)];
    let timeout = Timespec {
        tv_sec: seconds,
        tv_nsec: 0,
    };
    rustix::event::poll(&mut fds, Some(&timeout)).expect("poll");
    fds[0].revents().contains(PollFlags::HUP)
}

fn reasons(outcome: &Outcome) -> Vec<(Option<&str>, &DropReason)> {
    outcome
        .dropped
        .iter()
        .map(|d| (d.key.as_deref(), &d.reason))
        .collect()
}

#[test]
fn one_datagram_in_one_out_in_order() {
    let outcome = plain().on_datagram(datagram(b"STATUS=a\nX_Y=1\nREADY=1\nWATCHDOG=1", 9, vec![]));
    assert_eq!(
        text(&outcome).as_deref(),
        Some("STATUS=a\nX_Y=1\nREADY=1\nWATCHDOG=1")
    );
    assert!(outcome.ready);
    assert!(outcome.dropped.is_empty());
    assert!(outcome.announce.is_none());
    assert_eq!(outcome.forward.expect("forwarded").pid_credential, None);
}

#[test]
fn dropped_lines_are_reported_and_the_rest_keeps_its_order() {
    let outcome = plain().on_datagram(datagram(
        b"NOTIFYACCESS=all\nSTATUS=x\nFOO=1\nRELOADING=1\nMAINPIDFD=1\nMONOTONIC_USEC=5",
        9,
        vec![],
    ));
    assert_eq!(
        text(&outcome).as_deref(),
        Some("STATUS=x\nRELOADING=1\nMONOTONIC_USEC=5")
    );
    assert_eq!(
        reasons(&outcome),
        [
            (Some("NOTIFYACCESS"), &DropReason::NotifyAccess),
            (Some("FOO"), &DropReason::UnknownKey),
            (Some("MAINPIDFD"), &DropReason::MainPidFd),
        ]
    );
    assert!(!outcome.ready);
}

#[test]
fn nothing_left_means_nothing_sent() {
    let outcome = plain().on_datagram(datagram(b"NOTIFYACCESS=all\nFOO=bar", 9, vec![]));
    assert!(outcome.forward.is_none());
    assert_eq!(outcome.dropped.len(), 2);
}

#[test]
fn malformed_datagrams_are_dropped_whole() {
    let big = [b'x'; NOTIFY_BUFFER_MAX + 1];
    let cases: [(&[u8], DropReason); 4] = [
        (b"", DropReason::Empty),
        (b"READY=1\0STATUS=x", DropReason::EmbeddedNul),
        (&big, DropReason::TooLarge { bytes: 4097 }),
        (b"\n\n", DropReason::Empty),
    ];
    for (payload, reason) in cases {
        let outcome = plain().on_datagram(datagram(payload, 9, vec![]));
        assert!(outcome.forward.is_none());
        assert_eq!(reasons(&outcome), [(None, &reason)]);
    }
    let tolerated = plain().on_datagram(datagram(b"READY=1\0", 9, vec![]));
    assert_eq!(text(&tolerated).as_deref(), Some("READY=1"));
}

#[test]
fn init_only_sender_policy() {
    let policy = Policy {
        sender: SenderAccess::Init,
        ..Policy::default()
    };
    let mut relay = relay(Identity::AsRelay, policy);
    let (read, write) = pipe();
    let denied = relay.on_datagram(datagram(b"READY=1", SENDER_HOST, vec![write]));
    assert!(denied.forward.is_none() && !denied.ready);
    assert_eq!(
        reasons(&denied),
        [(None, &DropReason::SenderNotInit { pid: SENDER_HOST })]
    );
    assert!(hung_up(&read), "fds of a refused datagram are closed");
    let allowed = relay.on_datagram(datagram(b"READY=1", INIT_HOST, vec![]));
    assert_eq!(text(&allowed).as_deref(), Some("READY=1"));
}

#[test]
fn mainpid_is_translated_only_for_the_sender_or_the_init() {
    let mut relay = plain();
    let init = relay.on_datagram(datagram(b"MAINPID=1", SENDER_HOST, vec![]));
    assert_eq!(text(&init), Some(format!("MAINPID={INIT_HOST}")));
    let own = relay.on_datagram(datagram(b"MAINPID=7\nREADY=1", SENDER_HOST, vec![]));
    assert_eq!(text(&own), Some(format!("MAINPID={SENDER_HOST}\nREADY=1")));
    let foreign = relay.on_datagram(datagram(b"MAINPID=8\nSTATUS=s", SENDER_HOST, vec![]));
    assert_eq!(text(&foreign).as_deref(), Some("STATUS=s"));
    assert_eq!(
        reasons(&foreign),
        [(Some("MAINPID"), &DropReason::MainPidForeign { pid: 8 })]
    );
    let unknown = relay.on_datagram(datagram(b"MAINPID=7", 5555, vec![]));
    assert_eq!(
        reasons(&unknown),
        [(Some("MAINPID"), &DropReason::MainPidUnresolved)]
    );
}

#[test]
fn identities_that_own_mainpid_drop_the_containers() {
    for identity in [
        Identity::AsMainPid {
            init_host_pid: INIT_HOST,
        },
        Identity::RelayIsMain,
    ] {
        let outcome = relay(identity, Policy::default()).on_datagram(datagram(
            b"MAINPID=1\nSTATUS=s",
            INIT_HOST,
            vec![],
        ));
        assert_eq!(text(&outcome).as_deref(), Some("STATUS=s"), "{identity:?}");
        assert_eq!(
            reasons(&outcome),
            [(Some("MAINPID"), &DropReason::MainPidOwnedByRelay)]
        );
    }
}

#[test]
fn fdstore_keeps_its_fds_in_order() {
    let pipes: Vec<_> = (0..3).map(|_| pipe()).collect();
    let fds = pipes
        .iter()
        .map(|(_, w)| w.try_clone().expect("dup"))
        .collect::<Vec<_>>();
    let sent: Vec<i32> = fds.iter().map(AsRawFd::as_raw_fd).collect();
    let outcome = plain().on_datagram(datagram(b"FDSTORE=1\nFDNAME=db\nFDPOLL=0", 9, fds));
    let forward = outcome.forward.expect("forwarded");
    assert_eq!(forward.text(), "FDSTORE=1\nFDNAME=db\nFDPOLL=0");
    let got: Vec<i32> = forward.fds.iter().map(AsRawFd::as_raw_fd).collect();
    assert_eq!(got, sent, "the very fds, in order");
}

#[test]
fn stray_fds_are_closed() {
    let (read, write) = pipe();
    let outcome = plain().on_datagram(datagram(b"STATUS=with fd", 9, vec![write]));
    let forward = outcome.forward.as_ref().expect("forwarded");
    assert!(forward.fds.is_empty());
    assert_eq!(
        reasons(&outcome),
        [(None, &DropReason::StrayFds { fds: 1 })]
    );
    assert!(hung_up(&read));
}

#[test]
fn fd_store_disabled_closes_store_fds() {
    let policy = Policy {
        fd_store: false,
        ..Policy::default()
    };
    let (read, write) = pipe();
    let outcome = relay(Identity::AsRelay, policy).on_datagram(datagram(
        b"FDSTORE=1\nFDNAME=x",
        9,
        vec![write],
    ));
    assert!(outcome.forward.is_none());
    assert!(hung_up(&read));
    assert_eq!(
        outcome.dropped.len(),
        3,
        "two keys and the fds: {:?}",
        outcome.dropped
    );
}

#[test]
fn barrier_goes_up_with_the_senders_own_fd() {
    let (read, write) = pipe();
    let raw = write.as_raw_fd();
    let outcome = relay(
        Identity::AsMainPid {
            init_host_pid: INIT_HOST,
        },
        Policy::default(),
    )
    .on_datagram(datagram(b"BARRIER=1", INIT_HOST, vec![write]));
    let forward = outcome.forward.expect("forwarded");
    assert_eq!(forward.text(), "BARRIER=1");
    assert_eq!(
        forward
            .fds
            .iter()
            .map(AsRawFd::as_raw_fd)
            .collect::<Vec<_>>(),
        [raw]
    );
    // Before MAINPID= is announced, the relay itself is the main pid systemd accepts.
    assert_eq!(forward.pid_credential, None);
    assert!(!outcome.ready);
    assert!(
        still_open(&read),
        "the relay keeps the fd open until it is sent"
    );
    drop(forward);
    assert!(hung_up(&read));
}

#[test]
fn malformed_barriers_are_dropped_and_their_fds_closed() {
    let (read, write) = pipe();
    let mixed = plain().on_datagram(datagram(b"BARRIER=1\nREADY=1", 9, vec![write]));
    assert!(mixed.forward.is_none() && !mixed.ready);
    assert_eq!(
        reasons(&mixed),
        [(Some("BARRIER"), &DropReason::BarrierNotAlone)]
    );
    assert!(hung_up(&read));

    let none = plain().on_datagram(datagram(b"BARRIER=1", 9, vec![]));
    assert_eq!(
        reasons(&none),
        [(Some("BARRIER"), &DropReason::BarrierFdCount { fds: 0 })]
    );
    let (a, b) = pipe();
    let two = plain().on_datagram(datagram(b"BARRIER=1", 9, vec![a, b]));
    assert_eq!(
        reasons(&two),
        [(Some("BARRIER"), &DropReason::BarrierFdCount { fds: 2 })]
    );
    assert!(two.forward.is_none());
}

#[test]
fn as_main_pid_announces_init_with_the_first_ready_only() {
    let mut relay = relay(
        Identity::AsMainPid {
            init_host_pid: INIT_HOST,
        },
        Policy::default(),
    );
    let before = relay.on_datagram(datagram(b"STATUS=starting", INIT_HOST, vec![]));
    assert_eq!(text(&before).as_deref(), Some("STATUS=starting"));
    // Until systemd is told, the relay (still the unit's main pid) sends as itself.
    assert_eq!(before.forward.expect("sent").pid_credential, None);
    assert!(!relay.main_pid_announced());

    let first = relay.on_datagram(datagram(b"STATUS=up\nREADY=1", INIT_HOST, vec![]));
    assert!(first.ready);
    assert_eq!(
        text(&first),
        Some(format!("MAINPID={INIT_HOST}\nSTATUS=up\nREADY=1"))
    );
    assert_eq!(first.forward.expect("sent").pid_credential, None);
    assert!(relay.main_pid_announced());

    // From then on the init is the main pid: send with its credentials.
    let second = relay.on_datagram(datagram(b"READY=1", INIT_HOST, vec![]));
    assert_eq!(text(&second).as_deref(), Some("READY=1"));
    assert_eq!(
        second.forward.expect("sent").pid_credential,
        Some(INIT_HOST)
    );
}

/// The pid a pidfd refers to, from its `/proc/self/fdinfo` (`Pid:` line, proc(5)).
fn pidfd_pid(fd: &OwnedFd) -> i32 {
    let info =
        std::fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).expect("fdinfo");
    let line = info
        .lines()
        .find_map(|l| l.strip_prefix("Pid:"))
        .expect("a pidfd");
    line.trim().parse().expect("pid")
}

fn own_pidfd() -> OwnedFd {
    let own = rustix::process::getpid();
    rustix::process::pidfd_open(own, rustix::process::PidfdFlags::empty()).expect("pidfd_open")
}

#[test]
fn main_pidfd_rides_with_main_pid_in_the_ready_datagram() {
    let own = std::process::id() as i32;
    let mut relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsMainPid { init_host_pid: own },
        init_host_pid: own,
        init_container_pid: 1,
    })
    .with_main_pidfd(own_pidfd());
    let first = relay.on_datagram(datagram(b"STATUS=up\nREADY=1", own, vec![]));
    assert!(first.announce.is_none());
    let out = first.forward.expect("sent");
    assert_eq!(
        out.text(),
        format!("MAINPID={own}\nMAINPIDFD=1\nSTATUS=up\nREADY=1")
    );
    assert_eq!(out.fds.len(), 1, "exactly the pidfd");
    assert_eq!(pidfd_pid(&out.fds[0]), own);
    // Announced once: a second READY=1 has neither.
    let second = relay.on_datagram(datagram(b"READY=1", own, vec![]));
    assert_eq!(text(&second).as_deref(), Some("READY=1"));
    assert!(second.forward.expect("sent").fds.is_empty());
}

#[test]
fn main_pidfd_goes_alone_when_the_ready_datagram_has_fds() {
    let own = std::process::id() as i32;
    let mut relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsMainPid { init_host_pid: own },
        init_host_pid: own,
        init_container_pid: 1,
    })
    .with_main_pidfd(own_pidfd());
    let (_read, write) = pipe();
    let first = relay.on_datagram(datagram(b"READY=1\nFDSTORE=1", own, vec![write]));
    let announce = first.announce.expect("a separate announcement");
    assert_eq!(announce.text(), format!("MAINPID={own}\nMAINPIDFD=1"));
    assert_eq!(announce.fds.len(), 1);
    assert_eq!(pidfd_pid(&announce.fds[0]), own);
    assert_eq!(
        announce.pid_credential, None,
        "sent while the relay is still the main pid"
    );
    let out = first.forward.expect("sent");
    assert_eq!(out.text(), "READY=1\nFDSTORE=1");
    assert_eq!(out.fds.len(), 1, "only the stored fd");
    assert_eq!(out.pid_credential, Some(own));
}

#[test]
fn without_a_pidfd_or_as_relay_no_main_pidfd() {
    let mut relay = relay(
        Identity::AsMainPid {
            init_host_pid: INIT_HOST,
        },
        Policy::default(),
    );
    let first = relay.on_datagram(datagram(b"READY=1", INIT_HOST, vec![]));
    assert_eq!(text(&first), Some(format!("MAINPID={INIT_HOST}\nREADY=1")));
    let mut relay = relay_is_main().with_main_pidfd(own_pidfd());
    let first = relay.on_datagram(datagram(b"READY=1", 9, vec![]));
    let out = first.forward.expect("sent");
    assert!(
        !out.text().contains("MAINPIDFD"),
        "the pidfd is the init's, not the relay's"
    );
    assert!(out.fds.is_empty());
}

fn relay_is_main() -> Relay {
    relay(Identity::RelayIsMain, Policy::default())
}

#[test]
fn relay_is_main_announces_itself_and_as_relay_does_not() {
    let own = std::process::id();
    let outcome = relay(Identity::RelayIsMain, Policy::default()).on_datagram(datagram(
        b"READY=1",
        9,
        vec![],
    ));
    assert_eq!(text(&outcome), Some(format!("MAINPID={own}\nREADY=1")));
    assert_eq!(outcome.forward.expect("sent").pid_credential, None);
    let plain = plain().on_datagram(datagram(b"READY=1", 9, vec![]));
    assert_eq!(text(&plain).as_deref(), Some("READY=1"));
}

#[test]
fn announcement_that_does_not_fit_goes_first_on_its_own() {
    let mut payload = b"READY=1\nSTATUS=".to_vec();
    payload.resize(NOTIFY_BUFFER_MAX, b'x');
    let outcome = relay(
        Identity::AsMainPid {
            init_host_pid: INIT_HOST,
        },
        Policy::default(),
    )
    .on_datagram(datagram(&payload, INIT_HOST, vec![]));
    assert!(outcome.ready);
    let sent: Vec<Outgoing> = outcome.into_datagrams().collect();
    assert_eq!(sent.len(), 2);
    assert_eq!(sent[0].text(), format!("MAINPID={INIT_HOST}"));
    assert_eq!(sent[0].pid_credential, None);
    assert_eq!(sent[1].payload, payload);
    assert_eq!(sent[1].pid_credential, Some(INIT_HOST));
}

#[test]
fn ready_needs_exactly_ready_1() {
    let outcome = plain().on_datagram(datagram(b"READY=0\nSTATUS=READY=1", 9, vec![]));
    assert!(!outcome.ready);
    assert_eq!(text(&outcome).as_deref(), Some("STATUS=READY=1"));
}

#[test]
fn a_forwarded_container_mainpid_becomes_the_credential_of_later_datagrams() {
    // Foreground (AsRelay): the container names its init as main pid; systemd will then
    // accept only that pid under NotifyAccess=main, so later datagrams carry it.
    let mut relay = plain();
    let first = relay.on_datagram(datagram(b"READY=1\nMAINPID=1", 9, vec![]));
    let first = first.forward.expect("sent");
    assert_eq!(
        first.pid_credential, None,
        "sent as the current main pid, the relay"
    );
    let later = relay.on_datagram(datagram(b"STATUS=serving", 9, vec![]));
    assert_eq!(later.forward.expect("sent").pid_credential, Some(INIT_HOST));
}
