//! Logging as etcd does it: `--logger zap` writes one JSON object per line (`level`, `ts`,
//! `caller`, `msg`, then the event's fields) to the `--log-outputs` (stderr, stdout, files, or
//! the systemd journal), at `--log-level`. `--logger capnslog` (etcd 3.4's old default) gives
//! human-readable lines instead.
//!
//! Owns: turning the configuration into a `tracing` subscriber. Must not: decide what is
//! logged; the events are where the work is.

mod journal;
mod zap;

use crate::config::{Config, ConfigError};
use std::io::Write;
use std::sync::Arc;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

pub const DEFAULT_OUTPUT: &str = "default";
pub const JOURNAL_OUTPUT: &str = "systemd/journal";

/// Where log lines go.
pub(crate) enum Output {
    Stderr,
    Stdout,
    File(parking_lot::Mutex<std::fs::File>),
    Journal(journal::Journal),
}

impl Output {
    /// Writes one whole line (with its newline) in one call, so lines from threads never mix.
    fn write_line(&self, line: &[u8], level: tracing::Level) {
        // A log line that cannot be written has nowhere to be reported.
        let _ = match self {
            Output::Stderr => std::io::stderr().lock().write_all(line),
            Output::Stdout => std::io::stdout().lock().write_all(line),
            Output::File(f) => f.lock().write_all(line),
            Output::Journal(j) => j.send(line, level),
        };
    }
}

/// etcd's rules for `--log-outputs`, with its errors.
pub(crate) fn check_outputs(names: &[String]) -> Result<(), String> {
    if names.len() > 1 && names.iter().any(|n| n == DEFAULT_OUTPUT) {
        return Err(format!(
            "multi logoutput for {DEFAULT_OUTPUT:?} is not supported yet"
        ));
    }
    if names.len() > 1 && names.iter().any(|n| n == JOURNAL_OUTPUT) {
        return Err("cannot combine 'systemd/journal' with other log outputs".to_string());
    }
    Ok(())
}

/// The outputs `--log-outputs` names, opened.
pub(crate) fn outputs(config: &Config) -> Result<Vec<Output>, ConfigError> {
    let names = crate::config::split_list(&config.log_outputs);
    let names = if names.is_empty() {
        vec![DEFAULT_OUTPUT.to_string()]
    } else {
        names
    };
    check_outputs(&names).map_err(ConfigError::Invalid)?;
    names
        .iter()
        .map(|name| match name.as_str() {
            DEFAULT_OUTPUT | "stderr" => Ok(Output::Stderr),
            "stdout" => Ok(Output::Stdout),
            JOURNAL_OUTPUT => journal::Journal::connect()
                .map(Output::Journal)
                .map_err(ConfigError::Invalid),
            path => std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map(|f| Output::File(parking_lot::Mutex::new(f)))
                .map_err(|e| ConfigError::Invalid(format!("cannot open log output {path}: {e}"))),
        })
        .collect()
}

/// `--log-level` as a `tracing` filter; `CAIRN_LOG` (an `EnvFilter` directive) overrides it.
fn filter(config: &Config) -> EnvFilter {
    let level = match config.log_level.as_str() {
        "debug" => "debug",
        "warn" => "warn",
        "error" | "dpanic" | "panic" | "fatal" => "error",
        _ => "info",
    };
    EnvFilter::try_from_env("CAIRN_LOG").unwrap_or_else(|_| {
        // raft-rs is chatty at info (Cairn logs leader changes itself); its warnings and
        // errors still come through.
        EnvFilter::new(format!("{level},raft=warn"))
    })
}

/// Installs the process's subscriber as the configuration says.
pub fn init(config: &Config) -> Result<(), ConfigError> {
    let outputs = outputs(config)?;
    let filter = filter(config);
    match config.logger.as_str() {
        "zap" => tracing_subscriber::registry()
            .with(filter)
            .with(zap::ZapLayer::new(Arc::new(outputs)))
            .try_init(),
        "capnslog" => {
            let outputs = Arc::new(outputs);
            tracing_subscriber::registry()
                .with(filter)
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_ansi(false)
                        .with_writer(Lines { outputs }),
                )
                .try_init()
        }
        other => {
            return Err(ConfigError::Invalid(format!(
                "unknown logger option {other:?}"
            )));
        }
    }
    .map_err(|e| ConfigError::Invalid(format!("cannot set up logging: {e}")))
}

/// Makes a [`LineWriter`] per event, knowing the event's level (the journal's priority).
struct Lines {
    outputs: Arc<Vec<Output>>,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter::new(self.outputs.clone(), tracing::Level::INFO)
    }

    fn make_writer_for(&'a self, meta: &tracing::Metadata<'_>) -> LineWriter {
        LineWriter::new(self.outputs.clone(), *meta.level())
    }
}

/// Collects what the text formatter writes for one event, then hands it to every output as a
/// line.
struct LineWriter {
    outputs: Arc<Vec<Output>>,
    level: tracing::Level,
    buf: Vec<u8>,
}

impl LineWriter {
    fn new(outputs: Arc<Vec<Output>>, level: tracing::Level) -> LineWriter {
        LineWriter {
            outputs,
            level,
            buf: Vec::with_capacity(256),
        }
    }
}

impl Write for LineWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.buf.is_empty() {
            for o in self.outputs.iter() {
                o.write_line(&self.buf, self.level);
            }
        }
    }
}
