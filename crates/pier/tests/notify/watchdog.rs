//! Issue 3, point 8. Watchdog.

use crate::notify_support::pier::Pier;
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::FakeSystemd;
use crate::support::Bundle;

/// What the container sees of the watchdog when pier runs with `env` (and, with
/// `pid_is_pier`, `WATCHDOG_PID=<pier's pid>`, as systemd sets it for its main process).
fn watchdog_seen(env: &[(&str, &str)], pid_is_pier: bool) -> Vec<String> {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify(
        r#"sd-notify-send "X_USEC=${WATCHDOG_USEC-unset}" "X_PID=${WATCHDOG_PID-unset}""#,
    );
    let id = pier.id("watchdog");
    let pier_cmd = pier.command(
        Some(systemd.notify_socket()),
        &["run", "--bundle", bundle.save(), &id],
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
