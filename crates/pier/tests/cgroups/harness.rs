//! The cgroup tests' helpers over the one runner, [`Runtime`] (a private state root whose
//! containers are force-deleted on drop); the bundles are `support::Bundle::cgrouped`.

use std::path::{Path, PathBuf};

use serde_json::Value;

pub use crate::support::{Bundle, Runtime};

/// What the cgroup tests do with a [`Runtime`]: containers named by [`unique`] tags.
pub trait CgroupRun {
    /// `create` then `start` of `bundle` as `unique(name)`; panics unless both succeed.
    /// Returns the id.
    fn start_new(&self, name: &str, bundle: &Bundle) -> String;
    /// `create` that may fail: whether it succeeded, and what the runtime wrote to stderr.
    fn try_create(&self, bundle: &Bundle, id: &str) -> (bool, String);
    /// Foreground `run` of `bundle` as `unique(name)`: its exit code (-1 when killed) and
    /// its stdout followed by its stderr.
    fn run_container(&self, name: &str, bundle: &Bundle) -> (i32, String);
    /// The cgroup directories recorded in `<root>/<id>/state.json`.
    fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf>;
}

impl CgroupRun for Runtime {
    fn start_new(&self, name: &str, bundle: &Bundle) -> String {
        let id = unique(name);
        self.create(bundle, &id);
        self.start(&id);
        id
    }

    fn try_create(&self, bundle: &Bundle, id: &str) -> (bool, String) {
        let out = self.run(&["create", "--bundle", bundle.save(), id]);
        (out.status.success(), out.stderr)
    }

    fn run_container(&self, name: &str, bundle: &Bundle) -> (i32, String) {
        let out = self.run_fg(bundle, &unique(name));
        (
            out.code().unwrap_or(-1),
            format!("{}{}", out.stdout, out.stderr),
        )
    }

    fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        let saved: Value = serde_json::from_slice(
            &std::fs::read(self.root().join(id).join("state.json")).unwrap(),
        )
        .unwrap();
        saved["cgroup"]["dirs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| PathBuf::from(d.as_str().unwrap()))
            .collect()
    }
}

pub fn unique(name: &str) -> String {
    format!("pier-cg-{name}-{}", std::process::id())
}

/// The first of `files` that exists in one of `dirs`, with its trimmed contents.
pub fn read_limit(dirs: &[PathBuf], files: &[&str]) -> (String, String) {
    for dir in dirs {
        for file in files {
            if let Ok(text) = std::fs::read_to_string(dir.join(file)) {
                return (file.to_string(), text.trim().to_string());
            }
        }
    }
    panic!("none of {files:?} in {dirs:?}");
}

pub fn resources(config: &mut Value, key: &str, value: Value) {
    config["linux"]["resources"][key] = value;
}

/// Whether the host offers controller `name`: a v1 hierarchy mounts it, or the cgroup2 root
/// lists it in `cgroup.controllers`. (Under the systemd harness on a hybrid host, cgroup2
/// offers none: the v1 hierarchies hold them all.)
pub fn has_controller(name: &str) -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    mountinfo
        .lines()
        .filter_map(|l| l.split_once(" - "))
        .any(|(pre, post)| {
            let fields: Vec<&str> = post.split(' ').collect();
            match fields.first() {
                Some(&"cgroup") => fields
                    .get(2)
                    .is_some_and(|o| o.split(',').any(|c| c == name)),
                Some(&"cgroup2") => {
                    let mountpoint = pre.split(' ').nth(4).unwrap_or_default();
                    let offered =
                        std::fs::read_to_string(Path::new(mountpoint).join("cgroup.controllers"))
                            .unwrap_or_default();
                    offered.split_whitespace().any(|c| c == name)
                }
                _ => false,
            }
        })
}

/// Skip (pass with a note) when the host lacks one of the controllers a test needs.
#[macro_export]
macro_rules! require_controllers {
    ($($name:literal),+) => {
        for name in [$($name),+] {
            if !$crate::harness::has_controller(name) {
                eprintln!("skipped: the {name} controller is not available on this host");
                return;
            }
        }
    };
}
