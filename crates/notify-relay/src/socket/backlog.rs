//! The bounded queue of datagrams the host's service manager has not taken yet.
//!
//! When the manager does not read (its socket's receive queue is full, `EAGAIN` on a
//! non-blocking send), the relay keeps what it would have sent here, in order, and goes on
//! reading the container's socket, so a container's `sd_notify()` never waits for a stalled
//! manager. The queue holds at most [`BACKLOG_MAX`] datagrams and [`BACKLOG_BYTES`] of
//! payload: past that the oldest datagram
//! that is not a `READY=1` is dropped (counted, and logged once per stall), so the relay's
//! memory stays bounded while `READY=1`, the one message a manager waits for, is never lost.

use std::collections::VecDeque;
use std::os::fd::{AsFd, BorrowedFd};

use crate::Outgoing;

/// Most datagrams kept while the manager does not read.
pub const BACKLOG_MAX: usize = 16384;

/// Most payload bytes kept (1024 datagrams of the 4 KiB maximum).
pub const BACKLOG_BYTES: usize = 4 << 20;

/// Datagrams waiting for the manager, and what had to be dropped.
#[derive(Debug, Default)]
pub struct Backlog {
    queue: VecDeque<Outgoing>,
    bytes: usize,
    dropped: usize,
    dropped_in_stall: usize,
}

/// Whether `out` carries a `READY=1` line (never dropped from the backlog).
pub fn is_ready(out: &Outgoing) -> bool {
    out.payload
        .split(|b| *b == b'\n')
        .any(|line| line == b"READY=1")
}

impl Backlog {
    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Datagrams waiting.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// At [`BACKLOG_MAX`] datagrams or [`BACKLOG_BYTES`].
    pub fn is_full(&self) -> bool {
        self.queue.len() >= BACKLOG_MAX || self.bytes >= BACKLOG_BYTES
    }

    /// Datagrams dropped because the backlog was full, since the relay started.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// Queue `out` last. When full, the oldest non-`READY=1` datagram (possibly `out`
    /// itself) is dropped; a `READY=1` is kept even past the bound.
    pub fn push(&mut self, out: Outgoing) {
        if self.is_full() {
            if let Some(at) = self.queue.iter().position(|o| !is_ready(o)) {
                let lost = self.queue.remove(at).expect("in range");
                self.bytes -= lost.payload.len();
                self.note_drop(&lost);
            }
            if self.is_full() && !is_ready(&out) {
                self.note_drop(&out);
                return;
            }
        }
        self.bytes += out.payload.len();
        self.queue.push_back(out);
    }

    fn note_drop(&mut self, lost: &Outgoing) {
        if self.dropped_in_stall == 0 {
            tracing::warn!(
                kept = self.queue.len(),
                payload = %lost.text(),
                "notify: the service manager is not reading and the backlog is full; dropping the oldest datagrams (never READY=1)"
            );
        }
        self.dropped += 1;
        self.dropped_in_stall += 1;
    }

    /// The fds the waiting datagrams carry (`FDSTORE=1`, barriers), e.g. for a process that
    /// closes every other fd and then takes the backlog over ([`crate::Upstream::set_backlog`]).
    pub fn fds(&self) -> impl Iterator<Item = BorrowedFd<'_>> {
        self.queue
            .iter()
            .flat_map(|o| o.fds.iter().map(AsFd::as_fd))
    }

    /// The first waiting datagram.
    pub fn front(&self) -> Option<&Outgoing> {
        self.queue.front()
    }

    /// Take the first waiting datagram to send it; [`Backlog::put_back`] if it could not be.
    pub fn take_front(&mut self) -> Option<Outgoing> {
        let out = self.queue.pop_front()?;
        self.bytes -= out.payload.len();
        Some(out)
    }

    /// Return a datagram taken by [`Backlog::take_front`] to the head of the queue.
    pub fn put_back(&mut self, out: Outgoing) {
        self.bytes += out.payload.len();
        self.queue.push_front(out);
    }

    /// Remove the first waiting datagram (it was sent).
    pub fn pop_sent(&mut self) {
        self.take_front();
        self.sent();
    }

    /// A datagram left the backlog: when that emptied it after drops, say how many were
    /// dropped during the stall.
    pub fn sent(&mut self) {
        if self.queue.is_empty() && self.dropped_in_stall > 0 {
            tracing::warn!(
                dropped = self.dropped_in_stall,
                "notify: the service manager reads again; datagrams dropped while it did not"
            );
            self.dropped_in_stall = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(text: &str) -> Outgoing {
        Outgoing {
            payload: text.as_bytes().to_vec(),
            ..Default::default()
        }
    }

    #[test]
    fn bounded_oldest_dropped_ready_kept() {
        let mut b = Backlog::default();
        b.push(out("STATUS=first"));
        b.push(out("STATUS=x\nREADY=1"));
        for i in 0..BACKLOG_MAX + 10 {
            b.push(out(&format!("X_SEQ={i}")));
        }
        assert_eq!(b.len(), BACKLOG_MAX);
        assert_eq!(b.dropped(), 12);
        assert_eq!(
            b.front().unwrap().text(),
            "STATUS=x\nREADY=1",
            "READY=1 kept, oldest gone"
        );
        b.pop_sent();
        assert_eq!(b.front().unwrap().text(), "X_SEQ=11");
        // A full queue of READY=1 still takes another READY=1.
        let mut r = Backlog::default();
        for _ in 0..BACKLOG_MAX + 1 {
            r.push(out("READY=1"));
        }
        assert_eq!((r.len(), r.dropped()), (BACKLOG_MAX + 1, 0));
        r.push(out("STATUS=late"));
        assert_eq!((r.len(), r.dropped()), (BACKLOG_MAX + 1, 1));
        assert!(!is_ready(&out("READY=10")) && is_ready(&out("A=1\nREADY=1")));
        // The byte bound: 4 KiB datagrams fill it after 1024.
        let mut big = Backlog::default();
        let payload = "X=".to_string() + &"y".repeat(4094);
        for _ in 0..1030 {
            big.push(out(&payload));
        }
        assert_eq!((big.len(), big.dropped()), (BACKLOG_BYTES / 4096, 6));
    }
}
