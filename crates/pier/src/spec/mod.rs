//! config.json (OCI runtime-spec, parsed with oci-spec) -> a validated [`Plan`].
//!
//! config.json is untrusted input. [`load`] reads and parses it, dropping unknown capability
//! names with a warning (as runc does; oci-spec would refuse the whole file); [`plan_from_spec`]
//! is pure and rejects what cannot be run, with a message naming the field.

pub mod default;
mod mounts;
pub mod plan;
mod process;
mod rootless;
mod seccomp;
mod userns;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use oci_spec::runtime::{LinuxDeviceType, LinuxNamespaceType, Spec};

pub use mounts::{parse_propagation, MOUNT_OPTIONS};

/// The runtime-spec version pier implements: the `ociVersion` of the state it reports
/// (runtime.md "State": the version "with which the state complies", not config.json's; runc
/// reports its own too), of `spec`'s config.json and `features`' `ociVersionMax`.
pub const SPEC_VERSION: &str = "1.2.0";
pub use plan::*;
pub use process::parse_process;
pub use rootless::check_rootless;
pub use seccomp::{Seccomp, SeccompAction, SeccompArg, SeccompOp, SyscallRule};

/// Read `<bundle>/config.json` and build its Plan. `bundle` should be absolute.
///
/// # Errors
/// The file is missing or unreadable, is not JSON, does not match the runtime-spec schema, or
/// fails [`plan_from_spec`]'s validation.
pub fn load(bundle: &Path) -> Result<Plan> {
    let path = bundle.join("config.json");
    let bytes = std::fs::read(&path).with_context(|| format!("read {}", path.display()))?;
    let mut value: serde_json::Value =
        serde_json::from_slice(&bytes).context("parse config.json: invalid JSON")?;
    process::drop_unknown_capabilities(&mut value);
    let spec: Spec = serde_json::from_value(value).context("parse config.json")?;
    plan_from_spec(&spec, bundle)
}

/// Validate `spec` and turn it into a Plan. Pure: no filesystem access.
///
/// # Errors
/// An `ociVersion` other than 1.x, no `process` or empty `process.args`, a relative `cwd`, no
/// `root`, a namespace type listed twice, a device of an unknown type, a `linux.seccomp`
/// profile pier cannot apply (see `seccomp::seccomp_of`).
pub fn plan_from_spec(spec: &Spec, bundle: &Path) -> Result<Plan> {
    let version = spec.version();
    if !version.starts_with("1.") {
        bail!("unsupported ociVersion {version:?}: pier runs runtime-spec 1.x");
    }
    refuse_unsupported(spec)?;
    let root = spec
        .root()
        .as_ref()
        .context("config.json: root must be set")?;
    let rootfs = bundle.join(root.path());
    let linux = spec.linux().clone().unwrap_or_default();
    let process = spec
        .process()
        .as_ref()
        .context("config.json: process must be set")?;
    let plan = Plan {
        oci_version: version.clone(),
        bundle: bundle.to_path_buf(),
        rootfs,
        root_readonly: root.readonly().unwrap_or(false),
        hostname: spec.hostname().clone(),
        domainname: spec.domainname().clone(),
        namespaces: namespaces(&linux)?,
        uid_mappings: userns::mappings_of(linux.uid_mappings().as_ref(), "linux.uidMappings")?,
        gid_mappings: userns::mappings_of(linux.gid_mappings().as_ref(), "linux.gidMappings")?,
        mounts: spec
            .mounts()
            .iter()
            .flatten()
            .map(mount_of)
            .collect::<Result<_>>()?,
        rootfs_propagation: rootfs_propagation(linux.rootfs_propagation().as_deref())?,
        devices: devices(&linux)?,
        masked_paths: linux.masked_paths().clone().unwrap_or_default(),
        readonly_paths: linux.readonly_paths().clone().unwrap_or_default(),
        sysctl: linux
            .sysctl()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        process: Process {
            personality: linux.personality().as_ref().map(personality).transpose()?,
            ..process::process_of(process)?
        },
        seccomp: linux
            .seccomp()
            .as_ref()
            .map(seccomp::seccomp_of)
            .transpose()?,
        cgroup: CgroupPlan {
            path: linux
                .cgroups_path()
                .as_ref()
                .map(|p| p.display().to_string()),
            resources: linux.resources().clone(),
        },
        annotations: spec
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect::<BTreeMap<_, _>>(),
        hooks: hooks_of(spec.hooks().as_ref())?,
    };
    check_namespaces_cover(&plan)?;
    userns::check(&plan)?;
    let mut plan = plan;
    userns::resolve_idmapped_mounts(&mut plan)?;
    Ok(plan)
}

