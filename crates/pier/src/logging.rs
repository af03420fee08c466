//! Log records in runc's shapes, and the one-error-per-failed-call rule.
//!
//! `--log FILE` appends records to FILE (otherwise stderr); `--log-format json` writes one
//! `{"level":"error","msg":…,"time":RFC3339}` object per line, the shape containerd and podman
//! parse (design-study §4.6), `text` writes logrus' `time="…" level=… msg="…"`. Into a `--log`
//! file only errors are recorded unless `--debug` is given, because podman reads the whole file
//! as one JSON object; on stderr warnings are shown too (a failed poststart hook, a manager that
//! does not read its notify socket), as runc shows them. Lower layers add context to errors and never log them: `main` logs the one record.
//!
//! The subscriber is [`RuncLog`], a `tracing::Subscriber` that formats each enabled event into
//! one line and writes it with one `write(2)`: records carry no span context, so
//! tracing-subscriber's span registry (allocated at start-up by every invocation) is not needed.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

/// `--log-format`: logrus' text records or runc's JSON ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// What the global flags ask of logging (`--log FILE`, `--log-format`, `--debug`); the CLI
/// layer builds it (`cli::Global::log_settings`), so logging needs nothing above it.
#[derive(Debug, Clone, Copy)]
pub struct Settings<'a> {
    /// `--log`: records go to this file (appended) instead of stderr.
    pub file: Option<&'a Path>,
    /// `--log-format`.
    pub format: LogFormat,
    /// `--debug`: debug records too.
    pub debug: bool,
}

/// Install the global subscriber for this invocation.
///
/// # Errors
/// The `--log` file cannot be opened for appending.
pub fn init(settings: Settings<'_>) -> io::Result<()> {
    let max = match (settings.debug, settings.file) {
        (true, _) => Level::DEBUG,
        (false, Some(_)) => Level::ERROR,
        (false, None) => Level::WARN,
    };
    let out = match settings.file {
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            *log_file() = Some(file);
            Output::File
        }
        None => Output::Stderr,
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = tracing::subscriber::set_global_default(RuncLog {
        max,
        format: settings.format,
        out,
    });
    Ok(())
}

/// The `--log` file, once [`init`] opened it; `None` again after [`close_file_from`].
static LOG_FILE: Mutex<Option<File>> = Mutex::new(None);

fn log_file() -> std::sync::MutexGuard<'static, Option<File>> {
    LOG_FILE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The fd number of the `--log` file, if one is open: a child that closes every fd it was not
/// asked to keep (`sys::clone_child`) keeps this one while it can still log.
pub fn log_fd() -> Option<std::os::fd::RawFd> {
    log_file().as_ref().map(std::os::fd::AsRawFd::as_raw_fd)
}

/// Close the `--log` file if its fd number is `first` or above (below it, the number is one
/// the container was asked to inherit, `--preserve-fds`): a container init does this before it
/// waits on the exec fifo, so no host file is held. Records after it are dropped.
pub fn close_file_from(first: std::os::fd::RawFd) {
    let mut file = log_file();
    if file
        .as_ref()
        .is_some_and(|f| std::os::fd::AsRawFd::as_raw_fd(f) >= first)
    {
        drop(file.take());
    }
}

/// Report the failure of this invocation: exactly one error record, plus the plain message on
/// stderr when records go to a file (so a human running pier by hand sees it too).
pub fn report_failure(settings: Settings<'_>, err: &anyhow::Error) {
    let msg = format!("{err:#}");
    tracing::error!("{msg}");
    if settings.file.is_some() {
        let _ = writeln!(io::stderr(), "pier: {msg}");
    }
}

/// A command line clap refused: one error record in the `--log` file, when argv names one
/// (found by a plain scan, since the parse failed), as runc logs its flag errors.
pub fn record_usage_error(argv: &[String], msg: &str) {
    let value_of = |flag: &str| {
        argv.iter().enumerate().find_map(|(i, a)| {
            let a = a.trim_start_matches('-');
            match a.strip_prefix(flag) {
                Some(rest) if rest.starts_with('=') => Some(rest[1..].to_string()),
                Some("") => argv.get(i + 1).cloned(),
                _ => None,
            }
        })
    };
    let Some(path) = value_of("log") else { return };
    let format = match value_of("log-format").as_deref() {
        Some("json") => LogFormat::Json,
        _ => LogFormat::Text,
    };
    let line = record(format, "error", msg);
    if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = file.write_all(line.as_bytes());
    }
}

/// The subscriber: events up to `max` (`tracing` levels: ERROR < WARN < … < TRACE), in runc's
/// JSON or logrus text shape, one line per event; spans are accepted and ignored.
struct RuncLog {
    max: Level,
    format: LogFormat,
    out: Output,
}

/// Where records go.
enum Output {
    Stderr,
    /// `--log FILE`, opened for appending ([`LOG_FILE`]).
    File,
}

impl RuncLog {
    /// One record line for `event`, newline-terminated.
    fn line(&self, event: &Event<'_>) -> String {
        let mut visitor = MessageVisitor(String::new());
        event.record(&mut visitor);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        record(self.format, &level, &visitor.0)
    }
}

/// The one record formatter: `level` (runc's names: `error`, `warn`, …) and `msg` stamped with
/// the time now, as one newline-terminated line in runc's JSON or logrus text shape.
fn record(format: LogFormat, level: &str, msg: &str) -> String {
    let time = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    match format {
        LogFormat::Json => {
            let record = serde_json::json!({"level": level, "msg": msg, "time": time});
            format!("{record}\n")
        }
        LogFormat::Text => {
            let msg = serde_json::to_string(msg).unwrap_or_default();
            format!("time=\"{time}\" level={level} msg={msg}\n")
        }
    }
}

impl Subscriber for RuncLog {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        *metadata.level() <= self.max
    }

    fn max_level_hint(&self) -> Option<LevelFilter> {
        Some(LevelFilter::from_level(self.max))
    }

    fn new_span(&self, _span: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }

    fn record(&self, _span: &Id, _values: &Record<'_>) {}

    fn record_follows_from(&self, _span: &Id, _follows: &Id) {}

    fn event(&self, event: &Event<'_>) {
        let line = self.line(event);
        // As tracing-subscriber's fmt layer: a record that cannot be written is dropped.
        let _ = match &self.out {
            Output::Stderr => io::stderr().write_all(line.as_bytes()),
            Output::File => match log_file().as_mut() {
                Some(f) => f.write_all(line.as_bytes()),
                None => Ok(()),
            },
        };
    }

    fn enter(&self, _span: &Id) {}

    fn exit(&self, _span: &Id) {}
}

/// Collects an event's message and fields into one line of text.
struct MessageVisitor(String);

impl tracing::field::Visit for MessageVisitor {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn fmt::Debug) {
        use fmt::Write as _;
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            self.0.push_str(&format!(" {}={value:?}", field.name()));
        }
    }
}
