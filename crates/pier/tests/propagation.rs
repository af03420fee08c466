//! Issue 17: mount propagation exactly as runc does it, host -> container and container ->
//! host, for every `linux.rootfsPropagation` and every per-mount propagation option of the
//! runtime-spec. The volume's source is a shared tmpfs on the host; after the container
//! started, the host mounts a tmpfs below the source and the container mounts one below its
//! bind of it. Which of the two crosses is what the kernel's propagation rules give for the
//! order runc uses: rootfsPropagation (rslave if unset) on every mount first, then the bind,
//! then the mount's own option (`model`). Kubernetes' `Bidirectional` is `rootfsPropagation:
//! rshared` with `rbind,rshared`; CSI node plugins rely on its container -> host half.
//! Needs root. Run against runc with `PIER_BIN=/usr/sbin/runc`.

mod support;

use std::fs;

use rustix::process::Signal;
use serde_json::json;
use support::{host_tempdir, mount_at, parse_mountinfo, unique_id, Bundle, HostMount, Runtime};

/// The per-mount options checked, `None` being no propagation option at all.
const MOUNT_OPTIONS: [Option<&str>; 9] = [
    None,
    Some("shared"),
    Some("rshared"),
    Some("slave"),
    Some("rslave"),
    Some("private"),
    Some("rprivate"),
    Some("unbindable"),
    Some("runbindable"),
];

/// Where the container's bind of a shared host mount stands.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    /// In the host mount's peer group.
    Peer,
    /// A slave of the host's peer group (and maybe shared with a group of its own).
    Slave,
    /// Neither.
    Cut,
}

/// The kernel's rules (`mount_namespaces(7)`) for: the namespace's copy of the host mount,
/// changed by rootfsPropagation (a recursive one reaches it, a plain one only changes `/`),
/// bound (a bind copies its source's state), then changed by the mount's option.
fn model(root: Option<&str>, option: Option<&str>) -> State {
    let mut state = match root.unwrap_or("rslave") {
        "rshared" => State::Peer,
        "rslave" => State::Slave,
        "rprivate" => State::Cut,
        _ => State::Peer, // shared, slave, private: `/` only; the copy stays a peer
    };
    state = match (option.map(|o| o.trim_start_matches('r')), state) {
        (None | Some("shared"), s) => s,
        (Some("slave"), State::Peer) => State::Slave,
        (Some("slave"), s) => s,
        _ => State::Cut, // private, unbindable
    };
    state
}

/// What crossed for one combination: (what the container listed below its bind's `late`
/// after the host mounted there, container -> host, the mount row).
fn crossed(root: Option<&str>, option: Option<&str>) -> (String, bool, support::MountRow) {
    let src = host_tempdir("prop17");
    let shared = HostMount::tmpfs(src.path());
    shared.make_shared();
    fs::create_dir(src.path().join("late")).unwrap();
    fs::create_dir(src.path().join("inner")).unwrap();
    let mut b = Bundle::new();
    if let Some(root) = root {
        b.config["linux"]["rootfsPropagation"] = json!(root);
    }
    let mut options = vec!["rbind"];
    options.extend(option);
    b.mount(json!({ "destination": "/p", "type": "bind",
                    "source": src.path().to_str().unwrap(), "options": options }));
    let caps = json!(["CAP_SYS_ADMIN"]);
    for set in ["bounding", "effective", "permitted"] {
        b.config["process"]["capabilities"][set] = caps.clone();
    }
    b.sh(
        "trap 'mount -t tmpfs tmpfs /p/inner && touch /p/inner/from-container; ls -A /p/late; exit 0' USR1; \
         cat /proc/self/mountinfo; echo ready; while :; do sleep 1000 & wait $!; done",
    );
    let rt = Runtime::new();
    let id = unique_id("prop17");
    let run = rt.spawn(&["run", "--bundle", b.save(), &id]);
    run.expect_stdout("ready\n");
    let late = HostMount::tmpfs(&src.path().join("late"));
    fs::write(late.path().join("arrived"), "").unwrap();
    run.signal(Signal::USR1);
    let out = run.wait();
    out.ok();
    rt.assert_clean(&b, &id);
    let (mountinfo, after) = out.stdout.split_once("ready\n").unwrap();
    let row = mount_at(&parse_mountinfo(mountinfo), "/p").clone();
    let to_host = src.path().join("inner/from-container").exists();
    let _ = rustix::mount::unmount(
        src.path().join("inner"),
        rustix::mount::UnmountFlags::DETACH,
    );
    (after.to_owned(), to_host, row)
}

fn check_every_option_with(root: Option<&str>) {
    let mut wrong = Vec::new();
    for option in MOUNT_OPTIONS {
        let (seen, out, row) = crossed(root, option);
        let in_ = seen == "arrived\n";
        let want = model(root, option);
        let want = (want != State::Cut, want == State::Peer);
        if (in_, out) != want {
            wrong.push(format!(
                "rootfsPropagation {root:?}, mount {option:?}: host->container {in_}, \
                 container->host {out}, want {want:?} ({})",
                row.optional
            ));
        }
    }
    assert!(wrong.is_empty(), "\n{}", wrong.join("\n"));
}

#[test]
fn rootfs_propagation_unset() {
    check_every_option_with(None);
}

#[test]
fn rootfs_propagation_rslave() {
    check_every_option_with(Some("rslave"));
}

#[test]
fn rootfs_propagation_rshared() {
    check_every_option_with(Some("rshared"));
}

#[test]
fn rootfs_propagation_rprivate() {
    check_every_option_with(Some("rprivate"));
}

#[test]
fn rootfs_propagation_shared_slave_private_change_only_the_root() {
    for root in ["shared", "slave", "private"] {
        check_every_option_with(Some(root));
    }
}

#[test]
fn bidirectional_is_a_plain_peer_of_the_host_mount() {
    // containerd for Kubernetes' Bidirectional: the volume is "shared:N", no "master:".
    let (seen, out, row) = crossed(Some("rshared"), Some("rshared"));
    assert!(seen == "arrived\n" && out, "{row:?}");
    assert!(
        row.optional.starts_with("shared:") && !row.optional.contains("master:"),
        "{row:?}"
    );
}

#[test]
fn bind_propagation_rslave_receives_host_mounts() {
    let (seen, _, row) = crossed(None, Some("rslave"));
    assert!(row.optional.contains("master:"), "{row:?}");
    assert_eq!(seen, "arrived\n");
}

#[test]
fn bind_propagation_rshared_receives_host_mounts() {
    let (seen, _, row) = crossed(None, Some("rshared"));
    assert!(row.optional.contains("shared:"), "{row:?}");
    assert_eq!(seen, "arrived\n");
}

#[test]
fn bind_propagation_rprivate_does_not() {
    let (seen, _, row) = crossed(None, Some("rprivate"));
    assert_eq!(row.optional, "", "{row:?}");
    assert_eq!(seen, "");
}
