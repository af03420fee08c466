//! `process.terminal`: the pty is allocated inside the container and its master handed to
//! `--console-socket` (one message: the pty name, one SCM_RIGHTS fd), or proxied by a
//! foreground `run`. runc's rules on when a console socket is required are kept.

mod support;

use std::io::IoSliceMut;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixListener;

use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use serde_json::json;
use support::{host_tempdir, unique_id, Bundle, Runtime};

fn terminal_bundle(script: &str) -> Bundle {
    let mut b = Bundle::new();
    b.sh(script);
    b.config["process"]["terminal"] = json!(true);
    b.save();
    b
}

/// pier proxies even when its own stdio is not a terminal (runc insists on /dev/tty).
#[test]
fn foreground_run_proxies_the_pty_and_exits_with_the_status() {
    let rt = Runtime::new();
    let b = terminal_bundle("tty; [ -t 0 ] && [ -t 1 ] && echo stdio-is-a-tty; exit 5");
    let id = unique_id("ttyfg");
    let out = rt.run(&["run", "--bundle", b.path(), &id]);
    out.code_is(5);
    assert!(out.stdout.contains("/dev/pts/0"), "{out}");
    assert!(out.stdout.contains("stdio-is-a-tty"), "{out}");
    rt.assert_clean(&b, &id);
}

#[test]
fn create_sends_the_master_to_the_console_socket() {
    let rt = Runtime::new();
    let b = terminal_bundle("echo hello-from-the-pty; sleep 1000");
    let dir = host_tempdir("console");
    let path = dir.path().join("console.sock");
    let listener = UnixListener::bind(&path).unwrap();
    let id = unique_id("ttysock");
    rt.run(&[
        "create",
        "--console-socket",
        path.to_str().unwrap(),
        "--bundle",
        b.path(),
        &id,
    ])
    .ok();
    let (conn, _) = listener.accept().unwrap();
    let (name, master) = receive_master(&conn);
    // runc names the master (/dev/ptmx), pier the pty (/dev/pts/0); engines ignore it.
    assert!(!name.is_empty());
    rt.start(&id);
    let mut seen = String::new();
    let mut buf = [0u8; 256];
    while !seen.contains("hello-from-the-pty") {
        let n = rustix::io::read(&master, &mut buf).expect("read the pty master");
        assert!(n > 0, "pty closed before the greeting: {seen:?}");
        seen.push_str(&String::from_utf8_lossy(&buf[..n]));
    }
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}

/// One message with the pty name and exactly one fd, as go-runc's recvFd checks.
fn receive_master(conn: &std::os::unix::net::UnixStream) -> (String, OwnedFd) {
    let mut name = [0u8; 4096];
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(2))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let msg = rustix::net::recvmsg(
        conn,
        &mut [IoSliceMut::new(&mut name)],
        &mut control,
        RecvFlags::empty(),
    )
    .unwrap();
    let fds: Vec<OwnedFd> = control
        .drain()
        .flat_map(|m| match m {
            RecvAncillaryMessage::ScmRights(fds) => fds.collect::<Vec<_>>(),
            _ => Vec::new(),
        })
        .collect();
    assert_eq!(fds.len(), 1, "exactly one fd");
    let name = String::from_utf8_lossy(&name[..msg.bytes]).into_owned();
    (name, fds.into_iter().next().unwrap())
}

#[test]
fn a_terminal_without_a_console_socket_is_refused_for_create() {
    let rt = Runtime::new();
    let b = terminal_bundle("true");
    let id = unique_id("ttynosock");
    let out = rt.run(&["create", "--bundle", b.path(), &id]);
    out.code_is(1);
    assert!(out.stderr.contains("console socket"), "{out}");
    rt.assert_clean(&b, &id);
}

#[test]
fn a_console_socket_without_a_terminal_is_refused() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("true");
    b.save();
    let id = unique_id("socknotty");
    let out = rt.run(&[
        "create",
        "--console-socket",
        "/nonexistent.sock",
        "--bundle",
        b.path(),
        &id,
    ]);
    out.code_is(1);
    assert!(out.stderr.contains("allocate tty"), "{out}");
    rt.assert_clean(&b, &id);
}
