//! `sd-notify-send`: the project's one sd_notify(3) client inside a container (no libsystemd),
//! statically linked by the workspace's `.cargo/config.toml` so that it runs in a bare busybox
//! image. Its users: pier's cargo tests (`tests/kit/sender.rs` builds it with `cargo build -p
//! notify-relay --example sd-notify-send --target-dir target/test-sender`), the real-systemd
//! suite (`tests/systemd`: `sdtest/build.py` builds it `--release`), `tests/systemd/
//! user_manager.sh` and the benchmark (`bench/run`, with `-T`).
//!
//! usage: sd-notify-send [-j] [-M] [-v] [-w MS] [-n COUNT] [-b|-B] [-F] [-N] MSG... [-- CMD ARG...]
//!        sd-notify-send -T OP...
//! - MSG: one datagram per MSG; `\n` escapes are expanded.
//! - `-j`: join all MSGs with '\n' into ONE datagram instead (systemd applies a datagram at once).
//! - `-M`: append `MONOTONIC_USEC=<CLOCK_MONOTONIC now, in us>` to each datagram (RELOADING=1
//!   wants it).
//! - `-v`: trace one line per datagram on stderr: `sd-notify-send[PID]: MSG` (newlines as `|`).
//! - `-w MS`: sleep MS milliseconds before each datagram.
//! - `-n COUNT`: send the one MSG COUNT times as `MSG<i>` (i = 0..COUNT-1), blocking sends.
//! - `-b`: end with sd_notify_barrier(3), like systemd-notify: `BARRIER=1` with the write end
//!   of a pipe, then wait (<= 5 s) until the manager closed it, i.e. processed every earlier
//!   datagram; exit 4 if it did not. A sender that exits at once needs it: the manager finds
//!   the sender's unit through its cgroup, which it cannot read once the sender is gone.
//! - `-B`: `-b`, then report it: send `X_BARRIER_ACK_NS=<CLOCK_REALTIME ns when it completed>`,
//!   or `X_BARRIER_TIMEOUT=1` (and exit 4).
//! - `-F`: attach the read end of a fresh pipe to the first datagram (SCM_RIGHTS), and after
//!   the messages send `X_FD_INO=<its inode number>`.
//! - `-N`: send non-blocking (MSG_DONTWAIT); on EAGAIN retry, counting the retries, and after
//!   the messages send `X_EAGAIN=<retries>`.
//! - `-- CMD`: exec CMD afterwards, in this process, so a shell can notify as itself (its own
//!   pid: `exec sd-notify-send READY=1 -- sh next.sh`), which NotifyAccess=main wants.
//! - `-T OP...`: the benchmark's timed operations (`bench.rs`): `send:TEXT`, `raw:TEXT`,
//!   `burst:TAG:COUNT:GAP_US`, `sleep:MS`.
//!
//! exit: 0 all sent; 2 NOTIFY_SOCKET unset; 3 socket/send error; 4 barrier timeout; 64 usage;
//! 127 CMD could not be run. `@name` (abstract) addresses are supported.
#![forbid(unsafe_code)]

use std::io::IoSlice;
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::io::Errno;
use rustix::net::{
    self, AddressFamily, SendAncillaryBuffer, SendAncillaryMessage, SendFlags, SocketAddrUnix,
    SocketFlags, SocketType,
};
use rustix::pipe::{pipe_with, PipeFlags};

mod bench;

const USAGE: &str = "usage: sd-notify-send [-j] [-M] [-v] [-w MS] [-n COUNT] [-b|-B] [-F] [-N] \
                     MSG... [-- CMD...]\n       sd-notify-send -T OP...";

/// How long a barrier waits for the manager (systemd-notify's and the relay's bound).
const BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// What `-b` / `-B` ask for at the end.
#[derive(Default, PartialEq, Eq)]
enum Barrier {
    /// No barrier.
    #[default]
    None,
    /// `-b`: the handshake only.
    Plain,
    /// `-B`: the handshake, then `X_BARRIER_ACK_NS=` or `X_BARRIER_TIMEOUT=1`.
    Reported,
}

/// The parsed command line.
#[derive(Default)]
struct Args {
    join: bool,
    monotonic: bool,
    trace: bool,
    barrier: Barrier,
    pass_fd: bool,
    nonblock: bool,
    wait_ms: u64,
    count: Option<u64>,
    messages: Vec<String>,
    command: Vec<String>,
}

