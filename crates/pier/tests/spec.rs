//! Issue 2, point 1: `spec` writes a runc-like default config.json (in the cwd, or in
//! `--bundle`), `--rootless` makes a user-namespaced one, an existing file is never
//! overwritten, and the output runs as is on a busybox rootfs.

mod support;

use std::path::Path;
use std::process::Command;

use serde_json::{json, Value};
use support::runner::run_command;
use support::{host_tempdir, run_bare, runtime_bin, unique_id, Bundle, Runtime, TIMEOUT};

fn read_config(dir: &Path) -> Value {
    let text = std::fs::read_to_string(dir.join("config.json")).expect("config.json written");
    serde_json::from_str(&text).expect("config.json is JSON")
}

fn strings(v: &Value) -> Vec<&str> {
    v.as_array()
        .unwrap_or_else(|| panic!("not an array: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect()
}

fn namespace_types(c: &Value) -> Vec<&str> {
    let list = c["linux"]["namespaces"]
        .as_array()
        .expect("linux.namespaces");
    list.iter().map(|n| n["type"].as_str().unwrap()).collect()
}

#[test]
fn spec_writes_runc_default_config_in_the_cwd() {
    let dir = host_tempdir("spec");
    let mut cmd = Command::new(runtime_bin());
    cmd.arg("spec").current_dir(dir.path());
    let out = run_command(cmd, TIMEOUT);
    out.ok();
    assert_eq!(out.stdout, "", "{out}");
    let c = read_config(dir.path());

    assert!(c["ociVersion"].as_str().unwrap().starts_with("1."), "{c}");
    assert_eq!(c["process"]["terminal"], true);
    assert_eq!(strings(&c["process"]["args"]), ["sh"]);
    assert_eq!(c["process"]["cwd"], "/");
    assert_eq!(c["process"]["user"], json!({ "uid": 0, "gid": 0 }));
    assert_eq!(c["process"]["noNewPrivileges"], true);
    assert_eq!(c["root"], json!({ "path": "rootfs", "readonly": true }));
    let caps = ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"];
    for set in ["bounding", "effective", "permitted"] {
        assert_eq!(strings(&c["process"]["capabilities"][set]), caps, "{set}");
    }
    let nofile = json!([{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }]);
    assert_eq!(c["process"]["rlimits"], nofile);
    let mounts: Vec<(&str, &str)> = c["mounts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["destination"].as_str().unwrap(),
                m["type"].as_str().unwrap(),
            )
        })
        .collect();
    for want in [
        ("/proc", "proc"),
        ("/dev", "tmpfs"),
        ("/dev/pts", "devpts"),
        ("/dev/shm", "tmpfs"),
        ("/dev/mqueue", "mqueue"),
        ("/sys", "sysfs"),
        ("/sys/fs/cgroup", "cgroup"),
    ] {
        assert!(mounts.contains(&want), "{want:?} missing from {mounts:?}");
    }
    for ns in ["pid", "network", "ipc", "uts", "mount"] {
        assert!(namespace_types(&c).contains(&ns), "{ns} namespace missing");
    }
    assert!(strings(&c["linux"]["maskedPaths"]).contains(&"/proc/kcore"));
    assert!(strings(&c["linux"]["readonlyPaths"]).contains(&"/proc/sys"));
}

#[test]
fn spec_bundle_flag_writes_into_the_bundle() {
    let dir = host_tempdir("spec");
    for flag in ["--bundle", "-b"] {
        let _ = std::fs::remove_file(dir.path().join("config.json"));
        run_bare(&["spec", flag, dir.path().to_str().unwrap()]).ok();
        assert_eq!(read_config(dir.path())["root"]["path"], "rootfs");
    }
}