/// What only makes sense in the container's own namespaces (runc's validator): masked and
/// read-only paths need a mount namespace (without one the container shares pier's, see
/// docs/mounts.md "No mount namespace"), and each sysctl needs the namespace it belongs to
/// (namespaced sysctls are listed in sysctl(8) and the kernel sources).
fn check_namespaces_cover(plan: &Plan) -> Result<()> {
    let restricts_paths = !(plan.masked_paths.is_empty() && plan.readonly_paths.is_empty());
    if restricts_paths && !plan.has_namespace(NamespaceKind::Mount) {
        bail!("config.json: unable to restrict sys entries without a private MNT namespace (linux.maskedPaths / linux.readonlyPaths need \"mount\" in linux.namespaces)");
    }
    for key in plan.sysctl.keys() {
        let needs = sysctl_namespace(key).with_context(|| {
            format!("config.json: sysctl {key:?} is not in a separate kernel namespace")
        })?;
        if !plan.has_namespace(needs) {
            bail!("config.json: sysctl {key:?} needs a {needs:?} namespace");
        }
    }
    Ok(())
}

/// The namespace a sysctl belongs to, if it is namespaced at all.
fn sysctl_namespace(key: &str) -> Option<NamespaceKind> {
    const IPC: [&str; 8] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
        "kernel.shm_rmid_forced",
    ];
    if IPC.contains(&key) || key.starts_with("fs.mqueue.") {
        Some(NamespaceKind::Ipc)
    } else if key.starts_with("net.") {
        Some(NamespaceKind::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(NamespaceKind::Uts)
    } else {
        None
    }
}

/// Settings pier cannot apply yet are refused, never ignored: a container must not start
/// without the scheduling it asked for.
fn refuse_unsupported(spec: &Spec) -> Result<()> {
    let linux = spec.linux().clone().unwrap_or_default();
    let process = spec.process().clone().unwrap_or_default();
    let unsupported = [
        (linux.intel_rdt().is_some(), "linux.intelRdt"),
        (linux.time_offsets().is_some(), "linux.timeOffsets"),
        (process.io_priority().is_some(), "process.ioPriority"),
        (process.scheduler().is_some(), "process.scheduler"),
        (
            linux
                .mount_label()
                .as_deref()
                .is_some_and(|l| !l.is_empty()),
            "linux.mountLabel (SELinux)",
        ),
    ];
    if let Some((_, what)) = unsupported.iter().find(|(used, _)| *used) {
        bail!("config.json: {what} is not supported by pier yet; refusing to run without it");
    }
    Ok(())
}

/// `hooks` (config.md "POSIX-platform Hooks"): `path` must be absolute and `timeout` greater
/// than zero (both MUSTs of the spec; runc would exec a relative path from its cwd and fail a
/// zero timeout at once).
fn hooks_of(hooks: Option<&oci_spec::runtime::Hooks>) -> Result<Hooks> {
    let Some(h) = hooks else {
        return Ok(Hooks::default());
    };
    let list = |name: &str, list: &Option<Vec<oci_spec::runtime::Hook>>| -> Result<Vec<Hook>> {
        list.iter()
            .flatten()
            .enumerate()
            .map(|(i, hook)| {
                hook_of(hook).with_context(|| format!("config.json: hooks.{name}[{i}]"))
            })
            .collect()
    };
    #[allow(deprecated)]
    let prestart = h.prestart();
    Ok(Hooks {
        prestart: list("prestart", prestart)?,
        create_runtime: list("createRuntime", h.create_runtime())?,
        create_container: list("createContainer", h.create_container())?,
        start_container: list("startContainer", h.start_container())?,
        poststart: list("poststart", h.poststart())?,
        poststop: list("poststop", h.poststop())?,
    })
}

