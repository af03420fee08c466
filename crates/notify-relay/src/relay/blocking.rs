//! Driving a [`Relay`] with its sockets: [`pump`] for embedders with their own event loop,
//! [`run`] for callers without one.

use std::os::fd::BorrowedFd;
use std::time::Duration;

use rustix::event::{PollFd, PollFlags};
use rustix::io::Errno;

use super::Relay;
use crate::socket::RECV_BATCH;
use crate::{Listener, Outgoing, Recv, RelayError, Upstream};

/// Most datagrams one [`pump`] call handles, so a flood cannot starve the caller's other fds.
pub const PUMP_BUDGET: usize = 256;

/// How long [`run`] waits for the upstream to acknowledge its final `BARRIER=1`
/// (`systemd-notify --ready` waits 5 s too).
pub const FINAL_BARRIER_TIMEOUT: Duration = Duration::from_secs(5);

/// What one [`pump`] call did. Counts are datagrams.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pumped {
    /// Datagrams read from the listener, including rejected ones.
    pub received: usize,
    /// Datagrams sent upstream.
    pub forwarded: usize,
    /// Datagrams of which nothing was left to forward (rejected, or every line dropped).
    pub dropped: usize,
    /// Datagrams that should have been forwarded but were not: no upstream, or the send
    /// failed (logged at warn level).
    pub unsent: usize,
    /// A forwarded datagram carried `READY=1`.
    pub ready: bool,
    /// The listener's queue was empty when the call returned (`EAGAIN`); otherwise the
    /// [`PUMP_BUDGET`] ran out and the socket is still readable.
    pub drained: bool,
}

/// What [`run`] did over the container's life.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Datagrams read, including rejected ones.
    pub received: usize,
    /// Datagrams sent upstream.
    pub forwarded: usize,
    /// Datagrams with nothing to forward.
    pub dropped: usize,
    /// Datagrams that could not be sent.
    pub unsent: usize,
    /// Some datagram carried `READY=1`.
    pub ready: bool,
    /// The final upstream barrier: `None` if none was sent (no upstream or nothing
    /// forwarded), else whether it completed within [`FINAL_BARRIER_TIMEOUT`].
    pub final_barrier: Option<bool>,
}

impl Summary {
    fn add(&mut self, pumped: Pumped) {
        self.received += pumped.received;
        self.forwarded += pumped.forwarded;
        self.dropped += pumped.dropped;
        self.unsent += pumped.unsent;
        self.ready |= pumped.ready;
    }
}

/// Receives and relays what is queued on `listener` now, up to [`PUMP_BUDGET`] datagrams,
/// without blocking on the listener (sends block at most the upstream's send timeout).
/// Call it whenever the listener's fd polls readable. Bad datagrams and failed sends are
/// logged and counted; they never end the pumping.
///
/// Datagrams are received in batches ([`Listener::recv_many`], one `recvmmsg(2)`), decided
/// in order by `relay`, and what a batch forwards is sent in order with as few `sendmmsg(2)`
/// calls as the manager's queue allows ([`Upstream::enqueue_all`]).
///
/// # Errors
/// [`RelayError::Io`] only when the listener itself fails to receive.
pub fn pump(
    listener: &mut Listener,
    mut upstream: Option<&mut Upstream>,
    relay: &mut Relay,
) -> Result<Pumped, RelayError> {
    let mut pumped = Pumped::default();
    let mut batch = Vec::with_capacity(RECV_BATCH);
    while pumped.received < PUMP_BUDGET {
        listener.recv_many(PUMP_BUDGET - pumped.received, &mut batch)?;
        if batch.is_empty() {
            pumped.drained = true;
            break;
        }
        // Each forwarding datagram's outgoing datagrams, tagged with its place in `ready`.
        let mut outgoing = Vec::new();
        let mut ready = Vec::new();
        for recv in batch.drain(..) {
            pumped.received += 1;
            let datagram = match recv {
                Recv::Datagram(datagram) => datagram,
                Recv::Rejected(reason) => {
                    tracing::debug!(%reason, "notify: dropped datagram");
                    pumped.dropped += 1;
                    continue;
                }
                Recv::WouldBlock => continue,
            };
            let outcome = relay.on_datagram(datagram);
            if outcome.forward.is_none() {
                pumped.dropped += 1;
                continue;
            }
            let forwarding = ready.len();
            ready.push(outcome.ready);
            outgoing.extend(outcome.into_datagrams().map(|out| (forwarding, out)));
        }
        let mut sent = vec![true; ready.len()];
        send_all(upstream.as_deref_mut(), outgoing, &mut sent);
        for (ok, ready) in sent.into_iter().zip(ready) {
            match ok {
                true => pumped.forwarded += 1,
                false => pumped.unsent += 1,
            }
            pumped.ready |= ready;
        }
    }
    Ok(pumped)
}

