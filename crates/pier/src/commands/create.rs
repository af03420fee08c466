//! `pier create`: the container init set up and blocked on the exec fifo
//! ([`Container::create`]).

use anyhow::Result;

use crate::cli::{CreateArgs, Global};
use crate::container::Container;

/// `pier create`.
pub fn run(global: &Global, args: &CreateArgs) -> Result<()> {
    Container::create(&super::create_options(global, args, false)).map(drop)
}
