//! OCI hooks: running one lifecycle point's list (runtime-spec config.md "POSIX-platform
//! Hooks", runtime.md "Lifecycle" steps 3-5, 7, 9 and 13).
//!
//! A hook is `fork` + `execve(path, args, env)` with:
//! - stdin: the container's state JSON ([`HookState`], runtime.md "State"), written while
//!   the hook runs (never a blocking write: a hook that does not read cannot stall pier);
//! - stdout and stderr: captured, as runc does: shown in the error when the hook fails (the
//!   first [`CAPTURE_LIMIT`] bytes of each), logged at debug level when it succeeds;
//! - every other fd closed, signal mask and dispositions reset;
//! - `env` exactly as given; with no `env` key, pier's own environment (runc's behaviour);
//! - the working directory the caller names (the bundle in the runtime namespace, the rootfs
//!   for createContainer, as runc).
//!
//! The hook is watched through its pidfd: when it exits, pier reaps it and stops reading its
//! output at once, so a hook that leaves a child holding the pipes never hangs pier; with a
//! `timeout` it is SIGKILLed and reaped when the time is up, and fails. What a timed-out hook
//! forked is killed with it: its descendants, found through `/proc/<pid>/task/*/children`
//! and held by pidfds before the hook is killed (so no reused pid is signalled), as nothing of
//! a failed create may outlive it (runc kills only the hook itself). The hook stays in pier's
//! process group and session, as with runc: a terminal's ^C and `timeout(1)` reach it, it may
//! use the terminal and call setsid(2). A hook that exits leaves its children alone (a hook
//! may start a daemon).
//!
//! Failure rules (runtime.md): the first failing prestart, createRuntime, createContainer or
//! startContainer hook stops its list and fails the operation ([`run`]); a failing poststart
//! or poststop hook is logged as a warning and the rest of the list runs ([`run_warn`]).

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_send_signal, waitid, Signal, WaitId, WaitIdOptions};
use serde::{Deserialize, Serialize};

use crate::spec::{Hook, Plan, SPEC_VERSION};
use crate::state::{State, Status};
use crate::sys::ExecImage;

/// How much of a hook's stdout and of its stderr is kept for the error message, in bytes.
pub const CAPTURE_LIMIT: usize = 4096;

/// The six lifecycle points, named as in config.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Point {
    Prestart,
    CreateRuntime,
    CreateContainer,
    StartContainer,
    Poststart,
    Poststop,
}

impl Point {
    /// The config.json key (`createRuntime`...).
    pub fn name(self) -> &'static str {
        match self {
            Point::Prestart => "prestart",
            Point::CreateRuntime => "createRuntime",
            Point::CreateContainer => "createContainer",
            Point::StartContainer => "startContainer",
            Point::Poststart => "poststart",
            Point::Poststop => "poststop",
        }
    }
}

/// The state a hook reads on stdin (runtime.md "State"): `status` is `creating` for
/// prestart, createRuntime and createContainer, `created` for startContainer, `running` for
/// poststart and `stopped` for poststop; `pid` is the init's pid as the host sees it, absent
/// once stopped (as runc).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HookState {
    pub oci_version: String,
    pub id: String,
    pub status: Status,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pid: Option<i32>,
    pub bundle: PathBuf,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl HookState {
    /// The state of a container being created, from its plan: `pid` is the init's host pid
    /// (None once it is gone: a failed create's poststop).
    pub fn of_plan(plan: &Plan, id: &str, status: Status, pid: Option<i32>) -> HookState {
        HookState {
            oci_version: SPEC_VERSION.to_string(),
            id: id.to_string(),
            status,
            pid,
            bundle: plan.bundle.clone(),
            annotations: plan.annotations.clone(),
        }
    }

    /// The state of a recorded container; `pid` as in [`HookState::of_plan`].
    pub fn of_state(state: &State, status: Status, pid: Option<i32>) -> HookState {
        HookState {
            oci_version: SPEC_VERSION.to_string(),
            id: state.id.clone(),
            status,
            pid,
            bundle: state.bundle.clone(),
            annotations: state.annotations.clone(),
        }
    }

    /// The same state with another status.
    pub fn with_status(&self, status: Status) -> HookState {
        HookState {
            status,
            ..self.clone()
        }
    }
}

