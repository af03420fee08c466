//! Shared pieces of pier's sd_notify integration tests (`tests/notify/`): the notify view of
//! the one runner ([`pier::Pier`]), scenarios, and the workspace's fake systemd notify socket
//! (notify-relay's `tests/kit/systemd.rs`, pulled in as [`systemd`]).
#![allow(dead_code)]

pub mod pier;
pub mod scenario;
/// The workspace's one fake systemd notify socket (notify-relay's tests use the same file).
#[path = "../../../notify-relay/tests/kit/systemd.rs"]
pub mod systemd;

/// Longest any single wait may take: a test that waits this long has failed.
pub use systemd::HANG_GUARD;
