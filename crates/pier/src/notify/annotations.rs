//! The `org.pier.notify.*` annotations (and the `--notify-wait` flag): who may notify, how
//! long start waits, which identity the relay forwards with, fd store, `MAINPIDFD=`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{bail, Result};
use notify_relay::{Identity, Policy, SenderAccess};

/// Annotation choosing who may notify: `all` or `init`.
pub const ANNOTATION_ACCESS: &str = "org.pier.notify.access";
/// Annotation choosing how long `start`/`run -d` wait: `ready`, `none` or seconds.
pub const ANNOTATION_WAIT: &str = "org.pier.notify.wait";
/// Annotation choosing the identity mode: `relay`, `main-pid`, `relay-is-main`.
pub const ANNOTATION_IDENTITY: &str = "org.pier.notify.identity";
/// Annotation turning fd store forwarding off: `false`.
pub const ANNOTATION_FDSTORE: &str = "org.pier.notify.fdstore";
/// Annotation choosing whether `MAINPIDFD=1` goes with `MAINPID=`: `auto`, `true`, `false`.
pub const ANNOTATION_MAINPIDFD: &str = "org.pier.notify.mainpidfd";
/// Annotation choosing the default of `exec --notify-socket`: `none`, `container` or `own`
/// (`own` also makes `create` prepare the notify directory without `NOTIFY_SOCKET`).
pub const ANNOTATION_EXEC: &str = "org.pier.notify.exec";
/// Every `org.pier.notify.*` annotation pier reads.
const KNOWN: [&str; 6] = [
    ANNOTATION_ACCESS,
    ANNOTATION_WAIT,
    ANNOTATION_IDENTITY,
    ANNOTATION_FDSTORE,
    ANNOTATION_MAINPIDFD,
    ANNOTATION_EXEC,
];

/// Refuse an `org.pier.notify.*` annotation pier does not know, and a bad value of one it
/// does, before anything is made: a misspelt `org.pier.notify.acess=init` would otherwise
/// leave every process free to notify, silently. Other annotations are the engine's and are
/// not looked at (runtime-spec config.md "Annotations").
///
/// # Errors
/// The first unknown key, with the known ones; or the first invalid value.
pub fn check_annotations(annotations: &BTreeMap<String, String>) -> Result<()> {
    if let Some(key) = annotations
        .keys()
        .find(|k| k.starts_with("org.pier.notify.") && !KNOWN.contains(&k.as_str()))
    {
        bail!(
            "unknown annotation {key:?}: pier knows {}",
            KNOWN.join(", ")
        );
    }
    policy(annotations)?;
    identity(annotations, false, 0)?;
    wait_mode(None, annotations)?;
    match annotations.get(ANNOTATION_MAINPIDFD).map(String::as_str) {
        None | Some("auto" | "true" | "false") => {}
        Some(other) => bail!("invalid {ANNOTATION_MAINPIDFD} {other:?}: use auto, true or false"),
    }
    match annotations.get(ANNOTATION_EXEC).map(String::as_str) {
        None | Some("none" | "container" | "own") => Ok(()),
        Some(other) => bail!("invalid {ANNOTATION_EXEC} {other:?}: use none, container or own"),
    }
}

/// The first systemd whose manager takes `MAINPIDFD=1` (sd_notify(3): "Added in version 257").
const MAINPIDFD_SINCE: u32 = 257;

/// How `start` and `run -d` wait for the container to be ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WaitMode {
    /// Until `READY=1` or the init's exit.
    Ready,
    /// Return at once.
    NoWait,
    /// Until `READY=1`, the init's exit, or this long.
    AtMost(Duration),
}

