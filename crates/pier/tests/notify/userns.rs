//! Issue 12, point 4 (as root): the relay from a container in a user namespace. The notify
//! directory is reached by the mapped root and the socket written by a mapped non-root user;
//! MAINPID is translated to the host pid; fds ride along; detached, the READY announcement
//! names the init's host pid.

use std::process::Command;

use serde_json::json;

use crate::notify_support::pier::Pier;
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::FakeSystemd;
use crate::support::Bundle;

/// A new user namespace mapping container 0..65536 to host 100000.., the rootfs owned by the
/// mapped root (as an engine prepares an image for it); process as `uid`.
fn in_userns(bundle: &mut Bundle, uid: u32) {
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    let linux = &mut bundle.config["linux"];
    linux["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    linux["uidMappings"] = map.clone();
    linux["gidMappings"] = map;
    let ok = Command::new("chown")
        .args(["-R", "100000:100000"])
        .arg(bundle.rootfs())
        .status();
    assert!(ok.is_ok_and(|s| s.success()), "chown the rootfs");
    bundle.user(uid, uid);
}

#[test]
fn foreground_relay_translates_mainpid_from_a_user_namespace() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let pid_file = pier.dir().join("init.pid");
    let mut bundle = Bundle::notify(
        r#"sd-notify-send "READY=1\nSTATUS=uid $(id -u) in $(cat /proc/self/uid_map | tr -s ' ')" "MAINPID=1\nX_TAG=init""#,
    );
    in_userns(&mut bundle, 1000);
    let (mut child, _) = spawn_run(
        &pier,
        &bundle,
        systemd.notify_socket(),
        "usernsfg",
        &["--pid-file", &path_str(&pid_file)],
    );
    let (status, got) = pier.serve_until_exit(&mut child, &systemd);
    assert_ok(status, &pier);
    let init = std::fs::read_to_string(&pid_file).expect("pid file");
    assert_eq!(
        payloads(&got),
        [
            "READY=1\nSTATUS=uid 1000 in  0 100000 65536".to_string(),
            format!("MAINPID={init}\nX_TAG=init")
        ]
    );
}

#[test]
fn fds_are_relayed_from_a_user_namespace() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let mut bundle = Bundle::notify(r#"sd-notify-send -F "FDSTORE=1\nFDNAME=mypipe""#);
    in_userns(&mut bundle, 0);
    let (status, got) = run_foreground(&pier, &bundle, &systemd, "usernsfd");
    assert_ok(status, &pier);
    assert_eq!(got[0].payload, "FDSTORE=1\nFDNAME=mypipe");
    assert_eq!(got[0].fds.len(), 1, "the container's fd");
    let stat = rustix::fs::fstat(&got[0].fds[0]).expect("fstat");
    let ino: u64 = got[1]
        .payload
        .strip_prefix("X_FD_INO=")
        .expect("X_FD_INO")
        .parse()
        .unwrap();
    assert_eq!(stat.st_ino, ino, "the fd is the container's pipe");
}

#[test]
fn detached_ready_announces_the_inits_host_pid() {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let mut bundle = Bundle::notify("sd-notify-send READY=1 && exec sleep 1000");
    in_userns(&mut bundle, 0);
    let run = run_detached(&pier, &bundle, &systemd, "usernsd", &[]);
    assert_ok(run.status, &pier);
    let init = pier.state_pid(&run.id);
    let ready = run
        .got
        .iter()
        .find(|g| g.payload != "BARRIER=1")
        .expect("READY forwarded before run -d returned");
    assert_eq!(ready.payload, format!("MAINPID={init}\nREADY=1"));
    assert_eq!(
        ready.pid, run.pid,
        "sent by pier, systemd's main pid until then"
    );
    let status = pier.status(None, &["delete", "--force", &run.id]);
    assert!(status.success());
}
