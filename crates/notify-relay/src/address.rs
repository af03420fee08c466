//! `NOTIFY_SOCKET` addresses, in the forms libsystemd accepts (sd_notify(3), "Notes";
//! `pid_notify_with_fds_internal` in systemd's `sd-daemon.c`).

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::PathBuf;

use crate::RelayError;

/// Longest abstract socket name: `sun_path` (108 bytes) minus the leading NUL, unix(7).
pub const ABSTRACT_NAME_MAX: usize = 107;

/// The name of the environment variable sd_notify(3) reads.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Which vsock socket type a `vsock…:` address asks for (vsock(7); systemd ≥ v254).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum VsockKind {
    /// Plain `vsock:` — try `SOCK_DGRAM` first and fall back to `SOCK_SEQPACKET`, then
    /// `SOCK_STREAM`, when the transport has no datagrams (QEMU's virtio-vsock), as libsystemd.
    Any,
    /// `vsock-stream:` — `SOCK_STREAM`, one connection per message.
    Stream,
    /// `vsock-dgram:` — `SOCK_DGRAM`.
    Dgram,
    /// `vsock-seqpacket:` — `SOCK_SEQPACKET`, one connection per message.
    SeqPacket,
}

impl VsockKind {
    /// The address prefix, including the colon, e.g. `"vsock-dgram:"`.
    pub fn prefix(self) -> &'static str {
        match self {
            Self::Any => "vsock:",
            Self::Stream => "vsock-stream:",
            Self::Dgram => "vsock-dgram:",
            Self::SeqPacket => "vsock-seqpacket:",
        }
    }
}

/// A parsed notify socket address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Address {
    /// An absolute filesystem path of an `AF_UNIX` socket. Unlike libsystemd, paths longer
    /// than `sun_path` are accepted: [`crate::Upstream`] connects to them through an `O_PATH`
    /// fd of their directory.
    Path(PathBuf),
    /// An abstract `AF_UNIX` name (the bytes after `@`, at most [`ABSTRACT_NAME_MAX`]).
    /// Abstract names belong to a network namespace.
    Abstract(Vec<u8>),
    /// An `AF_VSOCK` address; the CID is mandatory, the port is the vsock port.
    Vsock {
        /// Socket type to use.
        kind: VsockKind,
        /// Context id of the peer (2 = host, 1 = local).
        cid: u32,
        /// vsock port.
        port: u32,
    },
}

impl Address {
    /// Parses a `NOTIFY_SOCKET` value.
    ///
    /// Accepts `/abs/path`, `@abstract`, and `vsock:CID:PORT`, `vsock-stream:CID:PORT`,
    /// `vsock-dgram:CID:PORT`, `vsock-seqpacket:CID:PORT` (decimal numbers).
    ///
    /// # Errors
    /// [`RelayError::Address`] for relative paths, an empty or over-long abstract name, a
    /// missing or non-numeric CID or port, or any other form.
    pub fn parse(value: impl AsRef<OsStr>) -> Result<Self, RelayError> {
        let raw = value.as_ref().as_bytes();
        let refuse = |reason| RelayError::Address {
            address: String::from_utf8_lossy(raw).into_owned(),
            reason,
        };
        if raw.contains(&0) {
            return Err(refuse("contains a NUL byte"));
        }
        match raw.first() {
            None => Err(refuse("empty")),
            Some(b'/') => Ok(Self::Path(OsString::from_vec(raw.to_vec()).into())),
            Some(b'@') => {
                let name = &raw[1..];
                if name.is_empty() {
                    Err(refuse("empty abstract name"))
                } else if name.len() > ABSTRACT_NAME_MAX {
                    Err(refuse("abstract name longer than 107 bytes"))
                } else {
                    Ok(Self::Abstract(name.to_vec()))
                }
            }
            Some(_) => parse_vsock(raw).ok_or_else(|| {
                if raw.starts_with(b"vsock") {
                    refuse("expected vsock[-stream|-dgram|-seqpacket]:CID:PORT with decimal CID and PORT")
                } else {
                    refuse("not an absolute path, @abstract name or vsock address")
                }
            }),
        }
    }

    /// Reads and parses `$NOTIFY_SOCKET`; `Ok(None)` when it is unset.
    ///
    /// # Errors
    /// As [`Address::parse`]; a set but empty variable is an error.
    pub fn from_env() -> Result<Option<Self>, RelayError> {
        std::env::var_os(NOTIFY_SOCKET).map(Self::parse).transpose()
    }
}