/// Parse a wait mode (`--notify-wait` flag first, then the annotation; default `ready`).
pub fn wait_mode(flag: Option<&str>, annotations: &BTreeMap<String, String>) -> Result<WaitMode> {
    let Some(text) = flag.or(annotations.get(ANNOTATION_WAIT).map(String::as_str)) else {
        return Ok(WaitMode::Ready);
    };
    match text {
        "ready" => Ok(WaitMode::Ready),
        "none" | "no" | "0" => Ok(WaitMode::NoWait),
        secs => match secs.parse::<f64>() {
            Ok(s) if s > 0.0 && s.is_finite() => Ok(WaitMode::AtMost(Duration::from_secs_f64(s))),
            _ => bail!("invalid notify wait {text:?}: use ready, none or a number of seconds"),
        },
    }
}

/// Whether to announce `MAINPIDFD=1`: the annotation, or with `auto` (default) whether the
/// manager that started pier is systemd 257 or later ([`manager_systemd_version`]). An
/// older systemd would log a warning about the fd it does not expect.
pub(super) fn send_main_pidfd(annotations: &BTreeMap<String, String>) -> Result<bool> {
    match annotations.get(ANNOTATION_MAINPIDFD).map(String::as_str) {
        None | Some("auto") => {
            let version = manager_systemd_version();
            tracing::debug!(?version, "notify: service manager's systemd version");
            Ok(version.is_some_and(|v| v >= MAINPIDFD_SINCE))
        }
        Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(other) => bail!("invalid {ANNOTATION_MAINPIDFD} {other:?}: use auto, true or false"),
    }
}

/// The systemd version of the service manager that started pier: pier's parent when pier is
/// a unit's `ExecStart=` process (also through `sh -c '... && exec pier start'`). The manager
/// is the one process that maps systemd's `libsystemd-core-<version>.so`; read from
/// `/proc/<ppid>/maps` (proc(5)). `None` when the parent is not a systemd manager (another
/// tool, a shell in between) or its maps are not readable: then `MAINPID=` alone is sent.
fn manager_systemd_version() -> Option<u32> {
    let ppid = rustix::process::getppid()?;
    let maps = std::fs::read_to_string(format!("/proc/{}/maps", ppid.as_raw_nonzero())).ok()?;
    maps.lines().find_map(|line| {
        let name = line.rsplit('/').next()?;
        let rest = name.strip_prefix("libsystemd-core-")?;
        let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
        digits.parse().ok()
    })
}

pub(super) fn policy(annotations: &BTreeMap<String, String>) -> Result<Policy> {
    let mut policy = Policy::default();
    match annotations.get(ANNOTATION_ACCESS).map(String::as_str) {
        None | Some("all") => {}
        Some("init") => policy.sender = SenderAccess::Init,
        Some(other) => bail!("invalid {ANNOTATION_ACCESS} {other:?}: use all or init"),
    }
    match annotations.get(ANNOTATION_FDSTORE).map(String::as_str) {
        None | Some("true") => {}
        Some("false") => policy.fd_store = false,
        Some(other) => bail!("invalid {ANNOTATION_FDSTORE} {other:?}: use true or false"),
    }
    Ok(policy)
}

/// Foreground: pier is the main process and forwards as itself. Detached: as root, the
/// init becomes the main pid; without privilege, the relay does (design-study §2.4).
pub(super) fn identity(
    annotations: &BTreeMap<String, String>,
    detached: bool,
    init_pid: i32,
) -> Result<Identity> {
    let main_pid = Identity::AsMainPid {
        init_host_pid: init_pid,
    };
    match annotations.get(ANNOTATION_IDENTITY).map(String::as_str) {
        Some("relay") => Ok(Identity::AsRelay),
        Some("main-pid") => Ok(main_pid),
        Some("relay-is-main") => Ok(Identity::RelayIsMain),
        Some(other) => {
            bail!("invalid {ANNOTATION_IDENTITY} {other:?}: use relay, main-pid or relay-is-main")
        }
        None if !detached => Ok(Identity::AsRelay),
        None if rustix::process::geteuid().is_root() => Ok(main_pid),
        None => Ok(Identity::RelayIsMain),
    }
}
