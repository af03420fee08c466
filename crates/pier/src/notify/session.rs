//! The relay while pier runs: bind the container's socket at start, connect to the host's,
//! and pump datagrams for `start`/`run`'s loop.

use std::collections::BTreeMap;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use notify_relay::{Config, Identity, Listener, Relay, Upstream};
use rustix::fs::{Mode, OFlags};

use super::annotations::{identity, policy, send_main_pidfd};
use super::{requested, HOST_DIR, SOCKET_NAME};
use crate::state::{ContainerDir, State};

/// A live relay: the container-side listener, the host's socket, and the relay core.
pub struct Session {
    pub(super) listener: Listener,
    pub(super) upstream: Option<Upstream>,
    pub(super) relay: Relay,
    /// After a forwarded `READY=1`: the read end of the barrier queued behind it, which
    /// hangs up once the manager has processed the READY ([`Session::await_ready_ack`]).
    pub(super) ready_ack: Option<OwnedFd>,
    /// A socket file of this session's own, removed when relaying ends (`pier exec`'s,
    /// [`super::ExecSocket`]); the container's `notify.sock` goes with its state directory.
    pub(super) socket_file: Option<SocketFile>,
    /// A `READY=1` has been forwarded (or queued for the manager).
    ready_forwarded: bool,
}

/// A socket file in a directory (held by an `O_PATH` fd), to remove when it is done with.
pub(crate) struct SocketFile {
    pub(super) dir: OwnedFd,
    pub(super) name: String,
}

impl SocketFile {
    /// Unlink it (a missing file is fine: removed already, or with its container).
    pub(super) fn remove(&self) {
        let _ = rustix::fs::unlinkat(&self.dir, self.name.as_str(), rustix::fs::AtFlags::empty());
    }
}

/// The process a session relays for, "the init" in the relay's terms: the container's init,
/// or a process of `pier exec --notify-socket own`.
pub(super) struct Served {
    /// Its pid in pier's pid namespace.
    pub host_pid: i32,
    /// Its pid in its own (innermost) pid namespace.
    pub container_pid: i32,
}

/// The container's notify directory (`<root>/<id>/notify/`, [`HOST_DIR`]) as an O_PATH fd;
/// `None` when the container was made without one. Errors: any other openat(2) failure.
pub(super) fn open_notify_dir(dir: &ContainerDir) -> Result<Option<OwnedFd>> {
    match rustix::fs::openat(
        dir.fd(),
        HOST_DIR,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    ) {
        Ok(fd) => Ok(Some(fd)),
        Err(rustix::io::Errno::NOENT) => Ok(None),
        Err(e) => Err(e).context("open the notify directory"),
    }
}

/// At start (or run): bind the socket, connect upstream, choose the identity. `None` when
/// the container has no notify directory or pier has no `NOTIFY_SOCKET` now.
pub fn start_session(dir: &ContainerDir, state: &State, detached: bool) -> Result<Option<Session>> {
    if !requested() {
        return Ok(None);
    }
    let Some(notify_dir) = open_notify_dir(dir)? else {
        return Ok(None);
    };
    let _ = rustix::fs::unlinkat(&notify_dir, SOCKET_NAME, rustix::fs::AtFlags::empty());
    let listener = Listener::bind_in(&notify_dir, SOCKET_NAME).context("bind the notify socket")?;
    let served = Served {
        host_pid: state.pid,
        container_pid: if state.own_pid_namespace {
            1
        } else {
            state.pid
        },
    };
    open_session(listener, &served, &state.annotations, detached, || {
        init_pidfd(state)
    })
    .map(Some)
}

