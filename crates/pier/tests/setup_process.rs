//! Issue 2, point 2, the `process` half: args, env, cwd, user (uid, gid, additionalGids,
//! umask), rlimits, noNewPrivileges, the five capability sets and oomScoreAdj, each proven
//! from inside the container through the runtime's stdout (foreground run, no terminal).
//! Needs root.

mod support;

use serde_json::json;
use support::{output_of, unique_id, Bundle, Runtime};

/// The value of `Key:` in a `/proc/self/status` dump (tabs collapsed to single spaces).
fn status_field(status: &str, key: &str) -> String {
    status
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{key}:")))
        .unwrap_or_else(|| panic!("no {key} in:\n{status}"))
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

/// Capability bit mask as /proc/self/status prints it.
fn cap_mask(bits: &[u32]) -> String {
    format!("{:016x}", bits.iter().fold(0u64, |m, b| m | 1 << b))
}

const CAP_CHOWN: u32 = 0;
const CAP_KILL: u32 = 5;
const CAP_SETUID: u32 = 7;
const CAP_NET_BIND_SERVICE: u32 = 10;
const CAP_AUDIT_WRITE: u32 = 29;

#[test]
fn args_reach_the_process_verbatim() {
    let mut b = Bundle::new();
    b.args(&[
        "sh",
        "-c",
        "printf '[%s]' \"$0\" \"$@\"",
        "zero",
        "a b",
        "",
        "c\"d",
    ]);
    assert_eq!(output_of(&b), "[zero][a b][][c\"d]");
}

#[test]
fn env_is_the_configured_one_not_the_callers() {
    let mut b = Bundle::new();
    b.config["process"]["env"] = json!(["PATH=/bin", "FOO=bar baz", "EMPTY="]);
    b.sh("env");
    let rt = Runtime::new();
    let id = unique_id("env");
    let mut cmd = rt.command(&["run", "--bundle", b.save(), &id]);
    cmd.env("PIER_ITEST_HOST_ONLY", "leaked");
    let out = support::runner::run_command(cmd, support::TIMEOUT);
    out.ok();
    let env: Vec<&str> = out.stdout.lines().collect();
    for want in ["PATH=/bin", "FOO=bar baz", "EMPTY="] {
        assert!(env.contains(&want), "{want} missing from {env:?}");
    }
    assert!(
        !out.stdout.contains("PIER_ITEST_HOST_ONLY"),
        "host env leaked: {env:?}"
    );
    rt.assert_clean(&b, &id);
}

#[test]
fn cwd_is_the_configured_directory() {
    let mut b = Bundle::new();
    b.config["process"]["cwd"] = json!("/tmp");
    b.sh("pwd");
    assert_eq!(output_of(&b), "/tmp\n");
}

#[test]
fn a_missing_cwd_is_created_inside_the_rootfs() {
    let mut b = Bundle::new();
    b.config["process"]["cwd"] = json!("/work/here");
    b.sh("pwd");
    assert_eq!(output_of(&b), "/work/here\n");
    assert!(b.host("/work/here").is_dir());
}

#[test]
fn user_uid_gid_and_additional_gids_apply() {
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 100, "additionalGids": [10, 1000] });
    b.sh("cat /proc/self/status");
    let status = output_of(&b);
    assert_eq!(status_field(&status, "Uid"), "1000 1000 1000 1000");
    assert_eq!(status_field(&status, "Gid"), "100 100 100 100");
    assert_eq!(status_field(&status, "Groups"), "10 1000");
}

#[test]
fn umask_applies_and_defaults_to_0022() {
    let mut b = Bundle::new();
    b.config["process"]["user"]["umask"] = json!(0o027);
    b.sh("umask");
    assert_eq!(output_of(&b), "0027\n");

    let mut b = Bundle::new();
    b.sh("umask");
    assert_eq!(output_of(&b), "0022\n");
}

#[test]
fn rlimits_apply() {
    let mut b = Bundle::new();
    b.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "soft": 123, "hard": 456 },
        { "type": "RLIMIT_CORE", "soft": 0, "hard": 4096 }
    ]);
    b.sh("ulimit -n; ulimit -Hn; cat /proc/self/limits");
    let out = output_of(&b);
    assert!(out.starts_with("123\n456\n"), "{out}");
    let limits = |name: &str| -> Vec<String> {
        let line = out.lines().find(|l| l.starts_with(name)).unwrap();
        line[name.len()..]
            .split_whitespace()
            .take(2)
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(limits("Max open files"), ["123", "456"]);
    assert_eq!(limits("Max core file size"), ["0", "4096"]);
}

