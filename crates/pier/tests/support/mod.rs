//! Fixtures for the privileged integration tests of issue 2.
//!
//! The suite drives any runc-compatible binary: `$PIER_BIN` when set (e.g. `/usr/sbin/runc`),
//! else the `pier` binary Cargo built. Each test gets its own `--root` ([`Runtime`]), its own
//! bundle ([`Bundle`]) and unique container ids ([`unique_id`]), so tests run in parallel.
//! These tests need root: namespaces, mounts and cgroups are real. Run them against runc with
//! `PIER_BIN=/usr/sbin/runc cargo test -p pier --test lifecycle` (or `--tests`), or against
//! pier with plain `cargo test -p pier --tests`.
//!
//! [`Runtime`] is the one runner: the notify suite (`notify_support::pier::Pier`, which adds
//! `--debug`, a log file and a scrubbed environment) and the cgroups suite
//! (`cgroups/harness.rs`, a `CgroupRun` trait of helpers) run the runtime through it.
#![allow(dead_code, unused_imports)]

pub mod bundle;
pub mod events;
pub mod hostmount;
pub mod leftovers;
pub mod runner;
/// The static sd_notify test sender, built from notify-relay's `examples/sd-notify-send.rs`.
#[path = "../../../notify-relay/tests/kit/sender.rs"]
pub mod sender;
pub mod stage;

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use serde_json::Value;

pub use bundle::Bundle;
pub use events::Events;
pub use hostmount::HostMount;
pub use leftovers::{assert_no_leftovers, find_leftovers};
pub use runner::{Output, Running, TIMEOUT};

/// Runs `b` in the foreground (extra `flags` before `--bundle`) in a fresh root and returns
/// its stdout; panics unless it exits 0; checks that nothing is left.
pub fn output_with(flags: &[&str], b: &Bundle) -> String {
    let rt = Runtime::new();
    let id = unique_id("fg");
    let mut args = vec!["run"];
    args.extend_from_slice(flags);
    args.extend_from_slice(&["--bundle", b.save(), &id]);
    let out = rt.run(&args);
    out.ok();
    rt.assert_clean(b, &id);
    out.stdout
}

/// [`output_with`] without extra flags.
pub fn output_of(b: &Bundle) -> String {
    output_with(&[], b)
}

/// The runtime under test: `$PIER_BIN`, else Cargo's `pier`.
pub fn runtime_bin() -> OsString {
    std::env::var_os("PIER_BIN").unwrap_or_else(|| env!("CARGO_BIN_EXE_pier").into())
}

/// A container id unique across tests and test processes: `<tag>-<pid>-<nnnn>`. The counter
/// has a fixed width so that no id is a substring of another one (the leftover checks match
/// ids inside cgroup names and command lines).
pub fn unique_id(tag: &str) -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    format!("{tag}-{}-{n:04}", std::process::id())
}

/// Runs the runtime without any global flag added.
pub fn run_bare(args: &[&str]) -> Output {
    runner::run_command(runner::command(&runtime_bin(), args), TIMEOUT)
}

/// The one runner of the runtime under test: a private state root (`--root`), removed on
/// drop after force-deleting whatever containers a failed test left in it.
pub struct Runtime {
    bin: OsString,
    dir: tempfile::TempDir,
    /// `dir` itself, or a directory below it ([`Runtime::with_root_len`]).
    root_str: String,
    /// Commands run without `NOTIFY_SOCKET` (see [`Runtime::without_notify_socket`]).
    no_notify_socket: bool,
}

impl Runtime {
    /// A fresh, empty state root in a temp dir. Panics unless we are root.
    pub fn new() -> Self {
        Self::with_bin(runtime_bin())
    }

