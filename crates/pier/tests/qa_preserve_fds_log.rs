//! QA: `--preserve-fds N` must pass only the caller's fds. When the caller has no fd 3, pier
//! refuses (`fd 3 is not open`), but with `--log FILE` pier's own log file sits at fd 3 and is
//! handed to the container, which can then write records into the engine's log.

mod support;

use support::{host_tempdir, unique_id, Bundle, Runtime};

#[test]
fn preserve_fds_never_hands_pier_own_log_fd_to_the_container() {
    let rt = Runtime::new();
    let logs = host_tempdir("qa-log");
    let log = logs.path().join("runtime.log");
    let mut b = Bundle::new();
    b.sh("echo INJECTED >&3");
    let id = unique_id("qa-pfd");
    let out = rt.run(&[
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "run",
        "--preserve-fds",
        "1",
        "--bundle",
        b.save(),
        &id,
    ]);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        !text.contains("INJECTED"),
        "the container wrote into pier's --log file through fd 3:\n{text}\n{out}"
    );
}
