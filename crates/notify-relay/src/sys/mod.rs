//! Every `unsafe` in `notify-relay`: receiving with `SCM_PIDFD` and in batches
//! (`recvmmsg`), which rustix 1.1 lacks.
//!
//! rustix 1.1 knows neither `SO_PASSPIDFD` nor `SCM_PIDFD` (unix(7), Linux 6.5): its
//! `RecvAncillaryBuffer::drain` skips control messages it does not know, so a pidfd the
//! kernel installed for a datagram would stay open in our fd table forever. The listener
//! therefore receives through [`recvmsg`] here, which parses every control message that can
//! carry an fd (`SCM_RIGHTS`, `SCM_PIDFD`) and hands each fd out as an [`OwnedFd`], and
//! through [`recvmmsg`], the same for a batch of datagrams in one system call (rustix has
//! `sendmmsg`, which the upstream uses, but no `recvmmsg`), and `SO_PEEK_OFF`, with which one
//! `recvmmsg(MSG_PEEK)` looks at a batch of datagrams before they are received.
//!
//! The rule (the crate root has `#![deny(unsafe_code)]`; only this module allows it): every
//! `unsafe` block has a `// SAFETY:` line, and nothing exported from here has a precondition
//! its caller could break: no raw fd goes in or out.
#![allow(unsafe_code)]

mod recv;

pub(crate) use recv::{
    control_len, recvmmsg, recvmsg, set_pass_pidfd, set_peek_offset, Message, SenderPidfd, Slot,
};
