//! Issue 15, point 3: `pier exec --notify-socket container` (or the `org.pier.notify.exec`
//! annotation) gives the exec'd process the container's relayed `NOTIFY_SOCKET`, so what it
//! sends reaches the manager through the container's relay with the container's identity;
//! `--notify-socket own` gives it a socket of the exec's own, relayed to the exec's own
//! `NOTIFY_SOCKET` (a unit whose ExecStart is `pier exec`).

use crate::notify_support::pier::{pidfd_of, processes_mentioning, wait_fd, Pier};
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::{FakeSystemd, Got};
use crate::notify_support::HANG_GUARD;
use crate::support::Bundle;

/// An init that never notifies itself: readiness comes from an exec'd process.
const SILENT_INIT: &str = "exec sleep 1000";

/// `pier exec [extra] <id> sd-notify-send MSG...` without NOTIFY_SOCKET of its own; its
/// status. A unix datagram is in the relay's queue when `sendmsg` returns, so what the test
/// reads later comes in a known order.
fn exec_send(pier: &Pier, id: &str, extra: &[&str], msgs: &[&str]) -> std::process::ExitStatus {
    let mut args = vec!["exec"];
    args.extend_from_slice(extra);
    args.push(id);
    args.push("sd-notify-send");
    args.extend_from_slice(msgs);
    pier.status(None, &args)
}

#[test]
fn exec_readiness_goes_through_the_container_relay_as_the_init() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify(SILENT_INIT);
    let id = pier.id("execready");
    let socket = Some(systemd.notify_socket());
    let bundle_path = bundle.save().to_owned();
    assert_ok(
        pier.status(socket, &["create", "--bundle", &bundle_path, &id]),
        &pier,
    );
    let mut start = pier.spawn(socket, &["start", &id]);
    let start_pid = start.id() as i32;
    let init = pier.state_pid(&id);
    // `start` waits for READY=1, which only the exec'd process sends.
    let sent = exec_send(
        &pier,
        &id,
        &["--notify-socket", "container"],
        &["-j", "READY=1", "STATUS=from-exec"],
    );
    assert_ok(sent, &pier);
    let (status, got) = pier.serve_until_exit(&mut start, &systemd);
    assert_ok(status, &pier);
    let ready = got
        .iter()
        .find(|g| g.payload.contains("READY=1"))
        .expect("READY=1 forwarded before start returned");
    assert_eq!(
        ready.payload,
        format!("MAINPID={init}\nREADY=1\nSTATUS=from-exec")
    );
    assert_eq!(
        ready.pid, start_pid,
        "announced by start, the main pid until then"
    );
    // Later, through the detached relay: with the init's pid (the unit's main pid now).
    assert_ok(
        exec_send(
            &pier,
            &id,
            &["--notify-socket=container"],
            &["STATUS=later"],
        ),
        &pier,
    );
    let later = loop {
        let g = systemd.recv();
        if g.payload != "BARRIER=1" {
            break g;
        }
    };
    assert_eq!((later.payload.as_str(), later.pid), ("STATUS=later", init));
}

#[test]
fn the_annotation_makes_it_the_default_and_access_init_drops_it() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let mut bundle = Bundle::notify(
        "exec sd-notify-send READY=1 -- sh -c \
         'read _ < /tmp/gate; exec sd-notify-send STATUS=init-after -- sleep 1000'",
    );
    bundle.annotate("org.pier.notify.exec", "container");
    bundle.annotate("org.pier.notify.access", "init");
    let mut gate = bundle.gate("gate");
    let run = run_detached(&pier, &bundle, &systemd, "execannot", &[]);
    assert_ok(run.status, &pier);
    // The exec'd process has the socket (sd-notify-send exits 0, not 2 "unset"), but only
    // the init may notify: dropped, as systemd's NotifyAccess=main would.
    assert_ok(exec_send(&pier, &run.id, &[], &["STATUS=dropped"]), &pier);
    let unset = exec_send(&pier, &run.id, &["--notify-socket", "none"], &["STATUS=x"]);
    assert_eq!(
        unset.code(),
        Some(2),
        "--notify-socket none: NOTIFY_SOCKET unset"
    );
    gate.open();
    let next = loop {
        let g = systemd.recv();
        if g.payload != "BARRIER=1" {
            break g;
        }
    };
    assert_eq!(
        next.payload, "STATUS=init-after",
        "an exec'd process got through access=init"
    );
}

