//! QA: foreground `pier run` is the unit's main process and forwards as itself
//! (docs/notify.md, "relay" identity: "NotifyAccess=main works"). When the container
//! announces its own pid (`READY=1\nMAINPID=1`, as `systemd-notify --ready --pid` does), pier
//! forwards `MAINPID=<init's host pid>` but keeps sending with its own credentials, so systemd
//! makes the init the main pid and then rejects everything else: "Got notification message
//! from PID <pier>, but reception only permitted for main PID <init>" (seen with systemd 252
//! in tests/systemd's harness: StatusText stays at the READY datagram's).

mod support;

use std::mem::MaybeUninit;
use std::os::unix::net::UnixDatagram;

use rustix::net::{recvmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags};
use support::{host_tempdir, runner, unique_id, Bundle, Runtime, TIMEOUT};

/// One datagram as systemd sees it: the text and the SCM_CREDENTIALS pid.
fn recv(sock: &UnixDatagram) -> (String, i32) {
    let mut buf = [0u8; 4096];
    let mut space =
        [MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmCredentials(1), ScmRights(8))];
    let mut cmsg = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [std::io::IoSliceMut::new(&mut buf)];
    let n = recvmsg(sock, &mut iov, &mut cmsg, RecvFlags::CMSG_CLOEXEC)
        .expect("recvmsg")
        .bytes;
    let mut pid = 0;
    for m in cmsg.drain() {
        if let RecvAncillaryMessage::ScmCredentials(c) = m {
            pid = c.pid.as_raw_nonzero().get();
        } // ScmRights fds (BARRIER=1) are dropped, i.e. closed, as systemd does
    }
    (String::from_utf8_lossy(&buf[..n]).into_owned(), pid)
}

#[test]
fn after_a_forwarded_mainpid_every_datagram_comes_from_that_pid() {
    let dir = host_tempdir("qa-mainpid");
    let path = dir.path().join("notify");
    let sock = UnixDatagram::bind(&path).unwrap();
    rustix::net::sockopt::set_socket_passcred(&sock, true).unwrap();
    sock.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut b = Bundle::new();
    b.install_sender();
    b.sh(r#"sd-notify-send "READY=1\nMAINPID=1" && sd-notify-send STATUS=later"#);
    let rt = Runtime::new();
    let mut cmd = rt.command(&["run", "--bundle", b.save(), &unique_id("qa-mainpid")]);
    cmd.env("NOTIFY_SOCKET", &path);
    let pier = runner::spawn_command(cmd);

    let mut main_pid = None;
    loop {
        let (text, pid) = recv(&sock);
        if let Some(n) = text.lines().find_map(|l| l.strip_prefix("MAINPID=")) {
            main_pid = Some(n.parse::<i32>().unwrap());
        }
        if text == "STATUS=later" {
            if let Some(main) = main_pid {
                assert_eq!(pid, main, "STATUS=later was sent by {pid} after MAINPID={main}: systemd drops it under NotifyAccess=main");
            }
            break;
        }
    }
    pier.wait();
}
