//! Privileged integration tests of cgroups and resources: each limit holds for a real
//! busybox container run by the pier binary, and the cgroup commands (ps, pause, resume,
//! events, update, delete) act on the real cgroup files. Run as root:
//! `cargo test -p pier --test cgroups`. Works on v1, hybrid and pure v2 hosts; every test
//! uses its own `--root` and container id, so they run in parallel.

mod commands;
mod harness;
#[path = "../support/mod.rs"]
mod support;
mod systemd_scope;

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

use harness::{read_limit, resources, unique, Bundle, CgroupRun, Runtime};
use serde_json::{json, Value};

const MIB: i64 = 1 << 20;

#[test]
fn a_process_past_the_memory_limit_is_oom_killed() {
    require_controllers!("memory");
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(&["sh", "-c", "tail /dev/zero; echo status=$?"], |c| {
        resources(c, "memory", json!({"limit": 32 * MIB, "swap": 32 * MIB}));
    });
    let (code, out) = pier.run_container("oom", &bundle);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("status=137"),
        "tail was not SIGKILLed by the OOM killer: {out}"
    );
}

#[test]
fn a_fork_past_the_pids_limit_fails() {
    require_controllers!("pids");
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8; do sleep 30 & done; echo survived",
        ],
        |c| {
            resources(c, "pids", json!({"limit": 4}));
        },
    );
    let (code, out) = pier.run_container("pids", &bundle);
    assert_ne!(code, 0, "{out}");
    assert!(
        out.contains("can't fork") && !out.contains("survived"),
        "{out}"
    );
}

/// A device node the test makes in the rootfs (c 1:11, /dev/kmsg, which a write-only open
/// lets anyone use) is not in the allow list: the spec's "deny all" holds while /dev/null (a
/// default device) opens; with a rule allowing c 1:11 w it opens. The devices come from the
/// v1 controller or, on cgroup v2, pier's eBPF program.
#[test]
fn a_denied_device_cannot_be_opened() {
    let script = "if true > /testdev; then echo opened; else echo denied; fi; head -c 0 /dev/null && echo null-ok";
    let pier = Runtime::new();
    let with_node = |edit: &dyn Fn(&mut Value)| {
        let bundle = Bundle::cgrouped(&["sh", "-c", script], |c| edit(c));
        let node = bundle.host("/testdev");
        let kind = rustix::fs::FileType::CharacterDevice;
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &node,
            kind,
            rustix::fs::Mode::from_raw_mode(0o666),
            rustix::fs::makedev(1, 11),
        )
        .unwrap();
        bundle
    };
    let (_, out) = pier.run_container("dev-deny", &with_node(&|_| {}));
    assert!(
        out.contains("denied")
            && out.contains("Operation not permitted")
            && out.contains("null-ok"),
        "{out}"
    );
    let allowed = with_node(&|c| {
        let rule = json!({"allow": true, "type": "c", "major": 1, "minor": 11, "access": "w"});
        c["linux"]["resources"]["devices"]
            .as_array_mut()
            .unwrap()
            .push(rule);
    });
    let (_, out) = pier.run_container("dev-allow", &allowed);
    assert!(out.contains("opened"), "{out}");
}

