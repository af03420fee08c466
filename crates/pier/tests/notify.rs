//! pier's sd_notify relay end to end, as root: busybox-static containers run by the real pier
//! binary with `NOTIFY_SOCKET` pointing at a fake systemd (`notify_support::systemd`), checked
//! against design §4 (container side, forwarding, identity, waiting).
//!
//! Every wait is bounded by `HANG_GUARD` and ends on a datagram or a process exit.

mod notify_support;

use std::process::Stdio;
use std::time::Duration;

use notify_support::bundle::{Bundle, Gate};
use notify_support::pier::Pier;
use notify_support::scenario::*;
use notify_support::systemd::{FakeSystemd, Got};
use notify_support::HANG_GUARD;

// ---- 1. The container side -----------------------------------------------------------------

#[test]
fn socket_inside_is_run_notify_notify_sock_on_a_read_only_mount() {
    let script = r#"sd-notify-send "X_SOCKET=$NOTIFY_SOCKET" \
        "X_IS_SOCKET=$([ -S /run/notify/notify.sock ] && echo yes || echo no)" \
        "X_DIR_WRITABLE=$(touch /run/notify/probe 2>/dev/null && echo yes || echo no)""#;
    let got = relayed("path", script, |_| {});
    assert_eq!(
        got,
        [
            "X_SOCKET=/run/notify/notify.sock",
            "X_IS_SOCKET=yes",
            "X_DIR_WRITABLE=no"
        ]
    );
}

#[test]
fn non_root_container_user_can_notify() {
    let got = relayed("uid", r#"sd-notify-send "X_UID=$(id -u)""#, |b| {
        b.set_user(1000, 1000)
    });
    assert_eq!(got, ["X_UID=1000"]);
}

#[test]
fn state_root_beyond_sun_path_still_relays() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::with_root_len(120);
    let id = format!("nt-longroot-{}", std::process::id());
    let socket = pier.root().join(&id).join("notify/notify.sock");
    assert!(
        socket.as_os_str().len() > 108,
        "{} is not longer than sun_path",
        socket.display()
    );
    let bundle = Bundle::new("sd-notify-send X_LONG_ROOT=1");
    let (status, got) = run_foreground(&pier, &bundle, &systemd, "longroot");
    assert_ok(status, &pier);
    assert_eq!(payloads(&got), ["X_LONG_ROOT=1"]);
}

#[test]
fn read_only_rootfs_without_run_tmpfs_fails_create_and_leaves_nothing() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let id = pier.id("rofail");
    let mut bundle = Bundle::new("sd-notify-send X_NEVER=1");
    bundle.set_readonly(true);
    bundle.set_cgroups_path(&format!("/{id}"));
    let status = pier.status(
        Some(systemd.notify_socket()),
        &["create", "--bundle", &path_str(bundle.path()), &id],
    );
    let log = pier.log();
    assert!(
        !status.success(),
        "create succeeded on a read-only rootfs without /run/notify\n{log}"
    );
    assert!(
        log.contains("/run/notify") && log.contains("tmpfs"),
        "unclear error:\n{log}"
    );
    assert!(
        !pier.root().join(&id).exists(),
        "state directory left behind"
    );
    assert!(
        !bundle.rootfs().join("run/notify").exists(),
        "wrote into the read-only rootfs"
    );
    let root = path_str(pier.root());
    assert_eq!(
        notify_support::pier::processes_mentioning(&root),
        Vec::<i32>::new(),
        "processes left behind"
    );
    assert_no_cgroup(&id);
    assert!(
        !pier.status(None, &["state", &id]).success(),
        "state still knows {id}"
    );
}

#[test]
fn read_only_rootfs_with_run_tmpfs_relays() {
    let mut rootfs = None;
    let got = relayed("rotmpfs", "sd-notify-send X_READ_ONLY_ROOT=1", |b| {
        b.set_readonly(true);
        b.add_tmpfs("/run");
        rootfs = Some(b.rootfs());
    });
    assert_eq!(got, ["X_READ_ONLY_ROOT=1"]);
    assert!(
        !rootfs.expect("rootfs").join("run/notify").exists(),
        "wrote into the read-only rootfs"
    );
}

