//! Which assignments reach the host, key by key (the table in sd_notify(3), "Well-known
//! assignments", and `service_notify_message` in systemd's `src/core/service.c`).

use crate::message::Assignment;
use crate::DropReason;

/// Who inside the container may notify, like systemd's `NotifyAccess=` (systemd.service(5)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SenderAccess {
    /// Any process of the container (`NotifyAccess=all`).
    #[default]
    All,
    /// Only the container's init process (`NotifyAccess=main`): compared by host pid and,
    /// when the datagram came with a pidfd of its sender, by process identity
    /// ([`crate::Relay::with_init_pidfd`]).
    Init,
}

/// The relay's forwarding policy. [`Policy::default`] forwards everything systemd acts on
/// that cannot hurt the host:
///
/// | assignment | decision |
/// |---|---|
/// | `READY=1`, `RELOADING=1`, `STOPPING=1`, `RESTART_RESET=1` | forward (other values dropped) |
/// | `STATUS`, `ERRNO`, `BUSERROR`, `VARLINKERROR`, `EXIT_STATUS` | forward |
/// | `MONOTONIC_USEC`, `WATCHDOG_USEC`, `EXTEND_TIMEOUT_USEC` | forward |
/// | `WATCHDOG=1`, `WATCHDOG=trigger` | forward (other values dropped) |
/// | `BARRIER=1` | forward with its one fd, if alone in its datagram |
/// | `FDSTORE=1`, `FDSTOREREMOVE=1`, `FDNAME`, `FDPOLL` | forward with the fds, if `fd_store` |
/// | `X_*` | forward, if `extensions` |
/// | `MAINPID` | translate to a host pid when it names the sender or the init, else drop |
/// | `MAINPIDFD`, `MAINPIDFDID` | drop: the pidfd is not verified to be the sender or init |
/// | `NOTIFYACCESS` | drop: the container must not widen who may notify the unit |
/// | anything else | drop (systemd ignores unknown keys) |
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Which container processes may notify at all.
    pub sender: SenderAccess,
    /// Forward the fd store keys and their fds (systemd needs `FileDescriptorStoreMax=`).
    pub fd_store: bool,
    /// Forward `X_*` extension keys.
    pub extensions: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            sender: SenderAccess::All,
            fd_store: true,
            extensions: true,
        }
    }
}

/// What to do with one assignment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Forward the line unchanged.
    Forward,
    /// Rewrite `MAINPID=` to a host pid: the value, as a pid in the container's namespace.
    /// The relay forwards it only if it is the sender's or the init's pid.
    TranslateMainPid(i32),
    /// Do not forward.
    Drop(DropReason),
}

impl Policy {
    /// Decides about one assignment, on its own (datagram-level rules such as "BARRIER=1
    /// must be alone" are the relay's).
    pub fn decide(&self, assignment: &Assignment) -> Decision {
        let Some(value) = assignment.value() else {
            return Decision::Drop(DropReason::NotAnAssignment);
        };
        let flag = |expected: &[u8]| match value == expected {
            true => Decision::Forward,
            false => Decision::Drop(DropReason::UnsupportedValue),
        };
        let fd_store = |decision: Decision| match self.fd_store {
            true => decision,
            false => Decision::Drop(DropReason::FdStoreDisabled),
        };
        match assignment.key() {
            b"READY" | b"RELOADING" | b"STOPPING" | b"RESTART_RESET" | b"BARRIER" => flag(b"1"),
            b"STATUS" | b"ERRNO" | b"BUSERROR" | b"VARLINKERROR" | b"EXIT_STATUS" => {
                Decision::Forward
            }
            b"MONOTONIC_USEC" | b"WATCHDOG_USEC" | b"EXTEND_TIMEOUT_USEC" => Decision::Forward,
            b"WATCHDOG" if value == b"trigger" => Decision::Forward,
            b"WATCHDOG" => flag(b"1"),
            b"FDSTORE" | b"FDSTOREREMOVE" => fd_store(flag(b"1")),
            b"FDNAME" | b"FDPOLL" => fd_store(Decision::Forward),
            b"MAINPID" => match parse_pid(value) {
                Some(pid) => Decision::TranslateMainPid(pid),
                None => Decision::Drop(DropReason::MainPidInvalid),
            },
            b"MAINPIDFD" | b"MAINPIDFDID" => Decision::Drop(DropReason::MainPidFd),
            b"NOTIFYACCESS" => Decision::Drop(DropReason::NotifyAccess),
            key if key.starts_with(b"X_") => match self.extensions {
                true => Decision::Forward,
                false => Decision::Drop(DropReason::ExtensionsDisabled),
            },
            _ => Decision::Drop(DropReason::UnknownKey),
        }
    }
}