fn hook_of(hook: &oci_spec::runtime::Hook) -> Result<Hook> {
    let path = hook.path().display().to_string();
    if !path.starts_with('/') {
        bail!("path {path:?} is not absolute");
    }
    let timeout_secs = match hook.timeout() {
        None => None,
        Some(t) if t > 0 => Some(u32::try_from(t).unwrap_or(u32::MAX)),
        Some(t) => bail!("timeout {t} is not greater than zero"),
    };
    let nul = |s: &String| s.contains('\0');
    let args = hook.args().clone().unwrap_or_default();
    let env = hook.env().clone();
    if nul(&path) || args.iter().any(nul) || env.iter().flatten().any(nul) {
        bail!("path, args and env must not contain NUL");
    }
    Ok(Hook {
        path,
        args,
        env,
        timeout_secs,
    })
}

fn namespaces(linux: &oci_spec::runtime::Linux) -> Result<Vec<Namespace>> {
    let mut out: Vec<Namespace> = Vec::new();
    for ns in linux.namespaces().iter().flatten() {
        let kind = match ns.typ() {
            LinuxNamespaceType::Pid => NamespaceKind::Pid,
            LinuxNamespaceType::Network => NamespaceKind::Network,
            LinuxNamespaceType::Mount => NamespaceKind::Mount,
            LinuxNamespaceType::Ipc => NamespaceKind::Ipc,
            LinuxNamespaceType::Uts => NamespaceKind::Uts,
            LinuxNamespaceType::User => NamespaceKind::User,
            LinuxNamespaceType::Cgroup => NamespaceKind::Cgroup,
            LinuxNamespaceType::Time => NamespaceKind::Time,
        };
        if out.iter().any(|n| n.kind == kind) {
            bail!("config.json: namespace type {:?} listed twice", ns.typ());
        }
        out.push(Namespace {
            kind,
            path: ns.path().clone(),
        });
    }
    Ok(out)
}

fn mount_of(m: &oci_spec::runtime::Mount) -> Result<Mount> {
    let destination = m.destination().display().to_string();
    let destination = if destination.starts_with('/') {
        destination
    } else {
        format!("/{destination}")
    };
    let source = m
        .source()
        .as_ref()
        .map(|s| s.display().to_string())
        .unwrap_or_default();
    let fstype = m.typ().clone().unwrap_or_default();
    let options = m.options().clone().unwrap_or_default();
    let mut mount = mounts::parse_mount(&destination, &fstype, &source, &options)?;
    let what = |field| format!("mounts {destination}: {field}");
    let uids = userns::mappings_of(m.uid_mappings().as_ref(), &what("uidMappings"))?;
    let gids = userns::mappings_of(m.gid_mappings().as_ref(), &what("gidMappings"))?;
    if !uids.is_empty() || !gids.is_empty() {
        let idmap = mount.idmap.get_or_insert_with(|| MountIdmap {
            recursive: mount.bind == Some(BindKind::Recursive),
            ..Default::default()
        });
        idmap.uid_mappings = uids;
        idmap.gid_mappings = gids;
    }
    Ok(mount)
}