    /// [`Runtime::new`] running the runtime binary at `bin` (e.g. a copy under attack).
    pub fn with_bin(bin: impl Into<OsString>) -> Self {
        assert!(
            rustix::process::geteuid().is_root(),
            "the integration tests run containers for real and need root"
        );
        let dir = tempfile::Builder::new()
            .prefix("pier-itest-root-")
            .tempdir()
            .expect("root tempdir");
        let root_str = dir.path().to_str().expect("utf-8 root").to_owned();
        Runtime {
            bin: bin.into(),
            dir,
            root_str,
            no_notify_socket: false,
        }
    }

    /// [`Runtime::new`] whose state root path is exactly `len` bytes long (nested 50-byte
    /// directories in the temp dir, not made: the runtime makes its root), for long paths.
    pub fn with_root_len(len: usize) -> Self {
        let mut rt = Self::new();
        let mut root = rt.dir.path().join("r");
        while root.as_os_str().len() + 51 <= len {
            root.push("d".repeat(50));
        }
        let pad = len - root.as_os_str().len() - 1;
        root.push("e".repeat(pad.max(1)));
        rt.root_str = root.to_str().expect("utf-8 root").to_owned();
        rt
    }

    /// Runs every command with `NOTIFY_SOCKET` removed from the environment.
    pub fn without_notify_socket(mut self) -> Self {
        self.no_notify_socket = true;
        self
    }

    /// The state root directory.
    pub fn root(&self) -> &Path {
        Path::new(&self.root_str)
    }

    /// The state root as a string.
    pub fn root_str(&self) -> &str {
        &self.root_str
    }

    /// `<bin> --root <root> <args…>` as a Command (for custom cwd or env).
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(&self.bin);
        cmd.arg("--root").arg(&self.root_str).args(args);
        if self.no_notify_socket {
            cmd.env_remove("NOTIFY_SOCKET");
        }
        cmd
    }

    /// Runs `<bin> --root <root> <args…>` to completion.
    pub fn run(&self, args: &[&str]) -> Output {
        runner::run_command(self.command(args), TIMEOUT)
    }

    /// Runs `<bin> --root <root> --log FILE --log-format json <args…>` (FILE a fresh one);
    /// the output and the log, which lives as long as the returned [`JsonLog`].
    pub fn run_logged(&self, args: &[&str]) -> (Output, JsonLog) {
        let dir = host_tempdir("log");
        let path = dir.path().join("runtime.log");
        let mut full = vec!["--log", path.to_str().unwrap(), "--log-format", "json"];
        full.extend_from_slice(args);
        (self.run(&full), JsonLog { path, _dir: dir })
    }

    /// Runs `<bin> --root <root> <args…>`, which must succeed; its stdout.
    #[track_caller]
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        out.ok();
        out.stdout
    }

    /// Starts `<bin> --root <root> <args…>` and returns at once.
    pub fn spawn(&self, args: &[&str]) -> Running {
        runner::spawn_command(self.command(args))
    }

    /// `create --bundle <b> <id>` (after saving the config); panics unless it succeeds.
    pub fn create(&self, b: &Bundle, id: &str) {
        self.run(&["create", "--bundle", b.save(), id]).ok();
    }

    /// `start <id>`; panics unless it succeeds.
    pub fn start(&self, id: &str) {
        self.run(&["start", id]).ok();
    }

    /// Foreground `run --bundle <b> <id>` (after saving the config), output captured.
    pub fn run_fg(&self, b: &Bundle, id: &str) -> Output {
        self.run(&["run", "--bundle", b.save(), id])
    }

    /// `state <id>` parsed; panics unless it succeeds and prints JSON.
    #[track_caller]
    pub fn state(&self, id: &str) -> Value {
        let out = self.run(&["state", id]);
        out.ok();
        serde_json::from_str(&out.stdout)
            .unwrap_or_else(|e| panic!("state is not JSON ({e}):\n{out}"))
    }

    /// The container's host pid from `state`.
    #[track_caller]
    pub fn init_pid(&self, id: &str) -> i32 {
        let pid = self.state(id)["pid"].as_i64().expect("state.pid");
        assert!(pid > 0, "state.pid is {pid}");
        pid as i32
    }

    /// Waits (pidfd) until process `pid` is gone; panics at the deadline.
    #[track_caller]
    pub fn wait_gone(&self, pid: i32) {
        assert!(
            runner::wait_pid_gone(pid, Instant::now() + TIMEOUT),
            "process {pid} still alive after {TIMEOUT:?}"
        );
    }

    /// Proves no trace of container `id` of bundle `b` remains (see [`assert_no_leftovers`]).
    #[track_caller]
    pub fn assert_clean(&self, b: &Bundle, id: &str) {
        assert_no_leftovers(self.root(), id, b.path());
    }

    /// Runs `args` (a verb and its arguments, about container `id` of bundle `b`) with a JSON
    /// log file and checks the failure contract: exit status 1, one line on stderr, exactly
    /// one error record in the log ([`assert_one_error_record`]), every group of `needles`
    /// matched (case-insensitively) by some member both on stderr and in the record, and no
    /// trace of the container left ([`Runtime::assert_clean`]). Returns the output.
    #[track_caller]
    pub fn fails_cleanly(
        &self,
        args: &[&str],
        b: &Bundle,
        id: &str,
        needles: &[&[&str]],
    ) -> Output {
        let (out, log) = self.run_logged(args);
        out.code_is(1);
        let lines = out.stderr_lines();
        assert_eq!(lines.len(), 1, "expected one error line on stderr:\n{out}");
        let msg = assert_one_error_record(log.path());
        for group in needles {
            assert!(
                mentions_any(lines[0], group),
                "stderr lacks any of {group:?}:\n{out}"
            );
            assert!(
                mentions_any(&msg, group),
                "log msg {msg:?} lacks any of {group:?}"
            );
        }
        self.assert_clean(b, id);
        out
    }

    /// Ids of the containers that have a state dir under the root.
    pub fn ids(&self) -> Vec<String> {
        std::fs::read_dir(self.root())
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default()
    }
}

