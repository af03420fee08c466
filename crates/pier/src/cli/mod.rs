//! The command line, runc's: global flags before the subcommand, one struct per subcommand.
//!
//! Callers (containerd's go-runc, conmon, CRI-O, systemd units) send Go-style argv; the
//! [`normalize`] pass rewrites those forms into what clap parses, using clap's own
//! definitions below as the only list of flag names.

pub mod normalize;
pub mod scan;

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `pier [global flags] <command> [flags] <id>`.
#[derive(Debug, Parser)]
#[command(
    name = "pier",
    about = "An OCI container runtime, a drop-in for runc, that relays every sd_notify message",
    disable_version_flag = true
)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    /// `None` only with `--version`; otherwise a usage error is reported.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags that come before the subcommand (runc `main.go`).
#[derive(Debug, Args)]
pub struct Global {
    /// Root directory for container state (tmpfs recommended); $XDG_RUNTIME_DIR/pier when
    /// unprivileged
    #[arg(long, default_value_os_t = crate::rootless::default_root(), value_name = "DIR")]
    pub root: PathBuf,
    /// Append log records to this file instead of stderr
    #[arg(long, value_name = "FILE")]
    pub log: Option<PathBuf>,
    /// Log format: text or json (runc's `{"level","msg","time"}` records)
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log debug records too
    #[arg(long)]
    pub debug: bool,
    /// Interpret cgroupsPath as `slice:prefix:name` and ask systemd for the cgroup
    #[arg(long)]
    pub systemd_cgroup: bool,
    /// Rootless cgroup manager: true, false or auto (auto: euid != 0 or in a user namespace)
    #[arg(long, default_value = "auto", value_name = "true|false|auto",
          value_parser = crate::rootless::parse_flag)]
    pub rootless: crate::rootless::RootlessFlag,
    /// Accepted for runc compatibility and ignored (checkpointing is not supported)
    #[arg(long, hide = true)]
    pub criu: Option<String>,
    /// Print the version (runc's three-line shape)
    #[arg(short = 'v', long)]
    pub version: bool,
}

pub use crate::logging::LogFormat;

impl Global {
    /// What `--log`, `--log-format` and `--debug` ask of [`crate::logging`].
    pub fn log_settings(&self) -> crate::logging::Settings<'_> {
        crate::logging::Settings {
            file: self.log.as_deref(),
            format: self.log_format,
            debug: self.debug,
        }
    }
}

/// The subcommands (runc's names and flags).
///
/// `defer`: each subcommand's flags are defined only when clap reaches that subcommand (or
/// [`normalize`] does), not for all 16 on every call (~160 k instructions, callgrind); names
/// and one-line descriptions are always there, for `pier --help` and the "unrecognized
/// subcommand" error. clap's derive makes an `Args` struct's doc comment the `about` of the
/// command its flags are added to, which, deferred, would replace the variant's description
/// here; so those structs are documented with `#[doc = concat!(..)]`, which rustdoc reads
/// and clap's derive does not.
#[derive(Debug, Subcommand)]
#[command(defer = true)]
pub enum Command {
    /// Create a new specification file (config.json)
    Spec(SpecArgs),
    /// Create a container; its process waits on the exec fifo until `start`
    Create(CreateArgs),
    /// Start the user process of a created container
    Start(StartArgs),
    /// Create and start a container, and wait for it unless --detach
    Run(RunArgs),
    /// Print the OCI state of a container as JSON
    State(IdArgs),
    /// Send a signal to the container's init process
    Kill(KillArgs),
    /// Delete a container and everything it holds
    Delete(DeleteArgs),
    /// List the containers under --root
    List(ListArgs),
    /// Display the processes running inside a container
    Ps(PsArgs),
    /// Pause (freeze) every process of a container
    Pause(IdArgs),
    /// Resume a paused container
    Resume(IdArgs),
    /// Display container events (OOM) and resource usage statistics
    Events(EventsArgs),
    /// Update container resource constraints
    Update(Box<UpdateArgs>),
    /// Print what this runtime supports (runtime-spec features.md) as JSON
    Features,
    /// Execute a new process inside a running container
    Exec(Box<ExecArgs>),
    /// Print the version and exit (same as --version)
    #[command(hide = true)]
    Version,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("`spec` flags.")]
