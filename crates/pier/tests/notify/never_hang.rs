//! Issue 3, point 7. Never hang.

use std::time::Duration;

use crate::notify_support::pier::{pidfd_of, wait_fd, Pier};
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::FakeSystemd;
use crate::notify_support::HANG_GUARD;
use crate::support::Bundle;

#[test]
fn run_detached_returns_the_status_of_an_init_that_exits_before_ready() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify("sd-notify-send STATUS=failing; exit 3");
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

/// An init that exits at once after its READY=1 (a oneshot-like service): never an exit
/// "before READY=1", the READY relayed once, and `run -d` exits 0 (the manager acknowledged
/// the READY while the init ran) or 3, the init's status (it was gone by then). Many tries,
/// since the exit and the acknowledgement race.
#[test]
fn run_detached_with_an_init_that_exits_right_after_ready() {
    let pier = Pier::new();
    let bundle = Bundle::notify("sd-notify-send READY=1; exit 3");
    for n in 0..20 {
        let systemd = FakeSystemd::bind_path();
        let run = run_detached(&pier, &bundle, &systemd, &format!("readyexit{n}"), &[]);
        let ready = payloads(&run.got)
            .into_iter()
            .filter(|p| p.contains("READY=1"));
        assert_eq!(
            ready.count(),
            1,
            "try {n}: READY=1 relayed once: {:?}",
            run.got
        );
        assert!(
            matches!(run.status.code(), Some(0 | 3)),
            "try {n}: {:?}\n{}",
            run.status,
            pier.log()
        );
        assert!(
            !pier.log().contains("before READY"),
            "try {n}: an exit after READY=1 reported as before it:\n{}",
            pier.log()
        );
    }
}

/// The race of the test above, forced: the manager holds the READY's barrier until the init
/// (the announced MAINPID) has exited. systemd refuses a main pid that is a zombie when it
/// reads the datagram, so pier, still the main process then, must exit with the init's status.
#[test]
fn run_detached_exits_with_the_status_of_an_init_gone_before_its_ready_was_acknowledged() {
    let systemd = FakeSystemd::bind_path().keeping_barrier_fds();
    let pier = Pier::new();
    let bundle = Bundle::notify("sd-notify-send READY=1; exit 3");
    let (mut run, _id) = spawn_run(
        &pier,
        &bundle,
        systemd.notify_socket(),
        "readygone",
        &["-d"],
    );
    let ready = systemd.recv();
    let main_pid: i32 = ready
        .payload
        .lines()
        .find_map(|l| l.strip_prefix("MAINPID="))
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no MAINPID= with the READY: {ready:?}"));
    let barrier = systemd.recv();
    assert_eq!(barrier.payload, "BARRIER=1", "the READY's barrier");
    assert!(
        wait_fd(&pidfd_of(main_pid), HANG_GUARD),
        "the init did not exit"
    );
    drop(barrier); // the acknowledgement, now that the init is a zombie
    let (status, _) = pier.serve_until_exit(&mut run, &systemd);
    assert_eq!(status.code(), Some(3), "the init's status\n{}", pier.log());
    assert!(!pier.log().contains("before READY"), "{}", pier.log());
}

#[test]
fn start_fails_when_the_init_exits_before_ready() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify("sd-notify-send STATUS=failing; exit 3");
    let id = pier.id("earlystart");
    let socket = Some(systemd.notify_socket());
    assert_ok(
        pier.status(socket, &["create", "--bundle", bundle.save(), &id]),
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
    let bundle = Bundle::notify("sd-notify-send STATUS=slow && read _ < /tmp/gate && sd-notify-send X_AFTER=1; exec sleep 1000");
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
    let mut bundle =
        Bundle::notify("read _ < /tmp/gate && sd-notify-send READY=1; exec sleep 1000");
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
    let bundle =
        Bundle::notify("trap 'exit 0' TERM; sd-notify-send X_TRAP_SET=1; sleep 1000 & wait");
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
    let bundle = Bundle::notify(
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
    assert_eq!(
        status.code(),
        Some(0),
        "exited 0 before READY: run -d exits 0 too, so systemd judges it as it would the \
         uncontained service (Type=notify: Result=protocol; tests/systemd cases 5c/5d)"
    );
}

#[test]
fn burst_of_10000_nonblocking_datagrams_arrives_in_order() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify("sd-notify-send -N -n 10000 X_SEQ=");
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
