//! The sender checks with pidfds ([`Received::pidfd`]): the identity is the pidfd's process,
//! not the `SCM_CREDENTIALS` pid, so a pid that now belongs to another process (reuse) is
//! never mistaken for the sender, and an exited sender is judged as systemd judges it.
//! Datagrams are built by hand here, with pidfds of real processes; tests/namespaces.rs and
//! tests/pidfd_fds.rs take them from a real listener.

use std::os::fd::{AsFd, OwnedFd};
use std::process::{Child, Command, Stdio};

use rustix::process::{pidfd_open, Pid, PidfdFlags};

use super::*;
use crate::SenderAccess;

/// A process to stand in for the init or for another sender, and a pidfd of it.
struct Process {
    child: Child,
    pidfd: OwnedFd,
}

impl Process {
    fn spawn(program: &str, args: &[&str]) -> Self {
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn");
        // Before any wait: a zombie still gets a pidfd, so this is the child for sure.
        let pidfd = pidfd_open(Pid::from_child(&child), PidfdFlags::empty()).expect("pidfd_open");
        Self { child, pidfd }
    }

    fn sleeper() -> Self {
        Self::spawn("sleep", &["600"])
    }

    /// A process that has exited and been reaped: its pid is free for reuse.
    fn reaped() -> Self {
        let mut process = Self::spawn("true", &[]);
        assert!(process.child.wait().expect("wait").success());
        process
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    fn pidfd(&self) -> OwnedFd {
        self.pidfd.try_clone().expect("dup pidfd")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn init_only(init: &Process) -> Relay {
    Relay::new(Config {
        policy: Policy {
            sender: SenderAccess::Init,
            ..Policy::default()
        },
        identity: Identity::AsRelay,
        init_host_pid: init.pid(),
        init_container_pid: init.pid(),
    })
    .with_init_pidfd(init.pidfd.as_fd())
}

fn from(pid: i32, pidfd: Option<OwnedFd>, payload: &[u8]) -> Received {
    Received {
        payload: payload.to_vec(),
        fds: Vec::new(),
        pid,
        uid: 0,
        gid: 0,
        pidfd,
        sender_reaped: false,
    }
}

fn forwarded(outcome: &Outcome) -> Option<String> {
    outcome.forward.as_ref().map(Outgoing::text)
}

fn pidfs() -> bool {
    let own = pidfd_open(rustix::process::getpid(), PidfdFlags::empty()).expect("pidfd_open");
    crate::pidfd::process_id(own.as_fd()).is_some()
}

#[test]
fn init_check_passes_for_the_init_and_fails_for_another_process() {
    let init = Process::sleeper();
    let other = Process::sleeper();
    let mut relay = init_only(&init);
    assert!(relay.wants_sender_pidfds());
    let outcome = relay.on_datagram(from(init.pid(), Some(init.pidfd()), b"STATUS=init"));
    assert_eq!(forwarded(&outcome).as_deref(), Some("STATUS=init"));
    let outcome = relay.on_datagram(from(other.pid(), Some(other.pidfd()), b"STATUS=other"));
    assert_eq!(forwarded(&outcome), None);
    assert_eq!(
        outcome.dropped[0].reason,
        DropReason::SenderNotInit { pid: other.pid() }
    );
}

#[test]
fn a_reused_init_pid_is_not_the_init() {
    if !pidfs() {
        eprintln!("skipped: pidfds are not on pidfs (Linux < 6.9): the check compares pids");
        return;
    }
    let init = Process::sleeper();
    let stranger = Process::sleeper();
    let mut relay = init_only(&init);
    // What a datagram looks like when its sender exited and the init's pid went to it: the
    // credentials name the init's pid, the pidfd the process that really sent it.
    let outcome = relay.on_datagram(from(init.pid(), Some(stranger.pidfd()), b"READY=1"));
    assert_eq!(forwarded(&outcome), None, "the pidfd names another process");
    assert!(!outcome.ready);
    // Without a pidfd (an older kernel) only the pid can be compared, as before.
    let outcome = relay.on_datagram(from(init.pid(), None, b"READY=1"));
    assert_eq!(forwarded(&outcome).as_deref(), Some("READY=1"));
}

#[test]
fn the_init_is_still_the_init_after_it_exited() {
    // systemd compares pid and pidfd id (`pidref_equal`), so the init's last words, read
    // after it was reaped, still count as the init's; pidfs keeps the id of a reaped process.
    let mut init = Process::spawn("sleep", &["600"]);
    let mut relay = init_only(&init);
    init.child.kill().expect("kill");
    init.child.wait().expect("reap");
    let outcome = relay.on_datagram(from(init.pid(), Some(init.pidfd()), b"STATUS=bye"));
    assert_eq!(forwarded(&outcome).as_deref(), Some("STATUS=bye"));
    let info = crate::pidfd::info(init.pidfd.as_fd()).expect("fdinfo");
    assert_eq!(info.pid, None, "fdinfo says reaped");
}

#[test]
fn mainpid_of_the_sender_comes_from_its_pidfd_not_the_lookup() {
    let sender = Process::sleeper();
    let init = Process::sleeper();
    let mut relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid: init.pid(),
        init_container_pid: 1,
    })
    .with_pid_lookup(|_| panic!("a sender with a pidfd needs no /proc lookup"));
    // Same pid namespace as this test: the sender's own pid is its host pid.
    let payload = format!("MAINPID={}", sender.pid());
    let outcome = relay.on_datagram(from(sender.pid(), Some(sender.pidfd()), payload.as_bytes()));
    assert_eq!(forwarded(&outcome), Some(payload));
}

#[test]
fn mainpid_of_a_reaped_sender_is_dropped_whatever_its_pid_is_now() {
    let sender = Process::reaped();
    let init = Process::sleeper();
    let pid = sender.pid();
    // The lookup plays a process that got the sender's pid since: it would say "yes".
    let mut relay = Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid: init.pid(),
        init_container_pid: 1,
    })
    .with_pid_lookup(move |p| (p == pid).then_some(7));
    let outcome = relay.on_datagram(from(pid, Some(sender.pidfd()), b"MAINPID=7\nSTATUS=x"));
    assert_eq!(forwarded(&outcome).as_deref(), Some("STATUS=x"));
    assert_eq!(
        outcome.dropped[0].reason,
        DropReason::MainPidUnresolved,
        "the pidfd says the sender is gone (systemd refuses a dead MAINPID too)"
    );
    // Without its pidfd the same datagram is judged by the (reused) pid, as before.
    let outcome = relay.on_datagram(from(pid, None, b"MAINPID=7"));
    assert_eq!(forwarded(&outcome), Some(format!("MAINPID={pid}")));
}

