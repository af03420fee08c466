//! `linux.seccomp`: the filter is really loaded into the container process, whichever of the
//! two load points pier picks (with `noNewPrivileges` right before execve; without it before
//! the capabilities are dropped), and a bad profile fails `create` cleanly. Needs root.

mod support;

use serde_json::{json, Value};
use support::{assert_one_error_record, host_tempdir, unique_id, Bundle, Runtime};

/// A Docker-like default profile: errno for everything but an allow list, an argument
/// filter on `clone` and `personality`, ENOSYS for `clone3`.
const DEFAULT_PROFILE: &str = include_str!("fixtures/seccomp-default.json");

/// A bundle running `sh -c script` under `profile`, with or without noNewPrivileges.
fn bundle(script: &str, profile: Value, no_new_privileges: bool) -> Bundle {
    let mut b = Bundle::new();
    b.sh(script);
    b.config["linux"]["seccomp"] = profile;
    b.config["process"]["noNewPrivileges"] = json!(no_new_privileges);
    b
}

fn allow_but(rules: Value) -> Value {
    json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": rules})
}

#[test]
fn an_errno_rule_denies_mkdir_and_nothing_else() {
    let deny_mkdir = allow_but(json!([
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    ]));
    // The three load points: before execve (noNewPrivileges; or CAP_SYS_ADMIN kept), before
    // the identity is applied (neither).
    for (nnp, sys_admin) in [(true, false), (false, true), (false, false)] {
        let rt = Runtime::new();
        let mut b = bundle(
            "mkdir /tmp/d; echo mkdir=$?; touch /tmp/f && ls /tmp",
            deny_mkdir.clone(),
            nnp,
        );
        if sys_admin {
            for set in ["bounding", "effective", "permitted"] {
                b.config["process"]["capabilities"][set]
                    .as_array_mut()
                    .unwrap()
                    .push(json!("CAP_SYS_ADMIN"));
            }
        }
        let id = unique_id("scmp-mkdir");
        let out = rt.run_fg(&b, &id);
        out.ok();
        let case = format!("noNewPrivileges {nnp}, CAP_SYS_ADMIN {sys_admin}");
        assert!(
            out.stderr.contains("Operation not permitted"),
            "{case}:\n{out}"
        );
        assert_eq!(out.stdout, "mkdir=1\nf\n", "{case}:\n{out}");
        assert!(!b.host("/tmp/d").exists());
        rt.assert_clean(&b, &id);
    }
}

#[test]
fn an_argument_filter_matches_only_its_value() {
    // kill(pid, SIGUSR1) fails with EPERM; kill(pid, 0) and kill(pid, SIGUSR2) do not.
    let profile = allow_but(json!([
        {"names": ["kill"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1,
         "args": [{"index": 1, "value": 10, "op": "SCMP_CMP_EQ"}]}
    ]));
    let script = "trap 'echo got-usr1' USR1; trap 'echo got-usr2' USR2; \
                  kill -0 $$ && echo zero-ok; kill -USR1 $$ || echo usr1-denied; kill -USR2 $$";
    let rt = Runtime::new();
    let b = bundle(script, profile, true);
    let id = unique_id("scmp-arg");
    let out = rt.run_fg(&b, &id);
    out.ok();
    assert_eq!(out.stdout, "zero-ok\nusr1-denied\ngot-usr2\n", "{out}");
    rt.assert_clean(&b, &id);
}

#[test]
fn kill_process_kills_the_container_with_sigsys() {
    let profile = allow_but(json!([
        {"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_KILL_PROCESS"}
    ]));
    for nnp in [true, false] {
        let rt = Runtime::new();
        let mut b = bundle("", profile.clone(), nnp);
        b.args(&["mkdir", "/tmp/d"]);
        let id = unique_id("scmp-kill");
        let out = rt.run_fg(&b, &id);
        out.code_is(128 + libc::SIGSYS);
        assert!(!b.host("/tmp/d").exists());
        rt.assert_clean(&b, &id);
    }
}

#[test]
fn a_docker_like_default_profile_runs_a_container() {
    let profile: Value = serde_json::from_str(DEFAULT_PROFILE).unwrap();
    // unshare(2) is outside the allow list (EPERM); personality(PER_LINUX32) is an allowed
    // argument value. Without the profile unshare works: the difference is the filter's.
    let script = "echo hi; unshare -U true; echo unshare=$?; linux32 true; echo linux32=$?";
    let rt = Runtime::new();
    let mut control = Bundle::new();
    control.sh(script);
    let id = unique_id("scmp-none");
    let out = rt.run_fg(&control, &id);
    assert_eq!(out.ok().stdout, "hi\nunshare=0\nlinux32=0\n", "{out}");
    for nnp in [true, false] {
        let mut b = bundle("", profile.clone(), nnp);
        b.args(&["/bin/true"]);
        let id = unique_id("scmp-true");
        rt.run_fg(&b, &id).ok();
        rt.assert_clean(&b, &id);
        let b = bundle(script, profile.clone(), nnp);
        let id = unique_id("scmp-docker");
        let out = rt.run_fg(&b, &id);
        assert_eq!(
            out.ok().stdout,
            "hi\nunshare=1\nlinux32=0\n",
            "noNewPrivileges {nnp}:\n{out}"
        );
        rt.assert_clean(&b, &id);
    }
}

#[test]
fn an_invalid_profile_fails_create_cleanly() {
    let cases = [
        (
            json!({"defaultAction": "SCMP_ACT_EXPLODE"}),
            "SCMP_ACT_EXPLODE",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"], "action": "SCMP_ACT_ALLOW",
                "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_SOMETIMES"}]}]}),
            "SCMP_CMP_SOMETIMES",
        ),
        (
            json!({"defaultAction": "SCMP_ACT_NOTIFY", "listenerPath": "/run/agent.sock"}),
            "not supported",
        ),
    ];
    for (profile, needle) in cases {
        let rt = Runtime::new();
        let b = bundle("true", profile, true);
        let id = unique_id("scmp-bad");
        let (out, log) = rt.run_logged(&["create", "--bundle", b.save(), &id]);
        out.code_is(1);
        assert_eq!(out.stderr_lines().len(), 1, "one error line:\n{out}");
        assert!(out.stderr.contains(needle), "{needle}:\n{out}");
        assert!(assert_one_error_record(log.path()).contains(needle));
        rt.assert_clean(&b, &id);
    }
}

