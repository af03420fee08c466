//! The runner against real processes (`/bin/sh`, which every test host has).

use super::*;

fn state() -> HookState {
    HookState {
        oci_version: "1.2.0".into(),
        id: "c1".into(),
        status: Status::Creating,
        pid: Some(42),
        bundle: "/b".into(),
        annotations: BTreeMap::from([("k".into(), "v".into())]),
    }
}

/// A hook running `path` with `args` (args[0] is argv[0]), `env` (None: inherit) and no timeout.
fn hook(path: &str, args: &[&str], env: Option<Vec<String>>) -> Hook {
    Hook {
        path: path.into(),
        args: args.iter().map(|a| a.to_string()).collect(),
        env,
        timeout_secs: None,
    }
}

fn sh(script: &str, env: Option<Vec<String>>) -> Hook {
    hook("/bin/sh", &["hook-argv0", "-c", script, "one"], env)
}

/// The pid a hook script wrote into `path`.
fn pid_in(path: &std::path::Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

fn err_of(r: Result<()>) -> String {
    format!("{:#}", r.expect_err("the hook should fail"))
}

#[test]
fn state_json_is_the_runtime_spec_shape() {
    let json = serde_json::to_string(&state()).unwrap();
    assert_eq!(
        json,
        r#"{"ociVersion":"1.2.0","id":"c1","status":"creating","pid":42,"bundle":"/b","annotations":{"k":"v"}}"#
    );
    let stopped = HookState {
        pid: None,
        annotations: BTreeMap::new(),
        ..state().with_status(Status::Stopped)
    };
    assert_eq!(
        serde_json::to_string(&stopped).unwrap(),
        r#"{"ociVersion":"1.2.0","id":"c1","status":"stopped","bundle":"/b"}"#
    );
}

#[test]
fn a_hook_gets_the_state_argv_env_and_cwd() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let script = format!(
        "cat > {o}.stdin; tr '\\0' '\\n' < /proc/$$/cmdline | head -1 > {o}.argv; echo \"$0\" >> {o}.argv; env > {o}.env; pwd > {o}.cwd; ls /proc/self/fd > {o}.fds",
        o = out.display()
    );
    let hook = sh(
        &script,
        Some(vec!["A=1".into(), "PATH=/usr/bin:/bin".into()]),
    );
    run(Point::Prestart, &[hook], &state(), Some(dir.path())).unwrap();
    let read = |ext: &str| std::fs::read_to_string(format!("{}.{ext}", out.display())).unwrap();
    assert_eq!(read("stdin"), serde_json::to_string(&state()).unwrap());
    assert_eq!(read("argv"), "hook-argv0\none\n", "argv[0] is args[0]");
    let env: Vec<_> = read("env").lines().map(str::to_string).collect();
    assert!(env.contains(&"A=1".to_string()), "{env:?}");
    assert!(
        !env.iter().any(|e| e.starts_with("HOME=")),
        "only the given env: {env:?}"
    );
    assert_eq!(read("cwd").trim(), dir.path().to_str().unwrap());
    // 0, 1, 2 and ls's own directory fd: nothing of pier's crosses.
    assert_eq!(read("fds").split_whitespace().count(), 4, "{}", read("fds"));
}

#[test]
fn no_env_key_inherits_pier_environment() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("env");
    let hook = sh(&format!("env > {}", out.display()), None);
    run(Point::Poststop, &[hook], &state(), None).unwrap();
    let env = std::fs::read_to_string(out).unwrap();
    let path = std::env::var("PATH").unwrap();
    assert!(env.lines().any(|l| l == format!("PATH={path}")), "{env}");
}

#[test]
fn a_failing_hook_names_point_index_path_status_and_output() {
    let ok = sh("exit 0", None);
    let bad = sh("echo to-out; echo to-err >&2; exit 3", None);
    let e = err_of(run(Point::CreateRuntime, &[ok, bad], &state(), None));
    assert!(
        e.starts_with("error running createRuntime hook #1 (/bin/sh): exit status 3"),
        "{e}"
    );
    assert!(
        e.contains("stdout: to-out") && e.contains("stderr: to-err"),
        "{e}"
    );
}

#[test]
fn the_first_failure_stops_the_list_but_warnings_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("second-ran");
    let second = sh(&format!("touch {}", mark.display()), None);
    let list = [sh("exit 1", None), second];
    assert!(run(Point::Prestart, &list, &state(), None).is_err());
    assert!(!mark.exists());
    run_warn(Point::Poststop, &list, &state(), None);
    assert!(mark.exists());
}

#[test]
fn a_signal_is_reported() {
    let e = err_of(run(
        Point::Prestart,
        &[sh("kill -9 $$", None)],
        &state(),
        None,
    ));
    assert!(e.contains("killed by signal 9"), "{e}");
}

#[test]
fn a_hook_past_its_timeout_is_killed_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let mut slow = sh(
        &format!("echo $$ > {}; exec sleep 600", pidfile.display()),
        None,
    );
    slow.timeout_secs = Some(1);
    let e = err_of(run(Point::CreateContainer, &[slow], &state(), None));
    assert!(e.contains("ran past its timeout of 1s"), "{e}");
    // Killed and reaped: the pid no longer names a process of ours.
    let pid = pid_in(&pidfile);
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    assert!(!stat.contains("(sleep)"), "the hook still runs: {stat}");
}

#[test]
fn a_child_holding_the_pipes_does_not_keep_pier_waiting() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    // The background sleep inherits stdout and stderr and outlives the hook.
    let hook = sh(
        &format!("sleep 600 & echo $! > {}; echo done", pidfile.display()),
        None,
    );
    run(Point::Poststart, &[hook], &state(), None).unwrap();
    let pid = pid_in(&pidfile);
    let _ =
        rustix::process::kill_process(rustix::process::Pid::from_raw(pid).unwrap(), Signal::KILL);
}

#[test]
fn a_hook_that_ignores_a_large_stdin_does_not_block() {
    let mut big = state();
    big.annotations.insert("big".into(), "x".repeat(4 << 20));
    run(Point::Prestart, &[sh("exit 0", None)], &big, None).unwrap();
}

#[test]
fn exec_failures_are_reported_as_such() {
    let missing = hook("/nonexistent/hook", &[], None);
    let e = err_of(run(Point::Prestart, &[missing], &state(), None));
    assert!(
        e.contains("exec /nonexistent/hook") && e.contains("No such file"),
        "{e}"
    );
}

#[test]
fn a_shebang_script_runs_with_argv_from_args() {
    let dir = tempfile::tempdir().unwrap();
    let script = dir.path().join("hook.sh");
    let out = dir.path().join("out");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\necho \"$@\" > {}\ncat >> {}\n",
            out.display(),
            out.display()
        ),
    )
    .unwrap();
    rustix::fs::chmod(&script, rustix::fs::Mode::from_raw_mode(0o755)).unwrap();
    let mut shebang = hook(script.to_str().unwrap(), &["name", "a", "b"], Some(vec![]));
    shebang.timeout_secs = Some(30);
    run(Point::StartContainer, &[shebang], &state(), None).unwrap();
    let text = std::fs::read_to_string(out).unwrap();
    assert!(text.starts_with("a b\n{\"ociVersion\""), "{text}");
}
