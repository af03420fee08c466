//! Issue 12, part 3: rootless. An unprivileged test user (made here with useradd, its
//! /etc/subuid and /etc/subgid ranges added with usermod) runs the runtime with a
//! `runc spec --rootless` config: single self-map (setgroups denied), ranges through
//! newuidmap/newgidmap, the default state root under $XDG_RUNTIME_DIR, the whole lifecycle,
//! and bad input refused with nothing left behind. Runs against runc too
//! (`PIER_BIN=/usr/sbin/runc`). Needs root (to make the user) and the uidmap package.

mod support;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Instant;

use serde_json::{json, Value};
use support::runner::{run_command, wait_pid_gone, Output, TIMEOUT};
use support::{assert_no_leftovers, runtime_bin, unique_id, Bundle};

const USER: &str = "pier-rootless";
/// The test user's /etc/subuid and /etc/subgid range.
const SUB_START: u32 = 300_000;
const SUB_COUNT: u32 = 65_536;

/// The test user's (uid, gid), created once per test binary.
fn user() -> (u32, u32) {
    static USER_IDS: OnceLock<(u32, u32)> = OnceLock::new();
    *USER_IDS.get_or_init(|| {
        assert!(rustix::process::geteuid().is_root(), "needs root");
        let id = |flag: &str| {
            Command::new("id")
                .args([flag, USER])
                .output()
                .ok()
                .filter(|o| o.status.success())
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .trim()
                        .parse::<u32>()
                        .unwrap()
                })
        };
        if id("-u").is_none() {
            let made = Command::new("useradd")
                .args([
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    USER,
                ])
                .status()
                .expect("useradd");
            assert!(made.success() || id("-u").is_some(), "useradd {USER}");
        }
        let range = format!("{SUB_START}-{}", SUB_START + SUB_COUNT - 1);
        let line = format!("{USER}:{SUB_START}:{SUB_COUNT}");
        let has =
            |file: &str| std::fs::read_to_string(file).is_ok_and(|t| t.lines().any(|l| l == line));
        if !has("/etc/subuid") || !has("/etc/subgid") {
            let ok = Command::new("usermod")
                .args(["--add-subuids", &range, "--add-subgids", &range, USER])
                .status()
                .expect("usermod");
            assert!(ok.success(), "usermod --add-subuids {range} {USER}");
        }
        (id("-u").unwrap(), id("-g").unwrap())
    })
}

/// The runtime binary at a path the test user can execute (Cargo's target dir may not be).
fn binary() -> &'static Path {
    static BIN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BIN.get_or_init(|| {
        let dir = tempfile::Builder::new()
            .prefix("pier-rootless-bin-")
            .tempdir()
            .unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let bin = dir.path().join("runtime");
        std::fs::copy(runtime_bin(), &bin).expect("copy the runtime");
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
        (dir, bin)
    })
    .1
}

/// The state directory name under $XDG_RUNTIME_DIR: `runc` for runc, else `pier`.
fn root_name() -> &'static str {
    if runtime_bin().to_string_lossy().ends_with("runc") {
        "runc"
    } else {
        "pier"
    }
}

/// One unprivileged session: its own $XDG_RUNTIME_DIR, owned by the test user.
struct Session {
    xdg: tempfile::TempDir,
    uid: u32,
    gid: u32,
}

impl Session {
    fn new() -> Self {
        let (uid, gid) = user();
        let xdg = tempfile::Builder::new()
            .prefix("pier-rootless-xdg-")
            .tempdir()
            .unwrap();
        std::os::unix::fs::chown(xdg.path(), Some(uid), Some(gid)).unwrap();
        Session { xdg, uid, gid }
    }

    /// The default state root the runtime picks.
    fn root(&self) -> PathBuf {
        self.xdg.path().join(root_name())
    }

    /// `<runtime> <args…>` as the test user (no supplementary groups), default root.
    fn run(&self, args: &[&str]) -> Output {
        self.run_with_env(args, &[])
    }

    /// [`Session::run`] with more environment variables.
    fn run_with_env(&self, args: &[&str], env: &[(&str, &str)]) -> Output {
        let mut cmd = Command::new(binary());
        cmd.args(args);
        self.as_user(cmd, env)
    }

    /// [`Session::run`] inside a user namespace the caller made first (`unshare -r`: the
    /// caller's uid and gid as 0, setgroups denied), as rootless podman runs its runtime.
    fn run_in_userns(&self, args: &[&str]) -> Output {
        let mut cmd = Command::new("unshare");
        cmd.args(["--user", "--map-root-user", "--"])
            .arg(binary())
            .args(args);
        self.as_user(cmd, &[])
    }

