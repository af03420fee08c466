//! The parent <-> child channel: one `SOCK_SEQPACKET` socketpair, one JSON message per packet,
//! typed by direction: the parent's end ([`ParentEnd`]) sends [`ToChild`] and receives
//! [`ToParent`], the child's end ([`ChildEnd`]) the reverse. Nearly a leaf module (it names
//! only the hooks' state): `spawn` (the parent) and `init` (the child) both use it and import
//! nothing of each other's through it.
//!
//! Sequence for `create` (and the create half of `run`):
//!
//! | step | parent (pier)                                   | child (future container init)            |
//! |------|-------------------------------------------------|------------------------------------------|
//! | 1    | `clone3` into the cgroup v2 dir, new namespaces | blocks in `recv`                         |
//! | 2    | v1 cgroups; with a new user namespace its `uid_map` and `gid_map`; rlimits and `oom_score_adj` (`prlimit`, /proc: the init could not raise them in a user namespace); sends [`ToChild::Go`] | |
//! | 3    |                                                 | runs the `init` steps: joins namespaces by path, binds the rootfs and opens the bind sources as pier, then in a user namespace becomes its root (uid/gid 0), then mounts, devices… |
//! | 3a   | with hooks (`Hooks::in_create`): runs prestart, then createRuntime (state `creating`, the init's host pid, cwd the bundle); answers [`ToChild::RuntimeHooksDone`] with that state | sends [`ToParent::RuntimeHooks`], blocks in `recv`; then runs createContainer (cwd the rootfs) and keeps the state for startContainer; then sysctls, masks, pivot_root, identity… |
//! | 3b   | with `process.terminal`: receives the pty master | sends [`ToParent::Console`] with the master fd |
//! | 4    | blocks in `recv`                                | sends [`ToParent::Ready`], or [`ToParent::Error`] and exits 1 |
//! | 5    | writes state.json and the pid file; sends [`ToChild::Committed`] | clears its parent-death signal, answers [`ToParent::Committed`] |
//! | 6    | closes the channel and returns                  | blocks opening `exec.fifo` for writing   |
//! | 7    | (`start`) opens `exec.fifo` for reading, reads  | runs startContainer, writes `0` (go) or `!` and the hook's error, then `execve`s or exits 1 |
//!
//! Sequence for `exec` (no exec fifo: the process runs as soon as it is set up):
//!
//! | step | parent (pier exec)                                      | child (the exec'd process)          |
//! |------|---------------------------------------------------------|-------------------------------------|
//! | 1    | `setns(init pidfd, CLONE_NEWPID[\|CLONE_NEWTIME])`, `clone3`, back to its own | blocks in `recv` |
//! | 2    | writes the pid to every cgroup's `cgroup.procs`; sends [`ToChild::Go`] |                   |
//! | 3    |                                                         | limits; `setns(init pidfd, user\|mnt\|net\|ipc\|uts\|cgroup)`; pty; cwd; identity; executable lookup |
//! | 3b   | with `process.terminal`: receives the pty master        | sends [`ToParent::Console`] with the master fd |
//! | 4    | blocks in `recv`                                        | sends [`ToParent::Ready`] and `execve`s, or [`ToParent::Error`] and exits 1 |
//! | 5    | EOF after Ready (the channel is close-on-exec): started; an Error after Ready: execve failed | |
//!
//! The child never logs its own failure: the parent reports it once, with context. An EOF where
//! a message was expected means the child died; the parent then reports its exit status.

use std::io::{self, IoSlice, IoSliceMut};
use std::marker::PhantomData;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, send, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags,
    SendAncillaryBuffer, SendAncillaryMessage, SendFlags,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::hooks::HookState;

/// Largest message on the channel (an error chain fits comfortably).
const MAX_MESSAGE: usize = 64 * 1024;

/// Messages from pier to the child.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ToChild {
    /// The child's cgroups and id maps are in place: set up the container.
    Go,
    /// The container is recorded (state.json): it may now outlive pier. Until then the child
    /// dies with pier (PR_SET_PDEATHSIG), so a killed create leaves no orphan.
    Committed,
    /// prestart and createRuntime ran: go on (createContainer next). The state is the one
    /// the hooks read, for the hooks the init runs itself.
    RuntimeHooksDone(HookState),
}

