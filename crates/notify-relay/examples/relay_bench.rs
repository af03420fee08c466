//! Measures the relay: datagrams per second through `run` versus straight to the receiver,
//! and the latency one hop adds. Prints numbers; asserts nothing.
//!
//! `cargo run --release -p notify-relay --example relay_bench [COUNT]`

use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use notify_relay::{Config, Identity, Listener, Policy, Relay, SenderAccess, Upstream};

/// A receiver like systemd's: `SO_PASSCRED`, 8 MiB buffer.
fn receiver(path: &Path) -> UnixDatagram {
    let socket = UnixDatagram::bind(path).expect("bind receiver");
    rustix::net::sockopt::set_socket_passcred(&socket, true).expect("SO_PASSCRED");
    let _ = rustix::net::sockopt::set_socket_recv_buffer_size_force(&socket, 8 << 20);
    socket
}

fn sender(path: &Path) -> UnixDatagram {
    let socket = UnixDatagram::unbound().expect("socket");
    socket.connect(path).expect("connect");
    socket
}

/// Blocking sends of `payloads`, one datagram each; the longest single send.
fn send_all(socket: &UnixDatagram, payloads: impl Iterator<Item = String>) -> Duration {
    let mut worst = Duration::ZERO;
    for payload in payloads {
        let start = Instant::now();
        socket.send(payload.as_bytes()).expect("send");
        worst = worst.max(start.elapsed());
    }
    worst
}

/// Blocking sends of `count` datagrams while a thread receives them; datagrams per second.
fn throughput(to: &Path, from: UnixDatagram, count: usize) -> f64 {
    let reader = thread::spawn(move || {
        let mut buf = [0u8; 4096];
        for _ in 0..count {
            from.recv(&mut buf).expect("recv");
        }
    });
    let socket = sender(to);
    let start = Instant::now();
    send_all(&socket, (0..count).map(|i| format!("STATUS=msg {i}")));
    reader.join().expect("reader");
    count as f64 / start.elapsed().as_secs_f64()
}

/// This process's resident set (kB, VmRSS) and its peak (VmHWM): the relay thread's memory
/// is most of what changes between readings.
fn rss_kb() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").expect("status");
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// The host manager stuck: a receiver that reads nothing while the container sends READY=1
/// and then `count` datagrams with blocking sends; then it reads again. Returns the longest
/// single send (the container held by the relay), the datagrams that reached the host, and
/// whether READY=1 was among them.
fn stuck(dir: &Path, count: usize) -> (Duration, usize, bool) {
    let host = dir.join("stuck-host.sock");
    let container = dir.join("stuck-container.sock");
    let from = receiver(&host);
    let mut init = Command::new("cat")
        .stdin(Stdio::piped())
        .spawn()
        .expect("init");
    let init_pid = init.id() as i32;
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(&init),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd");
    let mut listener = Listener::bind(&container).expect("bind listener");
    let mut upstream = Upstream::connect(&notify_relay::Address::Path(host)).expect("up");
    let relay = thread::spawn(move || {
        let mut relay = Relay::new(Config {
            policy: Policy::default(),
            identity: Identity::AsRelay,
            init_host_pid: init_pid,
            init_container_pid: init_pid,
        });
        notify_relay::run(
            &mut listener,
            Some(&mut upstream),
            &mut relay,
            pidfd.as_fd(),
            || {},
        )
    });
    let socket = sender(&container);
    let payloads =
        std::iter::once("READY=1".to_string()).chain((1..=count).map(|i| format!("X_SEQ={i}")));
    let worst = send_all(&socket, payloads);
    drop(init.stdin.take());
    init.wait().expect("wait init");
    let (mut got, mut ready) = (0, false);
    let mut buf = [0u8; 4096];
    loop {
        let n = from.recv(&mut buf).expect("recv");
        if &buf[..n] == b"BARRIER=1" {
            break; // dropping the passed fd (never received here) acknowledges it
        }
        got += 1;
        ready |= &buf[..n] == b"READY=1";
    }
    relay.join().expect("relay").expect("run");
    (worst, got, ready)
}

/// One datagram at a time, send to receipt; (median, p99).
fn latency(to: &Path, from: &UnixDatagram, count: usize) -> (Duration, Duration) {
    let socket = sender(to);
    let mut buf = [0u8; 4096];
    let mut samples: Vec<Duration> = (0..count)
        .map(|_| {
            let start = Instant::now();
            socket.send(b"WATCHDOG=1").expect("send");
            from.recv(&mut buf).expect("recv");
            start.elapsed()
        })
        .collect();
    samples.sort();
    (samples[count / 2], samples[count * 99 / 100])
}

/// What one relayed run measured.
struct Relayed {
    per_s: f64,
    p50: Duration,
    p99: Duration,
    summary: notify_relay::Summary,
    rss_before: (u64, u64),
    rss_after: (u64, u64),
}

