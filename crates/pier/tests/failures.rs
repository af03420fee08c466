//! Issue 2, point 4: a failed create/run leaves nothing behind. Each case proves the message
//! (on stderr, one line; and exactly one `{"level":"error","msg","time"}` record in the
//! `--log` file with `--log-format json`), exit status 1, and the absence of any state dir,
//! mount, cgroup or process. Also: a uid/gid of -1 refused with one clear line, and a
//! command-line error's one JSON record. Needs root.

mod support;

use serde_json::json;
use support::{
    assert_one_error_record, host_tempdir, mentions_any, unique_id, Bundle, Output, Runtime,
};

/// [`Runtime::fails_cleanly`] of `<sub> --bundle <b> <id>`.
#[track_caller]
fn fails_cleanly(rt: &Runtime, sub: &str, b: &Bundle, id: &str, needles: &[&[&str]]) -> Output {
    rt.fails_cleanly(&[sub, "--bundle", b.path(), id], b, id, needles)
}

#[test]
fn invalid_json_is_refused_cleanly() {
    let rt = Runtime::new();
    let b = Bundle::new();
    b.save_raw("{\"ociVersion\": \"1.0.2\", bad");
    let id = unique_id("badjson");
    fails_cleanly(&rt, "create", &b, &id, &[&["json", "invalid character"]]);
    fails_cleanly(&rt, "run", &b, &id, &[&["json", "invalid character"]]);
}

#[test]
fn missing_or_empty_process_args_are_refused_cleanly() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["process"].as_object_mut().unwrap().remove("args");
    b.save();
    let id = unique_id("noargs");
    fails_cleanly(&rt, "create", &b, &id, &[&["args"]]);
    b.config["process"]["args"] = json!([]);
    b.save();
    fails_cleanly(&rt, "run", &b, &id, &[&["args"]]);
}

#[test]
fn an_unknown_namespace_type_is_refused_cleanly() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({ "type": "bogusns" }));
    b.save();
    let id = unique_id("badns");
    fails_cleanly(&rt, "create", &b, &id, &[&["bogusns"]]);
}

#[test]
fn a_missing_rootfs_is_refused_cleanly() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["root"]["path"] = json!("no-such-rootfs");
    b.save();
    let id = unique_id("norootfs");
    let needles: &[&[&str]] = &[&["no-such-rootfs"], &["no such file", "not exist"]];
    fails_cleanly(&rt, "create", &b, &id, needles);
    assert!(
        !b.host("/../no-such-rootfs").exists(),
        "the runtime created the rootfs"
    );
}

#[test]
fn a_missing_executable_is_refused_cleanly_by_create_and_run() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["/bin/no-such-exe", "arg"]);
    b.save();
    let needles: &[&[&str]] = &[&["no-such-exe"], &["no such file", "not found"]];
    fails_cleanly(&rt, "create", &b, &unique_id("noexe"), needles);
    fails_cleanly(&rt, "run", &b, &unique_id("noexe"), needles);
}

#[test]
fn a_missing_bind_source_is_refused_cleanly_after_other_mounts() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let gone = host_tempdir("gone");
    let source = gone.path().join("no-such-source");
    b.mount(json!({ "destination": "/data", "type": "bind",
                    "source": source.to_str().unwrap(), "options": ["rbind"] }));
    b.save();
    let id = unique_id("nosrc");
    fails_cleanly(&rt, "create", &b, &id, &[&["no-such-source"]]);
}

#[test]
fn a_duplicate_id_is_refused_and_the_first_container_is_untouched() {
    let rt = Runtime::new();
    let mut first = Bundle::new();
    first.sh("exec sleep 1000");
    let id = unique_id("dup");
    rt.create(&first, &id);
    let pid = rt.init_pid(&id);

    let mut second = Bundle::new();
    second.sh("exec sleep 1000");
    second.save();
    let (out, log) = rt.run_logged(&["create", "--bundle", second.path(), &id]);
    out.code_is(1);
    assert_eq!(out.stderr_lines().len(), 1, "{out}");
    assert!(out.stderr.contains("already exists"), "{out}");
    assert!(assert_one_error_record(log.path()).contains("already exists"));
    let traces =
        support::leftovers::processes_in(std::path::Path::new(second.path()), &[second.path()]);
    assert!(traces.is_empty(), "the refused create left {traces:?}");
    assert!(support::leftovers::mountinfo_lines_mentioning(second.path()).is_empty());

    let state = rt.state(&id);
    assert_eq!(state["status"], "created");
    assert_eq!(state["pid"], pid);
    assert_eq!(state["bundle"], first.path());
    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&first, &id);
}

