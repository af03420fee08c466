//! containerd's CRI plugin with two runtime handlers, `runc` and `pier` (the runc v2 shim with
//! `BinaryName`), driven through the CRI API as the kubelet drives it (issues 13 and 17).
//! containerd is started by hand (its own root, state, socket and config); the image, also
//! the pod sandbox's "pause" image, is a busybox-static rootfs imported with `ctr` (no
//! registry); pods use the host network (no CNI). Each scenario runs with both handlers and
//! what it records must be the same. Needs root and containerd; skipped (with a message)
//! without them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use hyper_util::rt::TokioIo;
use k8s_cri::v1::runtime_service_client::RuntimeServiceClient;
use k8s_cri::v1::*;
use tonic::transport::{Channel, Endpoint, Uri};

const IMAGE: &str = "docker.io/library/pier-cri-bb:latest";
const PAUSE: &str = "docker.io/library/pier-cri-pause:latest";

/// containerd with the CRI plugin, stopped (and its tasks removed) on drop.
struct Containerd {
    dir: tempfile::TempDir,
    child: Child,
}

impl Containerd {
    fn socket(&self) -> PathBuf {
        self.dir.path().join("containerd.sock")
    }

    fn ctr(&self, args: &[&str]) -> std::process::Output {
        Command::new("ctr")
            .arg("--address")
            .arg(self.socket())
            .args(["-n", "k8s.io"])
            .args(args)
            .output()
            .expect("run ctr")
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn pier_binary() -> PathBuf {
    std::env::var_os("PIER_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo().join("target/x86_64-unknown-linux-gnu/release/pier"))
}

/// Start containerd and import the images, or None (and why) when this machine cannot.
fn start() -> Option<Containerd> {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: the CRI tests need root");
        return None;
    }
    if Command::new("containerd")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: containerd is not installed");
        return None;
    }
    let pier = pier_binary();
    assert!(
        pier.exists(),
        "no pier binary at {} (cargo build --release)",
        pier.display()
    );
    let dir = tempfile::Builder::new()
        .prefix("pier-cri-")
        .tempdir()
        .unwrap();
    let d = dir.path().display().to_string();
    let config = format!(
        r#"version = 2
root = "{d}/root"
state = "{d}/state"
[grpc]
  address = "{d}/containerd.sock"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "{PAUSE}"
  enable_selinux = false
  # This machine's root may not lower oom_score_adj (the sandbox asks for -998).
  restrict_oom_score_adj = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pier]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.pier.options]
        BinaryName = "{pier}"
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "{d}/cni/bin"
    conf_dir = "{d}/cni/conf"
"#,
        pier = pier.display()
    );
    std::fs::write(dir.path().join("config.toml"), config).unwrap();
    let log = std::fs::File::create(dir.path().join("containerd.log")).unwrap();
    let child = Command::new("containerd")
        .arg("--config")
        .arg(dir.path().join("config.toml"))
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        .spawn()
        .expect("start containerd");
    let c = Containerd { dir, child };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !c.socket().exists() {
        assert!(Instant::now() < deadline, "containerd did not start");
        std::thread::sleep(Duration::from_millis(20));
    }
    for (name, cmd) in [(IMAGE, "[\"sh\"]"), (PAUSE, "[\"sleep\", \"2147483647\"]")] {
        let archive = c.dir.path().join(format!("{}.tar", name.len()));
        let made = Command::new("python3")
            .arg(repo().join("tests/engines/run.py"))
            .args(["--make-image"])
            .arg(&archive)
            .args([name, cmd])
            .status()
            .unwrap();
        assert!(made.success(), "make the image archive");
        let out = c.ctr(&["images", "import", archive.to_str().unwrap()]);
        assert!(out.status.success(), "ctr import: {out:?}");
    }
    Some(c)
}

async fn client(c: &Containerd) -> RuntimeServiceClient<Channel> {
    let path = c.socket();
    let channel = Endpoint::try_from("http://[::]")
        .unwrap()
        .connect_with_connector(tower::service_fn(move |_: Uri| {
            let path = path.clone();
            async move {
                Ok::<_, std::io::Error>(TokioIo::new(tokio::net::UnixStream::connect(path).await?))
            }
        }))
        .await
        .expect("connect to containerd");
    RuntimeServiceClient::new(channel)
}

