//! The relay between a real listener and a fake systemd: fidelity, limits, fds, barriers,
//! identity, addresses.

mod common;

use std::os::fd::AsFd;
use std::time::Duration;

use common::{
    address_of, fake_systemd, fake_systemd_abstract, hung_up, readable, send_with_fds, upstream_to,
    Init, Rig, HANG_GUARD,
};
use notify_relay::{Address, Identity, Listener, Upstream};
use rustix::pipe::{pipe_with, PipeFlags};

fn own_pid() -> i32 {
    std::process::id() as i32
}

#[test]
fn one_datagram_in_one_out_order_and_grouping_kept() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let sender = rig.sender();
    let sent = [
        "STATUS=a\nREADY=1\nX_A=1",
        "WATCHDOG=1",
        "RELOADING=1\nMONOTONIC_USEC=17",
        "STOPPING=1",
    ];
    for payload in sent {
        sender.send(payload.as_bytes()).expect("send");
    }
    let pumped = rig.pump();
    assert_eq!(
        (pumped.received, pumped.forwarded, pumped.dropped),
        (4, 4, 0)
    );
    assert!(pumped.ready && pumped.drained);
    for payload in sent {
        let got = rig.systemd.recv();
        assert_eq!(got.payload, payload);
        assert_eq!(
            got.pid,
            own_pid(),
            "AsRelay sends with the relay's own credentials"
        );
        assert!(got.fds.is_empty() && !got.truncated);
    }
    assert!(!rig.systemd.pending(), "nothing extra was sent");
}

#[test]
fn oversized_datagram_is_dropped_and_relaying_continues() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let sender = rig.sender();
    let mut big = b"STATUS=".to_vec();
    big.resize(5000, b'x');
    big.extend_from_slice(b"\nREADY=1");
    sender.send(&big).expect("send big");
    sender.send(b"READY=1").expect("send");
    let pumped = rig.pump();
    assert_eq!(
        (pumped.received, pumped.dropped, pumped.forwarded),
        (2, 1, 1)
    );
    assert_eq!(rig.systemd.recv().payload, "READY=1");
    assert!(!rig.systemd.pending());
}

#[test]
fn exactly_4096_bytes_pass() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let mut payload = b"STATUS=".to_vec();
    payload.resize(4096, b'y');
    rig.sender().send(&payload).expect("send");
    rig.pump();
    assert_eq!(rig.systemd.recv().payload.len(), 4096);
}

#[test]
fn empty_and_nul_datagrams_are_dropped() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let sender = rig.sender();
    for payload in [
        &b""[..],
        b"STATUS=a\0READY=1",
        b"\n\n",
        b"READY=1\0",
        b"STATUS=end",
    ] {
        sender.send(payload).expect("send");
    }
    let pumped = rig.pump();
    assert_eq!(
        (pumped.received, pumped.dropped, pumped.forwarded),
        (5, 3, 2)
    );
    assert_eq!(
        rig.systemd.recv().payload,
        "READY=1",
        "one trailing NUL is tolerated"
    );
    assert_eq!(rig.systemd.recv().payload, "STATUS=end");
    assert!(!rig.systemd.pending());
}

#[test]
fn ready_is_found_on_any_line() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let sender = rig.sender();
    sender.send(b"STATUS=warming up\nREADY=1").expect("send");
    assert!(rig.pump().ready);
    assert_eq!(rig.systemd.recv().payload, "STATUS=warming up\nREADY=1");

    let late = format!("STATUS={}\nREADY=1", "z".repeat(600));
    sender.send(late.as_bytes()).expect("send");
    assert!(rig.pump().ready, "READY after 600 bytes of STATUS");
    assert_eq!(rig.systemd.recv().payload, late);

    sender.send(b"STATUS=READY=1").expect("send");
    assert!(!rig.pump().ready);
}

#[test]
fn notifyaccess_is_dropped() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let sender = rig.sender();
    sender.send(b"NOTIFYACCESS=all").expect("send");
    sender.send(b"NOTIFYACCESS=all\nSTATUS=kept").expect("send");
    let pumped = rig.pump();
    assert_eq!((pumped.dropped, pumped.forwarded), (1, 1));
    assert_eq!(rig.systemd.recv().payload, "STATUS=kept");
    assert!(!rig.systemd.pending());
}