fn parse_vsock(raw: &[u8]) -> Option<Address> {
    let kinds = [
        VsockKind::Any,
        VsockKind::Stream,
        VsockKind::Dgram,
        VsockKind::SeqPacket,
    ];
    let (kind, rest) = kinds.into_iter().find_map(|kind| {
        raw.strip_prefix(kind.prefix().as_bytes())
            .map(|rest| (kind, rest))
    })?;
    let rest = std::str::from_utf8(rest).ok()?;
    let (cid, port) = rest.split_once(':')?;
    Some(Address::Vsock {
        kind,
        cid: decimal_u32(cid)?,
        port: decimal_u32(port)?,
    })
}

fn decimal_u32(text: &str) -> Option<u32> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Path(path) => write!(f, "{}", path.display()),
            Self::Abstract(name) => write!(f, "@{}", String::from_utf8_lossy(name)),
            Self::Vsock { kind, cid, port } => write!(f, "{}{cid}:{port}", kind.prefix()),
        }
    }
}

impl std::str::FromStr for Address {
    type Err = RelayError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(text: &str) -> Address {
        Address::parse(text).unwrap_or_else(|e| panic!("{text:?} should parse: {e}"))
    }

    fn refused(text: &str) -> &'static str {
        match Address::parse(text) {
            Err(RelayError::Address { reason, .. }) => reason,
            other => panic!("{text:?} should be refused, got {other:?}"),
        }
    }

    #[test]
    fn absolute_paths() {
        assert_eq!(
            ok("/run/systemd/notify"),
            Address::Path("/run/systemd/notify".into())
        );
        let long = format!("/{}", "d/".repeat(100) + "notify");
        assert_eq!(
            ok(&long),
            Address::Path(long.clone().into()),
            "long paths are accepted"
        );
        assert_eq!(ok("/run/systemd/notify").to_string(), "/run/systemd/notify");
    }

    #[test]
    fn relative_and_empty_are_refused() {
        assert!(refused("run/notify").contains("absolute"));
        assert!(refused("./notify").contains("absolute"));
        assert_eq!(refused(""), "empty");
        assert_eq!(refused("/a\0b"), "contains a NUL byte");
    }

    #[test]
    fn abstract_names() {
        assert_eq!(
            ok("@/org/freedesktop/systemd1/notify"),
            Address::Abstract(b"/org/freedesktop/systemd1/notify".to_vec())
        );
        assert_eq!(ok("@x").to_string(), "@x");
        assert_eq!(refused("@"), "empty abstract name");
        assert_eq!(
            ok(&format!("@{}", "n".repeat(107))),
            Address::Abstract(vec![b'n'; 107])
        );
        assert!(refused(&format!("@{}", "n".repeat(108))).contains("107"));
    }

    #[test]
    fn vsock_forms() {
        let cases = [
            ("vsock:2:1234", VsockKind::Any, 2, 1234),
            ("vsock-stream:3:1", VsockKind::Stream, 3, 1),
            ("vsock-dgram:2:4294967295", VsockKind::Dgram, 2, u32::MAX),
            ("vsock-seqpacket:1:99", VsockKind::SeqPacket, 1, 99),
        ];
        for (text, kind, cid, port) in cases {
            assert_eq!(ok(text), Address::Vsock { kind, cid, port }, "{text}");
            assert_eq!(ok(text).to_string(), text, "display round-trips");
        }
    }

    #[test]
    fn bad_vsock_forms() {
        for text in [
            "vsock:",
            "vsock::1234",
            "vsock:2:",
            "vsock:2",
            "vsock:x:1",
            "vsock:2:-1",
            "vsock:2:4294967296",
            "vsock:+2:1",
            "vsock-raw:2:1",
            "vsock:2:1:3",
        ] {
            assert!(refused(text).starts_with("expected vsock"), "{text}");
        }
        assert!(refused("tcp:1.2.3.4:5").contains("not an absolute path"));
    }

    #[test]
    fn from_str_matches_parse() {
        let parsed: Address = "@abc".parse().expect("parses");
        assert_eq!(parsed, Address::Abstract(b"abc".to_vec()));
    }
}
