//! sd_notify glue between pier and the `notify-relay` crate (design §4).
//!
//! When pier runs with `NOTIFY_SOCKET` set (a systemd `Type=notify` unit), `create` makes
//! `<root>/<id>/notify/`, which init bind-mounts read-only at `/run/notify`, and the container
//! gets `NOTIFY_SOCKET=/run/notify/notify.sock` (runc's convention). `start` (or `run`) binds
//! the socket in that directory through its fd (no `sun_path` limit) just before releasing the
//! init, and relays: in the foreground for the container's whole life, or until `READY=1` and
//! then from a small detached relay process ([`Session::detach`]).
//!
//! Annotations (all optional; listed in `features` as potentially unsafe):
//! - `org.pier.notify.access`: `all` (default) or `init`, like `NotifyAccess=`.
//! - `org.pier.notify.wait`: `ready` (default), `none`, or a number of seconds.
//! - `org.pier.notify.identity`: `relay`, `main-pid` or `relay-is-main` (docs/notify.md).
//! - `org.pier.notify.fdstore`: `true` (default) or `false`.
//! - `org.pier.notify.mainpidfd`: `auto` (default), `true` or `false`: announce the init also
//!   as `MAINPIDFD=1` with a pidfd (systemd 257+); `auto` does when the manager is 257+.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use notify_relay::{Config, Identity, Listener, Policy, Relay, SenderAccess, Upstream};
use rustix::fs::{Mode, OFlags};

use crate::state::{ContainerDir, State};

/// The directory the container sees, and the socket in it.
pub const CONTAINER_DIR: &str = "/run/notify";
/// `NOTIFY_SOCKET` inside the container.
pub const CONTAINER_SOCKET: &str = "/run/notify/notify.sock";
/// The directory's name inside `<root>/<id>/`.
const HOST_DIR: &str = "notify";
const SOCKET_NAME: &str = "notify.sock";

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
/// The first systemd whose manager takes `MAINPIDFD=1` (sd_notify(3): "Added in version 257").
const MAINPIDFD_SINCE: u32 = 257;

/// Whether pier was started with a (non-empty) `NOTIFY_SOCKET`.
pub fn requested() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty())
}

/// What `create` adds to the container when notify is requested.
pub struct ContainerSide {
    /// `<root>/<id>/notify`, to bind-mount at [`CONTAINER_DIR`].
    pub host_dir: PathBuf,
    /// `NOTIFY_SOCKET`, and `WATCHDOG_USEC` when systemd gave pier a watchdog.
    pub env: Vec<String>,
}

/// At create: make the notify directory (mode 0755; the socket itself is 0777).
pub fn prepare(dir: &ContainerDir) -> Result<Option<ContainerSide>> {
    if !requested() {
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
        env: container_env(),
    }))
}

/// `NOTIFY_SOCKET` for the container, and the watchdog: `WATCHDOG_USEC` passes through when it
/// was meant for pier (no `WATCHDOG_PID`, or pier's pid); `WATCHDOG_PID` is left out, so
/// `sd_watchdog_enabled()` inside accepts it for any process (sd_watchdog_enabled(3)).
fn container_env() -> Vec<String> {
    let mut env = vec![format!("NOTIFY_SOCKET={CONTAINER_SOCKET}")];
    let for_us =
        std::env::var("WATCHDOG_PID").map_or(true, |p| p == std::process::id().to_string());
    if let (Ok(usec), true) = (std::env::var("WATCHDOG_USEC"), for_us) {
        env.push(format!("WATCHDOG_USEC={usec}"));
    }
    env
}

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

/// A live relay: the container-side listener, the host's socket, and the relay core.
pub struct Session {
    listener: Listener,
    upstream: Option<Upstream>,
    relay: Relay,
}

