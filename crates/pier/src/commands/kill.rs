//! `pier kill [--all] <id> [signal]`: signal the init through a pidfd (never a reused pid), or
//! every process of the container's cgroup with `--all` ([`Container::signal`]).

use anyhow::{Context, Result};
use rustix::process::Signal;

use crate::cli::{Global, KillArgs};
use crate::container::{Container, Lock};

/// Deliver the signal.
///
/// With `--all`, as runc: every process of the container's cgroup, whatever the state of the
/// init (the containerd shim sends `kill --all ID 9` on every stop and exit, after the init
/// may have exited and left daemonized children); success when the cgroup is gone or empty.
/// Signal 0 sends nothing and checks, as kill(2) and runc: success while the init runs (with
/// `--all`, always), "container is not running" otherwise.
pub fn run(global: &Global, args: &KillArgs) -> Result<()> {
    let probe = args.signal.trim().parse::<i32>() == Ok(0);
    let signal = if probe {
        0
    } else {
        crate::signals::parse(&args.signal)?
    };
    let container = Container::open(&global.root, &args.id, Lock::None)?;
    if probe {
        return match args.all {
            true => Ok(()),
            false => container.init().map(drop),
        };
    }
    let signal = Signal::from_named_raw(signal).context("signal")?;
    container.signal(signal, args.all)
}
