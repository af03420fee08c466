//! A small blocking D-Bus client: what `--systemd-cgroup` needs of the system bus (or, for a
//! rootless pier, of the user's session bus) and no more (the D-Bus Specification:
//! "Authentication Protocol", "Message Protocol", "Type System", "Message Bus Addresses").
//!
//! One connection on the bus's unix socket, `EXTERNAL` authentication (the kernel vouches for
//! our uid, as the bus sees it), `Hello`, then method calls and the signals a match rule subscribed to, read in
//! order on the calling thread. Only the types systemd's `StartTransientUnit`, `StopUnit` and
//! `JobRemoved` use are marshalled: `y b u t s o g`, arrays, structs and variants. No threads,
//! no unix-fd passing, no introspection.

use std::io::{Read, Write};
use std::os::unix::net::{SocketAddr, UnixStream};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// How long a method call may take before the connection gives up (the reference
/// implementation's default method-call timeout is 25 s).
pub const TIMEOUT: Duration = Duration::from_secs(25);

/// The largest message the specification allows (128 MiB); anything above is a broken peer.
const MAX_MESSAGE: usize = 128 << 20;

/// The message types of the header's second byte.
const METHOD_CALL: u8 = 1;
const METHOD_RETURN: u8 = 2;
const ERROR: u8 = 3;
const SIGNAL: u8 = 4;

/// Header field codes.
const F_PATH: u8 = 1;
const F_INTERFACE: u8 = 2;
const F_MEMBER: u8 = 3;
const F_ERROR_NAME: u8 = 4;
const F_REPLY_SERIAL: u8 = 5;
const F_DESTINATION: u8 = 6;
const F_SIGNATURE: u8 = 8;

/// Marshals values in little-endian D-Bus wire format, each aligned to its type's boundary
/// relative to the start of the buffer (a message body starts 8-aligned, so a body marshalled
/// on its own has the alignment it will have in the message).
#[derive(Default)]
pub struct Writer {
    buf: Vec<u8>,
}

impl Writer {
    fn align(&mut self, n: usize) {
        while !self.buf.len().is_multiple_of(n) {
            self.buf.push(0);
        }
    }

    /// `y`.
    pub fn byte(&mut self, v: u8) {
        self.buf.push(v);
    }

    /// `u`.
    pub fn u32(&mut self, v: u32) {
        self.align(4);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// `b`: a u32 0 or 1.
    pub fn bool(&mut self, v: bool) {
        self.u32(u32::from(v));
    }

    /// `t`.
    pub fn u64(&mut self, v: u64) {
        self.align(8);
        self.buf.extend_from_slice(&v.to_le_bytes());
    }

    /// `s` and `o`: u32 length, the bytes, a NUL.
    pub fn str(&mut self, v: &str) {
        self.u32(v.len() as u32);
        self.buf.extend_from_slice(v.as_bytes());
        self.buf.push(0);
    }

    /// `g`: u8 length, the bytes, a NUL.
    pub fn signature(&mut self, v: &str) {
        self.buf.push(v.len() as u8);
        self.buf.extend_from_slice(v.as_bytes());
        self.buf.push(0);
    }

    /// `a…`: u32 byte length, padding to the element's alignment (not counted), the elements
    /// written by `elements`.
    pub fn array(&mut self, element_align: usize, elements: impl FnOnce(&mut Writer)) {
        self.align(4);
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; 4]);
        self.align(element_align);
        let start = self.buf.len();
        elements(self);
        let len = (self.buf.len() - start) as u32;
        self.buf[at..at + 4].copy_from_slice(&len.to_le_bytes());
    }

    /// `(…)`: 8-aligned, then the members written by `members`.
    pub fn structure(&mut self, members: impl FnOnce(&mut Writer)) {
        self.align(8);
        members(self);
    }

    /// `v`: the value's signature, then the value written by `value`.
    pub fn variant(&mut self, signature: &str, value: impl FnOnce(&mut Writer)) {
        self.signature(signature);
        value(self);
    }

    /// The bytes written so far.
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }
}

/// Reads values of a message (either byte order), with the same alignment rules.
struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    big_endian: bool,
}

