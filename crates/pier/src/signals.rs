//! Signal names and numbers (`signal(7)`), as `kill` accepts them: `9`, `KILL`, `SIGKILL`,
//! `sigkill`, and the real-time forms `RTMIN+3`.

use anyhow::{bail, Result};

const NAMES: [(&str, i32); 31] = [
    ("HUP", libc::SIGHUP),
    ("INT", libc::SIGINT),
    ("QUIT", libc::SIGQUIT),
    ("ILL", libc::SIGILL),
    ("TRAP", libc::SIGTRAP),
    ("ABRT", libc::SIGABRT),
    ("IOT", libc::SIGIOT),
    ("BUS", libc::SIGBUS),
    ("FPE", libc::SIGFPE),
    ("KILL", libc::SIGKILL),
    ("USR1", libc::SIGUSR1),
    ("SEGV", libc::SIGSEGV),
    ("USR2", libc::SIGUSR2),
    ("PIPE", libc::SIGPIPE),
    ("ALRM", libc::SIGALRM),
    ("TERM", libc::SIGTERM),
    ("STKFLT", libc::SIGSTKFLT),
    ("CHLD", libc::SIGCHLD),
    ("CONT", libc::SIGCONT),
    ("STOP", libc::SIGSTOP),
    ("TSTP", libc::SIGTSTP),
    ("TTIN", libc::SIGTTIN),
    ("TTOU", libc::SIGTTOU),
    ("URG", libc::SIGURG),
    ("XCPU", libc::SIGXCPU),
    ("XFSZ", libc::SIGXFSZ),
    ("VTALRM", libc::SIGVTALRM),
    ("PROF", libc::SIGPROF),
    ("WINCH", libc::SIGWINCH),
    ("IO", libc::SIGIO),
    ("SYS", libc::SIGSYS),
];

/// Parse a signal given as a number or a name (case-insensitive, with or without `SIG`).
///
/// # Errors
/// An unknown name, or a number outside 1..=SIGRTMAX.
pub fn parse(text: &str) -> Result<i32> {
    let max = libc::SIGRTMAX();
    if let Ok(n) = text.parse::<i32>() {
        if (1..=max).contains(&n) {
            return Ok(n);
        }
        bail!("invalid signal number {n}");
    }
    let upper = text.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    if let Some((_, n)) = NAMES.iter().find(|(s, _)| *s == name) {
        return Ok(*n);
    }
    let rt = |base: i32, rest: &str, sign: i32| -> Option<i32> {
        let off: i32 = if rest.is_empty() {
            0
        } else {
            rest.parse().ok()?
        };
        let n = base + sign * off;
        (libc::SIGRTMIN()..=max).contains(&n).then_some(n)
    };
    let parsed = if let Some(rest) = name.strip_prefix("RTMIN") {
        rest.strip_prefix('+').map_or_else(
            || {
                if rest.is_empty() {
                    rt(libc::SIGRTMIN(), "", 1)
                } else {
                    None
                }
            },
            |r| rt(libc::SIGRTMIN(), r, 1),
        )
    } else if let Some(rest) = name.strip_prefix("RTMAX") {
        rest.strip_prefix('-').map_or_else(
            || {
                if rest.is_empty() {
                    rt(max, "", 1)
                } else {
                    None
                }
            },
            |r| rt(max, r, -1),
        )
    } else {
        None
    };
    match parsed {
        Some(n) => Ok(n),
        None => bail!("unknown signal {text:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn forms() {
        assert_eq!(parse("9").unwrap(), libc::SIGKILL);
        assert_eq!(parse("KILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse("SIGKILL").unwrap(), libc::SIGKILL);
        assert_eq!(parse("sigterm").unwrap(), libc::SIGTERM);
        assert_eq!(parse("hup").unwrap(), libc::SIGHUP);
        assert_eq!(parse("RTMIN+2").unwrap(), libc::SIGRTMIN() + 2);
        assert_eq!(parse("SIGRTMAX-1").unwrap(), libc::SIGRTMAX() - 1);
        for bad in ["0", "-1", "999", "FOO", "SIG", "RTMIN+99"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
