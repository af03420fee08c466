//! Running the runtime binary: one-shot invocations whose stdout/stderr go to anonymous files,
//! and long-lived ones (foreground `run`) whose output is streamed through pipes.
//!
//! Every wait has a deadline, so a hanging runtime fails the test instead of hanging it. Exits
//! are observed through a pidfd (`pidfd_open(2)` + `poll(2)`), never with sleeps.

use std::ffi::OsStr;
use std::fmt;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_open, pidfd_send_signal, Pid, PidfdFlags, Signal};

/// How long any single runtime invocation (or wait for a container event) may take.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// What one finished invocation produced.
pub struct Output {
    /// The argv that was run (for failure messages).
    pub argv: String,
    /// Exit status as `wait(2)` reported it.
    pub status: ExitStatus,
    /// Everything written to stdout (lossy UTF-8).
    pub stdout: String,
    /// Everything written to stderr (lossy UTF-8).
    pub stderr: String,
}

impl Output {
    /// The exit code, or `None` when the process was killed by a signal.
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }

    /// Panics (showing the whole output) unless the exit status is 0.
    #[track_caller]
    pub fn ok(&self) -> &Self {
        assert!(self.status.success(), "expected success:\n{self}");
        self
    }

    /// Panics (showing the whole output) unless the process exited with `code`.
    #[track_caller]
    pub fn code_is(&self, code: i32) -> &Self {
        assert_eq!(self.code(), Some(code), "unexpected exit status:\n{self}");
        self
    }

    /// The non-empty lines of stderr.
    pub fn stderr_lines(&self) -> Vec<&str> {
        self.stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect()
    }
}

impl fmt::Display for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "$ {}", self.argv)?;
        match (self.status.code(), self.status.signal()) {
            (Some(c), _) => writeln!(f, "exit code {c}")?,
            (None, Some(s)) => writeln!(f, "killed by signal {s}")?,
            _ => writeln!(f, "status {:?}", self.status)?,
        }
        writeln!(f, "--- stdout ---\n{}", self.stdout)?;
        write!(f, "--- stderr ---\n{}", self.stderr)
    }
}

impl fmt::Debug for Output {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Renders a command line for messages.
pub fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

/// Runs `cmd` to completion with stdin on /dev/null and stdout/stderr captured in anonymous
/// files (files, not pipes: a detached container inherits them and must not block us).
/// Panics if it does not exit within `timeout` (after killing it).
pub fn run_command(mut cmd: Command, timeout: Duration) -> Output {
    let argv = describe(&cmd);
    let mut out = tempfile::tempfile().expect("stdout capture file");
    let mut err = tempfile::tempfile().expect("stderr capture file");
    cmd.stdin(Stdio::null())
        .stdout(out.try_clone().expect("dup stdout file"))
        .stderr(err.try_clone().expect("dup stderr file"));
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {argv}: {e}"));
    let exited = wait_child(&child, timeout);
    if !exited {
        let _ = child.kill();
    }
    let status = child.wait().expect("wait for runtime");
    let output = Output {
        argv,
        status,
        stdout: read_all(&mut out),
        stderr: read_all(&mut err),
    };
    assert!(exited, "timed out after {timeout:?}:\n{output}");
    output
}

fn read_all(f: &mut File) -> String {
    let mut bytes = Vec::new();
    f.seek(SeekFrom::Start(0)).expect("rewind capture file");
    f.read_to_end(&mut bytes).expect("read capture file");
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Waits until our child exits (without reaping it). Returns false on timeout.
fn wait_child(child: &Child, timeout: Duration) -> bool {
    let fd = pidfd_open(Pid::from_child(child), PidfdFlags::empty()).expect("pidfd_open child");
    wait_pidfd(&fd, Instant::now() + timeout)
}

/// Polls a pidfd until it becomes readable (the process exited) or `deadline` passes.
pub fn wait_pidfd(fd: &OwnedFd, deadline: Instant) -> bool {
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: left.subsec_nanos() as i64,
        };
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) => return false,
            Ok(_) => return true,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll pidfd: {e}"),
        }
    }
}

/// Waits for any process (not necessarily our child) to exit, via its pidfd.
/// Returns true when it is gone (or a zombie) before `deadline`.
pub fn wait_pid_gone(pid: i32, deadline: Instant) -> bool {
    let Some(pid) = Pid::from_raw(pid) else {
        return true;
    };
    match pidfd_open(pid, PidfdFlags::empty()) {
        Ok(fd) => wait_pidfd(&fd, deadline),
        Err(rustix::io::Errno::SRCH) => true,
        Err(e) => panic!("pidfd_open({pid:?}): {e}"),
    }
}

