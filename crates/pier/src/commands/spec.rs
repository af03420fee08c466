//! `pier spec`: write a default config.json into the bundle, refusing to overwrite one.

use std::fs::OpenOptions;
use std::io::{ErrorKind, Write};

use anyhow::{bail, Context, Result};

use crate::cli::SpecArgs;
use crate::spec::default::default_spec;

/// Write `<bundle>/config.json` (runc's default; `--rootless` maps the caller's ids).
pub fn run(args: &SpecArgs) -> Result<()> {
    let path = args.bundle.join("config.json");
    let spec = default_spec(
        args.rootless,
        rustix::process::geteuid().as_raw(),
        rustix::process::getegid().as_raw(),
    );
    let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {
            bail!("File {} exists. Remove it first", path.display())
        }
        other => other.with_context(|| format!("create {}", path.display()))?,
    };
    let mut text = serde_json::to_string_pretty(&spec)?;
    text.push('\n');
    file.write_all(text.as_bytes())
        .with_context(|| format!("write {}", path.display()))
}
