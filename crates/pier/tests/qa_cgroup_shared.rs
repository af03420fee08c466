//! QA: a container whose cgroupsPath is shared with another container must not kill that
//! other container when it ends. runc warns ("container's cgroup is not empty") and leaves
//! the other processes alone; pier's cleanup SIGKILLs every process in the cgroup.

mod support;

use support::runner::pid_alive;
use support::{unique_id, Bundle, Runtime};

#[test]
fn ending_one_container_leaves_the_other_in_a_shared_cgroup_alive() {
    let rt = Runtime::new();
    let path = format!("/{}", unique_id("qa-shared-cg"));
    let mut long = Bundle::new();
    long.args(&["sleep", "1000"]).config["linux"]["cgroupsPath"] = path.clone().into();
    let first = unique_id("qa-cg-first");
    rt.run(&["run", "-d", "--bundle", long.save(), &first]).ok();
    let first_pid = rt.init_pid(&first);

    let mut short = Bundle::new();
    short.config["linux"]["cgroupsPath"] = path.into();
    rt.run_fg(&short, &unique_id("qa-cg-second"));

    assert!(
        pid_alive(first_pid),
        "the end of the second container killed the first one (pid {first_pid})"
    );
}
