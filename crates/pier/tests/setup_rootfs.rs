//! Issue 2, point 2, the rootfs half: default devices and /dev symlinks, linux.devices,
//! pivot_root and --no-pivot, root.readonly, rootfsPropagation, maskedPaths, readonlyPaths,
//! sysctl, and mount destinations resolved inside the rootfs even through symlinks in the
//! image. Each is proven from inside the container (foreground run, no terminal). Needs root.

mod support;

use std::fs;
use std::os::unix::fs::symlink;

use serde_json::json;
use support::{host_tempdir, mount_at, output_of, output_with, parse_mountinfo, unique_id, Bundle};

#[test]
fn default_devices_are_the_right_character_devices() {
    let mut b = Bundle::new();
    b.sh(
        "stat -c '%n %F %t:%T %a' /dev/null /dev/zero /dev/full /dev/random /dev/urandom /dev/tty",
    );
    let want = [
        "/dev/null character special file 1:3 666",
        "/dev/zero character special file 1:5 666",
        "/dev/full character special file 1:7 666",
        "/dev/random character special file 1:8 666",
        "/dev/urandom character special file 1:9 666",
        "/dev/tty character special file 5:0 666",
    ];
    assert_eq!(output_of(&b).lines().collect::<Vec<_>>(), want);
}

#[test]
fn default_devices_work() {
    let mut b = Bundle::new();
    b.sh(
        "echo x > /dev/null && echo null-ok; head -c 5 /dev/zero | wc -c; \
          head -c 5 /dev/urandom | wc -c; echo x 2>/dev/null > /dev/full || echo full-refused",
    );
    let out: Vec<String> = output_of(&b).lines().map(|l| l.trim().to_owned()).collect();
    assert_eq!(out, ["null-ok", "5", "5", "full-refused"]);
}

#[test]
fn dev_symlinks_point_where_runc_points_them() {
    let mut b = Bundle::new();
    b.sh("for l in fd stdin stdout stderr ptmx; do echo \"$l $(readlink /dev/$l)\"; done");
    let want = [
        "fd /proc/self/fd",
        "stdin /proc/self/fd/0",
        "stdout /proc/self/fd/1",
        "stderr /proc/self/fd/2",
        "ptmx pts/ptmx",
    ];
    assert_eq!(output_of(&b).lines().collect::<Vec<_>>(), want);
}

#[test]
fn linux_devices_are_created_with_type_numbers_mode_and_owner() {
    let mut b = Bundle::new();
    b.config["linux"]["devices"] = json!([
        { "path": "/dev/fuse", "type": "c", "major": 10, "minor": 229,
          "fileMode": 0o640, "uid": 1000, "gid": 100 },
        { "path": "/dev/loop-itest", "type": "b", "major": 7, "minor": 0 }
    ]);
    b.sh("stat -c '%n %F %t:%T %a %u %g' /dev/fuse; stat -c '%n %F %t:%T' /dev/loop-itest");
    let want = [
        "/dev/fuse character special file a:e5 640 1000 100",
        "/dev/loop-itest block special file 7:0",
    ];
    assert_eq!(output_of(&b).lines().collect::<Vec<_>>(), want);
}

/// What `ls -A /` and `ls -A /..` print, and the container's `/` mountinfo row, in a bundle
/// whose rootfs holds a marker file.
fn root_view(flags: &[&str]) -> (Vec<String>, support::MountRow) {
    let mut b = Bundle::new();
    fs::write(b.host("/marker"), "").unwrap();
    b.sh("ls -A /; echo --; ls -A /..; echo --; cat /proc/self/mountinfo");
    let out = output_with(flags, &b);
    let parts: Vec<&str> = out.split("--\n").collect();
    assert_eq!(parts[0], parts[1], "/.. differs from /");
    let root = mount_at(&parse_mountinfo(parts[2]), "/").clone();
    let root_dir = b.rootfs();
    let bundle_tail = root_dir.strip_prefix(root_dir.parent().unwrap().parent().unwrap());
    assert!(
        root.root.ends_with(bundle_tail.unwrap().to_str().unwrap()),
        "/ is not the bundle's rootfs: {root:?}"
    );
    (parts[0].lines().map(str::to_owned).collect(), root)
}

