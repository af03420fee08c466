//! Issue 15, point 4: a service manager that does not read its notify socket. `run -d`
//! returns only once the container's READY=1 has reached the manager (a barrier behind it
//! completed), fails clearly when that does not happen within `--notify-wait SECONDS`, and
//! the READY=1 is never lost: the detached relay takes over what still waits.

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::time::Duration;

use rustix::event::{poll, PollFd, PollFlags, Timespec};
use rustix::process::Signal;

use crate::notify_support::pier::{pidfd_of, wait_fd, Pier};
use crate::notify_support::scenario::*;
use crate::notify_support::systemd::{FakeSystemd, Got};
use crate::notify_support::HANG_GUARD;
use crate::support::bundle::{Bundle, Gate};
use crate::support::{runner, unique_id, Runtime};

/// Fills the fake manager's receive queue until a send would block; how many were sent.
fn fill(systemd: &FakeSystemd) -> usize {
    let tx = UnixDatagram::unbound().unwrap();
    tx.set_nonblocking(true).unwrap();
    let mut sent = 0;
    while tx.send_to(b"X_FILL=1", systemd.notify_socket()).is_ok() {
        sent += 1;
    }
    assert!(sent > 0, "the fake manager's queue took nothing");
    sent
}

/// Blocks (at most HANG_GUARD) until the container has written a line into the FIFO `path`
/// (made by `Bundle::gate`), i.e. until it got past the command before `echo ... > FIFO`.
fn wait_line(path: &Path) -> String {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
        .open(path)
        .expect("open FIFO");
    let mut fds = [PollFd::new(&file, PollFlags::IN)];
    let guard = Timespec::try_from(HANG_GUARD).unwrap();
    assert!(
        poll(&mut fds, Some(&guard)).expect("poll FIFO") > 0,
        "the container wrote nothing to {}",
        path.display()
    );
    // `echo` writes its line with one write(2), which a FIFO delivers whole.
    let mut buf = [0u8; 64];
    let n = std::io::Read::read(&mut file, &mut buf).expect("read FIFO");
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

/// What came after the fill datagrams, barriers left out.
fn after_fill(got: &[Got]) -> Vec<String> {
    payloads(got)
        .into_iter()
        .filter(|p| p != "X_FILL=1")
        .collect()
}

/// A `run -d <extra>` whose container sent READY=1 (its `/tmp/sent` line was read) to a
/// manager whose queue [`fill`] filled first; the manager has read nothing yet.
struct Stalled {
    systemd: FakeSystemd,
    filled: usize,
    pier: Pier,
    run: std::process::Child,
    id: String,
    _bundle: Bundle,
    _fifo: Gate,
}

fn stalled_run(tag: &str, extra: &[&str]) -> Stalled {
    let systemd = FakeSystemd::bind_path();
    let filled = fill(&systemd);
    let pier = Pier::new();
    let bundle = Bundle::notify(
        "sd-notify-send -j READY=1 STATUS=up && echo sent > /tmp/sent && exec sleep 1000",
    );
    let fifo = bundle.gate("sent");
    let mut args = vec!["-d"];
    args.extend_from_slice(extra);
    let (run, id) = spawn_run(&pier, &bundle, systemd.notify_socket(), tag, &args);
    // The container's READY=1 is sent (to the relay) while the manager reads nothing...
    assert_eq!(wait_line(&bundle.host("/tmp/sent")), "sent\n");
    Stalled {
        systemd,
        filled,
        pier,
        run,
        id,
        _bundle: bundle,
        _fifo: fifo,
    }
}

#[test]
fn run_detached_returns_only_after_the_manager_took_ready() {
    // Every field bound (none left in the temporary), so the bundle lives to the end.
    let Stalled {
        systemd,
        filled,
        pier,
        _bundle,
        _fifo,
        mut run,
        id,
    } = stalled_run("stallready", &[]);
    let pidfd = pidfd_of(run.id() as i32);
    assert!(
        !wait_fd(&pidfd, Duration::ZERO),
        "run -d returned while the manager had not read its READY=1\n{}",
        pier.log()
    );
    // ...and once it reads, READY=1 is there, in order, and run -d returns 0.
    let (status, got) = pier.serve_until_exit(&mut run, &systemd);
    assert_ok(status, &pier);
    let fills = got.iter().filter(|g| g.payload == "X_FILL=1").count();
    assert_eq!(fills, filled, "the manager's own queue");
    let init = pier.state_pid(&id);
    assert_eq!(
        after_fill(&got),
        [format!("MAINPID={init}\nREADY=1\nSTATUS=up")]
    );
}

#[test]
fn a_ready_the_manager_did_not_take_in_time_fails_clearly_and_is_not_lost() {
    let Stalled {
        systemd,
        pier,
        _bundle,
        _fifo,
        mut run,
        id,
        ..
    } = stalled_run("stalltimeout", &["--notify-wait", "3"]);
    // The manager reads nothing until run -d has given up.
    let status = pier.wait(&mut run, HANG_GUARD);
    assert_eq!(status.code(), Some(1), "{}", pier.log());
    assert!(
        pier.log()
            .contains("did not reach the service manager in time"),
        "{}",
        pier.log()
    );
    // The detached relay took over the backlog: READY=1 still arrives, after the fill.
    let init = pier.state_pid(&id);
    let ready = loop {
        let g = systemd.recv();
        if g.payload != "X_FILL=1" && g.payload != "BARRIER=1" {
            break g;
        }
    };
    assert_eq!(ready.payload, format!("MAINPID={init}\nREADY=1\nSTATUS=up"));
}

/// "Signals pier receives meanwhile go to the container" and "nothing ever hangs"
/// (docs/notify.md), with a manager that never reads its notify socket: every upstream send
/// blocks for SEND_TIMEOUT (1 s), so a foreground `run` whose container keeps notifying must
/// still look at its signalfd between sends, and a SIGTERM sent to it reaches the container
/// at once (not after a whole pump budget of 256 blocked sends, about 256 s, as it once did).
#[test]
fn sigterm_reaches_the_container_while_the_host_does_not_read() {
    let never_read = FakeSystemd::bind_path();
    fill(&never_read);
    let mut b = Bundle::new();
    b.install_sender();
    b.sh(r#"trap 'echo term > /events; exit 0' TERM
            ( i=0; while :; do sd-notify-send STATUS=$i; echo "sent $i" > /events; i=$((i+1)); done ) &
            while :; do sleep 0.1; done"#);
    let mut events = b.events();
    let rt = Runtime::new();
    let mut cmd = rt.command(&["run", "--bundle", b.save(), &unique_id("stuck-upstream")]);
    cmd.env("NOTIFY_SOCKET", never_read.notify_socket());
    let pier = runner::spawn_command(cmd);
    // Ten more datagrams than the smallest queue (max_dgram_qlen 10): pier is mid-pump.
    events.expect("sent 20");

    pier.signal(Signal::TERM);
    events.expect("term");
}
