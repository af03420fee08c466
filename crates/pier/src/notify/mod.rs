//! sd_notify glue between pier and the `notify-relay` crate (design §4), by concern:
//! [`container`] (what create gives the container, and exec's socket), [`annotations`] (the
//! `org.pier.notify.*` choices), [`session`] (the relay while pier runs) and [`detach`] (the
//! relay process that outlives pier).
//!
//! When pier runs with `NOTIFY_SOCKET` set (a systemd `Type=notify` unit), `create` makes
//! `<root>/<id>/notify/`, which init bind-mounts read-only at `/run/notify`, and the container
//! gets `NOTIFY_SOCKET=/run/notify/notify.sock` (runc's convention). `start` (or `run`) binds
//! the socket in that directory through its fd (no `sun_path` limit) just before releasing the
//! init, and relays: in the foreground for the container's whole life, or until `READY=1` and
//! then from a small detached relay process ([`Session::detach`]).
//!
//! Annotations (all optional; listed in `features` as potentially unsafe):
//! - `org.pier.notify.access`: `all` (default) or `init`, like `NotifyAccess=`.
//! - `org.pier.notify.wait`: `ready` (default), `none`, or a number of seconds.
//! - `org.pier.notify.identity`: `relay`, `main-pid` or `relay-is-main` (docs/notify.md).
//! - `org.pier.notify.fdstore`: `true` (default) or `false`.
//! - `org.pier.notify.mainpidfd`: `auto` (default), `true` or `false`: announce the init also
//!   as `MAINPIDFD=1` with a pidfd (systemd 257+); `auto` does when the manager is 257+.
//! - `org.pier.notify.exec`: `none` (default), `container` or `own`: what `pier exec` gives
//!   its processes by default ([`exec_notify`]; `exec --notify-socket` overrides it).

mod annotations;
mod container;
mod detach;
mod exec;
mod session;

pub use annotations::{
    check_annotations, wait_mode, WaitMode, ANNOTATION_ACCESS, ANNOTATION_EXEC, ANNOTATION_FDSTORE,
    ANNOTATION_IDENTITY, ANNOTATION_MAINPIDFD, ANNOTATION_WAIT,
};
pub use container::{prepare, ContainerSide};
pub use exec::{exec_notify, ExecNotify};
pub use session::{start_session, Session};

/// The directory the container sees, and the socket in it.
pub const CONTAINER_DIR: &str = "/run/notify";
/// `NOTIFY_SOCKET` inside the container.
pub const CONTAINER_SOCKET: &str = "/run/notify/notify.sock";
/// The directory's name inside `<root>/<id>/`.
pub(crate) const HOST_DIR: &str = "notify";
pub(crate) const SOCKET_NAME: &str = "notify.sock";

/// Whether pier was started with a (non-empty) `NOTIFY_SOCKET`.
pub fn requested() -> bool {
    std::env::var_os("NOTIFY_SOCKET").is_some_and(|v| !v.is_empty())
}
