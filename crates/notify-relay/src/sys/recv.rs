//! `recvmsg(2)` and `recvmmsg(2)` on the container-side socket with `SCM_RIGHTS`, `SCM_CREDENTIALS` and
//! `SCM_PIDFD` parsed, and `setsockopt(SO_PASSPIDFD)` (socket(7), unix(7)).

use std::io::Error;
use std::mem::{offset_of, size_of};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use rustix::io::Errno;
use rustix::net::{RecvFlags, ReturnFlags};

/// `SCM_PIDFD` (include/linux/socket.h, Linux 6.5): the sender's pidfd as one `int`. libc
/// 0.2.191 has `SO_PASSPIDFD` but not this one.
const SCM_PIDFD: libc::c_int = 0x04;

/// `SO_PEEK_OFF` (include/uapi/asm-generic/socket.h, Linux 3.4 for `AF_UNIX`), which libc
/// 0.2.191 does not export for Linux.
const SO_PEEK_OFF: libc::c_int = 42;

/// `CMSG_ALIGN`: control messages are padded to the size of a `long`.
const fn cmsg_align(len: usize) -> usize {
    (len + size_of::<usize>() - 1) & !(size_of::<usize>() - 1)
}

/// `struct cmsghdr`'s size, and where a control message's data starts (`CMSG_DATA`).
const HEADER: usize = size_of::<libc::cmsghdr>();
const DATA: usize = cmsg_align(HEADER);

/// `CMSG_SPACE(len)`: the buffer bytes one control message with `len` data bytes takes.
pub(crate) const fn cmsg_space(len: usize) -> usize {
    DATA + cmsg_align(len)
}

/// The sender's `SCM_CREDENTIALS`, translated by the kernel into our namespaces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Credentials {
    /// Sender pid in our pid namespace.
    pub pid: i32,
    /// Sender uid in our user namespace.
    pub uid: u32,
    /// Sender gid in our user namespace.
    pub gid: u32,
}

/// What `SCM_PIDFD` said about the sender.
#[derive(Debug)]
pub(crate) enum SenderPidfd {
    /// No `SCM_PIDFD` (the socket does not have `SO_PASSPIDFD`).
    NotSent,
    /// A pidfd of the sender, close-on-exec.
    Pidfd(OwnedFd),
    /// The kernel sent an error instead of an fd (before Linux 6.16 `-ESRCH` when the sender
    /// had already been reaped).
    Unavailable(Errno),
}

/// One received datagram.
#[derive(Debug)]
pub(crate) struct Message {
    /// The payload's real length (with `MSG_TRUNC`, also when larger than the buffer).
    pub bytes: usize,
    /// `MSG_TRUNC`, `MSG_CTRUNC`.
    pub flags: ReturnFlags,
    /// Every fd of every `SCM_RIGHTS` message, in order.
    pub fds: Vec<OwnedFd>,
    /// `SCM_CREDENTIALS`, if it came.
    pub credentials: Option<Credentials>,
    /// `SCM_PIDFD`.
    pub pidfd: SenderPidfd,
}

/// The control buffer [`recvmsg`] needs for `max_fds` fds, credentials and a pidfd.
pub(crate) fn control_len(max_fds: usize) -> usize {
    cmsg_space(max_fds * size_of::<libc::c_int>())
        + cmsg_space(size_of::<libc::ucred>())
        + cmsg_space(size_of::<libc::c_int>())
}

/// `recvmsg(2)` of one datagram into `payload`, with `control` (sized by [`control_len`]) for
/// the control messages. Every fd the kernel installed for the datagram comes back as an
/// [`OwnedFd`], also when the datagram is refused later; control messages that carry no fd
/// and are not credentials are ignored.
///
/// # Errors
/// The call's errno (`EAGAIN` with `RecvFlags::DONTWAIT`, `EINTR`, ...).
pub(crate) fn recvmsg(
    fd: BorrowedFd<'_>,
    payload: &mut [u8],
    control: &mut [u8],
    flags: RecvFlags,
) -> Result<Message, Errno> {
    let mut iov = libc::iovec {
        iov_base: payload.as_mut_ptr().cast(),
        iov_len: payload.len(),
    };
    // SAFETY: msghdr is plain old data; all zeroes is a valid (empty) value.
    let mut header: libc::msghdr = unsafe { std::mem::zeroed() };
    header.msg_iov = &mut iov;
    header.msg_iovlen = 1;
    header.msg_control = control.as_mut_ptr().cast();
    header.msg_controllen = control.len() as _;
    // SAFETY: `header` points at one iovec over `payload` and at `control`, both valid for
    // writes of the lengths given and alive (borrowed mutably) for the whole call.
    let received = unsafe { libc::recvmsg(fd.as_raw_fd(), &mut header, flags.bits() as _) };
    if received < 0 {
        let errno = Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
        return Err(Errno::from_raw_os_error(errno));
    }
    let written = (header.msg_controllen as usize).min(control.len());
    let mut message = Message {
        bytes: received as usize,
        flags: ReturnFlags::from_bits_retain(header.msg_flags as _),
        fds: Vec::new(),
        credentials: None,
        pidfd: SenderPidfd::NotSent,
    };
    parse_control(&control[..written], &mut message);
    Ok(message)
}

