//! Container-escape classes staged as a container (or a hostile image) would attack them
//! (issue 10; docs/security.md maps each CVE class to its test here). Needs root.

mod support;

use std::os::unix::fs::MetadataExt;

use serde_json::json;
use support::stage::{mkfifo, read_pid, write_executable};
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
        let own_procfs = rustix::fs::statfs(entry.path())
            .is_ok_and(|s| s.f_type == libc::PROC_SUPER_MAGIC && st.dev() != host_proc);
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
    write_executable(&marker.path().join("host-only"), "#!/bin/sh\nexit 0\n");
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

/// A copy of the runtime under test in a directory of its own: the CVE-2019-5736 tests attack
/// it, never the build output; each has its own state root. [`Layout::Overlay`]: the copy is
/// a plain file (pier runs it through a read-only overlayfs). [`Layout::Memfd`]: the copy is
/// bind-mounted over an empty file at the path it is run from (as the nspawn systemd suite
/// does), which an overlayfs layer cannot see, so pier falls back to a sealed memfd copy.
struct BinaryCopy {
    dir: tempfile::TempDir,
    /// The path the runtime is run from.
    bin: std::path::PathBuf,
    /// The file the attack aims at (the bind mount's source for [`Layout::Memfd`]).
    file: std::path::PathBuf,
    /// A state root of its own, commands run by the copy without `NOTIFY_SOCKET`.
    rt: Runtime,
    original: Vec<u8>,
    bound: bool,
}

#[derive(Clone, Copy)]
enum Layout {
    Overlay,
    Memfd,
}

impl BinaryCopy {
    fn new(layout: Layout) -> Self {
        let dir = support::host_tempdir("exe-copy");
        let file = dir.path().join("runtime");
        std::fs::copy(support::runtime_bin(), &file).expect("copy the runtime");
        let original = std::fs::read(&file).unwrap();
        let (bin, bound) = match layout {
            Layout::Overlay => (file.clone(), false),
            Layout::Memfd => {
                let bin = dir.path().join("pier");
                std::fs::write(&bin, "").unwrap();
                rustix::mount::mount_bind(&file, &bin).expect("bind the copy");
                (bin, true)
            }
        };
        BinaryCopy {
            dir,
            rt: Runtime::with_bin(&bin).without_notify_socket(),
            bin,
            file,
            original,
            bound,
        }
    }

    #[track_caller]
    fn assert_unchanged(&self) {
        let now = std::fs::read(&self.file).expect("read the copy");
        assert!(
            now == self.original,
            "the container rewrote the runtime's binary ({} bytes, were {}; starts {:?})",
            now.len(),
            self.original.len(),
            String::from_utf8_lossy(&now[..now.len().min(16)])
        );
        let _ = &self.dir;
    }
}

impl Drop for BinaryCopy {
    fn drop(&mut self) {
        if self.bound {
            let _ = rustix::mount::unmount(&self.bin, rustix::mount::UnmountFlags::DETACH);
        }
    }
}

/// Who runs `/proc/self/exe`: the container's first process, or an `exec`'d one.
#[derive(Clone, Copy)]
enum Victim {
    Entrypoint,
    Exec,
}

/// How the kernel is made to run `/proc/self/exe`.
#[derive(Clone, Copy)]
enum Trigger {
    /// `/victim` is a symlink to /proc/self/exe: `["/victim", "--log", "/log.fifo", "list"]`.
    Symlink,
    /// `/victim.sh` starts with `#!/proc/self/exe`: the runtime gets argv
    /// `["/proc/self/exe", "/victim.sh", "--log", "/log.fifo"]`, a usage error it logs.
    Script,
}

/// The attacker, run with `exec -d`: it holds `/proc/<victim>/exe` open while the victim
/// (the runtime's binary, run through /proc/self/exe) is blocked opening its log, a fifo;
/// releases it by reading the fifo (EOF when the victim exits), waits until the host has seen
/// the victim gone (no process runs the file any more, so no ETXTBSY), then reopens the held
/// fd for writing, as CVE-2019-5736's exploit does.
const ATTACK: &str = r#"v=$1
exec 3</proc/$v/exe || { echo cannot-open-exe > /result; exit 0; }
cat /log.fifo > /dev/null
read go < /go.fifo
if echo pwned > /proc/self/fd/3; then echo written; else echo refused; fi > /result 2>/result.err
"#;