/// The cgroup v2 device filter (the eBPF program pier generates), on the host's cgroup2
/// hierarchy: a shell that moves itself into the filtered cgroup can open /dev/null but not
/// /dev/zero.
#[test]
fn the_ebpf_device_filter_enforces_the_rules() {
    let mounts = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v2 = mounts
        .lines()
        .find(|l| l.contains(" - cgroup2 "))
        .map(|l| l.split(' ').nth(4).unwrap().to_string());
    let v2 = v2.expect("a cgroup2 mount");
    let dir = Path::new(&v2).join(unique("bpf"));
    std::fs::create_dir(&dir).unwrap();
    let rules: Vec<oci_spec::runtime::LinuxDeviceCgroup> =
        serde_json::from_value(json!([{"allow": false, "access": "rwm"}, {"allow": true, "type": "c", "major": 1, "minor": 3, "access": "rw"}])).unwrap();
    let rules = pier::cgroups::devices::rules(&rules, &[]).unwrap();
    pier::cgroups::attach_device_filter(&dir, &rules).unwrap();
    let script = format!(
        "echo $$ > {}/cgroup.procs && head -c 0 /dev/null && echo null-ok; head -c 0 /dev/zero 2>&1 && echo zero-ok",
        dir.display()
    );
    let out = Command::new("/bin/sh")
        .args(["-c", &script])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    std::fs::remove_dir(&dir).unwrap();
    assert!(
        text.contains("null-ok")
            && !text.contains("zero-ok")
            && text.contains("Operation not permitted"),
        "{text}"
    );
}

#[test]
fn cpu_limits_reach_the_cgroup_files() {
    require_controllers!("cpu", "cpuset");
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        resources(
            c,
            "cpu",
            json!({"shares": 512, "quota": 25000, "period": 100000, "cpus": "0"}),
        );
    });
    let id = pier.start_new("cpu", &bundle);
    let dirs = pier.cgroup_dirs(&id);
    match read_limit(&dirs, &["cpu.cfs_quota_us", "cpu.max"]) {
        (f, v) if f == "cpu.max" => assert_eq!(v, "25000 100000"),
        (_, v) => {
            assert_eq!(v, "25000");
            assert_eq!(read_limit(&dirs, &["cpu.cfs_period_us"]).1, "100000");
            assert_eq!(read_limit(&dirs, &["cpu.shares"]).1, "512");
        }
    }
    assert_eq!(read_limit(&dirs, &["cpuset.cpus"]).1, "0");
}

/// Hugepage limits go wherever the hugetlb controller is: v1, or (this hybrid host) cgroup2.
#[test]
fn hugepage_limits_reach_the_hugetlb_controller() {
    require_controllers!("hugetlb");
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        resources(
            c,
            "hugepageLimits",
            json!([{"pageSize": "2MB", "limit": 4 * MIB}]),
        );
    });
    let id = pier.start_new("huge", &bundle);
    let dirs = pier.cgroup_dirs(&id);
    let (file, value) = read_limit(&dirs, &["hugetlb.2MB.limit_in_bytes", "hugetlb.2MB.max"]);
    assert_eq!(value, (4 * MIB).to_string());
    // The reservation limit too, on kernels that have it (5.7+), as runc.
    let rsvd = file.replace("2MB.", "2MB.rsvd.");
    if dirs.iter().any(|d| d.join(&rsvd).exists()) {
        assert_eq!(read_limit(&dirs, &[&rsvd]).1, (4 * MIB).to_string());
    }
}

#[test]
fn events_stats_has_runcs_shape() {
    require_controllers!("pids", "memory", "cpu");
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        resources(c, "pids", json!({"limit": 50}))
    });
    let id = pier.start_new("stats", &bundle);
    let out = pier.ok(&["events", "--stats", &id]);
    assert_eq!(out.lines().count(), 1, "{out}");
    let event: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (event["type"].as_str(), event["id"].as_str()),
        (Some("stats"), Some(id.as_str()))
    );
    let data = &event["data"];
    for key in ["cpu", "memory", "pids", "blkio", "hugetlb"] {
        assert!(data.get(key).is_some(), "no {key} in {data}");
    }
    assert_eq!(data["pids"]["current"], 1);
    assert_eq!(data["pids"]["limit"], 50);
    assert!(
        data["memory"]["usage"]["usage"].as_u64().unwrap() > 0,
        "{data}"
    );
    assert!(
        data["cpu"]["usage"]["total"].as_u64().unwrap() > 0,
        "{data}"
    );
}

