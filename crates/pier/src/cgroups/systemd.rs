//! `--systemd-cgroup`: the container's cgroup is a transient scope that systemd makes, with
//! `Delegate=yes`, asked for over D-Bus (`org.freedesktop.systemd1.Manager`,
//! `StartTransientUnit`; `systemd.scope(5)`, `systemd.resource-control(5)`).
//!
//! `linux.cgroupsPath` is `slice:prefix:name` (runc's form): the scope `prefix-name.scope` in
//! `slice` (default `system.slice`); without a path, `pier-<id>.scope`. With the rootless
//! cgroup manager the scope is asked of the user's own `systemd --user` on the session bus
//! ([`Bus::User`]), the default slice is `user.slice`, and the cgroup is below the user
//! manager's own (runc's rootless systemd driver; cgroup v2 only). A scope needs a
//! process when it is started, and the init must be cloned straight into the cgroup
//! (`CLONE_INTO_CGROUP`), so pier forks a small *holder* first: the holder asks systemd for
//! the scope with its own pid, reports the job's result on a pipe and waits; the init is
//! cloned into the scope's directory and the holder is killed. The D-Bus client is pier's
//! own ([`super::dbus`]): blocking, on the calling thread, no threads anywhere.

use std::os::fd::{AsFd, AsRawFd, OwnedFd};

pub use super::dbus::Bus;
use super::dbus::{self, Call, Connection, Writer};
use super::limits::{blkio_to_io_weight, shares_to_weight};
use anyhow::{bail, Context, Result};
use oci_spec::runtime::LinuxResources;
use rustix::process::Signal;

/// Where the scope goes and what it is called.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Scope {
    /// The parent slice unit (`system.slice`).
    pub slice: String,
    /// The scope unit (`pier-c1.scope`).
    pub unit: String,
    /// The manager that owns it: the system's, or the user's (rootless).
    pub bus: Bus,
}

impl Scope {
    /// From `cgroupsPath` (None or empty: the default) and the container id, for the manager
    /// on `bus` (the default slice is `system.slice`, `user.slice` for the user manager).
    ///
    /// # Errors
    /// A path that is not `slice:prefix:name`, a slice that is not `*.slice`, or a name that
    /// would not make a valid unit name.
    pub fn parse(path: Option<&str>, id: &str, bus: Bus) -> Result<Scope> {
        let default_slice = match bus {
            Bus::System => "system.slice",
            Bus::User => "user.slice",
        };
        let path = path.unwrap_or_default();
        if path.is_empty() {
            return Ok(Scope {
                slice: default_slice.into(),
                unit: format!("pier-{id}.scope"),
                bus,
            });
        }
        let parts: Vec<&str> = path.split(':').collect();
        let [slice, prefix, name] = parts[..] else {
            bail!("cgroupsPath {path:?}: expected \"slice:prefix:name\" with --systemd-cgroup");
        };
        let slice = if slice.is_empty() {
            default_slice
        } else {
            slice
        };
        if !slice.ends_with(".slice") || name.is_empty() || name.ends_with(".slice") {
            bail!("cgroupsPath {path:?}: expected a *.slice parent and a scope name");
        }
        let unit = if prefix.is_empty() {
            format!("{name}.scope")
        } else {
            format!("{prefix}-{name}.scope")
        };
        let valid = |s: &str| {
            !s.is_empty()
                && s.chars()
                    .all(|c| c.is_ascii_alphanumeric() || ":-_.\\@".contains(c))
        };
        if !valid(&unit) || !valid(slice) {
            bail!("cgroupsPath {path:?}: not a valid unit name");
        }
        Ok(Scope {
            slice: slice.to_string(),
            unit,
            bus,
        })
    }

    /// The scope's cgroup path below its manager's cgroup: `a-b.slice` is
    /// `/a.slice/a-b.slice`, `-.slice` the manager's own.
    pub fn cgroup_path(&self) -> String {
        let mut out = String::new();
        if self.slice != "-.slice" {
            let stem = self.slice.trim_end_matches(".slice");
            let mut prefix = String::new();
            for part in stem.split('-') {
                if !prefix.is_empty() {
                    prefix.push('-');
                }
                prefix.push_str(part);
                out.push_str(&format!("/{prefix}.slice"));
            }
        }
        format!("{out}/{}", self.unit)
    }
}

/// One unit property value (the D-Bus types systemd expects for each name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Prop {
    Str(String),
    Bool(bool),
    U64(u64),
    Pids(Vec<u32>),
}