/// A pod on the host network (no CNI); `pid_mode` is the sandbox's pid namespace mode.
fn sandbox_config(name: &str, logs: &Path, pid_mode: NamespaceMode) -> PodSandboxConfig {
    PodSandboxConfig {
        metadata: Some(PodSandboxMetadata {
            name: name.into(),
            uid: format!("uid-{name}"),
            namespace: "pier-cri".into(),
            attempt: 0,
        }),
        // The kubelet sends no hostname for a host-network pod (runc refuses one there).
        log_directory: logs.display().to_string(),
        linux: Some(LinuxPodSandboxConfig {
            security_context: Some(LinuxSandboxSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    pid: pid_mode as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn container_config(name: &str, script: &str, pid_mode: NamespaceMode) -> ContainerConfig {
    ContainerConfig {
        metadata: Some(ContainerMetadata {
            name: name.into(),
            attempt: 0,
        }),
        image: Some(ImageSpec {
            image: IMAGE.into(),
            ..Default::default()
        }),
        command: vec!["sh".into(), "-c".into(), script.into()],
        log_path: format!("{name}.log"),
        linux: Some(LinuxContainerConfig {
            resources: Some(LinuxContainerResources {
                memory_limit_in_bytes: 64 << 20,
                ..Default::default()
            }),
            security_context: Some(LinuxContainerSecurityContext {
                namespace_options: Some(NamespaceOption {
                    network: NamespaceMode::Node as i32,
                    pid: pid_mode as i32,
                    ipc: NamespaceMode::Pod as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
        }),
        ..Default::default()
    }
}

struct Pod {
    id: String,
    config: PodSandboxConfig,
}

async fn run_pod(
    cri: &mut RuntimeServiceClient<Channel>,
    handler: &str,
    config: PodSandboxConfig,
) -> Pod {
    let id = cri
        .run_pod_sandbox(RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler.into(),
        })
        .await
        .unwrap_or_else(|e| panic!("RunPodSandbox with {handler}: {e}"))
        .into_inner()
        .pod_sandbox_id;
    Pod { id, config }
}

async fn create_and_start(
    cri: &mut RuntimeServiceClient<Channel>,
    pod: &Pod,
    config: ContainerConfig,
) -> String {
    let id = cri
        .create_container(CreateContainerRequest {
            pod_sandbox_id: pod.id.clone(),
            config: Some(config),
            sandbox_config: Some(pod.config.clone()),
        })
        .await
        .expect("CreateContainer")
        .into_inner()
        .container_id;
    cri.start_container(StartContainerRequest {
        container_id: id.clone(),
    })
    .await
    .expect("StartContainer");
    id
}

async fn exec(cri: &mut RuntimeServiceClient<Channel>, id: &str, cmd: &[&str]) -> String {
    let r = cri
        .exec_sync(ExecSyncRequest {
            container_id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            timeout: 30,
        })
        .await
        .expect("ExecSync")
        .into_inner();
    format!(
        "[{}] {}{}",
        r.exit_code,
        String::from_utf8_lossy(&r.stdout),
        String::from_utf8_lossy(&r.stderr)
    )
}

async fn status(cri: &mut RuntimeServiceClient<Channel>, id: &str) -> ContainerStatus {
    cri.container_status(ContainerStatusRequest {
        container_id: id.into(),
        verbose: false,
    })
    .await
    .expect("ContainerStatus")
    .into_inner()
    .status
    .expect("a status")
}

async fn remove_pod(cri: &mut RuntimeServiceClient<Channel>, pod: &Pod) {
    cri.stop_pod_sandbox(StopPodSandboxRequest {
        pod_sandbox_id: pod.id.clone(),
    })
    .await
    .expect("StopPodSandbox");
    cri.remove_pod_sandbox(RemovePodSandboxRequest {
        pod_sandbox_id: pod.id.clone(),
    })
    .await
    .expect("RemovePodSandbox");
}

/// The kubelet's life of a container: what each call gave, as text.
async fn lifecycle(c: &Containerd, handler: &str) -> Vec<String> {
    let mut cri = client(c).await;
    let logs = c.dir.path().join(format!("logs-{handler}"));
    std::fs::create_dir_all(&logs).unwrap();
    let pod = run_pod(
        &mut cri,
        handler,
        sandbox_config(&format!("life-{handler}"), &logs, NamespaceMode::Container),
    )
    .await;
    let script =
        "trap 'echo got-term; exit 0' TERM; echo started; while :; do sleep 1 & wait $!; done";
    let id = create_and_start(
        &mut cri,
        &pod,
        container_config("life", script, NamespaceMode::Container),
    )
    .await;
    let mut seen = vec![
        exec(&mut cri, &id, &["sh", "-c", "echo in-exec; exit 3"]).await,
        exec(&mut cri, &id, &["sh", "-c", "ip -o addr show dev lo >/dev/null && echo lo; id -u"]).await,
        exec(&mut cri, &id, &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max"]).await,
    ];
    cri.update_container_resources(UpdateContainerResourcesRequest {
        container_id: id.clone(),
        linux: Some(LinuxContainerResources {
            memory_limit_in_bytes: 128 << 20,
            cpu_quota: 20_000,
            cpu_period: 100_000,
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("UpdateContainerResources");
    seen.push(exec(&mut cri, &id, &["sh", "-c", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cat /sys/fs/cgroup/memory.max /sys/fs/cgroup/cpu.max"]).await);
    let stats = cri
        .container_stats(ContainerStatsRequest {
            container_id: id.clone(),
        })
        .await
        .expect("ContainerStats")
        .into_inner()
        .stats
        .expect("stats");
    seen.push(format!(
        "stats: memory {}, cpu {}",
        stats
            .memory
            .as_ref()
            .is_some_and(|m| m.working_set_bytes.as_ref().is_some_and(|v| v.value > 0)),
        stats.cpu.is_some()
    ));
    cri.stop_container(StopContainerRequest {
        container_id: id.clone(),
        timeout: 10,
    })
    .await
    .expect("StopContainer");
    let st = status(&mut cri, &id).await;
    seen.push(format!("state {} exit {}", st.state, st.exit_code));
    let log = std::fs::read_to_string(Path::new(&st.log_path)).unwrap_or_default();
    seen.push(
        log.lines()
            .map(|l| l.splitn(4, ' ').nth(3).unwrap_or(""))
            .collect::<Vec<_>>()
            .join("|"),
    );
    cri.remove_container(RemoveContainerRequest { container_id: id })
        .await
        .expect("RemoveContainer");
    remove_pod(&mut cri, &pod).await;
    seen
}

/// Pids in the pid namespace `ns` (its `/proc/<pid>/ns/pid` inode) whose command line is
/// `cmd` and that are neither exiting (zombie, dead) nor about to (a SIGKILL pending).
fn processes_in_pidns(ns: u64, cmd: &str) -> Vec<i32> {
    let dying = |pid: i32| {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let field = |name: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        let kill_pending =
            |mask: String| u64::from_str_radix(&mask, 16).is_ok_and(|m| m & (1 << 8) != 0);
        status.is_empty()
            || field("State:").starts_with(['Z', 'X'])
            || kill_pending(field("SigPnd:"))
            || kill_pending(field("ShdPnd:"))
    };
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|pid| {
            use std::os::unix::fs::MetadataExt;
            std::fs::metadata(format!("/proc/{pid}/ns/pid")).is_ok_and(|m| m.ino() == ns)
                && std::fs::read(format!("/proc/{pid}/cmdline"))
                    .is_ok_and(|c| String::from_utf8_lossy(&c).replace('\0', " ").trim() == cmd)
                && !dying(*pid)
        })
        .collect()
}

/// Issue 17: in a pod sharing its pid namespace, a container whose main process exits leaving
/// a child behind: the shim's `kill --all` must kill the child. Returns the seconds from
/// StartContainer until the container is reported exited (a benchmark figure, printed).
async fn leftovers(c: &Containerd, handler: &str) -> (Vec<String>, f64) {
    let mut cri = client(c).await;
    let logs = c.dir.path().join(format!("logs-left-{handler}"));
    std::fs::create_dir_all(&logs).unwrap();
    let pod = run_pod(
        &mut cri,
        handler,
        sandbox_config(&format!("left-{handler}"), &logs, NamespaceMode::Pod),
    )
    .await;
    let info = cri
        .pod_sandbox_status(PodSandboxStatusRequest {
            pod_sandbox_id: pod.id.clone(),
            verbose: true,
        })
        .await
        .expect("PodSandboxStatus")
        .into_inner()
        .info;
    let info: serde_json::Value =
        serde_json::from_str(info.get("info").expect("verbose info")).unwrap();
    let sandbox_pid = info["pid"].as_i64().expect("sandbox pid");
    let ns = {
        use std::os::unix::fs::MetadataExt;
        std::fs::metadata(format!("/proc/{sandbox_pid}/ns/pid"))
            .unwrap()
            .ino()
    };
    let started = Instant::now();
    let id = create_and_start(
        &mut cri,
        &pod,
        container_config("left", "sleep 20 & sleep 1", NamespaceMode::Pod),
    )
    .await;
    let exited = loop {
        let st = status(&mut cri, &id).await;
        if st.state == ContainerState::ContainerExited as i32 {
            break started.elapsed().as_secs_f64();
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "never reported exited"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut seen = vec![format!(
        "left behind after exit: {:?}",
        processes_in_pidns(ns, "sleep 20").len()
    )];
    // The shim logs its `kill --all` failing; containerd's delete would kill the leftover
    // later, after the shim gave up waiting for its stdio (the delay issue 17 measured).
    let log = std::fs::read_to_string(c.dir.path().join("containerd.log")).unwrap_or_default();
    let failed: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("kill") && l.contains("level=error"))
        .collect();
    seen.push(format!("kill errors logged: {failed:?}"));
    cri.remove_container(RemoveContainerRequest { container_id: id })
        .await
        .expect("RemoveContainer");
    remove_pod(&mut cri, &pod).await;
    (seen, exited)
}

#[tokio::test(flavor = "current_thread")]
async fn the_kubelet_s_calls_give_the_same_with_runc_and_pier() {
    let Some(c) = start() else { return };
    let runc = lifecycle(&c, "runc").await;
    let pier = lifecycle(&c, "pier").await;
    println!("{pier:#?}");
    assert_eq!(runc, pier, "runc: {runc:#?}\npier: {pier:#?}");
    assert_eq!(runc[0], "[3] in-exec\n", "{runc:#?}");
}

#[tokio::test(flavor = "current_thread")]
async fn kill_all_after_the_main_process_exited_kills_the_pod_s_leftovers() {
    let Some(c) = start() else { return };
    // runc first: the log check reads containerd's whole log.
    let (runc, runc_secs) = leftovers(&c, "runc").await;
    let (pier, pier_secs) = leftovers(&c, "pier").await;
    println!("reported exited after: runc {runc_secs:.2} s, pier {pier_secs:.2} s");
    assert_eq!(runc, pier);
    assert_eq!(pier[0], "left behind after exit: 0");
}

/// Issue 17: Kubernetes' mount propagation through the CRI. A shared tmpfs on the host is a
/// volume with each propagation mode; the container (privileged, as Bidirectional requires)
/// mounts a tmpfs below it and looks for one the host mounted before it started. Returns
/// (host -> container, container -> host) per mode.
async fn propagation(c: &Containerd, handler: &str) -> Vec<String> {
    use rustix::mount::{
        mount, mount_change, unmount, MountFlags, MountPropagationFlags, UnmountFlags,
    };
    let mut cri = client(c).await;
    let logs = c.dir.path().join(format!("logs-prop-{handler}"));
    std::fs::create_dir_all(&logs).unwrap();
    let mut config = sandbox_config(&format!("prop-{handler}"), &logs, NamespaceMode::Container);
    config
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .privileged = true;
    let pod = run_pod(&mut cri, handler, config).await;
    let mut seen = Vec::new();
    for (label, mode) in [
        ("None", MountPropagation::PropagationPrivate),
        (
            "HostToContainer",
            MountPropagation::PropagationHostToContainer,
        ),
        ("Bidirectional", MountPropagation::PropagationBidirectional),
    ] {
        let vol = c.dir.path().join(format!("vol-{handler}-{label}"));
        std::fs::create_dir_all(&vol).unwrap();
        mount("tmpfs", &vol, "tmpfs", MountFlags::empty(), None).unwrap();
        mount_change(&vol, MountPropagationFlags::SHARED).unwrap();
        std::fs::create_dir(vol.join("inner")).unwrap();
        std::fs::create_dir(vol.join("late")).unwrap();
        let mut cc = container_config(
            &format!("prop-{}", label.to_lowercase()),
            "until [ -e /vol/go ]; do sleep 0.1; done; ls /vol/late; \
             mount -t tmpfs tmpfs /vol/inner && touch /vol/inner/from-container",
            NamespaceMode::Container,
        );
        cc.mounts = vec![Mount {
            container_path: "/vol".into(),
            host_path: vol.display().to_string(),
            propagation: mode as i32,
            ..Default::default()
        }];
        cc.linux
            .as_mut()
            .unwrap()
            .security_context
            .as_mut()
            .unwrap()
            .privileged = true;
        let id = create_and_start(&mut cri, &pod, cc).await;
        mount(
            "tmpfs",
            vol.join("late"),
            "tmpfs",
            MountFlags::empty(),
            None,
        )
        .unwrap();
        std::fs::write(vol.join("late/arrived"), "").unwrap();
        std::fs::write(vol.join("go"), "").unwrap();
        let st = loop {
            let st = status(&mut cri, &id).await;
            if st.state == ContainerState::ContainerExited as i32 {
                break st;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        };
        let log = std::fs::read_to_string(&st.log_path).unwrap_or_default();
        let to_host = vol.join("inner/from-container").exists();
        seen.push(format!(
            "{label}: host->container {}, container->host {to_host}, exit {}",
            log.contains("arrived"),
            st.exit_code
        ));
        cri.remove_container(RemoveContainerRequest { container_id: id })
            .await
            .expect("RemoveContainer");
        let _ = unmount(&vol, UnmountFlags::DETACH);
    }
    remove_pod(&mut cri, &pod).await;
    seen
}

#[tokio::test(flavor = "current_thread")]
async fn mount_propagation_modes_cross_as_with_runc() {
    let Some(c) = start() else { return };
    let runc = propagation(&c, "runc").await;
    let pier = propagation(&c, "pier").await;
    assert_eq!(runc, pier);
    assert_eq!(
        pier,
        [
            "None: host->container false, container->host false, exit 0",
            "HostToContainer: host->container true, container->host false, exit 0",
            "Bidirectional: host->container true, container->host true, exit 0",
        ]
    );
}
