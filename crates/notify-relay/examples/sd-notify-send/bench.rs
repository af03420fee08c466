//! `sd-notify-send -T OP...`: the benchmark's timed sends (bench/run builds its bundles with
//! them, `bench/benchlib/scenarios.py` parses the lines below).
//!
//! - `send:TEXT`: one datagram, TEXT (`\n` escapes expanded) + `\nX_T=<ns>`.
//! - `raw:TEXT`: one datagram, TEXT as given (escapes expanded), no timestamp.
//! - `burst:TAG:COUNT:GAP_US`: COUNT datagrams `X_TAG=TAG\nX_SEQ=<i>\nX_T=<ns>`, GAP_US apart;
//!   stops early on EAGAIN or ECONNREFUSED.
//! - `sleep:MS`: sleep MS milliseconds (keeps the container alive).
//!
//! `<ns>` is CLOCK_MONOTONIC in nanoseconds, read just before sendmsg(2) (the benchmark uses no
//! time namespace, so it is the host's clock). stderr, one line per op, written after the send:
//! - `sd-notify-send op=send t=<ns> rc=<bytes sent or -errno>`
//! - `sd-notify-send op=burst tag=<TAG> sent=<n> errors=<n> t_first=<ns> t_last=<ns> errno=<last>`
//!
//! Sends have a 1 s SO_SNDTIMEO, so a relay that stopped reading never blocks the container for
//! long; send errors are counted, never fatal. exit: 0 done; 2 NOTIFY_SOCKET unset or
//! unusable; 64 usage.

use std::os::fd::OwnedFd;
use std::process::ExitCode;
use std::time::Duration;

use rustix::io::Errno;
use rustix::net::{self, AddressFamily, SendFlags, SocketFlags, SocketType};

/// One parsed operation.
enum Op {
    /// `send:` (stamped) or `raw:` (not).
    Send { text: String, stamp: bool },
    /// `burst:TAG:COUNT:GAP_US`.
    Burst {
        tag: String,
        count: u64,
        gap: Duration,
    },
    /// `sleep:MS`.
    Sleep(Duration),
}

/// `op` as an Op; None when it is not one.
fn parse(op: &str) -> Option<Op> {
    if let Some(text) = op.strip_prefix("send:") {
        Some(Op::Send {
            text: text.replace("\\n", "\n"),
            stamp: true,
        })
    } else if let Some(text) = op.strip_prefix("raw:") {
        Some(Op::Send {
            text: text.replace("\\n", "\n"),
            stamp: false,
        })
    } else if let Some(ms) = op.strip_prefix("sleep:") {
        Some(Op::Sleep(Duration::from_millis(ms.parse().ok()?)))
    } else {
        let mut parts = op.strip_prefix("burst:")?.split(':');
        let (tag, count, gap) = (parts.next()?, parts.next()?, parts.next()?);
        if tag.is_empty() || parts.next().is_some() {
            return None;
        }
        Some(Op::Burst {
            tag: tag.to_owned(),
            count: count.parse().ok()?,
            gap: Duration::from_micros(gap.parse().ok()?),
        })
    }
}

/// CLOCK_MONOTONIC in nanoseconds.
fn now_ns() -> u128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
    t.tv_sec as u128 * 1_000_000_000 + t.tv_nsec as u128
}

/// One datagram: bytes sent, or the errno.
fn send(fd: &OwnedFd, text: &str) -> Result<usize, Errno> {
    net::send(fd, text.as_bytes(), SendFlags::NOSIGNAL)
}

/// A datagram socket connected to `NOTIFY_SOCKET`, with a 1 s send timeout; None (reported).
fn open_notify() -> Option<OwnedFd> {
    let value = std::env::var("NOTIFY_SOCKET").unwrap_or_default();
    if value.is_empty() {
        eprintln!("sd-notify-send: NOTIFY_SOCKET not set");
        return None;
    }
    let Some(addr) = super::address(&value) else {
        eprintln!("sd-notify-send: NOTIFY_SOCKET too long");
        return None;
    };
    let connected = net::socket_with(
        AddressFamily::UNIX,
        SocketType::DGRAM,
        SocketFlags::CLOEXEC,
        None,
    )
    .and_then(|fd| {
        net::sockopt::set_socket_timeout(
            &fd,
            net::sockopt::Timeout::Send,
            Some(Duration::from_secs(1)),
        )?;
        net::connect(&fd, &addr)?;
        Ok(fd)
    });
    connected
        .map_err(|e| eprintln!("sd-notify-send: connect {value}: {e}"))
        .ok()
}

/// `burst:`: the datagrams, then its one stderr line.
fn burst(fd: &OwnedFd, tag: &str, count: u64, gap: Duration) {
    let (mut sent, mut errors, mut last_errno) = (0u64, 0u64, 0i32);
    let (mut t_first, mut t_last) = (0u128, 0u128);
    for i in 0..count {
        if i > 0 && !gap.is_zero() {
            std::thread::sleep(gap);
        }
        let t = now_ns();
        match send(fd, &format!("X_TAG={tag}\nX_SEQ={i}\nX_T={t}")) {
            Ok(_) => {
                if sent == 0 {
                    t_first = t;
                }
                sent += 1;
                t_last = t;
            }
            Err(e) => {
                errors += 1;
                last_errno = e.raw_os_error();
                if e == Errno::AGAIN || e == Errno::CONNREFUSED {
                    break;
                }
            }
        }
    }
    eprintln!(
        "sd-notify-send op=burst tag={tag} sent={sent} errors={errors} t_first={t_first} \
         t_last={t_last} errno={last_errno}"
    );
}

/// Runs the OPs of `sd-notify-send -T OP...` in order.
pub(crate) fn main(ops: &[String]) -> ExitCode {
    let parsed: Option<Vec<Op>> = ops.iter().map(|op| parse(op)).collect();
    let Some(parsed) = parsed.filter(|p| !p.is_empty()) else {
        eprintln!("usage: sd-notify-send -T send:TEXT|raw:TEXT|burst:TAG:COUNT:GAP_US|sleep:MS...");
        return ExitCode::from(64);
    };
    let Some(fd) = open_notify() else {
        return ExitCode::from(2);
    };
    for op in parsed {
        match op {
            Op::Send { text, stamp } => {
                let t = now_ns();
                let text = if stamp {
                    format!("{text}\nX_T={t}")
                } else {
                    text
                };
                let rc = match send(&fd, &text) {
                    Ok(n) => n as i64,
                    Err(e) => -i64::from(e.raw_os_error()),
                };
                eprintln!("sd-notify-send op=send t={t} rc={rc}");
            }
            Op::Burst { tag, count, gap } => burst(&fd, &tag, count, gap),
            Op::Sleep(d) => std::thread::sleep(d),
        }
    }
    ExitCode::SUCCESS
}
