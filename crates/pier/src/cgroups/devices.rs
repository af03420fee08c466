//! Device access rules: `linux.resources.devices`, then an allow rule for every device node
//! the container gets (`linux.devices` and the runtime-spec defaults), then the devices every
//! runc container may use (ptys, `/dev/console`, tun, mknod of anything), so the default
//! `spec` config's "deny all" still leaves a working `/dev`.
//!
//! v1 writes them to `devices.allow` / `devices.deny` (kernel `cgroup-v1/devices.rst`); v2 has
//! no devices controller and runs a `BPF_PROG_TYPE_CGROUP_DEVICE` program instead (built in
//! [`super::device_filter`]). Semantics, on both: a rule for all devices with all access
//! resets the default (allow or deny) and drops the rules before it; after that the last rule
//! that matches a request decides.

use anyhow::{bail, Result};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceType};

use crate::spec::{Device, DeviceKind};

/// Access bits, as `BPF_DEVCG_ACC_*` of `<linux/bpf.h>`.
pub const MKNOD: u8 = 1;
pub const READ: u8 = 2;
pub const WRITE: u8 = 4;
const ALL: u8 = MKNOD | READ | WRITE;

/// Which device files a rule covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeviceType {
    All,
    Char,
    Block,
}

/// One device rule: allow or deny `access` to devices of `kind` `major:minor` (None: any).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeviceRule {
    pub allow: bool,
    pub kind: DeviceType,
    pub major: Option<u32>,
    pub minor: Option<u32>,
    /// [`MKNOD`] | [`READ`] | [`WRITE`].
    pub access: u8,
}

impl DeviceRule {
    const fn allow(
        kind: DeviceType,
        major: Option<u32>,
        minor: Option<u32>,
        access: u8,
    ) -> DeviceRule {
        DeviceRule {
            allow: true,
            kind,
            major,
            minor,
            access,
        }
    }

    /// Whether the rule covers every device and every access (it resets the default).
    pub fn is_reset(&self) -> bool {
        self.kind == DeviceType::All
            && self.major.is_none()
            && self.minor.is_none()
            && self.access == ALL
    }

    /// The v1 `devices.allow` / `devices.deny` line(s): `a`, or `c 1:3 rwm`. A partial rule
    /// for type `a` is written as a `c` and a `b` rule, since the kernel reads `a` as "all".
    pub fn v1_lines(&self) -> Vec<String> {
        if self.is_reset() {
            return vec!["a".to_string()];
        }
        let num = |n: Option<u32>| n.map_or("*".to_string(), |n| n.to_string());
        let access: String = [(READ, 'r'), (WRITE, 'w'), (MKNOD, 'm')]
            .iter()
            .filter(|(bit, _)| self.access & bit != 0)
            .map(|(_, c)| *c)
            .collect();
        let kinds: &[char] = match self.kind {
            DeviceType::All => &['c', 'b'],
            DeviceType::Char => &['c'],
            DeviceType::Block => &['b'],
        };
        kinds
            .iter()
            .map(|k| format!("{k} {}:{} {access}", num(self.major), num(self.minor)))
            .collect()
    }
}

/// The devices runc lets every container use, whatever its config denies.
const ALWAYS_ALLOWED: [DeviceRule; 6] = [
    DeviceRule::allow(DeviceType::Char, None, None, MKNOD),
    DeviceRule::allow(DeviceType::Block, None, None, MKNOD),
    DeviceRule::allow(DeviceType::Char, Some(5), Some(1), ALL), // /dev/console
    DeviceRule::allow(DeviceType::Char, Some(136), None, ALL),  // /dev/pts/*
    DeviceRule::allow(DeviceType::Char, Some(5), Some(2), ALL), // /dev/ptmx
    DeviceRule::allow(DeviceType::Char, Some(10), Some(200), ALL), // /dev/net/tun
];

/// The full rule list for a container, or empty when config.json gives no device rules (then
/// nothing restricts devices, the kernel's default).
///
/// # Errors
/// A rule with an access letter other than r, w, m, a negative number, or a fifo type.
pub fn rules(config: &[LinuxDeviceCgroup], nodes: &[Device]) -> Result<Vec<DeviceRule>> {
    if config.is_empty() {
        return Ok(Vec::new());
    }
    let mut out = config.iter().map(rule_of).collect::<Result<Vec<_>>>()?;
    for node in nodes {
        let kind = match node.kind {
            DeviceKind::Char => DeviceType::Char,
            DeviceKind::Block => DeviceType::Block,
            DeviceKind::Fifo => continue, // fifos are not device files
        };
        out.push(DeviceRule::allow(
            kind,
            Some(node.major),
            Some(node.minor),
            ALL,
        ));
    }
    out.extend(ALWAYS_ALLOWED);
    Ok(out)
}

