//! Issue 11: OCI hooks at all six points (runtime-spec runtime.md "Lifecycle", config.md
//! "POSIX-platform Hooks"), for real, as root. A recording hook (a `#!/bin/sh` script) writes
//! what it saw into a host directory that is also bind-mounted at /rec in the container: its
//! stdin state, argv, environment, working directory and namespace links, and appends its
//! point to `order`. Failing hooks (each point), a hook past its timeout, and a Docker-style
//! prestart hook whose path is another process's `/proc/<pid>/exe`.
//!
//! Against runc (`PIER_BIN=/usr/sbin/runc`, Debian's 1.1.5) the tests that check the pid of
//! createContainer/startContainer (runc: 1, the pid inside the container), poststart's status
//! (runc runs poststart in create, `created`), a failing startContainer (runc's start
//! succeeds) and the poststop error rule (runc fails delete) fail: docs/hooks.md lists these.

mod support;

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use support::{host_tempdir, unique_id, Bundle, Runtime};

/// The recording hook: `rec.sh DIR POINT ARGS...`.
const RECORDER: &str = r#"#!/bin/sh
# What this hook saw, into DIR/POINT.*; POINT appended to DIR/order.
d=$1; p=$2
cat > "$d/$p.stdin"
readlink /proc/self/cwd > "$d/$p.cwd"
tr '\0' '\n' < /proc/self/environ > "$d/$p.env"
for a in "$@"; do echo "$a"; done > "$d/$p.argv"
for ns in mnt net pid uts ipc; do readlink /proc/self/ns/$ns; done > "$d/$p.ns"
echo "$p" >> "$d/order"
"#;

/// Namespaces the recorder reports, in its order.
const NS: [&str; 5] = ["mnt", "net", "pid", "uts", "ipc"];

/// A bundle whose process appends `process` to /rec/order, with the recording directory (a
/// host temp dir holding `rec.sh`) bound at /rec.
struct Recorded {
    bundle: Bundle,
    dir: tempfile::TempDir,
}

