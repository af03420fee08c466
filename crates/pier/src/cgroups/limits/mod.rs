//! runtime-spec `linux.resources` -> the cgroup files to write, per controller and version.
//!
//! Pure code: which file gets which value, in which order. File names and value formats are
//! the kernel's (`Documentation/admin-guide/cgroup-v1/*.rst`, `cgroup-v2.rst`); the v1 -> v2
//! conversions (cpu shares -> weight, blkio weight -> io weight, memory+swap -> swap) are the
//! ones the runtime-spec's "cgroup v2" notes and runc's documentation describe. Devices are
//! in [`super::devices`].
//!
//! As runc, a zero is "unset", field by field (runc's configs carry 0 for a field the spec
//! left out): Docker sends `blockIO.weight: 0` at create and `docker update` sends cpu
//! shares/period/quota, memory reservation and blkio weight as 0 for what it does not change.
//! The exceptions are runc's too: `swappiness`, `cpu.burst` and `cpu.idle` are written when
//! present, a pids limit below zero means unlimited.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxHugepageLimit, LinuxMemory, LinuxResources};

use super::layout::{Controller, Version};

/// One write: `value` into the file `file` of the controller's directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    pub file: String,
    pub value: String,
    /// Skipped when the kernel has no such file (v1 `memsw` without swap accounting).
    pub optional: bool,
}

fn w(file: impl Into<String>, value: impl ToString) -> Write {
    Write {
        file: file.into(),
        value: value.to_string(),
        optional: false,
    }
}

/// A field the spec gives, unless it is 0 (runc's "unset").
fn set<T: Default + PartialEq>(v: Option<T>) -> Option<T> {
    v.filter(|x| *x != T::default())
}

/// A limit asked of a controller the container has no directory for ([`plan`]'s error; the
/// caller tells apart a host without the controller from a cgroup the rootless manager skipped).
#[derive(Debug, thiserror::Error)]
#[error("cannot set {} limits: the {} controller is not available to the container", .0.v1_name(), .0.v1_name())]
pub struct MissingController(pub Controller);

/// Every write `r` asks for, grouped by controller, for the versions `version_of` reports
/// (`None`: the controller is not available on this host).
///
/// # Errors
/// [`MissingController`] for a limit on a controller the container has no directory for (as
/// runc: never silently unenforced), a
/// value that cannot be expressed on that version, `rdma` limits (not supported).
pub fn plan(
    r: &LinuxResources,
    version_of: impl Fn(Controller) -> Option<Version>,
) -> Result<Vec<(Controller, Vec<Write>)>> {
    let mut out = Vec::new();
    let mut add = |c: Controller, make: &dyn Fn(Version) -> Result<Vec<Write>>| -> Result<()> {
        let Some(v) = version_of(c) else {
            // Ask with the v1 version to learn whether anything was requested at all.
            if make(Version::V1)?.is_empty() {
                return Ok(());
            }
            return Err(MissingController(c).into());
        };
        let writes = make(v)?;
        if !writes.is_empty() {
            out.push((c, writes));
        }
        Ok(())
    };
    if let Some(m) = r.memory() {
        add(Controller::Memory, &|v| memory(m, v))?;
    }
    if let Some(c) = r.cpu() {
        add(Controller::Cpu, &|v| cpu(c, v))?;
        add(Controller::Cpuset, &|_| Ok(cpuset(c)))?;
    }
    if let Some(p) = r.pids() {
        add(Controller::Pids, &|_| Ok(pids(p.limit())))?;
    }
    if let Some(b) = r.block_io() {
        add(Controller::Io, &|v| Ok(io(b, v)))?;
    }
    if let Some(h) = r.hugepage_limits() {
        add(Controller::Hugetlb, &|v| hugetlb(h, v))?;
    }
    if let Some(n) = r.network() {
        add(Controller::NetCls, &|_| {
            Ok(set(n.class_id())
                .map(|id| w("net_cls.classid", id))
                .into_iter()
                .collect())
        })?;
        add(Controller::NetPrio, &|_| {
            Ok(n.priorities()
                .iter()
                .flatten()
                .map(|p| {
                    w(
                        "net_prio.ifpriomap",
                        format!("{} {}", p.name(), p.priority()),
                    )
                })
                .collect())
        })?;
    }
    if r.rdma().as_ref().is_some_and(|m| !m.is_empty()) {
        bail!("rdma limits are not supported by pier");
    }
    Ok(out)
}

