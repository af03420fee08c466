//! `kill --all` as runc does it (issues 13 and 17): every process of the container's cgroup,
//! sub-cgroups included, gets the signal whatever the state of the init, and a container with
//! nothing left (stopped) succeeds. The containerd shim sends `kill --all ID 9` on every stop
//! and exit of a container and waits for the leftovers it kills. Needs root.

mod support;

use std::path::PathBuf;

use support::leftovers::cgroup_dirs_named;
use support::{unique_id, Bundle, Runtime};

/// A container without a pid namespace whose init starts `sleep`s and exits, leaving them
/// behind in its cgroup; returns their pids once the init is gone.
fn leave_children_behind(rt: &Runtime, b: &mut Bundle, id: &str, n: usize) -> Vec<i32> {
    b.namespaces(&["network", "ipc", "uts", "mount"]);
    let script = (0..n)
        .map(|i| format!("sleep 1000 </dev/null >/dev/null 2>&1 & echo child{i}=$! > /events; "))
        .collect::<String>();
    b.sh(&script);
    let mut events = b.events();
    rt.create(b, id);
    let init = rt.init_pid(id);
    rt.start(id);
    let children = (0..n)
        .map(|i| {
            let line = events.expect(&format!("child{i}="));
            line.split('=').nth(1).unwrap().parse().unwrap()
        })
        .collect();
    rt.wait_gone(init);
    assert_eq!(rt.state(id)["status"], "stopped");
    children
}

/// Move `pid` into a new sub-cgroup `name` of each of the container's cgroup directories
/// (every hierarchy), as a process that manages its own cgroups would.
fn move_to_subcgroup(id: &str, name: &str, pid: i32) -> Vec<PathBuf> {
    let dirs = cgroup_dirs_named(id);
    assert!(!dirs.is_empty(), "no cgroup directory named after {id}");
    dirs.iter()
        .map(|dir| {
            let sub = dir.join(name);
            std::fs::create_dir(&sub).unwrap();
            for file in ["cpuset.cpus", "cpuset.mems"] {
                // A v1 cpuset child starts empty and takes no process until given its parent's.
                if let Ok(v) = std::fs::read_to_string(dir.join(file)) {
                    std::fs::write(sub.join(file), v.trim()).unwrap();
                }
            }
            std::fs::write(sub.join("cgroup.procs"), pid.to_string()).unwrap();
            sub
        })
        .collect()
}

fn alive(pid: i32) -> bool {
    std::path::Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

#[test]
fn kill_all_on_a_stopped_container_exits_0_and_plain_kill_does_not() {
    let rt = Runtime::new();
    let b = Bundle::new();
    let id = unique_id("killall-stopped");
    rt.create(&b, &id);
    let init = rt.init_pid(&id);
    rt.start(&id);
    rt.wait_gone(init);
    for sig in ["KILL", "TERM", "9"] {
        rt.run(&["kill", "--all", &id, sig]).ok();
    }
    let plain = rt.run(&["kill", &id, "KILL"]);
    plain.code_is(1);
    assert!(plain.stderr.contains("not running"), "{plain}");
    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn kill_all_after_the_init_exited_kills_what_is_left() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = unique_id("killall-left");
    let children = leave_children_behind(&rt, &mut b, &id, 2);
    assert!(children.iter().all(|&c| alive(c)), "{children:?}");
    rt.run(&["kill", "--all", &id, "KILL"]).ok();
    for c in &children {
        rt.wait_gone(*c);
    }
    rt.run(&["kill", "--all", &id, "KILL"]).ok(); // nothing left: still success
    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn kill_all_reaches_sub_cgroups_with_any_signal() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let id = unique_id("killall-sub");
    let children = leave_children_behind(&rt, &mut b, &id, 2);
    let subs = move_to_subcgroup(&id, "daemon", children[1]);
    // TERM: no cgroup.kill, the pids are collected (recursively) and signalled one by one.
    rt.run(&["kill", "--all", &id, "TERM"]).ok();
    for c in &children {
        rt.wait_gone(*c);
    }
    for sub in subs.iter().rev() {
        let _ = std::fs::remove_dir(sub);
    }
    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn kill_all_while_running_signals_the_init_and_its_children() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.namespaces(&["network", "ipc", "uts", "mount"]); // so $! is a host pid
    b.sh(
        "trap 'echo init-got-usr1 > /events' USR1; sleep 1000 & echo child=$! > /events; \
          while :; do wait; sleep 1000 & done",
    );
    let mut events = b.events();
    let id = unique_id("killall-run");
    rt.create(&b, &id);
    let init = rt.init_pid(&id);
    rt.start(&id);
    let child: i32 = events.expect("child=")[6..].parse().unwrap();
    wait_exec(child, "sleep");
    rt.run(&["kill", "--all", &id, "USR1"]).ok();
    events.expect("init-got-usr1");
    rt.wait_gone(child); // sleep's default action for SIGUSR1 is to terminate
    rt.run(&["kill", "--all", &id, "KILL"]).ok();
    rt.wait_gone(init);
    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&b, &id);
}

/// Waits until process `pid` has exec'd `comm`: a shell's background child still carries the
/// shell's traps between fork and exec, so a signal sent then runs the trap instead of ending it.
#[track_caller]
fn wait_exec(pid: i32, comm: &str) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .ok()
        .as_deref()
        != Some(&format!("{comm}\n"))
    {
        assert!(
            std::time::Instant::now() < deadline,
            "process {pid} never exec'd {comm}"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
}