impl Recorded {
    fn new() -> Self {
        let dir = host_tempdir("hooks");
        let script = dir.path().join("rec.sh");
        fs::write(&script, RECORDER).unwrap();
        fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).unwrap();
        let mut bundle = Bundle::new();
        bundle.mount(json!({"destination": "/rec", "type": "bind",
                            "source": dir.path(), "options": ["rbind"]}));
        bundle.sh("echo process >> /rec/order");
        bundle.config["annotations"] = json!({"org.pier.test": "hooks"});
        Recorded { bundle, dir }
    }

    fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The recorder as a hook of `point`; `inside`: by its container path (startContainer
    /// runs after pivot_root).
    fn hook(&self, point: &str, inside: bool) -> Value {
        let (path, dir) = if inside {
            ("/rec/rec.sh".to_string(), "/rec".to_string())
        } else {
            (
                self.dir().join("rec.sh").display().to_string(),
                self.dir().display().to_string(),
            )
        };
        json!({"path": path, "args": ["rec", dir, point, "two words"]})
    }

    /// One recorder hook at every point.
    fn record_all(&mut self) {
        let mut hooks = serde_json::Map::new();
        for point in POINTS {
            let inside = point == "startContainer";
            hooks.insert(point.to_string(), json!([self.hook(point, inside)]));
        }
        self.bundle.config["hooks"] = Value::Object(hooks);
    }

    /// What `point` recorded in file `what` (stdin, cwd, env, argv, ns), None if it did not
    /// run.
    fn seen(&self, point: &str, what: &str) -> Option<String> {
        fs::read_to_string(self.dir().join(format!("{point}.{what}"))).ok()
    }

    #[track_caller]
    fn state(&self, point: &str) -> Value {
        let text = self
            .seen(point, "stdin")
            .unwrap_or_else(|| panic!("{point} did not run"));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{point} stdin {text:?}: {e}"))
    }

    /// The lines of `order`.
    fn order(&self) -> Vec<String> {
        fs::read_to_string(self.dir().join("order"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }
}

const POINTS: [&str; 6] = [
    "prestart",
    "createRuntime",
    "createContainer",
    "startContainer",
    "poststart",
    "poststop",
];

fn ns_links(pid: &str) -> Vec<String> {
    NS.iter()
        .map(|ns| {
            fs::read_link(format!("/proc/{pid}/ns/{ns}"))
                .unwrap()
                .display()
                .to_string()
        })
        .collect()
}

fn lines(text: &str) -> Vec<String> {
    text.lines().map(str::to_owned).collect()
}

#[test]
fn each_point_runs_in_order_with_its_state_namespaces_cwd_argv_and_env() {
    let rt = Runtime::new();
    let mut r = Recorded::new();
    r.record_all();
    r.bundle.config["hooks"]["prestart"][0]["env"] = json!(["HOOK=prestart", "TWO=a b"]);
    let id = unique_id("hooks");
    rt.create(&r.bundle, &id);
    let pid = rt.init_pid(&id);
    let init_ns = ns_links(&pid.to_string());
    assert_eq!(
        r.order(),
        ["prestart", "createRuntime", "createContainer"],
        "after create"
    );
    rt.start(&id);
    rt.wait_gone(pid);
    rt.run(&["delete", &id]).ok();
    rt.assert_clean(&r.bundle, &id);

    let order = r.order();
    let hooks: Vec<&str> = order
        .iter()
        .map(String::as_str)
        .filter(|p| *p != "process")
        .collect();
    assert_eq!(hooks, POINTS, "hook order");
    let at = |p: &str| order.iter().position(|o| o == p).unwrap();
    assert!(at("startContainer") < at("process"), "{order:?}");

    let host_ns = ns_links("self");
    let status = [
        "creating", "creating", "creating", "created", "running", "stopped",
    ];
    let test_cwd = std::env::current_dir().unwrap().display().to_string();
    let rootfs = r.bundle.rootfs().display().to_string();
    let cwd = [
        r.bundle.path(),
        r.bundle.path(),
        rootfs.as_str(),
        "/",
        test_cwd.as_str(),
        test_cwd.as_str(),
    ];
    for (i, point) in POINTS.into_iter().enumerate() {
        let state = r.state(point);
        assert_eq!(state["status"], status[i], "{point}: {state}");
        assert_eq!(state["id"], id.as_str(), "{point}: {state}");
        assert_eq!(state["bundle"], r.bundle.path(), "{point}: {state}");
        assert_eq!(
            state["annotations"],
            json!({"org.pier.test": "hooks"}),
            "{point}"
        );
        assert!(state["ociVersion"].is_string(), "{point}: {state}");
        if point == "poststop" {
            assert!(state.get("pid").is_none(), "{point}: {state}");
        } else {
            // The host's view of the init, for the hooks inside the container too.
            assert_eq!(state["pid"], pid, "{point}: {state}");
        }
        let inside = matches!(point, "createContainer" | "startContainer");
        let ns = lines(&r.seen(point, "ns").unwrap());
        assert_eq!(
            &ns,
            if inside { &init_ns } else { &host_ns },
            "{point} namespaces"
        );
        assert_eq!(
            r.seen(point, "cwd").unwrap().trim_end(),
            cwd[i],
            "{point} cwd"
        );
        let dir = if point == "startContainer" {
            "/rec".to_string()
        } else {
            r.dir().display().to_string()
        };
        assert_eq!(
            lines(&r.seen(point, "argv").unwrap()),
            [dir.as_str(), point, "two words"],
            "{point} argv"
        );
    }

    // env: exactly as given; without `env`, pier's own in its namespace (runc), the
    // container process's inside it (runc: the init's environment), with HOME once the
    // user is set.
    let env = |p: &str| -> BTreeMap<String, String> {
        r.seen(p, "env")
            .unwrap()
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    };
    let exact: BTreeMap<String, String> = [("HOOK", "prestart"), ("TWO", "a b")]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(env("prestart"), exact);
    let ours: BTreeMap<String, String> = std::env::vars().collect();
    assert_eq!(env("createRuntime"), ours);
    let process: BTreeMap<String, String> = r.bundle.config["process"]["env"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e.as_str().unwrap().split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    assert_eq!(env("createContainer"), process);
    let mut with_home = process.clone();
    with_home.insert("HOME".into(), "/root".into());
    assert_eq!(env("startContainer"), with_home);
}

#[test]
fn hooks_are_recorded_in_state_json_and_listed_in_features() {
    let rt = Runtime::new();
    let mut r = Recorded::new();
    r.record_all();
    let id = unique_id("hooksrec");
    rt.create(&r.bundle, &id);
    let text = fs::read_to_string(rt.root().join(&id).join("state.json")).unwrap();
    let state: Value = serde_json::from_str(&text).unwrap();
    for point in ["poststart", "poststop"] {
        assert_eq!(
            state["hooks"][point][0]["path"],
            r.hook(point, false)["path"],
            "{text}"
        );
    }
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&r.bundle, &id);
    assert!(
        r.seen("poststop", "stdin").is_some(),
        "poststop after delete"
    );

    let features: Value = serde_json::from_str(&rt.run(&["features"]).ok().stdout).unwrap();
    assert_eq!(features["hooks"], json!(POINTS));
}

/// A hook that prints and fails (`/bin/sh` exists on the host and in the image).
fn failing(point: &str) -> Value {
    json!({"path": "/bin/sh",
           "args": ["sh", "-c", format!("echo out-{point}; echo err-{point} >&2; exit 3")]})
}

#[test]
fn a_failing_create_or_start_hook_fails_naming_it_and_leaves_nothing() {
    for point in [
        "prestart",
        "createRuntime",
        "createContainer",
        "startContainer",
    ] {
        for verb in ["create", "run"] {
            let rt = Runtime::new();
            let mut r = Recorded::new();
            let inside = point == "startContainer";
            // The failing hook, then a recorder that must not run; and a poststop recorder.
            r.bundle.config["hooks"] = json!({
                point: [failing(point), r.hook(point, inside)],
                "poststop": [r.hook("poststop", false)],
            });
            let id = unique_id("hookfail");
            let wanted = [
                format!("error running {point} hook #0 (/bin/sh)"),
                "exit status 3".to_string(),
                format!("out-{point}"),
                format!("err-{point}"),
            ];
            let groups: Vec<[&str; 1]> = wanted.iter().map(|w| [w.as_str()]).collect();
            let needles: Vec<&[&str]> = groups.iter().map(|g| &g[..]).collect();
            // The failure contract of tests/failures.rs: status 1, one stderr line, one
            // JSON log record, nothing left.
            let out = match (verb, inside) {
                ("create", true) => {
                    rt.create(&r.bundle, &id);
                    rt.fails_cleanly(&["start", &id], &r.bundle, &id, &needles)
                }
                _ => {
                    let path = r.bundle.save();
                    rt.fails_cleanly(&[verb, "--bundle", path, &id], &r.bundle, &id, &needles)
                }
            };
            let ctx = format!("{point} ({verb}): {out}");
            for needle in &wanted {
                assert!(out.stderr.contains(needle), "{needle:?} missing: {ctx}");
            }
            assert_eq!(r.order(), ["poststop"], "{ctx}");
            assert_eq!(r.state("poststop")["status"], "stopped", "{ctx}");
        }
    }
}

#[test]
fn failing_poststart_and_poststop_hooks_are_warnings() {
    let rt = Runtime::new();
    let mut r = Recorded::new();
    r.bundle.config["hooks"] = json!({
        "poststart": [failing("poststart"), r.hook("poststart", false)],
        "poststop": [failing("poststop"), r.hook("poststop", false)],
    });
    let id = unique_id("hookwarn");
    // Warnings go to stderr without --debug, as runc's (a --log file keeps errors only: podman).
    let out = rt.run(&["run", "--bundle", r.bundle.save(), &id]);
    out.ok();
    rt.assert_clean(&r.bundle, &id);
    for point in ["poststart", "poststop"] {
        let needle = format!("error running {point} hook #0 (/bin/sh): exit status 3");
        assert!(out.stderr.contains(&needle), "{needle:?} missing: {out}");
    }
    let order = r.order();
    assert!(
        order.contains(&"poststart".into()) && order.last().map(String::as_str) == Some("poststop"),
        "the rest of each list ran: {order:?}"
    );
}

/// A hook runs in pier's process group and session, as runc's: it is not a group leader, so
/// it may call setsid(2) (a hook leading its own group got EPERM, and a terminal's ^C and
/// `timeout(1)` no longer reached it).
#[test]
fn a_hook_is_in_pier_s_process_group_and_may_call_setsid() {
    let rt = Runtime::new();
    let mut r = Recorded::new();
    let out = r.dir().join("setsid.out");
    let script = format!(
        "python3 -c 'import os; os.setsid(); print(\"setsid ok\")' > {}",
        out.display()
    );
    r.bundle.config["hooks"] = json!({
        "createRuntime": [{"path": "/bin/sh", "args": ["sh", "-c", script]}],
    });
    let id = unique_id("hooksetsid");
    rt.run(&["create", "--bundle", r.bundle.save(), &id]).ok();
    assert_eq!(fs::read_to_string(&out).unwrap().trim(), "setsid ok");
    rt.run(&["delete", "-f", &id]).ok();
    rt.assert_clean(&r.bundle, &id);
}

#[test]
fn a_hook_past_its_timeout_is_killed_with_its_children_and_fails_the_create() {
    let rt = Runtime::new();
    let mut r = Recorded::new();
    let pidfile = r.dir().join("sleeper.pid");
    let childfile = r.dir().join("child.pid");
    let script = format!(
        "sleep 1000 & echo $! > {}; echo $$ > {}; exec sleep 1000",
        childfile.display(),
        pidfile.display()
    );
    r.bundle.config["hooks"] = json!({
        "createRuntime": [{"path": "/bin/sh", "timeout": 1, "args": ["sh", "-c", script]}],
        "poststop": [r.hook("poststop", false)],
    });
    let id = unique_id("hooktime");
    let out = rt.run(&["create", "--bundle", r.bundle.save(), &id]);
    out.code_is(1);
    assert!(
        out.stderr.contains("error running createRuntime hook #0")
            && out.stderr.contains("timeout of 1s"),
        "{out}"
    );
    let pid = fs::read_to_string(&pidfile).unwrap();
    assert!(
        !PathBuf::from(format!("/proc/{}", pid.trim())).exists(),
        "the hook (pid {pid}) was killed and reaped"
    );
    let child = fs::read_to_string(&childfile).unwrap();
    rt.wait_gone(child.trim().parse().unwrap()); // what the hook forked: its process group
    rt.assert_clean(&r.bundle, &id);
    assert_eq!(r.order(), ["poststop"]);
}

/// Docker's libnetwork-setkey: a prestart hook whose path is `/proc/<dockerd pid>/exe`, with
/// its own argv[0]. Here the other process is a host shell waiting on its stdin.
#[test]
fn a_prestart_hook_at_another_process_exe_runs_it() {
    let mut other = std::process::Command::new("/bin/sh")
        .args(["-c", "read _"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rt = Runtime::new();
    let mut r = Recorded::new();
    let out = r.dir().join("setkey");
    let script = format!(
        "echo \"$0\" > {0}.argv0; cat > {0}.stdin; readlink /proc/$$/exe > {0}.exe",
        out.display()
    );
    r.bundle.config["hooks"] = json!({"prestart": [{
        "path": format!("/proc/{}/exe", other.id()),
        "args": ["libnetwork-setkey", "-c", script],
    }]});
    let id = unique_id("hookexe");
    rt.create(&r.bundle, &id);
    let pid = rt.init_pid(&id);
    rt.run(&["delete", "--force", &id]).ok();
    drop(other.stdin.take());
    other.wait().unwrap();
    rt.assert_clean(&r.bundle, &id);
    let read = |ext: &str| fs::read_to_string(out.with_extension(ext)).unwrap();
    assert_eq!(read("argv0").trim_end(), "libnetwork-setkey");
    assert_eq!(
        read("exe").trim_end(),
        fs::canonicalize("/bin/sh").unwrap().display().to_string()
    );
    let state: Value = serde_json::from_str(&read("stdin")).unwrap();
    assert_eq!(state["pid"], pid);
    assert_eq!(state["status"], "creating");
    assert_eq!(state["id"], id.as_str());
}

/// What one runtime's hooks saw, per point, reduced to what must match runc: stdin keys and
/// status, cwd, argv, env, and whether the namespaces were the host's or the init's.
fn observed_with(bin: &str) -> BTreeMap<String, Vec<String>> {
    let root = host_tempdir("hooks-root");
    let mut r = Recorded::new();
    r.record_all();
    // runc 1.1 runs poststart in create: left out (docs/hooks.md).
    r.bundle.config["hooks"]
        .as_object_mut()
        .unwrap()
        .remove("poststart");
    let id = unique_id("hookparity");
    let runtime = |args: &[&str]| {
        let mut cmd = std::process::Command::new(bin);
        cmd.arg("--root").arg(root.path()).args(args);
        support::runner::run_command(cmd, support::TIMEOUT)
    };
    runtime(&["create", "--bundle", r.bundle.save(), &id]).ok();
    let state: Value = serde_json::from_str(&runtime(&["state", &id]).ok().stdout).unwrap();
    let pid = state["pid"].as_i64().unwrap();
    let init_ns = ns_links(&pid.to_string());
    runtime(&["start", &id]).ok();
    assert!(support::runner::wait_pid_gone(
        pid as i32,
        std::time::Instant::now() + support::TIMEOUT
    ));
    runtime(&["delete", &id]).ok();
    support::assert_no_leftovers(root.path(), &id, r.bundle.path());
    let host_ns = ns_links("self");
    let bundle = r.bundle.path().to_string();
    let dir = r.dir().display().to_string();
    let mut seen = BTreeMap::new();
    for point in POINTS.into_iter().filter(|p| *p != "poststart") {
        let st = r.state(point);
        let mut keys: Vec<&String> = st.as_object().unwrap().keys().collect();
        keys.sort();
        let ns = lines(&r.seen(point, "ns").unwrap());
        let where_ = if ns == host_ns {
            "host"
        } else if ns == init_ns {
            "container"
        } else {
            "other"
        };
        let mut env: Vec<String> = lines(&r.seen(point, "env").unwrap());
        env.sort();
        let normalize = |s: String| s.replace(&bundle, "<bundle>").replace(&dir, "<rec>");
        let mut facts = vec![
            format!("keys {keys:?} status {}", st["status"]),
            format!("cwd {}", r.seen(point, "cwd").unwrap().trim_end()),
            format!("argv {:?}", lines(&r.seen(point, "argv").unwrap())),
            format!("namespaces {where_}"),
        ];
        facts.extend(env.into_iter().map(|e| format!("env {e}")));
        seen.insert(
            point.to_string(),
            facts.into_iter().map(normalize).collect(),
        );
    }
    seen
}

/// The same bundle under runc and pier: each point's hook sees the same state fields and
/// status, cwd, argv, environment and namespaces (the pid inside the container is the one
/// known difference, docs/hooks.md). Skipped without /usr/sbin/runc.
#[test]
fn hooks_see_what_they_see_under_runc() {
    let runc = "/usr/sbin/runc";
    if !Path::new(runc).exists() {
        eprintln!("no {runc}: skipped");
        return;
    }
    let ours = observed_with(support::runtime_bin().to_str().unwrap());
    let theirs = observed_with(runc);
    for (point, facts) in &theirs {
        assert_eq!(&ours[point], facts, "{point}: pier (left) vs runc (right)");
    }
}

/// With a new user namespace, pier's hooks run as host root and createContainer as the
/// container's root, inside the mapping (shown by a hook that prints its uid_map and fails).
#[test]
fn with_a_user_namespace_create_container_runs_inside_the_mapping() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    let map = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    b.config["linux"]["uidMappings"] = map.clone();
    b.config["linux"]["gidMappings"] = map;
    let print_map = |point: &str, code: u8| {
        json!({"path": "/bin/sh", "args": ["sh", "-c",
            format!("echo {point}: $(cat /proc/self/uid_map) >&2; exit {code}")]})
    };
    b.config["hooks"] = json!({
        "createRuntime": [print_map("createRuntime", 0)],
        "createContainer": [print_map("createContainer", 1)],
    });
    let id = unique_id("hookuserns");
    let out = rt.run(&["create", "--bundle", b.save(), &id]);
    out.code_is(1);
    assert!(
        out.stderr.contains("createContainer: 0 100000 65536"),
        "{out}"
    );
    rt.assert_clean(&b, &id);
}