    /// Run `cmd` as the test user from `/`, its environment only `env` and a login's
    /// (its XDG_RUNTIME_DIR, a system PATH, USER).
    fn as_user(&self, mut cmd: Command, env: &[(&str, &str)]) -> Output {
        cmd.env_clear()
            .envs(env.iter().copied())
            .env("XDG_RUNTIME_DIR", self.xdg.path())
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .env("USER", USER)
            .current_dir("/")
            .uid(self.uid)
            .gid(self.gid);
        run_command(cmd, TIMEOUT)
    }

    /// A bundle with `runc spec --rootless`'s config (mapping this user), owned by it.
    fn bundle(&self) -> Bundle {
        let mut b = Bundle::new();
        make_rootless(&mut b.config, self.uid, self.gid);
        b
    }

    /// Save `b`'s config and hand the bundle to the test user.
    fn save<'b>(&self, b: &'b Bundle) -> &'b str {
        let path = b.save();
        let ok = Command::new("chown")
            .args(["-R", &format!("{}:{}", self.uid, self.gid), path])
            .status()
            .unwrap();
        assert!(ok.success());
        path
    }

    #[track_caller]
    fn assert_clean(&self, b: &Bundle, id: &str) {
        assert_no_leftovers(&self.root(), id, b.path());
    }
}

/// What `runc spec --rootless` changes in `runc spec`: no network namespace, a user namespace
/// mapping the caller's ids to 0, no gid=5 on devpts, /sys bound (rbind), no resources.
fn make_rootless(c: &mut Value, uid: u32, gid: u32) {
    c["linux"]["namespaces"] = json!([
        {"type": "pid"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "user"}
    ]);
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid, "size": 1}]);
    c["linux"].as_object_mut().unwrap().remove("resources");
    for m in c["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev/pts" {
            m["options"]
                .as_array_mut()
                .unwrap()
                .retain(|o| o != "gid=5");
        }
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
    }
}

fn words(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect()
}

#[test]
fn a_rootless_run_maps_the_caller_to_root_with_setgroups_denied() {
    let s = Session::new();
    let mut b = s.bundle();
    b.sh(
        "cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; id -u; id -g; \
          stat -c '%u %g' /bin/busybox; touch /tmp/made-inside",
    );
    let id = unique_id("rl-run");
    let out = s.run(&["run", "--bundle", s.save(&b), &id]);
    out.ok();
    assert_eq!(
        words(&out.stdout),
        [
            format!("0 {} 1", s.uid),
            format!("0 {} 1", s.gid),
            "deny".to_string(),
            "0".into(),
            "0".into(),
            "0 0".into(),
        ],
        "the caller's files are root's inside"
    );
    let made = std::fs::metadata(b.host("/tmp/made-inside")).unwrap();
    assert_eq!(
        (made.uid(), made.gid()),
        (s.uid, s.gid),
        "root inside is the caller on disk"
    );
    let root = std::fs::metadata(s.root()).expect("state root under $XDG_RUNTIME_DIR");
    assert_eq!(root.mode() & 0o7777, 0o1700, "runc's sticky 0700 XDG root");
    assert_eq!(root.uid(), s.uid);
    s.assert_clean(&b, &id);
}

#[test]
fn a_rootless_container_goes_through_its_whole_lifecycle() {
    let s = Session::new();
    let mut b = s.bundle();
    b.args(&["sleep", "1000"]);
    let id = unique_id("rl-life");
    let bundle = s.save(&b);
    s.run(&["create", "--bundle", bundle, &id]).ok();
    let state = |s: &Session| -> Value {
        let out = s.run(&["state", &id]);
        out.ok();
        serde_json::from_str(&out.stdout).unwrap()
    };
    let created = state(&s);
    assert_eq!(created["status"], "created");
    let pid = created["pid"].as_i64().unwrap() as i32;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let uid_line = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert_eq!(
        words(uid_line)[0],
        format!("Uid: {0} {0} {0} {0}", s.uid),
        "the init is the caller on the host"
    );
    s.run(&["start", &id]).ok();
    assert_eq!(state(&s)["status"], "running");
    // exec joins the container's user namespace before its pid namespace (an unprivileged
    // caller may enter the latter only from inside the former), then the others.
    let exec = s.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "id -u; cat /proc/self/uid_map; readlink /proc/self/ns/pid; readlink /proc/1/ns/pid; echo $$",
    ]);
    let said = words(&exec.ok().stdout);
    assert_eq!(said[..2], ["0", &format!("0 {} 1", s.uid)], "{said:?}");
    assert_eq!(
        said[2], said[3],
        "exec is in the init's pid namespace: {said:?}"
    );
    assert_ne!(said[4], "1", "{said:?}");
    let listed = s.run(&["list", "-q"]);
    assert_eq!(
        words(listed.ok().stdout.as_str()),
        std::slice::from_ref(&id)
    );
    s.run(&["kill", &id, "KILL"]).ok();
    assert!(
        wait_pid_gone(pid, Instant::now() + TIMEOUT),
        "init {pid} survived SIGKILL"
    );
    assert_eq!(state(&s)["status"], "stopped");
    s.run(&["delete", &id]).ok();
    s.assert_clean(&b, &id);
}

