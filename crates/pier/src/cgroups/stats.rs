//! Resource usage in the shape of runc's `events --stats` data (`types/events.go`: cpu,
//! memory, pids, blkio, hugetlb), read from v1 or v2 files. Units: bytes and nanoseconds.
//! Missing files read as zero (a controller that is not mounted reports nothing).

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use serde::Serialize;

use super::layout::{Controller, Layout, Version};

fn is_zero(v: &u64) -> bool {
    *v == 0
}

/// The `data` of a `{"type":"stats"}` event.
#[derive(Debug, Default, Serialize)]
pub struct Stats {
    pub cpu: Cpu,
    pub memory: Memory,
    pub pids: Pids,
    pub blkio: Blkio,
    /// Keyed by page size (`2MB`).
    pub hugetlb: BTreeMap<String, Hugetlb>,
}

/// CPU time used and CFS throttling.
#[derive(Debug, Default, Serialize)]
pub struct Cpu {
    pub usage: CpuUsage,
    pub throttling: Throttling,
}

/// CPU time in nanoseconds.
#[derive(Debug, Default, Serialize)]
pub struct CpuUsage {
    #[serde(skip_serializing_if = "is_zero")]
    pub total: u64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub percpu: Vec<u64>,
    pub kernel: u64,
    pub user: u64,
}

/// CFS bandwidth periods and the time throttled (ns).
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Throttling {
    #[serde(skip_serializing_if = "is_zero")]
    pub periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_periods: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub throttled_time: u64,
}

/// Memory usage; `raw` is `memory.stat`.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Memory {
    #[serde(skip_serializing_if = "is_zero")]
    pub cache: u64,
    pub usage: MemoryEntry,
    pub swap: MemoryEntry,
    pub kernel: MemoryEntry,
    #[serde(rename = "kernelTCP")]
    pub kernel_tcp: MemoryEntry,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub raw: BTreeMap<String, u64>,
}

/// One memory counter: limit, current usage, peak, times the limit was hit.
#[derive(Debug, Default, Serialize)]
pub struct MemoryEntry {
    pub limit: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Tasks in the cgroup and the limit (0: none).
#[derive(Debug, Default, Serialize)]
pub struct Pids {
    #[serde(skip_serializing_if = "is_zero")]
    pub current: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub limit: u64,
}

/// Bytes and operations per device.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Blkio {
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_service_bytes_recursive: Vec<BlkioEntry>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub io_serviced_recursive: Vec<BlkioEntry>,
}

/// One `major:minor op value` line.
#[derive(Debug, Default, Serialize, PartialEq, Eq)]
pub struct BlkioEntry {
    #[serde(skip_serializing_if = "is_zero")]
    pub major: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub minor: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub op: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub value: u64,
}

/// Huge page usage for one page size.
#[derive(Debug, Default, Serialize)]
pub struct Hugetlb {
    #[serde(skip_serializing_if = "is_zero")]
    pub usage: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub failcnt: u64,
}

/// Read every controller the layout has.
pub fn read(layout: &Layout) -> Stats {
    let mut s = Stats::default();
    if let Some(t) = layout.target(Controller::Cpuacct) {
        cpu_usage(t.dir, t.version, &mut s.cpu.usage);
    }
    if let Some(t) = layout.target(Controller::Cpu) {
        throttling(t.dir, t.version, &mut s.cpu.throttling);
    }
    if let Some(t) = layout.target(Controller::Memory) {
        s.memory = memory(t.dir, t.version);
    }
    if let Some(t) = layout.target(Controller::Pids) {
        s.pids = Pids {
            current: num(t.dir, "pids.current"),
            limit: num(t.dir, "pids.max"),
        };
    }
    if let Some(t) = layout.target(Controller::Io) {
        s.blkio = blkio(t.dir, t.version);
    }
    if let Some(t) = layout.target(Controller::Hugetlb) {
        for size in page_sizes() {
            let (usage, max, failcnt) = match t.version {
                Version::V1 => ("usage_in_bytes", "max_usage_in_bytes", "failcnt"),
                Version::V2 => ("current", "max", "events"),
            };
            let f = |name: &str| format!("hugetlb.{size}.{name}");
            let failcnt = if t.version == Version::V2 {
                keyed(t.dir, &f(failcnt), "max")
            } else {
                num(t.dir, &f(failcnt))
            };
            let max = if t.version == Version::V2 {
                0
            } else {
                num(t.dir, &f(max))
            };
            s.hugetlb.insert(
                size.clone(),
                Hugetlb {
                    usage: num(t.dir, &f(usage)),
                    max,
                    failcnt,
                },
            );
        }
    }
    s
}

