//! The crate's one error type.

use std::io;

/// Everything that can go wrong in the relay's I/O and configuration.
///
/// Bad *datagrams* are not errors: they are [`crate::DropReason`]s, logged and counted, and the
/// relay keeps going. A `RelayError` is about the relay's own sockets, its address or `/proc`.
#[derive(Debug, thiserror::Error)]
pub enum RelayError {
    /// `NOTIFY_SOCKET` (or another address string) is not a form libsystemd accepts
    /// (sd_notify(3), "Notes": `/path`, `@abstract`, `vsock[-stream|-dgram|-seqpacket]:CID:PORT`).
    #[error("invalid notify socket address {address:?}: {reason}")]
    Address {
        /// The address as given.
        address: String,
        /// Why it was refused.
        reason: &'static str,
    },
    /// A system call on one of the relay's sockets, pipes or files failed.
    #[error("{context}: {source}")]
    Io {
        /// What the relay was doing, e.g. "bind notify socket /run/x/notify.sock".
        context: String,
        /// The underlying OS error.
        #[source]
        source: io::Error,
    },
    /// `/proc/<pid>/status` had no usable `NSpid:` line (proc(5)).
    #[error("pid {pid}: no NSpid line in /proc/{pid}/status")]
    NoNsPid {
        /// The pid, in the relay's pid namespace.
        pid: i32,
    },
    /// An fd expected to be a pidfd has no `Pid:` line in its `/proc/self/fdinfo` (proc(5)).
    #[error("not a pidfd: no Pid line in its fdinfo")]
    NotAPidfd,
    /// The operation is not possible on this kind of upstream address, e.g. passing fds or
    /// credentials over vsock, or vsock without the `vsock` cargo feature.
    #[error("{what} is not supported on upstream {address}")]
    Unsupported {
        /// What was attempted.
        what: &'static str,
        /// The upstream address.
        address: String,
    },
}

impl RelayError {
    /// Wraps an OS error with what the relay was doing.
    pub(crate) fn io(context: impl Into<String>, source: impl Into<io::Error>) -> Self {
        Self::Io {
            context: context.into(),
            source: source.into(),
        }
    }

    /// The raw OS error number, when this is an [`RelayError::Io`] with one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Self::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}