#[test]
fn read_only_rootfs_with_run_notify_in_the_image_relays() {
    let got = relayed("roimage", "sd-notify-send X_IMAGE_HAS_RUN_NOTIFY=1", |b| {
        std::fs::create_dir(b.rootfs().join("run/notify")).expect("mkdir run/notify");
        b.set_readonly(true);
    });
    assert_eq!(got, ["X_IMAGE_HAS_RUN_NOTIFY=1"]);
}

// ---- 2. The host side ----------------------------------------------------------------------

#[test]
fn host_socket_as_absolute_path() {
    let systemd = FakeSystemd::bind_path();
    assert!(systemd.notify_socket().starts_with('/'));
    assert_eq!(
        relayed_via(&systemd, "hostpath", "sd-notify-send X_VIA=path", |_| {}),
        ["X_VIA=path"]
    );
}

#[test]
fn host_socket_as_abstract_name() {
    let systemd = FakeSystemd::bind_abstract("abstract");
    assert!(systemd.notify_socket().starts_with('@'));
    assert_eq!(
        relayed_via(
            &systemd,
            "abstract",
            "sd-notify-send X_VIA=abstract",
            |_| {}
        ),
        ["X_VIA=abstract"]
    );
}

#[test]
fn host_socket_path_beyond_sun_path() {
    let systemd = FakeSystemd::bind_long_path(150);
    assert!(systemd.notify_socket().len() > 108);
    assert_eq!(
        relayed_via(&systemd, "hostlong", "sd-notify-send X_VIA=long", |_| {}),
        ["X_VIA=long"]
    );
}

#[test]
fn unreachable_host_socket_does_not_fail_the_container() {
    let missing = tempfile::tempdir().expect("tempdir");
    let socket = path_str(&missing.path().join("no-such-dir/notify"));
    let pier = Pier::new();
    // The send inside must still succeed (exit 7, not 99): the container's socket exists.
    let bundle = Bundle::new("sd-notify-send READY=1 STATUS=unheard || exit 99; exit 7");
    let (mut child, _) = spawn_run(&pier, &bundle, &socket, "unreach", &[]);
    let status = pier.wait(&mut child, notify_support::HANG_GUARD);
    assert_eq!(
        status.code(),
        Some(7),
        "foreground run must exit with the container's status\n{}",
        pier.log()
    );
}

#[test]
fn unreachable_host_socket_run_detached_still_sees_ready() {
    let missing = tempfile::tempdir().expect("tempdir");
    let socket = path_str(&missing.path().join("no-such-dir/notify"));
    let pier = Pier::new();
    let bundle = Bundle::new("sd-notify-send READY=1 || exit 99; read _ < /tmp/gate");
    let _gate = bundle.gate("gate");
    let (mut child, _) = spawn_run(&pier, &bundle, &socket, "unreachd", &["-d"]);
    let status = pier.wait(&mut child, notify_support::HANG_GUARD);
    assert_ok(status, &pier);
}

// ---- 3. Fidelity ---------------------------------------------------------------------------

#[test]
fn one_datagram_in_is_one_out_in_order() {
    let sent = [
        "STATUS=one",
        r"STATUS=two\nX_PART=2",
        r"STATUS=three\nRELOADING=1\nMONOTONIC_USEC=123",
        "WATCHDOG=1",
        "STATUS=four",
    ];
    let script = format!("sd-notify-send '{}'", sent.join("' '"));
    let want: Vec<String> = sent.iter().map(|m| m.replace(r"\n", "\n")).collect();
    assert_eq!(relayed("order", &script, |_| {}), want);
}

/// `run -d` with a container whose first datagram is `first`, then blocks: run -d must
/// return 0 (it saw READY) and forward `first` with `MAINPID=<init>` in front.
fn assert_ready_detected(tag: &str, first: &str) {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new(&format!("sd-notify-send '{first}' && read _ < /tmp/gate"));
    let _gate = bundle.gate("gate");
    let run = run_detached(&pier, &bundle, &systemd, tag, &[]);
    assert_ok(run.status, &pier);
    let init = pier.state_pid(&run.id);
    assert_eq!(
        payloads(&run.got)[0],
        format!("MAINPID={init}\n{}", first.replace("\\n", "\n"))
    );
}

#[test]
fn ready_after_status_in_one_datagram_counts() {
    assert_ready_detected("readystatus", r"STATUS=warming up\nREADY=1");
}

#[test]
fn ready_after_600_bytes_of_status_counts() {
    assert_ready_detected("ready600", &format!(r"STATUS={}\nREADY=1", "s".repeat(600)));
}

