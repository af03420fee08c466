//! The one OCI bundle of the integration tests (lifecycle suites, notify, cgroups). Its image
//! and base config come from the repository's one bundle builder, `scripts/make-bundle.sh`
//! (run once per test binary with pier as the spec runtime): a busybox-static rootfs
//! (`rootfs/bin/busybox` plus one symlink per applet, `/etc/passwd` and `/etc/group` with root,
//! tester and nobody), copied into each bundle, and `pier spec`'s `config.json`
//! (`spec::default`, runc's shape) with the tests' adjustments (see [`default_config`]). The
//! static sd_notify sender (`support::sender`) is added on request.

use std::fs;
use std::io::Write;
use std::os::unix::fs::{symlink, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use serde_json::{json, Value};

use super::leftovers::{kill_processes_in, mounts_under};

/// A bundle directory (mode 0755, removed on drop) and the config that [`Bundle::save`] writes.
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
        // Reachable by the mapped ids of a user namespace.
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod bundle");
        let path = dir.path().to_str().expect("utf-8 temp path").to_owned();
        build_rootfs(&dir.path().join("rootfs"));
        Bundle {
            dir,
            path,
            config: default_config(),
        }
    }

    /// A bundle with the sd_notify sender installed whose process is `sh -c script`, saved.
    pub fn notify(script: &str) -> Self {
        let mut b = Bundle::new();
        b.install_sender();
        b.sh(script).save();
        b
    }

    /// A bundle whose process runs `args`, with busybox bind-mounted read-only rather than
    /// copied, a cgroup namespace, `linux.cgroupsPath` directly under each hierarchy's root,
    /// then `edit`; saved.
    /// (The cgroup tests: on a pure v2 host the caller's own cgroup, a service's, cannot have
    /// both processes and a limited child.)
    pub fn cgrouped(args: &[&str], edit: impl FnOnce(&mut Value)) -> Self {
        let mut b = Bundle::new();
        b.bind_busybox();
        let name = b
            .dir
            .path()
            .file_name()
            .unwrap()
            .to_string_lossy()
            .replace('.', "");
        b.config["linux"]["cgroupsPath"] = json!(format!("/pier-cg-{name}"));
        // As `pier spec` has it: these tests were written with a cgroup namespace.
        let namespaces = b.config["linux"]["namespaces"].as_array_mut().unwrap();
        namespaces.push(json!({"type": "cgroup"}));
        b.args(args);
        edit(&mut b.config);
        b.save();
        b
    }

    /// Bundle directory (absolute, no symlinks below /tmp).
    pub fn path(&self) -> &str {
        &self.path
    }

    /// The rootfs directory on the host.
    pub fn rootfs(&self) -> PathBuf {
        self.dir.path().join("rootfs")
    }

    /// Copies the static sd_notify test sender ([`sender`]) into the rootfs as
    /// /bin/sd-notify-send.
    pub fn install_sender(&self) {
        let out = self.host("/bin/sd-notify-send");
        fs::copy(sender(), &out).expect("copy sender");
        fs::set_permissions(&out, fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// Replaces the copied busybox by a read-only bind mount of the host's. A copy written
    /// while another test thread forks can be held open for writing by that child, and its
    /// exec then fails with ETXTBSY; the cgroup tests start many containers at once.
    pub fn bind_busybox(&mut self) -> &mut Self {
        // The template's copy, which nothing writes any more.
        let busybox = template().join("rootfs/bin/busybox");
        fs::write(self.host("/bin/busybox"), b"").expect("busybox mount point");
        self.mount(json!({"destination": "/bin/busybox", "type": "bind",
                          "source": busybox, "options": ["bind", "ro"]}))
    }

    /// Host path of `inner` (absolute, in-container) inside the rootfs.
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

    /// Sets `process.user` to `uid`:`gid`.
    pub fn user(&mut self, uid: u32, gid: u32) -> &mut Self {
        self.config["process"]["user"] = json!({"uid": uid, "gid": gid});
        self
    }

    /// Sets `root.readonly`.
    pub fn readonly(&mut self, readonly: bool) -> &mut Self {
        self.config["root"]["readonly"] = json!(readonly);
        self
    }

    /// Sets annotation `key` to `value`.
    pub fn annotate(&mut self, key: &str, value: &str) -> &mut Self {
        self.config["annotations"][key] = json!(value);
        self
    }

    /// Sets `linux.cgroupsPath`.
    pub fn cgroups_path(&mut self, path: &str) -> &mut Self {
        self.config["linux"]["cgroupsPath"] = json!(path);
        self
    }

    /// Appends one entry to `mounts`.
    pub fn mount(&mut self, m: Value) -> &mut Self {
        self.config["mounts"].as_array_mut().unwrap().push(m);
        self
    }

    /// Appends a tmpfs mount at `destination`.
    pub fn tmpfs(&mut self, destination: &str) -> &mut Self {
        self.mount(
            json!({"destination": destination, "type": "tmpfs", "source": "tmpfs",
                          "options": ["nosuid", "nodev", "mode=755"]}),
        )
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

    /// A FIFO at `/tmp/<name>` in the container that a script blocks on with
    /// `read _ < /tmp/<name>` until the test calls [`Gate::open`].
    pub fn gate(&self, name: &str) -> Gate {
        let path = self.host("/tmp").join(name);
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

/// The config every test starts from: `pier spec` (runc's shape, `spec::default`) with
/// terminal off, a writable root (so tests can drop files into the image), hostname "itest",
/// `sh -c true` as the process, and no cgroup namespace (the suites' expectations of
/// /proc/self/cgroup and /sys/fs/cgroup were written against the host's view).
pub fn default_config() -> Value {
    let mut c = pier_spec().clone();
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(["sh", "-c", "true"]);
    c["root"]["readonly"] = json!(false);
    c["hostname"] = json!("itest");
    c["linux"]["namespaces"]
        .as_array_mut()
        .expect("spec has linux.namespaces")
        .retain(|n| n["type"] != "cgroup");
    c
}

/// `pier spec`'s config.json as `scripts/make-bundle.sh` left it in the [`template`]
/// (always pier's, also when `$PIER_BIN` names another runtime: the configs are the same for
/// every runtime).
fn pier_spec() -> &'static Value {
    static SPEC: OnceLock<Value> = OnceLock::new();
    SPEC.get_or_init(|| {
        let text = fs::read(template().join("config.json")).expect("template config.json");
        serde_json::from_slice(&text).expect("the template's config.json is JSON")
    })
}

/// `scripts/make-bundle.sh`, built in (cgroups/run-v2.sh runs the tests where only the target
/// directory is visible).
const MAKE_BUNDLE: &str = include_str!("../../../../scripts/make-bundle.sh");

/// The bundle `scripts/make-bundle.sh` builds (`pier spec`, `sh -c true`), in the cargo
/// target's tmp dir; each [`Bundle`] copies its rootfs. It is made once for each version of
/// the script and of the pier binary (a key in its name; other versions are removed when a new
/// one is installed), by whichever test binary needs it first, and renamed into place whole.
fn template() -> &'static Path {
    static TEMPLATE: OnceLock<PathBuf> = OnceLock::new();
    TEMPLATE.get_or_init(|| {
        use std::hash::{Hash, Hasher};
        let pier = Path::new(env!("CARGO_BIN_EXE_pier"));
        let mut key = std::collections::hash_map::DefaultHasher::new();
        MAKE_BUNDLE.hash(&mut key);
        let modified = fs::metadata(pier)
            .and_then(|m| m.modified())
            .expect("stat pier");
        modified.hash(&mut key);
        let name = format!("{:016x}", key.finish());
        let mut parent = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bundle-templates");
        if parent.join(&name).join("config.json").exists() {
            return parent.join(name);
        }
        let building_in = |parent: &Path| {
            let building = parent.join(format!("building.{}", std::process::id()));
            fs::create_dir_all(parent)
                .and_then(|()| fs::create_dir_all(&building))
                .map(|()| building)
        };
        let building = building_in(&parent).unwrap_or_else(|_| {
            // A read-only target dir (cgroups/run-v2.sh binds it so): the system's tmp dir.
            parent = std::env::temp_dir().join("pier-bundle-templates");
            building_in(&parent).expect("template build dir")
        });
        let dir = parent.join(name);
        if dir.join("config.json").exists() {
            let _ = fs::remove_dir_all(&building);
            return dir;
        }
        let out = Command::new("bash")
            .args(["-c", MAKE_BUNDLE, "make-bundle.sh"])
            .arg(&building)
            .arg(pier)
            .args(["sh", "-c", "true"])
            .output()
            .expect("run scripts/make-bundle.sh");
        assert!(
            out.status.success(),
            "scripts/make-bundle.sh failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        if fs::rename(&building, &dir).is_err() {
            // Another test binary installed it first.
            let _ = fs::remove_dir_all(&building);
        }
        for old in fs::read_dir(&parent)
            .expect("read template parent")
            .flatten()
        {
            let name = old.file_name();
            let name = name.to_string_lossy();
            if old.path() != dir && !name.starts_with("building.") {
                let _ = fs::remove_dir_all(old.path());
            }
        }
        dir
    })
}

/// The static sd_notify test sender, notify-relay's `sd-notify-send` example
/// ([`super::sender::sender`]).
pub fn sender() -> &'static Path {
    super::sender::sender()
}

/// Fills `rootfs` with a copy of the [`template`]'s image (directories with their modes,
/// files, the applet symlinks).
fn build_rootfs(rootfs: &Path) {
    copy_tree(&template().join("rootfs"), rootfs);
}

fn copy_tree(from: &Path, to: &Path) {
    fs::create_dir_all(to).expect("mkdir in rootfs");
    let mode = fs::metadata(from).expect("stat template dir").permissions();
    fs::set_permissions(to, mode).expect("chmod in rootfs");
    for entry in fs::read_dir(from).expect("read template dir").flatten() {
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        let kind = entry.file_type().expect("template entry type");
        if kind.is_dir() {
            copy_tree(&src, &dst);
        } else if kind.is_symlink() {
            symlink(fs::read_link(&src).expect("readlink"), &dst).expect("symlink in rootfs");
        } else {
            fs::copy(&src, &dst).expect("copy into rootfs");
        }
    }
}