#[derive(Debug, Args)]
pub struct SpecArgs {
    /// Directory to write config.json into
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Write a spec for a rootless container
    #[arg(long)]
    pub rootless: bool,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("A command that takes only a container id.")]
#[derive(Debug, Args)]
pub struct IdArgs {
    /// The container id
    pub id: String,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("`start` flags.")]
#[derive(Debug, Args)]
pub struct StartArgs {
    /// The container id
    pub id: String,
    /// With NOTIFY_SOCKET: wait for READY=1 (`ready`, the default), not at all (`none`), or
    /// at most this many seconds; overrides the org.pier.notify.wait annotation
    #[arg(long, value_name = "ready|none|SECONDS")]
    pub notify_wait: Option<String>,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("`create` flags (runc `create.go`).")]
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// The container id
    pub id: String,
    /// Path to the bundle directory (holding config.json)
    #[arg(short, long, default_value = ".")]
    pub bundle: PathBuf,
    /// Unix socket that receives the pty master when process.terminal is true
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Write the container's init pid (host namespace) to this file
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Use chroot and MS_MOVE instead of pivot_root (for ramfs roots)
    #[arg(long)]
    pub no_pivot: bool,
    /// Do not create a new session keyring for the container
    #[arg(long)]
    pub no_new_keyring: bool,
    /// Pass this many extra fds (3 onwards, after any LISTEN_FDS) to the container
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Accepted for go-runc compatibility: create always returns once the container exists
    #[arg(short, long, hide = true)]
    pub detach: bool,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("`run` flags: create's, plus detach and keep (runc `run.go`).")]
#[derive(Debug, Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub create: CreateArgs,
    /// Keep the container's state after it exits (foreground only)
    #[arg(long)]
    pub keep: bool,
    /// With NOTIFY_SOCKET and --detach: wait for READY=1 (`ready`, the default), not at all
    /// (`none`), or at most this many seconds; overrides the org.pier.notify.wait annotation
    #[arg(long, value_name = "ready|none|SECONDS")]
    pub notify_wait: Option<String>,
    /// Accepted for runc compatibility (pier is a subreaper only while it waits)
    #[arg(long, hide = true)]
    pub no_subreaper: bool,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!(
    "`exec [flags] <id> [command args…]` (runc `exec.go`). Flag parsing stops at the id: the\n",
    "rest is the command, verbatim (the normaliser inserts `--` after the id).",
)]
#[derive(Debug, Args)]
pub struct ExecArgs {
    /// The container id
    pub id: String,
    /// The command and its arguments (ignored with --process)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub command: Vec<String>,
    /// Path to a runtime-spec `process` JSON file describing the process (other process flags are ignored)
    #[arg(short, long, value_name = "FILE")]
    pub process: Option<std::path::PathBuf>,
    /// Return once the process is started instead of waiting for it
    #[arg(short, long)]
    pub detach: bool,
    /// Write the process's host pid to this file
    #[arg(long, value_name = "PATH")]
    pub pid_file: Option<PathBuf>,
    /// Unix socket that receives the pty master (with --tty and --detach)
    #[arg(long, value_name = "PATH")]
    pub console_socket: Option<PathBuf>,
    /// Allocate a pseudo-TTY
    #[arg(short, long)]
    pub tty: bool,
    /// Set an environment variable, KEY=VALUE (repeatable)
    #[arg(short, long, value_name = "KEY=VALUE")]
    pub env: Vec<String>,
    /// Working directory inside the container
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<String>,
    /// User id, and optionally group id: uid[:gid]
    #[arg(short, long, value_name = "UID[:GID]")]
    pub user: Option<String>,
    /// Additional group id (repeatable)
    #[arg(short = 'g', long, value_name = "GID")]
    pub additional_gids: Vec<u32>,
    /// Add a capability to the bounding, effective, permitted and ambient sets (repeatable)
    #[arg(short, long, value_name = "CAP")]
    pub cap: Vec<String>,
    /// Set no_new_privs for the process
    #[arg(long)]
    pub no_new_privs: bool,
    /// Pass this many extra fds (3 onwards) to the process
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub preserve_fds: u32,
    /// Exec even when the container is paused (the process starts frozen)
    #[arg(long)]
    pub ignore_paused: bool,
    /// sd_notify for the process: `container` sets NOTIFY_SOCKET to the container's own
    /// relayed socket (the container must have been started with NOTIFY_SOCKET), `own` to a
    /// socket of this exec's own, relayed to pier's NOTIFY_SOCKET (a unit whose ExecStart is
    /// this exec), `none` (default) sets nothing, as runc; overrides the org.pier.notify.exec
    /// annotation
    #[arg(long, value_name = "container|own|none")]
    pub notify_socket: Option<String>,
    /// With --notify-socket own and --detach: wait for READY=1 (`ready`, the default), not at
    /// all (`none`), or at most this many seconds; overrides the org.pier.notify.wait annotation
    #[arg(long, value_name = "ready|none|SECONDS")]
    pub notify_wait: Option<String>,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("`kill [--all] <id> [signal]` (runc `kill.go`).")]