#[test]
fn oversized_datagram_is_dropped_and_later_ones_arrive() {
    let script = format!(
        "sd-notify-send STATUS=before X_BIG={} STATUS=after",
        "b".repeat(5000)
    );
    assert_eq!(
        relayed("big", &script, |_| {}),
        ["STATUS=before", "STATUS=after"]
    );
}

#[test]
fn notifyaccess_is_dropped() {
    let script = r#"sd-notify-send NOTIFYACCESS=all "NOTIFYACCESS=all\nSTATUS=kept" STATUS=end"#;
    assert_eq!(
        relayed("notifyaccess", script, |_| {}),
        ["STATUS=kept", "STATUS=end"]
    );
}

#[test]
fn extension_keys_are_forwarded() {
    let script = r#"sd-notify-send X_FOO=bar "X_FOO=baz\nX_OTHER=1""#;
    assert_eq!(
        relayed("xfoo", script, |_| {}),
        ["X_FOO=bar", "X_FOO=baz\nX_OTHER=1"]
    );
}

// ---- 4. Barrier, fd store, MAINPID, access -------------------------------------------------

#[test]
fn container_barrier_completes_only_after_the_host_read_earlier_messages() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new(r#"sd-notify-send -B "STATUS=before barrier""#);
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
    // The sender exits 4 if its barrier is not acknowledged within 10 s.
    let bundle = Bundle::new("sd-notify-send -B READY=1 || exit $?; exit 7");
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
    let bundle = Bundle::new(r#"sd-notify-send -F "FDSTORE=1\nFDNAME=mypipe""#);
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
    let mut bundle = Bundle::new(r#"sd-notify-send -F "FDSTORE=1\nFDNAME=mypipe\nX_TAG=1""#);
    bundle.annotate("org.pier.notify.fdstore", "false");
    let (status, got) = run_foreground(&pier, &bundle, &systemd, "nofdstore");
    assert_ok(status, &pier);
    assert_eq!((got[0].payload.as_str(), got[0].fd_count), ("X_TAG=1", 0));
}

#[test]
fn mainpid_of_the_init_is_translated_and_a_foreign_one_dropped() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let pid_file = pier.root().with_file_name("init.pid");
    let bundle = Bundle::new(
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
        b.annotate("org.pier.notify.access", "init")
    });
    assert_eq!(got, ["X_FROM=init"]);
}

// ---- 5. Identity ---------------------------------------------------------------------------

#[test]
fn foreground_run_forwards_as_pier_itself() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new("sd-notify-send READY=1 STATUS=fg X_LAST=1");
    let (mut child, _) = spawn_run(&pier, &bundle, systemd.notify_socket(), "fgid", &[]);
    let pier_pid = child.id() as i32;
    let (status, got) = pier.serve_until_exit(&mut child, &systemd);
    assert_ok(status, &pier);
    assert_eq!(
        payloads(&got),
        ["READY=1", "STATUS=fg", "X_LAST=1"],
        "no MAINPID= in the foreground"
    );
    for g in &got {
        assert_eq!((g.pid, g.uid), (pier_pid, 0), "sender of {:?}", g.payload);
    }
}

/// The container script of the detached identity tests: READY, then (after the gate) a
/// STATUS and a MAINPID the relay must drop, then it waits to be deleted.
const DETACHED_IDENTITY: &str = r#"sd-notify-send READY=1 && read _ < /tmp/gate &&
    sd-notify-send STATUS=after "MAINPID=1\nX_TAG=late" && exec sleep 1000"#;

/// After a detached start by the pier process `announcer`: the first READY carries
/// `MAINPID=<init>` and is sent by `announcer` (systemd's current main pid, the only sender
/// `NotifyAccess=main` accepts until it learns the new one); every later datagram, relayed by
/// the detached relay, is sent with the init's pid.
fn assert_sent_as_init(pier: &Pier, systemd: &FakeSystemd, run: Detached, gate: &mut Gate) {
    let init = pier.state_pid(&run.id);
    let mut got = run.got.into_iter().filter(|g| g.payload != "BARRIER=1");
    let ready = got.next().expect("READY forwarded before start returned");
    assert_eq!(ready.payload, format!("MAINPID={init}\nREADY=1"));
    assert_eq!(
        ready.pid, run.pid,
        "SCM_CREDENTIALS pid of the MAINPID announcement"
    );
    gate.open();
    let mut later: Vec<Got> = got.collect();
    while later.len() < 2 {
        let g = systemd.recv();
        if g.payload != "BARRIER=1" {
            later.push(g);
        }
    }
    let texts: Vec<&str> = later.iter().map(|g| g.payload.as_str()).collect();
    assert_eq!(
        texts,
        ["STATUS=after", "X_TAG=late"],
        "MAINPID from the container is dropped when detached"
    );
    for g in &later {
        assert_eq!(
            g.pid, init,
            "SCM_CREDENTIALS pid of {:?} from the detached relay",
            g.payload
        );
    }
}

