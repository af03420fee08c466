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
    let mut owners = Owners::default();
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
        let mut row = state::oci_json(&id, state::status(&dir, saved.as_ref()), saved.as_ref());
        if let Ok(st) = rustix::fs::fstat(dir.fd()) {
            row["owner"] = owners.name(st.st_uid).into();
        }
        rows.push(row);
    }
    if args.quiet {
        for r in &rows {
            println!("{}", r["id"].as_str().unwrap_or_default());
        }
        return Ok(());
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
                s("owner"),
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

/// The OWNER column, as runc's `list`: the user owning the container's state directory, by
/// name from `/etc/passwd` (read once per call, each uid looked up once), `#<uid>` when it
/// has none.
#[derive(Default)]
struct Owners {
    passwd: Option<String>,
    names: std::collections::HashMap<u32, String>,
}

impl Owners {
    fn name(&mut self, uid: u32) -> String {
        if let Some(name) = self.names.get(&uid) {
            return name.clone();
        }
        let passwd = self
            .passwd
            .get_or_insert_with(|| std::fs::read_to_string("/etc/passwd").unwrap_or_default());
        let name = user_name(passwd, uid).map_or_else(|| format!("#{uid}"), String::from);
        self.names.insert(uid, name.clone());
        name
    }
}

/// The name of `uid` in the text of a passwd file (`name:password:uid:...`), first match.
fn user_name(passwd: &str, uid: u32) -> Option<&str> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next()?;
        (fields.nth(1)?.parse() == Ok(uid)).then_some(name)
    })
}

#[cfg(test)]
mod tests {
    use super::user_name;

    #[test]
    fn user_name_takes_the_first_line_with_the_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\nbroken\n\ntester:x:1000:1000::/h:/bin/sh\nalias:x:1000:1000::/h:/bin/sh\n";
        assert_eq!(user_name(passwd, 0), Some("root"));
        assert_eq!(user_name(passwd, 1000), Some("tester"));
        assert_eq!(user_name(passwd, 65534), None);
        assert_eq!(user_name("x:y:notanumber:0", 0), None);
    }
}
