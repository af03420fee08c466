//! A container `MAINPID=` naming its sender, checked by the sender's pidfd with the default
//! `access=all` ([`Listener::set_main_pid_pidfds`]): the kernel makes the pidfd from the
//! sender's `struct pid` kept with the datagram, so a sender reaped before the relay reads
//! its datagram is "gone" even when its pid now belongs to another live process (what a
//! `/proc/<pid>` lookup would be fooled by). The senders are re-executions of this binary.

mod common;

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use common::{readable, HANG_GUARD};
use notify_relay::{
    Config, DropReason, Identity, Listener, Policy, Received, Recv, Relay, SenderAccess,
};

const ROLE: &str = "NOTIFY_RELAY_TEST_ROLE";
const ENTRY: &str = "sender_entry_point";

/// Not a test in a normal run: a sender that sends `MAINPID=<own pid>` and exits at once.
#[test]
fn sender_entry_point() {
    if std::env::var(ROLE).as_deref() != Ok("exit") {
        return;
    }
    let socket = UnixDatagram::unbound().expect("socket");
    let own = rustix::process::getpid().as_raw_nonzero().get();
    socket
        .send_to(
            format!("MAINPID={own}\nSTATUS=gone").as_bytes(),
            std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET"),
        )
        .expect("send");
    std::process::exit(0);
}

/// Runs a sender to its end and reaps it: its datagram waits in the listener's queue, its pid
/// is free for reuse. Returns the pid.
fn send_and_reap(path: &std::path::Path) -> i32 {
    let mut child = Command::new(std::env::current_exe().expect("exe"))
        .args([ENTRY, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, "exit")
        .env("NOTIFY_SOCKET", path)
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn sender");
    let pid = child.id() as i32;
    assert!(child.wait().expect("reap").success(), "sender failed");
    pid
}

fn next(listener: &mut Listener) -> Received {
    assert!(readable(listener.as_fd(), HANG_GUARD), "no datagram");
    match listener.recv().expect("recv") {
        Recv::Datagram(datagram) => datagram,
        other => panic!("unexpected {other:?}"),
    }
}

/// A foreground relay (`AsRelay`, `access=all`), whose `/proc` lookup plays a process that
/// reused `reused_pid` and so "is" the sender.
fn relay_fooled_about(reused_pid: i32) -> Relay {
    let relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid: 1,
        init_container_pid: 1,
    })
    .with_pid_lookup(move |p| (p == reused_pid).then_some(reused_pid));
    assert!(relay.wants_main_pid_pidfds());
    relay
}

fn text(outcome: &notify_relay::Outcome) -> Option<String> {
    outcome.forward.as_ref().map(notify_relay::Outgoing::text)
}

/// A listener bound at path that asks for MAINPID= senders' pidfds; None (the test skips)
/// where the kernel has no SO_PASSPIDFD.
fn pidfd_listener(path: &std::path::Path) -> Option<Listener> {
    let mut listener = Listener::bind(path).expect("bind");
    if !listener.set_main_pid_pidfds(true) {
        eprintln!("skipped: the kernel has no SO_PASSPIDFD (Linux < 6.5)");
        return None;
    }
    Some(listener)
}

#[test]
fn a_reaped_senders_mainpid_is_dropped_even_when_its_pid_looks_alive() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let Some(mut listener) = pidfd_listener(&path) else {
        return;
    };
    let pid = send_and_reap(&path);
    let datagram = next(&mut listener);
    assert_eq!(datagram.pid, pid);
    let gone = match &datagram.pidfd {
        None => datagram.sender_reaped,
        Some(pidfd) => notify_relay::pidfd::info(pidfd.as_fd())
            .expect("fdinfo")
            .pid
            .is_none(),
    };
    assert!(gone, "the kernel told the sender was reaped: {datagram:?}");
    eprintln!(
        "reaped sender: {}",
        match datagram.pidfd {
            None => "no pidfd (SCM_PIDFD -ESRCH)",
            Some(_) => "a pidfd whose fdinfo says Pid: -1",
        }
    );
    let outcome = relay_fooled_about(pid).on_datagram(datagram);
    assert_eq!(text(&outcome).as_deref(), Some("STATUS=gone"));
    assert_eq!(outcome.dropped[0].reason, DropReason::MainPidUnresolved);

    // Without the pidfd the lookup decides, and is fooled: what this closes.
    listener.set_main_pid_pidfds(false);
    let pid = send_and_reap(&path);
    let datagram = next(&mut listener);
    assert!(datagram.pidfd.is_none() && !datagram.sender_reaped);
    let outcome = relay_fooled_about(pid).on_datagram(datagram);
    assert_eq!(text(&outcome), Some(format!("MAINPID={pid}\nSTATUS=gone")));
}