/// Run `hooks` in order; stop at the first failure.
///
/// # Errors
/// `error running <point> hook #<i> (<path>): <why>`, where why is the exec error, the exit
/// status or signal with the captured stdout and stderr, or the timeout.
pub fn run(point: Point, hooks: &[Hook], state: &HookState, cwd: Option<&Path>) -> Result<()> {
    run_list(point, hooks, state, cwd, true)
}

/// [`run`] without the debug record of a hook's output: for a container init that closed
/// the `--log` file (its fd number may since name another file, the exec fifo).
///
/// # Errors
/// As [`run`].
pub fn run_unlogged(
    point: Point,
    hooks: &[Hook],
    state: &HookState,
    cwd: Option<&Path>,
) -> Result<()> {
    run_list(point, hooks, state, cwd, false)
}

fn run_list(
    point: Point,
    hooks: &[Hook],
    state: &HookState,
    cwd: Option<&Path>,
    log: bool,
) -> Result<()> {
    let stdin = serde_json::to_vec(state).context("serialize the hook state")?;
    for (i, hook) in hooks.iter().enumerate() {
        run_one(hook, &stdin, cwd, log)
            .with_context(|| format!("error running {} hook #{i} ({})", point.name(), hook.path))?;
    }
    Ok(())
}

/// Run every hook of `hooks`; a failure is logged as a warning and the next hook runs
/// (poststart and poststop).
pub fn run_warn(point: Point, hooks: &[Hook], state: &HookState, cwd: Option<&Path>) {
    let Ok(stdin) = serde_json::to_vec(state) else {
        return;
    };
    for (i, hook) in hooks.iter().enumerate() {
        if let Err(e) = run_one(hook, &stdin, cwd, true) {
            tracing::warn!(
                "error running {} hook #{i} ({}): {e:#}",
                point.name(),
                hook.path
            );
        }
    }
}

/// What the child execs, built before the fork (it allocates nothing after it).
fn prepare(hook: &Hook, cwd: Option<&Path>) -> Result<ExecImage> {
    let cstring = |s: &str| CString::new(s).context("NUL in a hook's path, args or env");
    let args = if hook.args.is_empty() {
        std::slice::from_ref(&hook.path)
    } else {
        &hook.args[..]
    };
    let envp = match &hook.env {
        Some(env) => env.iter().map(|e| cstring(e)).collect::<Result<_>>()?,
        None => std::env::vars_os()
            .filter_map(|(k, v)| {
                let mut kv = k.into_encoded_bytes();
                kv.push(b'=');
                kv.extend(v.into_encoded_bytes());
                CString::new(kv).ok()
            })
            .collect(),
    };
    Ok(ExecImage {
        path: cstring(&hook.path)?,
        argv: crate::sys::CStringArray::new(
            args.iter().map(|a| cstring(a)).collect::<Result<_>>()?,
        ),
        envp: crate::sys::CStringArray::new(envp),
        cwd: cwd
            .map(|c| CString::new(c.as_os_str().as_encoded_bytes()))
            .transpose()
            .context("NUL in the hook's working directory")?,
    })
}

/// The pipes between pier and one hook. The child's ends are duplicated above fd 2 first, so
/// placing them on 0, 1 and 2 can never overwrite one another (pier may run with stdio
/// closed).
struct Pipes {
    stdin_w: OwnedFd,
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
    /// Close-on-exec: EOF means execve succeeded, 4 bytes are its errno.
    exec_err_r: OwnedFd,
    child: [OwnedFd; 3],
    exec_err_w: OwnedFd,
}

