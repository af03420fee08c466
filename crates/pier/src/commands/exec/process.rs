//! The process `pier exec` runs: `--process FILE` as given (runc ignores the other process
//! flags then), or the container's config.json `process` overridden by the flags, as runc's
//! `exec.go` getProcess does.

use std::str::FromStr;

use anyhow::{bail, Context, Result};

use crate::cli::ExecArgs;
use crate::spec::Process;

/// The process for `args`: `--process`, or the container's own `process` (from its
/// config.json) with the command and flags applied.
///
/// # Errors
/// An unreadable or invalid `--process` file, no command, a malformed `--user`, `--env` or
/// `--cap`.
pub fn build(args: &ExecArgs, container: &Process) -> Result<Process> {
    if let Some(path) = &args.process {
        let bytes =
            std::fs::read(path).with_context(|| format!("read --process {}", path.display()))?;
        return crate::spec::parse_process(&bytes)
            .with_context(|| format!("parse --process {}", path.display()));
    }
    if args.command.is_empty() {
        bail!("process args cannot be empty");
    }
    let mut process = container.clone();
    process.args = args.command.clone();
    process.terminal = args.tty;
    override_from_flags(&mut process, args)?;
    Ok(process)
}

/// `--env` (replacing a same-named variable), `--cwd`, `--user`, `--additional-gids`,
/// `--cap`, `--no-new-privs`.
fn override_from_flags(process: &mut Process, args: &ExecArgs) -> Result<()> {
    for e in &args.env {
        let Some((key, _)) = e.split_once('=') else {
            bail!("--env {e:?}: expected KEY=VALUE")
        };
        process.env.retain(|old| old.split('=').next() != Some(key));
        process.env.push(e.clone());
    }
    if let Some(cwd) = &args.cwd {
        process.cwd = cwd.clone();
    }
    if let Some(user) = &args.user {
        let (uid, gid) = parse_user(user)?;
        process.uid = uid;
        if let Some(gid) = gid {
            process.gid = gid;
        }
    }
    process.additional_gids.extend(&args.additional_gids);
    for name in &args.cap {
        let full = if name.to_ascii_uppercase().starts_with("CAP_") {
            name.to_ascii_uppercase()
        } else {
            format!("CAP_{}", name.to_ascii_uppercase())
        };
        let cap = caps::Capability::from_str(&full)
            .map_err(|_| anyhow::anyhow!("unknown capability {name:?}"))?;
        let sets = &mut process.capabilities;
        for set in [
            &mut sets.bounding,
            &mut sets.effective,
            &mut sets.permitted,
            &mut sets.ambient,
        ] {
            if !set.contains(&cap) {
                set.push(cap);
            }
        }
    }
    if args.no_new_privs {
        process.no_new_privileges = true;
    }
    Ok(())
}

/// `uid[:gid]`, both numeric (runc's `--user`).
fn parse_user(user: &str) -> Result<(u32, Option<u32>)> {
    let (uid, gid) = match user.split_once(':') {
        Some((u, g)) => (u, Some(g)),
        None => (user, None),
    };
    let number = |s: &str| {
        s.parse::<u32>()
            .with_context(|| format!("--user {user:?}: expected uid[:gid] as numbers"))
    };
    Ok((number(uid)?, gid.map(number).transpose()?))
}

#[cfg(test)]
mod tests {
    use super::parse_user;

    #[test]
    fn user_forms() {
        assert_eq!(parse_user("1000").unwrap(), (1000, None));
        assert_eq!(parse_user("1000:100").unwrap(), (1000, Some(100)));
        assert!(parse_user("tester").is_err());
        assert!(parse_user("1:x").is_err());
    }
}