/// CVE-2019-5736 class: the container runs the runtime's binary through /proc/self/exe and
/// tries to overwrite it once that process is gone. The runtime must have run from a copy
/// that cannot be written back (pier: a read-only overlayfs or a sealed memfd).
fn binary_attack(victim: Victim, trigger: Trigger, layout: Layout) {
    let copy = BinaryCopy::new(layout);
    let mut b = Bundle::new();
    let rootfs = b.rootfs();
    std::os::unix::fs::symlink("/proc/self/exe", rootfs.join("victim")).unwrap();
    write_executable(&rootfs.join("victim.sh"), "#!/proc/self/exe\n");
    std::fs::write(rootfs.join("attack.sh"), ATTACK).unwrap();
    for fifo in ["log.fifo", "go.fifo"] {
        mkfifo(&rootfs.join(fifo), 0o600);
    }
    let victim_args: &[&str] = match trigger {
        Trigger::Symlink => &["/victim", "--log", "/log.fifo", "list"],
        Trigger::Script => &["/victim.sh", "--log", "/log.fifo"],
    };
    let id = unique_id("exe");
    let pid_file = copy.dir.path().join("victim.pid");
    let victim_pid = match victim {
        Victim::Entrypoint => {
            // No pid namespace: the attacker must outlive the container's first process.
            b.namespaces(&["network", "ipc", "uts", "mount"]);
            b.args(victim_args);
            copy.rt.create(&b, &id);
            copy.rt.start(&id);
            copy.rt.init_pid(&id)
        }
        Victim::Exec => {
            b.args(&["sleep", "1000"]);
            copy.rt.create(&b, &id);
            copy.rt.start(&id);
            let mut args = vec!["exec", "-d", "--pid-file", pid_file.to_str().unwrap(), &id];
            args.extend_from_slice(victim_args);
            copy.rt.run(&args).ok();
            read_pid(&pid_file)
        }
    };
    // The victim's pid as the container sees it (the last NSpid field).
    let status = std::fs::read_to_string(format!("/proc/{victim_pid}/status")).unwrap();
    let inner_pid = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|l| l.split_whitespace().last())
        .expect("NSpid")
        .to_string();
    let exe = std::fs::metadata(format!("/proc/{victim_pid}/exe")).expect("the victim's exe");
    let host = std::fs::metadata(&copy.file).unwrap();
    assert_ne!(
        (exe.dev(), exe.ino()),
        (host.dev(), host.ino()),
        "the process that ran /proc/self/exe in the container runs the runtime's host binary"
    );
    if let Layout::Overlay = layout {
        let fs = rustix::fs::statfs(format!("/proc/{victim_pid}/exe").as_str()).unwrap();
        assert_eq!(
            fs.f_type, 0x794c_7630,
            "expected the read-only overlayfs copy (OVERLAYFS_SUPER_MAGIC)"
        );
    }
    if let Layout::Memfd = layout {
        let link = std::fs::read_link(format!("/proc/{victim_pid}/exe")).unwrap();
        assert!(
            link.to_string_lossy().starts_with("/memfd:"),
            "expected the memfd fallback, the victim runs {link:?}"
        );
    }
    let attacker_pid_file = copy.dir.path().join("attacker.pid");
    copy.rt
        .run(&[
            "exec",
            "-d",
            "--pid-file",
            attacker_pid_file.to_str().unwrap(),
            &id,
            "/bin/sh",
            "/attack.sh",
            &inner_pid,
        ])
        .ok();
    let attacker = read_pid(&attacker_pid_file);
    copy.rt.wait_gone(victim_pid);
    // O_RDWR on a fifo never blocks; the attacker's `read` gets the line.
    let mut go = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(rootfs.join("go.fifo"))
        .unwrap();
    std::io::Write::write_all(&mut go, b"go\n").unwrap();
    copy.rt.wait_gone(attacker);
    drop(go);
    let result = std::fs::read_to_string(rootfs.join("result")).unwrap_or_default();
    let err = std::fs::read_to_string(rootfs.join("result.err")).unwrap_or_default();
    // Deleted with the runtime under test itself: the copy may be what the attack broke.
    support::run_bare(&["--root", copy.rt.root_str(), "delete", "--force", &id]).ok();
    copy.assert_unchanged();
    assert_eq!(
        result.trim(),
        "refused",
        "the attacker's write of the runtime's binary: {result:?} ({err})"
    );
}

