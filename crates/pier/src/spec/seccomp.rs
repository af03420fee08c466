//! `linux.seccomp` -> [`Seccomp`] (runtime-spec config-linux.md "Seccomp").
//!
//! Pure data, validated here so that a bad profile fails `create` before anything is made.
//! Unknown action, operator, architecture and flag names already fail in oci-spec's parser
//! (they are enums there); this module refuses what pier does not do (`SCMP_ACT_NOTIFY`, a
//! `listenerPath`, `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV`) and what makes no sense
//! (an argument index past 5, `errnoRet` on an action that returns no errno).

use anyhow::{bail, Result};
use oci_spec::runtime::{
    LinuxSeccomp, LinuxSeccompAction, LinuxSeccompFilterFlag, LinuxSeccompOperator,
};

/// errno returned by `SCMP_ACT_ERRNO` / `SCMP_ACT_TRACE` without an `errnoRet` (EPERM, as runc).
pub const DEFAULT_ERRNO: u32 = 1;

/// The seccomp profile of `linux.seccomp`, applied with `seccomp(2)` SECCOMP_SET_MODE_FILTER.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seccomp {
    /// `defaultAction` (with `defaultErrnoRet`): what a syscall no rule matches gets.
    pub default_action: SeccompAction,
    /// `architectures` as `SCMP_ARCH_*` names; the native one is always in the filter.
    pub architectures: Vec<String>,
    /// `flags`.
    pub flags: SeccompFlags,
    /// `syscalls`, in config order.
    pub syscalls: Vec<SyscallRule>,
}

/// A filter's verdict (`seccomp(2)` SECCOMP_RET_*, named as libseccomp's `SCMP_ACT_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompAction {
    /// `SCMP_ACT_KILL` / `SCMP_ACT_KILL_THREAD`: the thread dies with SIGSYS.
    KillThread,
    /// `SCMP_ACT_KILL_PROCESS`: the whole process dies with SIGSYS.
    KillProcess,
    /// `SCMP_ACT_TRAP`: SIGSYS is delivered.
    Trap,
    /// `SCMP_ACT_ERRNO`: the syscall fails with this errno.
    Errno(u32),
    /// `SCMP_ACT_TRACE`: a ptrace tracer is told, with this message value.
    Trace(u32),
    /// `SCMP_ACT_LOG`: allowed and logged.
    Log,
    /// `SCMP_ACT_ALLOW`.
    Allow,
}

/// `flags`: the SECCOMP_FILTER_FLAG_* of `seccomp(2)` pier applies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SeccompFlags {
    /// SECCOMP_FILTER_FLAG_TSYNC.
    pub tsync: bool,
    /// SECCOMP_FILTER_FLAG_LOG: log every action but SECCOMP_RET_ALLOW.
    pub log: bool,
    /// SECCOMP_FILTER_FLAG_SPEC_ALLOW: keep speculative store bypass mitigation off.
    pub spec_allow: bool,
}

/// One `syscalls` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyscallRule {
    /// `names`; names this architecture does not know are skipped when the filter is built.
    pub names: Vec<String>,
    /// `action` with `errnoRet`.
    pub action: SeccompAction,
    /// `args`: all must match (when an index repeats, each one is a rule of its own, as runc).
    pub args: Vec<SeccompArg>,
}

/// One `args` entry: compare syscall argument `index` (0-5) with `value`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SeccompArg {
    pub index: u32,
    pub value: u64,
    /// `valueTwo`: the expected value of `SCMP_CMP_MASKED_EQ` (`value` is then the mask).
    pub value_two: u64,
    pub op: SeccompOp,
}

/// `op`: libseccomp's `SCMP_CMP_*` (`seccomp_rule_add(3)`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeccompOp {
    NotEqual,
    LessThan,
    LessOrEqual,
    Equal,
    GreaterOrEqual,
    GreaterThan,
    /// `(arg & value) == valueTwo`.
    MaskedEqual,
}