/// At start (or run): bind the socket, connect upstream, choose the identity. `None` when
/// the container has no notify directory or pier has no `NOTIFY_SOCKET` now.
pub fn start_session(dir: &ContainerDir, state: &State, detached: bool) -> Result<Option<Session>> {
    if !requested() {
        return Ok(None);
    }
    let notify_dir = match rustix::fs::openat(
        dir.fd(),
        HOST_DIR,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => fd,
        Err(rustix::io::Errno::NOENT) => return Ok(None),
        Err(e) => return Err(e).context("open the notify directory"),
    };
    let _ = rustix::fs::unlinkat(&notify_dir, SOCKET_NAME, rustix::fs::AtFlags::empty());
    let listener = Listener::bind_in(&notify_dir, SOCKET_NAME).context("bind the notify socket")?;
    let upstream = Upstream::from_env().unwrap_or_else(|e| {
        tracing::warn!("notify: host socket unusable, notifications will be dropped: {e}");
        None
    });
    let config = Config {
        policy: policy(&state.annotations)?,
        identity: identity(&state.annotations, detached, state.pid)?,
        init_host_pid: state.pid,
        init_container_pid: if state.own_pid_namespace {
            1
        } else {
            state.pid
        },
    };
    let mut relay = Relay::new(config);
    if matches!(config.identity, Identity::AsMainPid { .. }) && send_main_pidfd(&state.annotations)?
    {
        match init_pidfd(state) {
            Some(pidfd) => relay = relay.with_main_pidfd(pidfd),
            None => tracing::debug!("notify: no pidfd of the init; announcing MAINPID= only"),
        }
    }
    Ok(Some(Session {
        listener,
        upstream,
        relay,
    }))
}

/// A pidfd of the (still unreleased, so alive) init, checked to be that init after opening.
fn init_pidfd(state: &State) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(state.pid)?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
    state.init_alive().then_some(pidfd)
}