/// A profile that denies close_range(2) (as runtime-tools' default profile does, and as
/// kernels before 5.11 lack it) still runs the init and an exec'd process, and the fds the
/// caller did not pass (3 and 7 here, inherited without close-on-exec) still do not reach
/// them: pier marks what the host's /proc/self/fd lists instead.
#[test]
fn a_profile_denying_close_range_runs_and_still_closes_the_fds() {
    use std::process::Command;
    use support::runner::run_command;
    use support::{runtime_bin, TIMEOUT};
    let deny = allow_but(json!([
        {"names": ["close_range"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    ]));
    let script = "for fd in 3 7; do (true <&$fd) 2>/dev/null && echo leaked-$fd; done; echo ran";
    let files = host_tempdir("fds");
    let data = files.path().join("data");
    std::fs::write(&data, "x").unwrap();
    // The host shell opens fds 3 and 7 without close-on-exec and execs the runtime.
    let with_fds = |rt: &Runtime, args: &[&str]| {
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("exec \"$@\" 3<{0} 7<{0}", data.display()))
            .arg("sh")
            .arg(runtime_bin())
            .args(["--root", rt.root_str()])
            .args(args);
        run_command(cmd, TIMEOUT)
    };
    for nnp in [false, true] {
        let rt = Runtime::new();
        let b = bundle(script, deny.clone(), nnp);
        let id = unique_id("scmp-closerange");
        let out = with_fds(&rt, &["run", "--bundle", b.save(), &id]);
        assert_eq!(out.ok().stdout, "ran\n", "noNewPrivileges {nnp}:\n{out}");
        rt.assert_clean(&b, &id);

        let mut b = bundle("", deny.clone(), nnp);
        b.args(&["sleep", "1000"]);
        let id = unique_id("scmp-closerange-exec");
        rt.create(&b, &id);
        rt.start(&id);
        let out = with_fds(&rt, &["exec", &id, "sh", "-c", script]);
        assert_eq!(
            out.ok().stdout,
            "ran\n",
            "exec, noNewPrivileges {nnp}:\n{out}"
        );
        rt.run(&["delete", "--force", &id]).ok();
        rt.assert_clean(&b, &id);
    }
}

/// A profile that denies openat2(2) (runtime-tools' default profile predates it: its allow
/// list has no openat2) still lets a created container start and an exec'd process run, with
/// the filter loaded early (noNewPrivileges false) or right before execve: the init reopens
/// the exec fifo with a plain openat(2) through a `self/fd` directory it opened before the
/// profile was loaded.
#[test]
fn a_profile_denying_openat2_still_starts_and_execs() {
    let deny = allow_but(json!([
        {"names": ["openat2"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}
    ]));
    for nnp in [false, true] {
        let rt = Runtime::new();
        let b = bundle("echo ran", deny.clone(), nnp);
        let id = unique_id("scmp-openat2");
        let out = rt.run_fg(&b, &id);
        assert_eq!(out.ok().stdout, "ran\n", "noNewPrivileges {nnp}:\n{out}");
        rt.assert_clean(&b, &id);

        let mut b = bundle("", deny.clone(), nnp);
        b.args(&["sleep", "1000"]);
        let id = unique_id("scmp-openat2-exec");
        rt.create(&b, &id);
        rt.start(&id);
        let out = rt.run(&["exec", &id, "sh", "-c", "echo in-exec"]);
        assert_eq!(
            out.ok().stdout,
            "in-exec\n",
            "exec, noNewPrivileges {nnp}:\n{out}"
        );
        rt.run(&["delete", "--force", &id]).ok();
        rt.assert_clean(&b, &id);
    }
}
