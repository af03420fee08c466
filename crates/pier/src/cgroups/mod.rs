//! The container's cgroup, on whatever hierarchies the host mounts (v1, hybrid or v2).
//!
//! Every mounted hierarchy gets a directory for the container (`cgroups(7)`): on this kind of
//! hybrid host that is each v1 controller, the named `systemd` hierarchy and the cgroup2
//! mount. The cgroup2 directory is handed to `clone3(CLONE_INTO_CGROUP)`, so the init never
//! runs outside it; the v1 directories receive the pid right after clone, before the init
//! does anything. Unmounted controllers (net_cls, perf_event here) are simply absent.
//!
//! `linux.resources` are written before the init is cloned ([`Cgroup::apply`]): each
//! controller in the directory that serves it ([`layout`]), the values from [`limits`],
//! device rules from [`devices`] (v1 controller, or the v2 eBPF program of
//! [`device_filter`]). Why pier has its own layer rather than youki's libcgroups:
//! `docs/cgroups.md`.

pub mod dbus;
pub mod device_filter;
pub mod devices;
mod freezer;
mod hierarchy;
pub mod layout;
pub mod limits;
pub mod oom;
pub mod stats;
pub mod systemd;

use std::fs;
use std::io::ErrorKind;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::spec::{CgroupPlan, Device};
pub use hierarchy::{mounted as hierarchy_list, Hierarchy};
use layout::{Controller, Layout, Version};
use oci_spec::runtime::LinuxResources;
pub use systemd::Bus;

/// What `state.json` keeps of the cgroup: one directory per hierarchy.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CgroupState {
    /// Absolute directories, one per mounted hierarchy, v2 (if any) first.
    pub dirs: Vec<PathBuf>,
    /// The path inside each hierarchy (`/…/<id>`), as reported to users.
    pub path: String,
    /// With `--systemd-cgroup`: the transient scope unit that owns the cgroup.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub systemd_unit: Option<String>,
    /// The scope belongs to the user's manager (rootless `--systemd-cgroup`), on the user bus.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub systemd_user: bool,
}

/// A container cgroup.
pub struct Cgroup {
    state: CgroupState,
    unified: Option<OwnedFd>,
    /// With `--systemd-cgroup`, during create: the process holding the new scope.
    holder: Option<systemd::Holder>,
}

impl Cgroup {
    /// Where the container's cgroup goes, without making anything: one directory per mounted
    /// hierarchy (v2 first), the path, and with `systemd` (the bus of the manager asked for a
    /// scope) the scope unit. `create` records it in the state directory before making it, so
    /// a `delete` after a killed create finds it.
    ///
    /// # Errors
    /// As [`Cgroup::create`] and [`Cgroup::create_systemd`], before anything is made.
    pub fn intended(
        plan: &CgroupPlan,
        id: &str,
        systemd: Option<Bus>,
        rootless: bool,
    ) -> Result<CgroupState> {
        let (mut state, placed) = Self::placement(plan, id, systemd, rootless)?;
        state.dirs = placed.into_iter().map(|(_, dir)| dir).collect();
        Ok(state)
    }

    /// The state (without dirs) and each hierarchy with the container's directory in it, in
    /// the order of [`CgroupState::dirs`] (v2 first). A relative path starts at
    /// [`relative_base`]; `rootless` (the rootless cgroup manager) keeps pier's own cgroup.
    fn placement(
        plan: &CgroupPlan,
        id: &str,
        systemd: Option<Bus>,
        rootless: bool,
    ) -> Result<(CgroupState, Vec<(Hierarchy, PathBuf)>)> {
        let (path, unit) = if let Some(bus) = systemd {
            // sd_booted(3)'s test, runc's IsRunningSystemd
            if !Path::new("/run/systemd/system").is_dir() {
                anyhow::bail!(
                    "systemd not running on this host, cannot use systemd cgroups manager"
                );
            }
            let scope = systemd::Scope::parse(plan.path.as_deref(), id, bus)?;
            let path = match bus {
                Bus::System => scope.cgroup_path(),
                Bus::User => user_scope_path(&scope)?,
            };
            (path, Some(scope.unit))
        } else {
            let path = plan.path.clone().unwrap_or_else(|| id.to_string());
            if path.split('/').any(|c| c == "..") {
                anyhow::bail!("cgroupsPath {path:?} must not contain \"..\"");
            }
            (path, None)
        };
        let mut placed = Vec::new();
        let mounted = hierarchy::mounted()?;
        let pure_v2 = matches!(mounted.as_slice(), [h] if h.is_v2());
        for h in mounted {
            let dir = if systemd.is_some() {
                h.mountpoint.join(path.trim_start_matches('/'))
            } else {
                let beside = pure_v2 && !rootless && beside_own_cgroup(&h, plan);
                h.container_dir_from(hierarchy::relative_base(&h.own_path, beside), &path)?
            };
            if h.is_v2() {
                placed.insert(0, (h, dir));
            } else {
                placed.push((h, dir));
            }
        }
        let state = CgroupState {
            dirs: Vec::new(),
            path,
            systemd_unit: unit,
            systemd_user: systemd == Some(Bus::User),
        };
        Ok((state, placed))
    }

