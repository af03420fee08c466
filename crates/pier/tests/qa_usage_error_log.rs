//! QA: with `--log F --log-format json` a failed call leaves exactly one error record
//! (design §3; containerd and podman read the log for the message). A command-line error
//! (unknown flag) exits 1 with clap's text on stderr and writes nothing to the log; runc
//! writes `{"level":"error","msg":"flag provided but not defined: -…"}`.

mod support;

use support::{assert_one_error_record, host_tempdir, Runtime};

#[test]
fn an_unknown_flag_leaves_one_error_record_in_the_json_log() {
    let rt = Runtime::new();
    let logs = host_tempdir("qa-usage");
    let log = logs.path().join("runtime.log");
    let out = rt.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "create",
        "--no-such-flag",
        "--bundle",
        "/nonexistent",
        "qa-usage",
    ]);
    assert_ne!(out.code(), Some(0), "{out}");
    assert_one_error_record(&log);
}