#[test]
fn barrier_completes_only_when_the_host_has_read_it() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let sender = rig.sender();
    sender.send(b"STATUS=before barrier").expect("send");
    let (read, write) = pipe_with(PipeFlags::CLOEXEC).expect("pipe");
    let inode = rustix::fs::fstat(&write).expect("fstat").st_ino;
    send_with_fds(&sender, b"BARRIER=1", &[write.as_fd()]);
    drop(write);
    assert_eq!(rig.pump().forwarded, 2);
    assert!(
        !hung_up(&read, Duration::ZERO),
        "queued at the host: not yet complete"
    );

    assert_eq!(rig.systemd.recv().payload, "STATUS=before barrier");
    let barrier = rig.systemd.recv();
    assert_eq!(barrier.payload, "BARRIER=1");
    assert_eq!(barrier.fds.len(), 1);
    let forwarded = rustix::fs::fstat(&barrier.fds[0]).expect("fstat").st_ino;
    assert_eq!(forwarded, inode, "the container's own fd, unchanged");
    assert!(!hung_up(&read, Duration::ZERO), "the host holds the fd");
    drop(barrier);
    assert!(
        hung_up(&read, HANG_GUARD),
        "host closed it: the barrier completes"
    );
}

#[test]
fn fdstore_carries_three_fds_with_matching_inodes() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let files: Vec<std::fs::File> = (0..3)
        .map(|_| tempfile::tempfile().expect("file"))
        .collect();
    let inodes: Vec<u64> = files
        .iter()
        .map(|f| rustix::fs::fstat(f).expect("fstat").st_ino)
        .collect();
    let fds: Vec<_> = files.iter().map(AsFd::as_fd).collect();
    send_with_fds(&rig.sender(), b"FDSTORE=1\nFDNAME=state", &fds);
    assert_eq!(rig.pump().forwarded, 1);
    let got = rig.systemd.recv();
    assert_eq!(got.payload, "FDSTORE=1\nFDNAME=state");
    let got_inodes: Vec<u64> = got
        .fds
        .iter()
        .map(|f| rustix::fs::fstat(f).expect("fstat").st_ino)
        .collect();
    assert_eq!(got_inodes, inodes);
}

#[test]
fn stray_fds_are_closed_not_forwarded() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let (read, write) = pipe_with(PipeFlags::CLOEXEC).expect("pipe");
    send_with_fds(&rig.sender(), b"STATUS=here is an fd", &[write.as_fd()]);
    drop(write);
    rig.pump();
    let got = rig.systemd.recv();
    assert_eq!(got.payload, "STATUS=here is an fd");
    assert!(got.fds.is_empty());
    assert!(hung_up(&read, Duration::ZERO), "the relay closed its copy");
}

#[test]
fn as_main_pid_announces_and_sends_with_the_inits_credentials() {
    let init = Init::spawn();
    let mut rig = Rig::new(
        Identity::AsMainPid {
            init_host_pid: init.pid(),
        },
        init.pid(),
    );
    let sender = rig.sender();
    for payload in ["STATUS=starting", "READY=1", "READY=1"] {
        sender.send(payload.as_bytes()).expect("send");
    }
    assert!(rig.pump().ready);
    // Up to and including the MAINPID= announcement the relay is still the unit's main pid
    // and sends as itself; afterwards SCM_CREDENTIALS names the init.
    let expected = [
        ("STATUS=starting".to_owned(), own_pid()),
        (format!("MAINPID={}\nREADY=1", init.pid()), own_pid()),
        ("READY=1".to_owned(), init.pid()),
    ];
    for (payload, pid) in expected {
        let got = rig.systemd.recv();
        assert_eq!(got.payload, payload);
        assert_eq!(got.pid, pid, "SCM_CREDENTIALS for {payload:?}");
        assert_eq!(
            (got.uid, got.gid),
            (
                rustix::process::getuid().as_raw(),
                rustix::process::getgid().as_raw()
            )
        );
    }
    init.stop();
}

#[test]
fn relay_is_main_announces_itself() {
    let mut rig = Rig::new(Identity::RelayIsMain, own_pid());
    rig.sender().send(b"READY=1").expect("send");
    rig.pump();
    let got = rig.systemd.recv();
    assert_eq!(got.payload, format!("MAINPID={}\nREADY=1", own_pid()));
    assert_eq!(got.pid, own_pid());
}

