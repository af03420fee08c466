//! OCI bundles built from the host's busybox-static: `rootfs/bin/busybox` plus one symlink per
//! applet, `/etc/passwd` and `/etc/group`, and a `config.json` written by the test itself
//! (modelled on `runc spec` output, with `terminal: false`).

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::leftovers::{kill_processes_in, mounts_under};

/// Users in the image's `/etc/passwd`.
const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\n\
tester:x:1000:1000:tester:/home/tester:/bin/sh\n\
nobody:x:65534:65534:nobody:/nonexistent:/bin/false\n";

/// Groups in the image's `/etc/group`.
const GROUP: &str = "root:x:0:\nwheel:x:10:tester\nusers:x:100:tester\n\
tester:x:1000:\nnogroup:x:65534:\n";

/// Capabilities `runc spec` grants.
const DEFAULT_CAPS: [&str; 3] = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];

/// A bundle directory (removed on drop) and the config that [`Bundle::save`] writes.
pub struct Bundle {
    dir: tempfile::TempDir,
    path: String,
    /// The config.json content; tests edit it freely before saving.
    pub config: Value,
}

impl Bundle {
    /// A busybox bundle whose process runs `sh -c true`.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pier-itest-bundle-")
            .tempdir()
            .expect("bundle tempdir");
        let path = dir.path().to_str().expect("utf-8 temp path").to_owned();
        build_rootfs(&dir.path().join("rootfs"));
        Bundle {
            dir,
            path,
            config: default_config(),
        }
    }

    /// Bundle directory (absolute, no symlinks below /tmp).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The rootfs directory on the host.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Host path of `inner` (absolute, in-container) inside the rootfs.
    /// Builds the test sender (tests/fixtures/sd-notify-send.c, `gcc -static`) into the
    /// rootfs as /bin/sd-notify-send.
    pub fn install_sender(&self) {
        use std::os::unix::fs::PermissionsExt;
        let src = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/sd-notify-send.c"
        );
        let out = self.host("/bin/sd-notify-send");
        let ok = std::process::Command::new("gcc")
            .args(["-static", "-O2", "-o"])
            .arg(&out)
            .arg(src)
            .status();
        assert!(ok.is_ok_and(|s| s.success()), "gcc -static {src} failed");
        std::fs::set_permissions(&out, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    pub fn host(&self, inner: &str) -> PathBuf {
        self.rootfs().join(inner.trim_start_matches('/'))
    }

    /// Sets `process.args`.
    pub fn args(&mut self, args: &[&str]) -> &mut Self {
        self.config["process"]["args"] = json!(args);
        self
    }

    /// Sets `process.args` to `sh -c script`.
    pub fn sh(&mut self, script: &str) -> &mut Self {
        self.args(&["sh", "-c", script])
    }

    /// Appends one entry to `mounts`.
    pub fn mount(&mut self, m: Value) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }

    /// Replaces `linux.namespaces` with these types (all new). Without "uts" it also drops
    /// `hostname` and `domainname`, which need a private UTS namespace.
    pub fn namespaces(&mut self, types: &[&str]) -> &mut Self {
        let list: Vec<Value> = types.iter().map(|t| json!({ "type": t })).collect();
        self.config["linux"]["namespaces"] = Value::Array(list);
        if !types.contains(&"uts") {
            let top = self.config.as_object_mut().unwrap();
            top.remove("hostname");
            top.remove("domainname");
        }
        self
    }

    /// Writes config.json and returns the bundle path.
    pub fn save(&self) -> &str {
        let text = serde_json::to_string_pretty(&self.config).unwrap();
        fs::write(self.dir.path().join("config.json"), text).expect("write config.json");
        &self.path
    }

    /// Writes `text` as config.json verbatim (for malformed-input tests).
    pub fn save_raw(&self, text: &str) -> &str {
        fs::write(self.dir.path().join("config.json"), text).expect("write config.json");
        &self.path
    }
}