fn pipes() -> Result<Pipes> {
    let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe");
    let high =
        |fd: OwnedFd| rustix::io::fcntl_dupfd_cloexec(&fd, 10).context("fcntl(F_DUPFD_CLOEXEC)");
    let (stdin_r, stdin_w) = pipe()?;
    let (stdout_r, stdout_w) = pipe()?;
    let (stderr_r, stderr_w) = pipe()?;
    let (exec_err_r, exec_err_w) = pipe()?;
    Ok(Pipes {
        stdin_w,
        stdout_r,
        stderr_r,
        exec_err_r,
        child: [high(stdin_r)?, high(stdout_w)?, high(stderr_w)?],
        exec_err_w,
    })
}

fn run_one(hook: &Hook, stdin: &[u8], cwd: Option<&Path>, log: bool) -> Result<()> {
    let prepared = prepare(hook, cwd)?;
    let pipes = pipes()?;
    let deadline = hook
        .timeout_secs
        .map(|s| Instant::now() + Duration::from_secs(u64::from(s)));
    let [child_in, child_out, child_err] = &pipes.child;
    let crate::sys::Child { pid, pidfd } = crate::sys::fork_exec(
        &prepared,
        [child_in.as_fd(), child_out.as_fd(), child_err.as_fd()],
        pipes.exec_err_w.as_fd(),
    )
    .context("fork")?;
    let Pipes {
        stdin_w,
        stdout_r,
        stderr_r,
        exec_err_r,
        child,
        exec_err_w,
    } = pipes;
    drop(child);
    drop(exec_err_w);
    if let Some(error) = crate::sys::exec_error(exec_err_r) {
        reap(pidfd.as_fd());
        return Err(error).context(format!("exec {}", hook.path));
    }
    let mut watch = Watch {
        stdin: Some(stdin_w),
        stdin_left: stdin,
        stdout: Capture::new(stdout_r),
        stderr: Capture::new(stderr_r),
    };
    let status = watch.until_exit(pid, pidfd.as_fd(), deadline);
    let (out, err) = (watch.stdout.text(), watch.stderr.text());
    let Some(status) = status? else {
        bail!(
            "hook (pid {pid}) ran past its timeout of {}s and was killed",
            hook.timeout_secs.unwrap_or_default()
        );
    };
    if status.exit_status() == Some(0) {
        if !log {
            return Ok(());
        }
        tracing::debug!(
            "hook {} succeeded, stdout: {out:?}, stderr: {err:?}",
            hook.path
        );
        return Ok(());
    }
    let why = match (status.exit_status(), status.terminating_signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (_, Some(sig)) => format!("killed by signal {sig}"),
        _ => "status unknown".to_string(),
    };
    bail!("{why}, stdout: {out}, stderr: {err}")
}

fn reap(pidfd: BorrowedFd<'_>) -> Option<rustix::process::WaitIdStatus> {
    loop {
        match waitid(WaitId::PidFd(pidfd), WaitIdOptions::EXITED) {
            Err(rustix::io::Errno::INTR) => continue,
            Ok(status) => return status,
            Err(_) => return None,
        }
    }
}

/// One output pipe of a hook: read as it comes, the first [`CAPTURE_LIMIT`] bytes kept.
struct Capture {
    fd: Option<OwnedFd>,
    kept: Vec<u8>,
}

impl Capture {
    fn new(fd: OwnedFd) -> Capture {
        let _ = rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::NONBLOCK);
        Capture {
            fd: Some(fd),
            kept: Vec::new(),
        }
    }

    /// Read what is there now; close the pipe at EOF.
    fn read_available(&mut self) {
        let Some(fd) = &self.fd else { return };
        let mut buf = [0u8; 4096];
        loop {
            match rustix::io::read(fd, &mut buf) {
                Ok(0) => {
                    self.fd = None;
                    return;
                }
                Ok(n) => {
                    let room = CAPTURE_LIMIT.saturating_sub(self.kept.len());
                    self.kept.extend_from_slice(&buf[..n.min(room)]);
                }
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => {
                    self.fd = None;
                    return;
                }
            }
        }
    }

    fn text(&self) -> String {
        String::from_utf8_lossy(&self.kept).trim_end().to_string()
    }
}