impl Default for Runtime {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Runtime {
    /// Best effort, never panics: `delete --force` each leftover container, bounded in time.
    fn drop(&mut self) {
        for id in self.ids() {
            let mut cmd = self.command(&["delete", "--force", &id]);
            cmd.stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Ok(mut child) = cmd.spawn() {
                let pid = child.id() as i32;
                if !runner::wait_pid_gone(pid, Instant::now() + TIMEOUT) {
                    let _ = child.kill();
                }
                let _ = child.wait();
            }
        }
    }
}

/// Checks a `--log-format json` log file: exactly one non-empty line, a JSON object with
/// `"level":"error"`, a string `msg` and an RFC 3339 `time`. Returns the `msg`.
#[track_caller]
pub fn assert_one_error_record(log: &Path) -> String {
    let text = std::fs::read_to_string(log)
        .unwrap_or_else(|e| panic!("cannot read log {}: {e}", log.display()));
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(
        lines.len(),
        1,
        "expected exactly one log record, got:\n{text}"
    );
    let rec: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("log record is not JSON ({e}): {}", lines[0]));
    assert_eq!(rec["level"], "error", "record: {rec}");
    let time = rec["time"]
        .as_str()
        .unwrap_or_else(|| panic!("no time: {rec}"));
    assert!(is_rfc3339(time), "time {time:?} is not RFC 3339");
    rec["msg"]
        .as_str()
        .unwrap_or_else(|| panic!("no msg: {rec}"))
        .to_owned()
}