fn rule_of(r: &LinuxDeviceCgroup) -> Result<DeviceRule> {
    let kind = match r.typ().unwrap_or(LinuxDeviceType::A) {
        LinuxDeviceType::A => DeviceType::All,
        LinuxDeviceType::C | LinuxDeviceType::U => DeviceType::Char,
        LinuxDeviceType::B => DeviceType::Block,
        LinuxDeviceType::P => bail!("linux.resources.devices: type \"p\" is not a device type"),
    };
    let number = |n: Option<i64>| -> Result<Option<u32>> {
        match n {
            None | Some(-1) => Ok(None),
            Some(n) => u32::try_from(n)
                .map(Some)
                .map_err(|_| anyhow::anyhow!("linux.resources.devices: invalid device number {n}")),
        }
    };
    let access = parse_access(r.access().as_deref().unwrap_or("rwm"))?;
    Ok(DeviceRule {
        allow: r.allow(),
        kind,
        major: number(r.major())?,
        minor: number(r.minor())?,
        access,
    })
}

/// `"rwm"` -> access bits; empty means all.
fn parse_access(s: &str) -> Result<u8> {
    if s.is_empty() {
        return Ok(ALL);
    }
    s.chars().try_fold(0, |acc, c| match c {
        'r' => Ok(acc | READ),
        'w' => Ok(acc | WRITE),
        'm' => Ok(acc | MKNOD),
        _ => bail!("linux.resources.devices: invalid access {s:?}: expected letters of \"rwm\""),
    })
}

/// The effective program: the default after the last reset rule, and the rules after it.
pub fn effective(rules: &[DeviceRule]) -> (bool, &[DeviceRule]) {
    match rules.iter().rposition(DeviceRule::is_reset) {
        Some(i) => (rules[i].allow, &rules[i + 1..]),
        None => (true, rules),
    }
}

/// Evaluate the rules for one request, the reference semantics the BPF program implements:
/// the last matching rule decides, else the default. An allow rule matches when it grants all
/// requested access; a deny rule when it denies any of it.
pub fn decide(rules: &[DeviceRule], kind: DeviceType, major: u32, minor: u32, access: u8) -> bool {
    let (default, exceptions) = effective(rules);
    for r in exceptions.iter().rev() {
        let kind_ok = r.kind == DeviceType::All || r.kind == kind;
        let num_ok = r.major.is_none_or(|m| m == major) && r.minor.is_none_or(|m| m == minor);
        let access_ok = if r.allow {
            access & !r.access == 0
        } else {
            access & r.access != 0
        };
        if kind_ok && num_ok && access_ok {
            return r.allow;
        }
    }
    default
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deny_all() -> LinuxDeviceCgroup {
        serde_json::from_str(r#"{"allow":false,"access":"rwm"}"#).unwrap()
    }

    #[test]
    fn default_spec_denies_all_but_the_container_devices() {
        let nodes = [Device {
            path: "/dev/null".into(),
            kind: DeviceKind::Char,
            major: 1,
            minor: 3,
            mode: 0o666,
            uid: 0,
            gid: 0,
        }];
        let rules = rules(&[deny_all()], &nodes).unwrap();
        assert_eq!(rules[0].v1_lines(), ["a"]);
        assert_eq!(rules[1].v1_lines(), ["c 1:3 rwm"]);
        assert!(decide(&rules, DeviceType::Char, 1, 3, READ | WRITE));
        assert!(decide(&rules, DeviceType::Char, 136, 7, READ));
        assert!(decide(&rules, DeviceType::Block, 8, 0, MKNOD));
        assert!(!decide(&rules, DeviceType::Block, 8, 0, READ));
        assert!(!decide(&rules, DeviceType::Char, 10, 229, READ));
    }

    #[test]
    fn no_config_rules_means_no_restriction() {
        assert!(rules(&[], &[]).unwrap().is_empty());
    }

    #[test]
    fn partial_rules_and_bad_input() {
        let r: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":false,"type":"a","major":1,"access":"w"}"#).unwrap();
        let rule = rule_of(&r).unwrap();
        assert_eq!(rule.v1_lines(), ["c 1:* w", "b 1:* w"]);
        let rules = [
            DeviceRule::allow(DeviceType::Char, Some(1), None, ALL),
            rule,
        ];
        assert!(decide(&rules, DeviceType::Char, 1, 5, READ));
        assert!(!decide(&rules, DeviceType::Char, 1, 5, READ | WRITE));
        let bad: LinuxDeviceCgroup =
            serde_json::from_str(r#"{"allow":true,"access":"rwx"}"#).unwrap();
        assert!(rule_of(&bad).is_err());
    }
}
