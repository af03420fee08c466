//! No pidfd leaks: with `SO_PASSPIDFD` every datagram installs a pidfd in the receiver's fd
//! table (`SCM_PIDFD`), also the ones the relay refuses. 10,000 datagrams of every kind
//! through a listener and the relay leave the fd table as it was; 10,000 more with pidfds
//! for `MAINPID=` datagrams only (peeked at first). One test in this binary, so no other
//! test opens or closes fds while it counts.

mod common;

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;

use common::{readable, send_with_fds, Init, HANG_GUARD};
use notify_relay::{Config, Identity, Listener, Policy, Recv, Relay, SenderAccess};

const DATAGRAMS: usize = 10_000;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .count()
}

#[test]
fn ten_thousand_datagrams_leave_no_fd_behind() {
    let init = Init::spawn();
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    let mut listener = Listener::bind(&path).expect("bind");
    if !listener.set_sender_pidfds(true) {
        eprintln!("skipped: the kernel has no SO_PASSPIDFD (Linux < 6.5)");
        return;
    }
    // The init check drops every datagram (this process is not the init): the refused path.
    let mut refusing = Relay::new(Config {
        policy: Policy {
            sender: SenderAccess::Init,
            ..Policy::default()
        },
        identity: Identity::AsRelay,
        init_host_pid: init.pid(),
        init_container_pid: init.pid(),
    })
    .with_init_pidfd(init.pidfd.as_fd());
    let mut relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid: init.pid(),
        init_container_pid: init.pid(),
    });
    let sender = UnixDatagram::unbound().expect("socket");
    sender.connect(&path).expect("connect");
    let passed = rustix::pipe::pipe().expect("pipe");
    let too_big = vec![b'x'; 5000];
    let before = open_fds();

    let (mut datagrams, mut with_pidfd, mut rejected) = (0, 0, 0);
    for i in 0..DATAGRAMS {
        match i % 5 {
            0 => sender.send(b"STATUS=plain").expect("send"),
            1 => {
                send_with_fds(
                    &sender,
                    b"STATUS=stray fds",
                    &[passed.0.as_fd(), passed.1.as_fd()],
                );
                0
            }
            2 => sender.send(&too_big).expect("send"),
            3 => sender.send(b"MAINPID=1").expect("send"),
            _ => sender.send(b"READY=1").expect("send"),
        };
        assert!(
            readable(listener.as_fd(), HANG_GUARD),
            "datagram {i} never came"
        );
        match listener.recv().expect("recv") {
            Recv::Datagram(datagram) => {
                datagrams += 1;
                with_pidfd += usize::from(datagram.pidfd.is_some());
                let outcome = if i % 2 == 0 {
                    refusing.on_datagram(datagram)
                } else {
                    relay.on_datagram(datagram)
                };
                drop(outcome);
            }
            Recv::Rejected(_) => rejected += 1,
            Recv::WouldBlock => panic!("readable but nothing queued"),
        }
    }

    assert_eq!(open_fds(), before, "fds leaked over {DATAGRAMS} datagrams");
    assert_eq!(rejected, DATAGRAMS / 5, "the oversized ones");
    assert_eq!(datagrams, DATAGRAMS - rejected);
    assert_eq!(
        with_pidfd, datagrams,
        "every datagram came with its sender's pidfd"
    );

    // Pidfds for `MAINPID=` datagrams only (peek first, SO_PASSPIDFD for that receive): the
    // same kinds, each also with a MAINPID= line, and the plain ones between them.
    listener.set_sender_pidfds(false);
    assert!(
        listener.set_main_pid_pidfds(true),
        "SO_PASSPIDFD works here"
    );
    let mut big_main_pid = b"MAINPID=1\n".to_vec();
    big_main_pid.resize(5000, b'x');
    let before = open_fds();
    let (mut named, mut with_pidfd, mut plain_with_pidfd) = (0, 0, 0);
    for i in 0..DATAGRAMS {
        let names_main_pid = i % 2 == 0;
        let line: &[u8] = if names_main_pid { b"MAINPID=1\n" } else { b"" };
        match i % 10 / 2 {
            0 => sender
                .send(&[line, b"STATUS=plain"].concat())
                .expect("send"),
            1 => {
                let payload = [line, b"STATUS=stray fds"].concat();
                send_with_fds(&sender, &payload, &[passed.0.as_fd(), passed.1.as_fd()]);
                0
            }
            2 if names_main_pid => sender.send(&big_main_pid).expect("send"),
            2 => sender.send(&too_big).expect("send"),
            3 => sender
                .send(&[line, b"STATUS=x\nMAINPID=1"].concat())
                .expect("send"),
            _ => sender.send(&[line, b"READY=1"].concat()).expect("send"),
        };
        assert!(
            readable(listener.as_fd(), HANG_GUARD),
            "datagram {i} never came"
        );
        match listener.recv().expect("recv") {
            Recv::Datagram(datagram) => {
                let named_here = datagram
                    .payload
                    .split(|&b| b == b'\n')
                    .any(|l| l.starts_with(b"MAINPID="));
                named += usize::from(named_here);
                with_pidfd += usize::from(named_here && datagram.pidfd.is_some());
                plain_with_pidfd += usize::from(!named_here && datagram.pidfd.is_some());
                drop(relay.on_datagram(datagram));
            }
            Recv::Rejected(_) => {}
            Recv::WouldBlock => panic!("readable but nothing queued"),
        }
    }
    assert_eq!(
        open_fds(),
        before,
        "fds leaked over {DATAGRAMS} datagrams (MAINPID= pidfds)"
    );
    assert!(named > 0);
    assert_eq!(
        with_pidfd, named,
        "every MAINPID= datagram came with a pidfd"
    );
    assert_eq!(plain_with_pidfd, 0, "no other datagram did");
    init.stop();
}
