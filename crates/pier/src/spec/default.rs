//! The config.json that `pier spec` writes: runc's default, field for field, so that a user
//! coming from `runc spec` gets the same container (terminal on, `sh`, readonly root).

use serde_json::{json, Value};

/// runc's default spec (runc `libcontainer/specconv/example.go`), with our hostname.
/// `rootless` is `runc spec --rootless` (`make_rootless`).
pub fn default_spec(rootless: bool, uid: u32, gid: u32) -> Value {
    let mut spec = json!({
        "ociVersion": super::SPEC_VERSION,
        "process": {
            "terminal": true,
            "user": {"uid": 0, "gid": 0},
            "args": ["sh"],
            "env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "TERM=xterm"],
            "cwd": "/",
            "capabilities": {
                "bounding": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "effective": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "permitted": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"],
                "ambient": ["CAP_AUDIT_WRITE", "CAP_KILL", "CAP_NET_BIND_SERVICE"]
            },
            "rlimits": [{"type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024}],
            "noNewPrivileges": true
        },
        "root": {"path": "rootfs", "readonly": true},
        "hostname": "pier",
        "mounts": [
            {"destination": "/proc", "type": "proc", "source": "proc"},
            {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
             "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
            {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
             "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]},
            {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
             "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"]},
            {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
             "options": ["nosuid", "noexec", "nodev"]},
            {"destination": "/sys", "type": "sysfs", "source": "sysfs",
             "options": ["nosuid", "noexec", "nodev", "ro"]},
            {"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup",
             "options": ["nosuid", "noexec", "nodev", "relatime", "ro"]}
        ],
        "linux": {
            "resources": {"devices": [{"allow": false, "access": "rwm"}]},
            "namespaces": [{"type": "pid"}, {"type": "network"}, {"type": "ipc"}, {"type": "uts"}, {"type": "mount"}, {"type": "cgroup"}],
            "maskedPaths": ["/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys",
                "/proc/latency_stats", "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug",
                "/sys/firmware", "/proc/scsi"],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    });
    if rootless {
        make_rootless(&mut spec, uid, gid);
    }
    spec
}

/// runc's `ToRootless`: no network namespace, a user namespace mapping the caller's uid and
/// gid to 0, `/sys` bound (rbind) instead of mounted, no `uid=`/`gid=` mount options (ids
/// the namespace does not map), no `linux.resources`.
fn make_rootless(spec: &mut Value, uid: u32, gid: u32) {
    let linux = spec["linux"].as_object_mut().expect("linux is an object");
    linux.remove("resources");
    linux.insert(
        "uidMappings".into(),
        json!([{"containerID": 0, "hostID": uid, "size": 1}]),
    );
    linux.insert(
        "gidMappings".into(),
        json!([{"containerID": 0, "hostID": gid, "size": 1}]),
    );
    let namespaces = linux["namespaces"]
        .as_array_mut()
        .expect("namespaces is an array");
    namespaces.retain(|ns| ns["type"] != "network" && ns["type"] != "user");
    namespaces.push(json!({"type": "user"}));
    let mounts = spec["mounts"].as_array_mut().expect("mounts is an array");
    for m in mounts.iter_mut() {
        if m["destination"] == "/sys" {
            *m = json!({"destination": "/sys", "type": "none", "source": "/sys",
                        "options": ["rbind", "nosuid", "noexec", "nodev", "ro"]});
        }
        if let Some(opts) = m["options"].as_array_mut() {
            opts.retain(|o| {
                let o = o.as_str().unwrap_or_default();
                !o.starts_with("uid=") && !o.starts_with("gid=")
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_spec_parses_into_a_plan() {
        let spec: oci_spec::runtime::Spec =
            serde_json::from_value(default_spec(false, 0, 0)).unwrap();
        let plan = super::super::plan_from_spec(&spec, std::path::Path::new("/b")).unwrap();
        assert_eq!(plan.process.args, ["sh"]);
        assert!(plan.root_readonly);
    }

    #[test]
    fn rootless_spec_has_a_user_namespace_and_no_network_namespace() {
        let spec = default_spec(true, 1000, 1000);
        let types: Vec<_> = spec["linux"]["namespaces"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n["type"].clone())
            .collect();
        assert!(types.contains(&json!("user")) && !types.contains(&json!("network")));
        assert_eq!(spec["linux"]["uidMappings"][0]["hostID"], 1000);
    }
}