    /// Create the container's directory in every mounted hierarchy. `plan.path` absolute is
    /// taken from each hierarchy's root, relative (or the default, the id) from pier's own
    /// cgroup in that hierarchy, as runc does; on a pure cgroup v2 host from its parent when
    /// the limits need controllers pier's undelegated cgroup does not enable (as runc's fs2
    /// driver, see [`beside_own_cgroup`]). On error, what was created is removed.
    ///
    /// # Errors
    /// A path with `..`, or a directory that cannot be made (permissions, a v1 cpuset that
    /// cannot be initialised).
    pub fn create(plan: &CgroupPlan, id: &str) -> Result<Cgroup> {
        let (state, placed) = Self::placement(plan, id, None, false)?;
        let mut cgroup = Cgroup {
            state,
            unified: None,
            holder: None,
        };
        cgroup.make_dirs(placed)?;
        Ok(cgroup)
    }

    /// [`Cgroup::create`] for the rootless cgroup manager (runc's `Rootless` cgroup config): a
    /// hierarchy where the directory cannot be made for lack of permission is skipped when
    /// config.json gives no `cgroupsPath`, so a container without limits runs without a
    /// cgroup of its own; a delegated (writable) subtree is used as usual. On error, what was
    /// created is removed.
    ///
    /// # Errors
    /// As [`Cgroup::create`], and a permission error with an explicit `cgroupsPath`.
    pub fn create_rootless(plan: &CgroupPlan, id: &str) -> Result<Cgroup> {
        let (state, placed) = Self::placement(plan, id, None, true)?;
        let mut cgroup = Cgroup {
            state,
            unified: None,
            holder: None,
        };
        for (h, dir) in placed {
            match h.make_dir(&dir) {
                Ok(()) => cgroup.state.dirs.push(dir),
                Err(e) if plan.path.is_none() && is_permission_error(&e) => {
                    tracing::debug!("rootless: no cgroup in {}: {e:#}", h.mountpoint.display());
                }
                Err(e) => {
                    let _ = cgroup.destroy();
                    return Err(e);
                }
            }
        }
        cgroup.open_unified();
        Ok(cgroup)
    }

    /// Make each directory, recording it as made (so that [`Cgroup::destroy`] on error removes
    /// exactly those), then open the v2 one for `CLONE_INTO_CGROUP`.
    fn make_dirs(&mut self, placed: Vec<(Hierarchy, PathBuf)>) -> Result<()> {
        for (h, dir) in placed {
            if let Err(e) = h.make_dir(&dir) {
                let _ = self.destroy();
                return Err(e);
            }
            self.state.dirs.push(dir);
        }
        self.open_unified();
        Ok(())
    }

    /// The cgroup as recorded in `state.json`.
    pub fn from_state(state: &CgroupState) -> Cgroup {
        Cgroup {
            state: state.clone(),
            unified: None,
            holder: None,
        }
    }

    /// `--systemd-cgroup`: ask the manager on `bus` (the system's; the user's for the
    /// rootless cgroup manager) for a transient scope with `Delegate=yes` (see [`systemd`])
    /// and use its directory in every mounted hierarchy (made where systemd did not). On
    /// error nothing is left: the holder is killed and the scope stopped.
    ///
    /// # Errors
    /// systemd is not PID 1 (no `/run/systemd/system`), a cgroupsPath not of the form
    /// `slice:prefix:name`, no bus, systemd refusing; for the user's manager also a host that
    /// is not pure cgroup v2 (runc's messages).
    pub fn create_systemd(plan: &CgroupPlan, id: &str, bus: Bus) -> Result<Cgroup> {
        let scope = systemd::Scope::parse(plan.path.as_deref(), id, bus)?;
        let (state, placed) = Self::placement(plan, id, Some(bus), bus == Bus::User)?;
        let holder = systemd::start_scope(&scope, plan.resources.as_ref())?;
        let mut cgroup = Cgroup {
            state,
            unified: None,
            holder: Some(holder),
        };
        cgroup.make_dirs(placed)?;
        Ok(cgroup)
    }

    fn open_unified(&mut self) {
        let v2 = self.state.dirs.iter().find(|d| hierarchy::is_cgroup2(d));
        self.unified = v2.and_then(|d| {
            rustix::fs::open(
                d,
                rustix::fs::OFlags::PATH
                    | rustix::fs::OFlags::DIRECTORY
                    | rustix::fs::OFlags::CLOEXEC,
                rustix::fs::Mode::empty(),
            )
            .ok()
        });
    }