#[test]
fn json_log_format_without_a_log_file_writes_one_record_to_stderr() {
    let rt = Runtime::new();
    let b = Bundle::new();
    b.save_raw("not json at all");
    let id = unique_id("stderrjson");
    let out = rt.run(&["--log-format", "json", "create", "--bundle", b.path(), &id]);
    out.code_is(1);
    let lines = out.stderr_lines();
    assert_eq!(lines.len(), 1, "{out}");
    let rec: serde_json::Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("stderr is not one JSON record ({e}):\n{out}"));
    assert_eq!(rec["level"], "error");
    assert!(
        support::is_rfc3339(rec["time"].as_str().unwrap_or("")),
        "{rec}"
    );
    assert!(rec["msg"].as_str().is_some_and(|m| !m.is_empty()), "{rec}");
    rt.assert_clean(&b, &id);
}

#[test]
fn proc_on_a_symlinked_destination_is_refused_cleanly() {
    // An image whose /proc is a link elsewhere must not get procfs mounted there (runc
    // CVE-2019-19921 class): create fails, the link's target gets no mount, nothing is left.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    let proc_dir = b.host("/proc");
    let _ = std::fs::remove_dir_all(&proc_dir);
    std::fs::create_dir_all(b.host("/etc/fakeproc")).unwrap();
    std::os::unix::fs::symlink("/etc/fakeproc", &proc_dir).unwrap();
    b.args(&["/bin/true"]);
    b.save();
    let id = unique_id("procsym");
    fails_cleanly(&rt, "create", &b, &id, &[&["/proc"], &["symlink"]]);
    assert_eq!(
        std::fs::read_dir(b.host("/etc/fakeproc")).unwrap().count(),
        0
    );
}

/// `process.user.uid`/`gid` 4294967295 is `(uid_t)-1`, which setresuid(2)/setresgid(2) read
/// as "leave unchanged" (the process would run as root): it is refused with one clear error
/// line, as runc refuses it ("uids and gids must be in range 0-2147483647"), not passed on
/// (a debug build once tripped rustix's assertion in the child instead).
#[test]
fn uid_and_gid_minus_one_are_refused_with_a_clear_error() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("id -u; id -g").config["process"]["user"] =
        json!({"uid": 4294967295u32, "gid": 4294967295u32});
    let out = rt.run_fg(&b, &unique_id("uid-minus-one"));
    out.code_is(1);
    let lines = out.stderr_lines();
    assert!(
        lines.len() == 1 && mentions_any(lines[0], &["uid", "gid", "4294967295"]),
        "expected one error line saying what is wrong with the config:\n{out}"
    );
}

/// With `--log F --log-format json` a command-line error (an unknown flag) leaves exactly one
/// error record (design §3; containerd and podman read the log for the message), as runc
/// writes `{"level":"error","msg":"flag provided but not defined: -…"}`, besides clap's text
/// on stderr and a failing status.
#[test]
fn an_unknown_flag_leaves_one_error_record_in_the_json_log() {
    let rt = Runtime::new();
    let (out, log) = rt.run_logged(&[
        "create",
        "--no-such-flag",
        "--bundle",
        "/nonexistent",
        "usage-log",
    ]);
    assert_ne!(out.code(), Some(0), "{out}");
    assert_one_error_record(log.path());
}

/// AppArmor and SELinux labels pier cannot apply are refused, never ignored (a process must not
/// run unconfined because its profile was dropped); runc fails each of them on this host too.
#[test]
fn lsm_labels_are_refused_cleanly() {
    let rt = Runtime::new();
    let cases: [(&str, &str, &str, &[&[&str]]); 3] = [
        (
            "process",
            "apparmorProfile",
            "pier-no-such-profile",
            &[&["apparmor"]],
        ),
        (
            "process",
            "selinuxLabel",
            "system_u:system_r:container_t:s0",
            &[&["selinux"]],
        ),
        (
            "linux",
            "mountLabel",
            "system_u:object_r:container_file_t:s0",
            &[&["mountLabel", "context="]],
        ),
    ];
    for (section, key, value, needles) in cases {
        let mut b = Bundle::new();
        b.config[section][key] = json!(value);
        b.save();
        fails_cleanly(&rt, "create", &b, &unique_id("lsm"), needles);
    }
}

/// A memory limit below what the init needs to set itself up: the OOM killer kills it during
/// set-up, and the error says so and names the limit (runc: "unable to set memory limit to
/// N"), with nothing left behind.
#[test]
fn a_too_low_memory_limit_is_named_and_leaves_nothing() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["resources"] = json!({ "memory": { "limit": 4096 } });
    b.save();
    let id = unique_id("lowmem");
    let needle: &[&str] = &["OOM killer: the memory limit of 4096 bytes is too low"];
    fails_cleanly(&rt, "create", &b, &id, &[needle]);
    fails_cleanly(&rt, "run", &b, &id, &[needle]);
}