#[test]
fn notify_socket_container_without_a_relay_fails_clearly() {
    let pier = Pier::new();
    let bundle = Bundle::notify(SILENT_INIT);
    let id = pier.id("execnorelay");
    let bundle_path = bundle.save().to_owned();
    // No NOTIFY_SOCKET at create: the container has no /run/notify.
    assert_ok(
        pier.status(None, &["run", "-d", "--bundle", &bundle_path, &id]),
        &pier,
    );
    // Judge "nothing started" by the container's own pids (`pier ps`), never by a scan of the
    // whole host: other tests start and stop the same sender at the same time.
    let before = container_pids(&pier, &id);
    let status = exec_send(&pier, &id, &["--notify-socket", "container"], &["READY=1"]);
    assert_eq!(status.code(), Some(255), "exec failed status, as runc's");
    assert!(
        pier.log().contains("the container has no notify socket"),
        "{}",
        pier.log()
    );
    assert_eq!(container_pids(&pier, &id), before, "nothing started");
    let bad = exec_send(&pier, &id, &["--notify-socket", "host"], &["READY=1"]);
    assert_eq!(bad.code(), Some(255));
    assert!(
        pier.log().contains("invalid --notify-socket"),
        "{}",
        pier.log()
    );
}

/// The pids of container `id`, from `pier ps --format json` (sorted).
fn container_pids(pier: &Pier, id: &str) -> Vec<i64> {
    let out = pier
        .command(None, &["ps", "--format", "json", id])
        .stdout(std::process::Stdio::piped())
        .output()
        .expect("pier ps");
    assert!(out.status.success(), "pier ps: {}", pier.log());
    let mut pids: Vec<i64> = serde_json::from_slice(&out.stdout).expect("ps json");
    pids.sort_unstable();
    pids
}

/// A container for `exec --notify-socket own`: started without NOTIFY_SOCKET (as an engine or
/// a shell would), with `org.pier.notify.exec=own`, so create prepares /run/notify and the
/// exec's own socket can be bound there; its init only waits.
fn box_for_own(pier: &Pier, tag: &str) -> (Bundle, String) {
    let mut bundle = Bundle::notify(SILENT_INIT);
    bundle.annotate("org.pier.notify.exec", "own");
    let id = pier.id(tag);
    let bundle_path = bundle.save().to_owned();
    assert_ok(
        pier.status(None, &["run", "-d", "--bundle", &bundle_path, &id]),
        pier,
    );
    (bundle, id)
}

/// The socket files in the container's notify directory (`exec-*.sock` are exec's own).
fn exec_sockets(pier: &Pier, id: &str) -> Vec<String> {
    let dir = pier.root().join(id).join("notify");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("read {}: {e}", dir.display()))
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("exec-"))
        .collect();
    names.sort();
    names
}

