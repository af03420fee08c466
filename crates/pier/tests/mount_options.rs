//! Issue 13: every mount option runc and crun accept, as they apply it: `tmpcopyup` (podman's
//! `--tmpfs`, `--read-only`), a tmpfs taking the mode of the directory it covers, `r<flag>`
//! recursive attributes, the flags beyond the basic ones (nosymfollow...), crun's
//! `copy-symlink`, read-only /dev and tmpfs applied as the last step (podman `--read-only
//! --read-only-tmpfs=false`), and `pier features` listing them. Proven from inside the
//! container (foreground run). Needs root. Run against runc with `PIER_BIN=/usr/sbin/runc`.

mod support;

use std::fs;
use std::os::unix::fs::{symlink, PermissionsExt};

use serde_json::json;
use support::{
    host_tempdir, mount_at, output_of, parse_mountinfo, unique_id, Bundle, HostMount, Runtime,
};

#[test]
fn tmpcopyup_copies_the_image_directory_into_the_tmpfs() {
    let mut b = Bundle::new();
    let dir = b.host("/data");
    fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    fs::write(dir.join("file"), "from the image\n").unwrap();
    fs::write(dir.join("sub/deeper/owned"), "x").unwrap();
    std::os::unix::fs::chown(dir.join("sub/deeper/owned"), Some(1000), Some(100)).unwrap();
    fs::set_permissions(dir.join("sub"), fs::Permissions::from_mode(0o777)).unwrap();
    fs::set_permissions(&dir, fs::Permissions::from_mode(0o750)).unwrap();
    symlink("../etc/passwd", dir.join("link")).unwrap();
    b.mount(
        json!({ "destination": "/data", "type": "tmpfs", "source": "tmpfs",
                    "options": ["tmpcopyup", "nosuid", "size=1m"] }),
    );
    b.sh(
        "grep ' /data ' /proc/self/mountinfo | cut -d' ' -f9; cat /data/file; \
          stat -c '%a %u:%g %n' /data /data/sub /data/sub/deeper/owned; readlink /data/link; \
          echo new > /data/file; echo written",
    );
    let out = output_of(&b);
    // runc before 1.1.10 applies its umask to copied directories (opencontainers/runc#3991):
    // 755 for /data/sub there.
    assert_eq!(
        out,
        "tmpfs\nfrom the image\n750 0:0 /data\n777 0:0 /data/sub\n\
         644 1000:100 /data/sub/deeper/owned\n../etc/passwd\nwritten\n",
    );
    // The image itself was not written.
    assert_eq!(
        fs::read_to_string(dir.join("file")).unwrap(),
        "from the image\n"
    );
}

