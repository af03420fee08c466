//! Issue 3, point 3. Fidelity.

use crate::notify_support::pier::Pier;
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::FakeSystemd;
use crate::support::Bundle;

#[test]
fn one_datagram_in_is_one_out_in_order() {
    let sent = [
        "STATUS=one",
        r"STATUS=two\nX_PART=2",
        r"STATUS=three\nRELOADING=1\nMONOTONIC_USEC=123",
        "WATCHDOG=1",
        "STATUS=four",
    ];
    let script = format!("sd-notify-send '{}'", sent.join("' '"));
    let want: Vec<String> = sent.iter().map(|m| m.replace(r"\n", "\n")).collect();
    assert_eq!(relayed("order", &script, |_| {}), want);
}

/// `run -d` with a container whose first datagram is `first`, then blocks: run -d must
/// return 0 (it saw READY) and forward `first` with `MAINPID=<init>` in front.
fn assert_ready_detected(tag: &str, first: &str) {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let bundle = Bundle::notify(&format!("sd-notify-send '{first}' && read _ < /tmp/gate"));
    let _gate = bundle.gate("gate");
    let run = run_detached(&pier, &bundle, &systemd, tag, &[]);
    assert_ok(run.status, &pier);
    let init = pier.state_pid(&run.id);
    assert_eq!(
        payloads(&run.got)[0],
        format!("MAINPID={init}\n{}", first.replace("\\n", "\n"))
    );
}

#[test]
fn ready_after_status_in_one_datagram_counts() {
    assert_ready_detected("readystatus", r"STATUS=warming up\nREADY=1");
}

#[test]
fn ready_after_600_bytes_of_status_counts() {
    assert_ready_detected("ready600", &format!(r"STATUS={}\nREADY=1", "s".repeat(600)));
}

#[test]
fn oversized_datagram_is_dropped_and_later_ones_arrive() {
    let script = format!(
        "sd-notify-send STATUS=before X_BIG={} STATUS=after",
        "b".repeat(5000)
    );
    assert_eq!(
        relayed("big", &script, |_| {}),
        ["STATUS=before", "STATUS=after"]
    );
}

#[test]
fn notifyaccess_is_dropped() {
    let script = r#"sd-notify-send NOTIFYACCESS=all "NOTIFYACCESS=all\nSTATUS=kept" STATUS=end"#;
    assert_eq!(
        relayed("notifyaccess", script, |_| {}),
        ["STATUS=kept", "STATUS=end"]
    );
}

#[test]
fn extension_keys_are_forwarded() {
    let script = r#"sd-notify-send X_FOO=bar "X_FOO=baz\nX_OTHER=1""#;
    assert_eq!(
        relayed("xfoo", script, |_| {}),
        ["X_FOO=bar", "X_FOO=baz\nX_OTHER=1"]
    );
}
