//! `pier ps [--format table|json] <id> [ps options]` (runc `ps.go`): the container's pids as
//! a JSON array, or the host's `ps(1)` output (default `-ef`) keeping the header and the
//! lines whose PID column is one of the container's.

use std::io::Write;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::cli::{Global, ListFormat, PsArgs};
use crate::container::{Container, Lock};

/// Print the container's processes.
///
/// # Errors
/// The container does not exist; `ps` cannot be run or prints no PID column.
pub fn run(global: &Global, args: &PsArgs) -> Result<()> {
    let container = Container::open(&global.root, &args.id, Lock::Exclusive)?;
    let pids = container.cgroup().pids()?;
    let mut out = std::io::stdout().lock();
    if args.format == ListFormat::Json {
        writeln!(out, "{}", serde_json::to_string(&pids)?)?;
        return Ok(());
    }
    let ps_args: Vec<&str> = if args.ps_args.is_empty() {
        vec!["-ef"]
    } else {
        args.ps_args.iter().map(String::as_str).collect()
    };
    let output = Command::new("ps")
        .args(&ps_args)
        .output()
        .context("run ps")?;
    if !output.status.success() {
        bail!(
            "ps {}: {}",
            ps_args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let text = String::from_utf8_lossy(&output.stdout);
    for line in filter_table(&text, &pids)? {
        writeln!(out, "{line}")?;
    }
    Ok(())
}

/// The header line and the lines whose PID column is in `pids`.
///
/// # Errors
/// The header has no `PID` column.
pub fn filter_table<'a>(text: &'a str, pids: &[i32]) -> Result<Vec<&'a str>> {
    let mut lines = text.lines();
    let header = lines.next().unwrap_or_default();
    let Some(column) = header.split_whitespace().position(|c| c == "PID") else {
        bail!("ps output has no PID column: {header:?}");
    };
    let mut out = vec![header];
    out.extend(lines.filter(|l| {
        l.split_whitespace()
            .nth(column)
            .and_then(|p| p.parse::<i32>().ok())
            .is_some_and(|p| pids.contains(&p))
    }));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_header_and_the_container_lines() {
        let text = "UID PID PPID C STIME TTY TIME CMD\nroot 1 0 0 10:00 ? 00:00:01 init\nroot 42 1 0 10:00 ? 00:00:00 sleep\n";
        assert_eq!(
            filter_table(text, &[42]).unwrap(),
            [
                "UID PID PPID C STIME TTY TIME CMD",
                "root 42 1 0 10:00 ? 00:00:00 sleep"
            ]
        );
        assert!(filter_table("USER COMMAND\n", &[1]).is_err());
    }
}