impl<'a> Reader<'a> {
    fn align(&mut self, n: usize) -> Result<()> {
        self.pos = self.pos.div_ceil(n) * n;
        if self.pos > self.buf.len() {
            bail!("D-Bus message truncated");
        }
        Ok(())
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        let end = self.pos.checked_add(n).filter(|e| *e <= self.buf.len());
        let Some(end) = end else {
            bail!("D-Bus message truncated")
        };
        let out = &self.buf[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn u32(&mut self) -> Result<u32> {
        self.align(4)?;
        let b: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
        Ok(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    fn str(&mut self) -> Result<String> {
        let len = self.u32()? as usize;
        let bytes = self.take(len)?;
        self.take(1)?;
        String::from_utf8(bytes.to_vec()).context("D-Bus string is not UTF-8")
    }

    fn signature(&mut self) -> Result<String> {
        let len = self.byte()? as usize;
        let bytes = self.take(len)?;
        self.take(1)?;
        String::from_utf8(bytes.to_vec()).context("D-Bus signature is not UTF-8")
    }

    /// A header field's variant: the string types and `u` are what the header holds; their
    /// value as text (a number in decimal).
    fn basic_variant(&mut self) -> Result<String> {
        match self.signature()?.as_str() {
            "s" | "o" => self.str(),
            "g" => self.signature(),
            "u" => Ok(self.u32()?.to_string()),
            other => bail!("unexpected D-Bus header field type {other:?}"),
        }
    }
}

/// A received message: its type, the header fields pier looks at, and the raw body.
#[derive(Debug, Default)]
pub struct Message {
    /// METHOD_RETURN, ERROR, SIGNAL, ...
    kind: u8,
    /// The serial of the call this replies to.
    reply_serial: Option<u32>,
    path: String,
    interface: String,
    member: String,
    error_name: String,
    signature: String,
    big_endian: bool,
    body: Vec<u8>,
}

impl Message {
    /// Parse one whole message (header, padding, body).
    fn parse(bytes: &[u8]) -> Result<Message> {
        let big_endian = match bytes.first() {
            Some(b'l') => false,
            Some(b'B') => true,
            _ => bail!("D-Bus message with an unknown byte order"),
        };
        let mut r = Reader {
            buf: bytes,
            pos: 1,
            big_endian,
        };
        let mut m = Message {
            kind: r.byte()?,
            big_endian,
            ..Message::default()
        };
        r.take(2)?; // flags, protocol version
        let body_len = r.u32()? as usize;
        r.u32()?; // serial
        let fields_len = r.u32()? as usize;
        let fields_end = r.pos + fields_len;
        while r.pos < fields_end {
            r.align(8)?;
            let code = r.byte()?;
            let value = r.basic_variant()?;
            match code {
                F_PATH => m.path = value,
                F_INTERFACE => m.interface = value,
                F_MEMBER => m.member = value,
                F_ERROR_NAME => m.error_name = value,
                F_REPLY_SERIAL => m.reply_serial = value.parse().ok(),
                F_SIGNATURE => m.signature = value,
                _ => {}
            }
        }
        r.align(8)?;
        m.body = r.take(body_len)?.to_vec();
        Ok(m)
    }

    fn body(&self) -> Reader<'_> {
        Reader {
            buf: &self.body,
            pos: 0,
            big_endian: self.big_endian,
        }
    }

    /// An error reply as `Name: message`.
    fn error_text(&self) -> String {
        let text = if self.signature.starts_with('s') {
            self.body().str().unwrap_or_default()
        } else {
            String::new()
        };
        format!("{}: {text}", self.error_name)
    }
}

/// Total length of the message whose first 16 bytes are `fixed`.
fn message_len(fixed: &[u8; 16]) -> Result<usize> {
    let word = |at: usize| {
        let b: [u8; 4] = fixed[at..at + 4].try_into().expect("4 bytes");
        (if fixed[0] == b'B' {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        }) as usize
    };
    let header = (16 + word(12)).div_ceil(8) * 8;
    let total = header + word(4);
    if total > MAX_MESSAGE {
        bail!("D-Bus message of {total} bytes");
    }
    Ok(total)
}

/// A method call to send: destination, object, interface, member, and a body with its
/// signature.
pub struct Call<'a> {
    /// Bus name of the service (`org.freedesktop.systemd1`).
    pub destination: &'a str,
    /// Object path (`/org/freedesktop/systemd1`).
    pub path: &'a str,
    /// Interface (`org.freedesktop.systemd1.Manager`).
    pub interface: &'a str,
    /// Method name.
    pub member: &'a str,
    /// The arguments' signature (`ss`), empty for none.
    pub signature: &'a str,
    /// The arguments, marshalled with a [`Writer`].
    pub body: Vec<u8>,
}

impl Call<'_> {
    fn encode(&self, serial: u32) -> Vec<u8> {
        let mut w = Writer::default();
        w.byte(b'l');
        w.byte(METHOD_CALL);
        w.byte(0); // flags
        w.byte(1); // protocol version
        w.u32(self.body.len() as u32);
        w.u32(serial);
        w.array(8, |w| {
            let field = |w: &mut Writer, code: u8, sig: &str, v: &str| {
                w.structure(|w| {
                    w.byte(code);
                    w.variant(sig, |w| if sig == "g" { w.signature(v) } else { w.str(v) });
                })
            };
            field(w, F_PATH, "o", self.path);
            field(w, F_INTERFACE, "s", self.interface);
            field(w, F_MEMBER, "s", self.member);
            field(w, F_DESTINATION, "s", self.destination);
            if !self.signature.is_empty() {
                field(w, F_SIGNATURE, "g", self.signature);
            }
        });
        w.align(8);
        let mut out = w.into_bytes();
        out.extend_from_slice(&self.body);
        out
    }
}

/// One authenticated connection to a message bus.
pub struct Connection {
    stream: UnixStream,
    serial: u32,
    /// Signals read while waiting for a reply, handed out by [`Connection::next_signal`] first.
    pending: Vec<Message>,
}

/// Which message bus: the system bus (systemd's system manager) or the user's session bus
/// (the `systemd --user` manager of a rootless pier, as runc's rootless systemd driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bus {
    /// `$DBUS_SYSTEM_BUS_ADDRESS`, else `/var/run/dbus/system_bus_socket`.
    System,
    /// `$DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus` when it exists.
    User,
}

