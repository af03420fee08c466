//! Pause and resume: the v1 freezer (`freezer.state`, kernel `cgroup-v1/freezer-subsystem.rst`)
//! or v2's core `cgroup.freeze` with `cgroup.events` reporting `frozen 1`
//! (`cgroup-v2.rst`, "Core Interface Files").

use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};

use super::layout::{Target, Version};

/// How long freezing may take before pier gives up and thaws again.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(10);

/// Freeze every process of the cgroup and return once the kernel reports it frozen.
///
/// # Errors
/// The freezer files cannot be written, or the cgroup does not freeze within 10 s (it is
/// thawed again so it is not left half-frozen).
pub fn freeze(t: Target<'_>) -> Result<()> {
    let result = match t.version {
        Version::V1 => freeze_v1(t.dir),
        Version::V2 => freeze_v2(t.dir),
    };
    if result.is_err() {
        let _ = thaw(t);
    }
    result
}

/// Thaw the cgroup.
///
/// # Errors
/// The freezer file cannot be written.
pub fn thaw(t: Target<'_>) -> Result<()> {
    let (file, value) = match t.version {
        Version::V1 => ("freezer.state", "THAWED"),
        Version::V2 => ("cgroup.freeze", "0"),
    };
    let path = t.dir.join(file);
    std::fs::write(&path, value).with_context(|| format!("write {value} to {}", path.display()))
}

/// v1 has no notification: `FREEZING` turns into `FROZEN` when a read finds every task
/// frozen, so re-request and re-read with a short, growing pause, bounded.
fn freeze_v1(dir: &Path) -> Result<()> {
    let path = dir.join("freezer.state");
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    let mut pause = Duration::from_micros(100);
    loop {
        std::fs::write(&path, "FROZEN")
            .with_context(|| format!("write FROZEN to {}", path.display()))?;
        let state =
            std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))?;
        if state.trim() == "FROZEN" {
            return Ok(());
        }
        if Instant::now() >= deadline {
            bail!(
                "the cgroup did not freeze within {FREEZE_TIMEOUT:?} (state {})",
                state.trim()
            );
        }
        std::thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// v2: write 1, then wait on `cgroup.events` (kernfs wakes pollers with `POLLPRI` when it
/// changes) until it says `frozen 1`.
fn freeze_v2(dir: &Path) -> Result<()> {
    let freeze = dir.join("cgroup.freeze");
    std::fs::write(&freeze, "1").with_context(|| format!("write 1 to {}", freeze.display()))?;
    let events_path = dir.join("cgroup.events");
    let mut events =
        File::open(&events_path).with_context(|| format!("open {}", events_path.display()))?;
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    loop {
        let mut text = String::new();
        events.seek(SeekFrom::Start(0))?;
        events
            .read_to_string(&mut text)
            .with_context(|| format!("read {}", events_path.display()))?;
        if text.lines().any(|l| l.trim() == "frozen 1") {
            return Ok(());
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            bail!("the cgroup did not freeze within {FREEZE_TIMEOUT:?}");
        }
        let timeout = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        let mut fds = [PollFd::new(&events, PollFlags::PRI)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(_) | Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e).context("wait for cgroup.events"),
        }
    }
}
