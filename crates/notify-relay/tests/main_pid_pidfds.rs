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
