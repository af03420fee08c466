//! A complete `sd_notify` relay, embeddable by any container runtime.
//!
//! # The protocol in one page
//!
//! A service tells its manager about its state by sending datagrams to the `AF_UNIX` socket
//! named by `$NOTIFY_SOCKET` (sd_notify(3)): `/abs/path`, `@abstract` or
//! `vsock[-stream|-dgram|-seqpacket]:CID:PORT` ([`Address`]). Each datagram holds
//! newline-separated `KEY=VALUE` assignments (`READY=1`, `STATUS=…`, `WATCHDOG=1`, …) and is
//! processed by systemd **as a unit**: `READY=1` with `RELOADING=1` and `MONOTONIC_USEC=`
//! means "reload done", so a relay must never split or merge datagrams. systemd reads at
//! most 4096 bytes ([`NOTIFY_BUFFER_MAX`]), refuses a datagram with an embedded NUL (one
//! trailing NUL is fine) and ignores unknown keys. fds may ride along with `SCM_RIGHTS` for
//! the fd store (`FDSTORE=1`) or for `BARRIER=1`, which must be alone with exactly one fd:
//! systemd closes that fd once it has processed every earlier datagram, which is how
//! `sd_notify_barrier()` knows its messages arrived.
//!
//! systemd attributes a datagram to a unit by the **sender pid** in `SCM_CREDENTIALS`, and
//! checks it against `NotifyAccess=`. A process inside a container is in another cgroup and
//! pid namespace, so it cannot talk to the host's socket directly. The relay binds a socket
//! for the container ([`Listener`]), receives each datagram with its credentials and fds like
//! systemd would, filters it by a [`Policy`], and forwards it as one datagram to the host
//! ([`Upstream`]). Every drop is logged at debug level with its [`DropReason`].
//!
//! Where the kernel has `SO_PASSPIDFD` ([`Listener::set_sender_pidfds`]), each datagram also
//! carries a pidfd of its sender, and the sender checks compare processes instead of pids
//! that may have been reused ([`pidfd`], [`Relay::with_init_pidfd`]).
//!
//! # Identity modes
//!
//! [`Identity`] decides who systemd sees as the sender:
//!
//! * [`Identity::AsRelay`] — the relay is the unit's main process (foreground `run`):
//!   forward with the relay's own credentials.
//! * [`Identity::AsMainPid`] — detached and privileged: the first forwarded `READY=1` gets
//!   `MAINPID=<init host pid>` in the same datagram (sent as the relay, still the main pid),
//!   and every later datagram is sent with `SCM_CREDENTIALS` naming the init, so `NotifyAccess=main` keeps working after the
//!   runtime has exited.
//! * [`Identity::RelayIsMain`] — detached, unprivileged: the relay announces itself as
//!   `MAINPID=` and forwards as itself.
//!
//! # Embedding
//!
//! The core, [`Relay::on_datagram`], is pure: a [`Received`] datagram in, an [`Outcome`]
//! out. [`pump`] moves what is queued from a [`Listener`] to an [`Upstream`] and can be called
//! from any event loop when [`Listener`]'s fd is readable; [`run`] is a complete blocking loop
//! that ends when the container's init exits.
//!
//! ```no_run
//! use std::os::fd::AsFd;
//! use notify_relay::{Config, Identity, Listener, Policy, Relay, Upstream};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let init_pid = 4242;
//! // Container side: a socket the container sees as /run/notify/notify.sock.
//! let mut listener = Listener::bind("/run/pier/c1/notify/notify.sock".as_ref())?;
//! // Host side: the manager's socket, if we were started with one.
//! let mut upstream = Upstream::from_env()?;
//! let mut relay = Relay::new(Config {
//!     policy: Policy::default(),
//!     identity: Identity::AsMainPid { init_host_pid: init_pid },
//!     init_host_pid: init_pid,
//!     init_container_pid: 1,
//! });
//! let pidfd = rustix::process::pidfd_open(
//!     rustix::process::Pid::from_raw(init_pid).expect("positive pid"),
//!     rustix::process::PidfdFlags::empty(),
//! )?;
//! let summary = notify_relay::run(&mut listener, upstream.as_mut(), &mut relay, pidfd.as_fd(), || {
//!     eprintln!("container is ready");
//! })?;
//! eprintln!("forwarded {} datagrams, dropped {}", summary.forwarded, summary.dropped);
//! # Ok(())
//! # }
//! ```
// `unsafe` only in `sys` (receiving SCM_PIDFD, which rustix lacks); see its docs.
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod address;
mod datagram;
mod error;
pub mod identity;
pub mod message;
pub mod pidfd;
pub mod pidns;
pub mod policy;
mod reason;
pub mod relay;
pub mod socket;
mod sys;

pub use address::{Address, VsockKind};
pub use datagram::{Outgoing, Received};
pub use error::RelayError;
pub use identity::Identity;
pub use message::{Assignment, Message, NOTIFY_BUFFER_MAX};
pub use policy::{Decision, Policy, SenderAccess};
pub use reason::{DropReason, Dropped};
pub use relay::{pump, run, Config, Outcome, Pumped, Relay, Summary};
pub use socket::{Listener, Recv, Upstream};
