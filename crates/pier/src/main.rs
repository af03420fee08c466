//! `pier`: normalise argv, parse it, run the command, and report a failure exactly once.

use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches};
use pier::cli::{normalize::normalize, Cli};

fn main() -> ExitCode {
    let command = Cli::command();
    let argv = normalize(&command, std::env::args().collect());
    let cli = match command.try_get_matches_from(argv).and_then(|m| Cli::from_arg_matches(&m)) {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 1 } else { 0 });
        }
    };
    if let Err(e) = pier::logging::init(&cli.global) {
        eprintln!("pier: open log: {e}");
        return ExitCode::from(1);
    }
    match pier::commands::dispatch(&cli) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            pier::logging::report_failure(&cli.global, &e);
            ExitCode::from(1)
        }
    }
}