/// Messages from the child to pier.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub enum ToParent {
    /// Set-up finished; the child now blocks on the exec fifo.
    Ready,
    /// The container's pty master rides along (SCM_RIGHTS); the payload is the pty's name.
    Console(String),
    /// The parent-death signal is cleared: pier may exit without taking the init along.
    Committed,
    /// Set-up failed: the full error chain, `outer: inner: cause`.
    Error(String),
    /// Namespaces and mounts are made, the old root is still reachable (before pivot_root):
    /// run prestart and createRuntime now (runtime.md "Lifecycle" steps 3 and 4).
    RuntimeHooks,
}

/// One end of the channel: sends `S`, receives `R`.
pub struct Channel<S, R> {
    fd: OwnedFd,
    direction: PhantomData<fn(S) -> R>,
}

/// pier's end: sends [`ToChild`], receives [`ToParent`].
pub type ParentEnd = Channel<ToChild, ToParent>;
/// The child's end: sends [`ToParent`], receives [`ToChild`].
pub type ChildEnd = Channel<ToParent, ToChild>;

impl<S, R> AsFd for Channel<S, R> {
    /// The socket, for the child's list of fds to keep (`sys::close_all_except`).
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// A connected pair (`socketpair(AF_UNIX, SOCK_SEQPACKET|SOCK_CLOEXEC)`).
///
/// # Errors
/// `socketpair(2)` fails.
pub fn pair() -> io::Result<(ParentEnd, ChildEnd)> {
    pair_of()
}

/// A connected pair for another protocol than the init's: the first end sends `A` and
/// receives `B`, the second the reverse (the helper that clones the init inside a joined user
/// namespace reports the init's pid this way, its pidfd attached).
///
/// # Errors
/// `socketpair(2)` fails.
pub fn pair_of<A, B>() -> io::Result<(Channel<A, B>, Channel<B, A>)> {
    let (a, b) = rustix::net::socketpair(
        rustix::net::AddressFamily::UNIX,
        rustix::net::SocketType::SEQPACKET,
        rustix::net::SocketFlags::CLOEXEC,
        None,
    )?;
    Ok((
        Channel {
            fd: a,
            direction: PhantomData,
        },
        Channel {
            fd: b,
            direction: PhantomData,
        },
    ))
}

impl<S: Serialize, R: DeserializeOwned> Channel<S, R> {
    /// Send one message as one packet.
    pub fn send(&self, message: &S) -> io::Result<()> {
        let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
        send(self.fd.as_fd(), &bytes, SendFlags::NOSIGNAL)?;
        Ok(())
    }

    /// Send one message with one fd attached (`SCM_RIGHTS`, unix(7)).
    pub fn send_with_fd(&self, message: &S, fd: BorrowedFd<'_>) -> io::Result<()> {
        let bytes = serde_json::to_vec(message).map_err(io::Error::other)?;
        let fds = [fd];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = SendAncillaryBuffer::new(&mut space);
        control.push(SendAncillaryMessage::ScmRights(&fds));
        sendmsg(
            self.fd.as_fd(),
            &[IoSlice::new(&bytes)],
            &mut control,
            SendFlags::NOSIGNAL,
        )?;
        Ok(())
    }

    /// Receive one message; `Ok(None)` on EOF (the peer closed or died).
    pub fn recv(&self) -> io::Result<Option<R>> {
        Ok(self.recv_with_fd()?.map(|(message, _)| message))
    }

    /// Receive one message and the fd that came with it, if any; `None` once the peer has
    /// closed its end: EOF, or `ECONNRESET` when it exited (or was killed) with messages of
    /// ours still unread in its queue (unix(7): a SOCK_SEQPACKET peer that closes with
    /// unread data resets the connection).
    pub fn recv_with_fd(&self) -> io::Result<Option<(R, Option<OwnedFd>)>> {
        let mut buf = vec![0u8; MAX_MESSAGE];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(1))];
        let mut control = RecvAncillaryBuffer::new(&mut space);
        let n = loop {
            let mut iov = [IoSliceMut::new(&mut buf)];
            match recvmsg(
                self.fd.as_fd(),
                &mut iov,
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            ) {
                Err(rustix::io::Errno::INTR) => continue,
                Err(rustix::io::Errno::CONNRESET) => return Ok(None),
                other => break other?.bytes,
            }
        };
        if n == 0 {
            return Ok(None);
        }
        let mut fd = None;
        for message in control.drain() {
            if let RecvAncillaryMessage::ScmRights(fds) = message {
                fd = fds.into_iter().next();
            }
        }
        let message = serde_json::from_slice(&buf[..n]).map_err(io::Error::other)?;
        Ok(Some((message, fd)))
    }
}