#[test]
fn pivot_root_confines_the_process_to_the_rootfs() {
    let (entries, _) = root_view(&[]);
    for want in ["bin", "etc", "marker", "proc", "dev", "sys"] {
        assert!(
            entries.iter().any(|e| e == want),
            "{want} missing: {entries:?}"
        );
    }
    assert!(
        !entries.iter().any(|e| e == "config.json" || e == "rootfs"),
        "{entries:?}"
    );
}

#[test]
fn no_pivot_confines_the_process_to_the_rootfs_too() {
    let (entries, _) = root_view(&["--no-pivot"]);
    assert!(entries.iter().any(|e| e == "marker"), "{entries:?}");
    assert!(
        !entries.iter().any(|e| e == "config.json" || e == "rootfs"),
        "{entries:?}"
    );
}

#[test]
fn root_readonly_makes_only_the_rootfs_read_only() {
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(true);
    b.sh(
        "cat /proc/self/mountinfo; echo --; touch /x 2>&1 || echo rootfs-refused; \
          touch /dev/shm/x && echo shm-ok; touch /tmp/x 2>/dev/null || echo tmp-refused",
    );
    let out = output_of(&b);
    let (mountinfo, tail) = out.split_once("--\n").unwrap();
    assert!(
        mount_at(&parse_mountinfo(mountinfo), "/").has("ro"),
        "{out}"
    );
    let tail: Vec<&str> = tail.lines().collect();
    assert!(tail[0].contains("Read-only file system"), "{out}");
    assert_eq!(
        tail[1..],
        ["rootfs-refused", "shm-ok", "tmp-refused"],
        "{out}"
    );
    assert!(!b.host("/x").exists());
}

fn root_row_with_propagation(prop: &str) -> support::MountRow {
    let mut b = Bundle::new();
    b.config["linux"]["rootfsPropagation"] = json!(prop);
    b.sh("cat /proc/self/mountinfo");
    mount_at(&parse_mountinfo(&output_of(&b)), "/").clone()
}

#[test]
fn rootfs_propagation_shared_makes_the_container_root_shared() {
    // runtime-spec: rootfsPropagation "sets the rootfs's mount propagation". runc 1.1
    // leaves the container's / private (runc issue #1755, fixed by runc PR #4724).
    let row = root_row_with_propagation("shared");
    assert!(row.optional.contains("shared:"), "{row:?}");
}

#[test]
fn rootfs_propagation_private_keeps_the_container_root_private() {
    let row = root_row_with_propagation("private");
    assert_eq!(row.optional, "", "{row:?}");
}

#[test]
fn masked_paths_hide_files_and_directories() {
    let mut b = Bundle::new();
    fs::write(b.host("/etc/secret"), "secret\n").unwrap();
    fs::create_dir(b.host("/secretdir")).unwrap();
    fs::write(b.host("/secretdir/inside"), "x").unwrap();
    b.config["linux"]["maskedPaths"] = json!([
        "/etc/secret",
        "/secretdir",
        "/proc/timer_list",
        "/no/such/path"
    ]);
    b.sh("cat /etc/secret; ls -A /secretdir; wc -c < /proc/timer_list; echo end");
    assert_eq!(output_of(&b).replace(' ', ""), "0\nend\n");
    assert_eq!(
        fs::read_to_string(b.host("/etc/secret")).unwrap(),
        "secret\n"
    );
}