/// The hint runc gives with every failure to reach the user bus (the bus of a user manager
/// comes with the `dbus-user-session` package on Debian).
const USER_BUS_HINT: &str =
    "for rootless containers, maybe you need to install the dbus-user-session package";

impl Bus {
    /// The bus address to connect to.
    ///
    /// The user bus is looked up once per process (`user_bus_address`).
    ///
    /// # Errors
    /// [`Bus::User`] with neither `$DBUS_SESSION_BUS_ADDRESS` set, nor a socket at
    /// `$XDG_RUNTIME_DIR/bus`, nor a `DBUS_SESSION_BUS_ADDRESS` in the environment of the user
    /// manager (or no user manager): runc's messages, with its hint.
    pub fn address(self) -> Result<String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        match self {
            Bus::System => Ok(var("DBUS_SYSTEM_BUS_ADDRESS")
                .unwrap_or_else(|| "unix:path=/var/run/dbus/system_bus_socket".into())),
            Bus::User => {
                static FOUND: std::sync::OnceLock<String> = std::sync::OnceLock::new();
                if let Some(address) = FOUND.get() {
                    return Ok(address.clone());
                }
                let address = user_bus_address()
                    .with_context(|| format!("failed to connect to dbus ({USER_BUS_HINT})"))?;
                Ok(FOUND.get_or_init(|| address).clone())
            }
        }
    }
}

/// The user bus as runc finds it: `$DBUS_SESSION_BUS_ADDRESS`, else `$XDG_RUNTIME_DIR/bus`
/// when it exists, else the `DBUS_SESSION_BUS_ADDRESS` of the user manager's environment
/// (`systemctl --user show-environment`, which reaches the manager without a bus).
fn user_bus_address() -> Result<String> {
    let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    if let Some(address) = var("DBUS_SESSION_BUS_ADDRESS") {
        return Ok(address);
    }
    if let Some(dir) = var("XDG_RUNTIME_DIR") {
        let socket = Path::new(&dir).join("bus");
        if socket.exists() {
            return Ok(format!("unix:path={}", escape(&socket.to_string_lossy())));
        }
    }
    const ARGV: [&str; 4] = ["systemctl", "--user", "--no-pager", "show-environment"];
    let what = format!("`{}`", ARGV.join(" "));
    let argv = ARGV.map(String::from);
    let (status, said) = crate::tool::run("systemctl", &argv)
        .with_context(|| format!("could not execute {what}"))?;
    if status.exit_status() != Some(0) {
        let how = match status.exit_status() {
            Some(code) => format!("exit status {code}"),
            None => "killed by a signal".to_string(),
        };
        bail!("could not execute {what} (output={said:?}): {how}");
    }
    said.lines()
        .find_map(|l| l.trim().strip_prefix("DBUS_SESSION_BUS_ADDRESS="))
        .map(str::to_string)
        .with_context(|| {
            format!(
                "could not detect DBUS_SESSION_BUS_ADDRESS from {what}. Make sure you have \
                 installed the dbus-user-session or dbus-daemon package and then run: \
                 `systemctl --user start dbus`"
            )
        })
}

