//! The subcommand and `--root` of an argv, found without clap, for the one decision pier
//! takes before parsing: whether to re-execute itself from a sealed copy of its binary
//! (`sealed_exe::early`), so that the full parse runs only once.
//!
//! Only the global flags (runc's, before the subcommand) are read, in clap's forms and
//! Go's (`-root /x`, `--root=/x`, `--debug=false`). Any other flag before the subcommand
//! ends the scan with no answer: the parsed command line then decides (the scan is an
//! optimisation, never the check).

use std::path::PathBuf;

/// The global flags that take a value (`Global` in `cli/mod.rs`); `root` is kept.
const VALUED: [&str; 5] = ["root", "log", "log-format", "rootless", "criu"];
/// The global flags without a value.
const BOOLS: [&str; 6] = ["debug", "systemd-cgroup", "version", "v", "help", "h"];

/// What [`scan`] found: the subcommand name (if one was reached) and the state root
/// (`--root`, else the default root, `rootless::default_root`).
#[derive(Debug, PartialEq, Eq)]
pub struct Scanned {
    pub command: Option<String>,
    pub root: PathBuf,
}

/// Scan `argv` (including `argv[0]`) up to its subcommand.
pub fn scan(argv: &[String]) -> Scanned {
    let mut root = None;
    let mut tokens = argv.iter().skip(1);
    while let Some(token) = tokens.next() {
        let body = token.trim_start_matches('-');
        if body.len() == token.len() || token == "-" {
            let root = root.unwrap_or_else(crate::rootless::default_root);
            return Scanned {
                command: Some(token.clone()),
                root,
            };
        }
        if token.len() - body.len() > 2 || body.is_empty() {
            break;
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (body, None),
        };
        if BOOLS.contains(&name) {
            continue;
        }
        if !VALUED.contains(&name) {
            break;
        }
        let Some(value) = inline.or_else(|| tokens.next().map(String::as_str)) else {
            break;
        };
        if name == "root" {
            root = Some(PathBuf::from(value));
        }
    }
    let root = root.unwrap_or_else(crate::rootless::default_root);
    Scanned {
        command: None,
        root,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> (Option<String>, String) {
        let argv: Vec<String> = std::iter::once("pier")
            .chain(args.iter().copied())
            .map(String::from)
            .collect();
        let s = scan(&argv);
        (s.command, s.root.display().to_string())
    }

    #[test]
    fn finds_the_subcommand_and_root_in_clap_and_go_forms() {
        let default = crate::rootless::default_root().display().to_string();
        assert_eq!(run(&["run", "c1"]), (Some("run".into()), default.clone()));
        assert_eq!(
            run(&["--root", "/x", "--debug", "create", "c"]),
            (Some("create".into()), "/x".into())
        );
        assert_eq!(
            run(&[
                "-root=/y",
                "-log",
                "/l",
                "--log-format=json",
                "--systemd-cgroup=false",
                "exec",
                "c",
                "sh"
            ]),
            (Some("exec".into()), "/y".into())
        );
        // A value that looks like a flag is still the value.
        assert_eq!(
            run(&["--log", "-weird", "run", "c"]),
            (Some("run".into()), default)
        );
    }

    #[test]
    fn unknown_flags_and_missing_values_give_no_command() {
        assert_eq!(run(&["--bogus", "run", "c"]).0, None);
        assert_eq!(run(&["--root"]).0, None);
        assert_eq!(run(&["---root", "/x", "run"]).0, None);
        assert_eq!(run(&["--", "run"]).0, None);
        assert_eq!(run(&[]).0, None);
    }

    /// Every global flag of the clap definition is known to the scan, so a new one cannot
    /// silently stop the early re-execution.
    #[test]
    fn knows_every_global_flag() {
        use clap::CommandFactory;
        let cmd = crate::cli::Cli::command();
        for arg in cmd.get_arguments() {
            let names = arg
                .get_long()
                .into_iter()
                .map(str::to_owned)
                .chain(arg.get_short().map(String::from));
            for name in names {
                let valued = arg.get_action().takes_values();
                let list: &[&str] = if valued { &VALUED } else { &BOOLS };
                assert!(
                    list.contains(&name.as_str()),
                    "--{name} (takes a value: {valued}) is not in cli/scan.rs"
                );
            }
        }
    }
}
