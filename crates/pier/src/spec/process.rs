//! `process`: args, env, cwd, user, rlimits, capabilities (runtime-spec "Process").

use std::str::FromStr;

use anyhow::{bail, Context, Result};

use super::plan::{Capabilities, Process, Rlimit};

/// Remove capability names that this kernel's `caps` table does not know from every
/// `process.capabilities` set, logging each (runc ignores them; oci-spec would fail).
pub fn drop_unknown_capabilities(config: &mut serde_json::Value) {
    let Some(sets) = config
        .pointer_mut("/process/capabilities")
        .and_then(|c| c.as_object_mut())
    else {
        return;
    };
    for (set, names) in sets.iter_mut() {
        if let Some(list) = names.as_array_mut() {
            list.retain(|name| {
                let known = name
                    .as_str()
                    .is_some_and(|n| caps::Capability::from_str(n).is_ok());
                if !known {
                    tracing::warn!(
                        "ignoring unknown capability {name} in process.capabilities.{set}"
                    );
                }
                known
            });
        }
    }
}

/// Parse a runtime-spec `process` object on its own (`exec --process FILE`), with the same
/// validation and unknown-capability handling as config.json's.
///
/// # Errors
/// Invalid JSON, a shape that is not a runtime-spec Process, empty `args`, a relative `cwd`.
pub fn parse_process(bytes: &[u8]) -> Result<Process> {
    let value: serde_json::Value = serde_json::from_slice(bytes).context("invalid JSON")?;
    let mut wrapped = serde_json::json!({ "process": value });
    drop_unknown_capabilities(&mut wrapped);
    let p: oci_spec::runtime::Process =
        serde_json::from_value(wrapped["process"].take()).context("not a runtime-spec process")?;
    process_of(&p)
}

/// `apparmorProfile` and `selinuxLabel`: pier applies neither, so a process that names one is
/// refused rather than started unconfined (runc fails too where the LSM is absent; an empty
/// string means none, as for runc).
fn refuse_lsm_labels(p: &oci_spec::runtime::Process) -> Result<()> {
    let set = |v: &Option<String>| v.as_deref().is_some_and(|s| !s.is_empty());
    for (used, what) in [
        (set(p.apparmor_profile()), "process.apparmorProfile"),
        (set(p.selinux_label()), "process.selinuxLabel"),
    ] {
        if used {
            bail!("config.json: {what} is not supported by pier (no AppArmor or SELinux support); refusing to run the process unconfined");
        }
    }
    Ok(())
}

/// Convert and validate `process`.
pub fn process_of(p: &oci_spec::runtime::Process) -> Result<Process> {
    let args = p.args().clone().unwrap_or_default();
    if args.is_empty() {
        bail!("config.json: process.args must not be empty");
    }
    let cwd = p.cwd().display().to_string();
    if !cwd.starts_with('/') {
        bail!("config.json: process.cwd {cwd:?} must be an absolute path");
    }
    refuse_lsm_labels(p)?;
    let user = p.user();
    check_ids(user)?;
    let env = p.env().clone().unwrap_or_default();
    if let Some(bad) = env.iter().find(|e| !e.contains('=') || e.starts_with('=')) {
        bail!("config.json: process.env entry {bad:?} is not KEY=VALUE");
    }
    Ok(Process {
        args,
        env,
        cwd,
        terminal: p.terminal().unwrap_or(false),
        console_size: p
            .console_size()
            .map(|b| (clamp_u16(b.height()), clamp_u16(b.width()))),
        uid: user.uid(),
        gid: user.gid(),
        additional_gids: user.additional_gids().clone().unwrap_or_default(),
        umask: user.umask(),
        rlimits: rlimits(p)?,
        no_new_privileges: p.no_new_privileges().unwrap_or(false),
        capabilities: capabilities(p)?,
        oom_score_adj: p.oom_score_adj(),
        personality: None, // linux.personality, set by plan_from_spec
    })
}

