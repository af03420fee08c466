//! Issue 2, point 3: the container lifecycle. create leaves `created` with the init blocked on
//! `<root>/<id>/exec.fifo`; start releases it; state prints the OCI state; kill delivers
//! signals; delete removes every trace (and only the container's own processes of a shared
//! cgroupsPath); list; id validation. (`run` is in run.rs.)
//! Needs root.

mod support;

use std::os::unix::fs::FileTypeExt;

use rustix::process::Signal;
use support::runner::pid_alive;
use support::{find_leftovers, is_rfc3339, poll_until, unique_id, wchan, Bundle, Runtime};

/// A script that reports `started`, then reports and survives USR1/USR2/HUP, and exits 0 on
/// TERM. `wait` on a background sleep keeps the shell interruptible by signals.
const SIGNAL_REPORTER: &str = "\
trap 'echo got-USR1 > /events' USR1; \
trap 'echo got-USR2 > /events' USR2; \
trap 'echo got-HUP > /events' HUP; \
trap 'echo got-TERM > /events; exit 0' TERM; \
echo started > /events; \
while :; do sleep 1000 & wait $!; done";
#[test]
fn create_leaves_created_with_init_blocked_on_exec_fifo() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo started > /events; exec sleep 1000");
    let mut events = b.events();
    let id = unique_id("created");
    rt.create(&b, &id);

    let state = rt.state(&id);
    assert_eq!(state["status"], "created", "{state}");
    let pid = rt.init_pid(&id);
    let fifo = rt.root().join(&id).join("exec.fifo");
    let meta = std::fs::symlink_metadata(&fifo).expect("exec.fifo exists after create");
    assert!(
        meta.file_type().is_fifo(),
        "{} is not a FIFO",
        fifo.display()
    );
    // open(2) of a FIFO with no reader sleeps in wait_for_partner.
    poll_until("the init blocks opening exec.fifo", || {
        wchan(pid) == "wait_for_partner"
    });
    assert_eq!(events.pending(), "", "the process ran before start");

    rt.start(&id);
    events.expect("started");
    assert_eq!(rt.state(&id)["status"], "running");
    assert!(!fifo.exists(), "exec.fifo should be gone once started");
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn state_reports_running_then_stopped() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh(SIGNAL_REPORTER);
    let mut events = b.events();
    let id = unique_id("states");
    rt.create(&b, &id);
    rt.start(&id);
    events.expect("started");
    let pid = rt.init_pid(&id);
    assert_eq!(rt.state(&id)["status"], "running");

    rt.run(&["kill", &id, "TERM"]).ok();
    events.expect("got-TERM");
    rt.wait_gone(pid);
    assert_eq!(rt.state(&id)["status"], "stopped");
    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn state_json_has_the_oci_fields_and_the_host_pid() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["annotations"] = serde_json::json!({ "org.example.key": "value", "k2": "" });
    b.config["ociVersion"] = "1.0.0".into();
    b.sh("exec sleep 1000");
    let id = unique_id("statejson");
    rt.create(&b, &id);
    let s = rt.state(&id);

    // The version the state complies with (runtime.md "State"): pier's, not config.json's.
    let features: serde_json::Value =
        serde_json::from_str(&rt.run(&["features"]).ok().stdout).expect("features JSON");
    assert_eq!(s["ociVersion"], features["ociVersionMax"], "{s}");
    assert_eq!(s["id"], id.as_str());
    assert_eq!(s["status"], "created");
    assert_eq!(s["bundle"], b.path());
    assert_eq!(s["rootfs"], format!("{}/rootfs", b.path()));
    assert!(is_rfc3339(s["created"].as_str().unwrap_or("")), "{s}");
    assert_eq!(s["annotations"], b.config["annotations"]);
    // The pid is the host's view: NSpid lists the host pid first and 1 in the container.
    let pid = rt.init_pid(&id);
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let nspid = status.lines().find(|l| l.starts_with("NSpid:")).unwrap();
    let nspid: Vec<&str> = nspid.split_whitespace().skip(1).collect();
    assert_eq!(nspid, [pid.to_string().as_str(), "1"], "{status}");

    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn kill_defaults_to_sigterm() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh(SIGNAL_REPORTER);
    let mut events = b.events();
    let id = unique_id("killterm");
    rt.create(&b, &id);
    rt.start(&id);
    events.expect("started");
    rt.run(&["kill", &id]).ok();
    events.expect("got-TERM");
    rt.run(&["delete", "-f", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn kill_accepts_numbers_and_names_with_or_without_sig() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh(SIGNAL_REPORTER);
    let mut events = b.events();
    let id = unique_id("killforms");
    rt.create(&b, &id);
    rt.start(&id);
    events.expect("started");
    let usr1 = Signal::USR1.as_raw().to_string();
    let hup = Signal::HUP.as_raw().to_string();
    for (form, event) in [
        ("USR1", "got-USR1"),
        ("SIGUSR2", "got-USR2"),
        (usr1.as_str(), "got-USR1"),
        (hup.as_str(), "got-HUP"),
        ("SIGHUP", "got-HUP"),
        ("USR2", "got-USR2"),
    ] {
        rt.run(&["kill", &id, form]).ok();
        events.expect(event);
    }
    rt.run(&["kill", &id, "SIGTERM"]).ok();
    events.expect("got-TERM");
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}

/// Signal 0 sends nothing and checks, as kill(2) and `runc kill ID 0`: success while the init
/// runs (the script sees no signal), "not running" once it has exited; `--all` 0 succeeds.
#[test]
fn kill_0_checks_that_the_init_runs() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh(SIGNAL_REPORTER);
    let mut events = b.events();
    let id = unique_id("kill0");
    rt.create(&b, &id);
    let init = rt.init_pid(&id);
    rt.start(&id);
    events.expect("started");
    rt.run(&["kill", &id, "0"]).ok();
    rt.run(&["kill", &id, "00"]).ok();
    rt.run(&["kill", "--all", &id, "0"]).ok();
    rt.run(&["kill", &id, "USR1"]).ok();
    events.expect("got-USR1"); // the first signal the script saw: 0 delivered none
    rt.run(&["kill", &id, "KILL"]).ok();
    rt.wait_gone(init);
    let stopped = rt.run(&["kill", &id, "0"]);
    stopped.code_is(1);
    assert!(stopped.stderr.contains("not running"), "{stopped}");
    rt.run(&["kill", "--all", &id, "0"]).ok();
    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn kill_refuses_an_unknown_signal() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("exec sleep 1000");
    let id = unique_id("killbad");
    rt.create(&b, &id);
    let out = rt.run(&["kill", &id, "NOSUCHSIG"]);
    out.code_is(1);
    assert!(out.stderr.contains("NOSUCHSIG"), "{out}");
    assert_eq!(rt.state(&id)["status"], "created");
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn kill_all_reaches_every_process_of_the_container() {
    // Without a pid namespace, killing only the init would leave the sleep behind.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.namespaces(&["network", "ipc", "uts", "mount"]);
    b.sh("sleep 1000 & echo child=$! > /events; wait");
    let mut events = b.events();
    let id = unique_id("killall");
    rt.create(&b, &id);
    rt.start(&id);
    let line = events.expect("child=");
    let child: i32 = line.trim_start_matches("child=").parse().unwrap();
    let init = rt.init_pid(&id);
    rt.run(&["kill", "-a", &id, "KILL"]).ok();
    rt.wait_gone(init);
    rt.wait_gone(child);
    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&b, &id);
}

