//! Proving that nothing of a container is left: its state dir, host mounts mentioning the
//! bundle or the state dir, cgroup directories named after its id, and processes whose
//! cmdline, cwd or root points into the bundle.

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Instant;

use super::runner::{wait_pid_gone, TIMEOUT};

/// Panics listing every trace of container `id` (bundle `bundle`, state root `root`) found.
/// Processes get until the usual deadline to finish exiting before they count.
#[track_caller]
pub fn assert_no_leftovers(root: &Path, id: &str, bundle: &str) {
    let found = find_leftovers(root, id, bundle, Instant::now() + TIMEOUT);
    assert!(
        found.is_empty(),
        "leftovers of {id}:\n  {}",
        found.join("\n  ")
    );
}

/// Every trace of container `id` found: its state dir, host mounts mentioning the bundle or
/// the state dir, cgroup dirs named after it, and processes whose cmdline mentions the
/// bundle, the state dir or the id, or whose cwd/root is in the bundle, still alive at
/// `deadline`. One human-readable line per trace.
pub fn find_leftovers(root: &Path, id: &str, bundle: &str, deadline: Instant) -> Vec<String> {
    let mut found = Vec::new();
    let state_dir = root.join(id);
    if state_dir.symlink_metadata().is_ok() {
        found.push(format!("state dir {} still exists", state_dir.display()));
    }
    let state_str = state_dir.to_str().unwrap();
    for needle in [bundle, state_str] {
        for line in mountinfo_lines_mentioning(needle) {
            found.push(format!("mount: {line}"));
        }
    }
    for dir in cgroup_dirs_named(id) {
        found.push(format!("cgroup dir {}", dir.display()));
    }
    for (pid, why) in processes_in(Path::new(bundle), &[bundle, state_str, id]) {
        if !wait_pid_gone(pid, deadline) {
            found.push(format!("process {pid} ({why})"));
        }
    }
    found
}

/// Lines of /proc/self/mountinfo that contain `needle`.
pub fn mountinfo_lines_mentioning(needle: &str) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .filter(|l| l.contains(needle))
        .map(str::to_owned)
        .collect()
}

/// Mount points (field 5 of mountinfo) at or below `dir`, in mount order.
pub fn mounts_under(dir: &str) -> Vec<String> {
    fs::read_to_string("/proc/self/mountinfo")
        .expect("read mountinfo")
        .lines()
        .filter_map(|l| l.split(' ').nth(4).map(str::to_owned))
        .filter(|mp| mp == dir || mp.starts_with(&format!("{dir}/")))
        .collect()
}

/// Directories anywhere under /sys/fs/cgroup (every v1 hierarchy and the v2 one) whose name
/// contains `id`.
pub fn cgroup_dirs_named(id: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    walk_cgroups(Path::new("/sys/fs/cgroup"), id, 0, &mut found);
    found
}

fn walk_cgroups(dir: &Path, id: &str, depth: usize, found: &mut Vec<PathBuf>) {
    if depth > 8 {
        return;
    }
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
        if !is_dir {
            continue;
        }
        if e.file_name().to_string_lossy().contains(id) {
            found.push(e.path());
        }
        walk_cgroups(&e.path(), id, depth + 1, found);
    }
}

/// Processes (other than ourselves) whose cmdline mentions any of `needles`, or whose cwd or
/// root is `bundle/rootfs` or lies under `bundle`. Returns (pid, reason).
pub fn processes_in(bundle: &Path, needles: &[&str]) -> Vec<(i32, String)> {
    let me = std::process::id() as i32;
    let rootfs_id = fs::metadata(bundle.join("rootfs"))
        .ok()
        .map(|m| (m.dev(), m.ino()));
    let mut found = Vec::new();
    let Ok(entries) = fs::read_dir("/proc") else {
        return found;
    };
    for e in entries.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me {
            continue;
        }
        if let Some(why) = points_into(pid, bundle, rootfs_id, needles) {
            found.push((pid, why));
        }
    }
    found
}

fn points_into(
    pid: i32,
    bundle: &Path,
    rootfs_id: Option<(u64, u64)>,
    needles: &[&str],
) -> Option<String> {
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let cmdline = fs::read(proc.join("cmdline")).unwrap_or_default();
    let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
    if let Some(n) = needles
        .iter()
        .find(|n| !n.is_empty() && cmdline.contains(*n))
    {
        return Some(format!("cmdline {cmdline:?} mentions {n}"));
    }
    for link in ["cwd", "root"] {
        if let Ok(target) = fs::read_link(proc.join(link)) {
            if target.starts_with(bundle) {
                return Some(format!("{link} -> {}", target.display()));
            }
        }
        // After pivot_root the link reads "/", so compare the directory itself.
        let same = fs::metadata(proc.join(link))
            .ok()
            .map(|m| (m.dev(), m.ino()));
        if same.is_some() && same == rootfs_id {
            return Some(format!("{link} is the rootfs ({cmdline:?})"));
        }
    }
    None
}

/// SIGKILLs every process rooted in (or with its cwd in) `bundle` and waits for them.
pub fn kill_processes_in(bundle: &Path) {
    let deadline = Instant::now() + TIMEOUT;
    let procs = processes_in(bundle, &[bundle.to_str().unwrap_or_default()]);
    for (pid, _) in &procs {
        if let Some(p) = rustix::process::Pid::from_raw(*pid) {
            let _ = rustix::process::kill_process(p, rustix::process::Signal::KILL);
        }
    }
    for (pid, _) in procs {
        wait_pid_gone(pid, deadline);
    }
}
