//! Issue 12, part 1: user namespaces as root. A new user namespace with one or many id
//! ranges, seen from inside (/proc/self/uid_map, `id`, file owners); /dev nodes bound from the
//! host; sysfs of its own only with a network namespace; exec joins it; bad mappings refused
//! with nothing left behind. Runs against runc too (`PIER_BIN=/usr/sbin/runc`). Needs root.

mod support;

use std::os::unix::fs::chown;

use serde_json::{json, Value};
use support::{output_of, unique_id, Bundle, Runtime};

/// A bundle with a new user namespace mapping `uids` and `gids` (containerID, hostID, size).
fn mapped(uids: &[(u32, u32, u32)], gids: &[(u32, u32, u32)]) -> Bundle {
    let mut b = Bundle::new();
    let ranges = |list: &[(u32, u32, u32)]| -> Value {
        list.iter()
            .map(|(c, h, s)| json!({"containerID": c, "hostID": h, "size": s}))
            .collect()
    };
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user"}));
    b.config["linux"]["uidMappings"] = ranges(uids);
    b.config["linux"]["gidMappings"] = ranges(gids);
    b
}

const ONE: [(u32, u32, u32); 1] = [(0, 100000, 65536)];

#[test]
fn the_container_sees_its_maps_and_mapped_owners() {
    let mut b = mapped(&ONE, &ONE);
    let owned = b.host("/owned");
    std::fs::write(&owned, "x").unwrap();
    chown(&owned, Some(101000), Some(101001)).unwrap();
    b.sh("cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g; \
          stat -c '%u %g' /owned /bin/busybox");
    let out: Vec<String> = output_of(&b)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        out,
        [
            "0 100000 65536",
            "0 100000 65536",
            "0",
            "0",
            "1000 1001",
            "65534 65534"
        ],
        "host root's files are unmapped (nobody) inside"
    );
}

#[test]
fn many_ranges_and_a_non_root_user() {
    let ranges = [
        (0, 100000, 1000),
        (1000, 200000, 1000),
        (2000, 300000, 64536),
    ];
    let mut b = mapped(&ranges, &ranges);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000, "additionalGids": [2500]});
    let owned = b.host("/owned");
    std::fs::write(&owned, "x").unwrap();
    chown(&owned, Some(200000), Some(300500)).unwrap();
    b.sh("cat /proc/self/uid_map; id -u; id -G; stat -c '%u %g' /owned");
    let out: Vec<String> = output_of(&b)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(
        out,
        [
            "0 100000 1000",
            "1000 200000 1000",
            "2000 300000 64536",
            "1000",
            "1000 2500",
            "1000 2500"
        ]
    );
}

#[test]
fn device_nodes_are_the_hosts_bound_in() {
    let mut b = mapped(&ONE, &ONE);
    b.sh(
        "stat -c '%n %F %t:%T' /dev/null /dev/zero /dev/tty; echo x > /dev/null && echo ok; \
          head -c 3 /dev/zero | wc -c; grep -c ' /dev/null ' /proc/self/mountinfo",
    );
    let out: Vec<String> = output_of(&b).lines().map(|l| l.trim().to_owned()).collect();
    assert_eq!(
        out,
        [
            "/dev/null character special file 1:3",
            "/dev/zero character special file 1:5",
            "/dev/tty character special file 5:0",
            "ok",
            "3",
            "1"
        ]
    );
}

#[test]
fn sysfs_is_its_own_only_with_a_network_namespace() {
    let mut b = mapped(&ONE, &ONE);
    b.sh("ls /sys/class/net");
    assert_eq!(output_of(&b).trim(), "lo", "own netns: its own sysfs");
    if std::env::var_os("PIER_BIN").is_some() {
        return; // runc fails the sysfs mount (EPERM); pier binds the host's, as runc's rootless spec does
    }
    let mut b = mapped(&ONE, &ONE);
    b.namespaces(&["pid", "mount", "ipc", "uts", "user"]);
    b.sh("ls /sys/class/net | sort; awk '$5 == \"/sys\" {print $6}' /proc/self/mountinfo | grep -c '^ro,'");
    let mut host: Vec<String> = std::fs::read_dir("/sys/class/net")
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    host.sort();
    host.push("1".into());
    let out: Vec<String> = output_of(&b).lines().map(str::to_owned).collect();
    assert_eq!(out, host, "host netns: the host's /sys, bound read-only");
}

#[test]
fn exec_joins_the_user_namespace() {
    let rt = Runtime::new();
    let mut b = mapped(&ONE, &ONE);
    b.sh("sleep 1000");
    let id = unique_id("uexec");
    rt.create(&b, &id);
    rt.start(&id);
    let out = rt.run(&["exec", &id, "sh", "-c", "cat /proc/self/uid_map; id -u"]);
    out.ok();
    let lines: Vec<String> = out
        .stdout
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    assert_eq!(lines, ["0 100000 65536", "0"]);
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}

