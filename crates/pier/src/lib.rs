//! pier: an OCI container runtime, command-line compatible with runc, whose reason to exist is
//! a complete sd_notify relay (see `docs/` and the `notify-relay` crate).
//!
//! The binary (`src/main.rs`) is a thin shell over this library so that tests can reach the
//! pure parts (argv normaliser, config.json -> Plan) directly.
#![deny(unsafe_code)]

pub mod activation;
pub mod cgroups;
pub mod channel;
pub mod cli;
pub mod commands;
pub mod container;
pub mod error;
pub mod hooks;
pub mod init;
pub mod logging;
pub mod notify;
pub mod signals;
pub mod spawn;
pub mod spec;
pub mod state;
pub mod supervise;
pub mod sys;
pub mod tty;
