//! What a receiver with `SO_PASSPIDFD` (systemd 257's notify socket, or our listener) learns
//! from a datagram sent with explicit `SCM_CREDENTIALS` naming another process, as the relay
//! sends in the `main-pid` identity (the init's pid, CAP_SYS_ADMIN): the kernel makes the
//! `SCM_PIDFD` from the *claimed* pid (net/core/scm.c takes `find_get_pid(creds.pid)`), so
//! the receiver's pidfd names the init, not the relay. This is why systemd 257, which compares
//! pidfds, accepts the relay's datagrams under `NotifyAccess=main`; and the other side of it:
//! a container process allowed to claim another pid (CAP_SYS_ADMIN over the container's pid
//! namespace) gets that process's pidfd too, so sender pidfds do not stop such a process
//! from speaking as the init (design-study §2.4 asked for this test).

mod common;

use std::os::fd::AsFd;

use common::{readable, Init, HANG_GUARD};
use notify_relay::{Address, Listener, Outgoing, Recv, Upstream};

#[test]
fn scm_pidfd_follows_a_claimed_scm_credentials_pid() {
    let init = Init::spawn();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("manager.sock");
    let mut manager = Listener::bind(&path).expect("bind");
    if !manager.set_sender_pidfds(true) {
        eprintln!("skipped: the kernel has no SO_PASSPIDFD (Linux < 6.5)");
        return;
    }
    let mut upstream = Upstream::connect(&Address::Path(path.clone())).expect("connect");
    let claimed = Outgoing {
        payload: b"STATUS=as the init".to_vec(),
        pid_credential: Some(init.pid()),
        ..Default::default()
    };
    upstream.send(&claimed).expect("send with the init's pid");
    upstream
        .send(&Outgoing {
            payload: b"STATUS=as myself".to_vec(),
            ..Default::default()
        })
        .expect("send");
    let mut next = || {
        assert!(readable(manager.as_fd(), HANG_GUARD), "no datagram");
        match manager.recv().expect("recv") {
            Recv::Datagram(d) => d,
            other => panic!("unexpected {other:?}"),
        }
    };
    let own = std::process::id() as i32;
    for (expected_pid, text) in [(init.pid(), "as the init"), (own, "as myself")] {
        let datagram = next();
        assert_eq!(datagram.payload, format!("STATUS={text}").into_bytes());
        assert_eq!(datagram.pid, expected_pid, "SCM_CREDENTIALS");
        let pidfd = datagram.pidfd.as_ref().expect("SCM_PIDFD");
        let info = notify_relay::pidfd::info(pidfd.as_fd()).expect("fdinfo");
        assert_eq!(
            info.pid,
            Some(expected_pid),
            "the pidfd names the claimed process"
        );
    }
    init.stop();
}
