//! QA: "signals pier receives meanwhile go to the container" and "nothing ever hangs"
//! (docs/notify.md). When the host's NOTIFY_SOCKET does not read (a busy manager), every
//! upstream send blocks for SEND_TIMEOUT (1 s) and one pump handles up to PUMP_BUDGET (256)
//! datagrams before the loop looks at the signalfd again. A container that keeps notifying
//! then gets a SIGTERM sent to `pier run` minutes late (about 256 s here).

mod support;

use std::os::unix::net::UnixDatagram;

use rustix::process::Signal;
use support::{host_tempdir, runner, unique_id, Bundle, Runtime};

/// Fills the receive queue of the socket bound at `path` until a send would block.
fn fill(path: &std::path::Path) {
    let tx = UnixDatagram::unbound().unwrap();
    tx.set_nonblocking(true).unwrap();
    while tx.send_to(b"X_FILL=1", path).is_ok() {}
}

#[test]
fn sigterm_reaches_the_container_while_the_host_does_not_read() {
    let dir = host_tempdir("qa-stuck-up");
    let path = dir.path().join("notify");
    let _never_read = UnixDatagram::bind(&path).unwrap();
    fill(&path);
    let mut b = Bundle::new();
    b.install_sender();
    b.sh(r#"trap 'echo term > /events; exit 0' TERM
            ( i=0; while :; do sd-notify-send STATUS=$i; echo "sent $i" > /events; i=$((i+1)); done ) &
            while :; do sleep 0.1; done"#);
    let mut events = b.events();
    let rt = Runtime::new();
    let mut cmd = rt.command(&["run", "--bundle", b.save(), &unique_id("qa-stuck-up")]);
    cmd.env("NOTIFY_SOCKET", &path);
    let pier = runner::spawn_command(cmd);
    // Ten more datagrams than the smallest queue (max_dgram_qlen 10): pier is mid-pump.
    events.expect("sent 20");

    pier.signal(Signal::TERM);
    events.expect("term");
}
