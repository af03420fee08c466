//! Waiting for a peer to hang up, bounded: the end of `sd_notify_barrier(3)` (the manager
//! closes its end of the barrier pipe) and of a vsock connection (the peer's EOF). A leaf both
//! [`super::upstream`] and the vsock transport use, so neither imports the other.

use std::os::fd::BorrowedFd;
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec};
use rustix::io::Errno;

/// Polls `fd` until `POLLHUP` (true) or until `timeout` has passed (false).
pub(crate) fn wait_for_hangup(fd: BorrowedFd<'_>, timeout: Duration) -> rustix::io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let left = Timespec::try_from(left).map_err(|_| Errno::INVAL)?;
        let mut fds = [PollFd::from_borrowed_fd(fd, PollFlags::IN)];
        match rustix::event::poll(&mut fds, Some(&left)) {
            Ok(0) => return Ok(false),
            Ok(_) if fds[0].revents().contains(PollFlags::HUP) => return Ok(true),
            Ok(_) => {
                // Data on a barrier pipe: nobody should write; drain it and keep waiting.
                let mut sink = [0u8; 64];
                rustix::io::read(fd, &mut sink)?;
            }
            Err(Errno::INTR) => {}
            Err(e) => return Err(e),
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
    }
}
