//! Staging what a test needs on the host or in an image: executable files, FIFOs, a create
//! that blocks half-way, pid files to read, cgroup directories swept after a test.

use std::path::Path;

use super::leftovers::{cgroup_dirs_named, processes_in};
use super::{poll_until, wchan, Bundle};

/// Writes `text` to `path` with mode 0755.
pub fn write_executable(path: &Path, text: &str) {
    std::fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    std::fs::set_permissions(path, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod 0755");
}

/// Makes a FIFO at `path` with `mode`.
pub fn mkfifo(path: &Path, mode: u32) {
    use rustix::fs::{mknodat, FileType, Mode, CWD};
    mknodat(CWD, path, FileType::Fifo, Mode::from_raw_mode(mode), 0)
        .unwrap_or_else(|e| panic!("mkfifo {}: {e}", path.display()));
}

/// The pid written into a `--pid-file` (or by a script) at `path`.
#[track_caller]
pub fn read_pid(path: &Path) -> i32 {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read pid file {}: {e}", path.display()));
    text.trim()
        .parse()
        .unwrap_or_else(|e| panic!("no pid in {}: {text:?} ({e})", path.display()))
}

/// Replaces the image's /etc/passwd by a FIFO nobody writes, so the HOME lookup of a
/// `create` of `b` blocks there, half-way, deterministically (see [`wait_blocked_on_fifo`]).
pub fn block_create_on_passwd(b: &Bundle) {
    let passwd = b.host("/etc/passwd");
    std::fs::remove_file(&passwd).unwrap();
    mkfifo(&passwd, 0o644);
}

/// Waits until some process of bundle `b` sleeps opening a FIFO (`wait_for_partner`).
pub fn wait_blocked_on_fifo(b: &Bundle) {
    let bundle = Path::new(b.path());
    poll_until("the container init blocks on the /etc/passwd FIFO", || {
        processes_in(bundle, &[b.path()])
            .iter()
            .any(|(pid, _)| wchan(*pid) == "wait_for_partner")
    });
}

/// Removes the cgroup directories named after the id when the test ends (after the bundle's
/// drop has killed what was left), so a failing run does not leave them on the host.
pub struct SweepCgroups(pub String);

impl Drop for SweepCgroups {
    fn drop(&mut self) {
        for dir in cgroup_dirs_named(&self.0).iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}
