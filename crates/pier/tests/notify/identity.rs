//! Issue 3, point 5. Identity.

use crate::notify_support::pier::Pier;
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::{FakeSystemd, Got};
use crate::support::bundle::{Bundle, Gate};
use crate::support::{runner, unique_id, Runtime};

#[test]
fn foreground_run_forwards_as_pier_itself() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify("sd-notify-send READY=1 STATUS=fg X_LAST=1");
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
    let bundle = Bundle::notify(DETACHED_IDENTITY);
    let mut gate = bundle.gate("gate");
    let run = run_detached(&pier, &bundle, &systemd, "runid", &[]);
    assert_ok(run.status, &pier);
    assert_sent_as_init(&pier, &systemd, run, &mut gate);
}

#[test]
fn create_start_announces_mainpid_and_sends_as_the_init() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify(DETACHED_IDENTITY);
    let mut gate = bundle.gate("gate");
    let id = pier.id("startid");
    let socket = Some(systemd.notify_socket());
    let created = pier.status(socket, &["create", "--bundle", bundle.save(), &id]);
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
    let mut bundle =
        Bundle::notify("read _ < /tmp/gate && sd-notify-send READY=1; exec sleep 1000");
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
    let mut bundle = Bundle::notify(
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

/// Foreground `pier run` is the unit's main process and forwards as itself (docs/notify.md,
/// "relay" identity: "NotifyAccess=main works"). When the container announces its own pid
/// (`READY=1\nMAINPID=1`, as `systemd-notify --ready --pid` does), pier forwards
/// `MAINPID=<init's host pid>`, and from then on every datagram comes with that pid's
/// credentials: systemd makes the init the main pid and would reject anything else ("Got
/// notification message from PID <pier>, but reception only permitted for main PID <init>",
/// once seen with systemd 252 in tests/systemd: StatusText stayed at the READY datagram's).
#[test]
fn after_a_forwarded_mainpid_every_datagram_comes_from_that_pid() {
    let systemd = FakeSystemd::bind_path();
    let mut b = Bundle::new();
    b.install_sender();
    b.sh(r#"sd-notify-send "READY=1\nMAINPID=1" && sd-notify-send STATUS=later"#);
    let rt = Runtime::new();
    let mut cmd = rt.command(&["run", "--bundle", b.save(), &unique_id("fg-mainpid")]);
    cmd.env("NOTIFY_SOCKET", systemd.notify_socket());
    let pier = runner::spawn_command(cmd);

    let mut main_pid = None;
    loop {
        let Got {
            payload: text, pid, ..
        } = systemd.recv();
        if let Some(n) = text.lines().find_map(|l| l.strip_prefix("MAINPID=")) {
            main_pid = Some(n.parse::<i32>().unwrap());
        }
        if text == "STATUS=later" {
            if let Some(main) = main_pid {
                assert_eq!(pid, main, "STATUS=later was sent by {pid} after MAINPID={main}: systemd drops it under NotifyAccess=main");
            }
            break;
        }
    }
    pier.wait();
}

/// Issue 15: a container process that names itself as the main pid (`MAINPID=$$`), in a
/// foreground `run` whose manager takes `MAINPIDFD=1` (the annotation stands in for the 257+
/// detection): pier forwards `MAINPID=<its host pid>` with `MAINPIDFD=1` and a pidfd of that
/// very process (it received the datagram with its sender's pidfd), the pidfd alone.
#[test]
fn a_process_naming_itself_main_pid_goes_with_its_own_pidfd() {
    for (mainpidfd, expect_fd) in [("true", true), ("false", false)] {
        let systemd = FakeSystemd::bind_path();
        let pier = Pier::new();
        let mut bundle = Bundle::notify(
            r#"sh -c 'exec sd-notify-send -j "MAINPID=$$" READY=1 STATUS=child -- sh -c "read _ < /tmp/gate"'; exit 0"#,
        );
        bundle.annotate("org.pier.notify.mainpidfd", mainpidfd);
        let mut gate = bundle.gate("gate");
        let (mut run, _id) = spawn_run(&pier, &bundle, systemd.notify_socket(), "selfmain", &[]);
        let ready = loop {
            let g = systemd.recv();
            if g.payload.contains("READY=1") {
                break g;
            }
        };
        let host: i32 = ready
            .payload
            .lines()
            .find_map(|l| l.strip_prefix("MAINPID="))
            .expect("MAINPID= forwarded")
            .parse()
            .expect("pid");
        if expect_fd {
            assert_eq!(
                ready.payload,
                format!("MAINPID={host}\nMAINPIDFD=1\nREADY=1\nSTATUS=child")
            );
            assert_eq!(ready.fds.len(), 1, "the pidfd, alone");
            // The process still runs (it waits on the gate): the pidfd names it.
            let fdinfo = std::fs::read_to_string(format!(
                "/proc/self/fdinfo/{}",
                std::os::fd::AsRawFd::as_raw_fd(&ready.fds[0])
            ))
            .expect("fdinfo");
            let nspid: Vec<&str> = fdinfo
                .lines()
                .find_map(|l| l.strip_prefix("NSpid:"))
                .expect("a pidfd's fdinfo")
                .split_whitespace()
                .collect();
            assert_eq!(nspid.first(), Some(&host.to_string().as_str()), "{fdinfo}");
            assert!(
                nspid.len() > 1,
                "in the container's pid namespace: {fdinfo}"
            );
            assert_ne!(
                nspid.last(),
                Some(&"1"),
                "a child of the init, not the init"
            );
        } else {
            assert_eq!(
                ready.payload,
                format!("MAINPID={host}\nREADY=1\nSTATUS=child")
            );
            assert_eq!(ready.fd_count, 0, "no pidfd for an older manager");
        }
        gate.open();
        let (status, _) = pier.serve_until_exit(&mut run, &systemd);
        assert_ok(status, &pier);
    }
}
