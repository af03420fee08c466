//! The `linux.seccomp` filter: built from the plan with libseccomp, loaded with `seccomp(2)`
//! SECCOMP_SET_MODE_FILTER (`seccomp_rule_add(3)`, `seccomp_load(3)`).
//!
//! Building only allocates; every error there reaches `create`. Loading is one syscall, done
//! as late as possible ([`loads_early`] and `init/mod.rs` say when): every syscall pier makes
//! after it goes through the container's filter.

use std::slice;

use anyhow::{Context, Result};
use caps::Capability;
use libseccomp::{
    ScmpAction, ScmpArch, ScmpArgCompare, ScmpCompareOp, ScmpFilterContext, ScmpSyscall,
};

use crate::spec::{Process, Seccomp, SeccompAction, SeccompArg, SeccompOp, SyscallRule};

/// A filter ready to load (a libseccomp filter context, not yet in the kernel).
pub struct Filter(ScmpFilterContext);

impl Filter {
    /// Install the filter on this process (`seccomp_load(3)`). From here on it applies to
    /// every syscall of this process and of what it `execve`s.
    ///
    /// # Errors
    /// The kernel refuses the filter: EACCES without CAP_SYS_ADMIN or no_new_privs, EINVAL
    /// for a flag or action this kernel lacks.
    pub fn load(&self) -> Result<()> {
        self.0.load().map_err(|e| match e.sysrawrc() {
            Some(rc) => anyhow::anyhow!(
                "load the seccomp filter: {}",
                std::io::Error::from_raw_os_error(rc.abs())
            ),
            None => anyhow::anyhow!("load the seccomp filter: {e}"),
        })
    }
}

/// Whether the filter must be loaded before the identity is applied. Loading needs
/// no_new_privs or CAP_SYS_ADMIN in the effective set (`seccomp(2)`): with neither in the
/// final identity, it must happen while pier is still fully privileged (as runc does).
pub fn loads_early(process: &Process) -> bool {
    !process.no_new_privileges
        && !process
            .capabilities
            .effective
            .contains(&Capability::CAP_SYS_ADMIN)
}

/// Build the filter of `profile`: default action, architectures, flags, then each rule.
/// Syscall names this architecture does not know are skipped (a profile lists the syscalls of
/// every architecture), and so are rules whose action is the default one, as runc does.
///
/// # Errors
/// An architecture or flag libseccomp or the kernel does not support, an errno out of
/// range, a rule libseccomp refuses.
pub fn build(profile: &Seccomp) -> Result<Filter> {
    let mut ctx =
        ScmpFilterContext::new(action_of(profile.default_action)?).context("seccomp_init")?;
    // no_new_privs is process.noNewPrivileges, set by identity::apply; libseccomp would set
    // it on load otherwise.
    ctx.set_ctl_nnp(false)
        .context("seccomp: SCMP_FLTATR_CTL_NNP")?;
    // Only for the message of a failed load (the kernel's errno rather than "system
    // failure"); a libseccomp without SCMP_FLTATR_API_SYSRAWRC loads all the same.
    let _ = ctx.set_api_sysrawrc(true);
    for name in &profile.architectures {
        let arch: ScmpArch = name
            .parse()
            .with_context(|| format!("seccomp: architecture {name}"))?;
        ctx.add_arch(arch)
            .with_context(|| format!("seccomp: add architecture {name}"))?;
    }
    let flags = profile.flags;
    if flags.tsync {
        ctx.set_ctl_tsync(true)
            .context("seccomp: SECCOMP_FILTER_FLAG_TSYNC")?;
    }
    if flags.log {
        ctx.set_ctl_log(true)
            .context("seccomp: SECCOMP_FILTER_FLAG_LOG")?;
    }
    if flags.spec_allow {
        ctx.set_ctl_ssb(true)
            .context("seccomp: SECCOMP_FILTER_FLAG_SPEC_ALLOW")?;
    }
    for rule in &profile.syscalls {
        if rule.action != profile.default_action {
            add_rule(&mut ctx, rule)?;
        }
    }
    Ok(Filter(ctx))
}

/// One rule for each known name. All `args` must match; when an argument index repeats,
/// libseccomp cannot AND two conditions on one argument, so each condition becomes a rule
/// of its own (any of them matches), which is what runc does.
fn add_rule(ctx: &mut ScmpFilterContext, rule: &SyscallRule) -> Result<()> {
    let action = action_of(rule.action)?;
    let conditions: Vec<ScmpArgCompare> = rule.args.iter().map(condition_of).collect();
    let index_repeats = rule
        .args
        .iter()
        .enumerate()
        .any(|(i, a)| rule.args[..i].iter().any(|b| b.index == a.index));
    for name in &rule.names {
        let Ok(syscall) = ScmpSyscall::from_name(name) else {
            tracing::debug!("seccomp: skipping {name:?}, unknown on this architecture");
            continue;
        };
        let added = if index_repeats {
            conditions.iter().try_for_each(|c| {
                ctx.add_rule_conditional(action, syscall, slice::from_ref(c))
                    .map(drop)
            })
        } else {
            ctx.add_rule_conditional(action, syscall, &conditions)
                .map(drop)
        };
        added.with_context(|| format!("seccomp: add the rule for {name:?}"))?;
    }
    Ok(())
}

fn action_of(action: SeccompAction) -> Result<ScmpAction> {
    Ok(match action {
        SeccompAction::KillThread => ScmpAction::KillThread,
        SeccompAction::KillProcess => ScmpAction::KillProcess,
        SeccompAction::Trap => ScmpAction::Trap,
        SeccompAction::Errno(e) => {
            ScmpAction::Errno(i32::try_from(e).context("seccomp: errnoRet out of range")?)
        }
        SeccompAction::Trace(v) => ScmpAction::Trace(
            u16::try_from(v).context("seccomp: SCMP_ACT_TRACE errnoRet above 65535")?,
        ),
        SeccompAction::Log => ScmpAction::Log,
        SeccompAction::Allow => ScmpAction::Allow,
    })
}

fn condition_of(arg: &SeccompArg) -> ScmpArgCompare {
    let (op, datum) = match arg.op {
        SeccompOp::NotEqual => (ScmpCompareOp::NotEqual, arg.value),
        SeccompOp::LessThan => (ScmpCompareOp::Less, arg.value),
        SeccompOp::LessOrEqual => (ScmpCompareOp::LessOrEqual, arg.value),
        SeccompOp::Equal => (ScmpCompareOp::Equal, arg.value),
        SeccompOp::GreaterOrEqual => (ScmpCompareOp::GreaterEqual, arg.value),
        SeccompOp::GreaterThan => (ScmpCompareOp::Greater, arg.value),
        SeccompOp::MaskedEqual => (ScmpCompareOp::MaskedEqual(arg.value), arg.value_two),
    };
    ScmpArgCompare::new(arg.index, op, datum)
}