/// A file holding one number; `max` and unreadable files read as 0.
fn num(dir: &Path, file: &str) -> u64 {
    fs::read_to_string(dir.join(file))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

/// `key value` lines (`cpu.stat`, `memory.stat`, `memory.events`) as a map.
pub fn flat_keyed(text: &str) -> BTreeMap<String, u64> {
    text.lines()
        .filter_map(|l| {
            let (k, v) = l.split_once(' ')?;
            Some((k.to_string(), v.trim().parse().ok()?))
        })
        .collect()
}

fn keyed(dir: &Path, file: &str, key: &str) -> u64 {
    let text = fs::read_to_string(dir.join(file)).unwrap_or_default();
    flat_keyed(&text).get(key).copied().unwrap_or(0)
}

fn cpu_usage(dir: &Path, v: Version, u: &mut CpuUsage) {
    match v {
        Version::V1 => {
            u.total = num(dir, "cpuacct.usage");
            let percpu = fs::read_to_string(dir.join("cpuacct.usage_percpu")).unwrap_or_default();
            u.percpu = percpu
                .split_whitespace()
                .filter_map(|n| n.parse().ok())
                .collect();
            // cpuacct.stat is in USER_HZ (100 per second on Linux).
            let stat =
                flat_keyed(&fs::read_to_string(dir.join("cpuacct.stat")).unwrap_or_default());
            u.user = stat.get("user").copied().unwrap_or(0) * 10_000_000;
            u.kernel = stat.get("system").copied().unwrap_or(0) * 10_000_000;
        }
        Version::V2 => {
            let stat = flat_keyed(&fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default());
            let ns = |k: &str| stat.get(k).copied().unwrap_or(0) * 1000;
            (u.total, u.user, u.kernel) = (ns("usage_usec"), ns("user_usec"), ns("system_usec"));
        }
    }
}

fn throttling(dir: &Path, v: Version, t: &mut Throttling) {
    let stat = flat_keyed(&fs::read_to_string(dir.join("cpu.stat")).unwrap_or_default());
    let get = |k: &str| stat.get(k).copied().unwrap_or(0);
    t.periods = get("nr_periods");
    t.throttled_periods = get("nr_throttled");
    t.throttled_time = match v {
        Version::V1 => get("throttled_time"),
        Version::V2 => get("throttled_usec") * 1000,
    };
}

fn memory(dir: &Path, v: Version) -> Memory {
    let raw = flat_keyed(&fs::read_to_string(dir.join("memory.stat")).unwrap_or_default());
    let entry = |prefix: &str| MemoryEntry {
        limit: num(dir, &format!("{prefix}.limit_in_bytes")),
        usage: num(dir, &format!("{prefix}.usage_in_bytes")),
        max: num(dir, &format!("{prefix}.max_usage_in_bytes")),
        failcnt: num(dir, &format!("{prefix}.failcnt")),
    };
    let max_or_unlimited = |file: &str| match fs::read_to_string(dir.join(file)) {
        Ok(s) if s.trim() == "max" => u64::MAX,
        _ => num(dir, file),
    };
    match v {
        Version::V1 => Memory {
            cache: raw.get("cache").copied().unwrap_or(0),
            usage: entry("memory"),
            swap: entry("memory.memsw"),
            kernel: entry("memory.kmem"),
            kernel_tcp: entry("memory.kmem.tcp"),
            raw,
        },
        Version::V2 => Memory {
            cache: raw.get("file").copied().unwrap_or(0),
            usage: MemoryEntry {
                limit: max_or_unlimited("memory.max"),
                usage: num(dir, "memory.current"),
                max: num(dir, "memory.peak"),
                failcnt: keyed(dir, "memory.events", "max"),
            },
            swap: MemoryEntry {
                limit: max_or_unlimited("memory.swap.max"),
                usage: num(dir, "memory.swap.current"),
                max: num(dir, "memory.swap.peak"),
                failcnt: keyed(dir, "memory.swap.events", "max"),
            },
            kernel: MemoryEntry::default(),
            kernel_tcp: MemoryEntry::default(),
            raw,
        },
    }
}

fn blkio(dir: &Path, v: Version) -> Blkio {
    match v {
        Version::V1 => Blkio {
            io_service_bytes_recursive: blkio_v1(
                &fs::read_to_string(dir.join("blkio.throttle.io_service_bytes_recursive"))
                    .unwrap_or_default(),
            ),
            io_serviced_recursive: blkio_v1(
                &fs::read_to_string(dir.join("blkio.throttle.io_serviced_recursive"))
                    .unwrap_or_default(),
            ),
        },
        Version::V2 => io_stat(&fs::read_to_string(dir.join("io.stat")).unwrap_or_default()),
    }
}

/// v1 `8:0 Read 4096` lines (the `Total` line without a device is skipped).
pub fn blkio_v1(text: &str) -> Vec<BlkioEntry> {
    text.lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let (major, minor) = parts.next()?.split_once(':')?;
            Some(BlkioEntry {
                major: major.parse().ok()?,
                minor: minor.parse().ok()?,
                op: parts.next()?.to_string(),
                value: parts.next()?.parse().ok()?,
            })
        })
        .collect()
}