#[test]
fn leftovers_are_seen_while_created_and_gone_after_delete() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("exec sleep 1000");
    let id = unique_id("traces");
    rt.create(&b, &id);
    let now = std::time::Instant::now();
    let traces = find_leftovers(rt.root(), &id, b.path(), now).join("\n");
    assert!(
        traces.contains("state dir"),
        "checker missed the state dir:\n{traces}"
    );
    assert!(
        traces.contains("process"),
        "checker missed the init:\n{traces}"
    );
    let pid = rt.init_pid(&id);

    // A created (never started) container is deleted without --force.
    rt.run(&["delete", &id]).ok();
    rt.wait_gone(pid);
    rt.assert_clean(&b, &id);
}

#[test]
fn delete_refuses_a_running_container_without_force() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo started > /events; exec sleep 1000");
    let mut events = b.events();
    let id = unique_id("delrun");
    rt.create(&b, &id);
    rt.start(&id);
    events.expect("started");
    let pid = rt.init_pid(&id);

    let out = rt.run(&["delete", &id]);
    out.code_is(1);
    assert!(out.stderr.contains("running"), "{out}");
    assert_eq!(rt.state(&id)["status"], "running");

    rt.run(&["delete", "--force", &id]).ok();
    rt.wait_gone(pid);
    rt.assert_clean(&b, &id);
}

#[test]
fn commands_on_a_missing_container_say_it_does_not_exist() {
    let rt = Runtime::new();
    let id = unique_id("ghost");
    for args in [
        vec!["state", &id],
        vec!["start", &id],
        vec!["kill", &id, "KILL"],
        vec!["delete", &id],
    ] {
        let out = rt.run(&args);
        out.code_is(1);
        assert!(out.stderr.contains("container does not exist"), "{out}");
    }
}