/// Rootless podman's way: the runtime runs as uid 0 of a user namespace its caller made, and
/// config.json asks for none. mknod is refused there, so the devices are the host's nodes
/// bound; no cgroup can be made, so each v1 hierarchy shows the init's current cgroup (pier's
/// own, bound), as runc does.
#[test]
fn inside_a_callers_user_namespace_devices_are_bound_and_cgroups_shown() {
    let s = Session::new();
    let mut b = s.bundle();
    let c = &mut b.config;
    c["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .retain(|n| n["type"] != "user");
    let linux = c["linux"].as_object_mut().unwrap();
    linux.remove("uidMappings");
    linux.remove("gidMappings");
    b.sh(
        "cat /proc/self/uid_map; id -u; test -c /dev/null && echo x > /dev/null && echo null-ok; \
          test -c /dev/zero && head -c 3 /dev/zero | wc -c; \
          [ \"$(stat -f -c %T /sys/fs/cgroup)\" = tmpfs ] || exit 0; \
          for h in /sys/fs/cgroup/*; do test -e $h/cgroup.procs && echo ${h##*/}; done",
    );
    let id = unique_id("rl-in-userns");
    let out = s.run_in_userns(&["run", "--bundle", s.save(&b), &id]);
    out.ok();
    let mut want = vec![
        format!("0 {} 1", s.uid),
        "0".to_string(),
        "null-ok".into(),
        "3".into(),
    ];
    // The host's v1 hierarchies (none on a pure cgroup2 host, where the loop is skipped).
    const CGROUP_SUPER_MAGIC: i64 = 0x27e0eb;
    let mut names: Vec<String> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .map(|e| e.unwrap())
        .filter(|e| rustix::fs::statfs(e.path()).is_ok_and(|st| st.f_type == CGROUP_SUPER_MAGIC))
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    want.extend(names);
    assert_eq!(words(&out.stdout), want, "stderr: {}", out.stderr);
    s.assert_clean(&b, &id);
}

#[test]
fn ranges_from_subuid_are_written_by_newuidmap() {
    let s = Session::new();
    let mut b = s.bundle();
    let maps = |own: u32| {
        json!([{"containerID": 0, "hostID": own, "size": 1},
               {"containerID": 1, "hostID": SUB_START, "size": SUB_COUNT}])
    };
    b.config["linux"]["uidMappings"] = maps(s.uid);
    b.config["linux"]["gidMappings"] = maps(s.gid);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1001});
    b.sh("cat /proc/self/uid_map /proc/self/gid_map /proc/self/setgroups; touch /tmp/f");
    let id = unique_id("rl-ranges");
    let out = s.run(&["run", "--bundle", s.save(&b), &id]);
    out.ok();
    assert_eq!(
        words(&out.stdout),
        [
            format!("0 {} 1", s.uid),
            format!("1 {SUB_START} {SUB_COUNT}"),
            format!("0 {} 1", s.gid),
            format!("1 {SUB_START} {SUB_COUNT}"),
            "allow".to_string(),
        ]
    );
    let f = std::fs::metadata(b.host("/tmp/f")).unwrap();
    assert_eq!((f.uid(), f.gid()), (SUB_START + 999, SUB_START + 1000));
    s.assert_clean(&b, &id);
}