    /// The cgroup2 directory fd for `clone3(CLONE_INTO_CGROUP)`, if there is a v2 hierarchy.
    pub fn clone_into_fd(&self) -> Option<BorrowedFd<'_>> {
        self.unified.as_ref().map(|fd| fd.as_fd())
    }

    /// What to persist.
    pub fn state(&self) -> &CgroupState {
        &self.state
    }

    /// Write `pid` to `cgroup.procs` of every hierarchy (those clone3 did not place it in).
    ///
    /// # Errors
    /// A write that fails (the process is gone, or the controller refuses it).
    pub fn add_process(&self, pid: i32) -> Result<()> {
        for dir in &self.state.dirs {
            let procs = dir.join("cgroup.procs");
            match (fs::write(&procs, pid.to_string()), &self.state.systemd_unit) {
                (Ok(()), _) => {}
                // Rootless, from a cgroup the user does not own (a login session's scope):
                // the kernel wants write access to the common ancestor. The user manager
                // asks the system manager to move the process then, as it does for runc,
                // which hands its init's pid to systemd.
                (Err(e), Some(unit))
                    if self.state.systemd_user && e.kind() == ErrorKind::PermissionDenied =>
                {
                    systemd::attach_process(unit, pid).with_context(|| {
                        format!("write {}: {e}; ask the user manager", procs.display())
                    })?;
                }
                (Err(e), _) => {
                    return Err(e).with_context(|| format!("write {}", procs.display()));
                }
            }
        }
        if let Some(holder) = &self.holder {
            holder.stop(); // the init holds the scope now
        }
        Ok(())
    }

    /// Pids in the container's cgroup (from the first hierarchy that lists them).
    pub fn pids(&self) -> Result<Vec<i32>> {
        let Some(dir) = self.state.dirs.first() else {
            return Ok(Vec::new());
        };
        read_pids(dir)
    }

    /// Whether any of the container's cgroup directories still exists (a systemd scope's
    /// go when its last process exits).
    pub fn exists(&self) -> bool {
        self.state.dirs.iter().any(|d| d.is_dir())
    }

    /// Send `signal` to every process of the cgroup and its sub-cgroups, in every hierarchy,
    /// as runc's `signalAllProcesses`: SIGKILL through cgroup2's `cgroup.kill` where the
    /// kernel has it; otherwise the cgroup is frozen (when a freezer is there) while the pids
    /// are collected and signalled, so no fork escapes, then thawed (a paused container too,
    /// as runc: frozen processes would not act on the signal). Processes that are already
    /// gone are skipped; nothing left is success.
    ///
    /// # Errors
    /// A `cgroup.procs` that cannot be read.
    pub fn kill_all(&self, signal: rustix::process::Signal) -> Result<()> {
        if !self.exists() {
            return Ok(()); // e.g. a systemd scope removed with its last process
        }
        if signal == rustix::process::Signal::KILL {
            let v2 = self.state.dirs.iter().find(|d| hierarchy::is_cgroup2(d));
            match v2.map(|d| fs::write(d.join("cgroup.kill"), "1")) {
                Some(Ok(())) => return Ok(()),
                // ENODEV: the cgroup is being removed (its last process is gone)
                Some(Err(e))
                    if e.raw_os_error() == Some(rustix::io::Errno::NODEV.raw_os_error()) =>
                {
                    return Ok(())
                }
                Some(Err(e)) if e.kind() != ErrorKind::NotFound => {
                    return Err(e).context("write cgroup.kill");
                }
                _ => {} // no cgroup2 directory, or a kernel before 5.14
            }
        }
        let frozen = self.freeze();
        if let Err(e) = &frozen {
            tracing::warn!("signal every process unfrozen: {e:#}");
        }
        let pids = self.all_pids();
        for pid in pids
            .iter()
            .flatten()
            .filter_map(|p| rustix::process::Pid::from_raw(*p))
        {
            match rustix::process::kill_process(pid, signal) {
                Ok(()) | Err(rustix::io::Errno::SRCH) => {}
                Err(e) => tracing::warn!("signal {pid:?}: {e}"),
            }
        }
        if frozen.is_ok() {
            self.thaw()?;
        }
        pids.map(drop)
    }

    /// Every pid of the cgroup and its sub-cgroups in every hierarchy, each once.
    fn all_pids(&self) -> Result<Vec<i32>> {
        let mut pids = Vec::new();
        for dir in &self.state.dirs {
            read_pids_recursive(dir, &mut pids)?;
        }
        pids.sort_unstable();
        pids.dedup();
        Ok(pids)
    }

    /// Which directory serves each controller.
    ///
    /// # Errors
    /// mountinfo cannot be read.
    pub fn layout(&self) -> Result<Layout> {
        Layout::load(&self.state.dirs)
    }

    /// Apply config.json's `linux.resources` and the device rules (which allow `nodes`, the
    /// device files the container gets) before any process joins. `rootless` (the rootless
    /// cgroup manager) ignores device rule failures, as runc: an unprivileged user cannot set
    /// them; limits are still errors, naming the missing cgroup when one was skipped.
    ///
    /// # Errors
    /// A limit on a controller the host lacks (or, rootless, whose cgroup could not be made),
    /// a value the kernel refuses (the file and value are named), an unloadable device program.
    pub fn apply(&self, plan: &CgroupPlan, nodes: &[Device], rootless: bool) -> Result<()> {
        let layout = self.layout()?;
        if layout.is_pure_v2() && self.state.systemd_unit.is_none() {
            // As runc: every controller cgroup2 offers, so stats work; failures surface later
            // as errors for the limits that need the controller.
            layout.enable_v2_best_effort();
        }
        let Some(resources) = &plan.resources else {
            return Ok(());
        };
        self.apply_limits(&layout, resources, rootless)?;
        let rules = devices::rules(resources.devices().as_deref().unwrap_or_default(), nodes)?;
        match apply_devices(&layout, &rules) {
            Err(e) if rootless => {
                tracing::debug!("rootless: device rules not applied: {e:#}");
                Ok(())
            }
            other => other,
        }
    }

    /// `update`: write new limits (devices are not updated, as runc). On v1, a memory limit
    /// given without swap keeps swap disabled when it was (memsw equal to the limit).
    ///
    /// # Errors
    /// As [`Cgroup::apply`].
    pub fn update(&self, resources: &LinuxResources) -> Result<()> {
        let layout = self.layout()?;
        let mut resources = resources.clone();
        if let (Some(t), Some(mem)) = (layout.target(Controller::Memory), resources.memory_mut()) {
            let read = |f: &str| {
                fs::read_to_string(t.dir.join(f))
                    .unwrap_or_default()
                    .trim()
                    .to_string()
            };
            let swap_was_off = read("memory.limit_in_bytes") == read("memory.memsw.limit_in_bytes");
            if t.version == Version::V1 && mem.swap().is_none() && swap_was_off {
                mem.set_swap(mem.limit());
            }
        }
        self.apply_limits(&layout, &resources, false)
    }

    /// Write the limits, enabling on cgroup2 the controllers they need (see
    /// [`enable_v2_from_a_leaf`]; `rootless`, or a delegated cgroup, lets pier move itself into a leaf for that).
    fn apply_limits(&self, layout: &Layout, r: &LinuxResources, rootless: bool) -> Result<()> {
        let planned =
            limits::plan(r, |c| layout.target(c).map(|t| t.version)).map_err(skipped_cgroup)?;
        let mut on_v2: Vec<&str> = planned
            .iter()
            .filter(|(c, _)| layout.target(*c).is_some_and(|t| t.version == Version::V2))
            .filter_map(|(c, _)| c.v2_name())
            .collect();
        let mut unified: Vec<(&String, &String)> = r.unified().iter().flatten().collect();
        unified.sort();
        for (key, _) in &unified {
            let controller = limits::unified_key(key)?;
            if controller != "cgroup" && !layout.v2_offers(controller) {
                anyhow::bail!("unified key {key:?}: the {controller} controller is not on cgroup v2 on this host");
            }
            if controller != "cgroup" {
                on_v2.push(controller);
            }
        }
        // Under systemd too: Delegate=yes enabled the controllers systemd manages, not those
        // it does not know (hugetlb); runc enables those along the scope's path as well.
        enable_v2_from_a_leaf(layout, &on_v2, rootless)?;
        for (c, mut writes) in planned {
            let t = layout
                .target(c)
                .expect("planned only for available controllers");
            if c == Controller::Memory && t.version == Version::V1 {
                let current =
                    fs::read_to_string(t.dir.join("memory.limit_in_bytes")).unwrap_or_default();
                limits::order_v1_memory(&mut writes, current.trim().parse().unwrap_or(u64::MAX));
            }
            for w in &writes {
                match write_limit(t.dir, &w.file, &w.value) {
                    Err(_) if w.optional && !t.dir.join(&w.file).exists() => {}
                    other => other?,
                }
            }
        }
        let v2_dir = layout.v2_dir();
        for (key, value) in unified {
            write_limit(v2_dir.expect("checked by v2_offers"), key, value)?;
        }
        Ok(())
    }

    /// Freeze every process (`pause`), returning once they are frozen.
    ///
    /// # Errors
    /// No freezer on this host, or the kernel does not freeze the cgroup within 10 s.
    pub fn freeze(&self) -> Result<()> {
        let layout = self.layout()?;
        let t = layout
            .target(Controller::Freezer)
            .context("no freezer: neither the v1 freezer nor cgroup v2 is mounted")?;
        freezer::freeze(t)
    }

    /// Thaw the cgroup (`resume`).
    ///
    /// # Errors
    /// No freezer, or the write fails.
    pub fn thaw(&self) -> Result<()> {
        let layout = self.layout()?;
        let t = layout
            .target(Controller::Freezer)
            .context("no freezer: neither the v1 freezer nor cgroup v2 is mounted")?;
        freezer::thaw(t)
    }

    /// Usage statistics in runc's `events --stats` shape.
    ///
    /// # Errors
    /// mountinfo cannot be read.
    pub fn stats(&self) -> Result<stats::Stats> {
        Ok(stats::read(&self.layout()?))
    }

    /// A watch for OOM events, if the memory controller is there.
    ///
    /// # Errors
    /// The registration fails.
    pub fn oom_watch(&self) -> Result<Option<oom::OomWatch>> {
        let layout = self.layout()?;
        layout
            .target(Controller::Memory)
            .map(oom::OomWatch::new)
            .transpose()
    }

    /// The OOM kills the memory controller recorded, if it is there.
    pub fn oom_kills(&self) -> Option<oom::OomKills> {
        let layout = self.layout().ok()?;
        layout.target(Controller::Memory).map(oom::oom_kills_in)
    }

    /// Why a process of the container died during set-up or start, when the memory
    /// controller recorded an OOM kill: `the OOM killer: the memory limit of N bytes is too
    /// low` (N as the kernel holds it, rounded to pages).
    pub fn oom_cause(&self) -> Option<String> {
        let oom = self.oom_kills().filter(|o| o.count > 0)?;
        Some(format!(
            "the OOM killer: the memory limit of {} bytes is too low",
            oom.limit
        ))
    }

    /// Whether the cgroup is frozen (v2 `cgroup.freeze`, v1 `freezer.state`).
    pub fn is_frozen(&self) -> bool {
        let files = match hierarchy::mounted_ref() {
            Ok(mounted) => layout::freezer_files(&self.state.dirs, &mounted),
            // Without mountinfo, probe both names in every directory.
            Err(_) => self
                .state
                .dirs
                .iter()
                .flat_map(|d| {
                    [
                        (d.join("freezer.state"), Version::V1),
                        (d.join("cgroup.freeze"), Version::V2),
                    ]
                })
                .collect(),
        };
        files.iter().any(|(file, version)| {
            let frozen = if *version == Version::V1 {
                "FROZEN"
            } else {
                "1"
            };
            fs::read_to_string(file).is_ok_and(|s| s.trim() == frozen)
        })
    }

    /// Remove the container's directories (children first). Missing ones are fine.
    ///
    /// # Errors
    /// A directory that still holds processes.
    pub fn destroy(&self) -> Result<()> {
        let mut first_err = None;
        if let Some(holder) = &self.holder {
            holder.stop();
        }
        if let Some(unit) = &self.state.systemd_unit {
            let bus = if self.state.systemd_user {
                Bus::User
            } else {
                Bus::System
            };
            if let Err(e) = systemd::stop_scope(unit, bus) {
                first_err = Some(e);
            }
        }
        for dir in &self.state.dirs {
            if let Err(e) = remove_tree(dir) {
                first_err.get_or_insert(e);
            }
        }
        match first_err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The cgroup of a scope of the user's manager: below the manager's own cgroup
/// (`/user.slice/user-1000.slice/user@1000.service/user.slice/pier-c1.scope`), as runc's
/// rootless systemd driver, which exists only for a pure cgroup v2 host.
///
/// # Errors
/// `/sys/fs/cgroup` is not cgroup2 (runc: "cannot use rootless systemd cgroups manager on
/// cgroup v1"), or the user manager cannot be asked.
fn user_scope_path(scope: &systemd::Scope) -> Result<String> {
    if !hierarchy::is_cgroup2(Path::new("/sys/fs/cgroup")) {
        anyhow::bail!("cannot use rootless systemd cgroups manager on cgroup v1");
    }
    let manager = systemd::manager_cgroup(Bus::User)?;
    if !manager.starts_with('/') || manager.split('/').any(|c| c == "..") {
        anyhow::bail!("the user manager's ControlGroup {manager:?} is not an absolute cgroup path");
    }
    Ok(format!(
        "{}{}",
        manager.trim_end_matches('/'),
        scope.cgroup_path()
    ))
}

/// Whether a relative `cgroupsPath` starts beside pier's own cgroup `h` (the cgroup2 hierarchy
/// of a pure v2 host, root pier; [`hierarchy::relative_base`]) rather than in it: when that
/// cgroup is not delegated to pier (a unit without `Delegate=yes`) and the limits need
/// controllers it does not enable for its children yet. Enabling them there would break the
/// unit: pier is in that cgroup (`EBUSY`, the no-internal-process rule), and once pier moved
/// out, systemd could start no control process in it any more (ExecReload=, ExecStopPost=:
/// status 219/CGROUP) and may disable the controllers it manages again. Beside the unit is
/// where runc's fs2 driver puts every relative path. Otherwise the container stays in the
/// unit, which then contains it: `systemctl stop` reaches every process, and journald files
/// its output under the unit (it goes by the writer's cgroup). docs/cgroups.md "Placement".
fn beside_own_cgroup(h: &Hierarchy, plan: &CgroupPlan) -> bool {
    let Some(r) = &plan.resources else {
        return false;
    };
    let own = h.own_dir();
    if hierarchy::is_delegated(&own) {
        return false;
    }
    let available = fs::read_to_string(h.mountpoint.join("cgroup.controllers")).unwrap_or_default();
    let enabled = fs::read_to_string(own.join("cgroup.subtree_control")).unwrap_or_default();
    v2_controllers_needed(r, &available)
        .iter()
        .any(|c| !enabled.split_whitespace().any(|e| e == c))
}

/// The cgroup2 controllers that the limits of `r` need on a pure cgroup v2 host whose root
/// offers `available` (`cgroup.controllers`); those it does not offer are left to
/// [`Cgroup::apply`], which names them.
fn v2_controllers_needed(r: &LinuxResources, available: &str) -> Vec<String> {
    let offered = |name: &str| available.split_whitespace().any(|a| a == name);
    let version_of = |c: Controller| c.v2_name().filter(|n| offered(n)).map(|_| Version::V2);
    let mut names: Vec<String> = limits::plan(r, version_of)
        .map(|planned| {
            planned
                .iter()
                .filter_map(|(c, _)| c.v2_name())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    for key in r.unified().iter().flat_map(|u| u.keys()) {
        match limits::unified_key(key) {
            Ok(c) if c != "cgroup" && offered(c) => names.push(c.to_string()),
            _ => {}
        }
    }
    names
}

/// The name of the leaf pier moves itself into ([`enable_v2_from_a_leaf`]). No container id
/// starts with a dot, and systemd's own leaf for a delegated unit's control processes is
/// `.control`.
pub const SELF_LEAF: &str = ".pier";

/// [`Layout::enable_v2`] for the container's cgroup2 directory. For the rootless cgroup
/// manager (`rootless`), or when pier's cgroup is delegated to it (a unit with `Delegate=yes`,
/// [`hierarchy::is_delegated`], checked only on this error path), when the cgroup that refuses
/// for holding processes ([`layout::Busy`]) is
/// pier's own (a relative or default `cgroupsPath` in a unit with `Delegate=yes` puts the
/// container in `<the unit's cgroup>/<id>`), pier moves itself into the leaf
/// `<its cgroup>/.pier` first, as systemd.io/CGROUP_DELEGATION asks of a process that manages
/// the subtree it is in (processes only in leaves), and tries again. pier stays there (its
/// cgroup now has controllers for its children, so it cannot go back); the leaf goes with the
/// unit's cgroup. When other processes keep the cgroup busy, pier moves back, removes the leaf
/// and reports the rule.
///
/// # Errors
/// As [`Layout::enable_v2`]; a leaf pier cannot make or join.
fn enable_v2_from_a_leaf(layout: &Layout, names: &[&str], rootless: bool) -> Result<()> {
    let err = match layout.enable_v2(names) {
        Ok(()) => return Ok(()),
        Err(e) => e,
    };
    let Some(busy) = err.downcast_ref::<layout::Busy>() else {
        return Err(err);
    };
    let own = hierarchy::mounted()?
        .into_iter()
        .find(Hierarchy::is_v2)
        .map(|h| h.own_dir());
    let leaf = own.as_ref().map(|o| o.join(SELF_LEAF));
    let (Some(own), Some(leaf)) = (own, leaf) else {
        return Err(err);
    };
    if !(rootless || hierarchy::is_delegated(&own))
        || busy.cgroup != own
        || layout.v2_dir().is_some_and(|d| d.starts_with(&leaf))
    {
        return Err(err);
    }
    let me = std::process::id().to_string();
    let made = match fs::create_dir(&leaf) {
        Ok(()) => true,
        Err(e) if e.kind() == ErrorKind::AlreadyExists => false, // another pier's, shared
        Err(e) => return Err(e).with_context(|| format!("{err}; create {}", leaf.display())),
    };
    if let Err(e) = fs::write(leaf.join("cgroup.procs"), &me) {
        if made {
            let _ = fs::remove_dir(&leaf);
        }
        return Err(e).with_context(|| format!("{err}; move pier into {}", leaf.display()));
    }
    tracing::debug!(
        "moved pier into {} to enable {names:?} in its cgroup",
        leaf.display()
    );
    let again = layout.enable_v2(names);
    if let Err(e) = &again {
        let _ = fs::write(own.join("cgroup.procs"), &me);
        if made {
            let _ = fs::remove_dir(&leaf);
        }
        if e.downcast_ref::<layout::Busy>().is_some() {
            anyhow::bail!("{e} (other processes than pier's are in it)");
        }
    }
    again
}

/// Write one limit, naming the file and value when the kernel refuses it. The file is never
/// created: a cgroup file this kernel lacks is "no such file" (cgroupfs would answer a create
/// with EACCES). v1 `blkio.weight` and `blkio.weight_device` fall back to their
/// `blkio.bfq.*` names on kernels where only BFQ provides weights (no CFQ), as runc does.
fn write_limit(dir: &Path, file: &str, value: &str) -> Result<()> {
    let path = dir.join(file);
    let written = fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .and_then(|mut f| std::io::Write::write_all(&mut f, value.as_bytes()));
    match written {
        Err(e) if e.kind() == ErrorKind::NotFound && bfq_name(file).is_some() => {
            write_limit(dir, bfq_name(file).expect("checked"), value)
        }
        Err(e) if e.kind() == ErrorKind::NotFound => Err(e)
            .with_context(|| format!("cannot set {file}: the kernel has no {}", path.display())),
        other => other.with_context(|| format!("set {file} to {value:?} in {}", dir.display())),
    }
}

/// The BFQ name of a CFQ weight file (`Documentation/block/bfq-iosched.rst`).
fn bfq_name(file: &str) -> Option<&'static str> {
    match file {
        "blkio.weight" => Some("blkio.bfq.weight"),
        "blkio.weight_device" => Some("blkio.bfq.weight_device"),
        _ => None,
    }
}

/// A [`limits::MissingController`] whose hierarchy the host does mount: the rootless cgroup
/// manager skipped it (pier could not make the container's directory there). runc's message.
fn skipped_cgroup(e: anyhow::Error) -> anyhow::Error {
    let Some(limits::MissingController(c)) = e.downcast_ref::<limits::MissingController>() else {
        return e;
    };
    let name = c.v1_name();
    let mounted = hierarchy::mounted().unwrap_or_default().iter().any(|h| {
        h.controllers.iter().any(|n| n == name)
            || (h.is_v2() && c.v2_name().is_some_and(|v2| is_cgroup2_controller(h, v2)))
    });
    if mounted {
        anyhow::anyhow!("cannot set {name} limit: container could not join or create cgroup")
    } else {
        e
    }
}

/// Whether the cgroup2 hierarchy `h` offers `controller` at its root (`cgroup.controllers`).
fn is_cgroup2_controller(h: &Hierarchy, controller: &str) -> bool {
    fs::read_to_string(h.mountpoint.join("cgroup.controllers"))
        .is_ok_and(|c| c.split_whitespace().any(|n| n == controller))
}

/// Whether `e` comes from EACCES or EPERM (a cgroup directory pier may not make).
fn is_permission_error(e: &anyhow::Error) -> bool {
    e.chain()
        .filter_map(|c| c.downcast_ref::<std::io::Error>())
        .any(|io| io.kind() == ErrorKind::PermissionDenied)
}

/// Write device rules: v1 `devices.deny`/`devices.allow` lines, or attach the eBPF filter.
fn apply_devices(layout: &Layout, rules: &[devices::DeviceRule]) -> Result<()> {
    if rules.is_empty() {
        return Ok(());
    }
    match layout.target(Controller::Devices) {
        Some(t) if t.version == Version::V1 => {
            for rule in rules {
                let file = if rule.allow {
                    "devices.allow"
                } else {
                    "devices.deny"
                };
                for line in rule.v1_lines() {
                    write_limit(t.dir, file, &line)?;
                }
            }
            Ok(())
        }
        Some(t) => attach_device_filter(t.dir, rules),
        None => anyhow::bail!(
            "cannot apply device rules: neither the devices controller nor cgroup v2 is mounted"
        ),
    }
}

/// Compile `rules` to an eBPF device program and attach it to the cgroup v2 directory `dir`
/// (nothing is attached when the rules allow everything).
///
/// # Errors
/// The program is refused by the verifier or the attach fails.
pub fn attach_device_filter(dir: &Path, rules: &[devices::DeviceRule]) -> Result<()> {
    let Some(program) = device_filter::program(rules) else {
        return Ok(());
    };
    let insns: Vec<[u8; 8]> = program.iter().map(device_filter::Insn::encode).collect();
    let prog = crate::sys::bpf::prog_load_cgroup_device(&insns, "pier_devices")
        .context("load the device eBPF program")?;
    let cgroup = rustix::fs::open(
        dir,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::DIRECTORY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .with_context(|| format!("open {}", dir.display()))?;
    crate::sys::bpf::prog_attach_cgroup_device(cgroup.as_fd(), prog.as_fd())
        .with_context(|| format!("attach the device program to {}", dir.display()))
}

fn read_pids(dir: &Path) -> Result<Vec<i32>> {
    let procs = dir.join("cgroup.procs");
    match fs::read_to_string(&procs) {
        Ok(s) => Ok(s.lines().filter_map(|l| l.trim().parse().ok()).collect()),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(Vec::new()),
        Err(e) => Err(e).with_context(|| format!("read {}", procs.display())),
    }
}

/// Append the pids of `dir` and of every cgroup below it.
fn read_pids_recursive(dir: &Path, pids: &mut Vec<i32>) -> Result<()> {
    pids.extend(read_pids(dir)?);
    let Ok(entries) = fs::read_dir(dir) else {
        return Ok(()); // removed meanwhile
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            read_pids_recursive(&entry.path(), pids)?;
        }
    }
    Ok(())
}

/// rmdir a cgroup directory and its sub-cgroups, deepest first (`rmdir(2)` on cgroupfs).
fn remove_tree(dir: &Path) -> Result<()> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e).with_context(|| format!("read {}", dir.display())),
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            remove_tree(&entry.path())?;
        }
    }
    match fs::remove_dir(dir) {
        Err(e) if e.kind() != ErrorKind::NotFound => {
            Err(e).with_context(|| format!("remove cgroup {}", dir.display()))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod write_tests {
    use super::write_limit;

    #[test]
    fn a_missing_file_is_named_and_never_created() {
        let dir = tempfile::tempdir().unwrap();
        let err = write_limit(dir.path(), "blkio.leaf_weight", "300").unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("cannot set blkio.leaf_weight"), "{msg}");
        assert!(msg.contains("blkio.leaf_weight"), "{msg}");
        assert!(!dir.path().join("blkio.leaf_weight").exists());
    }

    #[test]
    fn cfq_weights_fall_back_to_bfq_and_then_name_the_bfq_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("blkio.bfq.weight_device"), "").unwrap();
        write_limit(dir.path(), "blkio.weight_device", "8:0 500").unwrap();
        let got = std::fs::read_to_string(dir.path().join("blkio.bfq.weight_device")).unwrap();
        assert_eq!(got, "8:0 500");
        let err = write_limit(dir.path(), "blkio.weight", "500").unwrap_err();
        assert!(format!("{err:#}").contains("blkio.bfq.weight"), "{err:#}");
        assert!(!dir.path().join("blkio.weight").exists());
        assert!(!dir.path().join("blkio.bfq.weight").exists());
    }
}