/// v2 `8:0 rbytes=1 wbytes=2 rios=3 wios=4 …` lines as runc's Read/Write entries.
pub fn io_stat(text: &str) -> Blkio {
    let mut out = Blkio::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let Some((Ok(major), Ok(minor))) = parts
            .next()
            .and_then(|d| d.split_once(':'))
            .map(|(a, b)| (a.parse(), b.parse()))
        else {
            continue;
        };
        for kv in parts {
            let Some((k, Ok(value))) = kv.split_once('=').map(|(k, v)| (k, v.parse())) else {
                continue;
            };
            let (list, op) = match k {
                "rbytes" => (&mut out.io_service_bytes_recursive, "Read"),
                "wbytes" => (&mut out.io_service_bytes_recursive, "Write"),
                "rios" => (&mut out.io_serviced_recursive, "Read"),
                "wios" => (&mut out.io_serviced_recursive, "Write"),
                _ => continue,
            };
            list.push(BlkioEntry {
                major,
                minor,
                op: op.to_string(),
                value,
            });
        }
    }
    out
}

/// Huge page sizes the kernel supports, as cgroup file names spell them (`2MB`, `1GB`).
pub fn page_sizes() -> Vec<String> {
    let Ok(entries) = fs::read_dir("/sys/kernel/mm/hugepages") else {
        return Vec::new();
    };
    let mut sizes: Vec<String> = entries
        .flatten()
        .filter_map(|e| {
            e.file_name()
                .to_str()?
                .strip_prefix("hugepages-")?
                .strip_suffix("kB")?
                .parse::<u64>()
                .ok()
        })
        .map(page_size_name)
        .collect();
    sizes.sort();
    sizes
}

/// 2048 (kB) -> `2MB`, 1048576 -> `1GB`, 64 -> `64KB`.
pub fn page_size_name(kb: u64) -> String {
    match kb {
        kb if kb % (1024 * 1024) == 0 => format!("{}GB", kb / (1024 * 1024)),
        kb if kb % 1024 == 0 => format!("{}MB", kb / 1024),
        kb => format!("{kb}KB"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(page_size_name(2048), "2MB");
        assert_eq!(page_size_name(1_048_576), "1GB");
        assert_eq!(page_size_name(64), "64KB");
        let v1 = blkio_v1("8:0 Read 4096\n8:0 Write 0\nTotal 4096\n");
        assert_eq!(v1.len(), 2);
        assert_eq!(
            (v1[0].major, v1[0].op.as_str(), v1[0].value),
            (8, "Read", 4096)
        );
        let v2 = io_stat("259:0 rbytes=10 wbytes=20 rios=1 wios=2 dbytes=0 dios=0\n");
        assert_eq!(v2.io_service_bytes_recursive.len(), 2);
        assert_eq!(v2.io_serviced_recursive[1].value, 2);
        assert_eq!(flat_keyed("oom 1\noom_kill 2\n")["oom_kill"], 2);
    }

    #[test]
    fn json_shape_matches_runc() {
        let json = serde_json::to_value(Stats::default()).unwrap();
        assert_eq!(
            json["memory"]["usage"],
            serde_json::json!({"limit": 0, "failcnt": 0})
        );
        assert_eq!(
            json["cpu"]["usage"],
            serde_json::json!({"kernel": 0, "user": 0})
        );
        assert!(json["memory"].get("kernelTCP").is_some());
        assert_eq!(json["pids"], serde_json::json!({}));
    }
}
