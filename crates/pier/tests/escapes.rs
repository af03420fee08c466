//! Container-escape classes staged as a container (or a hostile image) would attack them
//! (issue 10; docs/security.md maps each CVE class to its test here). Needs root.

mod support;

use std::os::unix::fs::MetadataExt;

use serde_json::json;
use support::{unique_id, Bundle, Runtime};

/// CVE-2024-21626 class: a created init, blocked on the exec fifo, holds nothing of the
/// host but the fifo: no fd on the host's /proc (whose `..` leads to every host process's
/// root) and none on the container's host cgroup directory.
#[test]
fn created_init_holds_no_host_fd_but_the_fifo() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "100"]);
    let id = unique_id("fds");
    rt.create(&b, &id);
    let pid = rt.init_pid(&id);
    let fifo = std::fs::metadata(rt.root().join(&id).join("exec.fifo")).expect("exec.fifo");
    let host_proc = std::fs::metadata("/proc").unwrap().dev();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        let n: i32 = entry.file_name().to_string_lossy().parse().unwrap();
        if n < 3 {
            continue;
        }
        let link = std::fs::read_link(entry.path()).unwrap_or_default();
        let st = std::fs::metadata(entry.path()).expect("stat the init's fd");
        let is_fifo = (st.dev(), st.ino()) == (fifo.dev(), fifo.ino());
        let own_procfs = rustix::fs::statfs(&entry.path()).is_ok_and(|s| {
            s.f_type as i64 == libc::PROC_SUPER_MAGIC as i64 && st.dev() != host_proc
        });
        assert!(
            is_fifo || own_procfs,
            "the created init holds fd {n} -> {link:?}, which is neither the exec fifo nor a procfs of its own"
        );
    }
    rt.run(&["delete", "--force", &id]).ok();
}

/// CVE-2024-21626 class, through exec: `args[0]` (or cwd) through `/proc/self/fd/N/..` of a
/// leaked host fd must not reach a host binary. `/proc/self/fd/N/../../1/root` is the host's
/// root when fd N is a directory of the host's /proc.
#[test]
fn exec_args0_cannot_reach_the_host_through_a_leaked_fd() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "100"]);
    let id = unique_id("fdexec");
    rt.create(&b, &id);
    rt.start(&id);
    // Only the host has /bin/true under that name's parent chain: the image's is busybox,
    // and `1/root` of the container's own procfs is the container's root.
    let marker = support::host_tempdir("escape");
    std::fs::write(marker.path().join("host-only"), "#!/bin/sh\nexit 0\n").unwrap();
    std::fs::set_permissions(
        marker.path().join("host-only"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let host_path = marker.path().join("host-only");
    let host_path = host_path.to_str().unwrap().trim_start_matches('/');
    for n in 3..16 {
        let arg0 = format!("/proc/self/fd/{n}/../../1/root/{host_path}");
        let out = rt.run(&["exec", &id, &arg0]);
        assert_ne!(
            out.code(),
            Some(0),
            "exec ran a host file through fd {n}: {arg0}\n{out}"
        );
        let cwd = format!("/proc/self/fd/{n}/../../1/root/");
        // The image's `test`, run from that cwd: it finds the host-only file only if the cwd
        // is on the host (a cwd in the container's own procfs's `1/root` is the container's).
        let out = rt.run(&["exec", "--cwd", &cwd, &id, "/bin/test", "-e", host_path]);
        assert_ne!(
            out.code(),
            Some(0),
            "exec's cwd reached the host through fd {n}\n{out}"
        );
    }
    rt.run(&["delete", "--force", &id]).ok();
}

/// CVE-2025-52881 class: a volume mounted over /proc/sys/net/ipv4 whose `ip_forward` is a
/// symlink to /proc/sys/kernel/hostname (core_pattern in a real attack) must not redirect
/// pier's sysctl write into another real procfs file.
#[test]
fn sysctl_write_is_not_redirected_by_a_mount_over_proc_sys() {
    let volume = support::host_tempdir("fakesys");
    std::os::unix::fs::symlink(
        "/proc/sys/kernel/hostname",
        volume.path().join("ip_forward"),
    )
    .unwrap();
    let mut b = Bundle::new();
    b.args(&["hostname"]);
    b.config["hostname"] = json!("real-name");
    b.config["linux"]["sysctl"] = json!({"net.ipv4.ip_forward": "1"});
    b.mount(json!({
        "destination": "/proc/sys/net/ipv4",
        "type": "bind",
        "source": volume.path(),
        "options": ["rbind"]
    }));
    let out = support::output_of(&b);
    assert_eq!(
        out.trim(),
        "real-name",
        "the sysctl write landed on the hostname"
    );
}