#[cfg(test)]
mod placement_tests {
    use super::{beside_own_cgroup, v2_controllers_needed, Hierarchy};
    use crate::spec::CgroupPlan;
    use oci_spec::runtime::LinuxResources;
    use std::fs;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn the_controllers_limits_need_are_those_the_root_offers() {
        let r = resources(
            r#"{"pids": {"limit": 50}, "hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}],
                "unified": {"memory.high": "1000000", "cgroup.freeze": "0"}}"#,
        );
        let mut got = v2_controllers_needed(&r, "cpu memory pids hugetlb");
        got.sort();
        assert_eq!(got, ["hugetlb", "memory", "pids"]);
        let huge = resources(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}]}"#);
        assert_eq!(v2_controllers_needed(&huge, "hugetlb"), ["hugetlb"]);
        // a device rule needs no controller; one the root lacks is apply's error to name
        let devices = resources(r#"{"devices": [{"allow": false, "access": "rwm"}]}"#);
        assert!(v2_controllers_needed(&devices, "hugetlb").is_empty());
        assert!(
            v2_controllers_needed(&resources(r#"{"pids": {"limit": 5}}"#), "hugetlb").is_empty()
        );
    }

    /// A fake cgroup2 tree in a directory: its root offers hugetlb, pier's own cgroup is a
    /// unit's; systemd's delegation mark is the xattr `user.delegate` (what a user manager sets,
    /// and an unprivileged reader sees).
    #[test]
    fn beside_an_undelegated_unit_only_when_a_limit_needs_a_controller_it_lacks() {
        let root = tempfile::tempdir().unwrap();
        let h = Hierarchy {
            mountpoint: root.path().to_path_buf(),
            controllers: Vec::new(),
            own_path: "/system.slice/web.service".into(),
        };
        let own = h.own_dir();
        fs::create_dir_all(&own).unwrap();
        fs::write(root.path().join("cgroup.controllers"), "hugetlb\n").unwrap();
        fs::write(own.join("cgroup.subtree_control"), "\n").unwrap();
        let plan = |json: &str| CgroupPlan {
            path: None,
            resources: Some(resources(json)),
        };
        let huge = plan(r#"{"hugepageLimits": [{"pageSize": "2MB", "limit": 8388608}]}"#);
        assert!(beside_own_cgroup(&h, &huge));
        assert!(!beside_own_cgroup(&h, &CgroupPlan::default()), "no limits");
        assert!(
            !beside_own_cgroup(&h, &plan(r#"{"devices": []}"#)),
            "no controller"
        );
        fs::write(own.join("cgroup.subtree_control"), "hugetlb\n").unwrap();
        assert!(!beside_own_cgroup(&h, &huge), "already enabled");
        fs::write(own.join("cgroup.subtree_control"), "\n").unwrap();
        rustix::fs::setxattr(&own, "user.delegate", b"1", rustix::fs::XattrFlags::empty()).unwrap();
        assert!(!beside_own_cgroup(&h, &huge), "delegated");
    }
}