/// The buffers of one datagram of a [`recvmmsg`] batch: its payload and its control
/// messages (sized by [`control_len`]).
#[derive(Debug)]
pub(crate) struct Slot {
    pub payload: Vec<u8>,
    pub control: Vec<u8>,
}

/// `recvmmsg(2)` of up to `slots.len()` datagrams in one call (no timeout), each into its
/// slot, as [`recvmsg`] would one at a time: `messages` gets one [`Message`] per datagram
/// received, in order (slot `i` holds the payload of the `i`th), with every fd the kernel
/// installed for it owned. At least one datagram was received when this returns `Ok`.
/// Without `control` no control buffer is passed (for a peek: the kernel then installs no
/// fd and writes no credentials, and flags `MSG_CTRUNC` when there were some).
///
/// # Errors
/// The call's errno when no datagram was received (`EAGAIN` with `RecvFlags::DONTWAIT`,
/// `EINTR`, ...). An error after the first datagram is reported by the next call.
pub(crate) fn recvmmsg(
    fd: BorrowedFd<'_>,
    slots: &mut [Slot],
    flags: RecvFlags,
    control: bool,
    messages: &mut Vec<Message>,
) -> Result<(), Errno> {
    let mut iovecs: Vec<libc::iovec> = slots
        .iter_mut()
        .map(|slot| libc::iovec {
            iov_base: slot.payload.as_mut_ptr().cast(),
            iov_len: slot.payload.len(),
        })
        .collect();
    let mut headers: Vec<libc::mmsghdr> = iovecs
        .iter_mut()
        .zip(slots.iter_mut())
        .map(|(iov, slot)| {
            // SAFETY: mmsghdr is plain old data; all zeroes is a valid (empty) value.
            let mut header: libc::mmsghdr = unsafe { std::mem::zeroed() };
            header.msg_hdr.msg_iov = iov;
            header.msg_hdr.msg_iovlen = 1;
            if control {
                header.msg_hdr.msg_control = slot.control.as_mut_ptr().cast();
                header.msg_hdr.msg_controllen = slot.control.len() as _;
            }
            header
        })
        .collect();
    // SAFETY: each header points at one iovec over its slot's payload and at its slot's
    // control buffer (or at none: null with length 0), all valid for writes of the lengths
    // given and alive (borrowed mutably, or owned by this frame) for the whole call; vlen is
    // the headers' count and the timeout is null (none).
    let received = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            headers.as_mut_ptr(),
            headers.len() as _,
            flags.bits() as _,
            std::ptr::null_mut(),
        )
    };
    if received < 0 {
        let errno = Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
        return Err(Errno::from_raw_os_error(errno));
    }
    for (header, slot) in headers.iter().zip(slots.iter()).take(received as usize) {
        let written = match control {
            true => header.msg_hdr.msg_controllen.min(slot.control.len()),
            false => 0,
        };
        let mut message = Message {
            bytes: header.msg_len as usize,
            flags: ReturnFlags::from_bits_retain(header.msg_hdr.msg_flags as _),
            fds: Vec::new(),
            credentials: None,
            pidfd: SenderPidfd::NotSent,
        };
        parse_control(&slot.control[..written], &mut message);
        messages.push(message);
    }
    Ok(())
}

