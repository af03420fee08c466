//! QA: when `pier create` is SIGKILLed half-way (an engine's timeout), the child it cloned
//! lives on (no parent-death signal), and `delete` of the id exits 0 while the orphan and the
//! container's cgroup directories stay: state.json was not written yet, so delete only
//! removes the directory.

mod support;

use std::path::Path;

use rustix::fs::{mknodat, FileType, Mode, CWD};
use rustix::process::Signal;
use support::leftovers::processes_in;
use support::{poll_until, unique_id, wchan, Bundle, Runtime};

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
fn delete_after_a_killed_create_leaves_nothing() {
    let rt = Runtime::new();
    let id = unique_id("qa-killed-create");
    let _sweep = SweepCgroups(id.clone());
    let b = Bundle::new();
    let passwd = b.host("/etc/passwd");
    std::fs::remove_file(&passwd).unwrap();
    // The HOME lookup blocks on this FIFO, so create stops half-way, deterministically.
    mknodat(CWD, &passwd, FileType::Fifo, Mode::from_raw_mode(0o644), 0).unwrap();
    let create = rt.spawn(&["create", "--bundle", b.save(), &id]);
    let bundle = Path::new(b.path());
    poll_until("the container init blocks on the /etc/passwd FIFO", || {
        processes_in(bundle, &[b.path()])
            .iter()
            .any(|(pid, _)| wchan(*pid) == "wait_for_partner")
    });
    create.signal(Signal::KILL);
    // delete first: a container that got as far as created holds create's stdout pipe.
    rt.run(&["delete", "--force", &id]).ok();
    create.wait();
    rt.assert_clean(&b, &id);
}

/// Issue 9: `create` SIGKILLed at many points (from right after exec to after it finished),
/// then `delete --force`, leaves no state dir, cgroup, mount or process, and the same id can
/// be created again each time. The points are spread over one measured create; the sleeps
/// choose where the kill lands, nothing is asserted about time.
#[test]
fn sigkill_of_create_at_any_point_then_delete_force_leaves_nothing() {
    const POINTS: u32 = 40;
    let rt = Runtime::new();
    let id = unique_id("killed-create-sweep");
    let _sweep = SweepCgroups(id.clone());
    let b = Bundle::new();
    let bundle = b.save();
    let began = std::time::Instant::now();
    rt.run(&["create", "--bundle", bundle, &id]).ok();
    let span = began.elapsed();
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
    for point in 0..=POINTS {
        let create = rt.spawn(&["create", "--bundle", bundle, &id]);
        std::thread::sleep(span * point / POINTS);
        create.signal(Signal::KILL);
        // delete first: a container that got as far as created holds create's stdout pipe.
        rt.run(&["delete", "--force", &id]).ok();
        create.wait();
        rt.assert_clean(&b, &id);
    }
    rt.run(&["create", "--bundle", bundle, &id]).ok();
    rt.run(&["delete", "--force", &id]).ok();
    rt.assert_clean(&b, &id);
}