/// True if a process with this pid exists and is not a zombie.
pub fn pid_alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // Field 3 (after the parenthesised comm) is the state letter.
        Ok(stat) => stat
            .rsplit_once(')')
            .map(|(_, rest)| !rest.trim_start().starts_with('Z'))
            .unwrap_or(false),
        Err(_) => false,
    }
}

/// Accumulated output of one stream of a [`Running`] process.
#[derive(Default)]
struct Stream {
    state: Mutex<(String, bool)>,
    changed: Condvar,
}

impl Stream {
    fn pump(self: Arc<Self>, mut src: impl Read + Send + 'static) -> JoinHandle<()> {
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            loop {
                let n = src.read(&mut buf).unwrap_or(0);
                let mut st = self.state.lock().unwrap();
                if n == 0 {
                    st.1 = true;
                } else {
                    st.0.push_str(&String::from_utf8_lossy(&buf[..n]));
                }
                self.changed.notify_all();
                if n == 0 {
                    return;
                }
            }
        })
    }

    /// Waits until `pred(text, eof)` holds or the deadline passes; returns the text and
    /// whether the predicate held.
    fn wait_for(&self, deadline: Instant, pred: impl Fn(&str, bool) -> bool) -> (String, bool) {
        let mut st = self.state.lock().unwrap();
        loop {
            if pred(&st.0, st.1) {
                return (st.0.clone(), true);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || st.1 {
                return (st.0.clone(), false);
            }
            st = self.changed.wait_timeout(st, left).unwrap().0;
        }
    }
}

/// A runtime invocation that keeps running (foreground `run`), with its output streamed.
pub struct Running {
    argv: String,
    child: Option<Child>,
    pidfd: OwnedFd,
    stdout: Arc<Stream>,
    stderr: Arc<Stream>,
}

/// Spawns `cmd` with stdin on /dev/null and stdout/stderr on pipes read by two threads.
pub fn spawn_command(mut cmd: Command) -> Running {
    let argv = describe(&cmd);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("cannot spawn {argv}: {e}"));
    let pidfd = pidfd_open(Pid::from_child(&child), PidfdFlags::empty()).expect("pidfd_open");
    let stdout = Arc::new(Stream::default());
    let stderr = Arc::new(Stream::default());
    let out: ChildStdout = child.stdout.take().unwrap();
    let err: ChildStderr = child.stderr.take().unwrap();
    stdout.clone().pump(out);
    stderr.clone().pump(err);
    Running {
        argv,
        child: Some(child),
        pidfd,
        stdout,
        stderr,
    }
}

impl Running {
    /// Host pid of the runtime process.
    pub fn pid(&self) -> i32 {
        self.child.as_ref().unwrap().id() as i32
    }

    /// Sends `sig` to the runtime process through its pidfd.
    pub fn signal(&self, sig: Signal) {
        pidfd_send_signal(self.pidfd.as_fd(), sig).expect("pidfd_send_signal");
    }

    /// Waits until stdout contains `needle`; panics (with all output) on timeout or EOF.
    #[track_caller]
    pub fn expect_stdout(&self, needle: &str) -> String {
        let (text, ok) = self
            .stdout
            .wait_for(Instant::now() + TIMEOUT, |t, _| t.contains(needle));
        if !ok {
            let err = self.stderr.state.lock().unwrap().0.clone();
            panic!(
                "{}: stdout never contained {needle:?}\n--- stdout ---\n{text}\n--- stderr ---\n{err}",
                self.argv
            );
        }
        text
    }

    /// Waits for the process to exit and both streams to reach EOF; panics on timeout.
    pub fn wait(mut self) -> Output {
        let deadline = Instant::now() + TIMEOUT;
        let exited = wait_pidfd(&self.pidfd, deadline);
        let mut child = self.child.take().unwrap();
        if !exited {
            let _ = child.kill();
        }
        let status = child.wait().expect("wait runtime");
        let (stdout, _) = self.stdout.wait_for(deadline, |_, eof| eof);
        let (stderr, _) = self.stderr.wait_for(deadline, |_, eof| eof);
        let out = Output {
            argv: self.argv.clone(),
            status,
            stdout,
            stderr,
        };
        assert!(exited, "did not exit within {TIMEOUT:?}:\n{out}");
        out
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// A `Command` for `program` with `args`.
pub fn command<S: AsRef<OsStr>>(program: &OsStr, args: &[S]) -> Command {
    let mut cmd = Command::new(program);
    cmd.args(args);
    cmd
}