/// A positive decimal pid, as systemd's `parse_pid` accepts.
fn parse_pid(value: &[u8]) -> Option<i32> {
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let pid: i32 = std::str::from_utf8(value).ok()?.parse().ok()?;
    (pid > 0).then_some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;
    use Decision::{Drop, Forward, TranslateMainPid};

    fn decide(policy: &Policy, line: &str) -> Decision {
        let (key, value) = line.split_once('=').expect("KEY=VALUE");
        policy.decide(&Assignment::new(key, value))
    }

    /// Every assignment of sd-notify.md §1.4 (systemd's sd_notify(3) table), default policy.
    #[test]
    fn default_policy_covers_every_documented_assignment() {
        let table = [
            ("READY=1", Forward),
            ("RELOADING=1", Forward),
            ("STOPPING=1", Forward),
            ("STATUS=Serving 3 clients", Forward),
            ("NOTIFYACCESS=all", Drop(DropReason::NotifyAccess)),
            ("ERRNO=2", Forward),
            ("BUSERROR=org.freedesktop.DBus.Error.TimedOut", Forward),
            ("VARLINKERROR=io.systemd.Foo", Forward),
            ("EXIT_STATUS=3", Forward),
            ("MAINPID=42", TranslateMainPid(42)),
            ("MAINPIDFDID=123456", Drop(DropReason::MainPidFd)),
            ("MAINPIDFD=1", Drop(DropReason::MainPidFd)),
            ("MONOTONIC_USEC=123456789", Forward),
            ("WATCHDOG=1", Forward),
            ("WATCHDOG=trigger", Forward),
            ("WATCHDOG_USEC=20000000", Forward),
            ("EXTEND_TIMEOUT_USEC=5000000", Forward),
            ("RESTART_RESET=1", Forward),
            ("FDSTORE=1", Forward),
            ("FDSTOREREMOVE=1", Forward),
            ("FDNAME=listener", Forward),
            ("FDPOLL=0", Forward),
            ("BARRIER=1", Forward),
            ("X_SYSTEMD_UNIT_ACTIVE=foo.service", Forward),
            ("X_MY_APP=1", Forward),
        ];
        let policy = Policy::default();
        for (line, expected) in table {
            assert_eq!(decide(&policy, line), expected, "{line}");
        }
    }

    #[test]
    fn flag_keys_need_their_one_value() {
        let policy = Policy::default();
        for line in [
            "READY=0",
            "READY=",
            "RELOADING=yes",
            "STOPPING=2",
            "RESTART_RESET=true",
            "BARRIER=0",
            "FDSTORE=0",
            "FDSTOREREMOVE=yes",
            "WATCHDOG=2",
            "WATCHDOG=Trigger",
        ] {
            assert_eq!(
                decide(&policy, line),
                Drop(DropReason::UnsupportedValue),
                "{line}"
            );
        }
    }

    #[test]
    fn mainpid_values() {
        let policy = Policy::default();
        assert_eq!(decide(&policy, "MAINPID=1"), TranslateMainPid(1));
        for line in [
            "MAINPID=0",
            "MAINPID=-5",
            "MAINPID=abc",
            "MAINPID=",
            "MAINPID=+3",
            "MAINPID=99999999999",
        ] {
            assert_eq!(
                decide(&policy, line),
                Drop(DropReason::MainPidInvalid),
                "{line}"
            );
        }
    }

    #[test]
    fn unknown_and_malformed_lines() {
        let policy = Policy::default();
        assert_eq!(decide(&policy, "FOO=bar"), Drop(DropReason::UnknownKey));
        assert_eq!(
            decide(&policy, "ready=1"),
            Drop(DropReason::UnknownKey),
            "keys are case-sensitive"
        );
        assert_eq!(decide(&policy, "=1"), Drop(DropReason::UnknownKey));
        let bare = Message::parse(b"READY")
            .expect("parses")
            .assignments
            .remove(0);
        assert_eq!(policy.decide(&bare), Drop(DropReason::NotAnAssignment));
    }

    #[test]
    fn fd_store_and_extensions_can_be_switched_off() {
        let policy = Policy {
            fd_store: false,
            extensions: false,
            ..Policy::default()
        };
        for line in ["FDSTORE=1", "FDSTOREREMOVE=1", "FDNAME=x", "FDPOLL=0"] {
            assert_eq!(
                decide(&policy, line),
                Drop(DropReason::FdStoreDisabled),
                "{line}"
            );
        }
        assert_eq!(
            decide(&policy, "X_FOO=1"),
            Drop(DropReason::ExtensionsDisabled)
        );
        assert_eq!(decide(&policy, "READY=1"), Forward);
    }

    use crate::Message;
}