#[test]
fn readonly_paths_are_read_only() {
    let mut b = Bundle::new();
    b.config["linux"]["readonlyPaths"] = json!(["/etc", "/proc/sys", "/no/such/path"]);
    b.sh("grep -E ' /etc | /proc/sys ' /proc/self/mountinfo; \
          touch /etc/x 2>/dev/null || echo etc-refused; touch /tmp/x && echo tmp-ok; \
          cat /etc/passwd > /dev/null && echo etc-readable");
    let out = output_of(&b);
    let rows = parse_mountinfo(&out);
    assert!(mount_at(&rows, "/etc").has("ro"), "{out}");
    assert!(mount_at(&rows, "/proc/sys").has("ro"), "{out}");
    let tail: Vec<&str> = out.lines().rev().take(3).collect();
    assert_eq!(tail, ["etc-readable", "tmp-ok", "etc-refused"], "{out}");
}

#[test]
fn sysctl_values_are_applied_in_the_container_namespaces() {
    let mut b = Bundle::new();
    b.config["linux"]["sysctl"] = json!({ "net.ipv4.ip_forward": "1", "kernel.msgmax": "4096" });
    b.sh("cat /proc/sys/net/ipv4/ip_forward; sysctl -n kernel.msgmax");
    assert_eq!(output_of(&b), "1\n4096\n");
}

/// A host dir holding `marker` (the bind source) and the bundle to mount it in.
fn bind_source() -> tempfile::TempDir {
    let src = host_tempdir("escsrc");
    fs::write(src.path().join("marker"), "from-bind-source\n").unwrap();
    src
}

#[test]
fn an_absolute_symlink_in_the_image_never_leads_a_mount_outside() {
    let outside = [host_tempdir("outside"), host_tempdir("outside")];
    let [o1, o2] = [0, 1].map(|i| outside[i].path().to_str().unwrap().to_owned());
    let src = bind_source();
    let mut b = Bundle::new();
    symlink(&o1, b.host("/mnt")).unwrap();
    symlink(&o2, b.host("/mnt2")).unwrap();
    let source = src.path().to_str().unwrap();
    b.mount(
        json!({ "destination": "/mnt/escape", "type": "bind", "source": source,
                    "options": ["rbind"] }),
    );
    b.mount(json!({ "destination": "/mnt2", "type": "tmpfs", "source": "tmpfs" }));
    b.sh(&format!(
        "cat /mnt/escape/marker {o1}/escape/marker; grep -c ' {o2} .* tmpfs ' /proc/self/mountinfo"
    ));
    // Each destination resolves to <rootfs>/<host dir>, in the container's own tree.
    assert_eq!(output_of(&b), "from-bind-source\nfrom-bind-source\n1\n");
    assert!(b.host(&format!("{o1}/escape")).is_dir());
    assert!(b.host(&o2).is_dir());
    for dir in [&o1, &o2] {
        let left: Vec<_> = fs::read_dir(dir).unwrap().collect();
        assert!(
            left.is_empty(),
            "the runtime wrote into the host's {dir}: {left:?}"
        );
        assert!(support::leftovers::mountinfo_lines_mentioning(dir).is_empty());
    }
}

#[test]
fn a_relative_symlink_climbing_out_of_the_image_stays_inside() {
    let src = bind_source();
    let probe = unique_id("pier-itest-escape");
    let host_probe = std::path::Path::new("/").join(&probe);
    let mut b = Bundle::new();
    symlink("../../..", b.host("/up")).unwrap();
    b.mount(
        json!({ "destination": format!("/up/{probe}"), "type": "bind",
                    "source": src.path().to_str().unwrap(), "options": ["rbind"] }),
    );
    b.sh(&format!("cat /{probe}/marker /up/{probe}/marker"));
    let out = output_of(&b);
    let escaped = host_probe.exists();
    let _ = fs::remove_dir(&host_probe);
    assert!(
        !escaped,
        "the runtime created {} on the host",
        host_probe.display()
    );
    assert_eq!(out, "from-bind-source\nfrom-bind-source\n");
    assert!(b.host(&probe).is_dir());
}
