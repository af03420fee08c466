//! Unit tests of config.json -> Plan.

use std::path::Path;

use serde_json::json;

use super::*;

fn plan(config: serde_json::Value) -> Result<Plan> {
    let mut config = config;
    process::drop_unknown_capabilities(&mut config);
    let spec: Spec = serde_json::from_value(config)?;
    plan_from_spec(&spec, Path::new("/bundle"))
}

fn minimal() -> serde_json::Value {
    json!({
        "ociVersion": "1.0.2",
        "root": {"path": "rootfs"},
        "process": {"args": ["/bin/true"], "cwd": "/", "user": {"uid": 0, "gid": 0}},
        "linux": {"namespaces": [{"type": "pid"}, {"type": "mount"}]}
    })
}

#[test]
fn minimal_config() {
    let p = plan(minimal()).unwrap();
    assert_eq!(p.rootfs, Path::new("/bundle/rootfs"));
    assert!(p.creates_namespace(NamespaceKind::Pid));
    assert!(!p.has_namespace(NamespaceKind::Network));
    assert_eq!(p.devices.len(), 6, "the six default devices");
    assert_eq!(
        p.rootfs_propagation,
        Propagation {
            kind: PropagationKind::Slave,
            recursive: true
        }
    );
}

#[test]
fn any_1x_version_is_accepted_and_others_are_not() {
    for v in ["1.0.0", "1.1.0-rc.1", "1.2.1", "1.3.0"] {
        let mut c = minimal();
        c["ociVersion"] = json!(v);
        assert!(plan(c).is_ok(), "{v}");
    }
    let mut c = minimal();
    c["ociVersion"] = json!("2.0.0");
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("ociVersion"));
}

#[test]
fn missing_or_empty_args_is_refused() {
    let mut c = minimal();
    c["process"]["args"] = json!([]);
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("process.args"));
    let mut c = minimal();
    c["process"].as_object_mut().unwrap().remove("args");
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("process.args"));
}

#[test]
fn unknown_namespace_type_is_refused() {
    let mut c = minimal();
    c["linux"]["namespaces"] = json!([{"type": "bogus"}]);
    let spec: Result<Spec, _> = serde_json::from_value(c);
    assert!(spec.is_err());
}

#[test]
fn duplicate_namespace_is_refused() {
    let mut c = minimal();
    c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "pid"}]);
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("twice"));
}

#[test]
fn joined_namespace_keeps_its_path() {
    let mut c = minimal();
    c["linux"]["namespaces"] =
        json!([{"type": "mount"}, {"type": "network", "path": "/proc/1/ns/net"}]);
    let p = plan(c).unwrap();
    assert!(p.has_namespace(NamespaceKind::Network));
    assert!(!p.creates_namespace(NamespaceKind::Network));
}

#[test]
fn relative_cwd_is_refused() {
    let mut c = minimal();
    c["process"]["cwd"] = json!("tmp");
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("cwd"));
}

#[test]
fn capabilities_rlimits_user() {
    let mut c = minimal();
    c["process"]["capabilities"] =
        json!({"bounding": ["CAP_KILL", "CAP_FUTURE_THING"], "ambient": ["CAP_CHOWN"]});
    c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 100, "hard": 200}]);
    c["process"]["user"] = json!({"uid": 5, "gid": 6, "additionalGids": [7, 8], "umask": 63});
    c["process"]["oomScoreAdj"] = json!(100);
    let p = plan(c).unwrap();
    assert_eq!(
        p.process.capabilities.bounding,
        [caps::Capability::CAP_KILL]
    );
    assert_eq!(
        p.process.capabilities.ambient,
        [caps::Capability::CAP_CHOWN]
    );
    assert_eq!(
        p.process.rlimits,
        [Rlimit {
            resource: libc::RLIMIT_NOFILE as i32,
            soft: 100,
            hard: 200
        }]
    );
    assert_eq!(
        (p.process.uid, p.process.gid, p.process.umask),
        (5, 6, Some(63))
    );
    assert_eq!(p.process.additional_gids, [7, 8]);
    assert_eq!(p.process.oom_score_adj, Some(100));
}

