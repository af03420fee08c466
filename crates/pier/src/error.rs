//! The error conditions whose text engines match (design-study §4.7).
//!
//! Everything else is an `anyhow` context chain printed as `outer: inner: cause`, like runc's
//! wrapped Go errors. These variants keep runc's exact sentinel strings: containerd treats
//! "does not exist" as gone, and "container not running" / "no such process" as finished.

/// A lifecycle condition with a fixed message.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ContainerError {
    /// No state directory for this id under `--root`.
    #[error("container does not exist")]
    NotExist,
    /// `create` with an id already in use.
    #[error("container with given ID already exists")]
    Exists,
    /// An id that is empty, has `/`, `..`, or characters outside `[A-Za-z0-9_.+-]`.
    #[error("invalid container ID format: {0:?}")]
    InvalidId(String),
    /// An operation that needs a live init (kill, pause) on a stopped container.
    #[error("container not running")]
    NotRunning,
    /// `delete` without `--force` on a running or paused container.
    #[error("cannot delete container {0} that is not stopped: container still running")]
    StillRunning(String),
    /// `start` on a container that is not in the `created` state.
    #[error("cannot start a container that has {0}")]
    CannotStart(&'static str),
}
