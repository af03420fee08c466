//! The detached relay: a helper process that relays for the container's whole life after
//! `start`/`run -d` return ([`Session::detach`]).

use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd};

use anyhow::{Context, Result};
use notify_relay::{Identity, Relay, Upstream};
use rustix::fs::{Mode, OFlags};

use super::Session;

impl Session {
    /// Hand the relaying over to a detached process that lives until the init exits and the
    /// socket is drained: a fork (no exec), in a new session, stdio on /dev/null, every fd
    /// closed but the listener and the init's pidfd, and the host socket reconnected, so an
    /// engine waiting for EOF on pier's pipes is never held. With [`Identity::RelayIsMain`]
    /// the relay starts only after this process, still the unit's main pid, has told the host
    /// that the relay is the main pid now ([`Session::hand_over_main_pid`]).
    pub fn detach(mut self, init_pidfd: BorrowedFd<'_>) -> Result<()> {
        let pidfd: OwnedFd = init_pidfd
            .try_clone_to_owned()
            .context("dup the init pidfd")?;
        // The detached relay reconnects: what waits for the manager goes now (bounded).
        if let Some(up) = self.upstream.as_mut() {
            let _ = up.flush_for(notify_relay::socket::SEND_TIMEOUT);
        }
        let (hold, go) =
            rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).context("pipe")?;
        // The relay keeps stdio (put on /dev/null), the listener, the init's pidfd, `hold`, and
        // the fds of the datagrams still waiting for the manager (it sends them on).
        let mut keep = vec![
            0,
            1,
            2,
            self.listener.as_fd().as_raw_fd(),
            pidfd.as_raw_fd(),
            hold.as_raw_fd(),
        ];
        // The relay moved into the child keeps its MAINPIDFD= pidfd for a later READY=1, and
        // the directory of its own socket file, to remove it at the end.
        keep.extend(self.relay.main_pidfd().map(|fd| fd.as_raw_fd()));
        keep.extend(self.socket_file.as_ref().map(|f| f.dir.as_raw_fd()));
        if let Some(up) = self.upstream.as_mut() {
            let backlog = up.take_backlog();
            keep.extend(backlog.fds().map(|fd| fd.as_raw_fd()));
            up.set_backlog(backlog);
        }
        let relay = crate::sys::fork_helper(&keep, || match self.relay_detached(pidfd, hold) {
            Ok(()) => 0,
            Err(_) => 1,
        })
        .context("fork the notify relay")?;
        // The closure owned `hold` and the pidfd's copy: both are closed here now.
        self.hand_over_main_pid(relay.pid);
        drop(go); // EOF: the relay may start
        Ok(())
    }

    /// [`Identity::RelayIsMain`]: this process is the main pid systemd knows (it started us,
    /// or we announced ourselves with READY=1) and is about to exit, so announce the detached
    /// relay as `MAINPID=` with our own credentials, the only ones `NotifyAccess=main` accepts,
    /// and wait (bounded) until the host has processed it (sd_notify(3), `MAINPID=`).
    fn hand_over_main_pid(&mut self, relay_pid: i32) {
        if self.relay.config().identity != Identity::RelayIsMain {
            return;
        }
        if let Some(up) = self.upstream.as_mut() {
            let out = notify_relay::Outgoing {
                payload: format!("MAINPID={relay_pid}").into_bytes(),
                ..Default::default()
            };
            if let Err(e) = up.send(&out) {
                tracing::warn!("notify: could not announce the detached relay as MAINPID: {e}");
            }
        }
        self.barrier();
    }

    /// In the forked child: detach at once (so pier's stdio is released as pier exits), wait
    /// for EOF on `hold` (the parent's hand-over is done), then relay until the init exits.
    fn relay_detached(&mut self, pidfd: OwnedFd, hold: OwnedFd) -> Result<()> {
        // Not kept: its fd is closed already.
        std::mem::forget(self.ready_ack.take());
        // A relay made before the fork knows the parent's pid as its own: if it has yet to
        // announce MAINPID= (no READY so far), RelayIsMain must name this process instead.
        let mut fresh = Relay::new(*self.relay.config());
        if fresh.wants_sender_pidfds() {
            fresh = fresh.with_init_pidfd(pidfd.as_fd());
        }
        if let Some(main) = self.relay.main_pidfd() {
            fresh = fresh.with_main_pidfd(main.try_clone_to_owned()?);
        }
        let mut relay = if self.relay.main_pid_announced() {
            std::mem::replace(&mut self.relay, fresh)
        } else {
            fresh
        };
        let address = self.upstream.as_ref().map(|u| u.address().clone());
        // What the manager has not taken yet goes on from the new connection, in order; the
        // fds it carries stayed open (`detach` kept them).
        let mut upstream = self.upstream.take();
        let backlog = upstream.as_mut().map(Upstream::take_backlog);
        std::mem::forget(upstream); // its fd was closed with the others not kept
        let _ = rustix::process::setsid();
        let devnull = rustix::fs::open("/dev/null", OFlags::RDWR | OFlags::CLOEXEC, Mode::empty())?;
        for fd in 0..3 {
            crate::sys::dup_onto_stdio(devnull.as_fd(), fd)?;
        }
        drop(devnull);
        let listener = &mut self.listener;
        let mut byte = [0u8; 1];
        while matches!(
            rustix::io::read(&hold, &mut byte),
            Ok(1) | Err(rustix::io::Errno::INTR)
        ) {}
        drop(hold);
        let mut upstream = address.and_then(|a| Upstream::connect(&a).ok());
        if let (Some(up), Some(backlog)) = (upstream.as_mut(), backlog) {
            up.set_backlog(backlog);
        }
        let relayed = notify_relay::run(
            listener,
            upstream.as_mut(),
            &mut relay,
            pidfd.as_fd(),
            || {},
        );
        if let Some(file) = &self.socket_file {
            file.remove();
        }
        relayed?;
        Ok(())
    }
}
