//! sd_notify for a process started by `pier exec`: `exec --notify-socket MODE`, or the
//! container's `org.pier.notify.exec` annotation, then `none`.
//!
//! - `none`: no `NOTIFY_SOCKET`, as runc.
//! - `container`: the container's own relayed socket, [`CONTAINER_SOCKET`]: what the process
//!   sends goes through the container's relay to the manager that started the container.
//! - `own`: a socket of this `pier exec`'s own, [`ExecSocket`], relayed to the manager that
//!   started *this* `pier exec` (its `NOTIFY_SOCKET`): a unit whose `ExecStart=` is
//!   `pier exec --notify-socket own ID CMD` gets its service's READY, STATUS, fd store,
//!   watchdog and `MAINPID=` as if CMD ran in the unit (docs/notify.md).

use std::collections::BTreeMap;
use std::os::fd::BorrowedFd;

use anyhow::{bail, Context, Result};
use notify_relay::Listener;
use rustix::fs::{AtFlags, FileType};

use super::annotations::ANNOTATION_EXEC;
use super::container::watchdog_env;
use super::session::{open_notify_dir, open_session, Served, SocketFile};
use super::{requested, Session, CONTAINER_DIR, CONTAINER_SOCKET, HOST_DIR, SOCKET_NAME};
use crate::state::ContainerDir;

/// What an exec'd process gets for sd_notify.
pub enum ExecNotify {
    /// Nothing (runc's behaviour).
    None,
    /// The container's relayed socket.
    Container,
    /// A socket of this `pier exec`'s own, relayed to its `NOTIFY_SOCKET`.
    Own(ExecSocket),
}

impl ExecNotify {
    /// The entries to add to the process's environment: `NOTIFY_SOCKET=` (replacing one
    /// from config.json), and with `own` also `WATCHDOG_USEC=` when the unit's watchdog was
    /// meant for this pier (`WATCHDOG_PID` left out, as for a container's init).
    pub fn env(&self) -> Vec<String> {
        match self {
            Self::None => Vec::new(),
            Self::Container => vec![format!("NOTIFY_SOCKET={CONTAINER_SOCKET}")],
            Self::Own(socket) => {
                let mut env = vec![format!("NOTIFY_SOCKET={}", socket.container_path())];
                env.extend(watchdog_env());
                env
            }
        }
    }
}

/// The mode of `exec --notify-socket` (`flag`), else of the [`ANNOTATION_EXEC`] annotation,
/// else `none`; with `own`, the socket is bound now (before the process exists, so nothing
/// it sends is lost).
///
/// # Errors
/// An unknown mode; `container` for a container without a relay (not started with
/// `NOTIFY_SOCKET`, so it has no `/run/notify/notify.sock`); `own` from the flag when this
/// pier has no `NOTIFY_SOCKET` (nothing to relay to), or when the container has no notify
/// directory (it was created with neither `NOTIFY_SOCKET` nor `org.pier.notify.exec=own`).
/// The annotation's `own` without a `NOTIFY_SOCKET` is `none`: a plain `pier exec` from a
/// shell stays what runc does.
pub fn exec_notify(
    dir: &ContainerDir,
    flag: Option<&str>,
    annotations: &BTreeMap<String, String>,
) -> Result<ExecNotify> {
    let (mode, source) = match flag {
        Some(mode) => (mode, "--notify-socket"),
        None => match annotations.get(ANNOTATION_EXEC) {
            Some(mode) => (mode.as_str(), ANNOTATION_EXEC),
            None => return Ok(ExecNotify::None),
        },
    };
    match mode {
        "none" => Ok(ExecNotify::None),
        "container" => {
            let socket = format!("{HOST_DIR}/{SOCKET_NAME}");
            match rustix::fs::statat(dir.fd(), socket.as_str(), AtFlags::empty()) {
                Ok(st) if FileType::from_raw_mode(st.st_mode).is_socket() => {
                    Ok(ExecNotify::Container)
                }
                Ok(_) | Err(rustix::io::Errno::NOENT) => bail!(
                    "{source} container: the container has no notify socket (it was not \
                     started with NOTIFY_SOCKET set, so nothing relays {CONTAINER_SOCKET})"
                ),
                Err(e) => Err(e).context("look for the container's notify socket"),
            }
        }
        "own" if !requested() && flag.is_none() => Ok(ExecNotify::None),
        "own" if !requested() => bail!(
            "{source} own: pier has no NOTIFY_SOCKET to relay the process's notifications to \
             (run it from a unit with Type=notify, NotifyAccess= or WatchdogSec=)"
        ),
        "own" => ExecSocket::bind(dir).map(ExecNotify::Own),
        other => bail!("invalid {source} {other:?}: use container, own or none"),
    }
}