/// The scope's properties: description, slice, delegation, and the resources systemd owns
/// (`systemd.resource-control(5)`: MemoryMax, MemoryLow, MemorySwapMax, TasksMax, CPUWeight,
/// CPUQuotaPerSecUSec, CPUQuotaPeriodUSec, IOWeight). pier also writes the same values through
/// cgroupfs, with everything systemd has no property for.
pub fn properties(scope: &Scope, r: Option<&LinuxResources>) -> Vec<(&'static str, Prop)> {
    let mut out = vec![
        (
            "Description",
            Prop::Str(format!("pier container {}", scope.unit)),
        ),
        ("Slice", Prop::Str(scope.slice.clone())),
        ("Delegate", Prop::Bool(true)),
        ("DefaultDependencies", Prop::Bool(false)),
    ];
    let Some(r) = r else { return out };
    let bytes = |v: i64| if v < 0 { u64::MAX } else { v as u64 };
    if let Some(m) = r.memory() {
        out.extend(
            m.limit()
                .filter(|l| *l != 0)
                .map(|l| ("MemoryMax", Prop::U64(bytes(l)))),
        );
        out.extend(
            m.reservation()
                .filter(|l| *l != 0)
                .map(|l| ("MemoryLow", Prop::U64(bytes(l)))),
        );
        match (m.limit(), m.swap()) {
            (_, Some(-1)) => out.push(("MemorySwapMax", Prop::U64(u64::MAX))),
            (Some(l), Some(s)) if l > 0 && s >= l => {
                out.push(("MemorySwapMax", Prop::U64((s - l) as u64)))
            }
            _ => {}
        }
    }
    if let Some(p) = r.pids().as_ref().filter(|p| p.limit() != 0) {
        out.push(("TasksMax", Prop::U64(bytes(p.limit()))));
    }
    if let Some(c) = r.cpu() {
        out.extend(
            c.shares()
                .filter(|s| *s != 0)
                .map(|s| ("CPUWeight", Prop::U64(shares_to_weight(s)))),
        );
        let period = c.period().filter(|p| *p != 0).unwrap_or(100_000);
        if let Some(q) = c.quota().filter(|q| *q > 0) {
            out.push((
                "CPUQuotaPerSecUSec",
                Prop::U64((q as u64).saturating_mul(1_000_000) / period),
            ));
        }
        out.extend(
            c.period()
                .filter(|p| *p != 0)
                .map(|p| ("CPUQuotaPeriodUSec", Prop::U64(p))),
        );
    }
    if let Some(w) = r
        .block_io()
        .as_ref()
        .and_then(|b| b.weight())
        .filter(|w| *w != 0)
    {
        out.push(("IOWeight", Prop::U64(blkio_to_io_weight(w))));
    }
    out
}

/// The process that holds the scope until the init has joined it.
pub struct Holder {
    pidfd: OwnedFd,
}

impl Holder {
    /// SIGKILL and reap the holder (idempotent).
    pub fn stop(&self) {
        crate::sys::kill_and_reap(self.pidfd.as_fd());
    }
}

/// Fork the holder, which starts the scope with its own pid and waits for the job; return
/// once the scope exists.
///
/// # Errors
/// The bus cannot be reached, systemd refuses the unit (already exists, bad property), or
/// the start job fails. The holder is gone in each case.
pub fn start_scope(scope: &Scope, resources: Option<&LinuxResources>) -> Result<Holder> {
    scope.bus.address()?; // no bus at all: say so before forking anything
    let (reader, writer) =
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
    // The holder keeps stdio, the log file and its end of the pipe: nothing else of pier's.
    let mut keep = vec![0, 1, 2, writer.as_raw_fd()];
    keep.extend(crate::logging::log_fd());
    let child = crate::sys::fork_helper(&keep, move || {
        let _ = rustix::process::set_parent_process_death_signal(Some(Signal::KILL));
        let result = start_and_wait(scope, resources);
        let report = match &result {
            Ok(()) => String::new(),
            Err(e) => format!("{e:#}"),
        };
        let _ = rustix::io::write(&writer, report.as_bytes());
        drop(writer);
        if result.is_err() {
            return 1;
        }
        loop {
            let _ = rustix::event::poll(&mut [], None);
        }
    })
    .context("fork the scope holder")?;
    // The closure, which owned the writer, is gone: EOF comes when the holder closes its copy.
    let holder = Holder { pidfd: child.pidfd };
    let mut report = Vec::new();
    let mut buf = [0u8; 1024];
    while let Ok(n @ 1..) = rustix::io::read(&reader, &mut buf) {
        report.extend_from_slice(&buf[..n]);
    }
    if !report.is_empty() {
        holder.stop();
        bail!("start {}: {}", scope.unit, String::from_utf8_lossy(&report));
    }
    Ok(holder)
}