#[test]
fn what_a_rootless_container_cannot_have_is_refused_leaving_nothing() {
    let s = Session::new();
    let pier = root_name() == "pier";
    type Edit = fn(&mut Value, u32, u32);
    let cases: [(&str, Edit, &[&str]); 9] = [
        (
            "no user namespace",
            |c, _, _| {
                c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}]);
                c["linux"].as_object_mut().unwrap().remove("uidMappings");
                c["linux"].as_object_mut().unwrap().remove("gidMappings");
                c.as_object_mut().unwrap().remove("hostname");
            },
            &["rootless container requires user namespaces"],
        ),
        (
            "additional gids",
            |c, _, _| {
                c["process"]["user"]["additionalGids"] = json!([0]);
            },
            &["cannot set any additional groups in a rootless container"],
        ),
        (
            "unmapped gid= option",
            |c, _, _| {
                let pts = c["mounts"]
                    .as_array_mut()
                    .unwrap()
                    .iter_mut()
                    .find(|m| m["destination"] == "/dev/pts")
                    .unwrap();
                pts["options"].as_array_mut().unwrap().push(json!("gid=5"));
            },
            &["cannot specify gid= mount options for unmapped gid in rootless containers"],
        ),
        (
            "a memory limit without a cgroup",
            |c, _, _| {
                c["linux"]["resources"] = json!({"memory": {"limit": 100_000_000}});
            },
            &["could not join or create cgroup"],
        ),
        (
            "a cgroupsPath it cannot create",
            |c, _, _| {
                c["linux"]["cgroupsPath"] = json!("/pier-rootless-test");
            },
            &["permission denied"],
        ),
        (
            "host ids not in /etc/subuid",
            |c, uid, _| {
                c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid, "size": 1},
                                               {"containerID": 1, "hostID": 1, "size": 10}]);
            },
            &["newuidmap"],
        ),
        (
            "the host's network namespace by path",
            |c, _, _| {
                c["linux"]["namespaces"]
                    .as_array_mut()
                    .unwrap()
                    .push(json!({"type": "network", "path": "/proc/1/ns/net"}));
            },
            &["/proc/1/ns/net"],
        ),
        (
            "a device the host does not have",
            |c, _, _| {
                c["linux"]["devices"] = json!([{"path": "/dev/pier-nope", "type": "c",
                                            "major": 10, "minor": 229}]);
            },
            &["/dev/pier-nope"],
        ),
        (
            "an rlimit above the caller's hard limit",
            |c, _, _| {
                c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "hard": 1u64 << 40,
                                              "soft": 1024}]);
            },
            &["operation not permitted"],
        ),
    ];
    for (what, edit, needles) in cases {
        let mut b = s.bundle();
        edit(&mut b.config, s.uid, s.gid);
        let id = unique_id("rl-bad");
        let out = s.run(&["run", "--bundle", s.save(&b), &id]);
        assert_eq!(out.code(), Some(1), "{what}:\n{out}");
        let said = out.stderr.to_lowercase();
        assert!(
            needles.iter().all(|n| said.contains(&n.to_lowercase())),
            "{what}: expected {needles:?}:\n{out}"
        );
        if pier {
            assert_eq!(
                out.stderr_lines().len(),
                1,
                "{what}: one error record:\n{out}"
            );
        }
        s.assert_clean(&b, &id);
    }
}

/// Rootless `--systemd-cgroup` asks the user's own manager on the session bus, as runc's
/// rootless systemd driver, which exists only where systemd is PID 1 and on a pure cgroup v2
/// host: elsewhere it is runc's error. Where /sys/fs/cgroup is cgroup2, a caller without a user bus
/// (no `$XDG_RUNTIME_DIR`, so `systemctl --user` cannot reach a manager either) gets runc's
/// "failed to connect to dbus". Nothing is left either way. (Under a real user manager:
/// tests/systemd/user_manager.sh.)
#[test]
fn rootless_systemd_cgroup_needs_cgroup2_and_the_user_bus() {
    let s = Session::new();
    let b = s.bundle();
    let id = unique_id("rl-sdcg");
    let unified = Command::new("stat")
        .args(["-f", "-c", "%T", "/sys/fs/cgroup"])
        .output()
        .unwrap();
    let out = s.run(&["--systemd-cgroup", "run", "--bundle", s.save(&b), &id]);
    let want = if !Path::new("/run/systemd/system").is_dir() {
        "systemd not running on this host, cannot use systemd cgroups manager"
    } else if String::from_utf8_lossy(&unified.stdout).trim() == "cgroup2fs" {
        // its XDG_RUNTIME_DIR has no bus and no user manager's socket
        "failed to connect to dbus"
    } else {
        "cannot use rootless systemd cgroups manager on cgroup v1"
    };
    assert!(out.stderr.contains(want), "expected {want:?}:\n{out}");
    assert_eq!(out.code(), Some(1), "{out}");
    if root_name() == "pier" {
        assert_eq!(out.stderr_lines().len(), 1, "one error record:\n{out}");
    }
    s.assert_clean(&b, &id);
}

