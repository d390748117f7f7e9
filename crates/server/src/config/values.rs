//! Values as etcd's flags write them: Go durations, booleans and integers.

use std::time::Duration;

/// A duration written as Go writes them (`1h2m3.5s`, `500ms`, `10m`), or bare integer
/// nanoseconds (what etcd's YAML file holds).
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

/// Go's `strconv.ParseBool`: the spellings etcd's boolean flags take.
pub fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("parse error".into()),
    }
}

/// Go's `strconv.ParseUint(s, 0, bits)`: decimal, or `0x`/`0o`/`0b`/leading-`0` prefixed, with
/// `_` between digits only after a prefix.
pub fn go_uint(s: &str, bits: u32) -> Result<u64, String> {
    let (digits, radix) = if let Some(r) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        (r, 16)
    } else if let Some(r) = s.strip_prefix("0o").or_else(|| s.strip_prefix("0O")) {
        (r, 8)
    } else if let Some(r) = s.strip_prefix("0b").or_else(|| s.strip_prefix("0B")) {
        (r, 2)
    } else if s.len() > 1 && s.starts_with('0') {
        (&s[1..], 8)
    } else {
        (s, 10)
    };
    let prefixed = radix != 10;
    if digits.is_empty()
        || (!prefixed && digits.contains('_'))
        || digits.starts_with('_')
        || digits.ends_with('_')
        || digits.contains("__")
    {
        return Err("parse error".into());
    }
    let clean: String = digits.chars().filter(|c| *c != '_').collect();
    if clean.starts_with('+') || clean.starts_with('-') {
        return Err("parse error".into());
    }
    let n = u64::from_str_radix(&clean, radix).map_err(|e| match e.kind() {
        std::num::IntErrorKind::PosOverflow => "value out of range".to_string(),
        _ => "parse error".to_string(),
    })?;
    if bits < 64 && n >> bits != 0 {
        return Err("value out of range".into());
    }
    Ok(n)
}

/// Go's `strconv.ParseInt(s, 0, 64)`.
pub fn go_int(s: &str) -> Result<i64, String> {
    let (negative, magnitude) = match s.strip_prefix('-') {
        Some(m) => (true, m),
        None => (false, s.strip_prefix('+').unwrap_or(s)),
    };
    let n = go_uint(magnitude, 64)?;
    if negative {
        if n > i64::MAX as u64 + 1 {
            return Err("value out of range".into());
        }
        Ok((n as i128).wrapping_neg() as i64)
    } else {
        i64::try_from(n).map_err(|_| "value out of range".to_string())
    }
}
