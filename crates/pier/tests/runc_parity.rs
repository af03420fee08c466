//! Issue 13: what engines send and runc quietly handles: loopback up in a new network
//! namespace, `linux.personality`, no PATH in `process.env`, the cgroup mount of a hybrid
//! host. Proven from inside the container (foreground run). Needs root. Run against runc with
//! `PIER_BIN=/usr/sbin/runc` (Debian 12's runc 1.1.5 ignores `linux.personality`: its two tests
//! fail there; runc 1.2 sets the domain and ignores the flags).

mod support;

use support::{output_of, Bundle};

#[test]
fn a_new_network_namespace_has_lo_up_with_its_addresses() {
    let mut b = Bundle::new();
    b.sh("cat /sys/class/net/lo/flags; ip -o addr show dev lo | awk '{print $3, $4}'");
    // IFF_UP|IFF_LOOPBACK|IFF_RUNNING is 0x49 (the kernel sets RUNNING once up).
    let out = output_of(&b);
    let lines: Vec<&str> = out.lines().collect();
    let flags = u32::from_str_radix(lines[0].trim_start_matches("0x"), 16).unwrap();
    assert_eq!(flags & 0x9, 0x9, "lo not up: {out}");
    assert!(lines.contains(&"inet 127.0.0.1/8"), "{out}");
}

#[test]
fn linux_personality_sets_the_domain_and_flags() {
    let mut b = Bundle::new();
    b.config["linux"]["personality"] =
        serde_json::json!({ "domain": "LINUX32", "flags": ["ADDR_NO_RANDOMIZE"] });
    b.sh("uname -m; cat /proc/self/personality");
    // PER_LINUX32 (8) | ADDR_NO_RANDOMIZE (0x40000); uname reports the 32-bit machine.
    assert_eq!(output_of(&b), "i686\n00040008\n");
    b.config["linux"]["personality"] = serde_json::json!({ "domain": "LINUX" });
    assert_eq!(output_of(&b), "x86_64\n00000000\n");
}

#[test]
fn an_unknown_personality_flag_is_refused() {
    let rt = support::Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["personality"] = serde_json::json!({ "domain": "LINUX", "flags": ["NOPE"] });
    let id = support::unique_id("persona");
    let out = rt.run(&["run", "--bundle", b.save(), &id]);
    out.code_is(1);
    assert!(out.stderr.contains("NOPE"), "{out}");
    rt.assert_clean(&b, &id);
}

#[test]
fn without_path_in_env_a_bare_command_name_is_not_found() {
    let rt = support::Runtime::new();
    let mut b = Bundle::new();
    b.config["process"]["env"] = serde_json::json!(["TERM=xterm"]);
    b.config["process"]["args"] = serde_json::json!(["sh", "-c", "echo ran"]);
    let id = support::unique_id("nopath");
    let out = rt.run(&["run", "--bundle", b.save(), &id]);
    assert_ne!(out.code(), Some(0), "{out}");
    assert!(!out.stdout.contains("ran"), "{out}");
    assert!(
        out.stderr.contains("executable file not found in $PATH"),
        "{out}"
    );
    rt.run(&["delete", "--force", &id]);
    rt.assert_clean(&b, &id);
    // An absolute path needs no PATH.
    b.config["process"]["args"] = serde_json::json!(["/bin/sh", "-c", "echo ran"]);
    assert_eq!(output_of(&b), "ran\n");
}

/// Whether the host is hybrid: v1 hierarchies and a cgroup2 mount.
fn host_is_hybrid() -> bool {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let types: Vec<&str> = mountinfo
        .lines()
        .filter_map(|l| l.split(" - ").nth(1)?.split(' ').next())
        .collect();
    types.contains(&"cgroup") && types.contains(&"cgroup2")
}

#[test]
fn a_hybrid_host_shows_only_its_v1_hierarchies_inside() {
    if !host_is_hybrid() {
        return;
    }
    for namespaces in [
        &["pid", "network", "ipc", "uts", "mount"][..],
        &["pid", "network", "ipc", "uts", "mount", "cgroup"],
    ] {
        let mut b = Bundle::new();
        b.namespaces(namespaces);
        b.sh("ls /sys/fs/cgroup; grep -c ' - cgroup2 ' /proc/self/mountinfo || true");
        let out = output_of(&b);
        let lines: Vec<&str> = out.lines().collect();
        assert!(!lines.contains(&"unified"), "{namespaces:?}: {out}");
        assert!(
            lines.contains(&"memory") && lines.contains(&"systemd"),
            "{namespaces:?}: {out}"
        );
        assert_eq!(lines.last(), Some(&"0"), "a cgroup2 mount inside: {out}");
    }
}

#[test]
fn an_exec_d_process_gets_the_container_personality_too() {
    let rt = support::Runtime::new();
    let mut b = Bundle::new();
    b.config["linux"]["personality"] = serde_json::json!({ "domain": "LINUX32" });
    b.sh("exec sleep 1000");
    let id = support::unique_id("persona-exec");
    rt.create(&b, &id);
    rt.start(&id);
    let out = rt.run(&["exec", &id, "uname", "-m"]);
    out.ok();
    assert_eq!(out.stdout, "i686\n");
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}
