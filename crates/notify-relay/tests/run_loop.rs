//! The blocking loop: bursts, draining after the init's exit, the final barrier, no upstream.

mod common;

use std::io::ErrorKind;
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::{self, JoinHandle};

use common::{fake_systemd, readable, upstream_to, FakeSystemd, Init, HANG_GUARD};
use notify_relay::{Config, Identity, Listener, Policy, Relay, RelayError, Summary};
use rustix::event::{PollFd, PollFlags, Timespec};

fn relay_for(init: &Init) -> Relay {
    Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid: init.pid(),
        init_container_pid: init.pid(),
    })
}

/// Starts `run` in a thread; `on_ready` counts READY batches into `ready`.
fn spawn_run(
    path: &Path,
    systemd: Option<&FakeSystemd>,
    init: &Init,
    ready: Arc<AtomicUsize>,
) -> JoinHandle<Result<Summary, RelayError>> {
    let mut listener = Listener::bind(path).expect("bind");
    let mut upstream = systemd.map(upstream_to);
    let mut relay = relay_for(init);
    let pidfd: OwnedFd = init.pidfd.try_clone().expect("dup pidfd");
    thread::spawn(move || {
        notify_relay::run(
            &mut listener,
            upstream.as_mut(),
            &mut relay,
            pidfd.as_fd(),
            || {
                ready.fetch_add(1, Ordering::SeqCst);
            },
        )
    })
}

/// Collects payloads at the fake systemd until the relay's final `BARRIER=1` (acknowledged).
fn collect_until_barrier(systemd: FakeSystemd) -> JoinHandle<Vec<String>> {
    thread::spawn(move || {
        let mut seen = Vec::new();
        loop {
            let got = systemd.recv();
            if got.payload == "BARRIER=1" {
                assert_eq!(
                    got.pid,
                    std::process::id() as i32,
                    "the relay's own barrier"
                );
                return seen;
            }
            seen.push(got.payload);
        }
    })
}

fn connect(path: &Path) -> UnixDatagram {
    let socket = UnixDatagram::unbound().expect("socket");
    socket.connect(path).expect("connect");
    socket
}

#[test]
fn burst_of_10000_arrives_whole_and_in_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let systemd = fake_systemd();
    let init = Init::spawn();
    let relay = spawn_run(&path, Some(&systemd), &init, Arc::default());
    let host = collect_until_barrier(systemd);

    let sender = connect(&path);
    sender.set_nonblocking(true).expect("non-blocking");
    for i in 0..10_000 {
        let payload = format!("X_SEQ={i}");
        loop {
            match sender.send(payload.as_bytes()) {
                Ok(_) => break,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {
                    let timeout = Timespec::try_from(HANG_GUARD).expect("timespec");
                    let mut fds = [PollFd::new(&sender, PollFlags::OUT)];
                    let n = rustix::event::poll(&mut fds, Some(&timeout)).expect("poll");
                    assert_eq!(
                        n, 1,
                        "sender blocked at datagram {i}: the relay stopped draining"
                    );
                }
                Err(e) => panic!("send {i}: {e}"),
            }
        }
    }
    init.stop();
    let summary = relay.join().expect("relay thread").expect("run");
    let seen = host.join().expect("host thread");
    assert_eq!(seen.len(), 10_000);
    for (i, payload) in seen.iter().enumerate() {
        assert_eq!(payload, &format!("X_SEQ={i}"));
    }
    assert_eq!(
        (summary.received, summary.forwarded, summary.dropped),
        (10_000, 10_000, 0)
    );
    assert_eq!(summary.final_barrier, Some(true));
}

#[test]
fn last_words_before_exit_are_drained_then_a_final_barrier_is_sent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let systemd = fake_systemd();
    let init = Init::spawn();
    let ready = Arc::new(AtomicUsize::new(0));
    let relay = spawn_run(&path, Some(&systemd), &init, ready.clone());
    let host = collect_until_barrier(systemd);
    let sender = connect(&path);
    let sent = [
        "STATUS=up\nREADY=1",
        "FOO=dropped",
        "STOPPING=1",
        "STATUS=bye\nERRNO=3",
    ];
    for payload in sent {
        sender.send(payload.as_bytes()).expect("send");
    }
    init.stop();
    let summary = relay.join().expect("relay thread").expect("run");
    assert_eq!(
        host.join().expect("host"),
        ["STATUS=up\nREADY=1", "STOPPING=1", "STATUS=bye\nERRNO=3"]
    );
    assert_eq!(
        (summary.received, summary.forwarded, summary.dropped),
        (4, 3, 1)
    );
    assert!(summary.ready);
    assert_eq!(ready.load(Ordering::SeqCst), 1);
    assert_eq!(summary.final_barrier, Some(true));
}