const SYSTEMD: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER: &str = "org.freedesktop.systemd1.Manager";

/// A call of `org.freedesktop.systemd1.Manager.<member>`.
fn manager_call<'a>(member: &'a str, signature: &'a str, body: Writer) -> Call<'a> {
    Call {
        destination: SYSTEMD,
        path: MANAGER_PATH,
        interface: MANAGER,
        member,
        signature,
        body: body.into_bytes(),
    }
}

/// In the holder: StartTransientUnit with our pid, then wait for the job's JobRemoved.
fn start_and_wait(scope: &Scope, resources: Option<&LinuxResources>) -> Result<()> {
    let mut props = properties(scope, resources);
    props.push(("PIDs", Prop::Pids(vec![std::process::id()])));
    // StartTransientUnit(s name, s mode, a(sv) properties, a(sa(sv)) aux) -> o job
    let mut body = Writer::default();
    body.str(&scope.unit);
    body.str("fail");
    body.array(8, |w| {
        for (name, value) in &props {
            w.structure(|w| {
                w.str(name);
                write_value(w, value);
            })
        }
    });
    body.array(8, |_| {});
    run_job(
        scope.bus,
        manager_call("StartTransientUnit", "ssa(sv)a(sa(sv))", body),
    )
}

/// A property's value as the variant systemd expects (`s`, `b`, `t`, `au`).
fn write_value(w: &mut Writer, p: &Prop) {
    match p {
        Prop::Str(s) => w.variant("s", |w| w.str(s)),
        Prop::Bool(b) => w.variant("b", |w| w.bool(*b)),
        Prop::U64(n) => w.variant("t", |w| w.u64(*n)),
        Prop::Pids(p) => w.variant("au", |w| {
            w.array(4, |w| p.iter().for_each(|pid| w.u32(*pid)))
        }),
    }
}

/// Connect, subscribe to the manager's JobRemoved, make `call` (a method returning a job
/// path), and wait for that job's JobRemoved; its result must be `done`.
fn run_job(bus: Bus, call: Call<'_>) -> Result<()> {
    let mut conn = Connection::open(bus)?;
    let mut rule = Writer::default();
    rule.str(&format!(
        "type='signal',sender='{SYSTEMD}',path='{MANAGER_PATH}',interface='{MANAGER}',member='JobRemoved'"
    ));
    conn.call(&Call {
        destination: "org.freedesktop.DBus",
        path: "/org/freedesktop/DBus",
        interface: "org.freedesktop.DBus",
        member: "AddMatch",
        signature: "s",
        body: rule.into_bytes(),
    })
    .context("watch JobRemoved")?;
    conn.call(&manager_call("Subscribe", "", Writer::default()))
        .context("subscribe to systemd signals")?;
    let reply = conn.call(&call).context("ask systemd")?;
    let job = dbus::object_path_reply(&reply).context("ask systemd")?;
    loop {
        let signal = conn.next_signal(MANAGER, "JobRemoved")?;
        let (path, unit, result) = dbus::job_removed(&signal).context("read JobRemoved")?;
        if path == job {
            if result != "done" {
                bail!("systemd job for {unit} ended with {result:?}");
            }
            return Ok(());
        }
    }
}

/// Move `pid` into the user manager's `unit` (`AttachProcessesToUnit(s unit, s subcgroup,
/// au pids)`, systemd 238; `org.freedesktop.systemd1(5)`): the user manager moves it, or asks
/// the system manager to when the user may not (the process is in a cgroup outside the
/// user's delegated subtree). Both check that the process is the caller's.
///
/// # Errors
/// The user bus cannot be reached, or systemd refuses (the unit is gone, not the caller's
/// process).
pub fn attach_process(unit: &str, pid: i32) -> Result<()> {
    let pid = u32::try_from(pid).context("pid")?;
    let mut conn = Connection::open(Bus::User)?;
    let mut body = Writer::default();
    body.str(unit);
    body.str("");
    body.array(4, |w| w.u32(pid));
    conn.call(&manager_call("AttachProcessesToUnit", "ssau", body))
        .with_context(|| format!("AttachProcessesToUnit {unit}"))?;
    Ok(())
}

