//! `pier`: normalise argv, parse it, run the command, and report a failure exactly once.
//!
//! No Rust runtime start-up: the process starts in the C `main` of `sys/entry.rs`, which
//! does the part of it pier needs and calls [`pier_main`].
// Under `cargo test --bin pier` the harness brings its own `main` (and there are no tests).
#![cfg_attr(not(test), no_main)]
#![deny(unsafe_code)]

#[cfg(not(test))]
#[path = "sys/entry.rs"]
mod entry;

use clap::{CommandFactory, FromArgMatches};
use pier::cli::{normalize::normalize, Cli};

/// The whole command: returns the exit status (runc's: 0, 1, or the container's status).
#[cfg_attr(test, allow(dead_code))]
fn pier_main() -> u8 {
    let argv: Vec<String> = std::env::args().collect();
    pier::commands::seal_own_binary_early(&argv);
    let mut command = Cli::command();
    let argv = normalize(&mut command, argv);
    let parsed = command.try_get_matches_from_mut(argv).and_then(|m| {
        let cli = Cli::from_arg_matches(&m);
        // The process exits soon after; freeing clap's trees costs ~70 k instructions
        // (callgrind) of a ~600 k start-up, for memory nothing else would reuse.
        std::mem::forget(m);
        cli
    });
    std::mem::forget(command);
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return 0;
            }
            let rendered = e.render().to_string();
            let msg = rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            pier::logging::record_usage_error(&std::env::args().collect::<Vec<_>>(), msg);
            return 1;
        }
    };
    // Before the log file takes the lowest free fd: fds 3.. must be the caller's own.
    let inherited = pier::commands::check_inherited_fds(&cli);
    if let Err(e) = pier::logging::init(cli.global.log_settings()) {
        eprintln!("pier: open log: {e}");
        return 1;
    }
    if let Err(e) = inherited.and_then(|()| pier::commands::seal_own_binary(&cli)) {
        pier::logging::report_failure(cli.global.log_settings(), &e);
        return pier::error::exit_status(&e);
    }
    match pier::commands::dispatch(&cli) {
        Ok(code) => code,
        Err(e) => {
            pier::logging::report_failure(cli.global.log_settings(), &e);
            pier::error::exit_status(&e)
        }
    }
}
