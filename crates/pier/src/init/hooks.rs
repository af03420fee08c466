//! The OCI hooks the init runs itself, inside the container (runtime.md "Lifecycle"):
//! createContainer in its namespaces before pivot_root (step 5), and startContainer after
//! `start` opened the exec fifo, just before `execve` (step 7). pier runs prestart and
//! createRuntime meanwhile in its own namespaces (step 3a of the `channel` table).
//!
//! As runc: a hook without `env` gets the container process's environment (the init's, in
//! runc), with `HOME` added for startContainer (set by then); createContainer's working
//! directory is the rootfs (as the host sees it), startContainer's is `process.cwd`.

use std::ffi::CString;

use anyhow::{bail, Context, Result};

use crate::channel::{ChildEnd, ToChild, ToParent};
use crate::hooks::{self, HookState, Point};
use crate::spec::{Hook, Plan};
use crate::state::Status;

/// Step 3a: ask pier to run prestart and createRuntime, wait for it, then run
/// createContainer here. Returns the state startContainer will read (host pid, `created`);
/// None when the config has none of these hooks (the step is skipped).
///
/// # Errors
/// pier went away or answered out of turn (it reports its own hook failures), or a
/// createContainer hook failed.
pub fn before_pivot(plan: &Plan, env: &[String], channel: &ChildEnd) -> Result<Option<HookState>> {
    if !plan.hooks.in_create() {
        return Ok(None);
    }
    channel
        .send(&ToParent::RuntimeHooks)
        .context("ask pier to run the runtime hooks")?;
    let state = match channel.recv().context("wait for pier's hooks")? {
        Some(ToChild::RuntimeHooksDone(state)) => state,
        Some(other) => bail!("unexpected {other:?} from the parent"),
        None => bail!("the parent went away"),
    };
    let list = with_default_env(&plan.hooks.create_container, env);
    hooks::run(
        Point::CreateContainer,
        &list,
        &state,
        Some(plan.rootfs.as_path()),
    )?;
    Ok(Some(state.with_status(Status::Created)))
}

/// Step 7: startContainer, as the container user in its root and cwd, with `envp` (the
/// process's final environment) for hooks without `env`. Unlogged: the `--log` file is
/// closed by now.
///
/// # Errors
/// The first failing hook (named in the error).
pub fn start_container(plan: &Plan, state: Option<&HookState>, envp: &[CString]) -> Result<()> {
    let Some(state) = state else {
        return Ok(());
    };
    if plan.hooks.start_container.is_empty() {
        return Ok(());
    }
    let env: Vec<String> = envp
        .iter()
        .map(|e| e.to_string_lossy().into_owned())
        .collect();
    let list = with_default_env(&plan.hooks.start_container, &env);
    hooks::run_unlogged(Point::StartContainer, &list, state, None)
}

/// The hooks with `env` filled in where config.json has none.
fn with_default_env(list: &[Hook], env: &[String]) -> Vec<Hook> {
    list.iter()
        .map(|h| Hook {
            env: Some(h.env.clone().unwrap_or_else(|| env.to_vec())),
            ..h.clone()
        })
        .collect()
}
