//! The relay's two sockets: the container-side [`Listener`] and the host-side [`Upstream`].

pub mod backlog;
mod hangup;
pub mod listener;
pub mod upstream;
#[cfg(feature = "vsock")]
mod vsock;

pub use backlog::{Backlog, BACKLOG_BYTES, BACKLOG_MAX};
pub use listener::{Listener, Recv, RECEIVE_BUFFER, RECV_BATCH, SCM_MAX_FD};
pub use upstream::{Upstream, SEND_TIMEOUT, STALL_WAIT};