#[test]
fn soft_rlimit_above_hard_is_refused() {
    let mut c = minimal();
    c["process"]["rlimits"] = json!([{"type": "RLIMIT_NOFILE", "soft": 300, "hard": 200}]);
    assert!(plan(c).is_err());
}

#[test]
fn devices_replace_defaults_and_stay_under_dev() {
    let mut c = minimal();
    c["linux"]["devices"] = json!([
        {"path": "/dev/null", "type": "c", "major": 1, "minor": 3, "fileMode": 0o600},
        {"path": "/dev/fuse", "type": "c", "major": 10, "minor": 229}
    ]);
    let p = plan(c).unwrap();
    assert_eq!(p.devices.len(), 7);
    assert_eq!(
        p.devices
            .iter()
            .find(|d| d.path == "/dev/null")
            .unwrap()
            .mode,
        0o600
    );
    let mut c = minimal();
    c["linux"]["devices"] = json!([{"path": "/etc/evil", "type": "c", "major": 1, "minor": 3}]);
    assert!(plan(c).is_err());
}

#[test]
fn relative_mount_destination_is_made_absolute() {
    let mut c = minimal();
    c["mounts"] = json!([{"destination": "data", "type": "tmpfs", "source": "tmpfs"}]);
    assert_eq!(plan(c).unwrap().mounts[0].destination, "/data");
}

#[test]
fn rootfs_propagation_is_parsed() {
    let mut c = minimal();
    c["linux"]["rootfsPropagation"] = json!("shared");
    assert_eq!(
        plan(c).unwrap().rootfs_propagation.kind,
        PropagationKind::Shared
    );
    let mut c = minimal();
    c["linux"]["rootfsPropagation"] = json!("sideways");
    assert!(plan(c).is_err());
}

#[test]
fn without_a_mount_namespace_masked_and_readonly_paths_are_refused() {
    let mut c = minimal();
    c["linux"]["namespaces"] = json!([{"type": "pid"}]);
    assert!(plan(c.clone()).is_ok());
    c["linux"]["maskedPaths"] = json!(["/proc/kcore"]);
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("without a private MNT namespace"));
    let mut c = minimal();
    c["linux"]["namespaces"] = json!([{"type": "pid"}]);
    c["linux"]["readonlyPaths"] = json!(["/proc/sys"]);
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("without a private MNT namespace"));
}

#[test]
fn sysctls_need_their_namespace() {
    let mut c = minimal();
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("Network"));
    let mut c = minimal();
    c["linux"]["namespaces"] = json!([{"type": "mount"}, {"type": "network"}, {"type": "ipc"}]);
    c["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1", "kernel.shmmax": "1000000", "fs.mqueue.queues_max": "10"});
    assert!(plan(c).is_ok());
    let mut c = minimal();
    c["linux"]["sysctl"] = json!({"vm.swappiness": "10"});
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("not in a separate kernel namespace"));
}

#[test]
fn settings_pier_cannot_apply_are_refused() {
    let cases = [(
        "/process/scheduler",
        json!({"policy": "SCHED_OTHER"}),
        "scheduler",
    )];
    for (pointer, value, needle) in cases {
        let mut c = minimal();
        let (parent, key) = pointer.rsplit_once('/').unwrap();
        let target = if parent.is_empty() {
            &mut c
        } else {
            c.pointer_mut(parent).unwrap()
        };
        target[key] = value;
        let err = format!("{:#}", plan(c).unwrap_err());
        assert!(
            err.contains(needle) && err.contains("not supported"),
            "{pointer}: {err}"
        );
    }
}

#[test]
fn hooks_are_carried_into_the_plan_in_order() {
    let mut c = minimal();
    c["hooks"] = json!({
        "prestart": [{"path": "/bin/a"}, {"path": "/bin/b", "args": ["b", "x"], "env": ["K=v"], "timeout": 5}],
        "poststop": [{"path": "/bin/c"}],
        "createRuntime": []
    });
    let hooks = plan(c).unwrap().hooks;
    let paths: Vec<_> = hooks.prestart.iter().map(|h| h.path.as_str()).collect();
    assert_eq!(paths, ["/bin/a", "/bin/b"]);
    assert_eq!(hooks.prestart[1].args, ["b", "x"]);
    assert_eq!(
        hooks.prestart[1].env.as_deref(),
        Some(&["K=v".to_string()][..])
    );
    assert_eq!(hooks.prestart[1].timeout_secs, Some(5));
    assert_eq!(hooks.prestart[0].env, None, "no env key: inherit");
    assert_eq!(hooks.poststop.len(), 1);
    assert!(hooks.create_runtime.is_empty() && hooks.in_create());
}

