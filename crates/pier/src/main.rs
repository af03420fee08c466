//! `pier`: normalise argv, parse it, run the command, and report a failure exactly once.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use pier::cli::{normalize::normalize, Cli};

fn main() -> ExitCode {
    let command = Cli::command();
    let argv = normalize(&command, std::env::args().collect());
    let cli = match command
        .try_get_matches_from(argv)
        .and_then(|m| Cli::from_arg_matches(&m))
    {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            if !e.use_stderr() {
                return ExitCode::from(0);
            }
            let rendered = e.render().to_string();
            let msg = rendered
                .lines()
                .next()
                .unwrap_or_default()
                .trim_start_matches("error: ");
            pier::logging::record_usage_error(&std::env::args().collect::<Vec<_>>(), msg);
            return ExitCode::from(1);
        }
    };
    // Before the log file takes the lowest free fd: fds 3.. must be the caller's own.
    let inherited = pier::commands::check_inherited_fds(&cli);
    if let Err(e) = pier::logging::init(&cli.global) {
        eprintln!("pier: open log: {e}");
        return ExitCode::from(1);
    }
    if let Err(e) = inherited {
        pier::logging::report_failure(&cli.global, &e);
        return ExitCode::from(1);
    }
    match pier::commands::dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            pier::logging::report_failure(&cli.global, &e);
            ExitCode::from(pier::error::exit_status(&e))
        }
    }
}