#[test]
fn own_socket_in_the_foreground_relays_as_the_exec_and_exits_with_its_status() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let (bundle, id) = box_for_own(&pier, "ownfg");
    let pid_file = bundle.host("/tmp").join("exec.pid");
    let pid_file = pid_file.to_str().expect("utf-8").to_owned();
    // Before READY, with an fd for the store; READY naming the process itself as MAINPID
    // (its in-container pid, translated); a last STATUS; then exit 3.
    let script = r#"sd-notify-send -j -F FDSTORE=1 FDNAME=execfd &&
        exec sd-notify-send -j "MAINPID=$$" READY=1 STATUS=up -- sh -c 'sd-notify-send STATUS=bye; exit 3'"#;
    let mut exec = pier.spawn(
        Some(systemd.notify_socket()),
        &[
            "exec",
            "--notify-socket",
            "own",
            "--pid-file",
            &pid_file,
            &id,
            "sh",
            "-c",
            script,
        ],
    );
    let exec_pid = exec.id() as i32;
    let (status, got) = pier.serve_until_exit(&mut exec, &systemd);
    assert_eq!(
        status.code(),
        Some(3),
        "the process's status\n{}",
        pier.log()
    );
    let host_pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let sent: Vec<&Got> = got.iter().filter(|g| g.payload != "BARRIER=1").collect();
    let shown: Vec<(&str, i32, usize)> = sent
        .iter()
        .map(|g| (g.payload.as_str(), g.pid, g.fd_count))
        .collect();
    assert_eq!(sent.len(), 4, "{shown:?}");
    assert_eq!(
        (sent[0].payload.as_str(), sent[0].pid, sent[0].fds.len()),
        ("FDSTORE=1\nFDNAME=execfd", exec_pid, 1),
        "the fd store datagram, with its fd, sent as pier exec (the unit's main pid)"
    );
    assert!(sent[1].payload.starts_with("X_FD_INO="), "{shown:?}");
    assert_eq!(
        (sent[2].payload.as_str(), sent[2].pid),
        (
            format!("MAINPID={host_pid}\nREADY=1\nSTATUS=up").as_str(),
            exec_pid
        ),
        "MAINPID= translated to the process's host pid, sent as pier exec"
    );
    assert_eq!(
        (sent[3].payload.as_str(), sent[3].pid),
        ("STATUS=bye", host_pid),
        "after MAINPID=, as the new main pid"
    );
    assert!(exec_sockets(&pier, &id).is_empty(), "exec's socket removed");
}

#[test]
fn own_socket_detached_announces_the_process_as_main_pid_and_relays_after_exec_returns() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let (bundle, id) = box_for_own(&pier, "ownd");
    let mut gate = bundle.gate("gate");
    let pid_file = bundle.host("/tmp").join("exec.pid");
    let pid_file = pid_file.to_str().expect("utf-8").to_owned();
    let script = "sd-notify-send -j READY=1 STATUS=up; read _ < /tmp/gate; \
                  exec sd-notify-send STATUS=later -- sleep 1000";
    let mut exec = pier.spawn(
        Some(systemd.notify_socket()),
        &[
            "exec",
            "-d",
            "--notify-socket",
            "own",
            "--pid-file",
            &pid_file,
            &id,
            "sh",
            "-c",
            script,
        ],
    );
    let exec_pid = exec.id() as i32;
    let (status, got) = pier.serve_until_exit(&mut exec, &systemd);
    assert_ok(status, &pier);
    let host_pid: i32 = std::fs::read_to_string(&pid_file)
        .expect("pid file")
        .trim()
        .parse()
        .expect("pid");
    let ready = got
        .iter()
        .find(|g| g.payload.contains("READY=1"))
        .expect("READY=1 forwarded before exec -d returned");
    assert_eq!(
        (ready.payload.as_str(), ready.pid),
        (
            format!("MAINPID={host_pid}\nREADY=1\nSTATUS=up").as_str(),
            exec_pid
        ),
        "the process announced as the main pid, by pier exec (the main pid until then)"
    );
    assert_eq!(
        exec_sockets(&pier, &id).len(),
        1,
        "the detached relay's socket"
    );
    gate.open();
    let later = loop {
        let g = systemd.recv();
        if g.payload != "BARRIER=1" {
            break g;
        }
    };
    assert_eq!(
        (later.payload.as_str(), later.pid),
        ("STATUS=later", host_pid),
        "from the detached relay, as the process (the unit's main pid now)"
    );
    // The process exits: the detached relay ends and removes the socket.
    let relay = detached_relay_of(&pier, &id);
    let relay_fd = pidfd_of(relay);
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(host_pid).expect("pid"),
        rustix::process::Signal::KILL,
    )
    .expect("kill the exec'd process");
    assert!(wait_fd(&relay_fd, HANG_GUARD), "the detached relay ended");
    assert!(exec_sockets(&pier, &id).is_empty(), "exec's socket removed");
}