#[test]
fn run_detached_announces_mainpid_and_sends_as_the_init() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new(DETACHED_IDENTITY);
    let mut gate = bundle.gate("gate");
    let run = run_detached(&pier, &bundle, &systemd, "runid", &[]);
    assert_ok(run.status, &pier);
    assert_sent_as_init(&pier, &systemd, run, &mut gate);
}

#[test]
fn create_start_announces_mainpid_and_sends_as_the_init() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new(DETACHED_IDENTITY);
    let mut gate = bundle.gate("gate");
    let id = pier.id("startid");
    let socket = Some(systemd.notify_socket());
    let created = pier.status(
        socket,
        &["create", "--bundle", &path_str(bundle.path()), &id],
    );
    assert_ok(created, &pier);
    let mut start = pier.spawn(socket, &["start", &id]);
    let pid = start.id() as i32;
    let (status, got) = pier.serve_until_exit(&mut start, &systemd);
    assert_ok(status, &pier);
    assert_sent_as_init(
        &pier,
        &systemd,
        Detached {
            status,
            pid,
            id,
            got,
        },
        &mut gate,
    );
}

#[test]
fn relay_is_main_without_waiting_announces_the_detached_relay() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let mut bundle = Bundle::new("read _ < /tmp/gate && sd-notify-send READY=1; exec sleep 1000");
    bundle.annotate("org.pier.notify.identity", "relay-is-main");
    let mut gate = bundle.gate("gate");
    let run = run_detached(
        &pier,
        &bundle,
        &systemd,
        "relaymain",
        &["--notify-wait", "none"],
    );
    assert_ok(run.status, &pier);
    let relay = detached_relay(&pier, pier.state_pid(&run.id));
    gate.open();
    let ready = systemd.recv();
    assert_eq!(ready.pid, relay, "the detached relay forwards as itself");
    assert_eq!(
        ready.payload,
        format!("MAINPID={relay}\nREADY=1"),
        "MAINPID must name the live relay, not pier run ({})",
        run.pid
    );
}

#[test]
fn relay_is_main_after_ready_names_the_process_that_keeps_relaying() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let mut bundle = Bundle::new(
        "sd-notify-send READY=1 && read _ < /tmp/gate && sd-notify-send STATUS=later; exec sleep 1000",
    );
    bundle.annotate("org.pier.notify.identity", "relay-is-main");
    let mut gate = bundle.gate("gate");
    let run = run_detached(&pier, &bundle, &systemd, "relaymainready", &[]);
    assert_ok(run.status, &pier);
    let relay = detached_relay(&pier, pier.state_pid(&run.id));
    gate.open();
    let mut got = run.got;
    while !got.iter().any(|g| g.payload == "STATUS=later") {
        got.push(systemd.recv());
    }
    // systemd's view: the last MAINPID= it was told must be the sender of what follows.
    let main_pid = got
        .iter()
        .rev()
        .find_map(|g| g.payload.lines().find_map(|l| l.strip_prefix("MAINPID=")));
    let later = got
        .iter()
        .find(|g| g.payload == "STATUS=later")
        .expect("STATUS=later");
    assert_eq!(later.pid, relay, "the detached relay forwards as itself");
    assert_eq!(
        main_pid,
        Some(relay.to_string().as_str()),
        "MAINPID still names `pier run -d` ({}), which has exited",
        run.pid
    );
}

// ---- 6. The container's whole life ---------------------------------------------------------

/// READY, then (after the gate) everything a long-lived service sends, then (after the
/// second gate, so the init is alive while those are relayed) exit. The container's stdio is
/// pointed away from pier's pipes first.
const WHOLE_LIFE: &str = r#"exec >/tmp/out.log 2>&1 </dev/null
    sd-notify-send READY=1 && read _ < /tmp/gate &&
    sd-notify-send -w 300 STATUS=s1 STATUS=s2 STATUS=s3 &&
    sd-notify-send -w 100 WATCHDOG=1 WATCHDOG=1 WATCHDOG=1 WATCHDOG=1 &&
    sd-notify-send "RELOADING=1\nMONOTONIC_USEC=1" READY=1 STOPPING=1 && read _ < /tmp/end"#;

