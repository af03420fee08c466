//! Log records in runc's shapes, and the one-error-per-failed-call rule.
//!
//! `--log FILE` appends records to FILE (otherwise stderr); `--log-format json` writes one
//! `{"level":"error","msg":…,"time":RFC3339}` object per line, the shape containerd and podman
//! parse (design-study §4.6), `text` writes logrus' `time="…" level=… msg="…"`. Only errors
//! are recorded unless `--debug` is given, because podman reads the whole file as one JSON
//! object. Lower layers add context to errors and never log them: `main` logs the one record.

use std::fmt;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::sync::Mutex;
use std::time::SystemTime;

use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::cli::{Global, LogFormat};

/// Install the global subscriber for this invocation.
///
/// # Errors
/// The `--log` file cannot be opened for appending.
pub fn init(global: &Global) -> io::Result<()> {
    let level = if global.debug { Level::DEBUG } else { Level::ERROR };
    let format = RuncFormat(global.log_format);
    let builder = tracing_subscriber::fmt()
        .with_max_level(level)
        .event_format(format);
    let result = match &global.log {
        Some(path) => {
            let file = OpenOptions::new().create(true).append(true).open(path)?;
            builder.with_writer(Mutex::new(file)).try_init()
        }
        None => builder.with_writer(io::stderr).try_init(),
    };
    // A second init (tests) keeps the first subscriber; that is fine.
    drop(result);
    Ok(())
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

/// The event formatter: runc's JSON or logrus text shape.
struct RuncFormat(LogFormat);

impl<S, N> FormatEvent<S, N> for RuncFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let mut visitor = MessageVisitor(String::new());
        event.record(&mut visitor);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        let time = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
        match self.0 {
            LogFormat::Json => {
                let record = serde_json::json!({"level": level, "msg": visitor.0, "time": time});
                writeln!(writer, "{record}")
            }
            LogFormat::Text => {
                let msg = serde_json::to_string(&visitor.0).map_err(|_| fmt::Error)?;
                writeln!(writer, "time=\"{time}\" level={level} msg={msg}")
            }
        }
    }
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