/// Convert and validate `linux.seccomp`.
///
/// # Errors
/// `SCMP_ACT_NOTIFY`, `listenerPath` or `SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV` (not supported
/// yet), an empty `names` list, an argument index above 5, `errnoRet` on an action other than
/// `SCMP_ACT_ERRNO` / `SCMP_ACT_TRACE`.
pub fn seccomp_of(s: &LinuxSeccomp) -> Result<Seccomp> {
    if s.listener_path().is_some() {
        bail!("config.json: linux.seccomp.listenerPath (seccomp user notification) is not supported by pier yet");
    }
    let default_action = action_of(s.default_action(), s.default_errno_ret())
        .map_err(|e| e.context("config.json: linux.seccomp.defaultAction"))?;
    let mut syscalls = Vec::new();
    for (i, rule) in s.syscalls().iter().flatten().enumerate() {
        let what = format!("config.json: linux.seccomp.syscalls[{i}]");
        if rule.names().is_empty() {
            bail!("{what}: names must not be empty");
        }
        let action =
            action_of(rule.action(), rule.errno_ret()).map_err(|e| e.context(what.clone()))?;
        let args = rule
            .args()
            .iter()
            .flatten()
            .map(arg_of)
            .collect::<Result<Vec<_>>>()
            .map_err(|e| e.context(what))?;
        syscalls.push(SyscallRule {
            names: rule.names().clone(),
            action,
            args,
        });
    }
    Ok(Seccomp {
        default_action,
        architectures: s.architectures().iter().flatten().map(arch_name).collect(),
        flags: flags_of(s.flags().as_deref().unwrap_or_default())?,
        syscalls,
    })
}

