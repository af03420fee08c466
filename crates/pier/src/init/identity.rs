//! Who the process is: groups, gid, uid, the five capability sets, no_new_privs
//! (`credentials(7)`, `capabilities(7)`, `prctl(2)`).
//!
//! Order matters: the bounding set is cut while pier still has CAP_SETPCAP, the ids change
//! with PR_SET_KEEPCAPS so permitted capabilities survive a non-root uid, then the
//! inheritable/effective/permitted sets are set exactly, then ambient ones raised.

use std::collections::HashSet;

use anyhow::{Context, Result};
use caps::{CapSet, Capability};
use rustix::thread::{set_thread_groups, set_thread_res_gid, set_thread_res_uid};

use crate::spec::Process;

/// Apply the identity of `process` to this (single-threaded) process.
pub fn apply(process: &Process) -> Result<()> {
    let caps = &process.capabilities;
    drop_bounding(&caps.bounding)?;
    rustix::thread::set_keep_capabilities(true).context("PR_SET_KEEPCAPS")?;
    set_ids(process)?;
    rustix::thread::set_keep_capabilities(false).context("PR_SET_KEEPCAPS")?;
    // Inheritable first (raising it may need CAP_SETPCAP, still in the permitted set), then
    // effective within the old permitted set, then permitted, which must cover effective.
    set_sets(CapSet::Inheritable, &caps.inheritable)?;
    set_sets(CapSet::Effective, &caps.effective)?;
    set_sets(CapSet::Permitted, &caps.permitted)?;
    raise_ambient(&caps.ambient, &caps.permitted, &caps.inheritable)?;
    if process.no_new_privileges {
        rustix::thread::set_no_new_privs(true).context("PR_SET_NO_NEW_PRIVS")?;
    }
    Ok(())
}

fn set_ids(process: &Process) -> Result<()> {
    let gids: Vec<rustix::process::Gid> = process
        .additional_gids
        .iter()
        .map(|g| rustix::process::Gid::from_raw(*g))
        .collect();
    match set_thread_groups(&gids) {
        // A rootless container's namespace denies setgroups; none were asked for
        // (spec::check_rootless refuses additionalGids there), as runc skips it.
        Err(rustix::io::Errno::PERM) if gids.is_empty() => {}
        other => other.context("setgroups")?,
    }
    let gid = rustix::process::Gid::from_raw(process.gid);
    set_thread_res_gid(gid, gid, gid).with_context(|| format!("setresgid({})", process.gid))?;
    let uid = rustix::process::Uid::from_raw(process.uid);
    set_thread_res_uid(uid, uid, uid).with_context(|| format!("setresuid({})", process.uid))?;
    Ok(())
}

/// Drop from the bounding set every capability not listed (`PR_CAPBSET_DROP`).
fn drop_bounding(keep: &[Capability]) -> Result<()> {
    let keep: HashSet<Capability> = keep.iter().copied().collect();
    for cap in caps::runtime::procfs_all_supported(None).unwrap_or_else(|_| caps::all()) {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap)
                .with_context(|| format!("drop {cap} from the bounding set"))?;
        }
    }
    Ok(())
}

/// Set one capability set exactly. `capset(2)` refuses a capability the runtime itself does
/// not have (a host whose bounding set withholds it): the error then names those.
fn set_sets(set: CapSet, list: &[Capability]) -> Result<()> {
    let wanted: caps::CapsHashSet = list.iter().copied().collect();
    caps::set(None, set, &wanted).map_err(|e| {
        let missing = unavailable(&wanted);
        let what = if missing.is_empty() {
            anyhow::anyhow!(e)
        } else {
            anyhow::anyhow!(e).context(format!(
                "{} not in the runtime's own bounding and permitted sets",
                missing.join(", ")
            ))
        };
        what.context(format!("set the {set:?} capabilities"))
    })
}

/// The capabilities of `wanted` that this process cannot grant: not in both its bounding and
/// its permitted set (`capabilities(7)`, "Transformation of capabilities during capset"),
/// sorted by name.
fn unavailable(wanted: &caps::CapsHashSet) -> Vec<String> {
    let (Ok(bounding), Ok(permitted)) = (
        caps::read(None, CapSet::Bounding),
        caps::read(None, CapSet::Permitted),
    ) else {
        return Vec::new();
    };
    let mut missing: Vec<String> = wanted
        .iter()
        .filter(|c| !bounding.contains(c) || !permitted.contains(c))
        .map(|c| c.to_string())
        .collect();
    missing.sort();
    missing
}

/// Raise the ambient capabilities that are both permitted and inheritable; the kernel refuses
/// the others (`PR_CAP_AMBIENT_RAISE`), and runc skips them too, so they are only logged.
fn raise_ambient(
    ambient: &[Capability],
    permitted: &[Capability],
    inheritable: &[Capability],
) -> Result<()> {
    for cap in ambient {
        if permitted.contains(cap) && inheritable.contains(cap) {
            caps::raise(None, CapSet::Ambient, *cap)
                .with_context(|| format!("raise ambient {cap}"))?;
        } else {
            tracing::debug!("not raising ambient {cap}: it is not both permitted and inheritable");
        }
    }
    Ok(())
}
