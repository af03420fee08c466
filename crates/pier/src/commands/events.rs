//! `pier events [--interval DUR] [--stats] <id>` (runc `events.go`): JSON lines on stdout,
//! `{"type":"stats","id":…,"data":{cpu,memory,pids,blkio,hugetlb}}` every interval (once with
//! `--stats`) and `{"type":"oom","id":…}` as OOM events happen. The stream ends, with status
//! 0, when the container's init exits.

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use serde::Serialize;

use crate::cli::{EventsArgs, Global};
use crate::container::{Container, Lock};

/// One event line (runc `types.Event`).
#[derive(Serialize)]
struct Event<'a, T: Serialize> {
    #[serde(rename = "type")]
    kind: &'static str,
    id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    data: Option<T>,
}

/// Print events.
///
/// # Errors
/// The container is not running; stdout is closed; the interval does not parse.
pub fn run(global: &Global, args: &EventsArgs) -> Result<()> {
    let interval = parse_interval(&args.interval)?;
    let (container, _) = Container::open_live(&global.root, &args.id, Lock::Exclusive)?;
    let cgroup = container.cgroup();
    let pidfd = container.init()?.try_clone_to_owned()?;
    // The directory lock is released here: a long-running stream must not block others.
    drop(container);
    let mut out = std::io::stdout().lock();
    if args.stats {
        return emit(&mut out, "stats", &args.id, Some(cgroup.stats()?));
    }
    let mut oom = cgroup.oom_watch().context("watch for OOM events")?;
    let mut next = Instant::now() + interval;
    loop {
        let left = next.saturating_duration_since(Instant::now());
        let timeout = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = vec![PollFd::new(&pidfd, PollFlags::IN)];
        if let Some(w) = &oom {
            fds.push(PollFd::from_borrowed_fd(w.fd(), PollFlags::IN));
        }
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("wait for events"),
        }
        let init_gone = !fds[0].revents().is_empty();
        drop(fds);
        if let Some(w) = &mut oom {
            for _ in 0..w.take() {
                emit::<()>(&mut out, "oom", &args.id, None)?;
            }
        }
        if init_gone {
            return Ok(());
        }
        if Instant::now() >= next {
            emit(&mut out, "stats", &args.id, Some(cgroup.stats()?))?;
            next += interval;
        }
    }
}

fn emit<T: Serialize>(
    out: &mut impl Write,
    kind: &'static str,
    id: &str,
    data: Option<T>,
) -> Result<()> {
    let line = serde_json::to_string(&Event { kind, id, data })?;
    writeln!(out, "{line}")
        .and_then(|()| out.flush())
        .context("write event")
}

/// A Go duration as runc takes it (`5s`, `100ms`, `1m30s`), positive.
///
/// # Errors
/// Anything that does not parse or is zero.
pub fn parse_interval(s: &str) -> Result<Duration> {
    let d = humantime::parse_duration(s).with_context(|| format!("invalid --interval {s:?}"))?;
    if d.is_zero() {
        bail!("--interval must be greater than 0");
    }
    Ok(d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        assert_eq!(parse_interval("5s").unwrap(), Duration::from_secs(5));
        assert_eq!(parse_interval("100ms").unwrap(), Duration::from_millis(100));
        assert_eq!(parse_interval("1m30s").unwrap(), Duration::from_secs(90));
        assert!(parse_interval("0s").is_err());
        assert!(parse_interval("soon").is_err());
    }

    #[test]
    fn oom_event_has_no_data() {
        let mut out = Vec::new();
        emit::<()>(&mut out, "oom", "c1", None).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"oom\",\"id\":\"c1\"}\n"
        );
    }
}