/// The hook's pipes and pidfd, polled together until it exits or its time is up.
struct Watch<'a> {
    stdin: Option<OwnedFd>,
    stdin_left: &'a [u8],
    stdout: Capture,
    stderr: Capture,
}

impl Watch<'_> {
    /// Feed stdin and read stdout/stderr until the pidfd says the hook exited; then reap it
    /// and take what its pipes already hold (not waiting for EOF: a child of the hook may
    /// keep them open). `Ok(None)`: the deadline passed; the hook (process `pid`) and its
    /// descendants were killed and the hook reaped.
    fn until_exit(
        &mut self,
        pid: i32,
        pidfd: BorrowedFd<'_>,
        deadline: Option<Instant>,
    ) -> Result<Option<rustix::process::WaitIdStatus>> {
        if let Some(fd) = &self.stdin {
            let _ = rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::NONBLOCK);
        }
        loop {
            self.write_stdin();
            let timeout = match deadline {
                None => None,
                Some(d) => match d.checked_duration_since(Instant::now()) {
                    Some(left) => Some(timespec(left)),
                    None => {
                        let descendants = descendants(pid);
                        let _ = pidfd_send_signal(pidfd, Signal::KILL);
                        for d in &descendants {
                            let _ = pidfd_send_signal(d, Signal::KILL);
                        }
                        reap(pidfd);
                        return Ok(None);
                    }
                },
            };
            let mut fds = vec![PollFd::new(&pidfd, PollFlags::IN)];
            let stdin = self
                .stdin
                .as_ref()
                .map(|fd| PollFd::new(fd, PollFlags::OUT));
            let outs = [&self.stdout.fd, &self.stderr.fd]
                .into_iter()
                .flatten()
                .map(|fd| PollFd::new(fd, PollFlags::IN));
            fds.extend(stdin.into_iter().chain(outs));
            match poll(&mut fds, timeout.as_ref()) {
                Err(rustix::io::Errno::INTR) => continue,
                other => other.context("poll the hook")?,
            };
            let exited = !fds[0].revents().is_empty();
            drop(fds);
            self.stdout.read_available();
            self.stderr.read_available();
            if exited {
                let status = reap(pidfd).context("reap the hook")?;
                self.stdout.read_available();
                self.stderr.read_available();
                return Ok(Some(status));
            }
        }
    }

    /// Write what the pipe takes; close stdin when all is written or the hook closed it.
    fn write_stdin(&mut self) {
        let Some(fd) = &self.stdin else { return };
        while !self.stdin_left.is_empty() {
            match rustix::io::write(fd, self.stdin_left) {
                Ok(n) => self.stdin_left = &self.stdin_left[n..],
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::AGAIN) => return,
                Err(_) => break, // EPIPE: the hook does not read its stdin
            }
        }
        self.stdin = None;
    }
}

/// Pidfds of every descendant of `pid` (children of each of its threads, recursively, from
/// `/proc/<pid>/task/<tid>/children`, proc(5)). A process that forks meanwhile may be missed.
fn descendants(pid: i32) -> Vec<OwnedFd> {
    let mut found = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{p}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let children =
                std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            for child in children
                .split_whitespace()
                .filter_map(|c| c.parse::<i32>().ok())
            {
                let Some(child_pid) = rustix::process::Pid::from_raw(child) else {
                    continue;
                };
                if let Ok(fd) =
                    rustix::process::pidfd_open(child_pid, rustix::process::PidfdFlags::empty())
                {
                    found.push(fd);
                    todo.push(child);
                }
            }
        }
    }
    found
}

fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

#[cfg(test)]
mod tests;