#[derive(Debug, Args)]
pub struct KillArgs {
    /// The container id
    pub id: String,
    /// Signal, as a number or a name with or without SIG (default TERM)
    #[arg(default_value = "SIGTERM", allow_hyphen_values = true)]
    pub signal: String,
    /// Send the signal to every process of the container
    #[arg(short, long)]
    pub all: bool,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("`delete [--force] <id>` (runc `delete.go`).")]
#[derive(Debug, Args)]
pub struct DeleteArgs {
    /// The container id
    pub id: String,
    /// Kill a running container (SIGKILL) before deleting it
    #[arg(short, long)]
    pub force: bool,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("`list [--format table|json] [--quiet]` (runc `list.go`).")]
#[derive(Debug, Args)]
pub struct ListArgs {
    /// Output format: table or json
    #[arg(short, long, default_value = "table")]
    pub format: ListFormat,
    /// Print only the container ids
    #[arg(short, long)]
    pub quiet: bool,
}

/// `list --format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("`ps [--format table|json] <id> [ps options]` (runc `ps.go`).")]
#[derive(Debug, Args)]
pub struct PsArgs {
    /// Output format: table (the host's ps output, filtered) or json (an array of pids)
    #[arg(short, long, default_value = "table")]
    pub format: ListFormat,
    /// The container id
    pub id: String,
    /// Options passed to ps(1) for the table format (default -ef)
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub ps_args: Vec<String>,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!("`events [--interval DUR] [--stats] <id>` (runc `events.go`).")]
#[derive(Debug, Args)]
pub struct EventsArgs {
    /// The container id
    pub id: String,
    /// Set the stats collection interval (a Go duration: 5s, 100ms, 1m30s)
    #[arg(long, default_value = "5s", value_name = "DURATION")]
    pub interval: String,
    /// Display the container's stats then exit
    #[arg(long)]
    pub stats: bool,
}

