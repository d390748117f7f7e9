//! Values as etcd's flags and config file write them: Go durations, YAML scalars and lists
//! read as flag text.

use serde::Deserialize;
use std::time::Duration;

/// A YAML scalar read as text: etcd's config file takes `auto-compaction-retention: 1` and
/// `auto-compaction-retention: "1h"` alike.
pub(super) fn scalar_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::Deserialize;
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Number(n) => Ok(n.to_string()),
        other => Err(serde::de::Error::custom(format!(
            "expected a number or a string, got {other:?}"
        ))),
    }
}

/// A YAML list read as a comma-separated flag value: etcd's config file takes
/// `log-outputs: [stderr, /var/log/etcd.log]`, and a plain string too.
pub(super) fn list_as_string<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    use serde::Deserialize;
    match serde_yaml::Value::deserialize(d)? {
        serde_yaml::Value::String(s) => Ok(s),
        serde_yaml::Value::Sequence(items) => items
            .into_iter()
            .map(|v| match v {
                serde_yaml::Value::String(s) => Ok(s),
                other => Err(serde::de::Error::custom(format!(
                    "expected a string in the list, got {other:?}"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|v| v.join(",")),
        other => Err(serde::de::Error::custom(format!(
            "expected a list or a string, got {other:?}"
        ))),
    }
}

/// A duration written as Go writes them (`1h2m3.5s`, `500ms`, `10m`); in YAML also integer
/// nanoseconds, which is what etcd's config file expects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GoDuration(pub Duration);

impl GoDuration {
    fn from_nanos(nanos: u64) -> Result<GoDuration, String> {
        if nanos > i64::MAX as u64 {
            return Err(format!("invalid duration {nanos}ns: out of range"));
        }
        Ok(GoDuration(Duration::from_nanos(nanos)))
    }
}

impl std::str::FromStr for GoDuration {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
            let nanos = s.parse::<u64>().unwrap_or(u64::MAX);
            return GoDuration::from_nanos(nanos);
        }
        let mut total = 0f64;
        let mut rest = s;
        if rest.is_empty() {
            return Err("empty duration".into());
        }
        while !rest.is_empty() {
            let num_len = rest
                .find(|c: char| !(c.is_ascii_digit() || c == '.'))
                .ok_or_else(|| format!("missing unit in duration {s:?}"))?;
            let n: f64 = rest[..num_len]
                .parse()
                .map_err(|_| format!("invalid duration {s:?}"))?;
            rest = &rest[num_len..];
            let unit_len = rest
                .find(|c: char| c.is_ascii_digit() || c == '.')
                .unwrap_or(rest.len());
            let scale = match &rest[..unit_len] {
                "ns" => 1e-9,
                "us" | "µs" => 1e-6,
                "ms" => 1e-3,
                "s" => 1.0,
                "m" => 60.0,
                "h" => 3600.0,
                u => return Err(format!("unknown unit {u:?} in duration {s:?}")),
            };
            total += n * scale;
            rest = &rest[unit_len..];
        }
        // Go keeps durations in an int64 of nanoseconds (about 292 years) and refuses more.
        if !total.is_finite() || total * 1e9 > i64::MAX as f64 {
            return Err(format!("invalid duration {s:?}: out of range"));
        }
        Duration::try_from_secs_f64(total)
            .map(GoDuration)
            .map_err(|e| format!("invalid duration {s:?}: {e}"))
    }
}

impl std::fmt::Display for GoDuration {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}s", self.0.as_secs_f64())
    }
}

impl<'de> Deserialize<'de> for GoDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Raw {
            Nanos(u64),
            Text(String),
        }
        match Raw::deserialize(d)? {
            Raw::Nanos(n) => GoDuration::from_nanos(n).map_err(serde::de::Error::custom),
            Raw::Text(t) => t.parse().map_err(serde::de::Error::custom),
        }
    }
}
