//! The Plan: everything `create` will do, as plain data, decided before any syscall.
//!
//! [`super::plan_from_spec`] builds it from config.json (pure code, unit-tested); `spawn` and
//! `init` apply it. Nothing here refers to oci-spec types except the cgroup resources, which
//! the `cgroups` module consumes as the runtime-spec's `LinuxResources` unchanged.

use std::collections::BTreeMap;
use std::path::PathBuf;

use oci_spec::runtime::LinuxResources;
use serde::{Deserialize, Serialize};

/// A validated container configuration (OCI runtime-spec `config.json`).
#[derive(Debug, Clone)]
pub struct Plan {
    /// `ociVersion` as written in config.json (any `1.x`).
    pub oci_version: String,
    /// Absolute bundle directory.
    pub bundle: PathBuf,
    /// Absolute rootfs directory (`root.path`, relative paths are relative to the bundle).
    pub rootfs: PathBuf,
    /// `root.readonly`: remount the rootfs read-only after all mounts.
    pub root_readonly: bool,
    /// `hostname`, set with sethostname(2) in the new UTS namespace.
    pub hostname: Option<String>,
    /// `domainname`, set with setdomainname(2) in the new UTS namespace.
    pub domainname: Option<String>,
    /// `linux.namespaces`, in config order.
    pub namespaces: Vec<Namespace>,
    /// `linux.uidMappings`: written to the new user namespace's `uid_map` by pier.
    pub uid_mappings: Vec<IdMapping>,
    /// `linux.gidMappings`: written to its `gid_map`.
    pub gid_mappings: Vec<IdMapping>,
    /// `mounts`, in config order (order matters: later mounts may sit on earlier ones).
    pub mounts: Vec<Mount>,
    /// `linux.rootfsPropagation` applied to the container's `/` (default: rslave, as runc).
    pub rootfs_propagation: Propagation,
    /// Device nodes to create: the runtime-spec defaults, then `linux.devices`.
    pub devices: Vec<Device>,
    /// `linux.maskedPaths`: container paths hidden (a /dev/null bind or an empty ro tmpfs).
    pub masked_paths: Vec<String>,
    /// `linux.readonlyPaths`: container paths bind-remounted read-only.
    pub readonly_paths: Vec<String>,
    /// `linux.sysctl`, written to /proc/sys inside the container.
    pub sysctl: BTreeMap<String, String>,
    /// `process`.
    pub process: Process,
    /// `linux.seccomp`: the syscall filter loaded last before `execve` (see `init`).
    pub seccomp: Option<super::Seccomp>,
    /// `linux.cgroupsPath` (None: the runtime's default) and `linux.resources`.
    pub cgroup: CgroupPlan,
    /// `annotations`.
    pub annotations: BTreeMap<String, String>,
    /// `hooks`: what runs at each lifecycle point (see the `hooks` module).
    pub hooks: Hooks,
}

/// One `hooks.<point>[]` entry (config.md "POSIX-platform Hooks").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Hook {
    /// `path`: absolute, `execv(3)`'s path (no PATH search; a script with a shebang or a
    /// `/proc/<pid>/exe` link work as with execve).
    pub path: String,
    /// `args`: the whole argv, `args[0]` included; empty means `[path]` (as runc).
    pub args: Vec<String>,
    /// `env`: the whole environment; None (no `env` key) inherits pier's, as runc does.
    pub env: Option<Vec<String>>,
    /// `timeout` in seconds (> 0): the hook is killed and fails when it runs longer.
    pub timeout_secs: Option<u32>,
}

/// `hooks`: the six lists, each run in its listed order (recorded in state.json under the
/// config.json names).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Hooks {
    /// `prestart` (deprecated; Docker still sends it): create, runtime namespace.
    pub prestart: Vec<Hook>,
    /// `createRuntime`: create, runtime namespace, after prestart.
    pub create_runtime: Vec<Hook>,
    /// `createContainer`: create, the container's namespaces, before pivot_root.
    pub create_container: Vec<Hook>,
    /// `startContainer`: start, inside the container, just before the user process.
    pub start_container: Vec<Hook>,
    /// `poststart`: start, runtime namespace, after the user process was started.
    pub poststart: Vec<Hook>,
    /// `poststop`: delete, runtime namespace, after the container was destroyed.
    pub poststop: Vec<Hook>,
}

impl Hooks {
    /// Whether the init stops before pivot_root for prestart, createRuntime and
    /// createContainer, and needs the hook state (host pid) for startContainer: the
    /// `RuntimeHooks` step of the channel protocol.
    pub fn in_create(&self) -> bool {
        !(self.prestart.is_empty()
            && self.create_runtime.is_empty()
            && self.create_container.is_empty()
            && self.start_container.is_empty())
    }
}