/// `memory`: limit, reservation, swap, swappiness, disableOOMKiller (v1 only). On v1 the limit
/// comes before memsw; [`order_v1_memory`] flips them when the limits grow.
pub fn memory(m: &LinuxMemory, v: Version) -> Result<Vec<Write>> {
    if m.kernel().is_some() || m.kernel_tcp().is_some() {
        tracing::warn!("memory.kernel and memory.kernelTCP are obsolete and ignored");
    }
    let mut out = Vec::new();
    match v {
        Version::V1 => {
            out.extend(set(m.limit()).map(|l| w("memory.limit_in_bytes", l)));
            match (set(m.limit()), set(m.swap())) {
                // Unlimited memory lifts memory+swap too, where swap is accounted (runc).
                (Some(-1), None) => out.push(Write {
                    optional: true,
                    ..w("memory.memsw.limit_in_bytes", -1)
                }),
                (_, swap) => out.extend(swap.map(|s| w("memory.memsw.limit_in_bytes", s))),
            }
            out.extend(set(m.reservation()).map(|r| w("memory.soft_limit_in_bytes", r)));
            if let Some(s) = m.swappiness() {
                if s > 100 {
                    bail!("invalid memory.swappiness {s}: must be 0..=100");
                }
                out.push(w("memory.swappiness", s));
            }
            if m.disable_oom_killer() == Some(true) {
                out.push(w("memory.oom_control", 1));
            }
        }
        Version::V2 => {
            out.extend(set(m.limit()).map(|l| w("memory.max", max_or(l))));
            if let Some(swap) = v2_swap(set(m.limit()), m.swap())? {
                out.push(w("memory.swap.max", swap));
            }
            out.extend(set(m.reservation()).map(|r| w("memory.low", max_or(r))));
            if m.swappiness().is_some() || m.disable_oom_killer() == Some(true) {
                tracing::warn!("memory.swappiness and memory.disableOOMKiller have no cgroup v2 equivalent: ignored");
            }
        }
    }
    Ok(out)
}