/// `linux.personality` (runtime-spec config-linux "Personality") as the argument of
/// `personality(2)`: domain `LINUX` (PER_LINUX, 0) or `LINUX32` (PER_LINUX32, 8), or'd with
/// each flag, named as in `<sys/personality.h>` (`ADDR_NO_RANDOMIZE`...). runc 1.2 applies
/// the domain and ignores flags with a warning; pier applies them and refuses unknown names.
fn personality(p: &oci_spec::runtime::LinuxPersonality) -> Result<u32> {
    const FLAGS: [(&str, u32); 11] = [
        ("UNAME26", 0x0002_0000),
        ("ADDR_NO_RANDOMIZE", 0x0004_0000),
        ("FDPIC_FUNCPTRS", 0x0008_0000),
        ("MMAP_PAGE_ZERO", 0x0010_0000),
        ("ADDR_COMPAT_LAYOUT", 0x0020_0000),
        ("READ_IMPLIES_EXEC", 0x0040_0000),
        ("ADDR_LIMIT_32BIT", 0x0080_0000),
        ("SHORT_INODE", 0x0100_0000),
        ("WHOLE_SECONDS", 0x0200_0000),
        ("STICKY_TIMEOUTS", 0x0400_0000),
        ("ADDR_LIMIT_3GB", 0x0800_0000),
    ];
    let mut persona = match p.domain() {
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux => 0,
        oci_spec::runtime::LinuxPersonalityDomain::PerLinux32 => 8,
    };
    for flag in p.flags().iter().flatten() {
        let Some((_, bit)) = FLAGS.iter().find(|(name, _)| name == flag) else {
            bail!("config.json: unknown linux.personality flag {flag:?}");
        };
        persona |= bit;
    }
    Ok(persona)
}

fn rootfs_propagation(value: Option<&str>) -> Result<Propagation> {
    match value {
        None | Some("") => Ok(Propagation {
            kind: PropagationKind::Slave,
            recursive: true,
        }),
        Some(v) => parse_propagation(v)
            .with_context(|| format!("config.json: invalid linux.rootfsPropagation {v:?}")),
    }
}

/// The devices every container gets (runtime-spec "Default Devices"), then `linux.devices`;
/// a config entry with the same path replaces the default.
fn devices(linux: &oci_spec::runtime::Linux) -> Result<Vec<Device>> {
    let char_dev = |path: &str, major, minor| Device {
        path: path.to_string(),
        kind: DeviceKind::Char,
        major,
        minor,
        mode: 0o666,
        uid: 0,
        gid: 0,
    };
    let mut out = vec![
        char_dev("/dev/null", 1, 3),
        char_dev("/dev/zero", 1, 5),
        char_dev("/dev/full", 1, 7),
        char_dev("/dev/random", 1, 8),
        char_dev("/dev/urandom", 1, 9),
        char_dev("/dev/tty", 5, 0),
    ];
    for d in linux.devices().iter().flatten() {
        let kind = match d.typ() {
            LinuxDeviceType::C | LinuxDeviceType::U => DeviceKind::Char,
            LinuxDeviceType::B => DeviceKind::Block,
            LinuxDeviceType::P => DeviceKind::Fifo,
            other => bail!(
                "config.json: device {} has unsupported type {other:?}",
                d.path().display()
            ),
        };
        let path = d.path().display().to_string();
        if !path.starts_with("/dev/") {
            bail!("config.json: device path {path:?} is not under /dev");
        }
        out.retain(|existing| existing.path != path);
        out.push(Device {
            path,
            kind,
            major: u32::try_from(d.major()).context("config.json: device major")?,
            minor: u32::try_from(d.minor()).context("config.json: device minor")?,
            mode: d.file_mode().unwrap_or(0o666) & 0o7777,
            uid: d.uid().unwrap_or(0),
            gid: d.gid().unwrap_or(0),
        });
    }
    Ok(out)
}

/// Resolve the `--bundle` argument to an absolute path (the bundle is recorded in state).
pub fn absolute_bundle(bundle: &Path) -> Result<PathBuf> {
    std::path::absolute(bundle).with_context(|| format!("bundle {}", bundle.display()))
}

#[cfg(test)]
mod tests;
