//! Go-style argv -> clap argv, as a pure function.
//!
//! runc parses flags with urfave/cli (Go's `flag` rules), and its callers rely on that:
//! go-runc's restore sends `-no-subreaper`, humans type `-root /x`, and every Go bool flag
//! takes `--flag=false`. This pass rewrites, scope by scope (global flags until the
//! subcommand, then that subcommand's), a single-dash token `-name[=v]` into `--name[=v]`
//! when `name` is a long flag of the scope, and `--bool=true|false` into `--bool` or nothing.
//! The flag names come from the clap [`Command`] itself, so there is no second list to drift.
//!
//! A subcommand whose last positional is a trailing list (`exec <id> <cmd…>`, `ps <id>
//! [ps-args…]`) stops flag parsing at its first positional, as urfave's `StopOnNthArg: 1`
//! does for runc: a `--` is inserted after it and the rest is passed on verbatim.

use clap::{ArgAction, Command};

/// Rewrite `argv` (including `argv[0]`) for `cmd`. Tokens after `--` are left alone.
///
/// The subcommand found is built (`Command::build`: its deferred flags defined, see
/// `cli::Command`), and only that one; the others stay as clap left them.
pub fn normalize(cmd: &mut Command, argv: Vec<String>) -> Vec<String> {
    let mut out = Vec::with_capacity(argv.len());
    let mut tokens = argv.into_iter();
    if let Some(argv0) = tokens.next() {
        out.push(argv0);
    }
    if let Some(name) = rewrite_scope(cmd, false, &mut tokens, &mut out) {
        if let Some(sub) = cmd.find_subcommand_mut(&name) {
            sub.build();
            rewrite_scope(sub, true, &mut tokens, &mut out);
        }
    }
    out.extend(tokens);
    out
}

/// Rewrite the tokens of one scope into `out`. In the global scope (`in_subcommand` false),
/// stop after the first token that names a subcommand and return it; otherwise stop at `--`,
/// after a raw tail, or at the end. What is left in `tokens` is the caller's, verbatim.
fn rewrite_scope(
    scope: &Command,
    in_subcommand: bool,
    tokens: &mut std::vec::IntoIter<String>,
    out: &mut Vec<String>,
) -> Option<String> {
    let mut takes_value_next = false;
    while let Some(token) = tokens.next() {
        if takes_value_next {
            takes_value_next = false;
            out.push(token);
            continue;
        }
        if token == "--" {
            out.push(token);
            return None;
        }
        if !token.starts_with('-') || token == "-" {
            if !in_subcommand {
                if scope.find_subcommand(&token).is_some() {
                    out.push(token.clone());
                    return Some(token);
                }
            } else if has_raw_tail(scope) {
                out.push(token);
                let rest: Vec<String> = tokens.by_ref().collect();
                if rest.first().map(String::as_str) != Some("--") {
                    out.push("--".to_string());
                }
                out.extend(rest);
                return None;
            }
            out.push(token);
            continue;
        }
        let (rewritten, needs_value) = rewrite_flag(scope, &token);
        takes_value_next = needs_value;
        out.extend(rewritten);
    }
    None
}

/// The flags a scope defines itself: not `--help`/`-h`, which clap adds when it builds a
/// command (and which urfave's `-help` is not rewritten into, built or not).
fn own_arguments(scope: &Command) -> impl Iterator<Item = &clap::Arg> {
    scope.get_arguments().filter(|a| {
        !matches!(
            a.get_action(),
            ArgAction::Help | ArgAction::HelpShort | ArgAction::HelpLong | ArgAction::Version
        )
    })
}

/// One flag token; returns the replacement tokens (zero or one) and whether the next token
/// is this flag's value.
fn rewrite_flag(scope: &Command, token: &str) -> (Option<String>, bool) {
    let body = token.trim_start_matches('-');
    let dashes = token.len() - body.len();
    let (name, value) = match body.split_once('=') {
        Some((n, v)) => (n, Some(v)),
        None => (body, None),
    };
    let arg = if dashes == 1 && name.len() == 1 {
        // A short flag (or a cluster like `-ef`): clap handles these itself.
        return (Some(token.to_string()), short_takes_value(scope, name));
    } else {
        own_arguments(scope).find(|a| {
            a.get_long() == Some(name) || a.get_all_aliases().is_some_and(|al| al.contains(&name))
        })
    };
    let Some(arg) = arg else {
        return (Some(token.to_string()), false);
    };
    let takes_value = arg.get_action().takes_values();
    match (takes_value, value) {
        (false, Some(v)) if v.eq_ignore_ascii_case("false") || v == "0" => (None, false),
        (false, Some(_)) => (Some(format!("--{name}")), false),
        (false, None) => (Some(format!("--{name}")), false),
        (true, Some(v)) => (Some(format!("--{name}={v}")), false),
        (true, None) => (Some(format!("--{name}")), true),
    }
}