#[test]
fn detached_relay_relays_the_whole_life_holds_no_pipe_and_exits_with_the_container() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new(WHOLE_LIFE);
    let (mut gate, mut end) = (bundle.gate("gate"), bundle.gate("end"));
    let id = pier.id("life");
    let args = ["run", "-d", "--bundle", &path_str(bundle.path()), &id];
    let mut cmd = pier.command(Some(systemd.notify_socket()), &args);
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn pier");
    let eof = eof_of(&mut child);
    let (status, got) = pier.serve_until_exit(&mut child, &systemd);
    assert_ok(status, &pier);
    let init = pier.state_pid(&id);
    assert_eq!(payloads(&got), [format!("MAINPID={init}\nREADY=1")]);
    let held = eof.recv_timeout(Duration::from_secs(5));
    assert!(
        held.is_ok(),
        "`run -d` exited but its stdout/stderr pipes stay open"
    );
    let relay_pid = detached_relay(&pier, init);
    let relay = notify_support::pier::pidfd_of(relay_pid);
    gate.open();
    let expected = [
        "STATUS=s1",
        "STATUS=s2",
        "STATUS=s3",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "WATCHDOG=1",
        "WATCHDOG=1",
    ];
    let expected =
        expected
            .iter()
            .copied()
            .chain(["RELOADING=1\nMONOTONIC_USEC=1", "READY=1", "STOPPING=1"]);
    for want in expected {
        let g = systemd
            .recv_within(HANG_GUARD)
            .unwrap_or_else(|| panic!("no {want:?}\n{}", pier.log()));
        assert_eq!(
            (g.payload.as_str(), g.pid),
            (want, init),
            "after `run -d` returned"
        );
    }
    assert_relay_fds(relay_pid);
    end.open();
    let last = systemd.recv_within(HANG_GUARD).unwrap_or_else(|| {
        let out = std::fs::read_to_string(bundle.rootfs().join("tmp/out.log")).unwrap_or_default();
        panic!("no final barrier\n{}\n--- container ---\n{out}", pier.log())
    });
    assert_eq!(
        (last.payload.as_str(), last.fd_count),
        ("BARRIER=1", 1),
        "the relay's final barrier"
    );
    let exited = notify_support::pier::wait_fd(&relay, HANG_GUARD);
    assert!(exited, "the detached relay outlived the container");
}

// ---- 7. Never hang -------------------------------------------------------------------------

#[test]
fn run_detached_returns_the_status_of_an_init_that_exits_before_ready() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new("sd-notify-send STATUS=failing; exit 3");
    let run = run_detached(&pier, &bundle, &systemd, "early", &[]);
    assert_eq!(
        run.status.code(),
        Some(3),
        "run -d must fail with the container's status\n{}",
        pier.log()
    );
    assert_eq!(
        payloads(&run.got),
        ["STATUS=failing"],
        "what came before the exit is still relayed"
    );
}

#[test]
fn start_fails_when_the_init_exits_before_ready() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new("sd-notify-send STATUS=failing; exit 3");
    let id = pier.id("earlystart");
    let socket = Some(systemd.notify_socket());
    assert_ok(
        pier.status(
            socket,
            &["create", "--bundle", &path_str(bundle.path()), &id],
        ),
        &pier,
    );
    let mut start = pier.spawn(socket, &["start", &id]);
    let (status, got) = pier.serve_until_exit(&mut start, &systemd);
    assert!(
        !status.success(),
        "start returned 0 for a container that exited before READY"
    );
    assert_eq!(payloads(&got), ["STATUS=failing"]);
}

