//! `pier features`: what this runtime supports, as the runtime-spec "Features Structure" JSON
//! (features.md). CRI-O and containerd read it at start-up (`ociVersionMin`/`Max` are
//! required), so stdout carries only the document.

use anyhow::Result;
use serde_json::json;

/// Print the features document.
pub fn run() -> Result<()> {
    let mut caps: Vec<String> = caps::all().into_iter().map(|c| c.to_string()).collect();
    caps.sort();
    let doc = json!({
        "ociVersionMin": "1.0.0",
        "ociVersionMax": crate::spec::SPEC_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": crate::spec::MOUNT_OPTIONS,
        "linux": {
            "namespaces": ["cgroup", "ipc", "mount", "network", "pid", "time", "user", "uts"],
            "capabilities": caps,
            "cgroup": {"v1": true, "v2": true, "systemd": true, "systemdUser": false, "rdma": false},
            "seccomp": {
                "enabled": true,
                "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS",
                            "SCMP_ACT_KILL_THREAD", "SCMP_ACT_LOG", "SCMP_ACT_TRACE", "SCMP_ACT_TRAP"],
                "operators": ["SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT", "SCMP_CMP_LE", "SCMP_CMP_LT",
                              "SCMP_CMP_MASKED_EQ", "SCMP_CMP_NE"],
                "archs": ["SCMP_ARCH_X86", "SCMP_ARCH_X86_64", "SCMP_ARCH_X32"],
                "knownFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"],
                "supportedFlags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW", "SECCOMP_FILTER_FLAG_TSYNC"]
            },
            "apparmor": {"enabled": false},
            "selinux": {"enabled": false},
            "intelRdt": {"enabled": false},
            "mountExtensions": {"idmap": {"enabled": true}}
        },
        "annotations": {
            "org.pier.version": env!("CARGO_PKG_VERSION")
        },
        "potentiallyUnsafeConfigAnnotations": [
            crate::notify::ANNOTATION_ACCESS,
            crate::notify::ANNOTATION_IDENTITY,
            crate::notify::ANNOTATION_WAIT,
            crate::notify::ANNOTATION_FDSTORE,
            crate::notify::ANNOTATION_MAINPIDFD,
            crate::notify::ANNOTATION_EXEC
        ]
    });
    println!("{}", serde_json::to_string_pretty(&doc)?);
    Ok(())
}