/// The stream: a stats line every interval, an `oom` line when the kernel OOM-kills inside,
/// and the end of the stream when the init exits. The init waits on a fifo so the OOM
/// happens only after `events` is watching (its first stats line says so).
#[test]
fn events_stream_reports_an_oom_kill_and_ends_with_the_container() {
    require_controllers!("memory");
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(&["sh", "-c", "read x < /trigger; tail /dev/zero"], |c| {
        resources(c, "memory", json!({"limit": 32 * MIB, "swap": 32 * MIB}));
    });
    rustix::fs::mkfifoat(
        rustix::fs::CWD,
        bundle.host("/trigger"),
        rustix::fs::Mode::from_raw_mode(0o600),
    )
    .unwrap();
    let id = pier.start_new("oom-events", &bundle);
    let mut events = pier
        .command(&["events", "--interval", "50ms", &id])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(events.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["type"], "stats");
    std::fs::OpenOptions::new()
        .write(true)
        .open(bundle.host("/trigger"))
        .unwrap()
        .write_all(b"go\n")
        .unwrap();
    let rest: Vec<Value> = lines
        .map(|l| serde_json::from_str(&l.unwrap()).unwrap())
        .collect();
    assert!(events.wait().unwrap().success());
    assert!(
        rest.contains(&json!({"type": "oom", "id": id})),
        "no oom event in {rest:?}"
    );
}

#[test]
fn update_changes_the_limit_files() {
    require_controllers!("memory", "pids", "cpu", "cpuset");
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        resources(c, "memory", json!({"limit": 32 * MIB, "swap": 32 * MIB}));
        resources(c, "pids", json!({"limit": 10}));
    });
    let id = pier.start_new("update", &bundle);
    let dirs = pier.cgroup_dirs(&id);
    pier.ok(&[
        "update",
        "--memory",
        "64m",
        "--cpu-quota",
        "20000",
        "--cpu-period",
        "100000",
        &id,
    ]);
    assert_eq!(
        read_limit(&dirs, &["memory.limit_in_bytes", "memory.max"]).1,
        (64 * MIB).to_string()
    );
    let (file, quota) = read_limit(&dirs, &["cpu.cfs_quota_us", "cpu.max"]);
    assert_eq!(
        quota,
        if file == "cpu.max" {
            "20000 100000"
        } else {
            "20000"
        }
    );
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), r#"{"pids": {"limit": 7}}"#).unwrap();
    pier.ok(&["update", "-r", file.path().to_str().unwrap(), &id]);
    assert_eq!(read_limit(&dirs, &["pids.max"]).1, "7");
    let mut stdin = pier
        .command(&["update", "-r", "-", &id])
        .stdin(Stdio::piped())
        .spawn()
        .unwrap();
    stdin
        .stdin
        .take()
        .unwrap()
        .write_all(br#"{"pids": {"limit": -1}}"#)
        .unwrap();
    assert!(stdin.wait().unwrap().success());
    assert_eq!(read_limit(&dirs, &["pids.max"]).1, "max");
    let bad = pier.run(&["update", "--cpuset-cpus", "999", &id]);
    assert!(!bad.status.success());
    assert!(bad.stderr.contains("cpuset.cpus"), "{bad}");
}