/// A foreground relay whose manager takes `MAINPIDFD=1` (systemd 257+).
fn forwarding_main_pidfds(init: &Process, on: bool) -> Relay {
    Relay::new(Config {
        policy: Policy::default(),
        identity: Identity::AsRelay,
        init_host_pid: init.pid(),
        init_container_pid: 1,
    })
    .with_pid_lookup(|_| panic!("a sender with a pidfd needs no /proc lookup"))
    .with_forwarded_main_pidfds(on)
}

#[test]
fn a_sender_naming_itself_goes_with_its_own_pidfd_as_mainpidfd() {
    let sender = Process::sleeper();
    let init = Process::sleeper();
    let mut relay = forwarding_main_pidfds(&init, true);
    let payload = format!("MAINPID={}\nREADY=1", sender.pid());
    let outcome = relay.on_datagram(from(sender.pid(), Some(sender.pidfd()), payload.as_bytes()));
    let out = outcome.forward.expect("forwarded");
    assert_eq!(
        out.text(),
        format!("MAINPID={}\nMAINPIDFD=1\nREADY=1", sender.pid())
    );
    assert_eq!(out.fds.len(), 1, "the pidfd, alone");
    let info = crate::pidfd::info(out.fds[0].as_fd()).expect("a pidfd");
    assert_eq!(info.pid, Some(sender.pid()), "of the sender itself");
    // Later datagrams go as the new main pid.
    let outcome = relay.on_datagram(from(sender.pid(), None, b"STATUS=x"));
    assert_eq!(
        outcome.forward.expect("fwd").pid_credential,
        Some(sender.pid())
    );
}

#[test]
fn mainpidfd_only_for_a_manager_that_takes_it_and_never_beside_other_fds() {
    let sender = Process::sleeper();
    let init = Process::sleeper();
    let payload = format!("MAINPID={}", sender.pid());
    // An older manager (252 would warn about the stray fd): MAINPID= alone.
    let mut relay = forwarding_main_pidfds(&init, false);
    let out = relay
        .on_datagram(from(sender.pid(), Some(sender.pidfd()), payload.as_bytes()))
        .forward
        .expect("forwarded");
    assert_eq!((out.text(), out.fds.len()), (payload.clone(), 0));
    // A datagram with fds of its own (the fd store): the pidfd cannot be the only fd.
    let mut relay = forwarding_main_pidfds(&init, true);
    let (store, _keep) = rustix::pipe::pipe().expect("pipe");
    let mut datagram = from(
        sender.pid(),
        Some(sender.pidfd()),
        format!("FDSTORE=1\n{payload}").as_bytes(),
    );
    datagram.fds.push(store);
    let out = relay.on_datagram(datagram).forward.expect("forwarded");
    assert_eq!(out.text(), format!("FDSTORE=1\n{payload}"));
    assert_eq!(out.fds.len(), 1, "the store's fd only");
    assert!(
        crate::pidfd::info(out.fds[0].as_fd()).is_err(),
        "not a pidfd"
    );
    // The init naming itself (MAINPID=1) with its own pidfd gets it too.
    let mut relay = forwarding_main_pidfds(&init, true);
    let out = relay
        .on_datagram(from(init.pid(), Some(init.pidfd()), b"MAINPID=1\nREADY=1"))
        .forward
        .expect("forwarded");
    assert_eq!(
        out.text(),
        format!("MAINPID={}\nMAINPIDFD=1\nREADY=1", init.pid())
    );
    let info = crate::pidfd::info(out.fds[0].as_fd()).expect("a pidfd");
    assert_eq!(info.pid, Some(init.pid()));
}
