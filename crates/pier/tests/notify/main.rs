//! pier's sd_notify relay end to end, as root: busybox-static containers run by the real pier
//! binary with `NOTIFY_SOCKET` pointing at a fake systemd (`notify_support::systemd`), checked
//! against design §4 (container side, forwarding, identity, waiting).
//!
//! Every wait is bounded by `HANG_GUARD` and ends on a datagram or a process exit.

#[path = "../notify_support/mod.rs"]
mod notify_support;
#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod barrier_fdstore_mainpid;
mod container_side;
mod exec;
mod fidelity;
mod host_side;
mod identity;
mod never_hang;
mod stalled_manager;
mod userns;
mod watchdog;
mod whole_life;