#[test]
fn long_paths_bind_and_connect() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut deep = dir.path().to_path_buf();
    while deep.as_os_str().len() < 150 {
        deep.push("a-rather-long-directory-name");
    }
    std::fs::create_dir_all(&deep).expect("mkdir");
    let path = deep.join("notify.sock");
    assert!(path.as_os_str().len() > 108);
    let mut listener = Listener::bind(&path).expect("bind beyond sun_path");
    let mode = std::fs::metadata(&path).expect("stat").permissions();
    assert_eq!(
        std::os::unix::fs::PermissionsExt::mode(&mode) & 0o777,
        0o777
    );

    let mut sender = Upstream::connect(&Address::Path(path.clone())).expect("connect long path");
    let systemd = fake_systemd();
    let mut upstream = upstream_to(&systemd);
    let mut relay = notify_relay::Relay::new(notify_relay::Config {
        policy: Default::default(),
        identity: Identity::AsRelay,
        init_host_pid: own_pid(),
        init_container_pid: own_pid(),
    });
    sender
        .send(&notify_relay::Outgoing {
            payload: b"READY=1".to_vec(),
            ..Default::default()
        })
        .expect("send over long path");
    let pumped = notify_relay::pump(&mut listener, Some(&mut upstream), &mut relay).expect("pump");
    assert!(pumped.ready);
    assert_eq!(systemd.recv().payload, "READY=1");
}

#[test]
fn abstract_upstream() {
    let systemd = fake_systemd_abstract("abstract-upstream");
    let address = address_of(&systemd);
    assert!(matches!(address, Address::Abstract(_)));
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    rig.upstream = Upstream::connect(&address).expect("connect abstract");
    rig.sender()
        .send(b"STATUS=abstract\nREADY=1")
        .expect("send");
    rig.pump();
    let got = systemd.recv();
    assert_eq!(got.payload, "STATUS=abstract\nREADY=1");
    assert_eq!(got.pid, own_pid());
}

#[test]
fn upstream_barrier_waits_for_the_host() {
    let systemd = fake_systemd();
    let mut upstream = upstream_to(&systemd);
    assert!(
        !upstream.barrier(Duration::from_millis(50)).expect("sent"),
        "unread: times out"
    );
    let stale = systemd.recv();
    assert_eq!((stale.payload.as_str(), stale.fds.len()), ("BARRIER=1", 1));
    drop(stale);
    let host = std::thread::spawn(move || {
        let got = systemd.recv();
        assert_eq!(got.payload, "BARRIER=1");
        // `got` and its fd are dropped here: the acknowledgement.
    });
    assert!(
        upstream.barrier(HANG_GUARD).expect("sent"),
        "completes once the host closed the fd"
    );
    host.join().expect("host thread");
}

#[test]
fn unreachable_upstream_is_an_error_value() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = Address::Path(dir.path().join("nobody-listens"));
    let error = Upstream::connect(&missing).expect_err("nothing there");
    assert_eq!(
        error.raw_os_error(),
        Some(rustix::io::Errno::NOENT.raw_os_error())
    );
    let error = Upstream::connect(&Address::Abstract(b"notify-relay-test/nobody".to_vec()))
        .expect_err("nothing there");
    assert_eq!(
        error.raw_os_error(),
        Some(rustix::io::Errno::CONNREFUSED.raw_os_error())
    );
}

#[test]
fn vsock_without_a_peer_is_an_error_value() {
    // No vsock transport reaches CID 1 port 9 here: either the socket type, the connect or
    // the send fails, and the relay gets an error value, never a panic.
    let address = Address::parse("vsock:1:9").expect("parses");
    let outcome = Upstream::connect(&address).and_then(|mut upstream| {
        upstream.send(&notify_relay::Outgoing {
            payload: b"READY=1".to_vec(),
            ..Default::default()
        })
    });
    assert!(outcome.is_err(), "{outcome:?}");
}

#[test]
fn upstream_that_disappears_does_not_stop_the_relay() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let sender = rig.sender();
    sender.send(b"STATUS=one").expect("send");
    assert_eq!(rig.pump().forwarded, 1);
    assert_eq!(rig.systemd.recv().payload, "STATUS=one");
    let gone = std::mem::replace(&mut rig.systemd, fake_systemd_abstract("unused"));
    drop(gone);
    sender.send(b"STATUS=two").expect("send");
    sender.send(b"READY=1").expect("send");
    let pumped = rig.pump();
    assert_eq!(
        (pumped.received, pumped.forwarded, pumped.unsent),
        (2, 0, 2)
    );
    assert!(pumped.drained, "the container's queue keeps draining");
}