#[test]
fn no_new_privileges_follows_the_config() {
    for (flag, want) in [(true, "1"), (false, "0")] {
        let mut b = Bundle::new();
        b.config["process"]["noNewPrivileges"] = json!(flag);
        b.sh("cat /proc/self/status");
        assert_eq!(
            status_field(&output_of(&b), "NoNewPrivs"),
            want,
            "noNewPrivileges={flag}"
        );
    }
}

#[test]
fn the_five_capability_sets_apply_to_a_non_root_user() {
    // For a non-root user without file capabilities, execve(2) leaves permitted = effective
    // = ambient (capabilities(7)), so all five configured sets are visible.
    let mut b = Bundle::new();
    b.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    b.config["process"]["capabilities"] = json!({
        "bounding": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE", "CAP_AUDIT_WRITE", "CAP_SETUID"],
        "permitted": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "effective": ["CAP_CHOWN", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "inheritable": ["CAP_KILL", "CAP_NET_BIND_SERVICE"],
        "ambient": ["CAP_KILL", "CAP_NET_BIND_SERVICE"]
    });
    b.config["process"]["noNewPrivileges"] = json!(false);
    b.sh("cat /proc/self/status");
    let status = output_of(&b);
    let kept = cap_mask(&[CAP_KILL, CAP_NET_BIND_SERVICE]);
    assert_eq!(status_field(&status, "CapInh"), kept);
    assert_eq!(status_field(&status, "CapPrm"), kept);
    assert_eq!(status_field(&status, "CapEff"), kept);
    assert_eq!(status_field(&status, "CapAmb"), kept);
    let bounding = [
        CAP_CHOWN,
        CAP_KILL,
        CAP_NET_BIND_SERVICE,
        CAP_AUDIT_WRITE,
        CAP_SETUID,
    ];
    assert_eq!(status_field(&status, "CapBnd"), cap_mask(&bounding));
}

#[test]
fn root_keeps_only_the_configured_capabilities() {
    let mut b = Bundle::new();
    let caps = json!(["CAP_CHOWN", "CAP_KILL"]);
    b.config["process"]["capabilities"] = json!({
        "bounding": caps, "permitted": caps, "effective": caps
    });
    b.sh("cat /proc/self/status");
    let status = output_of(&b);
    let mask = cap_mask(&[CAP_CHOWN, CAP_KILL]);
    for set in ["CapBnd", "CapPrm", "CapEff"] {
        assert_eq!(status_field(&status, set), mask, "{set}");
    }
    assert_eq!(status_field(&status, "CapInh"), cap_mask(&[]));
    assert_eq!(status_field(&status, "CapAmb"), cap_mask(&[]));
}

#[test]
fn oom_score_adj_applies() {
    let mut b = Bundle::new();
    b.config["process"]["oomScoreAdj"] = json!(500);
    b.sh("cat /proc/self/oom_score_adj");
    assert_eq!(output_of(&b), "500\n");
}

/// A capability the runtime itself lacks (a host whose bounding set withholds it; here pier
/// runs under `setpriv --bounding-set -sys_nice`) fails create with an error naming it, and
/// leaves nothing behind.
#[test]
fn a_capability_the_runtime_lacks_is_named_in_the_error() {
    use support::runner::run_command;
    use support::{runtime_bin, TIMEOUT};
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["true"]);
    for set in ["bounding", "effective", "permitted", "inheritable"] {
        b.config["process"]["capabilities"][set] = json!(["CAP_KILL", "CAP_SYS_NICE"]);
    }
    let id = unique_id("caps-lacking");
    let mut cmd = std::process::Command::new("setpriv");
    cmd.args(["--bounding-set", "-sys_nice"])
        .arg(runtime_bin())
        .args(["--root", rt.root_str(), "create", "--bundle", b.save(), &id]);
    let out = run_command(cmd, TIMEOUT);
    out.code_is(1);
    assert!(out.stderr.contains("CAP_SYS_NICE"), "{out}");
    assert!(!out.stderr.contains("CAP_KILL"), "{out}");
    rt.assert_clean(&b, &id);
}
