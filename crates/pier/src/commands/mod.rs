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

/// For `create` and `run`: fds 3.. that LISTEN_FDS and `--preserve-fds` pass on must be open
/// in pier's caller, checked before pier opens anything of its own (which would take them).
///
/// # Errors
/// The first fd that is not open.
pub fn check_inherited_fds(cli: &Cli) -> Result<()> {
    let preserve = match &cli.command {
        Some(Command::Create(args)) => args.preserve_fds,
        Some(Command::Run(args)) => args.create.preserve_fds,
        _ => return Ok(()),
    };
    let listen = crate::activation::Activation::from_env().listen_fds;
    for fd in 3..3 + (listen + preserve) as i32 {
        if !crate::sys::fd_is_open(fd) {
            anyhow::bail!("fd {fd} is not open: LISTEN_FDS={listen} and --preserve-fds {preserve} pass fds 3 onwards");
        }
    }
    Ok(())
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
        foreground,
    }
}

/// Run the parsed command line; returns the process exit status.
///
/// # Errors
/// Whatever the command fails with; `main` reports it once.
pub fn dispatch(cli: &Cli) -> Result<u8> {
    let global = &cli.global;
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