/// `-1` as v2's `max`, other values as they are.
fn max_or(value: i64) -> String {
    if value == -1 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

/// The OCI `swap` is memory+swap; v2's `memory.swap.max` is swap alone.
fn v2_swap(limit: Option<i64>, swap: Option<i64>) -> Result<Option<String>> {
    match (limit, swap) {
        (Some(-1), None) => Ok(Some("max".into())),
        (_, None) | (_, Some(0)) => Ok(None),
        (_, Some(-1)) => Ok(Some("max".into())),
        (None | Some(-1), Some(_)) => {
            bail!("memory.swap needs a memory.limit on cgroup v2")
        }
        (Some(l), Some(s)) if s < l => {
            bail!("memory.swap ({s}) must be >= memory.limit ({l}): it is memory+swap")
        }
        (Some(l), Some(s)) => Ok(Some((s - l).to_string())),
    }
}

/// Order v1's limit and memsw writes so that limit <= memsw holds after each: raise memsw
/// first when the current limit already fits under the new memsw.
pub fn order_v1_memory(writes: &mut [Write], current_limit: u64) {
    let pos = |f: &str| writes.iter().position(|x| x.file == f);
    let (Some(limit), Some(memsw)) = (
        pos("memory.limit_in_bytes"),
        pos("memory.memsw.limit_in_bytes"),
    ) else {
        return;
    };
    let new_memsw: i64 = writes[memsw].value.parse().unwrap_or(-1);
    let raising = new_memsw == -1 || u64::try_from(new_memsw).is_ok_and(|s| current_limit <= s);
    if raising != (memsw < limit) {
        writes.swap(limit, memsw);
    }
}

/// `cpu`: shares/weight, quota and period, burst, realtime (v1), idle.
pub fn cpu(c: &LinuxCpu, v: Version) -> Result<Vec<Write>> {
    let mut out = Vec::new();
    match v {
        Version::V1 => {
            out.extend(set(c.shares()).map(|s| w("cpu.shares", s)));
            out.extend(set(c.period()).map(|p| w("cpu.cfs_period_us", p)));
            out.extend(set(c.quota()).map(|q| w("cpu.cfs_quota_us", q)));
            out.extend(c.burst().map(|b| w("cpu.cfs_burst_us", b)));
            out.extend(set(c.realtime_period()).map(|p| w("cpu.rt_period_us", p)));
            out.extend(set(c.realtime_runtime()).map(|r| w("cpu.rt_runtime_us", r)));
        }
        Version::V2 => {
            if let Some(s) = set(c.shares()) {
                out.push(w("cpu.weight", shares_to_weight(s)));
            }
            if set(c.quota()).is_some() || set(c.period()).is_some() {
                let quota = c
                    .quota()
                    .filter(|q| *q > 0)
                    .map_or("max".to_string(), |q| q.to_string());
                let max = set(c.period()).map_or(quota.clone(), |p| format!("{quota} {p}"));
                out.push(w("cpu.max", max));
            }
            out.extend(c.burst().map(|b| w("cpu.max.burst", b)));
            if c.realtime_period().unwrap_or(0) != 0 || c.realtime_runtime().unwrap_or(0) != 0 {
                bail!("cpu.realtimePeriod and cpu.realtimeRuntime are not supported on cgroup v2");
            }
        }
    }
    out.extend(c.idle().map(|i| w("cpu.idle", i)));
    Ok(out)
}

/// v1 `cpu.shares` [2, 262144] -> v2 `cpu.weight` [1, 10000], linearly.
pub fn shares_to_weight(shares: u64) -> u64 {
    let shares = shares.clamp(2, 262_144);
    1 + (shares - 2) * 9999 / 262_142
}

/// `cpu.cpus` and `cpu.mems` (the cpuset controller; same file names on both versions).
pub fn cpuset(c: &LinuxCpu) -> Vec<Write> {
    let mut out = Vec::new();
    out.extend(
        c.cpus()
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| w("cpuset.cpus", s)),
    );
    out.extend(
        c.mems()
            .as_ref()
            .filter(|s| !s.is_empty())
            .map(|s| w("cpuset.mems", s)),
    );
    out
}

/// `pids.limit`: > 0 a limit, < 0 unlimited, 0 unset.
pub fn pids(limit: i64) -> Vec<Write> {
    match limit {
        0 => Vec::new(),
        l if l < 0 => vec![w("pids.max", "max")],
        l => vec![w("pids.max", l)],
    }
}