impl Default for Bundle {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for Bundle {
    /// Kills processes still rooted in the bundle and detaches host mounts under it before
    /// removing it; if a mount survives, the directory is leaked rather than recursed into.
    fn drop(&mut self) {
        kill_processes_in(Path::new(&self.path));
        for m in mounts_under(&self.path).into_iter().rev() {
            let _ = rustix::mount::unmount(m.as_str(), rustix::mount::UnmountFlags::DETACH);
        }
        if !mounts_under(&self.path).is_empty() {
            eprintln!("leaking {} because mounts remain under it", self.path);
            let _ = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap()).keep();
        }
    }
}

/// The config every test starts from: `runc spec`'s shape, terminal off, a writable root (so
/// tests can drop files into the image), hostname "itest" and `sh -c true` as the process.
pub fn default_config() -> Value {
    json!({
        "ociVersion": "1.0.2-dev",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": ["sh", "-c", "true"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": DEFAULT_CAPS, "effective": DEFAULT_CAPS,
                "permitted": DEFAULT_CAPS, "ambient": DEFAULT_CAPS
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }],
            "noNewPrivileges": true
        },
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "itest",
        "mounts": default_mounts(),
        "linux": {
            "resources": { "devices": [{ "allow": false, "access": "rwm" }] },
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware",
                "/proc/scsi"
            ],
            "readonlyPaths": [
                "/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"
            ]
        }
    })
}

fn default_mounts() -> Value {
    json!([
        { "destination": "/proc", "type": "proc", "source": "proc" },
        { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
          "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
        { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
          "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
        { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
          "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
        { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
          "options": ["nosuid", "noexec", "nodev"] },
        { "destination": "/sys", "type": "sysfs", "source": "sysfs",
          "options": ["nosuid", "noexec", "nodev", "ro"] },
        { "destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
          "options": ["nosuid", "noexec", "nodev", "relatime", "ro"] }
    ])
}

/// Fills `rootfs` with busybox, its applet links, /etc files and the usual empty dirs.
fn build_rootfs(rootfs: &Path) {
    for d in [
        "bin",
        "etc",
        "proc",
        "sys",
        "dev",
        "tmp",
        "root",
        "home/tester",
    ] {
        fs::create_dir_all(rootfs.join(d)).expect("mkdir in rootfs");
    }
    fs::set_permissions(rootfs.join("tmp"), fs::Permissions::from_mode(0o1777)).unwrap();
    let (busybox, applets) = busybox();
    fs::copy(busybox, rootfs.join("bin/busybox")).expect("copy busybox");
    for applet in applets {
        symlink("busybox", rootfs.join("bin").join(applet)).expect("applet symlink");
    }
    fs::write(rootfs.join("etc/passwd"), PASSWD).unwrap();
    fs::write(rootfs.join("etc/group"), GROUP).unwrap();
}

/// The host's static busybox and its applet names (computed once per test binary).
fn busybox() -> &'static (PathBuf, Vec<String>) {
    static BUSYBOX: OnceLock<(PathBuf, Vec<String>)> = OnceLock::new();
    BUSYBOX.get_or_init(|| {
        let path = ["/bin/busybox", "/usr/bin/busybox"]
            .iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .expect("busybox not found: apt-get install busybox-static");
        assert!(
            is_static_elf(&path),
            "{} is dynamically linked: apt-get install busybox-static",
            path.display()
        );
        let out = std::process::Command::new(&path)
            .arg("--list")
            .output()
            .expect("busybox --list");
        let applets = String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|a| !a.is_empty() && *a != "busybox")
            .map(str::to_owned)
            .collect();
        (path, applets)
    })
}

/// True when the 64-bit little-endian ELF at `path` has no PT_INTERP program header.
fn is_static_elf(path: &Path) -> bool {
    let data = fs::read(path).expect("read busybox");
    let u16_at = |o: usize| u16::from_le_bytes([data[o], data[o + 1]]) as usize;
    let u32_at = |o: usize| u32::from_le_bytes(data[o..o + 4].try_into().unwrap());
    let u64_at = |o: usize| u64::from_le_bytes(data[o..o + 8].try_into().unwrap()) as usize;
    assert!(data.starts_with(b"\x7fELF\x02\x01"), "not a 64-bit LE ELF");
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    const PT_INTERP: u32 = 3;
    (0..phnum).all(|i| u32_at(phoff + i * phentsize) != PT_INTERP)
}
