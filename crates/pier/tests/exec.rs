//! `exec`: a new process in a running container, foreground (output, exit status, 128+N,
//! forwarded signals) and detached (--pid-file), with the container's namespaces and cgroup,
//! the flags that override config.json's process, `--process` JSON, the argv shapes of
//! go-runc and CRI-O, and runc's errors. Needs root. Passes with `PIER_BIN=/usr/sbin/runc`.

mod support;

use std::io::IoSliceMut;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use rustix::process::Signal;
use serde_json::json;
use support::{mentions_any, unique_id, Bundle, Runtime};

/// A started container whose init sleeps.
fn running(rt: &Runtime, tag: &str) -> (Bundle, String) {
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = unique_id(tag);
    rt.create(&b, &id);
    rt.start(&id);
    (b, id)
}

/// `readlink /proc/<pid>/ns/<name>` on the host.
fn ns_of(pid: i32, name: &str) -> String {
    let link = std::fs::read_link(format!("/proc/{pid}/ns/{name}")).expect("read ns link");
    link.to_string_lossy().into_owned()
}

#[test]
fn exec_echo_prints_and_exits_zero() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-echo");
    let out = rt.run(&["exec", &id, "echo", "hello", "-n"]);
    out.ok();
    assert_eq!(
        out.stdout, "hello -n\n",
        "the tail after the id is the command, verbatim:\n{out}"
    );
}

#[test]
fn exit_status_propagates_and_a_killed_process_gives_128_plus_n() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-status");
    rt.run(&["exec", &id, "sh", "-c", "exit 7"]).code_is(7);
    rt.run(&["exec", &id, "sh", "-c", "kill -KILL $$"])
        .code_is(128 + Signal::KILL.as_raw());
}

#[test]
fn exec_joins_the_init_namespaces_and_cgroup() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-ns");
    let init = rt.init_pid(&id);
    let script = "hostname; for n in mnt pid net ipc uts cgroup; do readlink /proc/self/ns/$n; done; \
                  cat /proc/1/cmdline | tr '\\0' ' '; echo; cat /proc/self/cgroup; echo ---; cat /proc/1/cgroup";
    let out = rt.run(&["exec", &id, "sh", "-c", script]);
    out.ok();
    let (head, init_cgroup) = out.stdout.split_once("---\n").expect("separator");
    let lines: Vec<&str> = head.lines().collect();
    assert_eq!(lines[0], "itest", "{out}");
    for (i, n) in ["mnt", "pid", "net", "ipc", "uts", "cgroup"]
        .iter()
        .enumerate()
    {
        assert_eq!(
            lines[1 + i],
            ns_of(init, n),
            "{n} namespace differs from the init's:\n{out}"
        );
    }
    assert_eq!(
        lines[7].trim(),
        "sleep 1000",
        "pid 1 is the container's init:\n{out}"
    );
    let own_cgroup = lines[8..].join("\n") + "\n";
    assert_eq!(own_cgroup, init_cgroup, "{out}");
}

#[test]
fn env_cwd_user_and_additional_gids_flags_apply() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-flags");
    let out = rt.run(&[
        "exec",
        "-e",
        "FOO=bar",
        "-e",
        "TERM=dumb",
        "--cwd",
        "/etc",
        "-u",
        "1000:100",
        "-g",
        "10",
        &id,
        "sh",
        "-c",
        "echo $FOO $TERM; pwd; id -u; id -g; id -G",
    ]);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..4], ["bar dumb", "/etc", "1000", "100"], "{out}");
    assert!(
        lines[4].split(' ').any(|g| g == "10"),
        "additional gid 10 missing:\n{out}"
    );
}

/// A runtime-spec process file in a temp dir.
fn process_file(dir: &tempfile::TempDir, process: serde_json::Value) -> String {
    let path = dir.path().join("process.json");
    std::fs::write(&path, process.to_string()).unwrap();
    path.to_str().unwrap().to_owned()
}

fn process_json(args: &[&str]) -> serde_json::Value {
    json!({
        "terminal": false,
        "user": { "uid": 1000, "gid": 1000 },
        "args": args,
        "env": ["PATH=/bin", "X=from-json"],
        "cwd": "/home/tester",
        "capabilities": { "bounding": ["CAP_KILL"], "effective": [], "permitted": [] },
        "noNewPrivileges": true
    })
}

#[test]
fn crio_foreground_process_file_shape() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-crio");
    let dir = support::host_tempdir("exec-process");
    let file = process_file(
        &dir,
        process_json(&[
            "sh",
            "-c",
            "echo $X; pwd; id -u; grep NoNewPrivs /proc/self/status; exit 3",
        ]),
    );
    let out = rt.run(&["exec", "--process", &file, &id]);
    out.code_is(3);
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[..3], ["from-json", "/home/tester", "1000"], "{out}");
    assert!(
        lines[3].ends_with('1'),
        "noNewPrivileges not applied:\n{out}"
    );
}

