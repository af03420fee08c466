//! A notify datagram's payload as an ordered list of `KEY=VALUE` assignments, with the
//! reception rules of systemd's manager (sd_notify(3); `manager_dispatch_notify_fd`).

use std::borrow::Cow;

use crate::DropReason;

/// Largest payload systemd accepts in one datagram: `NOTIFY_BUFFER_MAX` = `PIPE_BUF` bytes.
pub const NOTIFY_BUFFER_MAX: usize = 4096;

/// One line of a notify payload, usually `KEY=VALUE`. Bytes are kept verbatim (values need
/// not be UTF-8; systemd checks the ones it cares about).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    line: Vec<u8>,
}

impl Assignment {
    /// Builds `key=value`.
    pub fn new(key: &str, value: impl AsRef<[u8]>) -> Self {
        let mut line = Vec::with_capacity(key.len() + 1 + value.as_ref().len());
        line.extend_from_slice(key.as_bytes());
        line.push(b'=');
        line.extend_from_slice(value.as_ref());
        Self { line }
    }

    /// The part before the first `=`, or the whole line when there is none.
    pub fn key(&self) -> &[u8] {
        self.line.split(|&b| b == b'=').next().unwrap_or_default()
    }

    /// The part after the first `=`; `None` when the line has no `=`.
    pub fn value(&self) -> Option<&[u8]> {
        let at = self.line.iter().position(|&b| b == b'=')?;
        Some(&self.line[at + 1..])
    }

    /// The key as text for logs (lossy UTF-8).
    pub fn key_lossy(&self) -> Cow<'_, str> {
        String::from_utf8_lossy(self.key())
    }

    /// The whole line, without a newline.
    pub fn as_bytes(&self) -> &[u8] {
        &self.line
    }

    /// Whether the line is exactly `KEY=VALUE`.
    pub fn is(&self, key: &str, value: &str) -> bool {
        self.key() == key.as_bytes() && self.value() == Some(value.as_bytes())
    }
}

/// A parsed payload: its non-empty lines, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    /// The assignments in the order they were sent.
    pub assignments: Vec<Assignment>,
}

impl Message {
    /// Parses a received payload.
    ///
    /// Rules, as systemd's manager applies them: more than [`NOTIFY_BUFFER_MAX`] bytes is
    /// refused; a single trailing NUL is tolerated, any other NUL refuses the datagram; lines
    /// are split on `\n` (and `\r`, which systemd also treats as a line break) and empty lines
    /// are skipped; a payload without any line is [`DropReason::Empty`].
    ///
    /// # Errors
    /// [`DropReason::TooLarge`], [`DropReason::EmbeddedNul`] or [`DropReason::Empty`].
    pub fn parse(payload: &[u8]) -> Result<Self, DropReason> {
        if payload.len() > NOTIFY_BUFFER_MAX {
            return Err(DropReason::TooLarge {
                bytes: payload.len(),
            });
        }
        let payload = payload.strip_suffix(b"\0").unwrap_or(payload);
        if payload.contains(&0) {
            return Err(DropReason::EmbeddedNul);
        }
        let assignments: Vec<Assignment> = payload
            .split(|&b| b == b'\n' || b == b'\r')
            .filter(|line| !line.is_empty())
            .map(|line| Assignment {
                line: line.to_vec(),
            })
            .collect();
        if assignments.is_empty() {
            return Err(DropReason::Empty);
        }
        Ok(Self { assignments })
    }

    /// Whether any line is exactly `READY=1` (systemd looks at every line, not only the first).
    pub fn is_ready(&self) -> bool {
        self.assignments.iter().any(|a| a.is("READY", "1"))
    }

    /// The payload to send: the lines joined with `\n`.
    pub fn encode(&self) -> Vec<u8> {
        self.assignments
            .iter()
            .map(Assignment::as_bytes)
            .collect::<Vec<_>>()
            .join(&b'\n')
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(payload: &[u8]) -> Vec<String> {
        let message = Message::parse(payload).expect("parses");
        message
            .assignments
            .iter()
            .map(|a| String::from_utf8_lossy(a.as_bytes()).into_owned())
            .collect()
    }

    #[test]
    fn splits_lines_in_order() {
        assert_eq!(
            lines(b"STATUS=a\nREADY=1\nX_Y=z"),
            ["STATUS=a", "READY=1", "X_Y=z"]
        );
        assert_eq!(
            lines(b"\n\nREADY=1\n\n"),
            ["READY=1"],
            "empty lines skipped"
        );
        assert_eq!(
            lines(b"A=1\r\nB=2"),
            ["A=1", "B=2"],
            "CR is a line break too"
        );
    }

    #[test]
    fn key_and_value() {
        let message = Message::parse(b"STATUS=a=b\nNOEQUALS\nEMPTY=").expect("parses");
        let [status, none, empty] = &message.assignments[..] else {
            panic!("three lines")
        };
        assert_eq!(
            (status.key(), status.value()),
            (&b"STATUS"[..], Some(&b"a=b"[..]))
        );
        assert_eq!((none.key(), none.value()), (&b"NOEQUALS"[..], None));
        assert_eq!(
            (empty.key(), empty.value()),
            (&b"EMPTY"[..], Some(&b""[..]))
        );
        assert!(Assignment::new("READY", "1").is("READY", "1"));
        assert!(!Assignment::new("READY", "10").is("READY", "1"));
    }

    #[test]
    fn size_limit_is_4096_bytes() {
        let mut at_limit = b"STATUS=".to_vec();
        at_limit.resize(NOTIFY_BUFFER_MAX, b'x');
        assert!(Message::parse(&at_limit).is_ok());
        at_limit.push(b'x');
        assert_eq!(
            Message::parse(&at_limit),
            Err(DropReason::TooLarge { bytes: 4097 })
        );
    }

    #[test]
    fn nul_rules() {
        assert_eq!(
            lines(b"READY=1\0"),
            ["READY=1"],
            "one trailing NUL tolerated"
        );
        assert_eq!(Message::parse(b"READY=1\0\0"), Err(DropReason::EmbeddedNul));
        assert_eq!(
            Message::parse(b"READY=1\0STATUS=x"),
            Err(DropReason::EmbeddedNul)
        );
        assert_eq!(Message::parse(b"\0READY=1"), Err(DropReason::EmbeddedNul));
    }

    #[test]
    fn empty_payloads() {
        for payload in [&b""[..], b"\0", b"\n", b"\n\r\n"] {
            assert_eq!(
                Message::parse(payload),
                Err(DropReason::Empty),
                "{payload:?}"
            );
        }
    }

    #[test]
    fn ready_on_any_line() {
        assert!(Message::parse(b"STATUS=warming up\nREADY=1")
            .expect("parses")
            .is_ready());
        let mut late = b"STATUS=".to_vec();
        late.extend(std::iter::repeat_n(b'x', 600));
        late.extend_from_slice(b"\nREADY=1");
        assert!(Message::parse(&late).expect("parses").is_ready());
        assert!(!Message::parse(b"READY=0\nSTATUS=READY=1")
            .expect("parses")
            .is_ready());
        assert!(!Message::parse(b"XREADY=1").expect("parses").is_ready());
    }

    #[test]
    fn encode_joins_with_newlines() {
        let message = Message::parse(b"A=1\n\nB=2\n").expect("parses");
        assert_eq!(message.encode(), b"A=1\nB=2");
    }
}
