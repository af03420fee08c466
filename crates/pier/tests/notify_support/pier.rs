//! The notify tests' view of the one runner ([`Runtime`]): pier with `--debug`, a scrubbed
//! environment and the given `NOTIFY_SOCKET`, its output (and the containers') in a log file,
//! waited for through a pidfd (never longer than a guard). The runner owns the state root
//! and force-deletes every container a test made.

use std::fs::{self, File};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::{pidfd_open, Pid, PidfdFlags};

use super::systemd::{FakeSystemd, Got};
use super::HANG_GUARD;
use crate::support::Runtime;

/// One test's pier: a [`Runtime`] and a scratch directory holding the log file of pier's
/// (and the containers') stdout and stderr.
pub struct Pier {
    rt: Runtime,
    dir: tempfile::TempDir,
}

impl Pier {
    /// A fresh state root.
    pub fn new() -> Self {
        Self::over(Runtime::new())
    }

    /// A state root of exactly `len` bytes ([`Runtime::with_root_len`]), for long paths.
    pub fn with_root_len(len: usize) -> Self {
        Self::over(Runtime::with_root_len(len))
    }

    fn over(rt: Runtime) -> Self {
        let dir = tempfile::Builder::new()
            .prefix("pier-notify-state")
            .tempdir()
            .expect("scratch tempdir");
        Self { rt, dir }
    }

    /// The state root.
    pub fn root(&self) -> &Path {
        self.rt.root()
    }

    /// This test's scratch directory (beside the log: pid files and the like).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A container id unique to this test process and `tag` (the runner deletes whatever is
    /// left under its root when it drops).
    pub fn id(&self, tag: &str) -> String {
        format!("nt-{tag}-{}", std::process::id())
    }

    /// `pier --root <root> --debug <args>` with `NOTIFY_SOCKET` as given (and no inherited
    /// `NOTIFY_SOCKET`/`WATCHDOG_*`/`LISTEN_*`); stdout and stderr go to the log.
    pub fn command(&self, notify_socket: Option<&str>, args: &[&str]) -> Command {
        let mut full = vec!["--debug"];
        full.extend_from_slice(args);
        let mut cmd = self.rt.command(&full);
        for var in [
            "NOTIFY_SOCKET",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
            "LISTEN_FDS",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
        ] {
            cmd.env_remove(var);
        }
        if let Some(socket) = notify_socket {
            cmd.env("NOTIFY_SOCKET", socket);
        }
        cmd.stdin(Stdio::null())
            .stdout(self.log_file())
            .stderr(self.log_file());
        cmd
    }

    /// Spawns [`Pier::command`].
    pub fn spawn(&self, notify_socket: Option<&str>, args: &[&str]) -> Child {
        self.command(notify_socket, args)
            .spawn()
            .expect("spawn pier")
    }

    /// Runs [`Pier::command`] to its exit (bounded by [`HANG_GUARD`]).
    pub fn status(&self, notify_socket: Option<&str>, args: &[&str]) -> ExitStatus {
        let mut child = self.spawn(notify_socket, args);
        self.wait(&mut child, HANG_GUARD)
    }

    /// Waits for `child` to exit within `guard`; kills it and panics (with the log) otherwise.
    pub fn wait(&self, child: &mut Child, guard: Duration) -> ExitStatus {
        let pidfd = pidfd_of(child.id() as i32);
        if !wait_fd(&pidfd, guard) {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "pier did not exit within {guard:?}\n--- log ---\n{}",
                self.log()
            );
        }
        child.wait().expect("wait pier")
    }

    /// Waits for a foreground pier to exit while reading everything it forwards (closing
    /// barrier fds like systemd, so pier's final barrier completes); returns its status and
    /// the datagrams, `BARRIER=1` ones included.
    pub fn serve_until_exit(
        &self,
        child: &mut Child,
        systemd: &FakeSystemd,
    ) -> (ExitStatus, Vec<Got>) {
        let pidfd = pidfd_of(child.id() as i32);
        let deadline = Instant::now() + HANG_GUARD;
        let mut got = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "pier did not exit within {HANG_GUARD:?}; got {got:?}\n--- log ---\n{}",
                    self.log()
                );
            }
            let mut fds = [
                PollFd::new(&pidfd, PollFlags::IN),
                PollFd::from_borrowed_fd(systemd.fd(), PollFlags::IN),
            ];
            match poll(&mut fds, Some(&Timespec::try_from(left).expect("timespec"))) {
                Err(rustix::io::Errno::INTR) | Ok(0) => continue,
                other => other.expect("poll"),
            };
            if !fds[1].revents().is_empty() {
                got.extend(systemd.recv_within(Duration::ZERO));
            } else if !fds[0].revents().is_empty() {
                let status = child.wait().expect("wait pier");
                while let Some(g) = systemd.recv_within(Duration::ZERO) {
                    got.push(g);
                }
                return (status, got);
            }
        }
    }

    /// `pier state <id>`'s pid ([`Runtime::init_pid`]).
    #[track_caller]
    pub fn state_pid(&self, id: &str) -> i32 {
        self.rt.init_pid(id)
    }

    /// What pier and the containers wrote to stdout/stderr so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("pier.log")).unwrap_or_default()
    }

    fn log_file(&self) -> File {
        fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("pier.log"))
            .expect("open log")
    }
}

/// A pidfd for `pid` (pidfd_open(2)): readable once the process has exited.
pub fn pidfd_of(pid: i32) -> OwnedFd {
    pidfd_open(
        Pid::from_raw(pid).expect("positive pid"),
        PidfdFlags::empty(),
    )
    .expect("pidfd_open")
}

/// Polls `fd` for input for at most `timeout`.
pub fn wait_fd(fd: &OwnedFd, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        let left = Timespec::try_from(deadline.saturating_duration_since(Instant::now()))
            .expect("timespec");
        let mut fds = [PollFd::new(fd, PollFlags::IN)];
        match poll(&mut fds, Some(&left)) {
            Ok(n) => return n > 0,
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => panic!("poll: {e}"),
        }
    }
}

/// Host pids of processes whose command line mentions `needle` (e.g. a test's unique root).
pub fn processes_mentioning(needle: &str) -> Vec<i32> {
    let mut pids = Vec::new();
    for entry in fs::read_dir("/proc").expect("read /proc").flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = fs::read(entry.path().join("cmdline")) else {
            continue;
        };
        if String::from_utf8_lossy(&cmdline).contains(needle) {
            pids.push(pid);
        }
    }
    pids
}