/// Docker's create sends `blockIO.weight: 0` and `docker update` sends zeros for what it
/// does not change: runc treats 0 as unset, field by field, so create works on a kernel
/// without blkio weights and the update only changes what it names.
#[test]
fn zero_resources_are_unset_at_create_and_update() {
    require_controllers!("memory", "cpu");
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        resources(
            c,
            "memory",
            json!({"limit": 64 * MIB, "reservation": 0, "swap": 0}),
        );
        resources(c, "cpu", json!({"shares": 0, "quota": 30000, "period": 0}));
        resources(c, "blockIO", json!({"weight": 0}));
    });
    let id = pier.start_new("zeros", &bundle);
    let dirs = pier.cgroup_dirs(&id);
    let quota = |dirs: &[std::path::PathBuf]| read_limit(dirs, &["cpu.cfs_quota_us", "cpu.max"]).1;
    let before = quota(&dirs);
    assert!(before.starts_with("30000"), "{before}");
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(
        file.path(),
        r#"{"memory": {"limit": 128000000, "reservation": 0, "swap": 0},
            "cpu": {"shares": 0, "quota": 0, "period": 0, "cpus": "", "mems": ""},
            "blockIO": {"weight": 0}, "pids": {"limit": 0}}"#,
    )
    .unwrap();
    pier.ok(&["update", "-r", file.path().to_str().unwrap(), &id]);
    let (_, limit) = read_limit(&dirs, &["memory.limit_in_bytes", "memory.max"]);
    assert_eq!(limit.parse::<u64>().unwrap() / 4096, 128_000_000 / 4096);
    assert_eq!(
        quota(&dirs),
        before,
        "a zero quota must leave the quota alone"
    );
}

/// An absolute cgroupsPath is taken from each hierarchy's root; delete removes every dir.
#[test]
fn absolute_cgroups_path_and_delete_removes_it() {
    let pier = Runtime::new();
    let path = format!("/{}", unique("abs"));
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        c["linux"]["cgroupsPath"] = json!(path)
    });
    let id = pier.start_new("abs", &bundle);
    let dirs = pier.cgroup_dirs(&id);
    assert!(!dirs.is_empty());
    for d in &dirs {
        assert!(
            d.ends_with(path.trim_start_matches('/'))
                && d.parent().unwrap().starts_with("/sys/fs/cgroup"),
            "{}",
            d.display()
        );
        assert!(d.exists());
    }
    let pid = pier.state(&id)["pid"].as_i64().unwrap();
    let procs = std::fs::read_to_string(dirs[0].join("cgroup.procs")).unwrap();
    assert!(
        procs.lines().any(|p| p == pid.to_string()),
        "init {pid} is not in {}",
        dirs[0].display()
    );
    pier.ok(&["delete", "--force", &id]);
    assert!(dirs.iter().all(|d| !d.exists()));
}

/// A throttle on a real disk (the first whole block device of /sys/dev/block) reaches the v1
/// `blkio.throttle.*` or the v2 `io.max` file. On v1, `weight` goes to `blkio.weight`, or
/// `blkio.bfq.weight` where only BFQ has weights; where the kernel has neither (no CFQ nor
/// BFQ, like this host), create fails naming the file, as runc does, and leaves nothing.
#[test]
fn block_io_limits_reach_the_blkio_files_or_fail_naming_the_file() {
    require_controllers!("blkio");
    let disk = std::fs::read_dir("/sys/dev/block")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| n.ends_with(":0") && !n.starts_with("7:"))
        .min()
        .expect("a whole block device");
    let (major, minor) = disk.split_once(':').unwrap();
    let (major, minor): (i64, i64) = (major.parse().unwrap(), minor.parse().unwrap());
    let pier = Runtime::new();
    let throttle =
        json!({"throttleReadBpsDevice": [{"major": major, "minor": minor, "rate": 102400}]});
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| resources(c, "blockIO", throttle));
    let id = pier.start_new("blkio", &bundle);
    match read_limit(
        &pier.cgroup_dirs(&id),
        &["blkio.throttle.read_bps_device", "io.max"],
    ) {
        (f, v) if f == "io.max" => assert!(v.contains(&format!("{disk} rbps=102400")), "{v}"),
        (_, v) => assert_eq!(v, format!("{disk} 102400")),
    }
    let v1_blkio = Path::new("/sys/fs/cgroup/blkio");
    if !v1_blkio.join("cgroup.procs").exists() {
        return;
    }
    let has = |f: &str| v1_blkio.join(f).exists();
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        resources(c, "blockIO", json!({"weight": 500}));
    });
    if has("blkio.weight") || has("blkio.bfq.weight") {
        let id = pier.start_new("blkio-weight", &bundle);
        let (_, v) = read_limit(
            &pier.cgroup_dirs(&id),
            &["blkio.weight", "blkio.bfq.weight"],
        );
        assert!(v == "500" || v.starts_with("default 500"), "{v}");
    } else {
        let id = unique("blkio-noweight");
        let (created, stderr) = pier.try_create(&bundle, &id);
        assert!(!created, "create succeeded without a weight file");
        assert!(stderr.contains("blkio.bfq.weight"), "{stderr}");
        assert!(!pier.root().join(&id).exists(), "state dir left");
        let own = std::fs::read_to_string("/proc/self/cgroup").unwrap();
        let own = own
            .lines()
            .find_map(|l| {
                l.split_once(":blkio:")
                    .map(|(_, p)| p.trim_start_matches('/'))
            })
            .unwrap_or_default();
        let left = v1_blkio.join(own).join(&id);
        assert!(!left.exists(), "{} left", left.display());
    }
}

