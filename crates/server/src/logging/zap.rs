//! etcd's zap JSON lines: `{"level":"info","ts":"…","caller":"dir/file.rs:12","msg":"…",…}`,
//! with the time as etcd formats it (UTC, up to microseconds, trailing zeros dropped) and the
//! event's fields after the message, numbers and booleans as JSON values.

use super::Output;
use serde_json::Value;
use std::fmt::Write as _;
use std::sync::Arc;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::Context;

pub(super) struct ZapLayer {
    outputs: Arc<Vec<Output>>,
}

impl ZapLayer {
    pub(super) fn new(outputs: Arc<Vec<Output>>) -> ZapLayer {
        ZapLayer { outputs }
    }
}

impl<S: Subscriber> tracing_subscriber::Layer<S> for ZapLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let meta = event.metadata();
        let mut fields = Fields::default();
        event.record(&mut fields);
        let mut line = String::with_capacity(256);
        line.push_str("{\"level\":\"");
        line.push_str(level_name(*meta.level()));
        line.push_str("\",\"ts\":\"");
        timestamp(&mut line, time::OffsetDateTime::now_utc());
        line.push_str("\",\"caller\":");
        let caller = caller(meta.file(), meta.line());
        push_json(&mut line, &Value::String(caller));
        line.push_str(",\"msg\":");
        push_json(&mut line, &Value::String(fields.message));
        for (key, value) in fields.fields {
            line.push(',');
            push_json(&mut line, &Value::String(key));
            line.push(':');
            push_json(&mut line, &value);
        }
        line.push_str("}\n");
        for output in self.outputs.iter() {
            output.write_line(line.as_bytes(), *meta.level());
        }
    }
}

fn push_json(line: &mut String, value: &Value) {
    // Serializing a `Value` into a String cannot fail.
    let _ = write!(line, "{value}");
}

fn level_name(level: Level) -> &'static str {
    match level {
        Level::ERROR => "error",
        Level::WARN => "warn",
        Level::INFO => "info",
        // zap has no trace level.
        Level::DEBUG | Level::TRACE => "debug",
    }
}

/// zap's short caller: the last directory and the file, e.g. `server/etcd.rs:350` for
/// `crates/server/src/etcd.rs`.
fn caller(file: Option<&str>, line: Option<u32>) -> String {
    let Some(file) = file else {
        return "unknown".to_string();
    };
    let parts: Vec<&str> = file
        .split(['/', '\\'])
        .filter(|p| !p.is_empty() && *p != "src")
        .collect();
    let short = match parts.as_slice() {
        [.., dir, name] => format!("{dir}/{name}"),
        [name] => (*name).to_string(),
        [] => file.to_string(),
    };
    match line {
        Some(l) => format!("{short}:{l}"),
        None => short,
    }
}

/// etcd's `2006-01-02T15:04:05.999999Z0700` in UTC.
fn timestamp(out: &mut String, t: time::OffsetDateTime) {
    let _ = write!(
        out,
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    );
    let micros = t.microsecond();
    if micros != 0 {
        let digits = format!("{micros:06}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
}

#[derive(Default)]
struct Fields {
    message: String,
    fields: Vec<(String, Value)>,
}

impl Visit for Fields {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        let text = format!("{value:?}");
        if field.name() == "message" {
            self.message = text;
        } else {
            self.fields
                .push((field.name().to_string(), Value::String(text)));
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message = value.to_string();
        } else {
            self.fields
                .push((field.name().to_string(), Value::String(value.to_string())));
        }
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.fields.push((field.name().to_string(), value.into()));
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.fields.push((field.name().to_string(), value.into()));
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.fields.push((field.name().to_string(), value.into()));
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        let v = serde_json::Number::from_f64(value).map_or(Value::Null, Value::Number);
        self.fields.push((field.name().to_string(), v));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.fields
            .push((field.name().to_string(), Value::String(value.to_string())));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callers_are_shortened_as_zap_does() {
        assert_eq!(
            caller(Some("crates/server/src/etcd.rs"), Some(12)),
            "server/etcd.rs:12"
        );
        assert_eq!(
            caller(Some("crates/server/src/api/kv.rs"), Some(3)),
            "api/kv.rs:3"
        );
        assert_eq!(caller(Some("main.rs"), None), "main.rs");
        assert_eq!(caller(None, Some(1)), "unknown");
    }

    #[test]
    fn timestamps_drop_trailing_zeros() {
        let at = |month, day, h, m, s, milli| {
            time::Date::from_calendar_date(2026, month, day)
                .and_then(|d| d.with_hms_milli(h, m, s, milli))
                .expect("a valid date")
                .assume_utc()
        };
        let mut s = String::new();
        timestamp(&mut s, at(time::Month::December, 6, 21, 5, 9, 120));
        assert_eq!(s, "2026-12-06T21:05:09.12Z");
        let mut s = String::new();
        timestamp(&mut s, at(time::Month::January, 2, 3, 4, 5, 0));
        assert_eq!(s, "2026-01-02T03:04:05Z");
    }
}