/// uid and gid values must be real ids: 4294967295 is `(uid_t)-1`, which setresuid(2) reads
/// as "leave unchanged" (the process would stay root), so, like runc, refuse anything above
/// 2147483647.
fn check_ids(user: &oci_spec::runtime::User) -> Result<()> {
    const MAX: u32 = i32::MAX as u32;
    let gids = user.additional_gids().clone().unwrap_or_default();
    let all = [user.uid(), user.gid()].into_iter().chain(gids);
    if let Some(bad) = all.into_iter().find(|id| *id > MAX) {
        bail!("config.json: process.user: uids and gids must be in range 0-{MAX}, got {bad}");
    }
    Ok(())
}

fn clamp_u16(v: u64) -> u16 {
    u16::try_from(v).unwrap_or(u16::MAX)
}

fn rlimits(p: &oci_spec::runtime::Process) -> Result<Vec<Rlimit>> {
    let mut out = Vec::new();
    for r in p.rlimits().iter().flatten() {
        let name = serde_json::to_value(r.typ())?;
        let name = name.as_str().unwrap_or_default();
        let resource = rlimit_resource(name)
            .with_context(|| format!("config.json: unknown rlimit type {name:?}"))?;
        if r.soft() > r.hard() {
            bail!(
                "config.json: rlimit {name}: soft limit {} exceeds hard limit {}",
                r.soft(),
                r.hard()
            );
        }
        out.push(Rlimit {
            resource,
            soft: r.soft(),
            hard: r.hard(),
        });
    }
    Ok(out)
}

/// `RLIMIT_*` name -> resource number (`getrlimit(2)`).
fn rlimit_resource(name: &str) -> Option<i32> {
    let table: [(&str, libc::__rlimit_resource_t); 16] = [
        ("RLIMIT_CPU", libc::RLIMIT_CPU),
        ("RLIMIT_FSIZE", libc::RLIMIT_FSIZE),
        ("RLIMIT_DATA", libc::RLIMIT_DATA),
        ("RLIMIT_STACK", libc::RLIMIT_STACK),
        ("RLIMIT_CORE", libc::RLIMIT_CORE),
        ("RLIMIT_RSS", libc::RLIMIT_RSS),
        ("RLIMIT_NPROC", libc::RLIMIT_NPROC),
        ("RLIMIT_NOFILE", libc::RLIMIT_NOFILE),
        ("RLIMIT_MEMLOCK", libc::RLIMIT_MEMLOCK),
        ("RLIMIT_AS", libc::RLIMIT_AS),
        ("RLIMIT_LOCKS", libc::RLIMIT_LOCKS),
        ("RLIMIT_SIGPENDING", libc::RLIMIT_SIGPENDING),
        ("RLIMIT_MSGQUEUE", libc::RLIMIT_MSGQUEUE),
        ("RLIMIT_NICE", libc::RLIMIT_NICE),
        ("RLIMIT_RTPRIO", libc::RLIMIT_RTPRIO),
        ("RLIMIT_RTTIME", libc::RLIMIT_RTTIME),
    ];
    table
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, r)| *r as i32)
}

fn capabilities(p: &oci_spec::runtime::Process) -> Result<Capabilities> {
    let Some(c) = p.capabilities() else {
        return Ok(Capabilities::default());
    };
    let set = |s: &Option<oci_spec::runtime::Capabilities>| -> Result<Vec<caps::Capability>> {
        let mut out = Vec::new();
        for cap in s.iter().flatten() {
            let name = serde_json::to_value(cap)?;
            let name = name.as_str().unwrap_or_default().to_string();
            let name = if name.starts_with("CAP_") {
                name
            } else {
                format!("CAP_{name}")
            };
            out.push(caps::Capability::from_str(&name).map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        out.sort_by_key(|c| c.index());
        Ok(out)
    };
    Ok(Capabilities {
        bounding: set(c.bounding())?,
        effective: set(c.effective())?,
        inheritable: set(c.inheritable())?,
        permitted: set(c.permitted())?,
        ambient: set(c.ambient())?,
    })
}