/// The flags, MSGs and CMD of `argv` (without argv\[0\]); None on a usage error.
fn parse(argv: &[String]) -> Option<Args> {
    let mut a = Args::default();
    let mut i = 0;
    while i < argv.len() && argv[i].len() > 1 && argv[i].starts_with('-') && argv[i] != "--" {
        match argv[i].as_str() {
            "-j" => a.join = true,
            "-M" => a.monotonic = true,
            "-v" => a.trace = true,
            "-b" => a.barrier = Barrier::Plain,
            "-B" => a.barrier = Barrier::Reported,
            "-F" => a.pass_fd = true,
            "-N" => a.nonblock = true,
            "-w" if i + 1 < argv.len() => {
                i += 1;
                a.wait_ms = argv[i].parse().ok()?;
            }
            "-n" if i + 1 < argv.len() => {
                i += 1;
                a.count = Some(argv[i].parse().ok()?);
            }
            _ => return None,
        }
        i += 1;
    }
    let rest = &argv[i..];
    let end = rest.iter().position(|s| s == "--").unwrap_or(rest.len());
    a.messages = rest[..end].iter().map(|m| m.replace("\\n", "\n")).collect();
    a.command = rest.get(end + 1..).unwrap_or_default().to_vec();
    Some(a)
}

/// The connected socket, the EAGAIN count of `-N` and the per-datagram options.
struct Sender {
    fd: OwnedFd,
    nonblock: bool,
    monotonic: bool,
    trace: bool,
    eagain: u64,
}

impl Sender {
    /// One datagram, optionally with one fd. On a full queue a blocking send waits; with
    /// `-N` it polls for room (100 ms at a time) and counts the retry.
    /// With `-M` the datagram gets `MONOTONIC_USEC=`, with `-v` it is traced once sent.
    fn send(&mut self, text: &str, pass: Option<BorrowedFd<'_>>) -> Result<(), u8> {
        let stamped;
        let text = if self.monotonic {
            let now = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
            let us = now.tv_sec as u64 * 1_000_000 + now.tv_nsec as u64 / 1000;
            let sep = if text.is_empty() { "" } else { "\n" };
            stamped = format!("{text}{sep}MONOTONIC_USEC={us}");
            stamped.as_str()
        } else {
            text
        };
        self.send_raw(text, pass)?;
        if self.trace {
            eprintln!(
                "sd-notify-send[{}]: {}",
                std::process::id(),
                text.replace('\n', "|")
            );
        }
        Ok(())
    }

