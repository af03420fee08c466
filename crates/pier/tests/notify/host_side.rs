//! Issue 3, point 2. The host side.

use crate::notify_support;
use crate::notify_support::pier::Pier;
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::FakeSystemd;
use crate::support::Bundle;

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
    let bundle = Bundle::notify("sd-notify-send READY=1 STATUS=unheard || exit 99; exit 7");
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
    let bundle = Bundle::notify("sd-notify-send READY=1 || exit 99; read _ < /tmp/gate");
    let _gate = bundle.gate("gate");
    let (mut child, _) = spawn_run(&pier, &bundle, &socket, "unreachd", &["-d"]);
    let status = pier.wait(&mut child, notify_support::HANG_GUARD);
    assert_ok(status, &pier);
}