#[test]
fn notify_wait_seconds_gives_up_and_leaves_a_relay() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new("sd-notify-send STATUS=slow && read _ < /tmp/gate && sd-notify-send X_AFTER=1; exec sleep 1000");
    let mut gate = bundle.gate("gate");
    let began = std::time::Instant::now();
    let run = run_detached(
        &pier,
        &bundle,
        &systemd,
        "wait05",
        &["--notify-wait", "0.5"],
    );
    let waited = began.elapsed();
    assert_ok(run.status, &pier);
    assert!(
        waited >= Duration::from_millis(500),
        "returned after {waited:?}, before the 0.5 s wait"
    );
    assert!(
        pier.log().contains("no READY=1 in time"),
        "no timeout warning:\n{}",
        pier.log()
    );
    assert_eq!(payloads(&run.got), ["STATUS=slow"]);
    // No READY, so no MAINPID was announced: the detached relay forwards as itself.
    let relay = detached_relay(&pier, pier.state_pid(&run.id));
    gate.open();
    let after = systemd.recv();
    assert_eq!(
        (after.payload.as_str(), after.pid),
        ("X_AFTER=1", relay),
        "relayed after the timeout"
    );
}

/// `run -d` with `extra` must return while the container is still blocked before its READY,
/// and its READY must then be relayed with the MAINPID announcement.
fn assert_returns_without_waiting(tag: &str, extra: &[&str], annotation: Option<&str>) {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let mut bundle = Bundle::new("read _ < /tmp/gate && sd-notify-send READY=1; exec sleep 1000");
    if let Some(value) = annotation {
        bundle.annotate("org.pier.notify.wait", value);
    }
    let mut gate = bundle.gate("gate");
    let run = run_detached(&pier, &bundle, &systemd, tag, extra);
    assert_ok(run.status, &pier);
    assert_eq!(payloads(&run.got), Vec::<String>::new());
    let init = pier.state_pid(&run.id);
    gate.open();
    assert_eq!(systemd.recv_payload(), format!("MAINPID={init}\nREADY=1"));
}

#[test]
fn notify_wait_none_returns_at_once() {
    assert_returns_without_waiting("waitnone", &["--notify-wait", "none"], None);
}

#[test]
fn notify_wait_annotation_none_returns_at_once() {
    assert_returns_without_waiting("waitannot", &[], Some("none"));
}

#[test]
fn foreground_run_forwards_sigterm_while_waiting_for_ready() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new("trap 'exit 0' TERM; sd-notify-send X_TRAP_SET=1; sleep 1000 & wait");
    let (mut child, _) = spawn_run(&pier, &bundle, systemd.notify_socket(), "sigterm", &[]);
    assert_eq!(systemd.recv_payload(), "X_TRAP_SET=1");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM pier");
    let (status, _) = pier.serve_until_exit(&mut child, &systemd);
    assert_eq!(
        status.code(),
        Some(0),
        "the container's trap exits 0\n{}",
        pier.log()
    );
}

#[test]
fn run_detached_forwards_sigterm_while_waiting_for_ready() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new(
        "trap 'sd-notify-send X_GOT_TERM=1; exit 0' TERM; sd-notify-send X_TRAP_SET=1; sleep 1000 & wait",
    );
    let (mut child, _) = spawn_run(&pier, &bundle, systemd.notify_socket(), "sigtermd", &["-d"]);
    assert_eq!(systemd.recv_payload(), "X_TRAP_SET=1");
    let pid = rustix::process::Pid::from_raw(child.id() as i32).expect("pid");
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).expect("SIGTERM pier");
    let (status, got) = pier.serve_until_exit(&mut child, &systemd);
    assert_eq!(
        payloads(&got),
        ["X_GOT_TERM=1"],
        "the container got the SIGTERM"
    );
    assert!(
        !status.success(),
        "exited before READY: run -d must fail, even with status 0"
    );
}

#[test]
fn burst_of_10000_nonblocking_datagrams_arrives_in_order() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new("sd-notify-send -N -n 10000 X_SEQ=");
    let (status, got) = run_foreground(&pier, &bundle, &systemd, "burst");
    assert_ok(status, &pier);
    let got = payloads(&got);
    let eagain = got
        .last()
        .and_then(|p| p.strip_prefix("X_EAGAIN="))
        .expect("sender finished")
        .to_owned();
    eprintln!("burst: the sender retried {eagain} sends after EAGAIN");
    let want: Vec<String> = (0..10_000).map(|i| format!("X_SEQ={i}")).collect();
    assert_eq!(got.len() - 1, want.len(), "datagrams lost");
    let first_wrong = got.iter().zip(&want).position(|(g, w)| g != w);
    assert_eq!(first_wrong, None, "order broken");
}

// ---- 8. Watchdog ---------------------------------------------------------------------------