#[test]
fn without_upstream_the_container_is_still_drained() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let init = Init::spawn();
    let relay = spawn_run(&path, None, &init, Arc::default());
    let sender = connect(&path);
    // Blocking sends, far more than the kernel queues (net.unix.max_dgram_qlen).
    for i in 0..200 {
        sender
            .send(format!("STATUS={i}").as_bytes())
            .expect("never blocks for good");
    }
    init.stop();
    let summary = relay.join().expect("relay thread").expect("run");
    assert_eq!(
        (summary.received, summary.forwarded, summary.unsent),
        (200, 0, 200)
    );
    assert_eq!(summary.final_barrier, None);
}

#[test]
fn bind_failures_leave_nothing_behind() {
    let dir = tempfile::tempdir().expect("tempdir");
    for name in ["", ".", "..", "a/b"] {
        let dirfd = std::fs::File::open(dir.path()).expect("open dir");
        assert!(
            matches!(
                Listener::bind_in(&dirfd, name),
                Err(RelayError::Address { .. })
            ),
            "{name:?}"
        );
    }
    let taken = dir.path().join("taken");
    std::fs::write(&taken, "keep me").expect("write");
    let error = Listener::bind(&taken).expect_err("name in use");
    assert_eq!(
        error.raw_os_error(),
        Some(rustix::io::Errno::ADDRINUSE.raw_os_error())
    );
    assert_eq!(std::fs::read_to_string(&taken).expect("read"), "keep me");
    assert!(Listener::bind(&dir.path().join("missing/notify.sock")).is_err());
    let names: Vec<_> = std::fs::read_dir(dir.path())
        .expect("ls")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(names, ["taken"]);
}

#[test]
fn listener_fd_polls_readable_when_a_datagram_waits() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let mut listener = Listener::bind(&path).expect("bind");
    assert!(!readable(listener.as_fd(), std::time::Duration::ZERO));
    connect(&path).send(b"READY=1").expect("send");
    assert!(readable(listener.as_fd(), HANG_GUARD));
    assert!(matches!(
        listener.recv(),
        Ok(notify_relay::Recv::Datagram(_))
    ));
    assert!(matches!(
        listener.recv(),
        Ok(notify_relay::Recv::WouldBlock)
    ));
}

/// Sends `payload` without blocking, polling for room (bounded by HANG_GUARD): a relay that
/// stops draining fails the test instead of hanging it.
fn send_polling(sender: &UnixDatagram, payload: &str) {
    loop {
        match sender.send(payload.as_bytes()) {
            Ok(_) => return,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                let timeout = Timespec::try_from(HANG_GUARD).expect("timespec");
                let mut fds = [PollFd::new(sender, PollFlags::OUT)];
                let n = rustix::event::poll(&mut fds, Some(&timeout)).expect("poll");
                assert_eq!(
                    n, 1,
                    "sender blocked at {payload}: the relay stopped draining"
                );
            }
            Err(e) => panic!("send {payload}: {e}"),
        }
    }
}

#[test]
fn stuck_manager_backlog_is_bounded_keeps_ready_and_forwards_when_it_reads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let systemd = fake_systemd(); // does not read until the sender is done
    let init = Init::spawn();
    let relay = spawn_run(&path, Some(&systemd), &init, Arc::default());
    let sender = connect(&path);
    sender.set_nonblocking(true).expect("non-blocking");
    send_polling(&sender, "READY=1");
    let total = notify_relay::socket::BACKLOG_MAX * 3;
    for i in 0..total {
        send_polling(&sender, &format!("X_SEQ={i}"));
    }
    // Every datagram was taken off the container's socket although the manager read nothing.
    let host = collect_until_barrier(systemd);
    init.stop();
    let summary = relay.join().expect("relay thread").expect("run");
    let seen = host.join().expect("host thread");
    assert!(
        seen.iter().any(|p| p == "READY=1"),
        "READY=1 is never dropped"
    );
    assert_eq!(summary.received, total + 1);
    assert!(
        seen.len() < total + 1,
        "the stuck manager's backlog is bounded: some datagrams dropped"
    );
    let seqs: Vec<usize> = seen
        .iter()
        .filter_map(|p| p.strip_prefix("X_SEQ=")?.parse().ok())
        .collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "order kept");
    assert_eq!(
        seqs.last(),
        Some(&(total - 1)),
        "the newest datagrams are kept"
    );
}
