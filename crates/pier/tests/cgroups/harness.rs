//! The cgroup tests' harness: a busybox-static bundle builder and a pier state root whose
//! containers are force-deleted on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use serde_json::{json, Value};

pub const PIER: &str = env!("CARGO_BIN_EXE_pier");

/// A bundle: busybox-static as the rootfs, `pier spec`'s config with `args`, then `edit`.
pub struct Bundle {
    dir: tempfile::TempDir,
}

impl Bundle {
    pub fn new(args: &[&str], edit: impl FnOnce(&mut Value)) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        let bin = dir.path().join("rootfs/bin");
        std::fs::create_dir_all(&bin).unwrap();
        for d in ["proc", "dev", "sys", "tmp"] {
            std::fs::create_dir_all(dir.path().join("rootfs").join(d)).unwrap();
        }
        let busybox = ["/bin/busybox", "/usr/bin/busybox"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .expect("busybox-static is needed (apt-get install busybox-static)");
        // Bind-mounted, never copied: a copy written while another test thread forks can be
        // held open for writing by that child, and its exec then fails with ETXTBSY.
        std::fs::write(bin.join("busybox"), b"").unwrap();
        for applet in ["sh", "sleep", "tail", "cat", "head", "echo", "true", "read"] {
            std::os::unix::fs::symlink("busybox", bin.join(applet)).unwrap();
        }
        let out = Command::new(PIER)
            .args(["spec", "-b"])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pier spec: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = dir.path().join("config.json");
        let mut config: Value = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
        config["process"]["terminal"] = json!(false);
        config["process"]["args"] = json!(args);
        config["root"]["readonly"] = json!(false);
        let bind = json!({"destination": "/bin/busybox", "type": "bind", "source": busybox, "options": ["bind", "ro"]});
        config["mounts"].as_array_mut().unwrap().push(bind);
        // Directly under each hierarchy's root: on a pure v2 host the caller's own cgroup
        // (a service's) cannot have both processes and a limited child.
        let name = dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "");
        config["linux"]["cgroupsPath"] = json!(format!("/pier-cg-{name}"));
        edit(&mut config);
        std::fs::write(&path, serde_json::to_vec_pretty(&config).unwrap()).unwrap();
        Bundle { dir }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// One pier state root; containers made through it are force-deleted on drop.
pub struct Pier {
    pub root: tempfile::TempDir,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Pier {
    pub fn new() -> Pier {
        Pier {
            root: tempfile::tempdir().unwrap(),
            ids: Default::default(),
        }
    }

    pub fn command(&self, args: &[&str]) -> Command {
        let mut c = Command::new(PIER);
        c.arg("--root").arg(self.root.path()).args(args);
        c
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args).stdin(Stdio::null()).output().unwrap()
    }

    /// Run a command that must succeed; returns stdout.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "pier {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }

    /// `pier create`: the init inherits stdout and stderr, so they go to a file rather than
    /// a pipe (a pipe would stay open as long as the container runs). Returns the status
    /// and what pier wrote to stderr.
    pub fn create(&self, bundle: &Bundle, id: &str) -> (bool, String) {
        let log = tempfile::NamedTempFile::new().unwrap();
        let status = self
            .command(&["create", "-b", bundle.path().to_str().unwrap(), id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .status()
            .unwrap();
        (
            status.success(),
            std::fs::read_to_string(log.path()).unwrap(),
        )
    }

    /// create + start; returns the container id.
    pub fn start(&self, name: &str, bundle: &Bundle) -> String {
        let id = unique(name);
        self.ids.borrow_mut().push(id.clone());
        let (created, stderr) = self.create(bundle, &id);
        assert!(created, "pier create: {stderr}");
        self.ok(&["start", &id]);
        id
    }

    /// `pier run` in the foreground: (exit code, stdout + stderr).
    pub fn run_container(&self, name: &str, bundle: &Bundle) -> (i32, String) {
        let id = unique(name);
        self.ids.borrow_mut().push(id.clone());
        let out = self.run(&["run", "-b", bundle.path().to_str().unwrap(), &id]);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code().unwrap_or(-1), text)
    }

    pub fn state(&self, id: &str) -> Value {
        serde_json::from_str(&self.ok(&["state", id])).unwrap()
    }

    /// The cgroup directories recorded in `<root>/<id>/state.json`.
    pub fn cgroup_dirs(&self, id: &str) -> Vec<PathBuf> {
        let saved: Value = serde_json::from_slice(
            &std::fs::read(self.root.path().join(id).join("state.json")).unwrap(),
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

impl Drop for Pier {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.run(&["delete", "--force", id]);
        }
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