#[test]
fn start_twice_fails() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo started > /events; exec sleep 1000");
    let mut events = b.events();
    let id = unique_id("start2");
    rt.create(&b, &id);
    rt.start(&id);
    events.expect("started");
    let out = rt.run(&["start", &id]);
    out.code_is(1);
    assert!(!out.stderr.trim().is_empty(), "{out}");
    assert_eq!(rt.state(&id)["status"], "running");
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}
#[test]
fn invalid_container_ids_are_refused_without_touching_disk() {
    let rt = Runtime::new();
    let b = Bundle::new();
    let escape = unique_id("escape");
    let parent_probe = rt.root().parent().unwrap().join(&escape);
    for id in ["a/b", "..", "", &format!("../{escape}"), "/abs", "."] {
        let out = rt.run(&["create", "--bundle", b.save(), id]);
        out.code_is(1);
        assert!(!out.stderr.trim().is_empty(), "{out}");
        assert!(
            rt.ids().is_empty(),
            "id {id:?} left {:?} in the root",
            rt.ids()
        );
    }
    assert!(
        !parent_probe.exists(),
        "../{escape} created {}",
        parent_probe.display()
    );
    assert!(!rt.root().join("a").exists());
    assert!(
        support::leftovers::processes_in(std::path::Path::new(b.path()), &[b.path()]).is_empty()
    );
}

#[test]
fn list_shows_created_containers_as_table_json_and_ids() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("exec sleep 1000");
    let ids = [unique_id("lista"), unique_id("listb")];
    for id in &ids {
        rt.create(&b, id);
    }
    let table = rt.run(&["list"]);
    table.ok();
    let mut lines = table.stdout.lines();
    let header: Vec<&str> = lines.next().unwrap_or("").split_whitespace().collect();
    assert_eq!(
        header,
        ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"],
        "{table}"
    );
    for id in &ids {
        let pid = rt.init_pid(id).to_string();
        let row = table.stdout.lines().find(|l| l.starts_with(id.as_str()));
        let cols: Vec<&str> = row
            .unwrap_or_else(|| panic!("{id} not listed:\n{table}"))
            .split_whitespace()
            .collect();
        assert_eq!(
            cols[..4],
            [id.as_str(), pid.as_str(), "created", b.path()],
            "{table}"
        );
    }

    let quiet = rt.run(&["list", "-q"]);
    let mut listed: Vec<&str> = quiet.ok().stdout.lines().collect();
    listed.sort();
    assert_eq!(listed, [ids[0].as_str(), ids[1].as_str()]);

    let json = rt.run(&["list", "--format", "json"]);
    let arr: serde_json::Value = serde_json::from_str(&json.ok().stdout).unwrap();
    let arr = arr.as_array().expect("list -f json prints an array");
    assert_eq!(arr.len(), 2, "{json}");
    for entry in arr {
        assert!(ids.iter().any(|i| entry["id"] == i.as_str()), "{entry}");
        assert_eq!(entry["status"], "created");
        assert_eq!(entry["bundle"], b.path());
        assert!(entry["pid"].as_i64().unwrap_or(0) > 0, "{entry}");
        assert_eq!(entry["owner"], "root", "{entry}");
    }
    // OWNER is the state directory's owner, as runc: `#<uid>` for a uid without a name.
    let dir = rt.root().join(&ids[1]);
    rustix::fs::chown(&dir, Some(rustix::fs::Uid::from_raw(4242)), None).unwrap();
    let json = rt.run(&["list", "--format", "json"]);
    let arr: serde_json::Value = serde_json::from_str(&json.ok().stdout).unwrap();
    let owner = |id: &str| {
        arr.as_array()
            .unwrap()
            .iter()
            .find(|e| e["id"] == id)
            .unwrap()["owner"]
            .clone()
    };
    assert_eq!(
        (owner(&ids[0]), owner(&ids[1])),
        ("root".into(), "#4242".into()),
        "{json}"
    );
    rustix::fs::chown(&dir, Some(rustix::fs::Uid::ROOT), None).unwrap();
    for id in &ids {
        rt.run(&["delete", id]).ok();
    }
    for id in &ids {
        rt.assert_clean(&b, id);
    }
}

/// A container whose cgroupsPath is shared with another container does not kill that other
/// container when it ends: runc warns ("container's cgroup is not empty") and leaves the
/// other processes alone, and so does pier (it once SIGKILLed every process in the cgroup).
#[test]
fn ending_one_container_leaves_the_other_in_a_shared_cgroup_alive() {
    let rt = Runtime::new();
    let path = format!("/{}", unique_id("shared-cg"));
    let mut long = Bundle::new();
    long.args(&["sleep", "1000"]).config["linux"]["cgroupsPath"] = path.clone().into();
    let first = unique_id("shared-cg-first");
    rt.run(&["run", "-d", "--bundle", long.save(), &first]).ok();
    let first_pid = rt.init_pid(&first);

    let mut short = Bundle::new();
    short.config["linux"]["cgroupsPath"] = path.into();
    rt.run_fg(&short, &unique_id("shared-cg-second"));

    assert!(
        pid_alive(first_pid),
        "the end of the second container killed the first one (pid {first_pid})"
    );
}