/// Namespace kinds of the runtime-spec (`linux.namespaces[].type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NamespaceKind {
    Pid,
    Network,
    Mount,
    Ipc,
    Uts,
    User,
    Cgroup,
    Time,
}

impl NamespaceKind {
    /// The `CLONE_NEW*` flag for this kind (`clone(2)`).
    pub fn clone_flag(self) -> libc::c_int {
        match self {
            NamespaceKind::Pid => libc::CLONE_NEWPID,
            NamespaceKind::Network => libc::CLONE_NEWNET,
            NamespaceKind::Mount => libc::CLONE_NEWNS,
            NamespaceKind::Ipc => libc::CLONE_NEWIPC,
            NamespaceKind::Uts => libc::CLONE_NEWUTS,
            NamespaceKind::User => libc::CLONE_NEWUSER,
            NamespaceKind::Cgroup => libc::CLONE_NEWCGROUP,
            NamespaceKind::Time => libc::CLONE_NEWTIME,
        }
    }
}

/// One `linux.namespaces` entry: a new namespace, or an existing one joined by `path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Namespace {
    pub kind: NamespaceKind,
    /// `path` of a namespace file to join (setns(2)); None creates a new namespace.
    pub path: Option<PathBuf>,
}

/// Mount propagation (`mount(2)` MS_SHARED/MS_SLAVE/MS_PRIVATE/MS_UNBINDABLE, with MS_REC).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Propagation {
    pub kind: PropagationKind,
    pub recursive: bool,
}

/// The four propagation types of `mount_namespaces(7)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropagationKind {
    Shared,
    Slave,
    Private,
    Unbindable,
}

/// One entry of `mounts`, with its options parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mount {
    /// Absolute path inside the container; resolved inside the rootfs at apply time.
    pub destination: String,
    /// `type` (empty for a bind mount).
    pub fstype: String,
    /// `source`: a host path for binds (absolute, or relative to the bundle), else a name.
    pub source: String,
    /// Bind mount (`bind`, or `rbind` with `recursive`).
    pub bind: Option<BindKind>,
    /// MS_* flags from the options (ro, nosuid, nodev, noexec, atime family, sync...).
    pub flags: MountFlags,
    /// The `r<flag>` options (`rro`, `rnosuid`...): attributes set on the mount and every
    /// mount below it with `mount_setattr(2)` `AT_RECURSIVE`, after mounting.
    pub recursive: MountAttrs,
    /// Propagation options on this mount (`rprivate`, `shared`...), applied after mounting.
    pub propagation: Option<Propagation>,
    /// `tmpcopyup` (a tmpfs only): copy what the image has at the destination into the new
    /// tmpfs, as runc and crun do (podman's `--tmpfs`, `--read-only`).
    pub tmpcopyup: bool,
    /// An idmapped bind mount (`uidMappings`/`gidMappings` on the mount, or the `idmap` and
    /// `ridmap` options with the container's mappings): owners are shown through these maps.
    pub idmap: Option<MountIdmap>,
    /// `copy-symlink` (crun; a bind mount only): a source that is a symlink is recreated as
    /// the same symlink at the destination instead of being mounted.
    pub copy_symlink: bool,
    /// Options that are not flags, joined with commas (`mode=755,size=65536k`).
    pub data: String,
}

/// The id maps of an idmapped mount (runtime-spec config "Mounts", `mount_setattr(2)`
/// `MOUNT_ATTR_IDMAP`): a file owned by `containerID` on disk is seen as `hostID`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MountIdmap {
    /// Empty until resolved: the container's `linux.uidMappings` then.
    pub uid_mappings: Vec<IdMapping>,
    pub gid_mappings: Vec<IdMapping>,
    /// `ridmap` (or an `rbind` with mappings): every mount of the bound tree, not only its top.
    pub recursive: bool,
}

/// How a bind mount is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BindKind {
    /// `bind`: the source mount only.
    Single,
    /// `rbind`: the source and every mount below it.
    Recursive,
}

/// A subset of `mount(2)` flags that options may set, as independent booleans.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountFlags {
    pub readonly: bool,
    pub nosuid: bool,
    pub nodev: bool,
    pub noexec: bool,
    pub sync: bool,
    pub dirsync: bool,
    pub mand: bool,
    pub noatime: bool,
    pub nodiratime: bool,
    pub relatime: bool,
    pub strictatime: bool,
    /// `nosymfollow` (MS_NOSYMFOLLOW, Linux 5.10).
    pub nosymfollow: bool,
    /// `lazytime` (MS_LAZYTIME).
    pub lazytime: bool,
    /// `iversion` (MS_I_VERSION).
    pub iversion: bool,
    /// `silent` (MS_SILENT).
    pub silent: bool,
    /// `acl` (MS_POSIXACL).
    pub posixacl: bool,
    /// `remount` (MS_REMOUNT): change an existing mount at the destination.
    pub remount: bool,
}

