//! vsock upstreams (vsock(7)), as libsystemd ≥ v254 sends to them: `SOCK_DGRAM` first for a
//! plain `vsock:` address, falling back to `SOCK_SEQPACKET` then `SOCK_STREAM` when the
//! transport has no datagrams; a privileged source port (< 1024) so the host can tell a
//! privileged sender; for connection types one connection per message, write side shut down,
//! then wait for the peer's EOF. No fds or credentials can cross vsock.
//!
//! rustix has no `sockaddr_vm`, so sockets are made and connected with `socket2`.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::time::Duration;

use rustix::io::Errno;
use socket2::{Domain, SockAddr, Socket, Type};

use super::hangup::wait_for_hangup;
use crate::{RelayError, VsockKind};

/// `VMADDR_CID_ANY`, for binding the local end.
const CID_ANY: u32 = u32::MAX;

/// A vsock upstream: a connected datagram socket, or the address to connect per message.
#[derive(Debug)]
pub(crate) struct VsockUpstream {
    kind: VsockKind,
    address: SockAddr,
    dgram: Option<OwnedFd>,
    name: String,
}

impl VsockUpstream {
    /// Resolves the socket type and, for datagrams, connects.
    pub(crate) fn connect(kind: VsockKind, cid: u32, port: u32) -> Result<Self, RelayError> {
        let name = format!("{}{cid}:{port}", kind.prefix());
        let address = SockAddr::vsock(cid, port);
        let (kind, socket) =
            open(kind).map_err(|e| RelayError::io(format!("socket for {name}"), e))?;
        let dgram = match kind {
            VsockKind::Dgram => {
                bind_privileged_port(&socket);
                socket
                    .connect(&address)
                    .map_err(|e| RelayError::io(format!("connect to {name}"), e))?;
                Some(OwnedFd::from(socket))
            }
            _ => None,
        };
        Ok(Self {
            kind,
            address,
            dgram,
            name,
        })
    }

    /// Sends one message, bounded by `timeout` for the send and for the peer's EOF.
    pub(crate) fn send(&mut self, payload: &[u8], timeout: Duration) -> Result<(), RelayError> {
        let context = || format!("send {} bytes to {}", payload.len(), self.name);
        if let Some(fd) = &self.dgram {
            rustix::net::send(fd, payload, rustix::net::SendFlags::NOSIGNAL)
                .map_err(|e| RelayError::io(context(), e))?;
            return Ok(());
        }
        let (_, socket) = open(self.kind).map_err(|e| RelayError::io(context(), e))?;
        bind_privileged_port(&socket);
        socket
            .set_write_timeout(Some(timeout))
            .map_err(|e| RelayError::io(context(), e))?;
        socket
            .connect(&self.address)
            .map_err(|e| RelayError::io(context(), e))?;
        let fd = OwnedFd::from(socket);
        rustix::net::send(&fd, payload, rustix::net::SendFlags::NOSIGNAL)
            .map_err(|e| RelayError::io(context(), e))?;
        rustix::net::shutdown(&fd, rustix::net::Shutdown::Write)
            .map_err(|e| RelayError::io(context(), e))?;
        match wait_for_hangup(fd.as_fd(), timeout) {
            Ok(true) => Ok(()),
            Ok(false) => Err(RelayError::io(context(), Errno::TIMEDOUT)),
            Err(e) => Err(RelayError::io(context(), e)),
        }
    }
}

/// Opens a vsock socket of `kind`; `Any` tries datagram, seqpacket, stream in that order,
/// moving on only when the type is not supported by the transport.
fn open(kind: VsockKind) -> io::Result<(VsockKind, Socket)> {
    let order: &[VsockKind] = match kind {
        VsockKind::Any => &[VsockKind::Dgram, VsockKind::SeqPacket, VsockKind::Stream],
        VsockKind::Dgram => &[VsockKind::Dgram],
        VsockKind::SeqPacket => &[VsockKind::SeqPacket],
        VsockKind::Stream => &[VsockKind::Stream],
    };
    let mut last = io::Error::from(Errno::AFNOSUPPORT);
    for &candidate in order {
        let ty = match candidate {
            VsockKind::Dgram => Type::DGRAM,
            VsockKind::SeqPacket => Type::SEQPACKET,
            _ => Type::STREAM,
        };
        match Socket::new(Domain::VSOCK, ty, None) {
            Ok(socket) => return Ok((candidate, socket)),
            Err(e) if type_unsupported(&e) => last = e,
            Err(e) => return Err(e),
        }
    }
    Err(last)
}

fn type_unsupported(e: &io::Error) -> bool {
    let errno = Errno::from_io_error(e);
    [
        Some(Errno::NODEV),
        Some(Errno::OPNOTSUPP),
        Some(Errno::SOCKTNOSUPPORT),
        Some(Errno::PROTONOSUPPORT),
        Some(Errno::PROTOTYPE),
    ]
    .contains(&errno)
}

/// Binds the highest free port below 1024; without privilege the kernel picks one.
fn bind_privileged_port(socket: &Socket) {
    for port in (512..1024).rev() {
        match socket.bind(&SockAddr::vsock(CID_ANY, port)) {
            Ok(()) => return,
            Err(e) if Errno::from_io_error(&e) == Some(Errno::ADDRINUSE) => continue,
            Err(e) => {
                tracing::debug!(error = %e, "no privileged vsock source port");
                return;
            }
        }
    }
}