/// The `SCMP_ARCH_*` name, as config.json spells it (and libseccomp parses it).
fn arch_name(arch: &oci_spec::runtime::Arch) -> String {
    serde_json::to_value(arch)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn action_of(action: LinuxSeccompAction, errno_ret: Option<u32>) -> Result<SeccompAction> {
    use LinuxSeccompAction as A;
    let converted = match action {
        A::ScmpActKill | A::ScmpActKillThread => SeccompAction::KillThread,
        A::ScmpActKillProcess => SeccompAction::KillProcess,
        A::ScmpActTrap => SeccompAction::Trap,
        A::ScmpActErrno => return Ok(SeccompAction::Errno(errno_ret.unwrap_or(DEFAULT_ERRNO))),
        A::ScmpActTrace => return Ok(SeccompAction::Trace(errno_ret.unwrap_or(DEFAULT_ERRNO))),
        A::ScmpActLog => SeccompAction::Log,
        A::ScmpActAllow => SeccompAction::Allow,
        A::ScmpActNotify => {
            bail!("SCMP_ACT_NOTIFY (seccomp user notification) is not supported by pier yet")
        }
    };
    if let Some(errno) = errno_ret {
        bail!("errnoRet {errno} is only valid with SCMP_ACT_ERRNO or SCMP_ACT_TRACE, not {action}");
    }
    Ok(converted)
}

fn arg_of(a: &oci_spec::runtime::LinuxSeccompArg) -> Result<SeccompArg> {
    use LinuxSeccompOperator as O;
    if a.index() > 5 {
        bail!(
            "args: index {} is out of range (a syscall has arguments 0 to 5)",
            a.index()
        );
    }
    let op = match a.op() {
        O::ScmpCmpNe => SeccompOp::NotEqual,
        O::ScmpCmpLt => SeccompOp::LessThan,
        O::ScmpCmpLe => SeccompOp::LessOrEqual,
        O::ScmpCmpEq => SeccompOp::Equal,
        O::ScmpCmpGe => SeccompOp::GreaterOrEqual,
        O::ScmpCmpGt => SeccompOp::GreaterThan,
        O::ScmpCmpMaskedEq => SeccompOp::MaskedEqual,
    };
    Ok(SeccompArg {
        index: a.index() as u32,
        value: a.value(),
        value_two: a.value_two().unwrap_or(0),
        op,
    })
}

fn flags_of(flags: &[LinuxSeccompFilterFlag]) -> Result<SeccompFlags> {
    let mut out = SeccompFlags::default();
    for flag in flags {
        match flag {
            LinuxSeccompFilterFlag::SeccompFilterFlagTsync => out.tsync = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagLog => out.log = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagSpecAllow => out.spec_allow = true,
            LinuxSeccompFilterFlag::SeccompFilterFlagWaitKillableRecv => {
                bail!("config.json: linux.seccomp.flags: {flag} (for seccomp user notification) is not supported by pier yet")
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn convert(profile: serde_json::Value) -> Result<Seccomp> {
        let parsed: LinuxSeccomp = serde_json::from_value(profile)?;
        seccomp_of(&parsed)
    }

    #[test]
    fn a_full_profile_is_converted() {
        let s = convert(json!({
            "defaultAction": "SCMP_ACT_ERRNO",
            "defaultErrnoRet": 38,
            "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
            "flags": ["SECCOMP_FILTER_FLAG_LOG", "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
            "syscalls": [
                {"names": ["read", "write"], "action": "SCMP_ACT_ALLOW"},
                {"names": ["mkdir"], "action": "SCMP_ACT_ERRNO", "errnoRet": 13},
                {"names": ["kill"], "action": "SCMP_ACT_KILL"},
                {"names": ["clone"], "action": "SCMP_ACT_ALLOW",
                 "args": [{"index": 0, "value": 2114060288, "valueTwo": 0, "op": "SCMP_CMP_MASKED_EQ"}]},
                {"names": ["personality"], "action": "SCMP_ACT_TRACE",
                 "args": [{"index": 0, "value": 8, "op": "SCMP_CMP_EQ"}]}
            ]
        }))
        .unwrap();
        assert_eq!(s.default_action, SeccompAction::Errno(38));
        assert_eq!(
            s.architectures,
            ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
        );
        assert_eq!(
            s.flags,
            SeccompFlags {
                tsync: false,
                log: true,
                spec_allow: true
            }
        );
        assert_eq!(s.syscalls.len(), 5);
        assert_eq!(s.syscalls[0].names, ["read", "write"]);
        assert_eq!(s.syscalls[0].action, SeccompAction::Allow);
        assert_eq!(s.syscalls[1].action, SeccompAction::Errno(13));
        assert_eq!(s.syscalls[2].action, SeccompAction::KillThread);
        let clone = SeccompArg {
            index: 0,
            value: 2114060288,
            value_two: 0,
            op: SeccompOp::MaskedEqual,
        };
        assert_eq!(s.syscalls[3].args, [clone]);
        assert_eq!(s.syscalls[4].action, SeccompAction::Trace(DEFAULT_ERRNO));
        assert_eq!(s.syscalls[4].args[0].op, SeccompOp::Equal);
    }

    #[test]
    fn errno_defaults_to_eperm() {
        let s = convert(json!({"defaultAction": "SCMP_ACT_ERRNO",
            "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_ERRNO"}]}))
        .unwrap();
        assert_eq!(s.default_action, SeccompAction::Errno(1));
        assert_eq!(s.syscalls[0].action, SeccompAction::Errno(1));
        assert!(s.architectures.is_empty());
    }

    #[test]
    fn unknown_action_and_operator_fail_with_their_name() {
        let err = convert(json!({"defaultAction": "SCMP_ACT_EXPLODE"})).unwrap_err();
        assert!(format!("{err:#}").contains("SCMP_ACT_EXPLODE"), "{err:#}");
        let err = convert(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["kill"],
            "action": "SCMP_ACT_ERRNO", "args": [{"index": 0, "value": 1, "op": "SCMP_CMP_ABOUT"}]}]}))
        .unwrap_err();
        assert!(format!("{err:#}").contains("SCMP_CMP_ABOUT"), "{err:#}");
    }

    #[test]
    fn notify_is_not_supported_yet() {
        let profiles = [
            json!({"defaultAction": "SCMP_ACT_NOTIFY"}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [{"names": ["mkdir"], "action": "SCMP_ACT_NOTIFY"}]}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "listenerPath": "/run/agent.sock"}),
            json!({"defaultAction": "SCMP_ACT_ALLOW", "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]}),
        ];
        for p in profiles {
            let err = format!("{:#}", convert(p.clone()).unwrap_err());
            assert!(err.contains("not supported by pier yet"), "{p}: {err}");
        }
    }

    #[test]
    fn nonsense_is_refused() {
        let cases = [
            (
                json!({"names": [], "action": "SCMP_ACT_ALLOW"}),
                "names must not be empty",
            ),
            (
                json!({"names": ["kill"], "action": "SCMP_ACT_ALLOW", "errnoRet": 1}),
                "only valid with SCMP_ACT_ERRNO",
            ),
            (
                json!({"names": ["kill"], "action": "SCMP_ACT_ERRNO",
                    "args": [{"index": 6, "value": 1, "op": "SCMP_CMP_EQ"}]}),
                "index 6 is out of range",
            ),
        ];
        for (rule, needle) in cases {
            let err = format!(
                "{:#}",
                convert(json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}))
                    .unwrap_err()
            );
            assert!(err.contains(needle) && err.contains("syscalls[0]"), "{err}");
        }
    }
}