#[test]
fn a_live_senders_mainpid_is_checked_by_its_pidfd_and_other_datagrams_get_none() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let Some(mut listener) = pidfd_listener(&path) else {
        return;
    };
    let sender = UnixDatagram::unbound().expect("socket");
    sender.connect(&path).expect("connect");
    let own = rustix::process::getpid().as_raw_nonzero().get();
    let mut relay = Relay::new(Config {
        policy: Policy {
            sender: SenderAccess::All,
            ..Policy::default()
        },
        identity: Identity::AsRelay,
        init_host_pid: 1,
        init_container_pid: 1,
    })
    .with_pid_lookup(|_| panic!("a MAINPID= datagram came with a pidfd: no /proc lookup"));
    sender.send(b"STATUS=first").expect("send");
    sender
        .send(format!("STATUS=x\nMAINPID={own}").as_bytes())
        .expect("send");
    let plain = next(&mut listener);
    assert!(plain.pidfd.is_none() && !plain.sender_reaped, "{plain:?}");
    assert_eq!(
        text(&relay.on_datagram(plain)).as_deref(),
        Some("STATUS=first")
    );
    let named = next(&mut listener);
    let pidfd = named
        .pidfd
        .as_ref()
        .expect("a pidfd with the MAINPID= datagram");
    let info = notify_relay::pidfd::info(pidfd.as_fd()).expect("fdinfo");
    assert_eq!(info.pid, Some(own), "the sender's pidfd");
    assert_eq!(
        text(&relay.on_datagram(named)),
        Some(format!("STATUS=x\nMAINPID={own}"))
    );
    // An embedder that never asked sees no pidfds at all.
    listener.set_main_pid_pidfds(false);
    sender
        .send(format!("MAINPID={own}").as_bytes())
        .expect("send");
    assert!(next(&mut listener).pidfd.is_none());
}

/// What [`Listener::recv_many`] returned, call by call: (payload or refusal, has a pidfd,
/// the inodes of its fds).
type Batches = Vec<Vec<(String, bool, Vec<u64>)>>;

/// Calls [`Listener::recv_many`] until `count` datagrams have come, one batch per call.
fn batches(listener: &mut Listener, count: usize) -> Batches {
    let (mut all, mut seen) = (Vec::new(), 0);
    while seen < count {
        assert!(readable(listener.as_fd(), HANG_GUARD), "no datagram");
        let mut out = Vec::new();
        listener.recv_many(16, &mut out).expect("recv_many");
        assert!(!out.is_empty(), "readable, yet recv_many received nothing");
        seen += out.len();
        all.push(out.into_iter().map(describe).collect::<Vec<_>>());
    }
    all
}

fn describe(recv: Recv) -> (String, bool, Vec<u64>) {
    match recv {
        Recv::Datagram(d) => (
            String::from_utf8_lossy(&d.payload).into_owned(),
            d.pidfd.is_some(),
            d.fds
                .iter()
                .map(|f| rustix::fs::fstat(f).expect("fstat").st_ino)
                .collect(),
        ),
        Recv::Rejected(reason) => (format!("rejected: {reason:?}"), false, Vec::new()),
        Recv::WouldBlock => panic!("recv_many returned WouldBlock"),
    }
}

fn plain(text: &str) -> (String, bool, Vec<u64>) {
    (text.to_owned(), false, Vec::new())
}

fn sender_to(path: &std::path::Path) -> UnixDatagram {
    let sender = UnixDatagram::unbound().expect("socket");
    sender.connect(path).expect("connect");
    sender
}

/// The queue is peeked at as a batch: the datagrams before a `MAINPID=` one are received
/// together without pidfds, the `MAINPID=` one alone with its sender's, the rest together.
#[test]
fn a_mainpid_datagram_in_the_middle_of_a_batch_is_received_alone_with_its_pidfd() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let Some(mut listener) = pidfd_listener(&path) else {
        return;
    };
    let sender = sender_to(&path);
    let own = rustix::process::getpid().as_raw_nonzero().get();
    let named = format!("STATUS=m\nMAINPID={own}");
    for payload in ["STATUS=a", "STATUS=b", &named, "STATUS=c", "STATUS=d"] {
        sender.send(payload.as_bytes()).expect("send");
    }
    let got = batches(&mut listener, 5);
    assert_eq!(
        got,
        [
            vec![plain("STATUS=a"), plain("STATUS=b")],
            vec![(named.clone(), true, Vec::new())],
            vec![plain("STATUS=c"), plain("STATUS=d")],
        ]
    );
    // Twice in a row, and first in the queue.
    for payload in [&named, &named, "STATUS=e"] {
        sender.send(payload.as_bytes()).expect("send");
    }
    let got = batches(&mut listener, 3);
    let with_pidfd = (named, true, Vec::new());
    assert_eq!(
        got,
        [
            vec![with_pidfd.clone()],
            vec![with_pidfd],
            vec![plain("STATUS=e")]
        ]
    );
}