/// A `mount_setattr(2)` change: `MOUNT_ATTR_*` bits to set and to clear (see
/// `spec::mounts::attr`). Both zero: nothing to change.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MountAttrs {
    pub set: u64,
    pub clear: u64,
}

/// A device node to create inside the container's /dev.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Device {
    /// Absolute container path (`/dev/null`).
    pub path: String,
    /// `c` (char), `b` (block) or `p` (fifo).
    pub kind: DeviceKind,
    pub major: u32,
    pub minor: u32,
    /// Permission bits (default 0666).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// `linux.devices[].type`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceKind {
    Char,
    Block,
    Fifo,
}

/// `process`: what is executed and with which identity and limits.
#[derive(Debug, Clone, Default)]
pub struct Process {
    /// `args`; never empty.
    pub args: Vec<String>,
    /// `env` as `KEY=VALUE` strings, in order.
    pub env: Vec<String>,
    /// `cwd`, absolute inside the container.
    pub cwd: String,
    /// `terminal`.
    pub terminal: bool,
    /// `consoleSize` as (rows, columns), applied to the pty.
    pub console_size: Option<(u16, u16)>,
    pub uid: u32,
    pub gid: u32,
    /// `user.additionalGids`.
    pub additional_gids: Vec<u32>,
    /// `user.umask` (default 0022, as runc).
    pub umask: Option<u32>,
    /// `rlimits`: (resource name as `RLIMIT_*`, soft, hard).
    pub rlimits: Vec<Rlimit>,
    /// `noNewPrivileges`.
    pub no_new_privileges: bool,
    /// `capabilities`: the five sets; None leaves a set empty.
    pub capabilities: Capabilities,
    /// `oomScoreAdj`, written to /proc/<pid>/oom_score_adj.
    pub oom_score_adj: Option<i32>,
    /// `linux.personality` as the `personality(2)` argument (domain | flags): a container
    /// setting that runc applies to the init and to every exec'd process alike.
    pub personality: Option<u32>,
}

/// One `process.rlimits` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rlimit {
    /// The `RLIMIT_*` resource number of `setrlimit(2)`.
    pub resource: i32,
    pub soft: u64,
    pub hard: u64,
}

/// `process.capabilities`: the five sets of `capabilities(7)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Capabilities {
    pub bounding: Vec<caps::Capability>,
    pub effective: Vec<caps::Capability>,
    pub inheritable: Vec<caps::Capability>,
    pub permitted: Vec<caps::Capability>,
    pub ambient: Vec<caps::Capability>,
}

/// Where the container's cgroup goes and what limits it gets.
#[derive(Debug, Clone, Default)]
pub struct CgroupPlan {
    /// `linux.cgroupsPath` as given; None means the runtime's default for this id.
    pub path: Option<String>,
    /// `linux.resources`.
    pub resources: Option<LinuxResources>,
}

impl Plan {
    /// Whether config.json asks for a new (not joined) namespace of `kind`.
    pub fn creates_namespace(&self, kind: NamespaceKind) -> bool {
        self.namespaces
            .iter()
            .any(|n| n.kind == kind && n.path.is_none())
    }

    /// Whether the container has a namespace of `kind` at all (new or joined).
    pub fn has_namespace(&self, kind: NamespaceKind) -> bool {
        self.namespaces.iter().any(|n| n.kind == kind)
    }
}

/// One range of a user namespace's id map (`linux.uidMappings[]`, a line of
/// `/proc/<pid>/uid_map` in `user_namespaces(7)`): container ids `container_id ..
/// container_id + size` are host ids `host_id ..`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdMapping {
    pub container_id: u32,
    pub host_id: u32,
    /// Number of ids, at least 1.
    pub size: u32,
}

impl IdMapping {
    /// The `uid_map` line without its newline: `"<container> <host> <size>"`.
    pub fn map_line(&self) -> String {
        format!("{} {} {}", self.container_id, self.host_id, self.size)
    }

    /// Whether container id `id` falls in this range.
    pub fn maps_container_id(&self, id: u32) -> bool {
        u64::from(id) >= u64::from(self.container_id)
            && u64::from(id) < u64::from(self.container_id) + u64::from(self.size)
    }

    /// `containerID:hostID:size`, for messages.
    pub fn describe(&self) -> String {
        format!("{}:{}:{}", self.container_id, self.host_id, self.size)
    }
}
