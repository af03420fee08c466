//! `pier update [flags] <id>` (runc `update.go`): write new limits to a live container's
//! cgroup, from runtime-spec `LinuxResources` JSON (`-r FILE`, `-r -` for stdin) or from the
//! single-value flags. Only the values given are written.

use std::io::Read;

use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use serde_json::{json, Map, Value};

use crate::cli::{Global, UpdateArgs};
use crate::container::{Container, Lock};

/// Update the container's resources.
///
/// # Errors
/// The container is stopped, the JSON or a flag value is invalid, or the kernel refuses a
/// value (the file is named).
pub fn run(global: &Global, args: &UpdateArgs) -> Result<()> {
    let (container, _) = Container::open_live(&global.root, &args.id, Lock::Exclusive)?;
    let resources = match &args.resources {
        Some(path) => read_resources(path)?,
        None => from_flags(args)?,
    };
    container
        .cgroup()
        .update(&resources)
        .context("update the container's resources")
}

fn read_resources(path: &std::path::Path) -> Result<LinuxResources> {
    let mut text = String::new();
    if path.as_os_str() == "-" {
        std::io::stdin()
            .read_to_string(&mut text)
            .context("read resources from stdin")?;
    } else {
        text = std::fs::read_to_string(path).with_context(|| format!("read {}", path.display()))?;
    }
    serde_json::from_str(&text)
        .context("parse resources: expected runtime-spec LinuxResources JSON")
}

/// The flags as a LinuxResources holding only what was given.
///
/// # Errors
/// A memory size that does not parse; Intel RDT schemas (not supported).
pub fn from_flags(a: &UpdateArgs) -> Result<LinuxResources> {
    if a.l3_cache_schema.is_some() || a.mem_bw_schema.is_some() {
        bail!("Intel RDT (--l3-cache-schema, --mem-bw-schema) is not supported by pier");
    }
    if a.kernel_memory.is_some() || a.kernel_memory_tcp.is_some() {
        tracing::warn!("--kernel-memory and --kernel-memory-tcp are obsolete and ignored");
    }
    let mut memory = Map::new();
    for (key, flag, value) in [
        ("limit", "--memory", &a.memory),
        ("reservation", "--memory-reservation", &a.memory_reservation),
        ("swap", "--memory-swap", &a.memory_swap),
    ] {
        if let Some(v) = value {
            memory.insert(
                key.into(),
                json!(parse_bytes(v).with_context(|| format!("invalid value for {flag}"))?),
            );
        }
    }
    let mut cpu = Map::new();
    let numbers = [
        ("shares", a.cpu_share.map(Value::from)),
        ("quota", a.cpu_quota.map(Value::from)),
        ("period", a.cpu_period.map(Value::from)),
        ("burst", a.cpu_burst.map(Value::from)),
        ("realtimeRuntime", a.cpu_rt_runtime.map(Value::from)),
        ("realtimePeriod", a.cpu_rt_period.map(Value::from)),
        ("idle", a.cpu_idle.map(Value::from)),
        ("cpus", a.cpuset_cpus.clone().map(Value::from)),
        ("mems", a.cpuset_mems.clone().map(Value::from)),
    ];
    cpu.extend(
        numbers
            .into_iter()
            .filter_map(|(k, v)| Some((k.to_string(), v?))),
    );
    let mut r = Map::new();
    if !memory.is_empty() {
        r.insert("memory".into(), Value::Object(memory));
    }
    if !cpu.is_empty() {
        r.insert("cpu".into(), Value::Object(cpu));
    }
    if let Some(limit) = a.pids_limit {
        r.insert("pids".into(), json!({ "limit": limit }));
    }
    if let Some(weight) = a.blkio_weight {
        r.insert("blockIO".into(), json!({ "weight": weight }));
    }
    serde_json::from_value(Value::Object(r)).context("build resources from flags")
}

/// A size in bytes: a number with an optional binary unit (`k`, `m`, `g`, `t`, `p`, with an
/// optional `i` and `b`, any case: `512m`, `1GiB`), or `-1` for unlimited (go-units
/// `RAMInBytes`, as runc reads these flags).
///
/// # Errors
/// Anything else.
pub fn parse_bytes(s: &str) -> Result<i64> {
    if s == "-1" {
        return Ok(-1);
    }
    let lower = s.trim().to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(lower.len());
    let (number, unit) = lower.split_at(digits_end);
    let unit = unit
        .trim_start()
        .trim_end_matches('b')
        .trim_end_matches('i');
    let shift = match unit {
        "" => 0,
        "k" => 10,
        "m" => 20,
        "g" => 30,
        "t" => 40,
        "p" => 50,
        _ => bail!("invalid size {s:?}"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| anyhow::anyhow!("invalid size {s:?}"))?;
    let bytes = value * (1u64 << shift) as f64;
    if !(0.0..9.2e18).contains(&bytes) {
        bail!("invalid size {s:?}");
    }
    Ok(bytes as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_bytes("1024").unwrap(), 1024);
        assert_eq!(parse_bytes("512m").unwrap(), 512 << 20);
        assert_eq!(parse_bytes("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("1.5k").unwrap(), 1536);
        assert_eq!(parse_bytes("-1").unwrap(), -1);
        for bad in ["", "m", "12x", "-2", "1..2"] {
            assert!(parse_bytes(bad).is_err(), "{bad}");
        }
    }
}