/// The socket of `pier exec --notify-socket own`: `exec-<pier's pid>.sock` in the container's
/// notify directory (`<root>/<id>/notify/`, bound read-only at [`CONTAINER_DIR`], so the
/// process sees it at `/run/notify/exec-<pid>.sock` without anything written into its
/// filesystem). Removed when relaying ends, or on drop while no session owns it (a failed
/// exec leaves nothing behind); `delete` removes the directory with the container.
pub struct ExecSocket {
    listener: Option<Listener>,
    file: SocketFile,
}

impl ExecSocket {
    fn bind(dir: &ContainerDir) -> Result<ExecSocket> {
        let Some(notify_dir) = open_notify_dir(dir)? else {
            bail!(
                "--notify-socket own: the container has no notify directory (create it with \
                 NOTIFY_SOCKET set, or with the annotation {ANNOTATION_EXEC}=own)"
            );
        };
        let name = format!("exec-{}.sock", std::process::id());
        // Left by a pier exec with this pid that was killed: its relay is gone.
        let _ = rustix::fs::unlinkat(&notify_dir, name.as_str(), AtFlags::empty());
        let listener =
            Listener::bind_in(&notify_dir, &name).context("bind the exec's notify socket")?;
        Ok(ExecSocket {
            listener: Some(listener),
            file: SocketFile {
                dir: notify_dir,
                name,
            },
        })
    }

    /// `NOTIFY_SOCKET` as the process sees it.
    fn container_path(&self) -> String {
        format!("{CONTAINER_DIR}/{}", self.file.name)
    }

    /// The relay for the started process (`pid` in pier's pid namespace, `pidfd` its
    /// pidfd): the relay's "init" is this process, so `org.pier.notify.access=init` accepts
    /// only it, a `MAINPID=` may name it or the sender, and a detached exec announces it as
    /// the unit's main pid with its first `READY=1` (`MAINPIDFD=1` too for systemd 257+),
    /// as `run -d` does with the init.
    ///
    /// # Errors
    /// A bad notify annotation.
    pub fn into_session(
        mut self,
        pid: i32,
        pidfd: BorrowedFd<'_>,
        annotations: &BTreeMap<String, String>,
        detached: bool,
    ) -> Result<Session> {
        let container_pid = notify_relay::pidfd::info(pidfd)
            .ok()
            .and_then(|info| info.innermost_pid())
            .unwrap_or(pid);
        let served = Served {
            host_pid: pid,
            container_pid,
        };
        let listener = self.listener.take().expect("bound until here");
        let file = SocketFile {
            dir: self
                .file
                .dir
                .try_clone()
                .context("dup the notify directory fd")?,
            name: std::mem::take(&mut self.file.name),
        };
        let session = open_session(listener, &served, annotations, detached, || {
            pidfd.try_clone_to_owned().ok()
        });
        let mut session = match session {
            Ok(session) => session,
            Err(e) => {
                file.remove();
                return Err(e);
            }
        };
        session.socket_file = Some(file);
        Ok(session)
    }
}

impl Drop for ExecSocket {
    fn drop(&mut self) {
        if self.listener.is_some() {
            self.file.remove();
        }
    }
}
