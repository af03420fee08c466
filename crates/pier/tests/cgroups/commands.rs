//! The cgroup commands on live containers: pause/resume, delete of a paused container, ps,
//! kill --all.

use crate::harness::{Bundle, CgroupRun, Runtime};

#[test]
fn pause_freezes_and_resume_thaws() {
    let pier = Runtime::new();
    // Bound: a dropped bundle kills what still runs in it.
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |_| {});
    let id = pier.start_new("pause", &bundle);
    pier.ok(&["pause", &id]);
    assert_eq!(pier.state(&id)["status"], "paused");
    let dirs = pier.cgroup_dirs(&id);
    let frozen = dirs.iter().any(|d| {
        std::fs::read_to_string(d.join("freezer.state")).is_ok_and(|s| s.trim() == "FROZEN")
            || std::fs::read_to_string(d.join("cgroup.events"))
                .is_ok_and(|s| s.lines().any(|l| l == "frozen 1"))
    });
    assert!(frozen, "the kernel does not report the cgroup frozen");
    let pid = pier.state(&id)["pid"].as_i64().unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert!(
        !status.contains("State:\tR"),
        "a frozen task is running: {status}"
    );
    pier.ok(&["resume", &id]);
    assert_eq!(pier.state(&id)["status"], "running");
    let err = pier.run(&["resume", &id]);
    assert!(err.stderr.contains("container not paused"), "{err}");
}

#[test]
fn delete_force_removes_a_paused_container_and_its_cgroup() {
    let pier = Runtime::new();
    // Bound: a dropped bundle kills what still runs in it.
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |_| {});
    let id = pier.start_new("pause-delete", &bundle);
    let dirs = pier.cgroup_dirs(&id);
    pier.ok(&["pause", &id]);
    pier.ok(&["delete", "--force", &id]);
    assert!(!pier.root().join(&id).exists());
    for d in dirs {
        assert!(!d.exists(), "{} is left", d.display());
    }
}

#[test]
fn ps_lists_the_container_processes() {
    let pier = Runtime::new();
    // Bound: a dropped bundle kills what still runs in it.
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |_| {});
    let id = pier.start_new("ps", &bundle);
    let pid = pier.state(&id)["pid"].as_i64().unwrap();
    let json: Vec<i64> = serde_json::from_str(&pier.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(json, [pid]);
    let table = pier.ok(&["ps", &id]);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].contains("PID"), "{table}");
    assert_eq!(lines.len(), 2, "{table}");
    assert!(
        lines[1].split_whitespace().any(|c| c == pid.to_string()),
        "{table}"
    );
    let custom = pier.ok(&["ps", &id, "-o", "pid,comm"]);
    assert!(
        custom.lines().nth(1).is_some_and(|l| l.contains("sleep")),
        "{custom}"
    );
}

/// `kill --all` reaches every process of the cgroup, not only the init: without a pid
/// namespace, the init's death would not take the others with it.
#[test]
fn kill_all_signals_every_process_of_the_cgroup() {
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(
        &[
            "sh",
            "-c",
            "sleep 1000 & echo ready > /ready; exec sleep 1000",
        ],
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "pid");
        },
    );
    let fifo = bundle.host("/ready");
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        &fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let id = pier.start_new("kill-all", &bundle);
    std::fs::read_to_string(&fifo).unwrap(); // the background sleep exists now
    let pids: Vec<i32> = serde_json::from_str(&pier.ok(&["ps", "--format", "json", &id])).unwrap();
    assert_eq!(pids.len(), 2, "{pids:?}");
    let pidfds: Vec<_> = pids
        .iter()
        .map(|p| {
            rustix::process::pidfd_open(
                rustix::process::Pid::from_raw(*p).unwrap(),
                rustix::process::PidfdFlags::empty(),
            )
            .unwrap()
        })
        .collect();
    pier.ok(&["kill", "--all", &id, "KILL"]);
    for fd in &pidfds {
        let mut poll = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let bound = rustix::event::Timespec {
            tv_sec: 30,
            tv_nsec: 0,
        };
        assert_eq!(
            rustix::event::poll(&mut poll, Some(&bound)).unwrap(),
            1,
            "a process survived kill --all"
        );
    }
}

/// `kill --all` after the init has exited (issues 13, 17; the containerd shim's stop and
/// exit path): the process the init left in the cgroup is killed, and with nothing left
/// `kill --all` still succeeds. `global` adds e.g. `--systemd-cgroup`.
pub fn kill_all_kills_what_the_init_left(global: &[&str], cgroups_path: Option<String>) {
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(
        &[
            "sh",
            "-c",
            "sleep 1000 </dev/null >/dev/null 2>&1 & echo $! > /left",
        ],
        |c| {
            c["linux"]["namespaces"]
                .as_array_mut()
                .unwrap()
                .retain(|n| n["type"] != "pid");
            if let Some(p) = cgroups_path {
                c["linux"]["cgroupsPath"] = serde_json::json!(p);
            }
        },
    );
    let id = crate::harness::unique("kill-left");
    fn with<'a>(global: &[&'a str], args: &[&'a str]) -> Vec<&'a str> {
        [global, args].concat()
    }
    let created = pier
        .command(&with(global, &["create", "-b", bundle.path(), &id]))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(created.success());
    let init = pier.state(&id)["pid"].as_i64().unwrap() as i32;
    let pidfd = |pid: i32| {
        rustix::process::pidfd_open(
            rustix::process::Pid::from_raw(pid).unwrap(),
            rustix::process::PidfdFlags::empty(),
        )
        .unwrap()
    };
    let gone = |fd: &std::os::fd::OwnedFd| {
        let mut poll = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
        let bound = rustix::event::Timespec {
            tv_sec: 30,
            tv_nsec: 0,
        };
        rustix::event::poll(&mut poll, Some(&bound)).unwrap() == 1
    };
    let init_fd = pidfd(init);
    pier.ok(&with(global, &["start", &id]));
    assert!(gone(&init_fd), "the init did not exit");
    let left: i32 = std::fs::read_to_string(bundle.host("/left"))
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let left_fd = pidfd(left);
    assert_eq!(pier.state(&id)["status"], "stopped");
    pier.ok(&with(global, &["kill", "--all", &id, "KILL"]));
    assert!(gone(&left_fd), "kill --all left the init's child running");
    pier.ok(&with(global, &["kill", "--all", &id, "KILL"]));
    pier.ok(&with(global, &["delete", &id]));
}

#[test]
fn kill_all_after_the_init_exited_kills_its_leftovers() {
    kill_all_kills_what_the_init_left(&[], None);
}
