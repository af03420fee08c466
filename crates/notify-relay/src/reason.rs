//! Why a datagram, an assignment or an fd was not forwarded.

use std::fmt;

/// The reason for one drop. Each mirrors what systemd's manager would do with the same input
/// (`manager_dispatch_notify_fd`, `service_notify_message` in systemd's `src/core/`), or a rule
/// of this relay's policy (see [`crate::Policy`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DropReason {
    /// The payload is larger than [`crate::NOTIFY_BUFFER_MAX`] bytes (systemd: "exceeded
    /// maximum size" / "truncated payload data").
    TooLarge {
        /// Length of the payload in bytes as reported by the kernel.
        bytes: usize,
    },
    /// The kernel truncated the control data (`MSG_CTRUNC`): too many fds (systemd: "truncated
    /// control data").
    ControlTruncated,
    /// A zero-length payload, or one that holds only newlines.
    Empty,
    /// A NUL byte anywhere but as the single last byte.
    EmbeddedNul,
    /// The datagram came without `SCM_CREDENTIALS` (systemd: "without valid credentials").
    NoCredentials,
    /// The sender is not the container's init and the policy is [`crate::SenderAccess::Init`].
    SenderNotInit {
        /// Sender pid in the relay's pid namespace.
        pid: i32,
    },
    /// A line without `=`.
    NotAnAssignment,
    /// A key this relay does not know; systemd would ignore it too.
    UnknownKey,
    /// A known key with a value systemd does not act on, e.g. `READY=0` or `WATCHDOG=2`.
    UnsupportedValue,
    /// `X_*` extensions are switched off by the policy.
    ExtensionsDisabled,
    /// `NOTIFYACCESS=` would let the container change who may notify the unit.
    NotifyAccess,
    /// `MAINPIDFD=`/`MAINPIDFDID=` name a process by pidfd, which the relay does not verify.
    MainPidFd,
    /// `MAINPID=` is not a positive decimal pid.
    MainPidInvalid,
    /// `MAINPID=` names neither the sender nor the container's init.
    MainPidForeign {
        /// The pid as written, in the container's pid namespace.
        pid: i32,
    },
    /// The sender's pid in its own namespace could not be read (from its pidfd's fdinfo, or
    /// without a pidfd from `/proc/<pid>/status`): it has exited, or `/proc` is missing.
    MainPidUnresolved,
    /// The identity mode ([`crate::Identity::AsMainPid`], [`crate::Identity::RelayIsMain`])
    /// owns the unit's main pid; a container `MAINPID=` would take it away.
    MainPidOwnedByRelay,
    /// FDSTORE keys while the policy disables the fd store.
    FdStoreDisabled,
    /// `BARRIER=1` shares its datagram with other lines (systemd drops the whole datagram).
    BarrierNotAlone,
    /// `BARRIER=1` came with this many fds instead of exactly one.
    BarrierFdCount {
        /// Number of fds that came with it.
        fds: usize,
    },
    /// fds on a datagram that neither stores them (`FDSTORE=1`) nor is a barrier: closed.
    StrayFds {
        /// Number of fds closed.
        fds: usize,
    },
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::TooLarge { bytes } => write!(f, "payload of {bytes} bytes exceeds 4096"),
            Self::ControlTruncated => f.write_str("control data truncated (too many fds?)"),
            Self::Empty => f.write_str("empty datagram"),
            Self::EmbeddedNul => f.write_str("embedded NUL byte"),
            Self::NoCredentials => f.write_str("no SCM_CREDENTIALS"),
            Self::SenderNotInit { pid } => {
                write!(f, "sender pid {pid} is not the container's init")
            }
            Self::NotAnAssignment => f.write_str("line is not KEY=VALUE"),
            Self::UnknownKey => f.write_str("unknown key"),
            Self::UnsupportedValue => f.write_str("value not acted on by systemd"),
            Self::ExtensionsDisabled => f.write_str("X_* extensions disabled by policy"),
            Self::NotifyAccess => f.write_str("container may not change NotifyAccess"),
            Self::MainPidFd => f.write_str("pidfd-based main pid is not verified by the relay"),
            Self::MainPidInvalid => f.write_str("not a valid pid"),
            Self::MainPidForeign { pid } => {
                write!(
                    f,
                    "pid {pid} is neither the sender nor the container's init"
                )
            }
            Self::MainPidUnresolved => f.write_str("sender's container pid unknown"),
            Self::MainPidOwnedByRelay => f.write_str("the relay's identity mode owns MAINPID"),
            Self::FdStoreDisabled => f.write_str("fd store disabled by policy"),
            Self::BarrierNotAlone => f.write_str("BARRIER=1 must be alone in its datagram"),
            Self::BarrierFdCount { fds } => write!(f, "BARRIER=1 needs exactly 1 fd, got {fds}"),
            Self::StrayFds { fds } => write!(f, "{fds} fds without FDSTORE=1 closed"),
        }
    }
}

/// One thing that was not forwarded, for logs and counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    /// The key of the dropped assignment (lossy UTF-8), or `None` when the whole datagram or
    /// its fds were dropped.
    pub key: Option<String>,
    /// Why.
    pub reason: DropReason,
}

impl Dropped {
    /// A drop of the whole datagram (or of its fds).
    pub fn datagram(reason: DropReason) -> Self {
        Self { key: None, reason }
    }

    /// A drop of one assignment with this key.
    pub fn key(key: impl Into<String>, reason: DropReason) -> Self {
        Self {
            key: Some(key.into()),
            reason,
        }
    }
}

impl fmt::Display for Dropped {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.key {
            Some(key) => write!(f, "{key}: {}", self.reason),
            None => write!(f, "datagram: {}", self.reason),
        }
    }
}