/// `blockIO`: weights and throttles (v1 `blkio.*`, v2 `io.weight` and `io.max`).
pub fn io(b: &LinuxBlockIo, v: Version) -> Vec<Write> {
    let mut out = Vec::new();
    let throttles = [
        (
            b.throttle_read_bps_device(),
            "blkio.throttle.read_bps_device",
            "rbps",
        ),
        (
            b.throttle_write_bps_device(),
            "blkio.throttle.write_bps_device",
            "wbps",
        ),
        (
            b.throttle_read_iops_device(),
            "blkio.throttle.read_iops_device",
            "riops",
        ),
        (
            b.throttle_write_iops_device(),
            "blkio.throttle.write_iops_device",
            "wiops",
        ),
    ];
    match v {
        Version::V1 => {
            out.extend(set(b.weight()).map(|x| w("blkio.weight", x)));
            out.extend(set(b.leaf_weight()).map(|x| w("blkio.leaf_weight", x)));
            for d in b.weight_device().iter().flatten() {
                out.extend(set(d.weight()).map(|x| {
                    w(
                        "blkio.weight_device",
                        format!("{}:{} {x}", d.major(), d.minor()),
                    )
                }));
                out.extend(set(d.leaf_weight()).map(|x| {
                    w(
                        "blkio.leaf_weight_device",
                        format!("{}:{} {x}", d.major(), d.minor()),
                    )
                }));
            }
            for (list, file, _) in throttles {
                out.extend(
                    list.iter()
                        .flatten()
                        .map(|d| w(file, format!("{}:{} {}", d.major(), d.minor(), d.rate()))),
                );
            }
        }
        Version::V2 => {
            out.extend(
                set(b.weight())
                    .map(|x| w("io.weight", format!("default {}", blkio_to_io_weight(x)))),
            );
            for d in b.weight_device().iter().flatten() {
                out.extend(set(d.weight()).map(|x| {
                    w(
                        "io.weight",
                        format!("{}:{} {}", d.major(), d.minor(), blkio_to_io_weight(x)),
                    )
                }));
            }
            for (list, _, key) in throttles {
                out.extend(list.iter().flatten().map(|d| {
                    w(
                        "io.max",
                        format!("{}:{} {key}={}", d.major(), d.minor(), d.rate()),
                    )
                }));
            }
        }
    }
    out
}

/// v1 `blkio.weight` [10, 1000] -> v2 `io.weight` [1, 10000], linearly.
pub fn blkio_to_io_weight(weight: u16) -> u64 {
    let weight = u64::from(weight.clamp(10, 1000));
    1 + (weight - 10) * 9999 / 990
}

/// `hugepageLimits`: `hugetlb.<size>.limit_in_bytes` (v1) or `hugetlb.<size>.max` (v2), then
/// the same limit on the reservations, `hugetlb.<size>.rsvd.limit_in_bytes` or
/// `.rsvd.max` (Linux 5.7), where the kernel has them: runc sets both, so that pages
/// reserved by `mmap` and not yet faulted in count too.
pub fn hugetlb(limits: &[LinuxHugepageLimit], v: Version) -> Result<Vec<Write>> {
    let pairs = limits
        .iter()
        .map(|h| {
            let size = h.page_size();
            let digits = size.trim_end_matches(['K', 'M', 'G', 'B']);
            if digits.is_empty()
                || !digits.bytes().all(|b| b.is_ascii_digit())
                || !["KB", "MB", "GB"].iter().any(|u| size.ends_with(u))
            {
                bail!(
                    "invalid hugepageLimits pageSize {size:?}: expected a number and KB, MB or GB"
                );
            }
            let (suffix, value) = match v {
                Version::V1 => ("limit_in_bytes", h.limit().to_string()),
                Version::V2 => ("max", max_or(h.limit())),
            };
            Ok([
                w(format!("hugetlb.{size}.{suffix}"), &value),
                Write {
                    optional: true,
                    ..w(format!("hugetlb.{size}.rsvd.{suffix}"), &value)
                },
            ])
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(pairs.into_iter().flatten().collect())
}

/// Check a `unified` key: a plain file name of the cgroup directory.
///
/// # Errors
/// A key with `/`, or one that is not `<controller>.<file>`.
pub fn unified_key(key: &str) -> Result<&str> {
    match key.split_once('.') {
        Some((controller, rest))
            if !key.contains('/') && !controller.is_empty() && !rest.is_empty() =>
        {
            Ok(controller)
        }
        _ => bail!("invalid unified key {key:?}: expected <controller>.<file>"),
    }
}

#[cfg(test)]
mod tests;