/// fds sent with datagrams of a peeked batch: each comes with its own datagram (none is
/// installed by the peek), also with the `MAINPID=` one; all are closed with the datagrams.
#[test]
fn fds_in_a_peeked_batch_come_with_their_own_datagrams() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let Some(mut listener) = pidfd_listener(&path) else {
        return;
    };
    let sender = sender_to(&path);
    let own = rustix::process::getpid().as_raw_nonzero().get();
    let pipes: Vec<_> = (0..3)
        .map(|_| rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).expect("pipe"))
        .collect();
    let named = format!("FDSTORE=1\nMAINPID={own}");
    common::send_with_fds(&sender, b"FDSTORE=1", &[pipes[0].1.as_fd()]);
    sender.send(b"STATUS=plain").expect("send");
    common::send_with_fds(&sender, named.as_bytes(), &[pipes[1].1.as_fd()]);
    common::send_with_fds(&sender, b"FDSTORE=1", &[pipes[2].1.as_fd()]);
    let (reads, writes): (Vec<_>, Vec<_>) = pipes.into_iter().unzip();
    let inodes: Vec<u64> = reads
        .iter()
        .map(|r| rustix::fs::fstat(r).expect("fstat").st_ino)
        .collect();
    drop(writes); // only the datagrams hold the write ends now
    let got = batches(&mut listener, 4);
    assert_eq!(
        got,
        [
            vec![
                ("FDSTORE=1".to_owned(), false, vec![inodes[0]]),
                plain("STATUS=plain")
            ],
            vec![(named, true, vec![inodes[1]])],
            vec![("FDSTORE=1".to_owned(), false, vec![inodes[2]])],
        ]
    );
    for (i, read) in reads.iter().enumerate() {
        assert!(
            common::hung_up(read, HANG_GUARD),
            "write end {i} still open after its datagram was dropped"
        );
    }
}

/// Empty datagrams (which the kernel's peek offset skips) and one longer than the buffer
/// (whose peek moves the offset only by the buffer's length) around `MAINPID=` datagrams:
/// every datagram is received in order, each `MAINPID=` one with its pidfd, the others
/// without.
#[test]
fn empty_and_oversized_datagrams_do_not_misalign_a_peeked_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let Some(mut listener) = pidfd_listener(&path) else {
        return;
    };
    let sender = sender_to(&path);
    let own = rustix::process::getpid().as_raw_nonzero().get();
    let named = format!("MAINPID={own}");
    let big = format!("STATUS={}", "x".repeat(5000));
    let after = format!("MAINPID={own}\nSTATUS=after-big");
    let sent: [&str; 8] = ["STATUS=a", "", &named, "", &big, &after, "", "STATUS=z"];
    for payload in sent {
        sender.send(payload.as_bytes()).expect("send");
    }
    let got: Vec<_> = batches(&mut listener, sent.len())
        .into_iter()
        .flatten()
        .collect();
    let empty = plain("rejected: Empty");
    assert_eq!(
        got,
        [
            plain("STATUS=a"),
            empty.clone(),
            (named, true, Vec::new()),
            empty.clone(),
            plain(&format!(
                "rejected: {:?}",
                DropReason::TooLarge { bytes: big.len() }
            )),
            (after, true, Vec::new()),
            empty,
            plain("STATUS=z"),
        ]
    );
}

/// Through `pump`, as a foreground relay runs: more datagrams than a batch, `MAINPID=` ones
/// among them (one right after another, one at the end of a batch), all forwarded in the
/// order sent, every `MAINPID=` checked by its pidfd (the `/proc` lookup is never asked).
#[test]
fn pump_forwards_peeked_batches_in_order_with_mainpid_checked_by_pidfd() {
    let init = common::Init::spawn();
    let mut rig = common::Rig::new(Identity::AsRelay, init.pid());
    rig.relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid: init.pid(),
        init_container_pid: init.pid(),
    })
    .with_pid_lookup(|p| panic!("MAINPID={p} looked up in /proc: it came without a pidfd"));
    if !rig
        .listener
        .set_main_pid_pidfds(rig.relay.wants_main_pid_pidfds())
    {
        eprintln!("skipped: the kernel has no SO_PASSPIDFD (Linux < 6.5)");
        init.stop();
        return;
    }
    let own = rustix::process::getpid().as_raw_nonzero().get();
    let count = notify_relay::socket::RECV_BATCH * 3 + 3;
    let payload = move |i: usize| match i {
        7 | 8 | 15 | 30 => format!("STATUS={i}\nMAINPID={own}"),
        _ => format!("STATUS={i}"),
    };
    let sender = rig.sender();
    let sending = std::thread::spawn(move || {
        for i in 0..count {
            sender.send(payload(i).as_bytes()).expect("send");
        }
    });
    let (mut received, mut got) = (0, Vec::new());
    while received < count || rig.upstream.backlog() > 0 || rig.systemd.pending() {
        if received < count {
            assert!(
                readable(rig.listener.as_fd(), HANG_GUARD),
                "the sender stopped"
            );
        }
        let pumped = rig.pump();
        assert!(
            received == count || pumped.received > 0,
            "readable, yet pump received nothing"
        );
        assert_eq!(pumped.dropped, 0);
        received += pumped.received;
        rig.upstream.flush().expect("flush");
        while rig.systemd.pending() {
            got.push(rig.systemd.recv().payload);
        }
    }
    sending.join().expect("sender");
    let expected: Vec<String> = (0..count).map(payload).collect();
    assert_eq!(got, expected);
    init.stop();
}
