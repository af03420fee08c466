//! `--systemd-cgroup`: the transient scope under a real systemd (run-v2.sh runs this inside
//! the harness), or a clean failure where systemd is not PID 1.

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::json;

use crate::harness::{unique, Bundle, Runtime};

/// `--systemd-cgroup` under a real systemd (run-v2.sh runs this inside the harness): the
/// container gets a transient scope with Delegate=yes that `systemctl` shows, holding exactly
/// the init (the holder is gone), and delete stops it. Without systemd, create fails cleanly.
#[test]
fn systemd_cgroup_makes_a_delegated_scope_that_delete_stops() {
    let pier = Runtime::new();
    let name = unique("sd");
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        c["linux"]["cgroupsPath"] = json!(format!("system.slice:pier-test:{name}"))
    });
    let id = unique("sd");
    let unit = format!("pier-test-{name}.scope");
    if !Path::new("/run/systemd/system").exists() {
        let out = pier
            .command(&["--systemd-cgroup", "create", "-b", bundle.path(), &id])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!out.status.success());
        assert!(
            String::from_utf8_lossy(&out.stderr)
                .contains("systemd not running on this host, cannot use systemd cgroups manager"),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!pier.root().join(&id).exists());
        eprintln!("skipped the systemd part: systemd is not PID 1 here");
        return;
    }
    let systemctl = |args: &[&str]| {
        let out = Command::new("systemctl").args(args).output().unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let log = tempfile::NamedTempFile::new().unwrap();
    let created = pier
        .command(&["--systemd-cgroup", "create", "-b", bundle.path(), &id])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log.reopen().unwrap())
        .status()
        .unwrap();
    assert!(
        created.success(),
        "{}",
        std::fs::read_to_string(log.path()).unwrap()
    );
    pier.ok(&["--systemd-cgroup", "start", &id]);
    assert_eq!(systemctl(&["is-active", &unit]), "active");
    assert_eq!(
        systemctl(&["show", "-p", "Delegate", "--value", &unit]),
        "yes"
    );
    let group = systemctl(&["show", "-p", "ControlGroup", "--value", &unit]);
    assert_eq!(group, format!("/system.slice/{unit}"));
    let pid = pier.state(&id)["pid"].as_i64().unwrap().to_string();
    let procs = std::fs::read_to_string(format!("/sys/fs/cgroup{group}/cgroup.procs")).unwrap();
    assert_eq!(
        procs.lines().collect::<Vec<_>>(),
        [pid.as_str()],
        "only the init holds the scope"
    );
    pier.ok(&["pause", &id]);
    assert_eq!(pier.state(&id)["status"], "paused");
    pier.ok(&["--systemd-cgroup", "delete", "--force", &id]);
    assert_ne!(systemctl(&["is-active", &unit]), "active");
    assert!(!Path::new(&format!("/sys/fs/cgroup{group}")).exists());
}

/// `kill --all` in a systemd scope after the init exited: the leftover keeps the scope, kill
/// --all kills it; then systemd removes the scope and kill --all still succeeds.
#[test]
fn kill_all_kills_the_leftovers_of_a_systemd_scope() {
    if !Path::new("/run/systemd/system").exists() {
        eprintln!("skipped: systemd is not PID 1 here");
        return;
    }
    let name = unique("sdleft");
    crate::commands::kill_all_kills_what_the_init_left(
        &["--systemd-cgroup"],
        Some(format!("system.slice:pier-test:{name}")),
    );
}
