//! One module per subcommand; each prints runc-shaped output and returns the exit status.

mod create;
mod delete;
mod events;
mod exec;
mod features;
mod kill;
mod list;
mod pause;
mod ps;
mod resume;
mod run;
mod spec;
mod start;
mod state;
mod update;

use anyhow::Result;

use crate::cli::{Cli, Command, CreateArgs, Global};
use crate::container::CreateOptions;

/// The version text, runc's three-line shape (`runc version`, `commit:`, `spec:`).
pub fn version_text() -> String {
    format!(
        "pier version {}\ncommit: {}\nspec: 1.2.0\n",
        env!("CARGO_PKG_VERSION"),
        option_env!("PIER_COMMIT").unwrap_or("unknown")
    )
}

/// For `create`, `run` and `exec`: fds 3.. that LISTEN_FDS (not for exec) and
/// `--preserve-fds` pass on must be open in pier's caller, checked before pier opens anything
/// of its own (which would take them, and the container would get pier's fd).
///
/// # Errors
/// The first fd that is not open; for exec as runc reports an exec failure (status 255).
pub fn check_inherited_fds(cli: &Cli) -> Result<()> {
    let listen = || crate::activation::Activation::from_env().listen_fds;
    let (passed, what) = match &cli.command {
        Some(Command::Create(args)) => (listen(), args.preserve_fds),
        Some(Command::Run(args)) => (listen(), args.create.preserve_fds),
        Some(Command::Exec(args)) => {
            return check_open(0, args.preserve_fds).map_err(exec::failed);
        }
        _ => return Ok(()),
    };
    check_open(passed, what)
}

/// fds 3 to 3 + `listen` + `preserve` - 1 are open.
fn check_open(listen: u32, preserve: u32) -> Result<()> {
    for fd in 3..3 + (listen + preserve) as i32 {
        if !crate::sys::fd_is_open(fd) {
            let passed = match listen {
                0 => format!("--preserve-fds {preserve}"),
                _ => format!("LISTEN_FDS={listen} and --preserve-fds {preserve}"),
            };
            anyhow::bail!("fd {fd} is not open: {passed} pass fds 3 onwards");
        }
    }
    Ok(())
}

/// Before argv is parsed: for `create`, `run` and `exec`, re-execute pier from a sealed copy
/// of its binary at once ([`crate::sealed_exe::early`], the CVE-2019-5736 class), so that the
/// parse and the rest of start-up run once. Returns in the process that goes on.
pub fn seal_own_binary_early(argv: &[String]) {
    let scanned = crate::cli::scan::scan(argv);
    crate::sealed_exe::early(scanned.command.as_deref(), &scanned.root);
}

/// For `create`, `run` and `exec`, the commands that fork processes into a container: make
/// sure pier runs from a sealed copy of its binary ([`crate::sealed_exe`]), re-executing it
/// now if [`seal_own_binary_early`] did not. Other commands return at once.
///
/// # Errors
/// No sealed copy can be made or executed, or the re-executed binary is not sealed.
pub fn seal_own_binary(cli: &Cli) -> Result<()> {
    match &cli.command {
        Some(Command::Create(_) | Command::Run(_) | Command::Exec(_)) => {
            crate::sealed_exe::reexec(&cli.global.root).map(drop)
        }
        _ => Ok(()),
    }
}

/// The create flags as [`CreateOptions`] (also for `run`; `foreground` is a `run` that waits).
fn create_options<'a>(
    global: &'a Global,
    args: &'a CreateArgs,
    foreground: bool,
) -> CreateOptions<'a> {
    CreateOptions {
        root: &global.root,
        id: &args.id,
        bundle: &args.bundle,
        console_socket: args.console_socket.as_deref(),
        pid_file: args.pid_file.as_deref(),
        no_pivot: args.no_pivot,
        no_new_keyring: args.no_new_keyring,
        preserve_fds: args.preserve_fds,
        systemd_cgroup: global.systemd_cgroup,
        rootless_cgroups: crate::rootless::uses_rootless_cgroups(global.rootless),
        foreground,
    }
}

/// Run the parsed command line; returns the process exit status.
///
/// # Errors
/// Whatever the command fails with; `main` reports it once.
pub fn dispatch(cli: &Cli) -> Result<u8> {
    let global = &cli.global;
    crate::rootless::prepare_root(&global.root)?;
    let Some(command) = &cli.command else {
        if global.version {
            print!("{}", version_text());
            return Ok(0);
        }
        anyhow::bail!("no command given: see `pier --help`");
    };
    match command {
        Command::Version => {
            print!("{}", version_text());
            Ok(0)
        }
        Command::Spec(args) => spec::run(args).map(|_| 0),
        Command::Create(args) => create::run(global, args).map(|_| 0),
        Command::Start(args) => start::run(global, args),
        Command::Run(args) => run::run(global, args),
        Command::State(args) => state::run(global, &args.id).map(|_| 0),
        Command::Kill(args) => kill::run(global, args).map(|_| 0),
        Command::Delete(args) => delete::run(global, args).map(|_| 0),
        Command::List(args) => list::run(global, args).map(|_| 0),
        Command::Ps(args) => ps::run(global, args).map(|_| 0),
        Command::Pause(args) => pause::run(global, &args.id).map(|_| 0),
        Command::Resume(args) => resume::run(global, &args.id).map(|_| 0),
        Command::Events(args) => events::run(global, args).map(|_| 0),
        Command::Update(args) => update::run(global, args).map(|_| 0),
        Command::Features => features::run().map(|_| 0),
        Command::Exec(args) => exec::run(global, args),
    }
}
