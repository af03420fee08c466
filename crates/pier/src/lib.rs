//! pier: an OCI container runtime, command-line compatible with runc, whose reason to exist is
//! a complete sd_notify relay (see `docs/` and the `notify-relay` crate).
//!
//! The binary (`src/main.rs`) is a thin shell over this library so that tests can reach the
//! pure parts (argv normaliser, config.json -> Plan) directly.
#![deny(unsafe_code)]

mod activation;
pub mod cgroups;
mod channel;
pub mod cli;
pub mod commands;
mod container;
pub mod error;
mod hooks;
mod init;
pub mod logging;
mod notify;
mod rootless;
mod sealed_exe;
mod signals;
mod spawn;
mod spec;
mod state;
mod supervise;
mod sys;
mod tool;
mod tty;
mod undo;