/// An address value with the bytes the specification does not allow unescaped as `%xx`.
fn escape(v: &str) -> String {
    let mut out = String::new();
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || b"-_/.\\*".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02x}"));
        }
    }
    out
}

/// Connect to the first `unix:path=` or `unix:abstract=` entry of a bus address.
fn connect_address(address: &str) -> Result<UnixStream> {
    let mut last = None;
    for entry in address.split(';') {
        let Some(params) = entry.strip_prefix("unix:") else {
            continue;
        };
        for kv in params.split(',') {
            let addr = if let Some(p) = kv.strip_prefix("path=") {
                SocketAddr::from_pathname(unescape(p)?)
            } else if let Some(n) = kv.strip_prefix("abstract=") {
                use std::os::linux::net::SocketAddrExt;
                SocketAddr::from_abstract_name(unescape(n)?)
            } else {
                continue;
            };
            match UnixStream::connect_addr(&addr.context("bus address")?) {
                Ok(s) => return Ok(s),
                Err(e) => last = Some(e),
            }
        }
    }
    match last {
        Some(e) => Err(e).with_context(|| format!("connect to {address}")),
        None => bail!("bus address {address:?} has no unix path"),
    }
}

/// An address value with its `%xx` escapes decoded.
fn unescape(v: &str) -> Result<String> {
    let mut out = Vec::new();
    let mut bytes = v.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex: Vec<u8> = bytes.by_ref().take(2).collect();
            let hex = std::str::from_utf8(&hex).ok();
            let Some(n) = hex.and_then(|h| u8::from_str_radix(h, 16).ok()) else {
                bail!("bad escape in bus address {v:?}")
            };
            out.push(n);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).context("bus address is not UTF-8")
}

impl Connection {
    /// Connect to `bus`, authenticate and say `Hello`.
    ///
    /// # Errors
    /// No address for the bus ([`Bus::address`]), no bus at the address, authentication
    /// refused, or a broken reply; for the user bus each with runc's hint.
    pub fn open(bus: Bus) -> Result<Connection> {
        let address = bus.address()?;
        Self::open_address(&address).map_err(|e| match bus {
            Bus::User => e.context(format!("failed to connect to dbus ({USER_BUS_HINT})")),
            Bus::System => e.context("connect to the system bus"),
        })
    }

    fn open_address(address: &str) -> Result<Connection> {
        let stream = connect_address(address)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        let mut conn = Connection {
            stream,
            serial: 0,
            pending: Vec::new(),
        };
        conn.authenticate()
            .with_context(|| format!("authenticate on {address}"))?;
        conn.call(&Call {
            destination: "org.freedesktop.DBus",
            path: "/org/freedesktop/DBus",
            interface: "org.freedesktop.DBus",
            member: "Hello",
            signature: "",
            body: Vec::new(),
        })
        .context("Hello")?;
        Ok(conn)
    }

    /// The NUL byte, `AUTH EXTERNAL` without an authorization identity, the server's empty
    /// `DATA` challenge answered with an empty `DATA`, `OK <guid>`, `BEGIN`. With no identity
    /// the bus takes the uid the kernel gives it for the socket (SO_PEERCRED), which is right
    /// inside a user namespace too: there pier's own uid (0 under rootless podman) is not the
    /// one the bus sees. runc asks `busctl --user status` for that uid (its OwnerUID) instead.
    fn authenticate(&mut self) -> Result<()> {
        self.stream.write_all(b"\0AUTH EXTERNAL\r\n")?;
        let mut line = self.read_line()?;
        if line == "DATA" || line.starts_with("DATA ") {
            self.stream.write_all(b"DATA\r\n")?;
            line = self.read_line()?;
        }
        if !line.starts_with("OK ") {
            bail!("the bus refused EXTERNAL authentication: {line:?}");
        }
        self.stream.write_all(b"BEGIN\r\n")?;
        Ok(())
    }

    fn read_line(&mut self) -> Result<String> {
        let mut line = Vec::new();
        let mut byte = [0u8];
        while !line.ends_with(b"\r\n") {
            self.stream
                .read_exact(&mut byte)
                .context("read from the bus")?;
            line.push(byte[0]);
            if line.len() > 4096 {
                bail!("authentication line too long");
            }
        }
        line.truncate(line.len() - 2);
        Ok(String::from_utf8_lossy(&line).into_owned())
    }