/// Whether to announce `MAINPIDFD=1`: the annotation, or with `auto` (default) whether the
/// manager that started pier is systemd 257 or later ([`manager_systemd_version`]). An
/// older systemd would log a warning about the fd it does not expect.
fn send_main_pidfd(annotations: &BTreeMap<String, String>) -> Result<bool> {
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

fn policy(annotations: &BTreeMap<String, String>) -> Result<Policy> {
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
fn identity(
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

impl Session {
    /// The listener, to poll for `POLLIN`.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.listener.as_fd()
    }

    /// The host socket to poll for `POLLOUT` while datagrams wait for a stalled manager.
    pub fn backlog_fd(&self) -> Option<BorrowedFd<'_>> {
        self.upstream
            .as_ref()
            .filter(|u| u.backlog() > 0)
            .and_then(|u| u.poll_fd())
    }

    /// Forward what waits for the manager, as far as it takes it now.
    pub fn flush(&mut self) {
        if let Some(Err(e)) = self.upstream.as_mut().map(|u| u.flush()) {
            tracing::warn!("notify: {e}");
        }
    }

    /// Relay what is queued; true if a forwarded datagram carried `READY=1`.
    pub fn pump(&mut self) -> bool {
        match notify_relay::pump(&mut self.listener, self.upstream.as_mut(), &mut self.relay) {
            Ok(p) => p.ready,
            Err(e) => {
                tracing::warn!("notify: {e}");
                false
            }
        }
    }

    /// Drain the socket, then make sure systemd processed everything (BARRIER=1, bounded),
    /// so it can still attribute what we sent before this process exits.
    pub fn finish(&mut self) {
        while let Ok(p) =
            notify_relay::pump(&mut self.listener, self.upstream.as_mut(), &mut self.relay)
        {
            if p.drained {
                break;
            }
        }
        self.barrier();
    }

    /// Send BARRIER=1 upstream and wait for it, bounded.
    pub fn barrier(&mut self) {
        if let Some(up) = self.upstream.as_mut() {
            if !up
                .barrier(notify_relay::relay::FINAL_BARRIER_TIMEOUT)
                .unwrap_or(false)
            {
                tracing::warn!("notify: the host did not acknowledge the barrier");
            }
        }
    }

    /// Hand the relaying over to a detached process that lives until the init exits and the
    /// socket is drained: a fork (no exec), in a new session, stdio on /dev/null, every fd
    /// closed but the listener and the init's pidfd, and the host socket reconnected, so an
    /// engine waiting for EOF on pier's pipes is never held. With [`Identity::RelayIsMain`]
    /// the relay starts only after this process, still the unit's main pid, has told the host
    /// that the relay is the main pid now ([`Session::hand_over_main_pid`]).
    pub fn detach(mut self, init_pidfd: BorrowedFd<'_>) -> Result<()> {
        let pidfd: OwnedFd = init_pidfd
            .try_clone_to_owned()
            .context("dup the init pidfd")?;
        // The detached relay reconnects: what waits for the manager goes now (bounded).
        if let Some(up) = self.upstream.as_mut() {
            let _ = up.flush_for(notify_relay::socket::SEND_TIMEOUT);
        }
        let (hold, go) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
        match crate::sys::clone3(0, None).context("fork the notify relay")? {
            crate::sys::Forked::Parent { pid, .. } => {
                drop(hold);
                self.hand_over_main_pid(pid);
                drop(go); // EOF: the relay may start
                Ok(())
            }
            crate::sys::Forked::Child => {
                drop(go);
                let code = match self.relay_detached(pidfd, hold) {
                    Ok(()) => 0,
                    Err(_) => 1,
                };
                crate::sys::exit_immediately(code)
            }
        }
    }

    /// [`Identity::RelayIsMain`]: this process is the main pid systemd knows (it started us,
    /// or we announced ourselves with READY=1) and is about to exit, so announce the detached
    /// relay as `MAINPID=` with our own credentials, the only ones `NotifyAccess=main` accepts,
    /// and wait (bounded) until the host has processed it (sd_notify(3), `MAINPID=`).
    fn hand_over_main_pid(&mut self, relay_pid: i32) {
        if self.relay.config().identity != Identity::RelayIsMain {
            return;
        }
        if let Some(up) = self.upstream.as_mut() {
            let out = notify_relay::Outgoing {
                payload: format!("MAINPID={relay_pid}").into_bytes(),
                ..Default::default()
            };
            if let Err(e) = up.send(&out) {
                tracing::warn!("notify: could not announce the detached relay as MAINPID: {e}");
            }
        }
        self.barrier();
    }

    /// In the forked child: detach at once (so pier's stdio is released as pier exits), wait
    /// for EOF on `hold` (the parent's hand-over is done), then relay until the init exits.
    fn relay_detached(self, pidfd: OwnedFd, hold: OwnedFd) -> Result<()> {
        let Session {
            mut listener,
            upstream,
            relay,
        } = self;
        // A relay made before the fork knows the parent's pid as its own: if it has yet to
        // announce MAINPID= (no READY so far), RelayIsMain must name this process instead.
        let mut relay = if relay.main_pid_announced() {
            relay
        } else {
            Relay::new(*relay.config())
        };
        let address = upstream.as_ref().map(|u| u.address().clone());
        std::mem::forget(upstream); // its fd is closed below with the rest
        let _ = rustix::process::setsid();
        let devnull = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        for fd in 0..3 {
            crate::sys::dup3_inheritable(devnull.as_fd(), fd)?;
        }
        crate::sys::close_all_except(&[
            0,
            1,
            2,
            listener.as_fd().as_raw_fd(),
            pidfd.as_raw_fd(),
            hold.as_raw_fd(),
        ]);
        std::mem::forget(devnull);
        let mut byte = [0u8; 1];
        while matches!(
            rustix::io::read(&hold, &mut byte),
            Ok(1) | Err(rustix::io::Errno::INTR)
        ) {}
        drop(hold);
        let mut upstream = address.and_then(|a| Upstream::connect(&a).ok());
        notify_relay::run(
            &mut listener,
            upstream.as_mut(),
            &mut relay,
            pidfd.as_fd(),
            || {},
        )?;
        Ok(())
    }
}
