//! Shared pieces of pier's sd_notify integration tests (`tests/notify.rs`): busybox bundles
//! with a static sender, a fake systemd notify socket, and a bounded pier runner.
#![allow(dead_code)]

pub mod bundle;
pub mod pier;
pub mod scenario;
pub mod systemd;

use std::time::Duration;

/// Longest any single wait may take: a test that waits this long has failed.
pub const HANG_GUARD: Duration = Duration::from_secs(20);
