//! The last steps before `execve`: limits, working directory, the executable and its
//! environment, the exec fifo wait, and closing every fd not asked for.

use std::ffi::CString;
use std::os::fd::{BorrowedFd, OwnedFd};

use anyhow::{bail, Context, Result};
use rustix::fs::{Access, Mode, OFlags};

use crate::spec::Process;

/// What `execve` gets.
pub struct Exec {
    pub path: CString,
    pub argv: Vec<CString>,
    pub envp: Vec<CString>,
    /// The seccomp filter still to load, right before `execve` (see `init/mod.rs`).
    pub seccomp: Option<super::seccomp::Filter>,
}

/// rlimits, oom_score_adj and umask of the calling process (an exec'd process, before it
/// joins the container's user namespace, where it could no longer raise them).
pub fn apply_limits(process: &Process) -> Result<()> {
    set_limits(None, process)?;
    apply_umask(process);
    Ok(())
}

/// rlimits (`prlimit(2)`) and oom_score_adj (`proc(5)`) of process `pid` (None: the caller).
/// pier sets the init's from the parent before releasing it, as runc does: inside a user
/// namespace the init could not raise a hard limit or lower its oom_score_adj.
///
/// # Errors
/// The kernel refuses a limit (EPERM above the hard limit without CAP_SYS_RESOURCE).
pub fn set_limits(pid: Option<rustix::process::Pid>, process: &Process) -> Result<()> {
    for r in &process.rlimits {
        let limit = rustix::process::Rlimit {
            current: (r.soft != u64::MAX).then_some(r.soft),
            maximum: (r.hard != u64::MAX).then_some(r.hard),
        };
        let resource = resource_of(r.resource).context("rlimit resource")?;
        rustix::process::prlimit(pid, resource, limit)
            .with_context(|| format!("setrlimit({resource:?})"))?;
    }
    if let Some(adj) = process.oom_score_adj {
        let path = match pid {
            Some(pid) => format!("/proc/{}/oom_score_adj", pid.as_raw_nonzero()),
            None => "/proc/self/oom_score_adj".to_string(),
        };
        std::fs::write(path, adj.to_string()).context("write oom_score_adj")?;
    }
    Ok(())
}

/// `process.user.umask` (default 0022, as runc).
pub fn apply_umask(process: &Process) {
    rustix::process::umask(Mode::from_raw_mode(process.umask.unwrap_or(0o022)));
}

fn resource_of(n: i32) -> Option<rustix::process::Resource> {
    use rustix::process::Resource as R;
    let all = [
        R::Cpu,
        R::Fsize,
        R::Data,
        R::Stack,
        R::Core,
        R::Rss,
        R::Nproc,
        R::Nofile,
        R::Memlock,
        R::As,
        R::Locks,
        R::Sigpending,
        R::Msgqueue,
        R::Nice,
        R::Rtprio,
        R::Rttime,
    ];
    all.into_iter().find(|r| *r as i32 == n)
}

/// `linux.personality` (`personality(2)`), kept across `execve`; nothing when unset.
pub fn set_personality(process: &Process) -> Result<()> {
    match process.personality {
        Some(persona) => crate::sys::set_personality(persona).context("set linux.personality"),
        None => Ok(()),
    }
}

/// `chdir(process.cwd)` inside the new root, then check with `getcwd(2)` that the working
/// directory is reachable from the new root (a directory outside it reads `(unreachable)`:
/// the CVE-2024-21626 class).
pub fn enter_cwd(process: &Process) -> Result<()> {
    rustix::process::chdir(process.cwd.as_str())
        .with_context(|| format!("chdir to cwd {:?}", process.cwd))?;
    let cwd = rustix::process::getcwd(Vec::new()).context("getcwd")?;
    if !cwd.to_bytes().starts_with(b"/") {
        bail!("working directory {cwd:?} is outside the container");
    }
    Ok(())
}

/// `process.env` with `extra_env` (NOTIFY_SOCKET, LISTEN_*) replacing same-named variables.
pub fn environment(process: &Process, extra_env: &[String]) -> Vec<String> {
    let mut env: Vec<String> = process.env.clone();
    for e in extra_env {
        let key = e.split('=').next().unwrap_or_default();
        env.retain(|old| old.split('=').next() != Some(key));
        env.push(e.clone());
    }
    env
}

