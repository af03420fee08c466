//! Issue 3, point 9. Bad input.

use crate::notify_support;
use crate::notify_support::pier::Pier;
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::FakeSystemd;
use crate::support::Bundle;

/// `pier run -d` with bad notify settings fails naming the setting and leaves nothing.
fn assert_rejected(tag: &str, extra: &[&str], annotation: Option<(&str, &str)>, named: &str) {
    let systemd = FakeSystemd::bind_path();
    let pier = Pier::new();
    let mut bundle = Bundle::notify("sd-notify-send READY=1; exec sleep 1000");
    if let Some((key, value)) = annotation {
        bundle.annotate(key, value);
    }
    bundle.cgroups_path(&format!("/{}", pier.id(tag)));
    let (mut child, id) = spawn_run(
        &pier,
        &bundle,
        systemd.notify_socket(),
        tag,
        &[&["-d"], extra].concat(),
    );
    let (status, got) = pier.serve_until_exit(&mut child, &systemd);
    let log = pier.log();
    assert!(!status.success(), "{tag}: accepted\n{log}");
    assert!(
        log.contains(named),
        "{tag}: the error does not name {named}:\n{log}"
    );
    assert_eq!(
        payloads(&got),
        Vec::<String>::new(),
        "{tag}: relayed anyway"
    );
    assert!(!pier.root().join(&id).exists(), "{tag}: state left behind");
    let root = path_str(pier.root());
    assert_eq!(
        notify_support::pier::processes_mentioning(&root),
        Vec::<i32>::new(),
        "{tag}: processes left"
    );
    assert_no_cgroup(&id);
}

#[test]
fn bad_notify_settings_are_rejected_and_leave_nothing() {
    assert_rejected("badwait", &["--notify-wait", "soon"], None, "soon");
    assert_rejected(
        "badwaitann",
        &[],
        Some(("org.pier.notify.wait", "-1")),
        "-1",
    );
    assert_rejected(
        "badaccess",
        &[],
        Some(("org.pier.notify.access", "main")),
        "org.pier.notify.access",
    );
    assert_rejected(
        "badidentity",
        &[],
        Some(("org.pier.notify.identity", "x")),
        "org.pier.notify.identity",
    );
    assert_rejected(
        "badfdstore",
        &[],
        Some(("org.pier.notify.fdstore", "yes")),
        "org.pier.notify.fdstore",
    );
    // A misspelt key of pier's own would otherwise leave every process free to notify.
    assert_rejected(
        "misspelt",
        &[],
        Some(("org.pier.notify.acess", "init")),
        "org.pier.notify.acess",
    );
    assert_rejected(
        "badexec",
        &[],
        Some(("org.pier.notify.exec", "host")),
        "org.pier.notify.exec",
    );
}
