//! Containers whose `linux.namespaces` has no "mount" entry (runtime-spec config-linux.md
//! "Namespaces": without an entry the container inherits the runtime's namespace of that
//! type). The container shares the runtime's mount namespace, its mounts are made under the
//! rootfs in that namespace, and its root is a chroot into the rootfs; `delete` (or a failed
//! create) takes those mounts away again (docs/mounts.md "No mount namespace").
//!
//! Against runc 1.1 (`PIER_BIN=/usr/sbin/runc`) the leftover checks fail: runc leaves the
//! rootfs bind and every config mount in the runtime's namespace after `delete` or a failed
//! create, ignores `root.readonly`, and runs `exec` on the host's root. Run them against runc
//! only inside `unshare -m`.

mod support;

use std::fs;
use std::path::PathBuf;

use rustix::mount::{
    mount, mount_bind, mount_change, unmount, MountFlags, MountPropagationFlags, UnmountFlags,
};
use rustix::process::Signal;
use support::leftovers::mounts_under;
use support::{stage, unique_id, Bundle, Runtime};

/// A bundle whose config has every namespace but the mount one, and no masked or read-only
/// paths (which need a mount namespace).
fn bundle_without_mount_ns() -> Bundle {
    let mut b = Bundle::new();
    b.namespaces(&["pid", "network", "ipc", "uts"]);
    b.config["hostname"] = "itest".into();
    let linux = b.config["linux"].as_object_mut().unwrap();
    linux.remove("maskedPaths");
    linux.remove("readonlyPaths");
    b
}

fn own_mount_ns() -> String {
    fs::read_link("/proc/self/ns/mnt")
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn the_container_shares_the_runtime_mount_namespace_and_is_confined_to_its_rootfs() {
    let rt = Runtime::new();
    let id = unique_id("nomnt-run");
    let mut b = bundle_without_mount_ns();
    fs::write(b.host("/only-in-the-image"), "image\n").unwrap();
    b.sh(
        "readlink /proc/self/ns/mnt; cat /only-in-the-image; ls /; \
         echo pid $$; test -c /dev/null && echo dev ok; cat /proc/self/stat >/dev/null && echo proc ok",
    );
    let out = rt.run_fg(&b, &id);
    out.ok();
    let lines: Vec<&str> = out.stdout.lines().collect();
    assert_eq!(lines[0], own_mount_ns(), "{out}");
    assert_eq!(lines[1], "image", "{out}");
    let root_entries: Vec<&str> = out
        .stdout
        .lines()
        .skip(2)
        .take_while(|l| !l.starts_with("pid "))
        .collect();
    assert!(root_entries.contains(&"only-in-the-image"), "{out}");
    assert!(
        !root_entries.contains(&"boot") && !root_entries.contains(&"work"),
        "the host's / is visible:\n{out}"
    );
    assert!(out.stdout.contains("pid 1\n"), "{out}");
    assert!(
        out.stdout.contains("dev ok\n") && out.stdout.contains("proc ok\n"),
        "{out}"
    );
    assert_eq!(mounts_under(b.path()), Vec::<String>::new());
    rt.assert_clean(&b, &id);
}

#[test]
fn exec_runs_in_the_container_root_and_delete_leaves_no_mount() {
    let rt = Runtime::new();
    let id = unique_id("nomnt-exec");
    let mut b = bundle_without_mount_ns();
    fs::write(b.host("/only-in-the-image"), "image\n").unwrap();
    b.args(&["sleep", "1000"]);
    rt.create(&b, &id);
    rt.start(&id);
    assert!(
        !mounts_under(&b.rootfs().join("proc").to_string_lossy()).is_empty(),
        "the container's /proc is a mount in the runtime's namespace"
    );
    let out = rt.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "cat /only-in-the-image; cat /proc/1/comm; readlink /proc/self/ns/mnt",
    ]);
    out.ok();
    assert_eq!(
        out.stdout,
        format!("image\nsleep\n{}\n", own_mount_ns()),
        "{out}"
    );
    rt.run(&["exec", "--cwd", "/dev", &id, "pwd"]).ok();
    rt.run(&["delete", "--force", &id]).ok();
    assert_eq!(mounts_under(b.path()), Vec::<String>::new());
    rt.assert_clean(&b, &id);
}

#[test]
fn root_readonly_is_applied_without_a_mount_namespace() {
    let rt = Runtime::new();
    let id = unique_id("nomnt-ro");
    let mut b = bundle_without_mount_ns();
    b.config["root"]["readonly"] = true.into();
    b.sh(
        "touch /x 2>/dev/null && echo writable || echo read-only; touch /dev/shm/x && echo shm ok",
    );
    let out = rt.run_fg(&b, &id);
    out.ok();
    assert_eq!(out.stdout, "read-only\nshm ok\n", "{out}");
    assert!(!b.host("/x").exists());
    rt.assert_clean(&b, &id);
}

#[test]
fn masked_and_readonly_paths_are_refused_without_a_mount_namespace() {
    let rt = Runtime::new();
    for key in ["maskedPaths", "readonlyPaths"] {
        let id = unique_id("nomnt-masked");
        let mut b = bundle_without_mount_ns();
        b.config["linux"][key] = serde_json::json!(["/proc/kcore"]);
        let out = rt.run(&["create", "--bundle", b.save(), &id]);
        assert_ne!(out.code(), Some(0), "{out}");
        // runc's validator: "unable to restrict sys entries without a private MNT namespace".
        assert!(
            out.stderr
                .contains("unable to restrict sys entries without a private MNT namespace"),
            "{out}"
        );
        rt.assert_clean(&b, &id);
    }
}