/// Whether the command's last positional takes the raw rest of the line.
fn has_raw_tail(scope: &Command) -> bool {
    scope.get_positionals().any(|a| a.is_trailing_var_arg_set())
}

fn short_takes_value(scope: &Command, name: &str) -> bool {
    let c = name.chars().next();
    own_arguments(scope)
        .find(|a| a.get_short() == c)
        .is_some_and(|a| a.get_action().takes_values())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::Cli;
    use clap::{CommandFactory, Parser};

    fn norm(args: &[&str]) -> Vec<String> {
        let argv = std::iter::once("pier")
            .chain(args.iter().copied())
            .map(String::from);
        normalize(&mut Cli::command(), argv.collect())[1..].to_vec()
    }

    #[test]
    fn single_dash_long_flags_become_double_dash() {
        assert_eq!(
            norm(&["-root", "/x", "state", "c"]),
            ["--root", "/x", "state", "c"]
        );
        assert_eq!(
            norm(&["-log-format=json", "list"]),
            ["--log-format=json", "list"]
        );
        assert_eq!(
            norm(&["create", "-bundle", "/b", "-pid-file", "/p", "c1"]),
            ["create", "--bundle", "/b", "--pid-file", "/p", "c1"]
        );
    }

    #[test]
    fn go_bool_values() {
        assert_eq!(norm(&["--debug=false", "list"]), ["list"]);
        assert_eq!(
            norm(&["--systemd-cgroup=true", "list"]),
            ["--systemd-cgroup", "list"]
        );
        assert_eq!(norm(&["run", "--detach=false", "c"]), ["run", "c"]);
        assert_eq!(
            norm(&["run", "-detach=true", "c"]),
            ["run", "--detach", "c"]
        );
    }

    #[test]
    fn values_shorts_and_unknowns_are_left_alone() {
        // The value of --root is never rewritten, even when it looks like a flag.
        assert_eq!(
            norm(&["--root", "-weird", "list"]),
            ["--root", "-weird", "list"]
        );
        assert_eq!(norm(&["kill", "-a", "c", "9"]), ["kill", "-a", "c", "9"]);
        assert_eq!(norm(&["-unknown", "list"]), ["-unknown", "list"]);
        assert_eq!(norm(&["--", "-root"]), ["--", "-root"]);
    }

    #[test]
    fn exec_tail_after_the_id_is_raw() {
        assert_eq!(
            norm(&["exec", "-e", "A=1", "-cwd", "/t", "c1", "find", "-user", "0", "--tty"]),
            ["exec", "-e", "A=1", "--cwd", "/t", "c1", "--", "find", "-user", "0", "--tty"]
        );
        assert_eq!(
            norm(&["exec", "c1", "--", "ls"]),
            ["exec", "c1", "--", "ls"]
        );
        assert_eq!(norm(&["ps", "c1", "-ef"]), ["ps", "c1", "--", "-ef"]);
        let argv = norm(&["exec", "--process", "/p.json", "--detach", "c1"]);
        let cli = Cli::try_parse_from(std::iter::once("pier".to_string()).chain(argv)).unwrap();
        match cli.command {
            Some(crate::cli::Command::Exec(e)) => {
                assert_eq!((e.id.as_str(), e.detach, e.command.len()), ("c1", true, 0));
            }
            other => panic!("parsed {other:?}"),
        }
        let argv = norm(&["exec", "-t", "c1", "sh", "-c", "echo -d"]);
        let cli = Cli::try_parse_from(std::iter::once("pier".to_string()).chain(argv)).unwrap();
        match cli.command {
            Some(crate::cli::Command::Exec(e)) => {
                assert!(e.tty && !e.detach);
                assert_eq!(e.command, ["sh", "-c", "echo -d"]);
            }
            other => panic!("parsed {other:?}"),
        }
    }

    #[test]
    fn global_flag_is_not_rewritten_in_a_subcommand_scope() {
        // `-root` after the subcommand is not a create flag: leave it for clap to reject.
        assert_eq!(norm(&["create", "-root", "c"]), ["create", "-root", "c"]);
    }

    #[test]
    fn options_may_follow_the_id() {
        let argv = norm(&["create", "c1", "--bundle", "/b"]);
        let cli = Cli::try_parse_from(std::iter::once("pier".to_string()).chain(argv)).unwrap();
        match cli.command {
            Some(crate::cli::Command::Create(c)) => {
                assert_eq!(c.id, "c1");
                assert_eq!(c.bundle, std::path::PathBuf::from("/b"));
            }
            other => panic!("parsed {other:?}"),
        }
    }
}
