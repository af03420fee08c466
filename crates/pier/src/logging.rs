//! Log records in runc's shapes, and the one-error-per-failed-call rule.
//!
//! `--log FILE` appends records to FILE (otherwise stderr); `--log-format json` writes one
//! `{"level":"error","msg":…,"time":RFC3339}` object per line, the shape containerd and podman
//! parse (design-study §4.6), `text` writes logrus' `time="…" level=… msg="…"`. Only errors
//! are recorded unless `--debug` is given, because podman reads the whole file as one JSON
//! object. Lower layers add context to errors and never log them: `main` logs the one record.
//!
//! The subscriber is [`RuncLog`], a `tracing::Subscriber` that formats each enabled event into
//! one line and writes it with one `write(2)`: records carry no span context, so
//! tracing-subscriber's span registry (allocated at start-up by every invocation) is not needed.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::level_filters::LevelFilter;
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

use crate::cli::{Global, LogFormat};

/// Install the global subscriber for this invocation.
///
/// # Errors
/// The `--log` file cannot be opened for appending.
pub fn init(global: &Global) -> io::Result<()> {
    let max = if global.debug {
        Level::DEBUG
    } else {
        Level::ERROR
    };
    let out = match &global.log {
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            let _ = LOG_FD.set(std::os::fd::AsRawFd::as_raw_fd(&file));
            Output::File(Mutex::new(file))
        }
        None => Output::Stderr,
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    let _ = tracing::subscriber::set_global_default(RuncLog {
        max,
        format: global.log_format,
        out,
    });
    Ok(())
}

/// The `--log` file's fd number, set once by [`init`].
static LOG_FD: std::sync::OnceLock<std::os::fd::RawFd> = std::sync::OnceLock::new();

/// The fd number of the `--log` file, if one is open: a container init keeps it while it
/// can still log, then closes it before it waits on the exec fifo (no host file held).
pub fn log_fd() -> Option<std::os::fd::RawFd> {
    LOG_FD.get().copied()
}

/// Report the failure of this invocation: exactly one error record, plus the plain message on
/// stderr when records go to a file (so a human running pier by hand sees it too).
pub fn report_failure(global: &Global, err: &anyhow::Error) {
    let msg = format!("{err:#}");
    tracing::error!("{msg}");
    if global.log.is_some() {
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
    let json = value_of("log-format").as_deref() == Some("json");
    let time = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    let line = if json {
        serde_json::json!({"level": "error", "msg": msg, "time": time}).to_string()
    } else {
        format!(
            "time=\"{time}\" level=error msg={}",
            serde_json::Value::from(msg)
        )
    };
    if let Ok(mut file) = OpenOptions::new().create(true).append(true).open(path) {
        let _ = writeln!(file, "{line}");
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
    /// `--log FILE`, opened for appending.
    File(Mutex<File>),
}

impl RuncLog {
    /// One record line for `event`, newline-terminated.
    fn line(&self, event: &Event<'_>) -> String {
        let mut visitor = MessageVisitor(String::new());
        event.record(&mut visitor);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let time = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        match self.format {
            LogFormat::Json => {
                let record = serde_json::json!({"level": level, "msg": visitor.0, "time": time});
                format!("{record}\n")
            }
            LogFormat::Text => {
                let msg = serde_json::to_string(&visitor.0).unwrap_or_default();
                format!("time=\"{time}\" level={level} msg={msg}\n")
            }
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
            Output::File(file) => match file.lock() {
                Ok(mut f) => f.write_all(line.as_bytes()),
                Err(_) => Ok(()),
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
