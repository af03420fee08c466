//! OOM notifications for `events`: on v1 an eventfd registered through
//! `cgroup.event_control` on `memory.oom_control` (kernel `cgroup-v1/memory.rst` §9), on v2
//! inotify on `memory.events`, whose `oom_kill` counter grows with each kill (`cgroup-v2.rst`).

use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;

use anyhow::{Context, Result};
use rustix::event::{eventfd, EventfdFlags};
use rustix::fs::inotify;

use super::layout::{Target, Version};
use super::stats::flat_keyed;

/// A readable fd that wakes on OOM, and how to count what happened.
pub struct OomWatch {
    fd: OwnedFd,
    kind: Kind,
}

enum Kind {
    /// The eventfd counts OOM events; the control file must stay open while registered.
    V1 { _oom_control: File },
    /// inotify on `memory.events`; the last `oom_kill` value seen.
    V2 { events: PathBuf, seen: u64 },
}

impl OomWatch {
    /// Register for OOM notifications on the memory controller's directory.
    ///
    /// # Errors
    /// The memory files cannot be opened, or the registration is refused.
    pub fn new(t: Target<'_>) -> Result<OomWatch> {
        match t.version {
            Version::V1 => {
                let efd = eventfd(0, EventfdFlags::CLOEXEC | EventfdFlags::NONBLOCK)
                    .context("eventfd")?;
                let control = File::open(t.dir.join("memory.oom_control"))
                    .context("open memory.oom_control")?;
                let line = format!("{} {}", efd.as_raw_fd(), control.as_raw_fd());
                std::fs::write(t.dir.join("cgroup.event_control"), line)
                    .context("register for OOM events")?;
                Ok(OomWatch {
                    fd: efd,
                    kind: Kind::V1 {
                        _oom_control: control,
                    },
                })
            }
            Version::V2 => {
                let fd =
                    inotify::init(inotify::CreateFlags::CLOEXEC | inotify::CreateFlags::NONBLOCK)
                        .context("inotify_init1")?;
                let events = t.dir.join("memory.events");
                inotify::add_watch(&fd, &events, inotify::WatchFlags::MODIFY)
                    .context("watch memory.events")?;
                let seen = oom_kills(&events);
                Ok(OomWatch {
                    fd,
                    kind: Kind::V2 { events, seen },
                })
            }
        }
    }

    /// The fd to poll for `POLLIN`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }

    /// Drain the fd and return how many OOM events happened since the last call.
    pub fn take(&mut self) -> u64 {
        let mut buf = [0u8; 4096];
        match &mut self.kind {
            Kind::V1 { .. } => match rustix::io::read(&self.fd, &mut buf[..8]) {
                Ok(8) => u64::from_ne_bytes(buf[..8].try_into().expect("8 bytes")),
                _ => 0,
            },
            Kind::V2 { events, seen } => {
                while matches!(rustix::io::read(&self.fd, &mut buf), Ok(n) if n > 0) {}
                let now = oom_kills(events);
                let new = now.saturating_sub(*seen);
                *seen = now;
                new
            }
        }
    }
}

/// What the memory controller recorded of OOM kills in the cgroup: how many, under which
/// limit (bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OomKills {
    /// Processes the OOM killer killed in the cgroup (`oom_kill` of v1 `memory.oom_control`,
    /// kernel 4.13+, or of v2 `memory.events`).
    pub count: u64,
    /// `memory.limit_in_bytes` (v1) or `memory.max` (v2); 0 for none (`max`).
    pub limit: u64,
}

/// Read [`OomKills`] from the memory controller's directory.
pub fn oom_kills_in(t: Target<'_>) -> OomKills {
    let (counter, limit) = match t.version {
        Version::V1 => ("memory.oom_control", "memory.limit_in_bytes"),
        Version::V2 => ("memory.events", "memory.max"),
    };
    let limit = std::fs::read_to_string(t.dir.join(limit)).unwrap_or_default();
    OomKills {
        count: oom_kills(&t.dir.join(counter)),
        limit: limit.trim().parse().unwrap_or(0),
    }
}

fn oom_kills(events: &std::path::Path) -> u64 {
    let text = std::fs::read_to_string(events).unwrap_or_default();
    flat_keyed(&text).get("oom_kill").copied().unwrap_or(0)
}
