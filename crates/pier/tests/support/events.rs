//! A FIFO inside the rootfs through which a detached container reports what happened to it
//! (`echo started > /events`), so tests wait on `poll(2)` instead of sleeping.

use std::fs::File;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::fs::{chmod, mknodat, open, FileType, Mode, OFlags, CWD};

use super::bundle::Bundle;
use super::runner::TIMEOUT;

/// The read side of the events FIFO. It is opened read-write so it never sees EOF between two
/// writers, and non-blocking so reads never stall.
pub struct Events {
    path: PathBuf,
    file: File,
    buf: String,
}

impl Events {
    /// Makes a FIFO (mode 0666) at `path` and opens it.
    pub fn new(path: &Path) -> Self {
        mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(0o666), 0).expect("mkfifo");
        chmod(path, Mode::from_raw_mode(0o666)).expect("chmod fifo");
        let fd = open(
            path,
            OFlags::RDWR | OFlags::NONBLOCK | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .expect("open fifo");
        Events {
            path: path.to_owned(),
            file: File::from(fd),
            buf: String::new(),
        }
    }

    /// Waits for a line containing `needle`, consumes everything up to and including it, and
    /// returns that line. Panics with what was received when the deadline passes.
    #[track_caller]
    pub fn expect(&mut self, needle: &str) -> String {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(line) = self.take_line_with(needle) {
                return line;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            assert!(
                !left.is_zero(),
                "no event {needle:?} on {} within {TIMEOUT:?}; got {:?}",
                self.path.display(),
                self.buf
            );
            self.fill(left);
        }
    }

    /// Everything received but not consumed yet (after draining what is available now).
    pub fn pending(&mut self) -> String {
        self.fill(std::time::Duration::ZERO);
        self.buf.clone()
    }

    fn take_line_with(&mut self, needle: &str) -> Option<String> {
        let mut start = 0;
        for line in self.buf.split_inclusive('\n') {
            let end = start + line.len();
            if line.ends_with('\n') && line.contains(needle) {
                let found = line.trim_end().to_owned();
                self.buf.drain(..end);
                return Some(found);
            }
            start = end;
        }
        None
    }

    fn fill(&mut self, wait: std::time::Duration) {
        let ts = Timespec {
            tv_sec: wait.as_secs() as i64,
            tv_nsec: wait.subsec_nanos() as i64,
        };
        let mut fds = [PollFd::new(&self.file, PollFlags::IN)];
        match poll(&mut fds, Some(&ts)) {
            Ok(0) | Err(rustix::io::Errno::INTR) => return,
            Ok(_) => {}
            Err(e) => panic!("poll fifo: {e}"),
        }
        let mut chunk = [0u8; 4096];
        loop {
            match (&self.file).read(&mut chunk) {
                Ok(0) => return,
                Ok(n) => self.buf.push_str(&String::from_utf8_lossy(&chunk[..n])),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => panic!("read fifo: {e}"),
            }
        }
    }
}

impl Bundle {
    /// Creates the events FIFO at `/events` in this bundle's rootfs.
    pub fn events(&self) -> Events {
        Events::new(&self.host("/events"))
    }
}