/// A value the kernel refuses, or a page size it lacks: create fails, and no cgroup
/// directory and no state directory are left.
#[test]
fn a_failed_create_leaves_no_cgroup() {
    require_controllers!("cpuset", "hugetlb");
    for (name, key, value) in [
        ("bad-cpuset", "cpu", json!({"cpus": "999"})),
        (
            "bad-hugepage",
            "hugepageLimits",
            json!([{"pageSize": "3MB", "limit": 1}]),
        ),
    ] {
        let pier = Runtime::new();
        let path = format!("/{}", unique(name));
        let bundle = Bundle::cgrouped(&["true"], |c| {
            c["linux"]["cgroupsPath"] = json!(path);
            resources(c, key, value);
        });
        let id = unique(name);
        let (created, stderr) = pier.try_create(&bundle, &id);
        assert!(!created, "{name}: create succeeded");
        assert!(
            stderr.contains(if key == "cpu" {
                "cpuset.cpus"
            } else {
                "hugetlb.3MB"
            }),
            "{name}: {stderr}"
        );
        assert!(!pier.root().join(&id).exists(), "{name}: state dir left");
        for entry in std::fs::read_dir("/sys/fs/cgroup").unwrap().flatten() {
            let left = entry.path().join(path.trim_start_matches('/'));
            assert!(!left.exists(), "{name}: {} left", left.display());
        }
    }
}

/// Without cgroupsPath the cgroup is `<id>` under pier's own cgroup in every hierarchy (runc's
/// default), and the init is in each of them.
#[test]
fn the_default_cgroup_is_the_id_and_holds_the_init_everywhere() {
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        c["linux"].as_object_mut().unwrap().remove("cgroupsPath");
    });
    let id = pier.start_new("default-path", &bundle);
    let pid = pier.state(&id)["pid"].as_i64().unwrap().to_string();
    let dirs = pier.cgroup_dirs(&id);
    assert!(!dirs.is_empty());
    for d in &dirs {
        assert!(d.ends_with(&id), "{}", d.display());
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap();
        assert!(
            procs.lines().any(|p| p == pid),
            "init {pid} is not in {}",
            d.display()
        );
    }
}

/// The cgroup2 mountpoint, when its root offers `controller`.
fn cgroup2_offering(controller: &str) -> Option<std::path::PathBuf> {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let mountpoint = mountinfo.lines().find_map(|l| {
        let (pre, post) = l.split_once(" - ")?;
        post.starts_with("cgroup2 ")
            .then(|| pre.split(' ').nth(4).map(String::from))?
    })?;
    let offered =
        std::fs::read_to_string(Path::new(&mountpoint).join("cgroup.controllers")).ok()?;
    offered
        .split_whitespace()
        .any(|c| c == controller)
        .then(|| mountpoint.into())
}

/// `cmd` run by a shell that first moves itself into the cgroup2 directory `dir`.
fn in_cgroup(dir: &Path, cmd: &Command) -> Command {
    let mut sh = Command::new("sh");
    sh.args(["-c", "echo $$ > \"$0/cgroup.procs\" && exec \"$@\""])
        .arg(dir)
        .arg(cmd.get_program())
        .args(cmd.get_args());
    sh
}

