//! Issue 3, point 1. The container side.

use crate::notify_support;
use crate::notify_support::pier::Pier;
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::FakeSystemd;
use crate::support::Bundle;

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
        b.user(1000, 1000);
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
    let bundle = Bundle::notify("sd-notify-send X_LONG_ROOT=1");
    let (status, got) = run_foreground(&pier, &bundle, &systemd, "longroot");
    assert_ok(status, &pier);
    assert_eq!(payloads(&got), ["X_LONG_ROOT=1"]);
}

#[test]
fn read_only_rootfs_without_run_tmpfs_fails_create_and_leaves_nothing() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let id = pier.id("rofail");
    let mut bundle = Bundle::notify("sd-notify-send X_NEVER=1");
    bundle.readonly(true);
    bundle.cgroups_path(&format!("/{id}"));
    let status = pier.status(
        Some(systemd.notify_socket()),
        &["create", "--bundle", bundle.save(), &id],
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
        b.readonly(true);
        b.tmpfs("/run");
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
        b.readonly(true);
    });
    assert_eq!(got, ["X_IMAGE_HAS_RUN_NOTIFY=1"]);
}