/// A session relaying what `listener` receives for `served` to pier's `NOTIFY_SOCKET`: the
/// annotations' policy and identity (the identity's main pid is `served`), sender pidfds
/// with `access=init`, `MAINPIDFD=1` for a 257+ manager. `pidfd` opens a pidfd of `served`,
/// called only when one is needed.
pub(super) fn open_session(
    mut listener: Listener,
    served: &Served,
    annotations: &BTreeMap<String, String>,
    detached: bool,
    pidfd: impl FnOnce() -> Option<OwnedFd>,
) -> Result<Session> {
    let upstream = Upstream::from_env().unwrap_or_else(|e| {
        tracing::warn!("notify: host socket unusable, notifications will be dropped: {e}");
        None
    });
    let config = Config {
        policy: policy(annotations)?,
        identity: identity(annotations, detached, served.host_pid)?,
        init_host_pid: served.host_pid,
        init_container_pid: served.container_pid,
    };
    let mut relay = Relay::new(config);
    // The manager takes MAINPIDFD=1 (257+): with the init's announcement (main-pid), or
    // with a container MAINPID= that is forwarded (relay).
    let takes_pidfds = match config.identity {
        Identity::AsMainPid { .. } | Identity::AsRelay => send_main_pidfd(annotations)?,
        Identity::RelayIsMain => false,
    };
    if takes_pidfds && config.identity == Identity::AsRelay {
        relay = relay.with_forwarded_main_pidfds(true);
    }
    // Sender pidfds cost a kernel fd per datagram: only when every sender is checked.
    let check_senders = relay.wants_sender_pidfds();
    let pidfd = (check_senders || takes_pidfds).then(pidfd).flatten();
    if check_senders {
        listener.set_sender_pidfds(true);
        if let Some(pidfd) = &pidfd {
            relay = relay.with_init_pidfd(pidfd.as_fd());
        }
    }
    // A container MAINPID= of its sender (foreground, access=all): checked by the sender's
    // pidfd, asked for with those datagrams only (a peek at each first).
    if relay.wants_main_pid_pidfds() {
        listener.set_main_pid_pidfds(true);
    }
    if takes_pidfds {
        match pidfd {
            Some(pidfd) => relay = relay.with_main_pidfd(pidfd),
            None => tracing::debug!("notify: no pidfd of the init; announcing MAINPID= only"),
        }
    }
    Ok(Session {
        listener,
        upstream,
        relay,
        ready_ack: None,
        socket_file: None,
        ready_forwarded: false,
    })
}

/// A pidfd of the (still unreleased, so alive) init, checked to be that init after opening.
fn init_pidfd(state: &State) -> Option<OwnedFd> {
    let pid = rustix::process::Pid::from_raw(state.pid)?;
    let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty()).ok()?;
    state.init_alive().then_some(pidfd)
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

    /// After [`Session::pump`] forwarded `READY=1` (sent, or queued for a manager that does
    /// not read now): queue a `BARRIER=1` behind it, whose fd the manager closes once it has
    /// processed the READY (sd_notify(3)), so `start`/`run -d` can return only then and the
    /// manager still finds the sender of the READY (pier, the main pid so far) alive.
    /// Returns false when no acknowledgement can come (no host socket, vsock, or the barrier
    /// could not be queued): the READY then counts as delivered once sent.
    pub fn await_ready_ack(&mut self) -> bool {
        let Some(up) = self.upstream.as_mut() else {
            return false;
        };
        match up.start_barrier() {
            Ok(ack) => self.ready_ack = ack,
            Err(e) => tracing::warn!("notify: cannot ask the manager to acknowledge READY=1: {e}"),
        }
        self.ready_ack.is_some()
    }

    /// The fd to poll while a READY=1 waits for the manager: it hangs up once processed.
    pub fn ready_ack_fd(&self) -> Option<BorrowedFd<'_>> {
        self.ready_ack.as_ref().map(AsFd::as_fd)
    }

    /// The manager processed the READY=1 (the fd of [`Session::ready_ack_fd`] hung up).
    pub fn ready_acknowledged(&mut self) {
        self.ready_ack = None;
    }

    /// A forwarded READY=1 that the manager has not processed yet.
    pub fn ready_unacknowledged(&self) -> bool {
        self.ready_ack.is_some()
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
            Ok(p) => {
                self.ready_forwarded |= p.ready;
                p.ready
            }
            Err(e) => {
                tracing::warn!("notify: {e}");
                false
            }
        }
    }

    /// Whether a `READY=1` has been forwarded (sent, or queued for the manager).
    pub fn ready_forwarded(&self) -> bool {
        self.ready_forwarded
    }

    /// Drain the socket, then make sure systemd processed everything (BARRIER=1, bounded),
    /// so it can still attribute what we sent before this process exits; the session's own
    /// socket file, if any, is removed.
    pub fn finish(&mut self) {
        while let Ok(p) =
            notify_relay::pump(&mut self.listener, self.upstream.as_mut(), &mut self.relay)
        {
            self.ready_forwarded |= p.ready;
            if p.drained {
                break;
            }
        }
        self.barrier();
        if let Some(file) = &self.socket_file {
            file.remove();
        }
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
}
