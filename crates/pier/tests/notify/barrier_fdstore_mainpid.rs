//! Issue 3, point 4. Barrier, fd store, MAINPID, access.

use crate::notify_support;
use crate::notify_support::pier::Pier;
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::FakeSystemd;
use crate::notify_support::HANG_GUARD;
use crate::support::Bundle;

#[test]
fn container_barrier_completes_only_after_the_host_read_earlier_messages() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify(r#"sd-notify-send -B "STATUS=before barrier""#);
    let (mut child, _) = spawn_run(&pier, &bundle, systemd.notify_socket(), "barrier", &[]);
    assert!(
        systemd.wait_readable(notify_support::HANG_GUARD),
        "nothing forwarded\n{}",
        pier.log()
    );
    // A slow manager: the relay must not acknowledge the barrier on systemd's behalf.
    std::thread::sleep(std::time::Duration::from_millis(500));
    let first = systemd.recv();
    let read_at = now_ns();
    assert_eq!(first.payload, "STATUS=before barrier");
    let barrier = systemd.recv(); // its fd is closed here, as systemd does
    assert_eq!(
        (barrier.payload.as_str(), barrier.fd_count),
        ("BARRIER=1", 1),
        "the container's barrier"
    );
    let ack = systemd.recv_payload();
    let acked_at: u128 = ack
        .strip_prefix("X_BARRIER_ACK_NS=")
        .unwrap_or_else(|| panic!("sender's barrier did not complete: {ack}"))
        .parse()
        .expect("ns");
    assert!(
        acked_at >= read_at,
        "barrier completed {} ms before the host read the message",
        (read_at - acked_at) / 1_000_000
    );
    let (status, _) = pier.serve_until_exit(&mut child, &systemd);
    assert_ok(status, &pier);
}

#[test]
fn container_barrier_does_not_hang_when_the_host_socket_is_unreachable() {
    let missing = tempfile::tempdir().expect("tempdir");
    let socket = path_str(&missing.path().join("no-such-dir/notify"));
    let pier = Pier::new();
    // The sender exits 4 if its barrier is not acknowledged within 5 s.
    let bundle = Bundle::notify("sd-notify-send -B READY=1 || exit $?; exit 7");
    let (mut child, _) = spawn_run(&pier, &bundle, &socket, "unreachbarrier", &[]);
    let status = pier.wait(&mut child, HANG_GUARD);
    assert_eq!(
        status.code(),
        Some(7),
        "the container's barrier must complete\n{}",
        pier.log()
    );
}

#[test]
fn fdstore_datagram_arrives_with_its_fd() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify(r#"sd-notify-send -F "FDSTORE=1\nFDNAME=mypipe""#);
    let (status, got) = run_foreground(&pier, &bundle, &systemd, "fdstore");
    assert_ok(status, &pier);
    let (store, ino) = (&got[0], &got[1]);
    assert_eq!(store.payload, "FDSTORE=1\nFDNAME=mypipe");
    assert_eq!(
        store.fds.len(),
        1,
        "FDSTORE=1 must carry exactly the container's fd"
    );
    let ino: u64 = ino
        .payload
        .strip_prefix("X_FD_INO=")
        .expect("X_FD_INO")
        .parse()
        .expect("inode");
    let stat = rustix::fs::fstat(&store.fds[0]).expect("fstat");
    assert_eq!(
        rustix::fs::FileType::from_raw_mode(stat.st_mode),
        rustix::fs::FileType::Fifo
    );
    assert_eq!(stat.st_ino, ino, "the fd is not the container's pipe");
}

#[test]
fn fdstore_annotation_false_drops_fd_store_keys_and_fds() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let mut bundle = Bundle::notify(r#"sd-notify-send -F "FDSTORE=1\nFDNAME=mypipe\nX_TAG=1""#);
    bundle.annotate("org.pier.notify.fdstore", "false");
    let (status, got) = run_foreground(&pier, &bundle, &systemd, "nofdstore");
    assert_ok(status, &pier);
    assert_eq!((got[0].payload.as_str(), got[0].fd_count), ("X_TAG=1", 0));
}

#[test]
fn mainpid_of_the_init_is_translated_and_a_foreign_one_dropped() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let pid_file = pier.dir().join("init.pid");
    let bundle = Bundle::notify(
        r#"sleep 1000 & other=$!
           sd-notify-send "MAINPID=1\nX_TAG=init" "MAINPID=$other\nX_TAG=other"; kill $other"#,
    );
    let (mut child, _) = spawn_run(
        &pier,
        &bundle,
        systemd.notify_socket(),
        "mainpid",
        &["--pid-file", &path_str(&pid_file)],
    );
    let (status, got) = pier.serve_until_exit(&mut child, &systemd);
    assert_ok(status, &pier);
    let init = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(
        payloads(&got),
        [
            format!("MAINPID={init}\nX_TAG=init"),
            "X_TAG=other".to_string()
        ]
    );
}

#[test]
fn access_init_annotation_drops_other_senders() {
    let script = "sd-notify-send X_FROM=child; exec sd-notify-send X_FROM=init";
    let got = relayed("accessinit", script, |b| {
        b.annotate("org.pier.notify.access", "init");
    });
    assert_eq!(got, ["X_FROM=init"]);
}