#[test]
fn entrypoint_symlink_to_proc_self_exe_cannot_rewrite_the_runtime() {
    binary_attack(Victim::Entrypoint, Trigger::Symlink, Layout::Overlay);
}

#[test]
fn entrypoint_script_run_by_proc_self_exe_cannot_rewrite_the_runtime() {
    binary_attack(Victim::Entrypoint, Trigger::Script, Layout::Overlay);
}

#[test]
fn exec_symlink_to_proc_self_exe_cannot_rewrite_the_runtime() {
    binary_attack(Victim::Exec, Trigger::Symlink, Layout::Overlay);
}

#[test]
fn exec_script_run_by_proc_self_exe_cannot_rewrite_the_runtime_memfd_fallback() {
    binary_attack(Victim::Exec, Trigger::Script, Layout::Memfd);
}

/// CVE-2019-5736 / CVE-2016-9962 class: the init is not dumpable while it is still the
/// runtime (a container process without CAP_SYS_PTRACE cannot open its /proc/<pid>/exe, fd/
/// or mem); the container's own program is, after `execve`, as with runc. The kernel shows
/// it in the owner: /proc/<pid>/fd belongs to root for a non-dumpable process, else to its euid (1000).
#[test]
fn init_is_not_dumpable_until_it_execs_the_container_process() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "100"]);
    b.config["process"]["user"] = json!({"uid": 1000, "gid": 1000});
    let id = unique_id("dump");
    rt.create(&b, &id);
    let pid = rt.init_pid(&id);
    let owner = |pid: i32| std::fs::metadata(format!("/proc/{pid}/fd")).unwrap().uid();
    let created = owner(pid);
    rt.start(&id);
    support::poll_until("the init has exec'd sleep", || {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.trim() == "sleep")
    });
    let running = owner(pid);
    rt.run(&["delete", "--force", &id]).ok();
    assert_eq!(created, 0, "the created init (uid 1000) is dumpable");
    assert_eq!(
        running, 1000,
        "the container's process is not dumpable after execve"
    );
}

