//! The two datagram shapes the relay moves: what the listener received, what goes upstream.

use std::os::fd::OwnedFd;

/// A datagram received on the container-side socket, with its `SCM_CREDENTIALS`,
/// `SCM_RIGHTS` and `SCM_PIDFD` (unix(7)). The kernel translated the credentials into the
/// relay's pid and user namespaces.
#[derive(Debug)]
pub struct Received {
    /// The payload, at most [`crate::NOTIFY_BUFFER_MAX`] bytes when it comes from a
    /// [`crate::Listener`].
    pub payload: Vec<u8>,
    /// The fds that came with it (close-on-exec), at most 253 (`SCM_MAX_FD`).
    pub fds: Vec<OwnedFd>,
    /// Sender pid, in the relay's pid namespace.
    pub pid: i32,
    /// Sender uid, in the relay's user namespace.
    pub uid: u32,
    /// Sender gid, in the relay's user namespace.
    pub gid: u32,
    /// A pidfd of the sender (`SCM_PIDFD`), when the listener has `SO_PASSPIDFD` (Linux 6.5)
    /// and the kernel could make one. It names the process that sent the datagram even if
    /// that process has exited since and `pid` belongs to another one now; the relay's sender
    /// checks use it when present ([`crate::pidfd`]), else `pid`.
    pub pidfd: Option<OwnedFd>,
    /// The listener asked for the sender's pidfd and the kernel had none to give (`ESRCH`):
    /// the sender had been reaped before the datagram was read, and `pid` may belong to
    /// another process now. Its `MAINPID=` of itself is then refused, never looked up.
    pub sender_reaped: bool,
}

/// A datagram to send upstream (to the host's `NOTIFY_SOCKET`).
#[derive(Debug, Default)]
pub struct Outgoing {
    /// The payload: `KEY=VALUE` lines joined by `\n`.
    pub payload: Vec<u8>,
    /// fds to pass with `SCM_RIGHTS`; the relay's copies are closed when this is dropped.
    pub fds: Vec<OwnedFd>,
    /// Send with an explicit `SCM_CREDENTIALS` carrying this pid (and the relay's own uid and
    /// gid) instead of the kernel's default, see [`crate::Identity::AsMainPid`].
    pub pid_credential: Option<i32>,
}

impl Outgoing {
    /// The payload as text, for logs and tests (lossy UTF-8).
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.payload).into_owned()
    }
}