// `doc = concat!`, not `///`: see the note on `Command`.
#[doc = concat!(
    "`update [flags] <id>` (runc `update.go`): `-r FILE|-` with runtime-spec LinuxResources\n",
    "JSON, or single-value flags. Memory sizes accept units (`512m`, `1g`); -1 is unlimited.",
)]
#[derive(Debug, Args)]
pub struct UpdateArgs {
    /// The container id
    pub id: String,
    /// Path to a JSON file with the resources to update, or '-' for stdin (other flags are ignored)
    #[arg(short, long, value_name = "FILE")]
    pub resources: Option<PathBuf>,
    /// Per cgroup block IO weight, 10 to 1000
    #[arg(long)]
    pub blkio_weight: Option<u16>,
    /// CPU CFS period (microseconds)
    #[arg(long)]
    pub cpu_period: Option<u64>,
    /// CPU CFS quota (microseconds per period, -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<i64>,
    /// CPU CFS burst (microseconds)
    #[arg(long)]
    pub cpu_burst: Option<u64>,
    /// CPU shares (relative weight vs. other containers)
    #[arg(long)]
    pub cpu_share: Option<u64>,
    /// CPU realtime period (microseconds)
    #[arg(long)]
    pub cpu_rt_period: Option<u64>,
    /// CPU realtime runtime (microseconds per period)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<i64>,
    /// CPU(s) to use
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory node(s) to use
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Obsolete; accepted and ignored
    #[arg(long, hide = true)]
    pub kernel_memory: Option<String>,
    /// Obsolete; accepted and ignored
    #[arg(long, hide = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit (bytes, or with a unit: 512m, 1g; -1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// SCHED_IDLE for the cgroup: 0 or 1
    #[arg(long)]
    pub cpu_idle: Option<i64>,
    /// Memory reservation or soft limit (bytes, or with a unit)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Total memory usage, memory + swap (bytes, or with a unit; -1 for unlimited swap)
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of pids allowed in the container (-1 for none)
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported)
    #[arg(long)]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported)
    #[arg(long)]
    pub mem_bw_schema: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::normalize::normalize;
    use super::Cli;
    use clap::{CommandFactory, FromArgMatches};

    /// What `main` makes of `args`: the parsed command line, or clap's error as printed
    /// (kind, stream, rendered text).
    fn outcome(mut cmd: clap::Command, args: &[&str]) -> String {
        let argv = std::iter::once("pier").chain(args.iter().copied());
        let argv = normalize(&mut cmd, argv.map(String::from).collect());
        match cmd
            .try_get_matches_from_mut(&argv)
            .and_then(|m| Cli::from_arg_matches(&m))
        {
            Ok(cli) => format!("{argv:?} -> {cli:?}"),
            Err(e) => format!(
                "{argv:?} -> {:?} {} {}",
                e.kind(),
                e.use_stderr(),
                e.render()
            ),
        }
    }

    /// Deferring the subcommands' flags (`#[command(defer)]`) changes no outcome: every help
    /// text, usage error and parse is the same as with every subcommand defined up front.
    #[test]
    fn deferred_subcommands_parse_and_fail_as_fully_built_ones() {
        let eager = || {
            let mut cmd = Cli::command();
            cmd.build();
            cmd
        };
        let mut cases: Vec<Vec<&str>> = vec![
            vec![],
            vec!["--help"],
            vec!["-h"],
            vec!["--version"],
            vec!["help"],
            vec!["help", "run"],
            vec!["--help", "run"],
            vec!["no-such-command"],
            vec!["creat", "c1"],
            vec!["--bogus", "run", "c1"],
            vec!["--log-format", "yaml", "list"],
            vec!["--root", "/x", "-debug", "state"],
            vec!["run", "-help"],
            vec!["run", "-b", "/b", "-detach=false", "c1", "--keep"],
            vec![
                "exec", "-e", "A=1", "-cwd", "/t", "c1", "find", "-user", "0",
            ],
            vec!["exec", "--bogus", "c1", "sh"],
            vec!["kill", "c1", "KILL", "extra"],
            vec!["update", "--memory", "-1", "--cpu-quota", "x", "c1"],
            vec!["ps", "c1", "-ef"],
            vec!["list", "--format", "yaml"],
            vec!["version", "extra"],
            vec!["features", "--bogus"],
        ];
        let names: Vec<String> = eager()
            .get_subcommands()
            .map(|s| s.get_name().to_string())
            .collect();
        for name in &names {
            cases.push(vec![name.as_str()]);
            cases.push(vec![name.as_str(), "--help"]);
            cases.push(vec![name.as_str(), "-h"]);
            cases.push(vec![name.as_str(), "--no-such-flag", "c1"]);
            cases.push(vec![name.as_str(), "c1"]);
        }
        for args in &cases {
            assert_eq!(outcome(Cli::command(), args), outcome(eager(), args));
        }
    }
}
