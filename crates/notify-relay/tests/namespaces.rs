//! `MAINPID=` translation with real pid namespaces: the senders run in a new pid namespace
//! (`unshare --pid --fork`, root only) as re-executions of this test binary.

mod common;

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use common::{
    fake_systemd, hung_up, readable, send_with_fds, upstream_to, FakeSystemd, Init, HANG_GUARD,
};
use notify_relay::{
    Config, DropReason, Identity, Listener, Policy, Received, Recv, Relay, Upstream,
};
use rustix::pipe::{pipe_with, PipeFlags};

/// Tells a re-executed test binary which sender to play.
const ROLE: &str = "NOTIFY_RELAY_TEST_ROLE";
const ENTRY: &str = "sender_entry_point";

/// Not a test in a normal run: the entry point of the re-executed sender processes.
/// This test binary re-run as the init (role "init") of a new pid namespace, sending to the
/// listener at `path`.
fn spawn_container_init(path: &std::path::Path) -> std::process::Child {
    Command::new("unshare")
        .args(["--pid", "--fork", "--kill-child"])
        .arg(std::env::current_exe().expect("exe"))
        .args([ENTRY, "--exact", "--nocapture", "--test-threads=1"])
        .env(ROLE, "init")
        .env("NOTIFY_SOCKET", path)
        .stdout(Stdio::null())
        .spawn()
        .expect("unshare")
}

#[test]
fn sender_entry_point() {
    let Ok(role) = std::env::var(ROLE) else {
        return;
    };
    let socket = UnixDatagram::unbound().expect("socket");
    socket
        .connect(std::env::var("NOTIFY_SOCKET").expect("NOTIFY_SOCKET"))
        .expect("connect");
    let own = rustix::process::getpid().as_raw_nonzero().get();
    let code = match role.as_str() {
        "init" if own != 1 => 3,
        "init" => {
            socket.send(b"X_HELLO=init").expect("send");
            let status = Command::new(std::env::current_exe().expect("exe"))
                .args([ENTRY, "--exact", "--nocapture", "--test-threads=1"])
                .env(ROLE, "child")
                .stdout(Stdio::null())
                .status()
                .expect("spawn child");
            socket
                .send(b"MAINPID=1\nSTATUS=init names itself")
                .expect("send");
            socket.send(b"MAINPID=5\nSTATUS=foreign").expect("send");
            barrier(&socket);
            if status.success() {
                0
            } else {
                4
            }
        }
        "child" => {
            socket
                .send(format!("MAINPID={own}\nREADY=1").as_bytes())
                .expect("send");
            // Stay alive until the relay has forwarded (and so checked) the MAINPID.
            barrier(&socket);
            0
        }
        _ => 5,
    };
    std::process::exit(code);
}

/// sd_notify_barrier(3): BARRIER=1 with a pipe's write end, wait for the hangup.
fn barrier(socket: &UnixDatagram) {
    let (read, write) = pipe_with(PipeFlags::CLOEXEC).expect("pipe");
    send_with_fds(socket, b"BARRIER=1", &[write.as_fd()]);
    drop(write);
    assert!(hung_up(&read, HANG_GUARD), "barrier timed out");
}

fn next(listener: &mut Listener) -> Received {
    assert!(
        readable(listener.as_fd(), HANG_GUARD),
        "no datagram from the container"
    );
    match listener.recv().expect("recv") {
        Recv::Datagram(datagram) => datagram,
        other => panic!("unexpected {other:?}"),
    }
}

/// Relays one datagram; returns the sender's host pid, what was dropped and what arrived
/// upstream (`None` when nothing was left to forward).
fn relay_one(
    listener: &mut Listener,
    relay: &mut Relay,
    upstream: &mut Upstream,
    systemd: &FakeSystemd,
) -> (i32, Vec<DropReason>, Option<String>) {
    let datagram = next(listener);
    let sender = datagram.pid;
    let outcome = relay.on_datagram(datagram);
    let dropped = outcome.dropped.iter().map(|d| d.reason.clone()).collect();
    let forwarded = outcome.forward.is_some();
    for out in outcome.into_datagrams() {
        upstream.send(&out).expect("send upstream");
    }
    (sender, dropped, forwarded.then(|| systemd.recv().payload))
}

