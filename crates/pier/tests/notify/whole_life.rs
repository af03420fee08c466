//! Issue 3, point 6. The container's whole life.

use std::process::Stdio;
use std::time::Duration;

use crate::notify_support;
use crate::notify_support::pier::Pier;
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::FakeSystemd;
use crate::notify_support::HANG_GUARD;
use crate::support::Bundle;

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
    let bundle = Bundle::notify(WHOLE_LIFE);
    let (mut gate, mut end) = (bundle.gate("gate"), bundle.gate("end"));
    let id = pier.id("life");
    let args = ["run", "-d", "--bundle", bundle.save(), &id];
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