/// The one detached relay of `pier exec` for container `id`: a process whose command line is
/// pier's exec of `id` (the fork keeps its argv).
fn detached_relay_of(pier: &Pier, id: &str) -> i32 {
    let mut relays = processes_mentioning(&path_str(pier.root()));
    relays.retain(|pid| {
        let cmd = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmd = String::from_utf8_lossy(&cmd).replace('\0', " ");
        cmd.contains(" exec ") && cmd.contains(id)
    });
    assert_eq!(relays.len(), 1, "one detached exec relay: {relays:?}");
    relays[0]
}

#[test]
fn own_socket_detached_process_exiting_before_ready_ends_exec_with_its_status() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let (_bundle, id) = box_for_own(&pier, "ownearly");
    let mut exec = pier.spawn(
        Some(systemd.notify_socket()),
        &[
            "exec",
            "-d",
            "--notify-socket",
            "own",
            &id,
            "sh",
            "-c",
            "sd-notify-send STATUS=giving-up; exit 7",
        ],
    );
    let (status, got) = pier.serve_until_exit(&mut exec, &systemd);
    assert_eq!(
        status.code(),
        Some(7),
        "its status, at once\n{}",
        pier.log()
    );
    assert_eq!(payloads(&got), ["STATUS=giving-up"]);
    assert!(
        pier.log().contains("exited before READY=1 (exit status 7)"),
        "{}",
        pier.log()
    );
    assert!(exec_sockets(&pier, &id).is_empty(), "exec's socket removed");
}

#[test]
fn own_socket_needs_a_notify_socket_and_a_notify_directory_and_leaves_nothing() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let (_bundle, id) = box_for_own(&pier, "ownbad");
    let before = container_pids(&pier, &id);
    // The flag without NOTIFY_SOCKET: nothing to relay to.
    let status = exec_send(&pier, &id, &["--notify-socket", "own"], &["READY=1"]);
    assert_eq!(status.code(), Some(255), "exec failed status");
    assert!(
        pier.log().contains("pier has no NOTIFY_SOCKET"),
        "{}",
        pier.log()
    );
    // The annotation's own without NOTIFY_SOCKET is runc's exec: no socket (exit 2 "unset").
    assert_eq!(exec_send(&pier, &id, &[], &["READY=1"]).code(), Some(2));
    // A container created without NOTIFY_SOCKET or the annotation has no notify directory.
    let plain = pier.id("ownplain");
    let bundle = Bundle::notify(SILENT_INIT);
    let bundle_path = bundle.save().to_owned();
    assert_ok(
        pier.status(None, &["run", "-d", "--bundle", &bundle_path, &plain]),
        &pier,
    );
    let plain_before = container_pids(&pier, &plain);
    let mut exec = pier.spawn(
        Some(systemd.notify_socket()),
        &[
            "exec",
            "--notify-socket",
            "own",
            &plain,
            "sd-notify-send",
            "READY=1",
        ],
    );
    let (status, got) = pier.serve_until_exit(&mut exec, &systemd);
    assert_eq!(status.code(), Some(255));
    assert!(
        pier.log().contains("the container has no notify directory"),
        "{}",
        pier.log()
    );
    assert!(payloads(&got).is_empty());
    assert_eq!(
        container_pids(&pier, &plain),
        plain_before,
        "nothing started"
    );
    // A process that cannot start: exec fails, its socket is removed.
    let mut exec = pier.spawn(
        Some(systemd.notify_socket()),
        &["exec", "--notify-socket", "own", &id, "/no/such/binary"],
    );
    let (status, _) = pier.serve_until_exit(&mut exec, &systemd);
    assert_eq!(status.code(), Some(255));
    assert!(exec_sockets(&pier, &id).is_empty(), "no socket left behind");
    assert_eq!(container_pids(&pier, &id), before, "nothing started");
}