/// Find the executable as runc does (Go's `exec.LookPath`), in the container's PATH (none:
/// nothing is found, unlike `execvp(3)`'s default), as the container user,
/// and build argv and envp. `HOME` is set from /etc/passwd (or `/`) when the config has none.
///
/// # Errors
/// runc's wording, which engines classify: `exec: "x": executable file not found in $PATH`,
/// or `exec: "/x": stat /x: no such file or directory` / `permission denied`.
pub fn resolve(process: &Process, extra_env: &[String]) -> Result<Exec> {
    let mut env = environment(process, extra_env);
    if !env.iter().any(|e| e.starts_with("HOME=")) {
        env.push(format!("HOME={}", home_of(process.uid)));
    }
    let arg0 = &process.args[0];
    let path = if arg0.contains('/') {
        check_executable(arg0)?;
        arg0.clone()
    } else {
        // As runc (Go's exec.LookPath): no PATH, or an empty one, finds nothing; an empty
        // entry of a non-empty PATH is the current directory.
        let search = env
            .iter()
            .rev()
            .find_map(|e| e.strip_prefix("PATH="))
            .unwrap_or_default();
        search
            .split(':')
            .filter(|_| !search.is_empty())
            .map(|dir| format!("{}/{arg0}", if dir.is_empty() { "." } else { dir }))
            .find(|candidate| is_executable_file(candidate))
            .with_context(|| format!("exec: {arg0:?}: executable file not found in $PATH"))?
    };
    let cstrings = |v: &[String]| -> Result<Vec<CString>> {
        v.iter()
            .map(|s| CString::new(s.as_str()).context("NUL in argument"))
            .collect()
    };
    Ok(Exec {
        path: CString::new(path)?,
        argv: cstrings(&process.args)?,
        envp: cstrings(&env)?,
        seccomp: None,
    })
}

fn check_executable(path: &str) -> Result<()> {
    let st = rustix::fs::stat(path)
        .map_err(std::io::Error::from)
        .with_context(|| format!("exec: {path:?}: stat {path}"))?;
    if rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir() {
        bail!("exec: {path:?}: is a directory");
    }
    rustix::fs::access(path, Access::EXEC_OK)
        .map_err(std::io::Error::from)
        .with_context(|| format!("exec: {path:?}"))?;
    Ok(())
}

fn is_executable_file(path: &str) -> bool {
    rustix::fs::stat(path).is_ok_and(|st| !rustix::fs::FileType::from_raw_mode(st.st_mode).is_dir())
        && rustix::fs::access(path, Access::EXEC_OK).is_ok()
}

/// The home directory of `uid` in the container's /etc/passwd, or `/`.
fn home_of(uid: u32) -> String {
    read_passwd()
        .unwrap_or_default()
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 6 && f[2].parse() == Ok(uid))
        .map(|f| f[5].to_string())
        .unwrap_or_else(|| "/".to_string())
}