/// `count` datagrams through a relay thread (`run`) to `host`. With `SenderAccess::Init`,
/// this process plays the init (it is the sender) and the listener passes sender pidfds.
fn relayed(
    dir: &Path,
    host: &Path,
    from: &UnixDatagram,
    count: usize,
    sender: SenderAccess,
    main_pid_pidfds: bool,
) -> Relayed {
    let mut init = Command::new("cat")
        .stdin(Stdio::piped())
        .spawn()
        .expect("init stand-in");
    let pidfd = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(&init),
        rustix::process::PidfdFlags::empty(),
    )
    .expect("pidfd");
    let (init_pid, init_pidfd) = match sender {
        SenderAccess::All => (init.id() as i32, pidfd.try_clone().expect("dup")),
        SenderAccess::Init => {
            let own = rustix::process::getpid();
            let own_pidfd = rustix::process::pidfd_open(own, rustix::process::PidfdFlags::empty())
                .expect("own pidfd");
            (own.as_raw_nonzero().get(), own_pidfd)
        }
    };
    let container = dir.join(format!("container-{sender:?}-{main_pid_pidfds}.sock"));
    let mut listener = Listener::bind(&container).expect("bind listener");
    let mut upstream =
        Upstream::connect(&notify_relay::Address::Path(host.to_owned())).expect("up");
    let relay_thread = thread::spawn(move || {
        let mut relay = Relay::new(Config {
            policy: Policy {
                sender,
                ..Policy::default()
            },
            identity: Identity::AsRelay,
            init_host_pid: init_pid,
            init_container_pid: init_pid,
        })
        .with_init_pidfd(init_pidfd.as_fd());
        listener.set_sender_pidfds(relay.wants_sender_pidfds());
        listener.set_main_pid_pidfds(relay.wants_main_pid_pidfds() && main_pid_pidfds);
        notify_relay::run(
            &mut listener,
            Some(&mut upstream),
            &mut relay,
            pidfd.as_fd(),
            || {},
        )
    });
    let rss_before = rss_kb();
    let per_s = throughput(&container, from.try_clone().expect("dup"), count);
    let rss_after = rss_kb();
    let (p50, p99) = latency(&container, from, count / 10);

    drop(init.stdin.take());
    init.wait().expect("wait init");
    let reader = from.try_clone().expect("dup");
    let ack = thread::spawn(move || {
        let mut buf = [0u8; 64];
        reader.recv(&mut buf).expect("final barrier") // dropping the fd acknowledges it
    });
    let summary = relay_thread.join().expect("relay").expect("run");
    ack.join().expect("ack");
    Relayed {
        per_s,
        p50,
        p99,
        summary,
        rss_before,
        rss_after,
    }
}

fn main() {
    let count: usize = std::env::args()
        .nth(1)
        .map_or(100_000, |n| n.parse().expect("COUNT"));
    let dir = tempfile::tempdir().expect("tempdir");
    let host = dir.path().join("host.sock");
    let from = receiver(&host);

    let direct = throughput(&host, from.try_clone().expect("dup"), count);
    let (direct_p50, direct_p99) = latency(&host, &from, count / 10);
    // As pier relays in the foreground: access=all, MAINPID= datagrams with a pidfd (a peek
    // at every datagram); then without the peek, and access=init with sender pidfds.
    let all = relayed(dir.path(), &host, &from, count, SenderAccess::All, true);
    let no_peek = relayed(dir.path(), &host, &from, count, SenderAccess::All, false);
    let init = relayed(dir.path(), &host, &from, count, SenderAccess::Init, false);
    let relayed = all.per_s;

    println!("datagrams: {count} (throughput), {} (latency)", count / 10);
    println!("direct : {direct:>10.0} dgram/s   p50 {direct_p50:>9.2?}   p99 {direct_p99:>9.2?}");
    println!(
        "relayed: {relayed:>10.0} dgram/s   p50 {:>9.2?}   p99 {:>9.2?}",
        all.p50, all.p99
    );
    println!(
        "relayed, no MAINPID= peek: {:>10.0} dgram/s   p50 {:>9.2?}   p99 {:>9.2?}",
        no_peek.per_s, no_peek.p50, no_peek.p99
    );
    println!(
        "relayed, access=init (sender pidfds): {:>10.0} dgram/s   p50 {:>9.2?}   p99 {:>9.2?}",
        init.per_s, init.p50, init.p99
    );
    println!(
        "relay costs {:.2}x throughput, +{:.2?} median hop",
        direct / relayed,
        all.p50.saturating_sub(direct_p50)
    );
    println!("summary: {:?}", all.summary);
    println!("summary, access=init: {:?}", init.summary);
    println!(
        "rss: {} kB before the relayed run, {} kB after {count} datagrams (peak {} kB)",
        all.rss_before.0, all.rss_after.0, all.rss_after.1
    );
    let stuck_count = count.min(100_000);
    let (worst, got, ready) = stuck(dir.path(), stuck_count);
    println!(
        "stuck manager: {stuck_count} datagrams after READY=1, longest send {worst:.2?}, {got} reached the host, READY=1 {}",
        if ready { "delivered" } else { "LOST" }
    );
    println!(
        "json: {{\"count\":{count},\"direct_per_s\":{direct:.0},\"relayed_per_s\":{relayed:.0},\"ratio\":{:.3},\"relayed_no_peek_per_s\":{:.0},\"relayed_init_per_s\":{:.0},\"rss_kb_before\":{},\"rss_kb_after\":{},\"stuck_count\":{stuck_count},\"stuck_worst_send_ms\":{:.3},\"stuck_delivered\":{got},\"stuck_ready\":{ready}}}",
        relayed / direct,
        no_peek.per_s,
        init.per_s,
        all.rss_before.0,
        all.rss_after.0,
        worst.as_secs_f64() * 1e3
    );
}
