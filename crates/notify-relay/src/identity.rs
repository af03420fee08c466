//! Who systemd sees as the sender of forwarded datagrams (design-study §2.4).
//!
//! systemd attributes a notify datagram to a unit by the sender pid in `SCM_CREDENTIALS` and
//! authorises it by `NotifyAccess=` (systemd.service(5)): with `main`, only the unit's main
//! pid may notify. The identity mode decides which pid that is.

/// The identity mode of a relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Identity {
    /// The relay is the unit's main process (a foreground `run`): forward with the kernel's
    /// own credentials and never announce `MAINPID=`.
    AsRelay,
    /// Detached, privileged: announce `MAINPID=<init_host_pid>` in the same datagram as the
    /// container's first `READY=1` (sent with the relay's own credentials: it is still the main
    /// pid), and send every later datagram with `SCM_CREDENTIALS` whose pid is `init_host_pid` (the kernel allows a foreign pid with `CAP_SYS_ADMIN`; if it refuses,
    /// [`crate::Upstream`] falls back to the relay's own credentials and logs it once).
    AsMainPid {
        /// The container init's pid in the relay's pid namespace.
        init_host_pid: i32,
    },
    /// Detached, unprivileged: the relay process becomes the main pid; announce
    /// `MAINPID=<relay pid>` with the first `READY=1` and send with its own credentials.
    RelayIsMain,
}

impl Identity {
    /// The `MAINPID=` to announce with the first `READY=1`; `own_pid` is the relay's pid.
    pub fn announced_main_pid(&self, own_pid: i32) -> Option<i32> {
        match *self {
            Self::AsRelay => None,
            Self::AsMainPid { init_host_pid } => Some(init_host_pid),
            Self::RelayIsMain => Some(own_pid),
        }
    }

    /// The pid to put in `SCM_CREDENTIALS` of every forwarded datagram, if not the relay's own.
    pub fn pid_credential(&self) -> Option<i32> {
        match *self {
            Self::AsMainPid { init_host_pid } => Some(init_host_pid),
            Self::AsRelay | Self::RelayIsMain => None,
        }
    }

    /// Whether the relay decides the unit's main pid, so a container `MAINPID=` must be dropped:
    /// moving the main pid elsewhere would make systemd refuse everything the relay sends
    /// afterwards under `NotifyAccess=main`.
    pub fn owns_main_pid(&self) -> bool {
        !matches!(self, Self::AsRelay)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes() {
        assert_eq!(Identity::AsRelay.announced_main_pid(7), None);
        assert_eq!(Identity::AsRelay.pid_credential(), None);
        assert!(!Identity::AsRelay.owns_main_pid());
        let main = Identity::AsMainPid { init_host_pid: 42 };
        assert_eq!(main.announced_main_pid(7), Some(42));
        assert_eq!(main.pid_credential(), Some(42));
        assert!(main.owns_main_pid());
        assert_eq!(Identity::RelayIsMain.announced_main_pid(7), Some(7));
        assert_eq!(Identity::RelayIsMain.pid_credential(), None);
        assert!(Identity::RelayIsMain.owns_main_pid());
    }
}