#[test]
fn go_runc_detached_shape_returns_with_the_pid_of_a_process_in_the_container() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-gorunc");
    let init = rt.init_pid(&id);
    let dir = support::host_tempdir("exec-detach");
    let file = process_file(&dir, process_json(&["sleep", "1000"]));
    let pid_file = dir.path().join("exec.pid");
    let pid_file = pid_file.to_str().unwrap();
    rt.run(&[
        "exec",
        "--process",
        &file,
        "--pid-file",
        pid_file,
        "--detach",
        &id,
    ])
    .ok();
    let pid = support::stage::read_pid(pid_file.as_ref());
    assert!(
        support::runner::pid_alive(pid),
        "the detached process {pid} is not running"
    );
    for n in ["mnt", "pid", "net", "ipc", "uts"] {
        assert_eq!(
            ns_of(pid, n),
            ns_of(init, n),
            "{n} namespace of the exec'd process"
        );
    }
    let cgroup = |p: i32| std::fs::read_to_string(format!("/proc/{p}/cgroup")).unwrap();
    assert_eq!(cgroup(pid), cgroup(init));
    let cmdline = std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap();
    assert_eq!(cmdline, "sleep\x001000\x00");
}

#[test]
fn signals_to_a_foreground_exec_reach_the_process() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-sig");
    let script = "trap 'kill $!; echo got TERM; exit 3' TERM; echo ready; while :; do sleep 1000 </dev/null >/dev/null 2>&1 & wait $!; done";
    let exec = rt.spawn(&["exec", &id, "sh", "-c", script]);
    exec.expect_stdout("ready");
    exec.signal(Signal::TERM);
    let out = exec.wait();
    out.code_is(3);
    assert!(out.stdout.contains("got TERM"), "{out}");
}

#[test]
fn a_missing_executable_fails_with_runc_message() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-missing");
    let out = rt.run(&["exec", &id, "no-such-command"]);
    out.code_is(255);
    assert!(
        out.stderr
            .contains(r#"exec: \"no-such-command\": executable file not found in $PATH"#)
            || out
                .stderr
                .contains(r#"exec: "no-such-command": executable file not found in $PATH"#),
        "{out}"
    );
}

#[test]
fn exec_in_a_stopped_or_missing_container_fails() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("true");
    let id = unique_id("ex-stopped");
    rt.create(&b, &id);
    let init = rt.init_pid(&id);
    rt.start(&id);
    rt.wait_gone(init);
    let out = rt.run(&["exec", &id, "echo", "hi"]);
    out.code_is(255);
    // runc >= 1.2 says "cannot exec in a stopped container"; runc 1.1 tries and fails to open
    // the dead init's namespaces.
    assert!(
        mentions_any(
            &out.stderr,
            &["container not running", "stopped container", "/ns/"]
        ),
        "{out}"
    );
    assert!(out.stdout.is_empty(), "{out}");
    let out = rt.run(&["exec", "no-such-container", "echo", "hi"]);
    out.code_is(255);
    assert!(out.stderr.contains("container does not exist"), "{out}");
}

#[test]
fn exec_in_a_paused_container_is_refused() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-paused");
    rt.run(&["pause", &id]).ok();
    let out = rt.run(&["exec", &id, "echo", "hi"]);
    out.code_is(255);
    assert!(
        out.stderr
            .contains("cannot exec in a paused container (use --ignore-paused to override)"),
        "{out}"
    );
    rt.run(&["resume", &id]).ok();
    rt.run(&["exec", &id, "true"]).ok();
}

#[test]
fn a_bad_process_file_fails_and_starts_nothing() {
    let rt = Runtime::new();
    let (b, id) = running(&rt, "ex-badproc");
    let dir = support::host_tempdir("exec-bad");
    let file = dir.path().join("process.json");
    std::fs::write(&file, "{ not json").unwrap();
    let out = rt.run(&["exec", "--process", file.to_str().unwrap(), &id]);
    out.code_is(255);
    let ps = rt.run(&["ps", "--format", "json", &id]);
    ps.ok();
    let pids: Vec<i32> = serde_json::from_str(&ps.stdout).unwrap();
    assert_eq!(
        pids,
        [rt.init_pid(&id)],
        "only the init is in the container:\n{ps}"
    );
    drop(b);
}

/// pier proxies even when its own stdio is not a terminal (runc insists on /dev/tty).
#[test]
fn foreground_tty_exec_proxies_a_pty_of_the_container() {
    if std::env::var_os("PIER_BIN").is_some() {
        return;
    }
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-tty");
    let out = rt.run(&["exec", "-t", &id, "sh", "-c", "tty; exit 4"]);
    out.code_is(4);
    assert!(out.stdout.starts_with("/dev/pts/"), "{out}");
}