/// Walks the control messages the kernel wrote (`CMSG_FIRSTHDR`/`CMSG_NXTHDR` on bytes).
fn parse_control(control: &[u8], message: &mut Message) {
    let mut at = 0;
    while at + HEADER <= control.len() {
        let field = |offset: usize, width: usize| &control[at + offset..at + offset + width];
        let len = usize::from_ne_bytes(
            field(offset_of!(libc::cmsghdr, cmsg_len), size_of::<usize>())
                .try_into()
                .expect("usize"),
        );
        let int = |offset| i32::from_ne_bytes(field(offset, 4).try_into().expect("i32"));
        let level = int(offset_of!(libc::cmsghdr, cmsg_level));
        let kind = int(offset_of!(libc::cmsghdr, cmsg_type));
        if len < DATA {
            break;
        }
        let data = &control[(at + DATA).min(control.len())..(at + len).min(control.len())];
        if level == libc::SOL_SOCKET {
            take(kind, data, message);
        }
        at += cmsg_align(len);
    }
}

/// One `SOL_SOCKET` control message's data.
fn take(kind: libc::c_int, data: &[u8], message: &mut Message) {
    let ints = data
        .chunks_exact(4)
        .map(|c| i32::from_ne_bytes(c.try_into().expect("4 bytes")));
    match kind {
        libc::SCM_RIGHTS => message.fds.extend(ints.map(own)),
        SCM_PIDFD => {
            for value in ints {
                message.pidfd = match value {
                    fd if fd >= 0 => SenderPidfd::Pidfd(own(fd)),
                    error => SenderPidfd::Unavailable(Errno::from_raw_os_error(
                        error.checked_neg().unwrap_or(libc::EIO),
                    )),
                };
            }
        }
        libc::SCM_CREDENTIALS if data.len() >= size_of::<libc::ucred>() => {
            let field = |offset: usize| data[offset..offset + 4].try_into().expect("4 bytes");
            message.credentials = Some(Credentials {
                pid: i32::from_ne_bytes(field(offset_of!(libc::ucred, pid))),
                uid: u32::from_ne_bytes(field(offset_of!(libc::ucred, uid))),
                gid: u32::from_ne_bytes(field(offset_of!(libc::ucred, gid))),
            });
        }
        _ => {}
    }
}

/// Takes ownership of an fd the kernel installed for the datagram being parsed.
fn own(fd: i32) -> OwnedFd {
    // SAFETY: the kernel has just installed `fd` in our table for this datagram (SCM_RIGHTS
    // or SCM_PIDFD, non-negative); nothing else knows it, and each control message is
    // parsed once, so this is its only owner.
    unsafe { OwnedFd::from_raw_fd(fd) }
}

/// `setsockopt(fd, SOL_SOCKET, SO_PASSPIDFD, on)`: every datagram received on `fd` carries
/// `SCM_PIDFD`, a pidfd of its sender (unix(7), Linux 6.5), or no longer does.
///
/// # Errors
/// `ENOPROTOOPT` on kernels without it.
pub(crate) fn set_pass_pidfd(fd: BorrowedFd<'_>, on: bool) -> Result<(), Errno> {
    set_int_option(fd, libc::SO_PASSPIDFD, libc::c_int::from(on))
}

/// `setsockopt(fd, SOL_SOCKET, SO_PEEK_OFF, offset)` (socket(7)): with `offset >= 0`, each
/// `MSG_PEEK` receive starts `offset` bytes into the queue and moves it past what it
/// copied, so successive peeks see successive datagrams (a receive moves it back by the
/// datagram's length); `-1` turns it off (each peek sees the first datagram).
///
/// # Errors
/// `EOPNOTSUPP` or `ENOPROTOOPT` where the socket type or kernel lacks it.
pub(crate) fn set_peek_offset(fd: BorrowedFd<'_>, offset: i32) -> Result<(), Errno> {
    set_int_option(fd, SO_PEEK_OFF, offset)
}

/// `setsockopt(fd, SOL_SOCKET, name, &value, sizeof(int))`, for the int options rustix has
/// no call for.
fn set_int_option(fd: BorrowedFd<'_>, name: libc::c_int, value: libc::c_int) -> Result<(), Errno> {
    // SAFETY: `value` is a live c_int and the length passed is its size; the kernel only
    // reads it.
    let result = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            name,
            (&value as *const libc::c_int).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if result == 0 {
        return Ok(());
    }
    let errno = Error::last_os_error().raw_os_error().unwrap_or(libc::EIO);
    Err(Errno::from_raw_os_error(errno))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_match_the_c_macros() {
        // SAFETY: CMSG_SPACE/CMSG_LEN are pure arithmetic.
        let (space, len) = unsafe { (libc::CMSG_SPACE(12), libc::CMSG_LEN(0)) };
        assert_eq!(cmsg_space(12), space as usize);
        assert_eq!(DATA, len as usize);
    }
}
