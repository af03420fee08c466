//! OCI bundles for the notify tests: a busybox-static rootfs with the static sd_notify sender
//! (`tests/fixtures/sd-notify-send.c`, built once per test run with `gcc -static`), and a
//! config.json written as JSON by the test (runtime-spec `config.md`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

/// The host's static busybox (Debian package `busybox-static`).
const HOST_BUSYBOX: &str = "/bin/busybox";

/// A bundle in its own temporary directory: `rootfs/` and `config.json`.
pub struct Bundle {
    dir: tempfile::TempDir,
    /// The config.json to write; tests adjust it, then [`Bundle::write`].
    pub config: Value,
}

impl Bundle {
    /// A bundle whose process is `/bin/sh -c <script>` (PATH=/bin), as uid 0, with pid, mount,
    /// ipc, uts and network namespaces and the usual proc, /dev tmpfs, devpts and sysfs mounts.
    pub fn new(script: &str) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pier-notify-bundle")
            .tempdir()
            .expect("bundle tempdir");
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod bundle");
        build_rootfs(&dir.path().join("rootfs"));
        let bundle = Bundle {
            dir,
            config: default_config(script),
        };
        bundle.write();
        bundle
    }

    /// The bundle directory (for `--bundle`).
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The rootfs as the host sees it.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Writes `config` to config.json.
    pub fn write(&self) {
        let text = serde_json::to_string_pretty(&self.config).expect("serialize config");
        fs::write(self.dir.path().join("config.json"), text).expect("write config.json");
    }

    /// Sets `process.user` and writes.
    pub fn set_user(&mut self, uid: u32, gid: u32) {
        self.config["process"]["user"] = json!({"uid": uid, "gid": gid});
        self.write();
    }

    /// Sets `root.readonly` and writes.
    pub fn set_readonly(&mut self, readonly: bool) {
        self.config["root"]["readonly"] = json!(readonly);
        self.write();
    }

    /// Adds a tmpfs mount at `destination` and writes.
    pub fn add_tmpfs(&mut self, destination: &str) {
        let mount = json!({"destination": destination, "type": "tmpfs", "source": "tmpfs",
                           "options": ["nosuid", "nodev", "mode=755"]});
        self.config["mounts"]
            .as_array_mut()
            .expect("mounts")
            .push(mount);
        self.write();
    }

    /// Sets an annotation and writes.
    pub fn annotate(&mut self, key: &str, value: &str) {
        self.config["annotations"][key] = json!(value);
        self.write();
    }

    /// Sets `linux.cgroupsPath` and writes.
    pub fn set_cgroups_path(&mut self, path: &str) {
        self.config["linux"]["cgroupsPath"] = json!(path);
        self.write();
    }

    /// A FIFO at `/tmp/<name>` in the container that a script blocks on with
    /// `read _ < /tmp/<name>` until the test calls [`Gate::open`].
    pub fn gate(&self, name: &str) -> Gate {
        let path = self.rootfs().join("tmp").join(name);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &path,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o666),
            0,
        )
        .expect("mkfifo gate");
        Gate { path, held: None }
    }
}

/// See [`Bundle::gate`].
pub struct Gate {
    path: PathBuf,
    held: Option<fs::File>,
}

impl Gate {
    /// Lets the container's `read` return: opens the FIFO read-write (never blocks), writes a
    /// line and keeps the fd open so the line stays until the container reads it.
    pub fn open(&mut self) {
        let mut file = fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&self.path)
            .expect("open gate");
        file.write_all(b"go\n").expect("write gate");
        self.held = Some(file);
    }
}

fn default_config(script: &str) -> Value {
    let caps = json!(["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]);
    json!({
        "ociVersion": "1.0.2",
        "process": {
            "terminal": false,
            "user": {"uid": 0, "gid": 0},
            "args": ["/bin/sh", "-c", script],
            "env": ["PATH=/bin", "HOME=/"],
            "cwd": "/",
            "capabilities": {"bounding": caps, "effective": caps, "permitted": caps},
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": false},
        "hostname": "notify-test",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]}
        ],
        "annotations": {},
        "linux": {
            "namespaces": [{"type": "pid"}, {"type": "mount"}, {"type": "ipc"}, {"type": "uts"}, {"type": "network"}]
        }
    })
}

/// rootfs/bin/busybox with its applet symlinks, the sender, /etc/passwd and empty mountpoints.
fn build_rootfs(rootfs: &Path) {
    for dir in ["bin", "proc", "dev", "sys", "tmp", "etc", "run"] {
        fs::create_dir_all(rootfs.join(dir)).expect("rootfs dir");
    }
    fs::set_permissions(rootfs, fs::Permissions::from_mode(0o755)).expect("chmod rootfs");
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).expect("chmod tmp");
    let bin = rootfs.join("bin");
    fs::copy(host_busybox(), bin.join("busybox")).expect("copy busybox");
    for applet in applets() {
        if !bin.join(&applet).exists() {
            symlink("busybox", bin.join(&applet)).expect("applet symlink");
        }
    }
    fs::copy(sender(), bin.join("sd-notify-send")).expect("copy sender");
    fs::write(
        rootfs.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nuser:x:1000:1000:user:/:/bin/sh\n",
    )
    .expect("passwd");
    fs::write(rootfs.join("etc/group"), "root:x:0:\nuser:x:1000:\n").expect("group");
}

fn host_busybox() -> &'static Path {
    let path = Path::new(HOST_BUSYBOX);
    assert!(
        path.exists(),
        "{HOST_BUSYBOX} is missing: apt-get install busybox-static"
    );
    path
}

fn applets() -> Vec<String> {
    static APPLETS: OnceLock<Vec<String>> = OnceLock::new();
    APPLETS
        .get_or_init(|| {
            let out = Command::new(host_busybox())
                .arg("--list")
                .output()
                .expect("busybox --list");
            assert!(out.status.success(), "busybox --list failed");
            String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .filter(|a| !a.contains('/'))
                .collect()
        })
        .clone()
}

/// The static sender, compiled once per test process into the cargo target's tmp dir.
pub fn sender() -> &'static Path {
    static SENDER: OnceLock<PathBuf> = OnceLock::new();
    SENDER.get_or_init(|| {
        let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/sd-notify-send.c");
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("notify-tests");
        fs::create_dir_all(&dir).expect("sender build dir");
        let tmp = dir.join(format!("sd-notify-send.{}", std::process::id()));
        let out = Command::new("gcc")
            .args(["-static", "-O2", "-Wall", "-o"])
            .arg(&tmp)
            .arg(&source)
            .output()
            .expect("run gcc (apt-get install gcc libc6-dev)");
        assert!(
            out.status.success(),
            "gcc -static failed:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let path = dir.join("sd-notify-send");
        fs::rename(&tmp, &path).expect("install sender");
        path
    })
}