/// `run` fails with exit 1, `needle` on stderr, and nothing left.
#[track_caller]
fn refused(b: &Bundle, needle: &str) {
    let rt = Runtime::new();
    let id = unique_id("ubad");
    let out = rt.run(&["run", "--bundle", b.save(), &id]);
    out.code_is(1);
    assert!(
        out.stderr.contains(needle),
        "stderr lacks {needle:?}:\n{out}"
    );
    rt.assert_clean(b, &id);
}

#[test]
fn bad_mappings_are_refused_cleanly() {
    let mut b = Bundle::new();
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    if std::env::var_os("PIER_BIN").is_some() {
        return; // runc 1.1 ignores mappings without a user namespace, leaves bad ranges to the kernel
    }
    refused(&b, "user namespace isn't enabled");
    refused(
        &mapped(&[(0, 100000, 10), (5, 200000, 10)], &ONE),
        "overlap",
    );
    refused(&mapped(&[(0, 100000, 0)], &ONE), "size 0");
    refused(&mapped(&ONE, &[(1, 100000, 10)]), "gid 0");
}

#[test]
fn a_namespace_path_that_is_not_a_user_namespace_is_refused() {
    let mut b = mapped(&ONE, &ONE);
    let last = b.config["linux"]["namespaces"].as_array().unwrap().len() - 1;
    b.config["linux"]["namespaces"][last]["path"] = json!("/proc/self/ns/net");
    let pier = std::env::var_os("PIER_BIN").is_none();
    refused(
        &b,
        if pier {
            "not a user namespace"
        } else {
            "Invalid argument"
        },
    );
}

/// A host directory with `a` owned by 0:0 and `b` by 1000:1000 on disk.
fn volume() -> tempfile::TempDir {
    let dir = support::host_tempdir("idmap");
    std::fs::set_permissions(
        dir.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    for (name, id) in [("a", 0), ("b", 1000)] {
        let path = dir.path().join(name);
        std::fs::write(&path, name).unwrap();
        chown(&path, Some(id), Some(id)).unwrap();
    }
    dir
}

fn bind(dir: &tempfile::TempDir, dest: &str, options: &[&str]) -> Value {
    json!({"destination": dest, "type": "bind", "source": dir.path(), "options": options})
}

#[test]
fn idmapped_mounts_show_the_disk_owners_through_the_containers_maps() {
    let vol = volume();
    let mut b = mapped(&ONE, &ONE);
    for d in ["plain", "idmapped", "ridmapped"] {
        std::fs::create_dir(b.host(d)).unwrap(); // the mapped root may not create them
    }
    b.mount(bind(&vol, "/plain", &["bind"]));
    b.mount(bind(&vol, "/idmapped", &["bind", "idmap"]));
    b.mount(bind(&vol, "/ridmapped", &["rbind", "ridmap"]));
    b.sh(
        "for d in plain idmapped ridmapped; do echo $d $(stat -c '%u:%g' /$d/a /$d/b); done; \
          echo new > /idmapped/c && stat -c '%u:%g' /idmapped/c",
    );
    let out: Vec<String> = output_of(&b).lines().map(str::to_owned).collect();
    assert_eq!(
        out,
        [
            "plain 65534:65534 65534:65534",
            "idmapped 0:0 1000:1000",
            "ridmapped 0:0 1000:1000",
            "0:0"
        ]
    );
    let made = std::fs::metadata(vol.path().join("c")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!(
        (made.uid(), made.gid()),
        (0, 0),
        "written through the map: on disk as 0"
    );
}

#[test]
fn a_mounts_own_mappings_apply_without_a_user_namespace() {
    let vol = volume();
    let mut b = Bundle::new();
    let mut m = bind(&vol, "/v", &["bind"]);
    m["uidMappings"] = json!([{"containerID": 0, "hostID": 1234, "size": 1}]);
    m["gidMappings"] = json!([{"containerID": 0, "hostID": 4321, "size": 1}]);
    b.mount(m);
    b.sh("stat -c '%u:%g' /v/a /v/b");
    let out: Vec<String> = output_of(&b).lines().map(str::to_owned).collect();
    assert_eq!(
        out,
        ["1234:4321", "65534:65534"],
        "only disk id 0 is mapped"
    );
}

#[test]
fn bad_idmapped_mounts_are_refused_cleanly() {
    if std::env::var_os("PIER_BIN").is_some() {
        return; // runc 1.1 has no idmapped mounts
    }
    let vol = volume();
    let mut b = Bundle::new();
    b.mount(bind(&vol, "/v", &["bind", "idmap"]));
    refused(&b, "needs the container's linux.uidMappings");
    let mut b = Bundle::new();
    b.mount(json!({"destination": "/t", "type": "tmpfs", "source": "tmpfs", "options": ["idmap"]}));
    refused(&b, "only supported for bind mounts");
    let mut b = Bundle::new();
    let mut m = bind(&vol, "/v", &["bind"]);
    m["uidMappings"] = json!([{"containerID": 0, "hostID": 1234, "size": 1}]);
    b.mount(m);
    refused(&b, "needs both uidMappings and gidMappings");
}
