//! Scenario helpers of the notify tests: running pier against a fake systemd, reading what
//! it forwarded, and checking what a run leaves behind (processes, fds, cgroups).

use std::path::Path;
use std::process::{Child, ExitStatus};

use super::pier::Pier;
use super::systemd::{FakeSystemd, Got};
use crate::support::Bundle;

/// The forwarded payloads in order, without pier's own `BARRIER=1` datagrams; none may have
/// been longer than systemd's buffer.
pub fn payloads(got: &[Got]) -> Vec<String> {
    for g in got {
        assert!(
            !g.truncated,
            "a datagram over 4096 bytes was forwarded: {:.80}",
            g.payload
        );
    }
    got.iter()
        .filter(|g| g.payload != "BARRIER=1")
        .map(|g| g.payload.clone())
        .collect()
}

/// `pier run --bundle B <id>` in the foreground with `NOTIFY_SOCKET`, served until it exits.
pub fn run_foreground(
    pier: &Pier,
    bundle: &Bundle,
    systemd: &FakeSystemd,
    tag: &str,
) -> (ExitStatus, Vec<Got>) {
    let (mut child, _) = spawn_run(pier, bundle, systemd.notify_socket(), tag, &[]);
    pier.serve_until_exit(&mut child, systemd)
}

/// Spawns `pier run [extra] --bundle B <id>`; returns it and the id.
pub fn spawn_run(
    pier: &Pier,
    bundle: &Bundle,
    notify_socket: &str,
    tag: &str,
    extra: &[&str],
) -> (Child, String) {
    let id = pier.id(tag);
    let bundle_path = bundle.save().to_owned();
    let mut args = vec!["run"];
    args.extend_from_slice(extra);
    args.extend(["--bundle", &bundle_path, &id]);
    (pier.spawn(Some(notify_socket), &args), id)
}

/// A finished `pier run -d`: its status, pid, container id, and what arrived meanwhile.
pub struct Detached {
    pub status: ExitStatus,
    pub pid: i32,
    pub id: String,
    pub got: Vec<Got>,
}

/// `pier run -d [extra]`, served until it exits.
pub fn run_detached(
    pier: &Pier,
    bundle: &Bundle,
    systemd: &FakeSystemd,
    tag: &str,
    extra: &[&str],
) -> Detached {
    let mut args = vec!["-d"];
    args.extend_from_slice(extra);
    let (mut child, id) = spawn_run(pier, bundle, systemd.notify_socket(), tag, &args);
    let pid = child.id() as i32;
    let (status, got) = pier.serve_until_exit(&mut child, systemd);
    Detached {
        status,
        pid,
        id,
        got,
    }
}

pub fn path_str(path: &Path) -> String {
    path.to_str().expect("utf-8 path").to_owned()
}

pub fn assert_ok(status: ExitStatus, pier: &Pier) {
    assert!(
        status.success(),
        "pier failed: {status}\n--- log ---\n{}",
        pier.log()
    );
}

pub fn now_ns() -> u128 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    since.expect("clock after 1970").as_nanos()
}

/// Reads both pipes to their end on a thread; the receiver gets `()` at EOF on both.
pub fn eof_of(child: &mut Child) -> std::sync::mpsc::Receiver<()> {
    use std::io::Read;
    let (mut out, mut err) = (
        child.stdout.take().expect("stdout"),
        child.stderr.take().expect("stderr"),
    );
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sink = Vec::new();
        let _ = out.read_to_end(&mut sink);
        let _ = err.read_to_end(&mut sink);
        let _ = tx.send(());
    });
    rx
}

/// The detached relay: the one process left whose command line names this test's root
/// (a fork of pier), other than the container's `init` (pier's clone until it has exec'd).
pub fn detached_relay(pier: &Pier, init: i32) -> i32 {
    let mut relays = super::pier::processes_mentioning(&path_str(pier.root()));
    relays.retain(|pid| *pid != init);
    assert_eq!(
        relays.len(),
        1,
        "expected exactly one detached relay, found {relays:?}"
    );
    relays[0]
}

/// A relay that has relayed something has finished detaching: stdio on /dev/null, and no fd
/// but sockets (listener, upstream) and the init's pidfd.
pub fn assert_relay_fds(relay: i32) {
    for fd in 0..3 {
        let target = std::fs::read_link(format!("/proc/{relay}/fd/{fd}")).expect("relay stdio");
        assert_eq!(target, Path::new("/dev/null"), "the relay's fd {fd}");
    }
    for fd in std::fs::read_dir(format!("/proc/{relay}/fd"))
        .expect("relay fds")
        .flatten()
    {
        let target = std::fs::read_link(fd.path()).unwrap_or_default();
        let text = target.to_string_lossy();
        let expected =
            text == "/dev/null" || text.starts_with("socket:") || text == "anon_inode:[pidfd]";
        assert!(
            expected,
            "the relay holds fd {:?} -> {text}",
            fd.file_name()
        );
    }
}

/// No hierarchy under /sys/fs/cgroup has a directory for `id` (made with cgroupsPath `/<id>`).
pub fn assert_no_cgroup(id: &str) {
    for hierarchy in std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroup mounts")
        .flatten()
    {
        assert!(
            !hierarchy.path().join(id).exists(),
            "cgroup left in {}",
            hierarchy.path().display()
        );
    }
}

/// Runs `script` (in a bundle adjusted by `configure`) with `pier run` in the foreground
/// against `systemd`; asserts it exits 0 and returns the forwarded payloads.
pub fn relayed_via(
    systemd: &FakeSystemd,
    tag: &str,
    script: &str,
    configure: impl FnOnce(&mut Bundle),
) -> Vec<String> {
    let pier = Pier::new();
    let mut bundle = Bundle::notify(script);
    configure(&mut bundle);
    let (status, got) = run_foreground(&pier, &bundle, systemd, tag);
    assert_ok(status, &pier);
    payloads(&got)
}

/// [`relayed_via`] a fresh fake systemd at an absolute path.
pub fn relayed(tag: &str, script: &str, configure: impl FnOnce(&mut Bundle)) -> Vec<String> {
    relayed_via(&FakeSystemd::bind_path(), tag, script, configure)
}
