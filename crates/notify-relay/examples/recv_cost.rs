//! The listener's receive alone: CPU time of the receiving thread per datagram, without
//! pidfds, with sender pidfds (`SO_PASSPIDFD`), and with pidfds for `MAINPID=` datagrams only
//! (a peek at every datagram). Prints numbers; asserts nothing.
//!
//! `cargo run --release -p notify-relay --example recv_cost [COUNT]`

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;

use notify_relay::{Listener, Recv};

/// CPU time of the calling thread, in seconds (`/proc/thread-self/schedstat`, first field).
fn thread_cpu() -> f64 {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").expect("schedstat");
    let ns: f64 = stat
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .expect("run time");
    ns * 1e-9
}

/// Which pidfds the listener asks for.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// None.
    Plain,
    /// With every datagram (`set_sender_pidfds`, access=init).
    Every,
    /// With `MAINPID=` datagrams only (`set_main_pid_pidfds`: a peek at each first).
    MainPid,
}

/// Receives `count` datagrams a sender thread sends (`STATUS=<i>`, or with `main_pid` also a
/// `MAINPID=` line); (us of receiver CPU per datagram, datagrams that came with a pidfd).
fn receive(path: &Path, count: usize, mode: Mode, main_pid: bool) -> (f64, usize) {
    let _ = std::fs::remove_file(path);
    let mut listener = Listener::bind(path).expect("bind");
    assert!(listener.set_sender_pidfds(mode == Mode::Every) == (mode == Mode::Every));
    assert!(
        listener.set_main_pid_pidfds(mode == Mode::MainPid),
        "SO_PASSPIDFD"
    );
    let to = path.to_owned();
    let sender = std::thread::spawn(move || {
        let socket = UnixDatagram::unbound().expect("socket");
        socket.connect(to).expect("connect");
        for i in 0..count {
            let line = if main_pid { "MAINPID=1\n" } else { "" };
            socket
                .send(format!("{line}STATUS={i}").as_bytes())
                .expect("send");
        }
    });
    let start = thread_cpu();
    let (mut got, mut with_pidfd) = (0, 0);
    while got < count {
        match listener.recv().expect("recv") {
            Recv::Datagram(datagram) => {
                got += 1;
                with_pidfd += usize::from(datagram.pidfd.is_some());
            }
            Recv::WouldBlock => {
                let fd = listener.as_fd();
                let mut fds = [rustix::event::PollFd::new(
                    &fd,
                    rustix::event::PollFlags::IN,
                )];
                rustix::event::poll(&mut fds, None).expect("poll");
            }
            Recv::Rejected(reason) => panic!("rejected: {reason}"),
        }
    }
    let cpu = thread_cpu() - start;
    sender.join().expect("sender");
    (cpu * 1e6 / count as f64, with_pidfd)
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(200_000, |n| n.parse().expect("COUNT"));
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("notify.sock");
    for round in 1..=3 {
        let (plain, _) = receive(&path, count, Mode::Plain, false);
        let (pidfd, with) = receive(&path, count, Mode::Every, false);
        let (peek, none) = receive(&path, count, Mode::MainPid, false);
        let (peek_named, named) = receive(&path, count, Mode::MainPid, true);
        println!(
            "round {round}: {count} datagrams, receiver CPU us/datagram: {plain:.2} plain, \
             {pidfd:.2} with sender pidfds ({with} pidfds), {peek:.2} peeking for MAINPID= \
             ({none} pidfds), {peek_named:.2} peeking, all with MAINPID= ({named} pidfds)"
        );
    }
}
