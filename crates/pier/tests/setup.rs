//! Issue 2, point 2, the `linux`/`root`/`mounts` half: namespaces (new and joined by path),
//! hostname and domainname, standard and bind mounts with their options, devices, pivot_root
//! and --no-pivot, root.readonly, rootfsPropagation, masked and read-only paths, sysctl, and
//! mount destinations that must resolve inside the rootfs. Each is proven from inside the
//! container through the runtime's stdout (foreground run, no terminal). Bind propagation is
//! in propagation.rs. Needs root.

mod support;

use std::fs;

use serde_json::json;
use support::{
    host_tempdir, mount_at, output_of, parse_mountinfo, unique_id, Bundle, HostMount, Runtime,
};

/// Script printing `<type> <ns link>` for each namespace type.
const PRINT_NAMESPACES: &str =
    "for n in pid mnt uts ipc net cgroup; do echo \"$n $(readlink /proc/self/ns/$n)\"; done";

/// `type -> link` from [`PRINT_NAMESPACES`] output.
fn namespaces_in(out: &str) -> Vec<(String, String)> {
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(t, link)| (t.to_owned(), link.to_owned()))
        .collect()
}

fn host_ns(kind: &str, pid: &str) -> String {
    fs::read_link(format!("/proc/{pid}/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

#[test]
fn every_configured_namespace_is_new_and_the_others_are_shared() {
    let mut b = Bundle::new();
    b.namespaces(&["pid", "mount", "uts", "ipc", "network", "cgroup"]);
    b.sh(PRINT_NAMESPACES);
    for (kind, link) in namespaces_in(&output_of(&b)) {
        assert_ne!(
            link,
            host_ns(&kind, "self"),
            "{kind} namespace is the host's"
        );
    }

    let mut b = Bundle::new();
    b.namespaces(&["pid", "mount"]);
    b.sh(PRINT_NAMESPACES);
    for (kind, link) in namespaces_in(&output_of(&b)) {
        let shared = !matches!(kind.as_str(), "pid" | "mnt");
        assert_eq!(link == host_ns(&kind, "self"), shared, "{kind}: {link}");
    }
}

#[test]
fn the_init_is_pid_1_of_its_pid_namespace() {
    let mut b = Bundle::new();
    // $$ is the shell's pid; field 4 of its stat is its parent's pid, 0 for a namespace init.
    b.sh("echo $$; cut -d' ' -f4 /proc/$$/stat");
    assert_eq!(output_of(&b), "1\n0\n");
}

#[test]
fn namespaces_given_by_path_are_joined() {
    let rt = Runtime::new();
    let mut holder = Bundle::new();
    holder.namespaces(&["pid", "mount", "uts", "ipc", "network", "cgroup"]);
    holder.sh("exec sleep 1000");
    let holder_id = unique_id("nsholder");
    rt.create(&holder, &holder_id);
    let pid = rt.init_pid(&holder_id).to_string();

    let mut b = Bundle::new();
    let mut list = vec![json!({ "type": "pid" }), json!({ "type": "mount" })];
    for (kind, proc_name) in [
        ("uts", "uts"),
        ("ipc", "ipc"),
        ("network", "net"),
        ("cgroup", "cgroup"),
    ] {
        list.push(json!({ "type": kind, "path": format!("/proc/{pid}/ns/{proc_name}") }));
    }
    b.config["linux"]["namespaces"] = json!(list);
    b.config.as_object_mut().unwrap().remove("hostname");
    b.sh(PRINT_NAMESPACES);
    for (kind, link) in namespaces_in(&output_of(&b)) {
        let joined = matches!(kind.as_str(), "uts" | "ipc" | "net" | "cgroup");
        assert_eq!(link == host_ns(&kind, &pid), joined, "{kind}: {link}");
    }
    rt.run(&["delete", "--force", &holder_id]).ok();
    rt.assert_clean(&holder, &holder_id);
}

#[test]
fn a_new_cgroup_namespace_roots_the_container_at_its_cgroup() {
    let mut b = Bundle::new();
    b.namespaces(&["pid", "mount", "cgroup"]);
    b.sh("cat /proc/self/cgroup");
    let out = output_of(&b);
    for line in out.lines() {
        assert!(
            line.ends_with(":/"),
            "cgroup path not rooted: {line}\n{out}"
        );
    }
}

#[test]
fn hostname_is_set() {
    let mut b = Bundle::new();
    b.config["hostname"] = json!("box-1.example");
    b.sh("hostname; cat /proc/sys/kernel/hostname");
    assert_eq!(output_of(&b), "box-1.example\nbox-1.example\n");
}

#[test]
fn domainname_is_set() {
    // runtime-spec 1.1 `domainname`; runc 1.1 ignores it (prints "(none)").
    let mut b = Bundle::new();
    b.config["domainname"] = json!("example.org");
    b.sh("cat /proc/sys/kernel/domainname");
    assert_eq!(output_of(&b), "example.org\n");
}

#[test]
fn standard_mounts_have_their_types_and_options() {
    let mut b = Bundle::new();
    b.sh("cat /proc/self/mountinfo");
    let rows = parse_mountinfo(&output_of(&b));
    for (point, fstype) in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
    ] {
        assert_eq!(mount_at(&rows, point).fstype, fstype, "{point}");
    }
    assert!(mount_at(&rows, "/sys").has("ro"));
    let shm = mount_at(&rows, "/dev/shm");
    assert!(
        shm.has("nosuid") && shm.has("nodev") && shm.has("noexec"),
        "{shm:?}"
    );
    let cgroups: Vec<_> = rows
        .iter()
        .filter(|r| r.point.starts_with("/sys/fs/cgroup"))
        .filter(|r| r.fstype == "cgroup" || r.fstype == "cgroup2")
        .collect();
    assert!(
        !cgroups.is_empty(),
        "no cgroup mount under /sys/fs/cgroup: {rows:#?}"
    );
    assert!(
        cgroups.iter().all(|r| r.has("ro")),
        "cgroup mounts not ro: {cgroups:#?}"
    );
}

#[test]
fn tmpfs_mount_gets_its_data_and_flags() {
    let mut b = Bundle::new();
    b.mount(
        json!({ "destination": "/scratch", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosuid", "nodev", "mode=1777", "size=1m"] }),
    );
    b.sh("cat /proc/self/mountinfo; stat -c %a /scratch");
    let out = output_of(&b);
    let rows = parse_mountinfo(&out);
    let m = mount_at(&rows, "/scratch");
    assert_eq!(m.fstype, "tmpfs");
    assert!(
        m.has("nosuid") && m.has("nodev") && !m.has("noexec"),
        "{m:?}"
    );
    assert!(m.super_options.contains("size=1024k"), "{m:?}");
    assert!(out.ends_with("1777\n"), "{out}");
}

#[test]
fn bind_mount_flags_ro_nosuid_nodev_noexec_apply() {
    let src = host_tempdir("bindsrc");
    let script = src.path().join("hello.sh");
    support::stage::write_executable(&script, "#!/bin/sh\necho ran\n");
    let source = src.path().to_str().unwrap();
    let mut b = Bundle::new();
    b.mount(
        json!({ "destination": "/locked", "type": "bind", "source": source,
                    "options": ["rbind", "ro", "nosuid", "nodev", "noexec"] }),
    );
    b.mount(
        json!({ "destination": "/open", "type": "bind", "source": source,
                    "options": ["rbind", "rw"] }),
    );
    b.sh(
        "cat /proc/self/mountinfo; /open/hello.sh; /locked/hello.sh || echo exec-refused; \
          touch /locked/new 2>/dev/null || echo write-refused; touch /open/new && echo wrote",
    );
    let out = output_of(&b);
    let rows = parse_mountinfo(&out);
    let locked = mount_at(&rows, "/locked");
    for opt in ["ro", "nosuid", "nodev", "noexec"] {
        assert!(locked.has(opt), "/locked lacks {opt}: {locked:?}");
    }
    let open = mount_at(&rows, "/open");
    assert!(open.has("rw") && !open.has("noexec"), "{open:?}");
    let tail: Vec<&str> = out.lines().rev().take(4).collect();
    assert_eq!(
        tail,
        ["wrote", "write-refused", "exec-refused", "ran"],
        "{out}"
    );
    assert!(src.path().join("new").exists());
}

#[test]
fn rbind_carries_submounts_and_bind_does_not() {
    let src = host_tempdir("rbindsrc");
    fs::create_dir(src.path().join("sub")).unwrap();
    let sub = HostMount::tmpfs(&src.path().join("sub"));
    fs::write(sub.path().join("marker"), "in-submount\n").unwrap();
    let source = src.path().to_str().unwrap();
    let mut b = Bundle::new();
    b.mount(json!({ "destination": "/r", "type": "bind", "source": source, "options": ["rbind"] }));
    b.mount(json!({ "destination": "/n", "type": "bind", "source": source, "options": ["bind"] }));
    b.sh("cat /r/sub/marker; ls -A /n/sub; echo end");
    assert_eq!(output_of(&b), "in-submount\nend\n");
}