#[test]
fn detached_tty_exec_sends_the_master_to_the_console_socket() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-ttysock");
    let dir = support::host_tempdir("exec-console");
    let path = dir.path().join("console.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let sock = path.to_str().unwrap();
    rt.run(&[
        "exec",
        "-d",
        "-t",
        "--console-socket",
        sock,
        &id,
        "sh",
        "-c",
        "tty; sleep 1000",
    ])
    .ok();
    let (conn, _) = listener.accept().unwrap();
    let master = receive_master(&conn);
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains('\n') {
        let n = rustix::io::read(&master, &mut buf).expect("read the pty master");
        assert!(n > 0, "pty closed before the greeting: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    assert!(seen.starts_with("/dev/pts/"), "{seen:?}");
}

/// The one fd of the console socket's message (go-runc's recvFd framing).
fn receive_master(conn: &std::os::unix::net::UnixStream) -> OwnedFd {
    let mut name = [0u8; 4096];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    rustix::net::recvmsg(
        conn,
        &mut [IoSliceMut::new(&mut name)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    let mut fds: Vec<OwnedFd> = control
        .drain()
        .flat_map(|m| match m {
            RecvAncillaryMessage::ScmRights(fds) => fds.collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(fds.len(), 1, "exactly one fd");
    fds.pop().unwrap()
}

#[test]
fn preserve_fds_passes_extra_descriptors() {
    let rt = Runtime::new();
    let (_b, id) = running(&rt, "ex-fds");
    let files = support::host_tempdir("exec-fds");
    let data = files.path().join("fd3.txt");
    std::fs::write(&data, "through-fd-3\n").unwrap();
    // The host shell opens fd 3 and execs the runtime, which must hand it on.
    let with_fd3 = |flags: &[&str]| {
        let mut cmd = std::process::Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(format!("exec \"$@\" 3<{}", data.display()))
            .arg("sh");
        cmd.arg(support::runtime_bin())
            .args(["--root", rt.root_str(), "exec"]);
        cmd.args(flags).args([
            id.as_str(),
            "sh",
            "-c",
            "cat <&3 2>/dev/null || echo no-fd-3",
        ]);
        support::runner::run_command(cmd, support::TIMEOUT)
    };
    assert_eq!(
        with_fd3(&["--preserve-fds", "1"]).ok().stdout,
        "through-fd-3\n"
    );
    assert_eq!(with_fd3(&[]).ok().stdout, "no-fd-3\n");
}

#[test]
fn cap_and_no_new_privs_flags_apply() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    b.config["process"]["noNewPrivileges"] = json!(false);
    let id = unique_id("ex-caps");
    rt.create(&b, &id);
    rt.start(&id);
    let script = "grep -E '^(CapBnd|CapEff|NoNewPrivs)' /proc/self/status";
    let plain = rt.run(&["exec", &id, "sh", "-c", script]);
    plain.ok();
    let flagged = rt.run(&[
        "exec",
        "--cap",
        "CAP_SYS_ADMIN",
        "--no-new-privs",
        &id,
        "sh",
        "-c",
        script,
    ]);
    flagged.ok();
    let field = |out: &support::Output, name: &str| -> u64 {
        let line = out
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .unwrap_or_else(|| panic!("{name}:\n{out}"));
        // Cap* are hex masks; NoNewPrivs is 0 or 1, the same in hex.
        u64::from_str_radix(line.split_whitespace().nth(1).unwrap(), 16).unwrap()
    };
    const SYS_ADMIN: u64 = 1 << 21;
    assert_eq!(field(&plain, "CapEff:") & SYS_ADMIN, 0, "{plain}");
    assert_ne!(field(&flagged, "CapEff:") & SYS_ADMIN, 0, "{flagged}");
    assert_ne!(field(&flagged, "CapBnd:") & SYS_ADMIN, 0, "{flagged}");
    assert_eq!(field(&plain, "NoNewPrivs:"), 0, "{plain}");
    assert_eq!(field(&flagged, "NoNewPrivs:"), 1, "{flagged}");
}

#[test]
fn exec_in_a_created_container_runs_before_start() {
    // runc allows it: the init's namespaces exist once create returns.
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    let id = unique_id("ex-created");
    rt.create(&b, &id);
    let out = rt.run(&["exec", &id, "hostname"]);
    out.ok();
    assert_eq!(out.stdout, "itest\n", "{out}");
    assert_eq!(rt.state(&id)["status"], "created");
}

#[test]
fn exec_joins_a_time_namespace_of_the_container() {
    // runc 1.1 (Debian 12's) knows no time namespace; runtime-spec 1.2 added it.
    if std::env::var_os("PIER_BIN").is_some() {
        return;
    }
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "1000"]);
    b.namespaces(&["pid", "network", "ipc", "uts", "mount", "time"]);
    let id = unique_id("ex-time");
    rt.create(&b, &id);
    rt.start(&id);
    let init = rt.init_pid(&id);
    assert_ne!(
        ns_of(init, "time"),
        ns_of(std::process::id() as i32, "time")
    );
    let out = rt.run(&["exec", &id, "readlink", "/proc/self/ns/time"]);
    out.ok();
    assert_eq!(out.stdout.trim(), ns_of(init, "time"), "{out}");
}
