//! Lifecycle (issue 2, point 3): create/start/state/kill/delete/run, pid files, ids.

mod support;

use support::{unique_id, Bundle, Runtime};

#[test]
fn foreground_run_prints_output_and_exits_zero() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("echo hello from the container");
    let id = unique_id("fg");
    let out = rt.run_fg(&b, &id);
    out.ok();
    assert_eq!(out.stdout, "hello from the container\n", "{out}");
    rt.assert_clean(&b, &id);
}
