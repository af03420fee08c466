//! The relay's pure core: one received datagram in, at most one datagram to forward out.

mod blocking;

pub use blocking::{pump, run, Pumped, Summary, FINAL_BARRIER_TIMEOUT, PUMP_BUDGET};

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use crate::message::{Assignment, Message, NOTIFY_BUFFER_MAX};
use crate::policy::{Decision, SenderAccess};
use crate::{DropReason, Dropped, Identity, Outgoing, Policy, Received};

/// What a relay needs to know about the container and the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Forwarding rules.
    pub policy: Policy,
    /// Who systemd sees as the sender.
    pub identity: Identity,
    /// The container init's pid in the relay's pid namespace.
    pub init_host_pid: i32,
    /// The container init's pid in its own namespace: 1 with a pid namespace, else
    /// `init_host_pid`.
    pub init_container_pid: i32,
}

/// The decision about one received datagram.
#[derive(Debug, Default)]
pub struct Outcome {
    /// A `MAINPID=` announcement to send *before* `forward`. Only set in the rare case where
    /// prepending it to the first `READY=1` datagram would exceed 4096 bytes; normally the
    /// announcement is the first line of `forward` itself.
    pub announce: Option<Outgoing>,
    /// The datagram to send upstream, if anything is left after filtering.
    pub forward: Option<Outgoing>,
    /// Everything that was not forwarded, each already logged at debug level.
    pub dropped: Vec<Dropped>,
    /// This datagram's `READY=1` is being forwarded: a caller waiting for readiness may stop.
    pub ready: bool,
}

impl Outcome {
    /// The datagrams to send, in order (`announce`, then `forward`).
    pub fn into_datagrams(self) -> impl Iterator<Item = Outgoing> {
        self.announce.into_iter().chain(self.forward)
    }

    fn drop(&mut self, dropped: Dropped, sender: i32) {
        tracing::debug!(sender, %dropped, "notify: dropped");
        self.dropped.push(dropped);
    }
}

/// Looks up a process's pid in its innermost pid namespace from its host pid (used for
/// senders that came without a pidfd).
pub type PidLookup = Box<dyn Fn(i32) -> Option<i32> + Send>;

/// The relay state machine. It does no I/O of its own except when a sender must be checked:
/// `fstat` of the sender's pidfd for [`SenderAccess::Init`], and its fdinfo (or, without a
/// pidfd, its [`PidLookup`], by default [`crate::pidns::innermost_pid`] on `/proc`) when a
/// `MAINPID=` must be checked against the sender.
pub struct Relay {
    config: Config,
    own_pid: i32,
    main_pid_announced: bool,
    /// A container `MAINPID=` forwarded in the [`Identity::AsRelay`] mode made this (host)
    /// pid the unit's main pid: later datagrams must carry its credentials to pass
    /// `NotifyAccess=main`.
    forwarded_main_pid: Option<i32>,
    /// A pidfd of the init: announce it as `MAINPIDFD=1` next to `MAINPID=`.
    main_pidfd: Option<OwnedFd>,
    /// The init's pidfs identity ([`crate::pidfd::process_id`]), see [`Relay::with_init_pidfd`].
    init_process_id: Option<u64>,
    /// The manager takes `MAINPIDFD=1` ([`Relay::with_forwarded_main_pidfds`]).
    forward_main_pidfds: bool,
    pid_lookup: PidLookup,
}

/// Who sent a datagram: its `SCM_CREDENTIALS` pid and, when the kernel gave one, its pidfd.
#[derive(Clone, Copy)]
struct Sender<'a> {
    pid: i32,
    pidfd: Option<BorrowedFd<'a>>,
    /// Asked for a pidfd, got none: reaped before the datagram was read.
    reaped: bool,
}

impl std::fmt::Debug for Relay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Relay")
            .field("config", &self.config)
            .field("own_pid", &self.own_pid)
            .field("main_pid_announced", &self.main_pid_announced)
            .finish_non_exhaustive()
    }
}

