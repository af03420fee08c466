//! The error conditions whose text engines match (design-study §4.7).
//!
//! Everything else is an `anyhow` context chain printed as `outer: inner: cause`, like runc's
//! wrapped Go errors. These variants keep runc's exact sentinel strings: containerd treats
//! "does not exist" as gone, and "container not running" / "no such process" as finished.

/// A failure that ends pier with a status other than 1 (runc's 255 for an exec that could not
/// start its process). `main` reports it once, like any other error, and exits with `code`:
/// the exit code travels in the error, so there is one report point.
#[derive(Debug)]
pub struct ExitWith {
    /// pier's exit status.
    pub code: u8,
    /// What failed (displayed as its whole chain, `outer: inner: cause`).
    pub error: anyhow::Error,
}

impl std::fmt::Display for ExitWith {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:#}", self.error)
    }
}

impl std::error::Error for ExitWith {}

/// pier's exit status for a failed command: [`ExitWith::code`], else 1.
pub fn exit_status(err: &anyhow::Error) -> u8 {
    err.downcast_ref::<ExitWith>().map_or(1, |e| e.code)
}

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