/// Sends the datagrams in order (each tagged with the received datagram it forwards); marks
/// `sent[tag]` false for any that could not be sent.
fn send_all(upstream: Option<&mut Upstream>, datagrams: Vec<(usize, Outgoing)>, sent: &mut [bool]) {
    let Some(upstream) = upstream else {
        if !datagrams.is_empty() {
            tracing::debug!("notify: no upstream, datagram discarded");
        }
        for (tag, _) in datagrams {
            sent[tag] = false;
        }
        return;
    };
    let (tags, outs): (Vec<usize>, Vec<Outgoing>) = datagrams.into_iter().unzip();
    for (index, error, out) in upstream.enqueue_all(outs) {
        tracing::warn!(%error, payload = %out.text(), "notify: forwarding failed");
        sent[tags[index]] = false;
    }
}

/// Relays until the container's init exits, for callers without an event loop.
///
/// Polls `listener` and `init_pidfd` (a pidfd of the init, pidfd_open(2): readable once it
/// has exited, even as a zombie). Calls `on_ready` after each batch that forwarded
/// `READY=1`. When the init has exited, drains the socket, then sends a final `BARRIER=1`
/// upstream (bounded by [`FINAL_BARRIER_TIMEOUT`]) so systemd has processed everything
/// before the caller exits and stops being attributable.
///
/// # Errors
/// [`RelayError::Io`] if polling or receiving fails; datagram problems are never errors.
pub fn run(
    listener: &mut Listener,
    mut upstream: Option<&mut Upstream>,
    relay: &mut Relay,
    init_pidfd: BorrowedFd<'_>,
    mut on_ready: impl FnMut(),
) -> Result<Summary, RelayError> {
    let mut summary = Summary::default();
    let mut exited = false;
    while !exited {
        let backlogged = upstream
            .as_deref()
            .filter(|u| u.backlog() > 0)
            .and_then(|u| u.poll_fd());
        let (readable, init_exited, writable) = wait(listener, init_pidfd, backlogged)?;
        exited = init_exited;
        if writable {
            if let Some(up) = upstream.as_deref_mut() {
                if let Err(error) = up.flush() {
                    tracing::warn!(%error, "notify: forwarding failed");
                }
            }
        }
        if readable || exited {
            // After the init's exit: drain until the queue is empty.
            loop {
                let pumped = pump(listener, upstream.as_deref_mut(), relay)?;
                summary.add(pumped);
                if pumped.ready {
                    on_ready();
                }
                if pumped.drained || !exited {
                    break;
                }
            }
        }
    }
    if let Some(upstream) = upstream.filter(|_| summary.forwarded > 0) {
        let completed = upstream
            .barrier(FINAL_BARRIER_TIMEOUT)
            .unwrap_or_else(|error| {
                tracing::warn!(%error, "notify: final barrier failed");
                false
            });
        if !completed {
            tracing::warn!("notify: upstream did not acknowledge the final barrier");
        }
        summary.final_barrier = Some(completed);
    }
    Ok(summary)
}

/// Blocks until the listener is readable, the init has exited or (with a backlog) the
/// upstream socket is writable: (readable, exited, writable).
fn wait(
    listener: &Listener,
    init_pidfd: BorrowedFd<'_>,
    upstream: Option<BorrowedFd<'_>>,
) -> Result<(bool, bool, bool), RelayError> {
    loop {
        let mut fds = vec![
            PollFd::new(listener, PollFlags::IN),
            PollFd::from_borrowed_fd(init_pidfd, PollFlags::IN),
        ];
        if let Some(fd) = upstream {
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::OUT));
        }
        match rustix::event::poll(&mut fds, None) {
            Ok(_) => {
                let writable = fds.get(2).is_some_and(|f| !f.revents().is_empty());
                return Ok((
                    !fds[0].revents().is_empty(),
                    !fds[1].revents().is_empty(),
                    writable,
                ));
            }
            Err(Errno::INTR) => continue,
            Err(e) => return Err(RelayError::io("poll notify socket and init pidfd", e)),
        }
    }
}
