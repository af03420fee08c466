//! QA: `process.user.uid`/`gid` 4294967295 is `(uid_t)-1`. A release pier passes it to
//! setresuid(2)/setresgid(2), which read it as "leave unchanged": the process runs as root.
//! A debug pier trips rustix's assertion in the child and reports only "container init exited
//! during setup (killed by signal 11)". runc refuses the config with a clear message ("uids
//! and gids must be in range 0-2147483647").

mod support;

use serde_json::json;
use support::{mentions_any, unique_id, Bundle, Runtime};

#[test]
fn uid_and_gid_minus_one_are_refused_with_a_clear_error() {
    let rt = Runtime::new();
    let mut b = Bundle::new();
    b.sh("id -u; id -g").config["process"]["user"] =
        json!({"uid": 4294967295u32, "gid": 4294967295u32});
    let out = rt.run_fg(&b, &unique_id("qa-uid"));
    out.code_is(1);
    let lines = out.stderr_lines();
    assert!(
        lines.len() == 1 && mentions_any(lines[0], &["uid", "gid", "4294967295"]),
        "expected one error line saying what is wrong with the config:\n{out}"
    );
}
