//! Socket activation and the fd store handing fds to the container (sd_listen_fds(3)).
//!
//! When systemd starts pier with `LISTEN_FDS=n` and `LISTEN_PID=<pier's pid>`, fds 3..3+n are
//! pier's to pass on: they stay at 3.. in the container, whose process gets `LISTEN_FDS=n`,
//! `LISTEN_FDNAMES` unchanged and `LISTEN_PID=<its own pid>` (runc hard-codes 1, which is
//! wrong without a pid namespace). `--preserve-fds N` fds follow them. `FDSTORE` (the fd store
//! size systemd advertises, v254+) passes through too.

/// The fds systemd handed to pier.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Activation {
    /// `LISTEN_FDS`: how many fds from 3 on.
    pub listen_fds: u32,
    /// `LISTEN_FDNAMES`, unchanged.
    pub fd_names: Option<String>,
    /// `FDSTORE`, unchanged.
    pub fd_store: Option<String>,
}

impl Activation {
    /// Read pier's environment: `LISTEN_FDS` counts only when `LISTEN_PID` is pier's pid.
    pub fn from_env() -> Activation {
        let var = |k: &str| std::env::var(k).ok();
        Self::from_vars(
            var("LISTEN_PID"),
            var("LISTEN_FDS"),
            var("LISTEN_FDNAMES"),
            var("FDSTORE"),
            std::process::id(),
        )
    }

    /// Pure form of [`Activation::from_env`].
    pub fn from_vars(
        pid: Option<String>,
        fds: Option<String>,
        names: Option<String>,
        store: Option<String>,
        own_pid: u32,
    ) -> Activation {
        let for_us = pid.as_deref().and_then(|p| p.parse::<u32>().ok()) == Some(own_pid);
        let listen_fds = if for_us {
            fds.and_then(|n| n.parse().ok()).unwrap_or(0)
        } else {
            0
        };
        Activation {
            listen_fds,
            fd_names: names.filter(|_| listen_fds > 0),
            fd_store: store,
        }
    }

    /// Variables for the container, except `LISTEN_PID`, which the init adds with its own pid.
    pub fn env(&self) -> Vec<String> {
        let mut env = Vec::new();
        if self.listen_fds > 0 {
            env.push(format!("LISTEN_FDS={}", self.listen_fds));
            if let Some(names) = &self.fd_names {
                env.push(format!("LISTEN_FDNAMES={names}"));
            }
        }
        if let Some(store) = &self.fd_store {
            env.push(format!("FDSTORE={store}"));
        }
        env
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> Option<String> {
        Some(v.to_string())
    }

    #[test]
    fn listen_fds_count_only_for_our_pid() {
        let a = Activation::from_vars(s("42"), s("2"), s("web:admin"), None, 42);
        assert_eq!(a.listen_fds, 2);
        assert_eq!(a.env(), ["LISTEN_FDS=2", "LISTEN_FDNAMES=web:admin"]);
        let other = Activation::from_vars(s("41"), s("2"), s("web"), None, 42);
        assert_eq!(other.listen_fds, 0);
        assert!(other.env().is_empty());
        assert_eq!(
            Activation::from_vars(None, s("2"), None, None, 42).listen_fds,
            0
        );
    }

    #[test]
    fn fd_store_size_passes_through() {
        let a = Activation::from_vars(None, None, None, s("4"), 1);
        assert_eq!(a.env(), ["FDSTORE=4"]);
    }
}