#[test]
fn spec_rootless_maps_the_caller_in_a_user_namespace() {
    let dir = host_tempdir("spec");
    run_bare(&[
        "spec",
        "--rootless",
        "--bundle",
        dir.path().to_str().unwrap(),
    ])
    .ok();
    let c = read_config(dir.path());
    let types = namespace_types(&c);
    assert!(types.contains(&"user"), "{types:?}");
    assert!(
        !types.contains(&"network"),
        "rootless spec keeps the host network: {types:?}"
    );
    let euid = rustix::process::geteuid().as_raw();
    let egid = rustix::process::getegid().as_raw();
    let uid_map = json!([{ "containerID": 0, "hostID": euid, "size": 1 }]);
    let gid_map = json!([{ "containerID": 0, "hostID": egid, "size": 1 }]);
    assert_eq!(c["linux"]["uidMappings"], uid_map);
    assert_eq!(c["linux"]["gidMappings"], gid_map);
}

/// `pier spec --rootless` is `runc spec --rootless` field for field where they share a
/// default: mounts (runc 1.1's `"options": null` taken as none) (/sys bound, no uid=/gid= options, /sys/fs/cgroup and mqueue kept),
/// mappings, no resources, the namespaces. Known differences: the hostname, ociVersion, and
/// pier's default cgroup namespace (runc 1.2's default has one too, runc 1.1's has none).
#[test]
fn spec_rootless_is_runcs() {
    let Some(runc) = ["/usr/sbin/runc", "/usr/bin/runc"]
        .into_iter()
        .find(|p| Path::new(p).exists())
    else {
        eprintln!("skipped: runc is not installed");
        return;
    };
    let configs: Vec<Value> = [runc, runtime_bin().to_str().unwrap()]
        .iter()
        .map(|bin| {
            let dir = host_tempdir("spec");
            let mut cmd = Command::new(bin);
            cmd.args(["spec", "--rootless"]).current_dir(dir.path());
            run_command(cmd, TIMEOUT).ok();
            read_config(dir.path())
        })
        .collect();
    let (runc, pier) = (&configs[0], &configs[1]);
    // runc 1.1 writes `"options": null` for a mount it filtered to no options.
    let mounts = |c: &Value| -> Vec<Value> {
        let mut mounts = c["mounts"].as_array().unwrap().clone();
        for m in &mut mounts {
            m.as_object_mut().unwrap().retain(|_, v| !v.is_null());
        }
        mounts
    };
    assert_eq!(mounts(pier), mounts(runc));
    for key in [
        "uidMappings",
        "gidMappings",
        "resources",
        "maskedPaths",
        "readonlyPaths",
    ] {
        assert_eq!(pier["linux"][key], runc["linux"][key], "linux.{key}");
    }
    let without_cgroup = |c: &Value| -> Vec<String> {
        namespace_types(c)
            .into_iter()
            .filter(|t| *t != "cgroup")
            .map(String::from)
            .collect()
    };
    assert_eq!(without_cgroup(pier), without_cgroup(runc));
    assert_eq!(pier["process"], runc["process"]);
}

#[test]
fn spec_never_overwrites_an_existing_config() {
    let dir = host_tempdir("spec");
    let path = dir.path().join("config.json");
    std::fs::write(&path, "{\"mine\": true}").unwrap();
    let out = run_bare(&["spec", "--bundle", dir.path().to_str().unwrap()]);
    out.code_is(1);
    assert!(out.stderr.contains("exists"), "{out}");
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"mine\": true}");
}

#[test]
fn spec_output_runs_on_a_busybox_rootfs() {
    let b = Bundle::new();
    run_bare(&["spec", "--bundle", b.path()]).ok();
    let mut c = read_config(Path::new(b.path()));
    c["process"]["terminal"] = json!(false);
    c["process"]["args"] = json!(["sh", "-c", "echo spec-ok; hostname"]);
    b.save_raw(&c.to_string());
    let rt = Runtime::new();
    let id = unique_id("specrun");
    let out = rt.run(&["run", "--bundle", b.path(), &id]);
    let lines: Vec<&str> = out.ok().stdout.lines().collect();
    assert_eq!(lines.first(), Some(&"spec-ok"), "{out}");
    assert_eq!(lines.get(1).copied(), c["hostname"].as_str(), "{out}");
    rt.assert_clean(&b, &id);
}