/// CVE-2025-31133 class: masked files are bound from the runtime's /dev/null, which must be
/// the null device. Staged with a /dev/null that is a regular file in the mount namespace the
/// runtime runs in: `run` must refuse (clear error, nothing left), never mask /proc/keys
/// with that file.
#[test]
fn masked_paths_refuse_a_dev_null_that_is_not_the_null_device() {
    let rt = Runtime::new();
    let fake = support::host_tempdir("fakenull");
    let fake_null = fake.path().join("null");
    std::fs::write(&fake_null, "FAKE-NULL\n").unwrap();
    let mut b = Bundle::new();
    b.sh("cat /proc/keys /proc/timer_list");
    let id = unique_id("null");
    let mut cmd = std::process::Command::new("unshare");
    cmd.args(["-m", "--propagation", "private", "--", "sh", "-c"])
        .arg(r#"mount --bind "$0" /dev/null && exec "$@""#)
        .arg(&fake_null)
        .arg(support::runtime_bin())
        .args(["--root", rt.root_str(), "run", "--bundle", b.save(), &id]);
    let out = support::runner::run_command(cmd, support::TIMEOUT);
    assert!(
        !out.stdout.contains("FAKE-NULL"),
        "a masked path was bound from a fake /dev/null:\n{out}"
    );
    assert_ne!(
        out.code(),
        Some(0),
        "run succeeded with a fake /dev/null:\n{out}"
    );
    assert!(
        out.stderr.contains("/dev/null is not the null device"),
        "unclear error:\n{out}"
    );
    rt.assert_clean(&b, &id);
}

/// Ids that escape the state root: `delete -f`, `kill` and `state` of `../<other root>/<id>`
/// must refuse (runc: "invalid container ID format") and leave the other root's container
/// running.
#[test]
fn ids_cannot_reach_a_container_outside_the_state_root() {
    let (rt, other) = (Runtime::new(), Runtime::new());
    let mut b = Bundle::new();
    b.args(&["sleep", "100"]);
    let id = unique_id("outside");
    other.create(&b, &id);
    let name = other.root().file_name().unwrap().to_str().unwrap();
    let escape = format!("../{name}/{id}");
    for args in [
        vec!["delete", "--force", &escape],
        vec!["kill", &escape, "KILL"],
        vec!["state", &escape],
    ] {
        let out = rt.run(&args);
        out.code_is(1);
        assert!(out.stderr.contains("invalid container ID format"), "{out}");
    }
    assert_eq!(other.state(&id)["status"], "created");
    other.run(&["delete", "--force", &id]).ok();
    other.assert_clean(&b, &id);
}

/// `--root` given as a symlink to a directory is followed, as runc does: the state lands in
/// the directory it points to and every command finds the container through either path.
#[test]
fn a_symlinked_root_is_followed_like_runc() {
    let rt = Runtime::new();
    let links = support::host_tempdir("rootlink");
    let link = links.path().join("root");
    std::os::unix::fs::symlink(rt.root(), &link).unwrap();
    let link = link.to_str().unwrap();
    let mut b = Bundle::new();
    b.args(&["sleep", "100"]);
    let id = unique_id("symroot");
    support::run_bare(&["--root", link, "create", "--bundle", b.save(), &id]).ok();
    assert!(
        rt.root().join(&id).is_dir(),
        "no state dir in the real root"
    );
    assert_eq!(rt.state(&id)["status"], "created");
    support::run_bare(&["--root", link, "delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}

/// CVE-2024-21626 class: `--preserve-fds N` passes only the caller's fds. With `--log FILE`
/// and no fd 3 of the caller's, pier's own log file must not be what the container gets as
/// fd 3 (it could then write records into the engine's log).
#[test]
fn preserve_fds_never_hands_pier_own_log_fd_to_the_container() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo INJECTED >&3");
    let id = unique_id("pfd-log");
    let (out, log) = rt.run_logged(&["run", "--preserve-fds", "1", "--bundle", b.save(), &id]);
    let text = log.text();
    assert!(
        !text.contains("INJECTED"),
        "the container wrote into pier's --log file through fd 3:\n{text}\n{out}"
    );
}

/// The config's mounts without the tmpfs at /dev: the image's own /dev is what the
/// container gets (and what a hostile image controls).
fn without_dev_tmpfs(b: &mut Bundle) {
    b.config["mounts"]
        .as_array_mut()
        .unwrap()
        .retain(|m| m["destination"] != "/dev");
}

/// The image's /dev (no tmpfs over it) holds `name` as a symlink to the host's core_pattern.
fn image_dev_symlink_to_core_pattern(b: &mut Bundle, name: &str) {
    without_dev_tmpfs(b);
    let dev = b.rootfs().join("dev");
    std::fs::create_dir_all(&dev).unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", dev.join(name)).unwrap();
}

/// CVE-2025-52565 class: the pty bound at /dev/console must be the one the runtime opened,
/// never whatever a path the container controls names. Staged with a bind over /dev/pts (after
/// its devpts) holding `ptmx -> /realpts/ptmx` (a second devpts: a real pty is allocated) and
/// `0 -> /proc/sys/kernel/core_pattern`, the name the pty's number gives (`/dev/pts/0`):
/// binding that name would put core_pattern at /dev/console (runc 1.1.5 does so before it
/// applies readonlyPaths, so it is writable there).
#[test]
fn dev_console_is_bound_from_the_pty_never_through_a_path_of_the_container() {
    let rt = Runtime::new();
    let fake_pts = support::host_tempdir("fakepts");
    std::os::unix::fs::symlink("/realpts/ptmx", fake_pts.path().join("ptmx")).unwrap();
    std::os::unix::fs::symlink("/proc/sys/kernel/core_pattern", fake_pts.path().join("0")).unwrap();
    let mut b = Bundle::new();
    b.config["process"]["terminal"] = json!(true);
    b.sh("[ -c /dev/console ] && echo console-is-a-char-device; grep ' /dev/console ' /proc/self/mountinfo");
    b.mount(json!({
        "destination": "/realpts",
        "type": "devpts",
        "source": "devpts",
        "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]
    }));
    b.mount(json!({
        "destination": "/dev/pts",
        "type": "bind",
        "source": fake_pts.path(),
        "options": ["rbind"]
    }));
    let id = unique_id("console");
    let out = rt.run(&["run", "--bundle", b.save(), &id]);
    rt.run(&["delete", "--force", &id]).ok();
    assert!(
        out.stdout.contains("console-is-a-char-device") && out.stdout.contains(" - devpts "),
        "/dev/console is not the container's pty:\n{out}"
    );
}

/// CVE-2025-52565 / CVE-2025-31133 class: an image whose /dev/console is a symlink (here to
/// the host's core_pattern path) must not get the console bound through it: refused, with the
/// path named, nothing left behind.
#[test]
fn a_symlinked_dev_console_in_the_image_is_refused() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    image_dev_symlink_to_core_pattern(&mut b, "console");
    b.config["process"]["terminal"] = json!(true);
    b.sh("grep ' /proc/sys' /proc/self/mountinfo; echo ran");
    let id = unique_id("symconsole");
    let out = rt.run(&["run", "--bundle", b.save(), &id]);
    assert!(!out.stdout.contains("ran"), "the container ran:\n{out}");
    assert!(out.stderr.contains("/dev/console"), "unclear error:\n{out}");
    rt.assert_clean(&b, &id);
}

/// CVE-2026-41579 / CVE-2025-31133 class: an image whose /dev is a symlink to a host
/// directory (absolute), with no tmpfs over /dev: the devices, the /dev symlinks (ptmx, fd,
/// stdin...) and the devpts mount all land inside the rootfs, never in that host directory
/// (a decoy `ptmx` there survives, nothing is added).
#[test]
fn an_image_dev_symlink_to_a_host_directory_is_not_followed_out() {
    let rt = Runtime::new();
    let host = support::host_tempdir("hostdev");
    std::fs::write(host.path().join("ptmx"), "DECOY\n").unwrap();
    let mut b = Bundle::new();
    without_dev_tmpfs(&mut b);
    let dev = b.rootfs().join("dev");
    let _ = std::fs::remove_dir_all(&dev);
    std::os::unix::fs::symlink(host.path(), dev).unwrap();
    b.sh("[ -c /dev/null ] && [ -L /dev/ptmx ] && echo dev-is-set-up");
    let id = unique_id("devlink");
    let out = rt.run(&["run", "--bundle", b.save(), &id]);
    rt.run(&["delete", "--force", &id]).ok();
    let entries: Vec<String> = std::fs::read_dir(host.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        entries,
        ["ptmx"],
        "the runtime wrote into the host directory the image's /dev points to"
    );
    assert_eq!(
        std::fs::read_to_string(host.path().join("ptmx")).unwrap(),
        "DECOY\n"
    );
    assert!(out.stdout.contains("dev-is-set-up"), "{out}");
}

/// CVE-2025-31133 class, from the image: its /dev/null is a symlink to
/// /proc/sys/kernel/core_pattern (no tmpfs over /dev). Masked files must be the null device
/// (runc 1.1.5 binds the container's /dev/null, so through the symlink), and the image's
/// /dev/null is replaced by the real node.
#[test]
fn an_image_dev_null_symlink_does_not_become_the_mask() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    image_dev_symlink_to_core_pattern(&mut b, "null");
    b.sh("for f in /dev/null /proc/keys /proc/timer_list; do echo \"$f $(stat -c '%F %t:%T' $f)\"; done");
    let id = unique_id("imgnull");
    let out = rt.run(&["run", "--bundle", b.save(), &id]);
    rt.run(&["delete", "--force", &id]).ok();
    for f in ["/dev/null", "/proc/keys", "/proc/timer_list"] {
        assert!(
            out.stdout
                .contains(&format!("{f} character special file 1:3")),
            "{f} is not the null device:\n{out}"
        );
    }
}

/// CVE-2025-52881 class, by config.json alone: a sysctl that no namespace of the container
/// holds (kernel.core_pattern is the host's) is refused before anything is made, as runc
/// refuses it. The value asked is the host's current one, so a runtime that wrote it anyway
/// changes nothing.
#[test]
fn a_sysctl_of_the_host_such_as_core_pattern_is_refused() {
    let rt = Runtime::new();
    let current = std::fs::read_to_string("/proc/sys/kernel/core_pattern").unwrap();
    let mut b = Bundle::new();
    b.config["linux"]["sysctl"] = json!({"kernel.core_pattern": current.trim_end()});
    let id = unique_id("corepat");
    let out = rt.run(&["run", "--bundle", b.save(), &id]);
    assert_ne!(
        out.code(),
        Some(0),
        "run set the host's core_pattern:\n{out}"
    );
    assert!(
        out.stderr.contains("kernel.core_pattern")
            && out.stderr.contains("is not in a separate kernel namespace"),
        "unclear error:\n{out}"
    );
    rt.assert_clean(&b, &id);
}

/// /proc/<pid>/mem of a runtime process, from inside the container: the created init still
/// runs pier's code, already with the container's uid and capabilities, so only its being
/// non-dumpable (`PR_SET_DUMPABLE 0`: ptrace access mode ATTACH, which opening `mem` checks,
/// then needs CAP_SYS_PTRACE) keeps a process exec'd into the created container (uid 0, the
/// same capabilities) from rewriting it.
#[test]
fn a_container_process_cannot_open_the_created_init_memory() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.args(&["sleep", "100"]);
    let id = unique_id("initmem");
    rt.create(&b, &id);
    let out = rt.run(&[
        "exec",
        &id,
        "sh",
        "-c",
        "if true 3<>/proc/1/mem; then echo opened-mem; else echo refused-mem; fi; \
         if true 3</proc/1/maps; then echo opened-maps; else echo refused-maps; fi",
    ]);
    rt.run(&["delete", "--force", &id]).ok();
    assert!(
        out.stdout.contains("refused-mem") && !out.stdout.contains("opened-mem"),
        "a container process opened the created init's memory for writing:\n{out}"
    );
}