/// The cgroup of the manager on `bus` (its `ControlGroup` property, e.g.
/// `/user.slice/user-1000.slice/user@1000.service` for a user manager), asked once per
/// process: the scopes it makes are below it.
///
/// # Errors
/// The bus cannot be reached, or the manager does not answer.
pub fn manager_cgroup(bus: Bus) -> Result<String> {
    static USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    if bus == Bus::User {
        if let Some(known) = USER.get() {
            return Ok(known.clone());
        }
    }
    let mut conn = Connection::open(bus)?;
    // org.freedesktop.DBus.Properties.Get(s interface, s property) -> v
    let mut body = Writer::default();
    body.str(MANAGER);
    body.str("ControlGroup");
    let reply = conn
        .call(&Call {
            destination: SYSTEMD,
            path: MANAGER_PATH,
            interface: "org.freedesktop.DBus.Properties",
            member: "Get",
            signature: "ss",
            body: body.into_bytes(),
        })
        .context("ask systemd for its ControlGroup")?;
    let cgroup = dbus::string_property_reply(&reply).context("ask systemd for its ControlGroup")?;
    if bus == Bus::User {
        let _ = USER.set(cgroup.clone());
    }
    Ok(cgroup)
}

/// Stop the scope and wait for it (pier's `delete`); a unit that is already gone is fine.
///
/// # Errors
/// The bus cannot be reached, or the stop job fails.
pub fn stop_scope(unit: &str, bus: Bus) -> Result<()> {
    // StopUnit(s name, s mode) -> o job
    let mut body = Writer::default();
    body.str(unit);
    body.str("replace");
    match run_job(bus, manager_call("StopUnit", "ss", body)) {
        Err(e)
            if format!("{e:#}").contains("NoSuchUnit")
                || format!("{e:#}").contains("not loaded") =>
        {
            Ok(())
        }
        other => other.with_context(|| format!("stop {unit}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        let s = Scope::parse(Some("machine.slice:pier:c1"), "c1", Bus::System).unwrap();
        assert_eq!(s.unit, "pier-c1.scope");
        assert_eq!(s.cgroup_path(), "/machine.slice/pier-c1.scope");
        let d = Scope::parse(None, "c2", Bus::System).unwrap();
        assert_eq!(
            (d.slice.as_str(), d.cgroup_path().as_str()),
            ("system.slice", "/system.slice/pier-c2.scope")
        );
        let nested = Scope::parse(Some("a-b.slice::x"), "x", Bus::System).unwrap();
        assert_eq!(nested.cgroup_path(), "/a.slice/a-b.slice/x.scope");
        assert_eq!(
            Scope::parse(Some("-.slice:p:n"), "n", Bus::System)
                .unwrap()
                .cgroup_path(),
            "/p-n.scope"
        );
        for bad in [
            "/abs/path",
            "a:b",
            "system.slice:p:",
            "nota:p:n",
            "system.slice:p:n/x",
        ] {
            assert!(Scope::parse(Some(bad), "c", Bus::System).is_err(), "{bad}");
        }
        let user = Scope::parse(None, "c3", Bus::User).unwrap();
        assert_eq!(
            (user.unit.as_str(), user.cgroup_path().as_str()),
            ("pier-c3.scope", "/user.slice/pier-c3.scope")
        );
        let user = Scope::parse(Some(":p:n"), "n", Bus::User).unwrap();
        assert_eq!(user.slice, "user.slice");
    }

    #[test]
    fn resources_as_properties() {
        let r: LinuxResources = serde_json::from_str(
            r#"{"memory":{"limit":1000,"swap":3000},"pids":{"limit":-1},"cpu":{"quota":50000,"period":100000,"shares":1024}}"#,
        )
        .unwrap();
        let scope = Scope::parse(None, "c", Bus::System).unwrap();
        let props = properties(&scope, Some(&r));
        let get = |k: &str| props.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone());
        assert_eq!(get("Delegate"), Some(Prop::Bool(true)));
        assert_eq!(get("MemoryMax"), Some(Prop::U64(1000)));
        assert_eq!(get("MemorySwapMax"), Some(Prop::U64(2000)));
        assert_eq!(get("TasksMax"), Some(Prop::U64(u64::MAX)));
        assert_eq!(get("CPUQuotaPerSecUSec"), Some(Prop::U64(500_000)));
        assert_eq!(get("CPUWeight"), Some(Prop::U64(39)));
    }
}