#[test]
fn a_failed_create_leaves_no_mount() {
    let rt = Runtime::new();
    let id = unique_id("nomnt-fail");
    let mut b = bundle_without_mount_ns();
    b.mount(serde_json::json!({"destination": "/mnt/x", "type": "nosuchfs", "source": "none"}));
    let out = rt.run(&["create", "--bundle", b.save(), &id]);
    assert_ne!(out.code(), Some(0), "{out}");
    assert_eq!(mounts_under(b.path()), Vec::<String>::new(), "{out}");
    rt.assert_clean(&b, &id);
}

#[test]
fn delete_after_a_killed_create_leaves_no_mount() {
    let rt = Runtime::new();
    let id = unique_id("nomnt-killed");
    let b = bundle_without_mount_ns();
    // The init's HOME lookup blocks on a FIFO, after the mounts were made.
    stage::block_create_on_passwd(&b);
    let create = rt.spawn(&["create", "--bundle", b.save(), &id]);
    stage::wait_blocked_on_fifo(&b);
    assert!(
        !mounts_under(b.path()).is_empty(),
        "the rootfs bind is in place"
    );
    create.signal(Signal::KILL);
    rt.run(&["delete", "--force", &id]).ok();
    create.wait();
    assert_eq!(mounts_under(b.path()), Vec::<String>::new());
    rt.assert_clean(&b, &id);
}

/// A shared tmpfs with a bind of it elsewhere (a peer), both detached on drop.
struct SharedPair {
    dir: tempfile::TempDir,
}

impl SharedPair {
    fn new() -> Self {
        let dir = support::host_tempdir("nomnt-shared");
        let (a, b) = (dir.path().join("a"), dir.path().join("peer"));
        fs::create_dir(&a).unwrap();
        fs::create_dir(&b).unwrap();
        mount("tmpfs", &a, "tmpfs", MountFlags::empty(), Some(c"size=16m")).unwrap();
        mount_change(&a, MountPropagationFlags::SHARED).unwrap();
        mount_bind(&a, &b).unwrap();
        SharedPair { dir }
    }

    fn side(&self) -> PathBuf {
        self.dir.path().join("a")
    }

    fn peer(&self) -> PathBuf {
        self.dir.path().join("peer")
    }
}

impl Drop for SharedPair {
    fn drop(&mut self) {
        let _ = unmount(self.peer(), UnmountFlags::DETACH);
        let _ = unmount(self.side(), UnmountFlags::DETACH);
    }
}

#[test]
fn under_a_shared_parent_nothing_stays_in_a_peer_and_the_host_propagation_is_kept() {
    let rt = Runtime::new();
    let id = unique_id("nomnt-shared");
    let pair = SharedPair::new();
    let mut b = bundle_without_mount_ns();
    // The image, copied onto the shared tmpfs; root.path may be absolute.
    let rootfs = pair.side().join("rootfs");
    let copied = std::process::Command::new("cp")
        .arg("-a")
        .arg(b.rootfs())
        .arg(&rootfs)
        .status()
        .unwrap();
    assert!(copied.success());
    b.config["root"]["path"] = rootfs.to_str().unwrap().into();
    b.args(&["sleep", "1000"]);
    rt.create(&b, &id);
    rt.start(&id);
    let peer = pair.peer().to_string_lossy().into_owned();
    // What the container mounts reaches the peer as any mount under a shared one does.
    assert!(
        mounts_under(&peer)
            .iter()
            .any(|m| m.ends_with("/rootfs/proc")),
        "{:?}",
        mounts_under(&peer)
    );
    rt.run(&["delete", "--force", &id]).ok();
    assert_eq!(mounts_under(&peer), vec![peer.clone()]);
    let side = pair.side().to_string_lossy().into_owned();
    assert_eq!(mounts_under(&side), vec![side.clone()]);
    // The parent is still shared with its peer: pier changed no propagation on the host.
    let rows = support::parse_mountinfo(&fs::read_to_string("/proc/self/mountinfo").unwrap());
    let row = support::mount_at(&rows, &side);
    assert!(row.optional.contains("shared:"), "{row:?}");
    rt.assert_clean(&b, &id);
}

/// With no `linux.namespaces` entry at all, the container is in every namespace of the
/// runtime (config-linux.md: "If a namespace type is not specified in the namespaces array,
/// the container MUST inherit the runtime namespace of that type"), and delete leaves no mount.
#[test]
fn with_no_namespace_entries_every_namespace_is_the_runtime_one() {
    let rt = Runtime::new();
    let id = unique_id("nomnt-none");
    let mut b = bundle_without_mount_ns();
    b.namespaces(&[]);
    // The cgroup mount of the default config needs nothing more; sysctls need namespaces.
    b.config["linux"].as_object_mut().unwrap().remove("sysctl");
    b.args(&["sleep", "1000"]);
    rt.create(&b, &id);
    let pid = rt.init_pid(&id);
    for ns in ["cgroup", "ipc", "mnt", "net", "pid", "user", "uts"] {
        let ours = fs::read_link(format!("/proc/self/ns/{ns}")).unwrap();
        let theirs = fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap();
        assert_eq!(ours, theirs, "namespace {ns}");
    }
    rt.run(&["delete", "--force", &id]).ok();
    assert_eq!(mounts_under(b.path()), Vec::<String>::new());
    rt.assert_clean(&b, &id);
}
