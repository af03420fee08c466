//! What a pidfd says about its process: its pids (`/proc/self/fdinfo/<fd>`, proc(5)) and
//! its identity (the pidfs inode, Linux 6.9).
//!
//! Unlike a pid read from `SCM_CREDENTIALS` and looked up in `/proc/<pid>/status`, a pidfd
//! names one process for good: its fdinfo shows that process's pids while it exists and
//! `Pid: -1` once it has been reaped, never another process that got the same pid.

use std::os::fd::{AsRawFd, BorrowedFd};

use crate::RelayError;

/// `PID_FS_MAGIC` (include/uapi/linux/magic.h): the file system of pidfds since Linux 6.9.
const PID_FS_MAGIC: i64 = 0x5049_4446;

/// A pidfd's fdinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidfdInfo {
    /// `Pid:`, the process's pid in the pid namespace of our `/proc`; `None` once it has
    /// exited and been reaped (`Pid: -1`).
    pub pid: Option<i32>,
    /// `NSpid:`, its pid in every pid namespace from ours inwards (first = `pid`, last = its
    /// own `getpid()`); empty once reaped.
    pub nspid: Vec<i32>,
}

impl PidfdInfo {
    /// The pid the process has in its innermost pid namespace, if it has not been reaped.
    pub fn innermost_pid(&self) -> Option<i32> {
        self.pid.and(self.nspid.last().copied())
    }
}

/// Parses the `Pid:` and `NSpid:` lines of a pidfd's fdinfo text.
pub fn parse_fdinfo(text: &str) -> Option<PidfdInfo> {
    let field = |name: &str| text.lines().find_map(|l| l.strip_prefix(name));
    let pid: i32 = field("Pid:")?.trim().parse().ok()?;
    let pid = (pid > 0).then_some(pid);
    let nspid = match (pid, field("NSpid:")) {
        (Some(_), Some(line)) => line
            .split_whitespace()
            .map(|p| p.parse().ok())
            .collect::<Option<Vec<i32>>>()?,
        (Some(pid), None) => vec![pid], // a kernel without CONFIG_PID_NS
        (None, _) => Vec::new(),
    };
    Some(PidfdInfo { pid, nspid })
}

/// Reads `/proc/self/fdinfo/<pidfd>`.
///
/// # Errors
/// [`RelayError::Io`] if it cannot be read, [`RelayError::NotAPidfd`] if it has no `Pid:`
/// line (the fd is not a pidfd).
pub fn info(pidfd: BorrowedFd<'_>) -> Result<PidfdInfo, RelayError> {
    let path = format!("/proc/self/fdinfo/{}", pidfd.as_raw_fd());
    let text =
        std::fs::read_to_string(&path).map_err(|e| RelayError::io(format!("read {path}"), e))?;
    parse_fdinfo(&text).ok_or(RelayError::NotAPidfd)
}

/// The process's identity as pidfs gives it: the inode of its pidfds, the same for every
/// pidfd of that process and never reused while the system runs (systemd's "pidfd id",
/// `MAINPIDFDID=`). `None` when pidfds are not on pidfs (before Linux 6.9 they share one
/// anonymous inode, so the number would say nothing) or `fstat` fails.
pub fn process_id(pidfd: BorrowedFd<'_>) -> Option<u64> {
    let fs = rustix::fs::fstatfs(pidfd).ok()?;
    if fs.f_type as i64 != PID_FS_MAGIC {
        return None;
    }
    same_kernel_process_id(pidfd)
}

/// [`process_id`] without the pidfs check (one `fstat`), for a pidfd of a kernel already known
/// to put pidfds on pidfs.
pub(crate) fn same_kernel_process_id(pidfd: BorrowedFd<'_>) -> Option<u64> {
    rustix::fs::fstat(pidfd).ok().map(|stat| stat.st_ino)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn parses_live_and_reaped() {
        let live =
            "pos:\t0\nflags:\t02000002\nmnt_id:\t15\nino:\t1042\nPid:\t4242\nNSpid:\t4242\t7\n";
        assert_eq!(
            parse_fdinfo(live),
            Some(PidfdInfo {
                pid: Some(4242),
                nspid: vec![4242, 7]
            })
        );
        assert_eq!(parse_fdinfo(live).and_then(|i| i.innermost_pid()), Some(7));
        let reaped = "pos:\t0\nPid:\t-1\nNSpid:\t-1\n";
        let info = parse_fdinfo(reaped).expect("parses");
        assert_eq!((info.pid, info.innermost_pid()), (None, None));
        assert_eq!(parse_fdinfo("pos:\t0\nflags:\t02\n"), None, "not a pidfd");
    }

    #[test]
    fn own_pidfd() {
        let own = rustix::process::getpid();
        let pidfd = rustix::process::pidfd_open(own, rustix::process::PidfdFlags::empty())
            .expect("pidfd_open");
        let info = info(pidfd.as_fd()).expect("fdinfo");
        assert_eq!(info.pid, Some(own.as_raw_nonzero().get()));
        let again = rustix::process::pidfd_open(own, rustix::process::PidfdFlags::empty())
            .expect("pidfd_open");
        if let Some(id) = process_id(pidfd.as_fd()) {
            assert_eq!(process_id(again.as_fd()), Some(id), "one process, one id");
        }
    }
}