#[test]
fn a_tmpfs_without_tmpcopyup_is_empty_but_keeps_the_covered_mode() {
    let mut b = Bundle::new();
    fs::create_dir(b.host("/t")).unwrap();
    fs::write(b.host("/t/file"), "hidden\n").unwrap();
    fs::set_permissions(b.host("/t"), fs::Permissions::from_mode(0o710)).unwrap();
    b.mount(
        json!({ "destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["size=1m"] }),
    );
    b.mount(json!({ "destination": "/fresh", "type": "tmpfs", "source": "tmpfs" }));
    b.sh("ls -A /t; stat -c '%a %n' /t /fresh");
    assert_eq!(output_of(&b), "710 /t\n1777 /fresh\n");
}

#[test]
fn read_only_dev_and_tmpfs_are_made_read_only_last() {
    // podman --read-only --read-only-tmpfs=false: /dev is an "ro" tmpfs, /dev/pts, /dev/shm
    // and the devices go on it afterwards; a read-only tmpfs still gets its copied-up files.
    let mut b = Bundle::new();
    b.config["root"]["readonly"] = json!(true);
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if m["destination"] == "/dev" {
            m["options"].as_array_mut().unwrap().push(json!("ro"));
        }
    }
    fs::create_dir(b.host("/etc/conf.d")).unwrap();
    fs::write(b.host("/etc/conf.d/a"), "kept\n").unwrap();
    b.mount(
        json!({ "destination": "/etc/conf.d", "type": "tmpfs", "source": "tmpfs",
                    "options": ["ro", "tmpcopyup"] }),
    );
    b.sh("cat /proc/self/mountinfo; cat /etc/conf.d/a; echo x > /dev/null && echo null-ok; \
          touch /dev/new 2>/dev/null || echo dev-ro; touch /etc/conf.d/b 2>/dev/null || echo conf-ro; \
          touch /new 2>/dev/null || echo root-ro");
    let out = output_of(&b);
    let rows = parse_mountinfo(&out);
    for point in ["/", "/dev", "/etc/conf.d"] {
        assert!(mount_at(&rows, point).has("ro"), "{point} not ro:\n{out}");
    }
    assert!(mount_at(&rows, "/dev/pts").has("rw"), "{out}");
    let tail: Vec<&str> = out.lines().rev().take(5).collect();
    assert_eq!(
        tail,
        ["root-ro", "conf-ro", "dev-ro", "null-ok", "kept"],
        "{out}"
    );
}

#[test]
fn recursive_options_reach_submounts_and_plain_ones_do_not() {
    let src = host_tempdir("recattr");
    fs::create_dir(src.path().join("sub")).unwrap();
    let _sub = HostMount::tmpfs(&src.path().join("sub"));
    let source = src.path().to_str().unwrap();
    let mut b = Bundle::new();
    b.mount(
        json!({ "destination": "/rec", "type": "bind", "source": source,
                    "options": ["rbind", "rro", "rnosuid", "rnoatime"] }),
    );
    b.mount(
        json!({ "destination": "/top", "type": "bind", "source": source,
                    "options": ["rbind", "ro"] }),
    );
    b.sh("cat /proc/self/mountinfo");
    let rows = parse_mountinfo(&output_of(&b));
    for point in ["/rec", "/rec/sub"] {
        let m = mount_at(&rows, point);
        assert!(m.has("ro") && m.has("nosuid") && m.has("noatime"), "{m:?}");
    }
    assert!(mount_at(&rows, "/top").has("ro"));
    assert!(mount_at(&rows, "/top/sub").has("rw"), "{rows:#?}");
}

#[test]
fn nosymfollow_and_other_flags_are_mount_flags_not_data() {
    let mut b = Bundle::new();
    b.mount(
        json!({ "destination": "/nf", "type": "tmpfs", "source": "tmpfs",
                    "options": ["nosymfollow", "lazytime", "silent", "loud", "noiversion",
                                "nolazytime", "lazytime", "size=1m"] }),
    );
    b.sh("grep ' /nf ' /proc/self/mountinfo; echo hi > /nf/f; ln -s f /nf/l; cat /nf/l 2>/dev/null || echo no-follow");
    let out = output_of(&b);
    let rows = parse_mountinfo(&out);
    assert!(mount_at(&rows, "/nf").has("nosymfollow"), "{out}");
    assert!(out.ends_with("no-follow\n"), "{out}");
}

#[test]
fn copy_symlink_recreates_a_symlinked_bind_source() {
    if support::runtime_bin().to_string_lossy().ends_with("runc") {
        return; // crun's option; runc passes it to mount(2) as data
    }
    let src = host_tempdir("copysym");
    let link = src.path().join("zoneinfo");
    symlink("/usr/share/zoneinfo/UTC", &link).unwrap();
    let mut b = Bundle::new();
    b.mount(
        json!({ "destination": "/etc/localtime", "type": "bind", "source": link.to_str().unwrap(),
                    "options": ["bind", "copy-symlink"] }),
    );
    b.sh("readlink /etc/localtime");
    assert_eq!(output_of(&b), "/usr/share/zoneinfo/UTC\n");
}

#[test]
fn idmap_is_refused_and_nothing_is_left() {
    if support::runtime_bin().to_string_lossy().ends_with("runc") {
        return;
    }
    let src = host_tempdir("idmap");
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.mount(
        json!({ "destination": "/m", "type": "bind", "source": src.path().to_str().unwrap(),
                    "options": ["bind", "idmap"] }),
    );
    let id = unique_id("idmap");
    let out = rt.run(&["run", "--bundle", b.save(), &id]);
    out.code_is(1);
    assert!(out.stderr.contains("idmap"), "{out}");
    rt.assert_clean(&b, &id);
}

#[test]
fn features_lists_every_mount_option_runc_lists() {
    let Ok(runc) = std::process::Command::new("runc").arg("features").output() else {
        return; // no runc to compare with
    };
    let theirs: serde_json::Value = serde_json::from_slice(&runc.stdout).unwrap();
    let ours = support::run_bare(&["features"]);
    ours.ok();
    let ours: serde_json::Value = serde_json::from_str(&ours.stdout).unwrap();
    let list = ours["mountOptions"].as_array().unwrap();
    for opt in theirs["mountOptions"].as_array().unwrap() {
        assert!(list.contains(opt), "pier features lacks {opt}");
    }
}