#[test]
fn seccomp_is_carried_into_the_plan() {
    let mut c = minimal();
    c["linux"]["seccomp"] = json!({"defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}]});
    let s = plan(c).unwrap().seccomp.expect("seccomp");
    assert_eq!(s.default_action, SeccompAction::Allow);
    assert_eq!(s.syscalls[0].action, SeccompAction::Errno(1));
    assert!(plan(minimal()).unwrap().seccomp.is_none());
}

#[test]
fn ids_that_mean_unchanged_are_refused() {
    for user in [
        json!({"uid": 4294967295u32, "gid": 0}),
        json!({"uid": 0, "gid": 2147483648u32}),
        json!({"uid": 0, "gid": 0, "additionalGids": [4294967295u32]}),
    ] {
        let mut c = minimal();
        c["process"]["user"] = user.clone();
        assert!(
            format!("{:#}", plan(c).unwrap_err()).contains("range"),
            "{user}"
        );
    }
}

#[test]
fn env_entries_must_be_key_value() {
    for bad in ["NOEQUALS", "=value"] {
        let mut c = minimal();
        c["process"]["env"] = json!(["PATH=/bin", bad]);
        assert!(
            format!("{:#}", plan(c).unwrap_err()).contains("KEY=VALUE"),
            "{bad}"
        );
    }
}

fn userns(uid: u32) -> serde_json::Value {
    let mut c = minimal();
    c["linux"]["namespaces"] = json!([{"type": "pid"}, {"type": "mount"}, {"type": "user"}]);
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["linux"]["gidMappings"] = json!([{"containerID": 0, "hostID": 100000, "size": 65536}]);
    c["process"]["user"]["uid"] = json!(uid);
    c
}

#[test]
fn user_namespace_with_mappings_is_planned() {
    let p = plan(userns(1000)).unwrap();
    assert!(p.creates_namespace(NamespaceKind::User));
    assert_eq!(p.uid_mappings[0].map_line(), "0 100000 65536");
    assert_eq!(p.gid_mappings.len(), 1);
}

#[test]
fn user_namespace_rules_as_runc() {
    let mut c = minimal();
    c["linux"]["uidMappings"] = json!([{"containerID": 0, "hostID": 1000, "size": 1}]);
    let err = format!("{:#}", plan(c).unwrap_err());
    assert!(err.contains("user namespace isn't enabled"), "{err}");
    let mut c = userns(0);
    c["linux"]["gidMappings"] = json!([]);
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("both"));
    let err = format!("{:#}", plan(userns(70000)).unwrap_err());
    assert!(
        err.contains("process.user.uid 70000 is not mapped"),
        "{err}"
    );
    let mut c = userns(0);
    c["linux"]["uidMappings"] = json!([{"containerID": 1, "hostID": 100000, "size": 10}]);
    assert!(format!("{:#}", plan(c).unwrap_err()).contains("uid 0"));
    let mut c = userns(0);
    c["linux"]["namespaces"][2]["path"] = json!("/proc/1/ns/user");
    assert!(plan(c).is_ok(), "a joined namespace has its own maps");
}

#[test]
fn hooks_must_have_absolute_paths_and_positive_timeouts() {
    for (hook, needle) in [
        (
            json!({"path": "true"}),
            "hooks.prestart[0]: path \"true\" is not absolute",
        ),
        (
            json!({"path": "/bin/true", "timeout": 0}),
            "timeout 0 is not greater than zero",
        ),
        (json!({"path": "/bin/true", "timeout": -5}), "timeout -5"),
    ] {
        let mut c = minimal();
        c["hooks"] = json!({"prestart": [hook]});
        let err = format!("{:#}", plan(c).unwrap_err());
        assert!(err.contains(needle), "{err}");
    }
}
