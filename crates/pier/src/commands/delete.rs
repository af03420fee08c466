//! `pier delete [--force] <id>`: remove a stopped (or created) container and every trace of
//! it ([`container::delete`]); `--force` kills a running one first.

use anyhow::Result;

use crate::cli::{DeleteArgs, Global};
use crate::container;

/// Delete the container.
pub fn run(global: &Global, args: &DeleteArgs) -> Result<()> {
    container::delete(&global.root, &args.id, args.force)
}