    /// One datagram as given (see `send`).
    fn send_raw(&mut self, text: &str, pass: Option<BorrowedFd<'_>>) -> Result<(), u8> {
        let fds: Vec<BorrowedFd<'_>> = pass.into_iter().collect();
        let flags = if self.nonblock {
            SendFlags::NOSIGNAL | SendFlags::DONTWAIT
        } else {
            SendFlags::NOSIGNAL
        };
        loop {
            let mut space = [MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !fds.is_empty() {
                control.push(SendAncillaryMessage::ScmRights(&fds));
            }
            match net::sendmsg(
                &self.fd,
                &[IoSlice::new(text.as_bytes())],
                &mut control,
                flags,
            ) {
                Ok(_) => return Ok(()),
                Err(Errno::AGAIN) if self.nonblock => {
                    self.eagain += 1;
                    let mut pfd = [PollFd::new(&self.fd, PollFlags::OUT)];
                    let _ = poll(&mut pfd, Some(&timespec(Duration::from_millis(100))));
                }
                Err(Errno::INTR) => {}
                Err(e) => {
                    eprintln!(
                        "sd-notify-send: send of {} bytes to {} failed: {e}",
                        text.len(),
                        std::env::var("NOTIFY_SOCKET").unwrap_or_default()
                    );
                    return Err(3);
                }
            }
        }
    }

    /// sd_notify_barrier(3), and with `-B` its report: Ok when the manager closed our fd,
    /// 4 on timeout, 3 on error.
    fn barrier(&mut self, report: bool) -> Result<(), u8> {
        let (read, write) = pipe_with(PipeFlags::CLOEXEC).map_err(|e| {
            eprintln!("sd-notify-send: pipe: {e}");
            3
        })?;
        self.send_raw("BARRIER=1", Some(write.as_fd()))?;
        drop(write);
        // POLLHUP (always reported) once the manager closed the write end.
        let mut pfd = [PollFd::new(&read, PollFlags::IN)];
        let ready = poll(&mut pfd, Some(&timespec(BARRIER_TIMEOUT))).unwrap_or(0);
        if ready == 0 {
            eprintln!(
                "sd-notify-send[{}]: barrier not acknowledged within {} s",
                std::process::id(),
                BARRIER_TIMEOUT.as_secs()
            );
            if report {
                let _ = self.send_raw("X_BARRIER_TIMEOUT=1", None);
            }
            return Err(4);
        }
        if !report {
            return Ok(());
        }
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.send_raw(&format!("X_BARRIER_ACK_NS={}", now.as_nanos()), None)
    }
}

fn timespec(d: Duration) -> Timespec {
    Timespec::try_from(d).expect("a small timeout")
}

/// `NOTIFY_SOCKET` as an address: `@name` abstract, else a path.
pub(crate) fn address(value: &str) -> Option<SocketAddrUnix> {
    match value.strip_prefix('@') {
        Some(name) => SocketAddrUnix::new_abstract_name(name.as_bytes()).ok(),
        None => SocketAddrUnix::new(value).ok(),
    }
}

/// A datagram socket connected to `NOTIFY_SOCKET`'s value; 3 (reported) on error.
fn connect_socket(value: &str) -> Result<OwnedFd, u8> {
    let Some(addr) = address(value) else {
        eprintln!("sd-notify-send: NOTIFY_SOCKET too long");
        return Err(3);
    };
    let fd = net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .map_err(|e| {
        eprintln!("sd-notify-send: socket: {e}");
        3
    })?;
    // Connected, so poll(POLLOUT) waits for room in the receiver's queue.
    net::connect(&fd, &addr).map_err(|e| {
        eprintln!("sd-notify-send: connect: {e}");
        3
    })?;
    Ok(fd)
}

/// Everything the flags ask for, in order.
fn send_all(a: &Args, sender: &mut Sender) -> Result<(), u8> {
    // The pipe of `-F`; its write end stays open (until exit or exec) like the C sender's.
    let pipe = if a.pass_fd {
        Some(pipe_with(PipeFlags::CLOEXEC).map_err(|e| {
            eprintln!("sd-notify-send: pipe: {e}");
            3
        })?)
    } else {
        None
    };
    let extra = pipe.as_ref().map(|(read, _write)| read);
    let extra_fd = extra.map(AsFd::as_fd);
    let wait = || std::thread::sleep(Duration::from_millis(a.wait_ms));
    if let Some(count) = a.count {
        let prefix = a.messages.first().map_or("X_SEQ=", String::as_str);
        for n in 0..count {
            sender.send(&format!("{prefix}{n}"), extra_fd.filter(|_| n == 0))?;
        }
    } else if a.join {
        wait();
        sender.send(&a.messages.join("\n"), extra_fd)?;
    } else {
        for (k, m) in a.messages.iter().enumerate() {
            wait();
            sender.send(m, extra_fd.filter(|_| k == 0))?;
        }
    }
    if let Some(read) = extra {
        let ino = rustix::fs::fstat(read).map_err(|_| 3)?.st_ino;
        sender.send_raw(&format!("X_FD_INO={ino}"), None)?;
    }
    if a.nonblock {
        let retries = sender.eagain;
        sender.send_raw(&format!("X_EAGAIN={retries}"), None)?;
    }
    if a.barrier != Barrier::None {
        sender.barrier(a.barrier == Barrier::Reported)?;
    }
    Ok(())
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().skip(1).collect();
    if argv.first().is_some_and(|a| a == "-T") {
        return bench::main(&argv[1..]);
    }
    let Some(args) = parse(&argv) else {
        eprintln!("{USAGE}");
        return ExitCode::from(64);
    };
    let value = std::env::var("NOTIFY_SOCKET").unwrap_or_default();
    if value.is_empty() {
        eprintln!("sd-notify-send: NOTIFY_SOCKET not set");
        return ExitCode::from(2);
    }
    let result = connect_socket(&value).and_then(|fd| {
        let mut sender = Sender {
            fd,
            nonblock: args.nonblock,
            monotonic: args.monotonic,
            trace: args.trace,
            eagain: 0,
        };
        send_all(&args, &mut sender)
    });
    if let Err(code) = result {
        return ExitCode::from(code);
    }
    if let Some((program, rest)) = args.command.split_first() {
        let err = std::process::Command::new(program).args(rest).exec();
        eprintln!("sd-notify-send: exec: {err}");
        return ExitCode::from(127);
    }
    ExitCode::SUCCESS
}