impl Relay {
    /// A relay for one container.
    pub fn new(config: Config) -> Self {
        Self {
            config,
            own_pid: rustix::process::getpid().as_raw_nonzero().get(),
            main_pid_announced: false,
            forwarded_main_pid: None,
            main_pidfd: None,
            init_process_id: None,
            forward_main_pidfds: false,
            pid_lookup: Box::new(|pid| crate::pidns::innermost_pid(pid).ok()),
        }
    }

    /// With [`Identity::AsMainPid`]: announce the init also by this pidfd of it, as
    /// `MAINPIDFD=1` with a duplicate of the fd attached, next to `MAINPID=` (sd_notify(3),
    /// systemd 257+). systemd then tracks the process itself, not a pid that could be reused;
    /// older systemd ignores the key but logs a warning about the stray fd, so set this only
    /// when the manager supports it. The `MAINPID=` line stays for both. With
    /// [`Identity::AsRelay`] and [`Relay::with_forwarded_main_pidfds`] it goes with a container
    /// `MAINPID=` naming the init that another process sent.
    pub fn with_main_pidfd(mut self, init_pidfd: OwnedFd) -> Self {
        self.main_pidfd = Some(init_pidfd);
        self
    }

    /// The pidfd given to [`Relay::with_main_pidfd`], if any: a process that forks the relay
    /// and closes the fds it does not keep must keep this one, or a later `MAINPIDFD=1` would
    /// send whatever reused its number.
    pub fn main_pidfd(&self) -> Option<BorrowedFd<'_>> {
        self.main_pidfd.as_ref().map(AsFd::as_fd)
    }

    /// Knows the init by this pidfd of it, so that [`SenderAccess::Init`] compares processes,
    /// not pids: a datagram whose sender pidfd ([`Received::pidfd`]) names another process is
    /// not the init's even if its `SCM_CREDENTIALS` pid is the init's (a reused pid), and one
    /// the init sent just before it exited still is (systemd compares pid and pidfd id the
    /// same way, `pidref_equal`). Only the identity (the pidfs inode, Linux 6.9) is kept, not
    /// the fd. Without it, or without pidfs, or for a datagram without a pidfd, the init
    /// check compares `SCM_CREDENTIALS` pids only.
    pub fn with_init_pidfd(mut self, init_pidfd: BorrowedFd<'_>) -> Self {
        self.init_process_id = crate::pidfd::process_id(init_pidfd);
        self
    }

    /// The manager takes `MAINPIDFD=1` (systemd 257+): a container `MAINPID=` that is
    /// forwarded ([`Identity::AsRelay`]) because it names its sender goes with `MAINPIDFD=1`
    /// and the sender's pidfd ([`Received::pidfd`]) as the datagram's only fd, so the manager
    /// tracks that very process, not a pid. A datagram without the sender's pidfd, or with
    /// fds of its own (the manager wants the pidfd alone), gets `MAINPID=` only. One naming the
    /// init gets the init's pidfd when the sender is the init (its own pidfd), or the one of
    /// [`Relay::with_main_pidfd`] when set.
    pub fn with_forwarded_main_pidfds(mut self, on: bool) -> Self {
        self.forward_main_pidfds = on;
        self
    }

    /// Replaces how a sender's in-container pid is found (tests, or embedders with their
    /// own process table).
    pub fn with_pid_lookup(mut self, lookup: impl Fn(i32) -> Option<i32> + Send + 'static) -> Self {
        self.pid_lookup = Box::new(lookup);
        self
    }

    /// Whether every datagram's sender is checked ([`SenderAccess::Init`]), so the listener
    /// should pass sender pidfds ([`crate::Listener::set_sender_pidfds`]). A `MAINPID=`
    /// naming the sender uses the pidfd when the datagram has one, else the [`PidLookup`];
    /// for that rare key alone a pidfd on every datagram would cost too much (docs/notify.md):
    /// [`Relay::wants_main_pid_pidfds`] asks for one with those datagrams only.
    pub fn wants_sender_pidfds(&self) -> bool {
        self.config.policy.sender == SenderAccess::Init
    }

    /// Whether a container `MAINPID=` naming its sender can be forwarded ([`Identity::AsRelay`]
    /// without [`SenderAccess::Init`]), so the listener should pass a pidfd with the datagrams
    /// that carry one ([`crate::Listener::set_main_pid_pidfds`]): the sender is then checked by
    /// its pidfd, not by a `/proc/<pid>` lookup a reused pid could fool. In the other
    /// identities such a `MAINPID=` is always dropped; with `Init` every datagram has a pidfd.
    pub fn wants_main_pid_pidfds(&self) -> bool {
        !self.wants_sender_pidfds() && !self.config.identity.owns_main_pid()
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Whether the identity's `MAINPID=` has been announced (with the first `READY=1`).
    pub fn main_pid_announced(&self) -> bool {
        self.main_pid_announced
    }

    /// Decides about one datagram: checks the sender, parses, applies the policy line by line,
    /// keeps the order, keeps or closes the fds, and adds the identity's `MAINPID=` to the
    /// first forwarded `READY=1`. The fds of anything not forwarded are closed on return.
    pub fn on_datagram(&mut self, datagram: Received) -> Outcome {
        let Received {
            payload,
            fds,
            pid,
            pidfd,
            sender_reaped,
            ..
        } = datagram;
        let sender = Sender {
            pid,
            pidfd: pidfd.as_ref().map(AsFd::as_fd),
            reaped: sender_reaped,
        };
        let mut outcome = Outcome::default();
        if self.config.policy.sender == SenderAccess::Init && !self.is_init(sender) {
            outcome.drop(Dropped::datagram(DropReason::SenderNotInit { pid }), pid);
            return outcome;
        }
        let message = match Message::parse(&payload) {
            Ok(message) => message,
            Err(reason) => {
                outcome.drop(Dropped::datagram(reason), pid);
                return outcome;
            }
        };
        if message.assignments.iter().any(|a| a.is("BARRIER", "1")) {
            return self.on_barrier(message, fds, pid);
        }
        let (mut kept, main_pidfd) = self.filter(message, sender, &mut outcome);
        let mut fds = self.keep_fds(&kept, fds, pid, &mut outcome);
        if let Some(pidfd) = main_pidfd {
            attach_main_pidfd(&mut kept, &mut fds, pidfd);
        }
        outcome.ready = kept.is_ready();
        if kept.assignments.is_empty() {
            return outcome;
        }
        self.forward(kept, fds, &mut outcome);
        outcome
    }

    /// Whether the sender is the container's init: same pid and, when both pidfd identities
    /// are known, the same process (see [`Relay::with_init_pidfd`]).
    fn is_init(&self, sender: Sender<'_>) -> bool {
        if sender.pid != self.config.init_host_pid {
            return false;
        }
        match (self.init_process_id, sender.pidfd) {
            (Some(init), Some(pidfd)) => match crate::pidfd::same_kernel_process_id(pidfd) {
                Some(id) => id == init,
                None => true, // cannot tell: judged by pid, as without pidfds
            },
            _ => true,
        }
    }

    /// Applies the policy to each line, translating `MAINPID=`; with
    /// [`Relay::with_forwarded_main_pidfds`], also a pidfd of the process the last forwarded
    /// `MAINPID=` names, for `MAINPIDFD=1`.
    fn filter(
        &self,
        message: Message,
        sender: Sender<'_>,
        outcome: &mut Outcome,
    ) -> (Message, Option<OwnedFd>) {
        let pid = sender.pid;
        let mut kept = Message::default();
        let mut main_pidfd = None;
        for assignment in message.assignments {
            let decision = match self.config.policy.decide(&assignment) {
                Decision::TranslateMainPid(pid) => match self.translate_main_pid(pid, sender) {
                    Ok(host_pid) => {
                        kept.assignments
                            .push(Assignment::new("MAINPID", host_pid.to_string()));
                        main_pidfd = self.main_pidfd_of(host_pid, sender);
                        continue;
                    }
                    Err(reason) => Decision::Drop(reason),
                },
                decision => decision,
            };
            match decision {
                Decision::Drop(reason) => {
                    outcome.drop(Dropped::key(assignment.key_lossy(), reason), pid)
                }
                _ => kept.assignments.push(assignment),
            }
        }
        (kept, main_pidfd)
    }

    /// A pidfd of `host_pid`, the process a translated `MAINPID=` names, for `MAINPIDFD=1`:
    /// the sender's own (when it is that process), else the init's of
    /// [`Relay::with_main_pidfd`]. `None` unless the manager takes them.
    fn main_pidfd_of(&self, host_pid: i32, sender: Sender<'_>) -> Option<OwnedFd> {
        if !self.forward_main_pidfds {
            return None;
        }
        let pidfd = match sender.pidfd {
            Some(pidfd) if sender.pid == host_pid => pidfd,
            _ if host_pid == self.config.init_host_pid => self.main_pidfd.as_ref()?.as_fd(),
            _ => return None,
        };
        pidfd.try_clone_to_owned().ok()
    }

    /// `MAINPID=pid` (container namespace) → host pid, if it names the init or the sender.
    fn translate_main_pid(&self, pid: i32, sender: Sender<'_>) -> Result<i32, DropReason> {
        if self.config.identity.owns_main_pid() {
            return Err(DropReason::MainPidOwnedByRelay);
        }
        if pid == self.config.init_container_pid {
            return Ok(self.config.init_host_pid);
        }
        match self.sender_pids(sender) {
            Some((host, own)) if own == pid => Ok(host),
            Some(_) => Err(DropReason::MainPidForeign { pid }),
            None => Err(DropReason::MainPidUnresolved),
        }
    }

    /// The sender's (host pid, in-container pid). From its pidfd's fdinfo when it came with
    /// one: race-free, and `None` once the sender has been reaped (systemd refuses a dead
    /// `MAINPID=` too); `None` as well when the kernel could give no pidfd because the sender
    /// was reaped ([`Received::sender_reaped`]). Otherwise (no pidfd asked for, or a kernel
    /// without `SO_PASSPIDFD`) the [`PidLookup`] of its `SCM_CREDENTIALS` pid.
    fn sender_pids(&self, sender: Sender<'_>) -> Option<(i32, i32)> {
        match sender.pidfd {
            Some(pidfd) => {
                let info = crate::pidfd::info(pidfd).ok()?;
                Some((info.pid?, info.innermost_pid()?))
            }
            None if sender.reaped => None,
            None => (self.pid_lookup)(sender.pid).map(|own| (sender.pid, own)),
        }
    }

    /// fds travel only with a forwarded `FDSTORE=1`; any others are closed here.
    fn keep_fds(
        &self,
        kept: &Message,
        fds: Vec<OwnedFd>,
        sender: i32,
        outcome: &mut Outcome,
    ) -> Vec<OwnedFd> {
        if fds.is_empty() || kept.assignments.iter().any(|a| a.is("FDSTORE", "1")) {
            return fds;
        }
        let reason = DropReason::StrayFds { fds: fds.len() };
        outcome.drop(Dropped::datagram(reason), sender);
        Vec::new()
    }

    /// `BARRIER=1` must be alone with exactly one fd; then it goes up with that very fd.
    fn on_barrier(&self, message: Message, fds: Vec<OwnedFd>, sender: i32) -> Outcome {
        let mut outcome = Outcome::default();
        let reason = match (&message.assignments[..], fds.len()) {
            ([_], 1) => None,
            ([_], count) => Some(DropReason::BarrierFdCount { fds: count }),
            _ => Some(DropReason::BarrierNotAlone),
        };
        match reason {
            Some(reason) => outcome.drop(Dropped::key("BARRIER", reason), sender),
            None => {
                outcome.forward = Some(Outgoing {
                    payload: message.encode(),
                    fds,
                    pid_credential: self.pid_credential(),
                })
            }
        }
        outcome
    }

    /// The credential pid for the next datagram. Until systemd has been told the new main
    /// pid, the relay's own process is the one `NotifyAccess=main` accepts, so everything up
    /// to and including the `MAINPID=` announcement goes with the relay's own credentials;
    /// after it, with the identity's (the init's).
    fn pid_credential(&self) -> Option<i32> {
        if let Some(pid) = self.forwarded_main_pid {
            return Some(pid);
        }
        if self.main_pid_announced {
            self.config.identity.pid_credential()
        } else {
            None
        }
    }

    /// Builds the outgoing datagram, with the identity's `MAINPID=` (and `MAINPIDFD=1` with
    /// its pidfd, see [`Relay::with_main_pidfd`]) on the first `READY=1`. The announcement
    /// goes in a datagram of its own, just before, when it would not fit in 4096 bytes or when
    /// the pidfd would join other fds (systemd wants it as the only fd).
    fn forward(&mut self, mut kept: Message, fds: Vec<OwnedFd>, outcome: &mut Outcome) {
        let own_until_announced = self.pid_credential();
        let announce = match self.config.identity.announced_main_pid(self.own_pid) {
            Some(pid) if outcome.ready && !self.main_pid_announced => Some(pid),
            _ => None,
        };
        let mut pid_credential = own_until_announced;
        if let Some(main_pid) = announce {
            self.main_pid_announced = true;
            let mut lines = vec![Assignment::new("MAINPID", main_pid.to_string())];
            let pidfd = self.announced_pidfd(main_pid);
            if pidfd.is_some() {
                lines.push(Assignment::new("MAINPIDFD", "1"));
            }
            let extra: usize = lines.iter().map(|l| l.as_bytes().len() + 1).sum();
            let fits = kept.encode().len() + extra <= NOTIFY_BUFFER_MAX;
            if fits && (pidfd.is_none() || fds.is_empty()) {
                kept.assignments.splice(0..0, lines);
                return self.push_forward(
                    kept,
                    fds.into_iter().chain(pidfd).collect(),
                    pid_credential,
                    outcome,
                );
            }
            let announcement = Message { assignments: lines };
            outcome.announce = Some(Outgoing {
                payload: announcement.encode(),
                fds: pidfd.into_iter().collect(),
                pid_credential: own_until_announced,
            });
            pid_credential = self.pid_credential();
        }
        self.push_forward(kept, fds, pid_credential, outcome);
    }

    /// A duplicate of the init's pidfd for `MAINPIDFD=1`, when announcing the init.
    fn announced_pidfd(&self, main_pid: i32) -> Option<OwnedFd> {
        let is_init = matches!(self.config.identity, Identity::AsMainPid { init_host_pid } if init_host_pid == main_pid);
        let pidfd = self.main_pidfd.as_ref().filter(|_| is_init)?;
        match pidfd.try_clone() {
            Ok(dup) => Some(dup),
            Err(error) => {
                tracing::warn!(%error, "notify: cannot dup the init pidfd; announcing MAINPID= only");
                None
            }
        }
    }

    /// Sets `outcome.forward`, and remembers a `MAINPID=` it carries.
    fn push_forward(
        &mut self,
        kept: Message,
        fds: Vec<OwnedFd>,
        pid_credential: Option<i32>,
        outcome: &mut Outcome,
    ) {
        let new_main_pid = kept
            .assignments
            .iter()
            .rev()
            .find(|a| a.key() == b"MAINPID")
            .and_then(|a| std::str::from_utf8(a.value()?).ok()?.parse().ok());
        outcome.forward = Some(Outgoing {
            payload: kept.encode(),
            fds,
            pid_credential,
        });
        // This datagram goes as the current main pid; the ones after it as the new one.
        if new_main_pid.is_some() {
            self.forwarded_main_pid = new_main_pid;
        }
    }
}

/// `MAINPIDFD=1` right after the `MAINPID=` line, with `pidfd` as the datagram's only fd
/// (sd_notify(3)); a datagram that keeps fds of its own gets `MAINPID=` only.
fn attach_main_pidfd(kept: &mut Message, fds: &mut Vec<OwnedFd>, pidfd: OwnedFd) {
    if !fds.is_empty() {
        return;
    }
    let Some(at) = kept.assignments.iter().rposition(|a| a.key() == b"MAINPID") else {
        return;
    };
    let line = Assignment::new("MAINPIDFD", "1");
    if kept.encode().len() + line.as_bytes().len() + 1 > NOTIFY_BUFFER_MAX {
        return;
    }
    kept.assignments.insert(at + 1, line);
    fds.push(pidfd);
}

#[cfg(test)]
mod sender_tests;
#[cfg(test)]
mod tests;
