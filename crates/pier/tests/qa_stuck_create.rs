//! QA: a `create` that cannot finish (here: the image's /etc/passwd is a FIFO nobody writes,
//! so the HOME lookup blocks) holds the container directory's lock for as long as it lasts.
//! Meanwhile `list` (every container!), `state` and `delete --force` of that id block too, so
//! an engine can neither see nor clean up. runc answers all three and its `delete --force`
//! kills the half-created container.

mod support;

use std::path::Path;

use rustix::fs::{mknodat, FileType, Mode, CWD};
use support::leftovers::processes_in;
use support::{poll_until, unique_id, wchan, Bundle, Runtime};

/// Waits until some process of the bundle sleeps opening a FIFO (`wait_for_partner`).
fn wait_blocked_on_fifo(bundle: &Path) {
    let needle = bundle.to_str().unwrap();
    poll_until("the container init blocks on the /etc/passwd FIFO", || {
        processes_in(bundle, &[needle])
            .iter()
            .any(|(pid, _)| wchan(*pid) == "wait_for_partner")
    });
}

/// Removes the cgroup directories named after the id when the test ends (after the bundle's
/// drop has killed what was left), so a failing run does not leave them on the host.
struct SweepCgroups(String);

impl Drop for SweepCgroups {
    fn drop(&mut self) {
        for dir in support::leftovers::cgroup_dirs_named(&self.0).iter().rev() {
            let _ = std::fs::remove_dir(dir);
        }
    }
}

#[test]
fn list_state_and_delete_force_answer_while_a_create_is_stuck() {
    let rt = Runtime::new();
    let id = unique_id("qa-stuck");
    let _sweep = SweepCgroups(id.clone());
    let b = Bundle::new();
    let passwd = b.host("/etc/passwd");
    std::fs::remove_file(&passwd).unwrap();
    mknodat(CWD, &passwd, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
    let create = rt.spawn(&["create", "--bundle", b.save(), &id]);
    wait_blocked_on_fifo(Path::new(b.path()));

    rt.run(&["list"]).ok();
    rt.run(&["state", &id]).ok();
    rt.run(&["delete", "--force", &id]).ok();
    create.wait();
    rt.assert_clean(&b, &id);
}
