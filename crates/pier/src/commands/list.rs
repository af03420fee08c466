//! `pier list`: a table (`ID PID STATUS BUNDLE CREATED OWNER`), JSON (`null` when empty, as
//! runc prints), or only the ids with `--quiet`.

use std::os::unix::fs::DirBuilderExt;

use anyhow::{Context, Result};

use crate::cli::{Global, ListArgs, ListFormat};
use crate::state::{self, ContainerDir};

/// List the containers under `--root`, which is created (mode 0700) when missing, as runc's
/// `list` does.
///
/// # Errors
/// The root cannot be created (runc: `mkdir <root>: <reason>`). A container whose state file
/// is unreadable is named in a warning and skipped, as runc does.
pub fn run(global: &Global, args: &ListArgs) -> Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&global.root)
        .with_context(|| format!("mkdir {}", global.root.display()))?;
    let mut rows = Vec::new();
    for id in state::list_ids(&global.root)? {
        let Ok(dir) = ContainerDir::open_unlocked(&global.root, &id) else {
            continue;
        };
        let saved = match dir.read_state() {
            Ok(saved) => saved,
            Err(e) => {
                // runc's list names it and goes on: one broken state dir must not hide the rest.
                tracing::warn!("load container {id}: {e:#}");
                continue;
            }
        };
        rows.push(state::oci_json(
            &id,
            state::status(&dir, saved.as_ref()),
            saved.as_ref(),
        ));
    }
    if args.quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or_default());
        }
        return Ok(());
    }
    for row in rows.iter_mut() {
        // runc's list names the owner; its state leaves it empty.
        row["owner"] = owner_name(row).into();
    }
    match args.format {
        ListFormat::Json if rows.is_empty() => println!("null"),
        ListFormat::Json => println!("{}", serde_json::to_string(&rows)?),
        ListFormat::Table => print_table(&rows),
    }
    Ok(())
}

/// runc's tabwriter layout: every column but the last padded to max(12, widest + 3).
fn print_table(rows: &[serde_json::Value]) {
    let cells: Vec<[String; 6]> = rows
        .iter()
        .map(|r| {
            let s = |k: &str| {
                r[k].as_str()
                    .map(String::from)
                    .unwrap_or_else(|| r[k].to_string())
            };
            [
                s("id"),
                s("pid"),
                s("status"),
                s("bundle"),
                s("created"),
                owner_name(r),
            ]
        })
        .collect();
    let header = ["ID", "PID", "STATUS", "BUNDLE", "CREATED", "OWNER"].map(String::from);
    let mut widths = [12usize; 5];
    for row in std::iter::once(&header).chain(&cells) {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.len() + 3);
        }
    }
    for row in std::iter::once(&header).chain(&cells) {
        let mut line: String = row[..5]
            .iter()
            .zip(widths)
            .map(|(c, w)| format!("{c:<w$}"))
            .collect();
        line.push_str(&row[5]);
        println!("{line}");
    }
}

/// The user name of the uid that owns the container (runc shows it in the table only).
fn owner_name(row: &serde_json::Value) -> String {
    let owner = row["owner"].as_str().unwrap_or_default();
    if !owner.is_empty() {
        return owner.to_string();
    }
    let uid = rustix::process::geteuid().as_raw();
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap_or_default();
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() > 2 && f[2].parse() == Ok(uid))
        .map_or_else(|| uid.to_string(), |f| f[0].to_string())
}