/// The attacker of [`binary_memory_is_not_written_through_proc_pid_mem`]: it writes `pwned`
/// at the first mapping of the victim (the runtime's ELF header, a private file mapping) through
/// `/proc/<victim>/mem` while the victim is blocked opening its log fifo, then releases it.
const MEM_ATTACK: &str = r#"v=$1
a=$(awk 'NR==1 { split($1, r, "-"); print r[1]; exit }' /proc/$v/maps)
if printf pwned | dd of=/proc/$v/mem bs=1 seek=$((0x$a)) conv=notrunc 2>/result.err; then
  echo written; else echo refused; fi > /result
cat /log.fifo > /dev/null
"#;

/// /proc/<pid>/mem at the runtime's binary: a process of the container running the runtime
/// (through /proc/self/exe) is dumpable and the container's own, so its memory can be
/// written; that must never reach the file (the kernel breaks copy-on-write of a private
/// mapping, and pier runs from a read-only copy besides). A guard: no pier code decides it.
#[test]
fn binary_memory_is_not_written_through_proc_pid_mem() {
    let copy = BinaryCopy::new(Layout::Overlay);
    let mut b = Bundle::new();
    let rootfs = b.rootfs();
    std::os::unix::fs::symlink("/proc/self/exe", rootfs.join("victim")).unwrap();
    std::fs::write(rootfs.join("attack.sh"), MEM_ATTACK).unwrap();
    mkfifo(&rootfs.join("log.fifo"), 0o600);
    b.args(&["sleep", "1000"]);
    let id = unique_id("exemem");
    copy.rt.create(&b, &id);
    copy.rt.start(&id);
    let pid_file = copy.dir.path().join("victim.pid");
    let pid_arg = pid_file.to_str().unwrap();
    copy.rt
        .run(&[
            "exec",
            "-d",
            "--pid-file",
            pid_arg,
            &id,
            "/victim",
            "--log",
            "/log.fifo",
            "list",
        ])
        .ok();
    let victim = read_pid(&pid_file);
    let status = std::fs::read_to_string(format!("/proc/{victim}/status")).unwrap();
    let inner = status
        .lines()
        .find_map(|l| l.strip_prefix("NSpid:"))
        .and_then(|l| l.split_whitespace().last())
        .expect("NSpid")
        .to_string();
    let attacker_pid_file = copy.dir.path().join("attacker.pid");
    let attacker_arg = attacker_pid_file.to_str().unwrap();
    copy.rt
        .run(&[
            "exec",
            "-d",
            "--pid-file",
            attacker_arg,
            &id,
            "/bin/sh",
            "/attack.sh",
            &inner,
        ])
        .ok();
    let attacker = read_pid(&attacker_pid_file);
    copy.rt.wait_gone(victim);
    copy.rt.wait_gone(attacker);
    let result = std::fs::read_to_string(rootfs.join("result")).unwrap_or_default();
    let err = std::fs::read_to_string(rootfs.join("result.err")).unwrap_or_default();
    support::run_bare(&["--root", copy.rt.root_str(), "delete", "--force", &id]).ok();
    copy.assert_unchanged();
    assert_eq!(
        result.trim(),
        "written",
        "the attack did not reach the victim's memory, so it proves nothing: {err}"
    );
}