#[test]
fn refused_credentials_fall_back_to_the_relays_own() {
    let init = Init::spawn();
    let systemd = fake_systemd();
    let mut upstream = upstream_to(&systemd);
    let init_pid = init.pid();
    // Capabilities are per thread: this thread alone loses CAP_SYS_ADMIN.
    let sent = std::thread::spawn(move || {
        caps::drop(
            None,
            caps::CapSet::Effective,
            caps::Capability::CAP_SYS_ADMIN,
        )
        .expect("drop CAP_SYS_ADMIN");
        for payload in ["READY=1", "STATUS=second"] {
            let out = notify_relay::Outgoing {
                payload: payload.as_bytes().to_vec(),
                fds: Vec::new(),
                pid_credential: Some(init_pid),
            };
            upstream.send(&out).expect("sent with own credentials");
        }
    });
    sent.join().expect("sender thread");
    for payload in ["READY=1", "STATUS=second"] {
        let got = systemd.recv();
        assert_eq!(got.payload, payload);
        assert_eq!(
            got.pid,
            own_pid(),
            "the kernel refused the init's pid; sent as the relay"
        );
    }
    init.stop();
}

#[test]
fn full_upstream_times_out_instead_of_hanging() {
    let systemd = fake_systemd(); // never reads
    let mut upstream = upstream_to(&systemd);
    upstream
        .set_send_timeout(Duration::from_millis(20))
        .expect("SO_SNDTIMEO");
    let out = notify_relay::Outgoing {
        payload: b"WATCHDOG=1".to_vec(),
        ..Default::default()
    };
    let mut sent = 0;
    let error = loop {
        match upstream.send(&out) {
            Ok(()) => sent += 1,
            Err(error) => break error,
        }
        assert!(sent < 100_000, "the upstream queue never filled");
    };
    assert!(sent > 0);
    assert_eq!(
        error.raw_os_error(),
        Some(rustix::io::Errno::AGAIN.raw_os_error())
    );
    assert_eq!(
        systemd.recv().payload,
        "WATCHDOG=1",
        "what was queued is intact"
    );
}

/// More datagrams than one `recvmmsg`/`sendmmsg` batch takes, mixing forwarded ones, an
/// `FDSTORE=1` with its fds, a stray fd and refused datagrams, sent by a thread as fast as
/// the sockets' queues allow: they reach the manager in the order sent, each fd set with
/// its own datagram, and every one is counted.
#[test]
fn batches_keep_order_fds_and_counts_across_batch_boundaries() {
    let mut rig = Rig::new(Identity::AsRelay, own_pid());
    let sender = rig.sender();
    let file = tempfile::tempfile().expect("file");
    let inode = rustix::fs::fstat(&file).expect("fstat").st_ino;
    let (read, write) = pipe_with(PipeFlags::CLOEXEC).expect("pipe");
    let count = notify_relay::socket::RECV_BATCH * 4 + 5;
    let payload = |i: usize| match i {
        3 => Some("FDSTORE=1\nFDNAME=f".to_owned()),
        17 => Some("STATUS=stray".to_owned()),
        8 | 40 => None,
        _ => Some(format!("STATUS={i}")),
    };
    let sending = std::thread::spawn(move || {
        for i in 0..count {
            match (i, payload(i)) {
                (3, Some(p)) => send_with_fds(&sender, p.as_bytes(), &[file.as_fd()]),
                (17, Some(p)) => send_with_fds(&sender, p.as_bytes(), &[write.as_fd()]),
                (_, Some(p)) => sender.send(p.as_bytes()).map(drop).expect("send"),
                (_, None) => sender.send(&[b'x'; 5000]).map(drop).expect("send big"),
            }
        }
    });
    let (mut total, mut got) = (notify_relay::Pumped::default(), Vec::new());
    while total.received < count || rig.upstream.backlog() > 0 || rig.systemd.pending() {
        if total.received < count {
            assert!(
                readable(rig.listener.as_fd(), HANG_GUARD),
                "the sender stopped"
            );
        }
        let pumped = rig.pump();
        total.received += pumped.received;
        total.forwarded += pumped.forwarded;
        total.dropped += pumped.dropped;
        rig.upstream.flush().expect("flush");
        while rig.systemd.pending() {
            got.push(rig.systemd.recv());
        }
    }
    sending.join().expect("sender");
    assert_eq!(
        (total.received, total.forwarded, total.dropped),
        (count, count - 2, 2)
    );
    let expected: Vec<String> = (0..count).filter_map(payload).collect();
    let payloads: Vec<&str> = got.iter().map(|g| g.payload.as_str()).collect();
    assert_eq!(payloads, expected);
    for g in &got {
        let inodes: Vec<u64> = g
            .fds
            .iter()
            .map(|f| rustix::fs::fstat(f).expect("fstat").st_ino)
            .collect();
        let want: &[u64] = if g.payload.starts_with("FDSTORE") {
            &[inode]
        } else {
            &[]
        };
        assert_eq!(inodes, want, "fds of {:?}", g.payload);
    }
    assert!(hung_up(&read, Duration::ZERO), "the stray fd was closed");
}