    fn read_message(&mut self) -> Result<Message> {
        let mut fixed = [0u8; 16];
        self.stream
            .read_exact(&mut fixed)
            .context("read from the bus")?;
        let mut bytes = fixed.to_vec();
        bytes.resize(message_len(&fixed)?, 0);
        self.stream
            .read_exact(&mut bytes[16..])
            .context("read from the bus")?;
        Message::parse(&bytes)
    }

    /// Send `call` and wait for its reply; signals that arrive meanwhile are kept for
    /// [`Connection::next_signal`]. Returns the reply's body reader input.
    ///
    /// # Errors
    /// The peer answers with an error (`Name: message`), or the connection fails.
    pub fn call(&mut self, call: &Call<'_>) -> Result<Message> {
        self.serial += 1;
        let serial = self.serial;
        self.stream
            .write_all(&call.encode(serial))
            .context("write to the bus")?;
        loop {
            let m = self.read_message()?;
            match m.kind {
                METHOD_RETURN if m.reply_serial == Some(serial) => return Ok(m),
                ERROR if m.reply_serial == Some(serial) => bail!("{}", m.error_text()),
                SIGNAL => self.pending.push(m),
                _ => {}
            }
        }
    }

    /// The next signal (kept or newly read) from `interface` named `member`.
    ///
    /// # Errors
    /// The connection fails or times out.
    pub fn next_signal(&mut self, interface: &str, member: &str) -> Result<Message> {
        let wanted =
            |m: &Message| m.kind == SIGNAL && m.interface == interface && m.member == member;
        if let Some(at) = self.pending.iter().position(wanted) {
            return Ok(self.pending.remove(at));
        }
        loop {
            let m = self.read_message()?;
            if wanted(&m) {
                return Ok(m);
            }
        }
    }
}

/// An object path reply (`o`), e.g. the job of `StartUnit`.
///
/// # Errors
/// The reply's signature is not `o…`.
pub fn object_path_reply(m: &Message) -> Result<String> {
    if !m.signature.starts_with('o') {
        bail!("expected an object path reply, got {:?}", m.signature);
    }
    m.body().str()
}

/// The string value of a `org.freedesktop.DBus.Properties.Get` reply (`v` holding `s` or
/// `o`), e.g. the manager's `ControlGroup`.
///
/// # Errors
/// The reply is not a variant of a string type.
pub fn string_property_reply(m: &Message) -> Result<String> {
    if m.signature != "v" {
        bail!("expected a variant reply, got {:?}", m.signature);
    }
    let mut r = m.body();
    match r.signature()?.as_str() {
        "s" | "o" => r.str(),
        other => bail!("expected a string property, got a variant of {other:?}"),
    }
}

