//! The container's side of sd_notify: what `create` adds to it (the directory bound at
//! [`super::CONTAINER_DIR`], `NOTIFY_SOCKET`, the watchdog).

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use rustix::fs::Mode;

use super::annotations::ANNOTATION_EXEC;
use super::{requested, CONTAINER_SOCKET, HOST_DIR};
use crate::state::ContainerDir;

/// What `create` adds to the container when notify is requested.
pub struct ContainerSide {
    /// `<root>/<id>/notify`, to bind-mount at [`super::CONTAINER_DIR`].
    pub host_dir: PathBuf,
    /// `NOTIFY_SOCKET`, and `WATCHDOG_USEC` when systemd gave pier a watchdog.
    pub env: Vec<String>,
}

/// At create: make the notify directory (mode 0755; the socket itself is 0777), when pier
/// has `NOTIFY_SOCKET` (the container's own relay), or when the container's exec'd processes
/// report to their own `pier exec` by default (`org.pier.notify.exec=own`: the directory is
/// where `exec --notify-socket own` binds its socket; the init then gets no `NOTIFY_SOCKET`).
pub fn prepare(
    dir: &ContainerDir,
    annotations: &BTreeMap<String, String>,
) -> Result<Option<ContainerSide>> {
    let for_exec = annotations.get(ANNOTATION_EXEC).is_some_and(|m| m == "own");
    if !requested() && !for_exec {
        return Ok(None);
    }
    rustix::fs::mkdirat(dir.fd(), HOST_DIR, Mode::from_raw_mode(0o755))
        .context("create the notify directory")?;
    rustix::fs::chmodat(
        dir.fd(),
        HOST_DIR,
        Mode::from_raw_mode(0o755),
        rustix::fs::AtFlags::empty(),
    )?;
    Ok(Some(ContainerSide {
        host_dir: dir.path().join(HOST_DIR),
        env: if requested() {
            container_env()
        } else {
            Vec::new()
        },
    }))
}

/// `NOTIFY_SOCKET` for the container, and the watchdog: `WATCHDOG_USEC` passes through when it
/// was meant for pier (no `WATCHDOG_PID`, or pier's pid); `WATCHDOG_PID` is left out, so
/// `sd_watchdog_enabled()` inside accepts it for any process (sd_watchdog_enabled(3)).
fn container_env() -> Vec<String> {
    let mut env = vec![format!("NOTIFY_SOCKET={CONTAINER_SOCKET}")];
    env.extend(watchdog_env());
    env
}

/// `WATCHDOG_USEC=` for a process pier relays for, when systemd's watchdog was meant for
/// pier (no `WATCHDOG_PID`, or pier's own pid).
pub(super) fn watchdog_env() -> Option<String> {
    let for_us =
        std::env::var("WATCHDOG_PID").map_or(true, |p| p == std::process::id().to_string());
    let usec = std::env::var("WATCHDOG_USEC").ok()?;
    for_us.then(|| format!("WATCHDOG_USEC={usec}"))
}