/// True for an RFC 3339 date-time: `YYYY-MM-DDTHH:MM:SS[.frac](Z|±HH:MM)`.
pub fn is_rfc3339(s: &str) -> bool {
    let b = s.as_bytes();
    let num = |r: std::ops::Range<usize>| -> Option<u32> {
        let part = s.get(r)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    let fields_ok = b.len() >= 20
        && b[4] == b'-'
        && b[7] == b'-'
        && matches!(b[10], b'T' | b't')
        && b[13] == b':'
        && b[16] == b':'
        && num(0..4).is_some()
        && num(5..7).is_some_and(|m| (1..=12).contains(&m))
        && num(8..10).is_some_and(|d| (1..=31).contains(&d))
        && num(11..13).is_some_and(|h| h < 24)
        && num(14..16).is_some_and(|m| m < 60)
        && num(17..19).is_some_and(|s| s <= 60);
    if !fields_ok {
        return false;
    }
    let mut rest = &s[19..];
    if let Some(frac) = rest.strip_prefix('.') {
        let digits = frac.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return false;
        }
        rest = &frac[digits..];
    }
    match rest.as_bytes() {
        [b'Z' | b'z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit()),
        _ => false,
    }
}

/// Case-insensitive: does `text` contain any of `needles`?
pub fn mentions_any(text: &str, needles: &[&str]) -> bool {
    let lower = text.to_lowercase();
    needles.iter().any(|n| lower.contains(&n.to_lowercase()))
}

/// A host temp dir (removed on drop), for bind-mount sources and log files.
/// A `--log` file of [`Runtime::run_logged`] (JSON records), removed on drop.
pub struct JsonLog {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl JsonLog {
    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// What the runtime logged ("" when it wrote nothing).
    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap_or_default()
    }
}

pub fn host_tempdir(tag: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("pier-itest-{tag}-"))
        .tempdir()
        .expect("tempdir")
}

/// Parses the container-side `/proc/self/mountinfo` text into (mount point, per-mount
/// options, optional fields, fs type, super options) rows.
pub fn parse_mountinfo(text: &str) -> Vec<MountRow> {
    text.lines()
        .filter_map(|l| {
            let (pre, post) = l.split_once(" - ")?;
            let pre: Vec<&str> = pre.split(' ').collect();
            let post: Vec<&str> = post.split(' ').collect();
            Some(MountRow {
                root: pre.get(3)?.to_string(),
                point: pre.get(4)?.to_string(),
                options: pre.get(5)?.split(',').map(str::to_owned).collect(),
                optional: pre.get(6..).unwrap_or(&[]).join(" "),
                fstype: post.first()?.to_string(),
                source: post.get(1).unwrap_or(&"").to_string(),
                super_options: post.get(2).unwrap_or(&"").to_string(),
            })
        })
        .collect()
}

/// One line of mountinfo.
#[derive(Debug, Clone)]
pub struct MountRow {
    /// Field 4: root of the mount within its filesystem.
    pub root: String,
    /// Field 5: mount point.
    pub point: String,
    /// Field 6: per-mount options.
    pub options: Vec<String>,
    /// Optional fields (`shared:N`, `master:N`, …), space separated.
    pub optional: String,
    /// Filesystem type.
    pub fstype: String,
    /// Mount source.
    pub source: String,
    /// Per-superblock options.
    pub super_options: String,
}

impl MountRow {
    /// True when the per-mount options include `opt`.
    pub fn has(&self, opt: &str) -> bool {
        self.options.iter().any(|o| o == opt)
    }
}

/// The last (topmost) mount at `point` in `rows`, or a panic listing them all.
#[track_caller]
pub fn mount_at<'a>(rows: &'a [MountRow], point: &str) -> &'a MountRow {
    rows.iter()
        .rev()
        .find(|r| r.point == point)
        .unwrap_or_else(|| panic!("no mount at {point}:\n{rows:#?}"))
}

/// Re-checks `cond` (something only /proc can tell, e.g. a wchan) every few milliseconds until
/// it holds; panics with `what` at the deadline.
#[track_caller]
pub fn poll_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
}

/// The kernel function process `pid` sleeps in (`/proc/<pid>/wchan`), or "".
pub fn wchan(pid: i32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/wchan")).unwrap_or_default()
}
