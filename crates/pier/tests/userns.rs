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
    if std::env::var_os("PIER_BIN").is_some() {
        return; // runc 1.1 has no idmapped mounts
    }
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
    if std::env::var_os("PIER_BIN").is_some() {
        return; // runc 1.1 has no idmapped mounts
    }
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

/// A process holding a user namespace that maps only root (`unshare --map-root-user`); it is
/// killed when dropped. `ready` on its stdout says the maps are written.
struct UsernsHolder(std::process::Child);

impl UsernsHolder {
    fn new() -> Self {
        use std::io::BufRead;
        let mut child = std::process::Command::new("unshare")
            .args([
                "--user",
                "--map-root-user",
                "sh",
                "-c",
                "echo ready; exec sleep 1000",
            ])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .expect("unshare");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        UsernsHolder(child)
    }

    fn ns_path(&self) -> String {
        format!("/proc/{}/ns/user", self.0.id())
    }
}

impl Drop for UsernsHolder {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A bundle joining `path` (a user namespace) with the default namespaces, the given maps,
/// and no `gid=` mount options (the holder maps only root).
fn joining(path: &str, uid_host: u32, gid_host: u32) -> Bundle {
    let mut b = Bundle::new();
    b.config["linux"]["namespaces"]
        .as_array_mut()
        .unwrap()
        .push(json!({"type": "user", "path": path}));
    b.config["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": uid_host, "size": 1}]);
    b.config["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": gid_host, "size": 1}]);
    for m in b.config["mounts"].as_array_mut().unwrap() {
        if let Some(options) = m["options"].as_array_mut() {
            options.retain(|o| !o.as_str().is_some_and(|o| o.starts_with("gid=")));
        }
    }
    b
}

/// Mappings given beside a user namespace path must be that namespace's (runc 1.2: "you may
/// only provide one"); read through /proc/<pid>/uid_map, or by joining the namespace when the
/// path has another form. runc 1.1 does not compare them.
#[test]
fn mappings_beside_a_joined_user_namespace_must_be_its_own() {
    if std::env::var_os("PIER_BIN").is_some() {
        return; // runc 1.1 ignores the mappings given with a path
    }
    let holder = UsernsHolder::new();
    let pid = holder.0.id();
    refused(
        &joining(&holder.ns_path(), 1000, 0),
        "both namespace path and non-matching mapping specified",
    );
    refused(
        &joining(&format!("/proc/{pid}/task/{pid}/ns/user"), 0, 1000),
        "both namespace path and non-matching mapping specified",
    );
    let mut b = joining(&format!("/proc/{pid}/task/{pid}/ns/user"), 0, 0);
    b.sh("cat /proc/self/gid_map");
    assert_eq!(
        output_of(&b).split_whitespace().collect::<Vec<_>>(),
        ["0", "0", "1"]
    );
}

/// A user namespace joined by path while the container gets new mount, pid, ipc, uts and
/// network namespaces: those must be owned by the joined one (the container's root mounts
/// proc, tmpfs, devpts in them), as runc's nsexec arranges.
#[test]
fn a_joined_user_namespace_owns_the_new_namespaces() {
    let holder = UsernsHolder::new();
    // The joined namespace's own maps (runc 1.1 requires them; pier checks they match).
    let mut b = joining(&holder.ns_path(), 0, 0);
    b.sh(
        "cat /proc/self/uid_map; readlink /proc/self/ns/user; echo $$; \
          grep -c ' / /proc .* - proc ' /proc/self/mountinfo; ls /dev/pts/ptmx",
    );
    let out: Vec<String> = output_of(&b)
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect();
    let joined = std::fs::read_link(holder.ns_path()).unwrap();
    assert_eq!(
        out,
        [
            "0 0 1".to_string(),
            joined.to_string_lossy().into_owned(),
            "1".into(),
            "1".into(),
            "/dev/pts/ptmx".into(),
        ]
    );
}