#[test]
fn mainpid_from_a_new_pid_namespace_is_translated_to_host_pids() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root for a pid namespace");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let mut listener = Listener::bind(&path).expect("bind");
    let systemd = fake_systemd();
    let mut upstream = upstream_to(&systemd);
    let mut container = spawn_container_init(&path);

    let hello = next(&mut listener);
    assert_eq!(hello.payload, b"X_HELLO=init");
    let init_host_pid = hello.pid;
    assert_eq!(
        notify_relay::pidns::innermost_pid(init_host_pid).expect("NSpid"),
        1
    );
    let mut relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid,
        init_container_pid: 1,
    });
    let mut step = || relay_one(&mut listener, &mut relay, &mut upstream, &systemd);

    let (child, dropped, got) = step();
    assert_ne!(child, init_host_pid);
    assert_eq!(
        got,
        Some(format!("MAINPID={child}\nREADY=1")),
        "the sender's own pid, as the host sees it"
    );
    assert!(dropped.is_empty());
    assert_eq!(step().2.as_deref(), Some("BARRIER=1"));

    let (_, _, got) = step();
    assert_eq!(
        got,
        Some(format!("MAINPID={init_host_pid}\nSTATUS=init names itself"))
    );
    let (_, dropped, got) = step();
    assert_eq!(got.as_deref(), Some("STATUS=foreign"));
    assert_eq!(dropped, [DropReason::MainPidForeign { pid: 5 }]);
    assert_eq!(step().2.as_deref(), Some("BARRIER=1"));
    assert!(container.wait().expect("wait").success());
}

#[test]
fn mainpid_naming_the_sender_in_the_same_namespace() {
    let init = Init::spawn();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let mut listener = Listener::bind(&path).expect("bind");
    let systemd = fake_systemd();
    let mut upstream = upstream_to(&systemd);
    let mut relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid: init.pid(),
        init_container_pid: init.pid(),
    });
    let own = std::process::id();
    let sender = UnixDatagram::unbound().expect("socket");
    sender.connect(&path).expect("connect");
    for payload in [
        format!("MAINPID={own}"),
        format!("MAINPID={}", init.pid()),
        "MAINPID=1".into(),
    ] {
        sender.send(payload.as_bytes()).expect("send");
    }
    sender.send(b"READY=1").expect("send");
    let mut step = || relay_one(&mut listener, &mut relay, &mut upstream, &systemd);
    assert_eq!(step().2, Some(format!("MAINPID={own}")), "names the sender");
    assert_eq!(
        step().2,
        Some(format!("MAINPID={}", init.pid())),
        "names the init"
    );
    let (_, dropped, got) = step();
    assert_eq!(
        dropped,
        [DropReason::MainPidForeign { pid: 1 }],
        "pid 1 is the host's init here"
    );
    assert_eq!(got, None, "nothing left to forward");
    assert_eq!(step().2.as_deref(), Some("READY=1"));
    assert!(!systemd.pending());
    init.stop();
}

#[test]
fn mainpid_from_a_new_pid_namespace_is_read_from_the_senders_pidfd() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: needs root for a pid namespace");
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let mut listener = Listener::bind(&path).expect("bind");
    if !listener.set_sender_pidfds(true) {
        eprintln!("skipped: the kernel has no SO_PASSPIDFD (Linux < 6.5)");
        return;
    }
    let systemd = fake_systemd();
    let mut upstream = upstream_to(&systemd);
    let mut container = spawn_container_init(&path);

    let hello = next(&mut listener);
    let init_host_pid = hello.pid;
    let init_pidfd = hello
        .pidfd
        .expect("the init's pidfd came with its datagram");
    let init_info = notify_relay::pidfd::info(init_pidfd.as_fd()).expect("fdinfo");
    assert_eq!(init_info.pid, Some(init_host_pid));
    assert_eq!(init_info.innermost_pid(), Some(1), "pid 1 of its namespace");
    // The /proc lookup is out of the game: only the pidfd can translate.
    let mut relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid,
        init_container_pid: 1,
    })
    .with_init_pidfd(init_pidfd.as_fd())
    .with_pid_lookup(|_| None);

    let child = next(&mut listener);
    let child_host_pid = child.pid;
    let claimed: i32 = String::from_utf8_lossy(&child.payload)
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .expect("MAINPID line")
        .parse()
        .expect("pid");
    let info =
        notify_relay::pidfd::info(child.pidfd.as_ref().expect("pidfd").as_fd()).expect("fdinfo");
    assert_eq!(info.nspid.first(), Some(&child_host_pid));
    assert_eq!(info.innermost_pid(), Some(claimed), "NSpid from the pidfd");
    assert_ne!(claimed, child_host_pid, "another namespace, another pid");
    let outcome = relay.on_datagram(child);
    assert!(outcome.dropped.is_empty(), "{:?}", outcome.dropped);
    for out in outcome.into_datagrams() {
        upstream.send(&out).expect("send upstream");
    }
    assert_eq!(
        systemd.recv().payload,
        format!("MAINPID={child_host_pid}\nREADY=1"),
        "the sender's own pid, as the host sees it"
    );
    let mut step = || relay_one(&mut listener, &mut relay, &mut upstream, &systemd);
    assert_eq!(step().2.as_deref(), Some("BARRIER=1"));
    let (_, _, got) = step();
    assert_eq!(
        got,
        Some(format!("MAINPID={init_host_pid}\nSTATUS=init names itself"))
    );
    let (_, dropped, got) = step();
    assert_eq!(got.as_deref(), Some("STATUS=foreign"));
    assert_eq!(dropped, [DropReason::MainPidForeign { pid: 5 }]);
    assert_eq!(step().2.as_deref(), Some("BARRIER=1"));
    assert!(container.wait().expect("wait").success());
}