/// systemd's `JobRemoved(u id, o job, s unit, s result)`: (job, unit, result).
///
/// # Errors
/// The signal's body is not `uoss`.
pub fn job_removed(m: &Message) -> Result<(String, String, String)> {
    if m.signature != "uoss" {
        bail!("JobRemoved with signature {:?}", m.signature);
    }
    let mut r = m.body();
    r.u32()?;
    Ok((r.str()?, r.str()?, r.str()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A method call as the specification's example lays it out: header fields 8-aligned
    /// structs, the body 8-aligned, lengths of what follows.
    #[test]
    fn call_encoding() {
        let mut body = Writer::default();
        body.str("a.scope");
        body.str("fail");
        let call = Call {
            destination: "org.freedesktop.systemd1",
            path: "/o",
            interface: "i.f",
            member: "M",
            signature: "ss",
            body: body.into_bytes(),
        };
        let bytes = call.encode(7);
        assert_eq!(&bytes[..4], b"l\x01\x00\x01");
        let fixed: [u8; 16] = bytes[..16].try_into().unwrap();
        assert_eq!(message_len(&fixed).unwrap(), bytes.len());
        let m = Message::parse(&bytes).unwrap();
        assert_eq!(
            (
                m.kind,
                m.path.as_str(),
                m.interface.as_str(),
                m.member.as_str()
            ),
            (METHOD_CALL, "/o", "i.f", "M")
        );
        assert_eq!(m.signature, "ss");
        let mut r = m.body();
        assert_eq!(
            (r.str().unwrap(), r.str().unwrap()),
            ("a.scope".into(), "fail".into())
        );
        // First field: struct at 16, code 1 (PATH), signature "o", then the path (u32-aligned).
        assert_eq!(&bytes[16..20], &[F_PATH, 1, b'o', 0]);
        assert_eq!(&bytes[20..24], &2u32.to_le_bytes());
    }

    #[test]
    fn arrays_count_bytes_without_leading_padding() {
        let mut w = Writer::default();
        w.byte(1);
        // a(sv) with one entry: length at 4, padding to 8, the struct.
        w.array(8, |w| {
            w.structure(|w| {
                w.str("Delegate");
                w.variant("b", |w| w.bool(true));
            })
        });
        let b = w.into_bytes();
        assert_eq!(&b[4..8], &((b.len() - 8) as u32).to_le_bytes());
        assert_eq!(&b[8..12], &8u32.to_le_bytes());
        assert_eq!(&b[12..21], b"Delegate\0");
        assert_eq!(&b[21..24], b"\x01b\0");
        assert_eq!(&b[24..28], &1u32.to_le_bytes());
    }

    #[test]
    fn replies_signals_and_errors_parse() {
        let signal = |sig: &str, body: Vec<u8>, kind: u8, reply: Option<u32>| {
            let mut w = Writer::default();
            w.byte(b'l');
            w.byte(kind);
            w.byte(0);
            w.byte(1);
            w.u32(body.len() as u32);
            w.u32(9);
            w.array(8, |w| {
                w.structure(|w| {
                    w.byte(F_INTERFACE);
                    w.variant("s", |w| w.str("org.freedesktop.systemd1.Manager"));
                });
                w.structure(|w| {
                    w.byte(F_MEMBER);
                    w.variant("s", |w| w.str("JobRemoved"));
                });
                w.structure(|w| {
                    w.byte(F_SIGNATURE);
                    w.variant("g", |w| w.signature(sig));
                });
                if let Some(r) = reply {
                    w.structure(|w| {
                        w.byte(F_REPLY_SERIAL);
                        w.variant("u", |w| w.u32(r));
                    });
                    w.structure(|w| {
                        w.byte(F_ERROR_NAME);
                        w.variant("s", |w| w.str("org.freedesktop.systemd1.NoSuchUnit"));
                    });
                }
            });
            w.align(8);
            let mut out = w.into_bytes();
            out.extend_from_slice(&body);
            out
        };
        let mut body = Writer::default();
        body.u32(42);
        body.str("/org/freedesktop/systemd1/job/42");
        body.str("a.scope");
        body.str("done");
        let m = Message::parse(&signal("uoss", body.into_bytes(), SIGNAL, None)).unwrap();
        assert_eq!(
            job_removed(&m).unwrap(),
            (
                "/org/freedesktop/systemd1/job/42".into(),
                "a.scope".into(),
                "done".into()
            )
        );
        let mut body = Writer::default();
        body.str("Unit a.scope not loaded.");
        let e = Message::parse(&signal("s", body.into_bytes(), ERROR, Some(3))).unwrap();
        assert_eq!(e.reply_serial, Some(3));
        assert_eq!(
            e.error_text(),
            "org.freedesktop.systemd1.NoSuchUnit: Unit a.scope not loaded."
        );
        assert!(Message::parse(b"l\x02\x00\x01\xff\x00\x00\x00").is_err());
        // Properties.Get's reply: a variant holding a string
        let mut body = Writer::default();
        body.variant("s", |w| {
            w.str("/user.slice/user-1000.slice/user@1000.service")
        });
        let mut reply =
            Message::parse(&signal("v", body.into_bytes(), METHOD_RETURN, None)).unwrap();
        assert_eq!(
            string_property_reply(&reply).unwrap(),
            "/user.slice/user-1000.slice/user@1000.service"
        );
        reply.signature = "s".into();
        assert!(string_property_reply(&reply).is_err());
    }

    #[test]
    fn addresses() {
        assert_eq!(unescape("/run/a%2cb").unwrap(), "/run/a,b");
        assert_eq!(escape("/run/user/1000/bus"), "/run/user/1000/bus");
        assert_eq!(
            unescape(&escape("/tmp/a b,c;d=%")).unwrap(),
            "/tmp/a b,c;d=%"
        );
        assert!(unescape("%zz").is_err());
        let err = connect_address("tcp:host=x").unwrap_err();
        assert!(format!("{err:#}").contains("no unix path"));
        let err = connect_address("unix:path=/nonexistent/bus").unwrap_err();
        assert!(format!("{err:#}").contains("/nonexistent/bus"));
    }
}