/// The image's /etc/passwd, only if it is a regular file, at most 1 MiB: an image must not be
/// able to stall create with a FIFO or feed it an endless file.
fn read_passwd() -> Option<String> {
    use std::io::Read;
    let fd = rustix::fs::open(
        "/etc/passwd",
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .ok()?;
    let st = rustix::fs::fstat(&fd).ok()?;
    if !rustix::fs::FileType::from_raw_mode(st.st_mode).is_file() {
        return None;
    }
    let mut text = String::new();
    std::fs::File::from(fd)
        .take(1 << 20)
        .read_to_string(&mut text)
        .ok()?;
    Some(text)
}

/// Block until `start` opens the exec fifo, run `before_exec` (the startContainer hooks),
/// then hand `start` its answer: the byte `0` (`Ok(None)`), or `!` and the error of
/// `before_exec` (`Ok(Some(error))`: `start` reports it, the init only exits). The fifo is reopened for writing from the `O_PATH` fd `fifo` that
/// create opened, through `fd_dir`, the init's `self/fd` in its own procfs (never the host's
/// /proc, never the container's, which config.json controls; opened before the seccomp
/// profile was loaded), and checked to be the same inode.
///
/// # Errors
/// The fifo cannot be opened or written.
pub fn wait_for_start(
    fd_dir: BorrowedFd<'_>,
    fifo: OwnedFd,
    before_exec: impl FnOnce() -> Result<()>,
) -> Result<Option<anyhow::Error>> {
    let writer =
        super::procfs::reopen(fd_dir, &fifo, OFlags::WRONLY).context("open the exec fifo")?;
    drop(fifo);
    let Err(e) = before_exec() else {
        rustix::io::write(&writer, b"0").context("write the exec fifo")?;
        return Ok(None);
    };
    let message = format!("!{e:#}");
    let mut left = message.as_bytes();
    while !left.is_empty() {
        match rustix::io::write(&writer, left) {
            Ok(n) => left = &left[n..],
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => break, // start is gone: nobody to tell
        }
    }
    Ok(Some(e))
}

/// The signals this process ignores, `SigIgn:` of /proc/self/status (`proc_pid_status(5)`),
/// read through the host's /proc before the root switch; `None` if it cannot be read.
pub fn ignored_signals() -> Option<u64> {
    let mut status = [0u8; 4096];
    let mut file = std::fs::File::open("/proc/self/status").ok()?;
    let mut len = 0;
    while len < status.len() {
        match std::io::Read::read(&mut file, &mut status[len..]) {
            Ok(0) => break,
            Ok(n) => len += n,
            Err(_) => return None,
        }
    }
    parse_sig_ign(std::str::from_utf8(&status[..len]).ok()?)
}

/// The `SigIgn:` mask (hexadecimal, bit `n - 1` for signal `n`) of a `/proc/<pid>/status` text.
fn parse_sig_ign(status: &str) -> Option<u64> {
    let hex = status
        .lines()
        .find_map(|l| l.strip_prefix("SigIgn:"))?
        .trim();
    u64::from_str_radix(hex, 16).ok()
}

/// Close-on-exec for every fd from 3 + `keep` on (LISTEN_FDS and --preserve-fds stay), clear
/// it on the kept ones, reset signals, load the seccomp filter if it is still pending, and
/// `execve`. Only returns on failure.
///
/// Close-on-exec is `close_range(2)`; where it fails (an old kernel, or a seccomp profile
/// already loaded that denies it) every fd that `proc_self_fd` (the host's /proc/self/fd)
/// lists is marked instead.
///
/// `execve(2)` itself resets every caught signal to its default; an ignored one stays ignored,
/// so with the `ignored` mask of [`ignored_signals`] only those are reset (pier's own SIGPIPE,
/// and whatever pier's caller ignored), else every signal one by one.
pub fn exec(
    exec: &Exec,
    keep: u32,
    ignored: Option<u64>,
    fd_dir: Option<BorrowedFd<'_>>,
) -> anyhow::Error {
    for fd in 0..3 + keep as i32 {
        let _ = crate::sys::clear_cloexec(fd);
    }
    if let Err(e) = crate::sys::close_range_cloexec(3 + keep).or_else(|e| match fd_dir {
        Some(dir) => crate::sys::cloexec_listed_from(3 + keep, dir),
        None => Err(e),
    }) {
        return anyhow::Error::from(e).context("mark the fds close-on-exec");
    }
    match ignored {
        Some(mask) => crate::sys::reset_signals_in(mask),
        None => crate::sys::reset_signal_dispositions(),
    }
    if let Err(e) = crate::sys::sigprocmask_set(&crate::sys::SigSet::empty()) {
        return anyhow::Error::from(e).context("sigprocmask");
    }
    if let Some(Err(e)) = exec.seccomp.as_ref().map(|f| f.load()) {
        return e;
    }
    let err = crate::sys::execve(&exec.path, &exec.argv, &exec.envp);
    anyhow::Error::from(err).context(format!("exec {:?}", exec.path))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sig_ign_mask_is_read_from_status() {
        let status = "Name:\tpier\nSigPnd:\t0000000000000000\nSigBlk:\t0000000000000000\n\
                      SigIgn:\t0000000000001001\nSigCgt:\t0000000180000000\n";
        // SIGHUP (1) and SIGPIPE (13).
        assert_eq!(parse_sig_ign(status), Some(1 | 1 << 12));
        assert_eq!(parse_sig_ign("Name:\tx\n"), None);
        assert_eq!(parse_sig_ign("SigIgn:\tnot-hex\n"), None);
    }

    #[test]
    fn own_ignored_signals_include_sigpipe() {
        // The Rust runtime ignores SIGPIPE in every test binary too.
        let mask = ignored_signals().expect("read /proc/self/status");
        assert_ne!(mask & 1 << (libc::SIGPIPE - 1), 0);
    }
}