/// Rootless, a container in pier's own cgroup (the default path) with a hugepage limit needs
/// hugetlb enabled in that cgroup, which the kernel refuses while a process is in it (pier
/// is): pier moves itself into the leaf `.pier` first (systemd.io/CGROUP_DELEGATION), so the
/// limit holds, with the init in `<cgroup>/<id>`. With another process in the cgroup, create
/// fails naming the rule, and pier's leaf, the container's cgroup and state are gone.
#[test]
fn rootless_moves_pier_into_a_leaf_to_enable_a_controller_in_its_own_cgroup() {
    let Some(v2) = cgroup2_offering("hugetlb") else {
        eprintln!("skipped: cgroup2 offers no hugetlb controller here");
        return;
    };
    let pier = Runtime::new();
    let bundle = Bundle::cgrouped(&["sleep", "1000"], |c| {
        c["linux"].as_object_mut().unwrap().remove("cgroupsPath");
        resources(
            c,
            "hugepageLimits",
            json!([{"pageSize": "2MB", "limit": 4 * MIB}]),
        );
    });
    let config = bundle.save();

    // pier alone in its cgroup: it moves into the leaf, the limit holds.
    let alone = v2.join(unique("leaf-alone"));
    std::fs::create_dir(&alone).unwrap();
    let id = unique("leaf-ok");
    let create = pier.command(&["--rootless", "true", "create", "--bundle", config, &id]);
    support::runner::run_command(in_cgroup(&alone, &create), support::TIMEOUT).ok();
    let dir = alone.join(&id);
    let pid = pier.init_pid(&id).to_string();
    let read = |f: &Path| std::fs::read_to_string(f).unwrap().trim().to_string();
    assert_eq!(read(&dir.join("hugetlb.2MB.max")), (4 * MIB).to_string());
    assert_eq!(read(&dir.join("cgroup.procs")), pid);
    assert_eq!(read(&alone.join("cgroup.subtree_control")), "hugetlb");
    assert_eq!(
        read(&alone.join(".pier/cgroup.procs")),
        "",
        "pier has exited"
    );
    pier.ok(&["delete", "-f", &id]);
    assert!(!dir.exists(), "{} left after delete", dir.display());
    std::fs::remove_dir(alone.join(".pier")).unwrap();
    std::fs::remove_dir(&alone).unwrap();

    // Another process in pier's cgroup: the rule, and nothing left.
    let shared = v2.join(unique("leaf-shared"));
    std::fs::create_dir(&shared).unwrap();
    let mut other = Command::new("sh")
        .args([
            "-c",
            "echo $$ > \"$0/cgroup.procs\" && echo in && exec sleep 1000",
        ])
        .arg(&shared)
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut joined = String::new();
    BufReader::new(other.stdout.take().unwrap())
        .read_line(&mut joined)
        .unwrap();
    assert_eq!(
        joined,
        "in\n",
        "the other process did not join {}",
        shared.display()
    );
    let id = unique("leaf-busy");
    let create = pier.command(&["--rootless", "true", "create", "--bundle", config, &id]);
    let out = support::runner::run_command(in_cgroup(&shared, &create), support::TIMEOUT);
    let _ = other.kill();
    let _ = other.wait();
    assert!(!out.status.success(), "create succeeded:\n{out}");
    assert!(
        out.stderr.contains("no-internal-process rule") && out.stderr.contains("other processes"),
        "{out}"
    );
    assert!(!pier.root().join(&id).exists(), "state dir left");
    assert!(!shared.join(&id).exists(), "container cgroup left");
    assert!(!shared.join(".pier").exists(), "pier's leaf left");
    assert_eq!(read(&shared.join("cgroup.subtree_control")), "");
    std::fs::remove_dir(&shared).unwrap();
}
