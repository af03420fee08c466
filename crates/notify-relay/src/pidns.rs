//! Host ↔ container pid translation through `/proc/<pid>/status` `NSpid:` (proc(5)): the
//! line lists the pid in every pid namespace the process is in, outermost (the namespace of
//! the `/proc` mount) first, innermost (the container's) last.

use crate::RelayError;

/// Parses the `NSpid:` line of a `/proc/<pid>/status` text: the pids, outermost first.
pub fn parse_nspid(status: &str) -> Option<Vec<i32>> {
    let line = status.lines().find_map(|l| l.strip_prefix("NSpid:"))?;
    let pids: Option<Vec<i32>> = line.split_whitespace().map(|p| p.parse().ok()).collect();
    pids.filter(|p| !p.is_empty())
}

/// The `NSpid:` chain of `pid` (a pid in the relay's namespace), outermost first.
///
/// # Errors
/// [`RelayError::Io`] if `/proc/<pid>/status` cannot be read (e.g. the process is gone),
/// [`RelayError::NoNsPid`] if it has no usable `NSpid:` line.
pub fn nspid(pid: i32) -> Result<Vec<i32>, RelayError> {
    let path = format!("/proc/{pid}/status");
    let status =
        std::fs::read_to_string(&path).map_err(|e| RelayError::io(format!("read {path}"), e))?;
    parse_nspid(&status).ok_or(RelayError::NoNsPid { pid })
}

/// The pid that process `host_pid` has in its innermost pid namespace (its own `getpid()`).
///
/// # Errors
/// As [`nspid`].
pub fn innermost_pid(host_pid: i32) -> Result<i32, RelayError> {
    nspid(host_pid)?
        .last()
        .copied()
        .ok_or(RelayError::NoNsPid { pid: host_pid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_namespaces() {
        let status = "Name:\tsh\nTgid:\t4242\nPid:\t4242\nNSpid:\t4242\t17\t1\nNSpgid:\t1\n";
        assert_eq!(parse_nspid(status), Some(vec![4242, 17, 1]));
        assert_eq!(parse_nspid("NSpid:\t99\n"), Some(vec![99]));
    }

    #[test]
    fn refuses_missing_or_garbled_lines() {
        assert_eq!(parse_nspid("Pid:\t1\n"), None);
        assert_eq!(parse_nspid("NSpid:\t\n"), None);
        assert_eq!(parse_nspid("NSpid:\t1\tx\n"), None);
    }

    #[test]
    fn own_pid_in_own_namespace() {
        let own = std::process::id() as i32;
        let chain = nspid(own).expect("own status readable");
        assert_eq!(
            chain.first(),
            Some(&own),
            "outermost is the /proc namespace's pid"
        );
        assert!(innermost_pid(own).expect("readable") > 0);
    }

    #[test]
    fn missing_process_is_an_error() {
        assert!(matches!(nspid(i32::MAX), Err(RelayError::Io { .. })));
    }
}