#[test]
fn device_rules_are_ignored_rootless_as_runc_does() {
    let s = Session::new();
    let mut b = s.bundle();
    b.config["linux"]["resources"] = json!({"devices": [{"allow": false, "access": "rwm"}]});
    b.sh("echo ok > /dev/null && echo ok");
    let id = unique_id("rl-devices");
    let out = s.run(&["run", "--bundle", s.save(&b), &id]);
    assert_eq!(words(&out.ok().stdout), ["ok"]);
    s.assert_clean(&b, &id);
}

#[test]
fn the_rootless_flag_takes_true_false_auto_only() {
    let s = Session::new();
    for good in ["true", "false", "auto"] {
        s.run(&["--rootless", good, "list", "-q"]).ok();
    }
    if root_name() == "runc" {
        return; // runc reads --rootless only in the commands that build a container
    }
    let out = s.run(&["--rootless", "maybe", "list", "-q"]);
    assert_eq!(out.code(), Some(1), "{out}");
    assert!(out.stderr.contains("maybe"), "{out}");
}

/// A notify listener run by the test user: a datagram socket it binds in a 0700 directory it
/// owns, printing each datagram it receives as a JSON string, one a line, until a MAINPID one.
struct UserListener {
    child: std::process::Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
    _dir: tempfile::TempDir,
    socket: PathBuf,
}

impl UserListener {
    fn new(s: &Session) -> Self {
        use std::io::BufRead;
        let dir = tempfile::Builder::new()
            .prefix("pier-rootless-listener-")
            .tempdir()
            .unwrap();
        std::os::unix::fs::chown(dir.path(), Some(s.uid), Some(s.gid)).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let socket = dir.path().join("notify.sock");
        let script = "import json, socket, sys\n\
                      s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)\n\
                      s.bind(sys.argv[1])\n\
                      print('ready', flush=True)\n\
                      for _ in range(10):\n\
                      \x20   m = s.recv(65536).decode()\n\
                      \x20   print(json.dumps(m), flush=True)\n\
                      \x20   if m.startswith('MAINPID='):\n\
                      \x20       break\n";
        let mut child = Command::new("python3")
            .args(["-c", script])
            .arg(&socket)
            .uid(s.uid)
            .gid(s.gid)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("python3");
        let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
        assert_eq!(lines.next().unwrap().unwrap(), "ready");
        UserListener {
            child,
            lines,
            _dir: dir,
            socket,
        }
    }

    /// The datagrams, up to the MAINPID one (the listener then exits).
    fn received(mut self) -> Vec<String> {
        let got = self
            .lines
            .by_ref()
            .map(|l| serde_json::from_str::<String>(&l.unwrap()).unwrap())
            .collect();
        let _ = self.child.wait();
        got
    }
}

impl Drop for UserListener {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The relay in rootless mode: pier run by the test user relays the container's messages to
/// a listener the same user runs and owns (its socket in its own 0700 directory, which no
/// other user could reach), MAINPID translated to the init's host pid.
#[test]
fn notify_reaches_a_listener_the_user_owns() {
    let s = Session::new();
    let mut b = s.bundle();
    b.install_sender();
    b.sh(r#"sd-notify-send "READY=1\nSTATUS=uid $(id -u) $(cat /proc/self/uid_map | tr -s ' ')" "MAINPID=1""#);
    let listener = UserListener::new(&s);
    let id = unique_id("rl-notify");
    let pid_file = s.xdg.path().join("init.pid");
    let socket = listener.socket.to_str().unwrap().to_string();
    let out = s.run_with_env(
        &[
            "run",
            "--pid-file",
            pid_file.to_str().unwrap(),
            "--bundle",
            s.save(&b),
            &id,
        ],
        &[("NOTIFY_SOCKET", &socket)],
    );
    out.ok();
    let got = listener.received();
    let status = format!("READY=1\nSTATUS=uid 0  0 {} 1", s.uid);
    let init = std::fs::read_to_string(&pid_file).expect("pid file");
    let mainpid = format!("MAINPID={}", init.trim());
    if root_name() == "runc" {
        // runc 1.1 forwards READY=1 alone, then MAINPID of its own foreground process (not
        // the container's MAINPID=1 translated, which pier sends: docs/notify.md).
        assert_eq!(got[0].trim_end(), "READY=1", "{got:?}");
        assert!(got[1].starts_with("MAINPID="), "{got:?}");
    } else {
        assert_eq!(got, [status, mainpid]);
    }
    s.assert_clean(&b, &id);
}