/// What the container sees of the watchdog when pier runs with `env` (and, with
/// `pid_is_pier`, `WATCHDOG_PID=<pier's pid>`, as systemd sets it for its main process).
fn watchdog_seen(env: &[(&str, &str)], pid_is_pier: bool) -> Vec<String> {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::new(
        r#"sd-notify-send "X_USEC=${WATCHDOG_USEC-unset}" "X_PID=${WATCHDOG_PID-unset}""#,
    );
    let id = pier.id("watchdog");
    let pier_cmd = pier.command(
        Some(systemd.notify_socket()),
        &["run", "--bundle", &path_str(bundle.path()), &id],
    );
    // sh execs pier, so $$ is pier's pid.
    let mut cmd = std::process::Command::new("/bin/sh");
    let set_pid = if pid_is_pier { "WATCHDOG_PID=$$ " } else { "" };
    cmd.args(["-c", &format!(r#"{set_pid}exec "$0" "$@""#)])
        .arg(pier_cmd.get_program())
        .args(pier_cmd.get_args());
    cmd.env_remove("WATCHDOG_PID")
        .env_remove("WATCHDOG_USEC")
        .env("NOTIFY_SOCKET", systemd.notify_socket());
    cmd.envs(env.iter().copied());
    let mut child = cmd.spawn().expect("spawn sh exec pier");
    let (status, got) = pier.serve_until_exit(&mut child, &systemd);
    assert_ok(status, &pier);
    payloads(&got)
}

#[test]
fn watchdog_usec_reaches_the_container_and_watchdog_pid_does_not() {
    let env = [("WATCHDOG_USEC", "2000000")];
    assert_eq!(
        watchdog_seen(&env, true),
        ["X_USEC=2000000", "X_PID=unset"],
        "WATCHDOG_PID=<pier>"
    );
    assert_eq!(
        watchdog_seen(&env, false),
        ["X_USEC=2000000", "X_PID=unset"],
        "no WATCHDOG_PID"
    );
}

#[test]
fn watchdog_meant_for_another_process_is_not_passed_on() {
    let env = [("WATCHDOG_USEC", "2000000"), ("WATCHDOG_PID", "1")];
    assert_eq!(watchdog_seen(&env, false), ["X_USEC=unset", "X_PID=unset"]);
}

// ---- 9. Bad input --------------------------------------------------------------------------

/// `pier run -d` with bad notify settings fails naming the setting and leaves nothing.
fn assert_rejected(tag: &str, extra: &[&str], annotation: Option<(&str, &str)>, named: &str) {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let mut bundle = Bundle::new("sd-notify-send READY=1; exec sleep 1000");
    if let Some((key, value)) = annotation {
        bundle.annotate(key, value);
    }
    bundle.set_cgroups_path(&format!("/{}", pier.id(tag)));
    let (mut child, id) = spawn_run(
        &pier,
        &bundle,
        systemd.notify_socket(),
        tag,
        &[&["-d"], extra].concat(),
    );
    let (status, got) = pier.serve_until_exit(&mut child, &systemd);
    let log = pier.log();
    assert!(!status.success(), "{tag}: accepted\n{log}");
    assert!(
        log.contains(named),
        "{tag}: the error does not name {named}:\n{log}"
    );
    assert_eq!(
        payloads(&got),
        Vec::<String>::new(),
        "{tag}: relayed anyway"
    );
    assert!(!pier.root().join(&id).exists(), "{tag}: state left behind");
    let root = path_str(pier.root());
    assert_eq!(
        notify_support::pier::processes_mentioning(&root),
        Vec::<i32>::new(),
        "{tag}: processes left"
    );
    assert_no_cgroup(&id);
}

#[test]
fn bad_notify_settings_are_rejected_and_leave_nothing() {
    assert_rejected("badwait", &["--notify-wait", "soon"], None, "soon");
    assert_rejected(
        "badwaitann",
        &[],
        Some(("org.pier.notify.wait", "-1")),
        "-1",
    );
    assert_rejected(
        "badaccess",
        &[],
        Some(("org.pier.notify.access", "main")),
        "org.pier.notify.access",
    );
    assert_rejected(
        "badidentity",
        &[],
        Some(("org.pier.notify.identity", "x")),
        "org.pier.notify.identity",
    );
    assert_rejected(
        "badfdstore",
        &[],
        Some(("org.pier.notify.fdstore", "yes")),
        "org.pier.notify.fdstore",
    );
}
