//! Go-compatible parsing and formatting.
//!
//! etcdctl is a Go program, so the text scripts see (and the input they feed it) follows Go's
//! standard library: `strconv.ParseInt`/`ParseBool`, `time.ParseDuration`/`Duration.String`,
//! `strconv.Quote` (the `%q` verb), `encoding/json` string escaping and go-humanize's byte sizes.
//! These helpers reproduce those byte for byte, error messages included.

use std::fmt::Write as _;
use std::time::Duration;

/// `strconv.Quote`: a double-quoted Go string literal. Invalid UTF-8 bytes become `\xNN`.
pub fn quote(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() + 2);
    out.push('"');
    for chunk in bytes.utf8_chunks() {
        for c in chunk.valid().chars() {
            quote_char(&mut out, c);
        }
        for b in chunk.invalid() {
            let _ = write!(out, "\\x{b:02x}");
        }
    }
    out.push('"');
    out
}

/// `strconv.Quote` of a Rust string.
pub fn quote_str(s: &str) -> String {
    quote(s.as_bytes())
}

fn quote_char(out: &mut String, c: char) {
    match c {
        '"' | '\\' => {
            out.push('\\');
            out.push(c);
        }
        _ if is_print(c) => out.push(c),
        '\x07' => out.push_str("\\a"),
        '\x08' => out.push_str("\\b"),
        '\x0c' => out.push_str("\\f"),
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        '\x0b' => out.push_str("\\v"),
        _ if (c as u32) < 0x20 || c as u32 == 0x7f => {
            let _ = write!(out, "\\x{:02x}", c as u32);
        }
        _ if (c as u32) < 0x10000 => {
            let _ = write!(out, "\\u{:04x}", c as u32);
        }
        _ => {
            let _ = write!(out, "\\U{:08x}", c as u32);
        }
    }
}

/// An approximation of Go's `unicode.IsPrint` without shipping Unicode tables: ASCII is exact,
/// and the non-ASCII code points Go refuses (controls, separators other than ' ', format
/// characters, private use, non-characters) are listed. Unassigned code points print as-is.
pub fn is_print(c: char) -> bool {
    let u = c as u32;
    if u < 0x80 {
        return (0x20..0x7f).contains(&u);
    }
    !matches!(u,
        0x80..=0xa0
        | 0xad
        | 0x600..=0x605
        | 0x61c
        | 0x6dd
        | 0x70f
        | 0x180e
        | 0x1680
        | 0x2000..=0x200f
        | 0x2028..=0x202f
        | 0x205f..=0x2064
        | 0x2066..=0x206f
        | 0x3000
        | 0xd800..=0xf8ff
        | 0xfeff
        | 0xfff9..=0xfffb
        | 0xfffe..=0xffff
        | 0x110bd
        | 0x1bca0..=0x1bca3
        | 0x1d173..=0x1d17a
        | 0xe0001
        | 0xe0020..=0xe007f
        | 0xf0000..)
}

/// Appends `s` as a JSON string the way Go's `encoding/json` does (HTML-safe escaping,
/// U+2028/U+2029 escaped, invalid UTF-8 replaced by `\ufffd`).
pub fn json_string(out: &mut String, s: &[u8]) {
    out.push('"');
    for chunk in s.utf8_chunks() {
        for c in chunk.valid().chars() {
            match c {
                '"' => out.push_str("\\\""),
                '\\' => out.push_str("\\\\"),
                '\n' => out.push_str("\\n"),
                '\r' => out.push_str("\\r"),
                '\t' => out.push_str("\\t"),
                '<' | '>' | '&' | '\u{2028}' | '\u{2029}' => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                _ if (c as u32) < 0x20 => {
                    let _ = write!(out, "\\u{:04x}", c as u32);
                }
                _ => out.push(c),
            }
        }
        for _ in chunk.invalid() {
            out.push_str("\\ufffd");
        }
    }
    out.push('"');
}

#[derive(Debug, PartialEq)]
enum NumError {
    Syntax,
    Range,
}

/// `strconv.ParseInt(s, base, 64)`, with Go's error text.
pub fn parse_int(s0: &str, base: u32) -> Result<i64, String> {
    let fail = |e: NumError| {
        let what = match e {
            NumError::Syntax => "invalid syntax",
            NumError::Range => "value out of range",
        };
        format!("strconv.ParseInt: parsing {}: {what}", quote_str(s0))
    };
    if s0.is_empty() {
        return Err(fail(NumError::Syntax));
    }
    let (neg, s) = match s0.as_bytes()[0] {
        b'+' => (false, &s0[1..]),
        b'-' => (true, &s0[1..]),
        _ => (false, s0),
    };
    let un = parse_uint_raw(s, base).map_err(fail)?;
    const CUTOFF: u64 = 1 << 63;
    if !neg && un >= CUTOFF {
        return Err(fail(NumError::Range));
    }
    if neg && un > CUTOFF {
        return Err(fail(NumError::Range));
    }
    Ok(if neg {
        (un as i64).wrapping_neg()
    } else {
        un as i64
    })
}

/// `strconv.ParseUint(s, base, 64)`, with Go's error text.
pub fn parse_uint(s: &str, base: u32) -> Result<u64, String> {
    parse_uint_raw(s, base).map_err(|e| {
        let what = match e {
            NumError::Syntax => "invalid syntax",
            NumError::Range => "value out of range",
        };
        format!("strconv.ParseUint: parsing {}: {what}", quote_str(s))
    })
}

fn parse_uint_raw(s0: &str, base: u32) -> Result<u64, NumError> {
    if s0.is_empty() {
        return Err(NumError::Syntax);
    }
    let base0 = base == 0;
    let mut s = s0.as_bytes();
    let mut base = base as u64;
    if base0 {
        base = 10;
        if s[0] == b'0' {
            let second = s.get(1).map(|b| b.to_ascii_lowercase());
            if s.len() >= 3 && second == Some(b'b') {
                base = 2;
                s = &s[2..];
            } else if s.len() >= 3 && second == Some(b'o') {
                base = 8;
                s = &s[2..];
            } else if s.len() >= 3 && second == Some(b'x') {
                base = 16;
                s = &s[2..];
            } else {
                base = 8;
                s = &s[1..];
            }
        }
    }
    let cutoff = u64::MAX / base + 1;
    let mut underscores = false;
    let mut n: u64 = 0;
    for &c in s {
        let d = match c {
            b'_' if base0 => {
                underscores = true;
                continue;
            }
            b'0'..=b'9' => (c - b'0') as u64,
            b'a'..=b'z' => (c - b'a') as u64 + 10,
            b'A'..=b'Z' => (c - b'A') as u64 + 10,
            _ => return Err(NumError::Syntax),
        };
        if d >= base {
            return Err(NumError::Syntax);
        }
        if n >= cutoff {
            return Err(NumError::Range);
        }
        n *= base;
        n = n.checked_add(d).ok_or(NumError::Range)?;
    }
    if underscores && !underscore_ok(s0.as_bytes()) {
        return Err(NumError::Syntax);
    }
    Ok(n)
}

/// Go's rule for `_` digit separators (only with base prefix detection, i.e. base 0).
fn underscore_ok(s: &[u8]) -> bool {
    let mut saw = b'^';
    let mut s = s;
    if !s.is_empty() && (s[0] == b'-' || s[0] == b'+') {
        s = &s[1..];
    }
    let mut i = 0;
    let mut hex = false;
    if s.len() >= 2 && s[0] == b'0' && matches!(s[1].to_ascii_lowercase(), b'b' | b'o' | b'x') {
        i = 2;
        saw = b'0';
        hex = s[1].eq_ignore_ascii_case(&b'x');
    }
    while i < s.len() {
        let c = s[i];
        if c.is_ascii_digit() || (hex && matches!(c.to_ascii_lowercase(), b'a'..=b'f')) {
            saw = b'0';
        } else if c == b'_' {
            if saw != b'0' {
                return false;
            }
            saw = b'_';
        } else {
            if saw == b'_' {
                return false;
            }
            saw = b'!';
        }
        i += 1;
    }
    saw != b'_'
}

/// `strconv.ParseBool`.
pub fn parse_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err(format!(
            "strconv.ParseBool: parsing {}: invalid syntax",
            quote_str(s)
        )),
    }
}

/// A Go `time.Duration`: signed nanoseconds.
pub type GoDuration = i64;

/// `time.ParseDuration`, e.g. "2s", "1m30s", "500ms", "-1.5h".
pub fn parse_duration(orig: &str) -> Result<GoDuration, String> {
    let invalid = || format!("time: invalid duration {}", quote_str(orig));
    let mut s = orig.as_bytes();
    let mut neg = false;
    if let Some(&c) = s.first()
        && (c == b'-' || c == b'+')
    {
        neg = c == b'-';
        s = &s[1..];
    }
    if s == b"0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut d: u64 = 0;
    while !s.is_empty() {
        if !(s[0] == b'.' || s[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part; overflow of the leading integer is an invalid duration.
        let pl = s.len();
        let mut v: u64 = 0;
        while let Some(&c) = s.first() {
            if !c.is_ascii_digit() {
                break;
            }
            if v > (1u64 << 63) / 10 {
                return Err(invalid());
            }
            v = v * 10 + (c - b'0') as u64;
            if v > 1 << 63 {
                return Err(invalid());
            }
            s = &s[1..];
        }
        let pre = pl != s.len();
        // Fraction: digits past the precision of u64 are consumed but ignored, as in Go.
        let mut f: u64 = 0;
        let mut scale: f64 = 1.0;
        let mut post = false;
        if s.first() == Some(&b'.') {
            s = &s[1..];
            let pl = s.len();
            let mut overflow = false;
            while let Some(&c) = s.first() {
                if !c.is_ascii_digit() {
                    break;
                }
                if !overflow {
                    if f > (1u64 << 63) / 10 {
                        overflow = true;
                    } else {
                        let y = f * 10 + (c - b'0') as u64;
                        if y > 1 << 63 {
                            overflow = true;
                        } else {
                            f = y;
                            scale *= 10.0;
                        }
                    }
                }
                s = &s[1..];
            }
            post = pl != s.len();
        }
        if !pre && !post {
            return Err(invalid());
        }
        let i = s
            .iter()
            .position(|&c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(s.len());
        if i == 0 {
            return Err(format!(
                "time: missing unit in duration {}",
                quote_str(orig)
            ));
        }
        let u = &s[..i];
        s = &s[i..];
        let unit: u64 = match u {
            b"ns" => 1,
            // "µs" (micro sign) and "μs" (Greek mu), as Go accepts both.
            b"us" | b"\xc2\xb5s" | b"\xce\xbcs" => 1_000,
            b"ms" => 1_000_000,
            b"s" => 1_000_000_000,
            b"m" => 60_000_000_000,
            b"h" => 3_600_000_000_000,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(u),
                    quote_str(orig)
                ));
            }
        };
        if v > (1u64 << 63) / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            v += (f as f64 * (unit as f64 / scale)) as u64;
            if v > 1 << 63 {
                return Err(invalid());
            }
        }
        d += v;
        if d > 1 << 63 {
            return Err(invalid());
        }
    }
    if neg {
        return Ok((d as i64).wrapping_neg());
    }
    if d > (1u64 << 63) - 1 {
        return Err(invalid());
    }
    Ok(d as i64)
}

/// A Go duration as a std `Duration`; negative ones (already expired in Go) become zero.
pub fn to_std(d: GoDuration) -> Duration {
    Duration::from_nanos(d.max(0) as u64)
}

/// `time.Duration.String`, e.g. "1.5s", "2m0s", "850µs", "0s".
pub fn format_duration(d: GoDuration) -> String {
    let neg = d < 0;
    let mut u = d.unsigned_abs();
    let mut out: Vec<u8> = Vec::with_capacity(32);
    // Built backwards, like Go's implementation.
    if u < 1_000_000_000 {
        if u == 0 {
            return "0s".to_string();
        }
        out.push(b's');
        let prec = if u < 1_000 {
            out.push(b'n');
            0
        } else if u < 1_000_000 {
            // "µ" reversed, since the buffer is reversed at the end.
            out.extend_from_slice(&[0xb5, 0xc2]);
            3
        } else {
            out.push(b'm');
            6
        };
        u = fmt_frac(&mut out, u, prec);
        fmt_int(&mut out, u);
    } else {
        out.push(b's');
        u = fmt_frac(&mut out, u, 9);
        fmt_int(&mut out, u % 60);
        u /= 60;
        if u > 0 {
            out.push(b'm');
            fmt_int(&mut out, u % 60);
            u /= 60;
            if u > 0 {
                out.push(b'h');
                fmt_int(&mut out, u);
            }
        }
    }
    if neg {
        out.push(b'-');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

fn fmt_frac(out: &mut Vec<u8>, mut v: u64, prec: usize) -> u64 {
    let mut print = false;
    for _ in 0..prec {
        let digit = (v % 10) as u8;
        print = print || digit != 0;
        if print {
            out.push(b'0' + digit);
        }
        v /= 10;
    }
    if print {
        out.push(b'.');
    }
    v
}

fn fmt_int(out: &mut Vec<u8>, mut v: u64) {
    if v == 0 {
        out.push(b'0');
        return;
    }
    while v > 0 {
        out.push(b'0' + (v % 10) as u8);
        v /= 10;
    }
}

/// go-humanize's `Bytes`: SI units, e.g. "25 kB", "1.5 MB", "9 B".
pub fn humanize_bytes(s: u64) -> String {
    const SIZES: [&str; 7] = ["B", "kB", "MB", "GB", "TB", "PB", "EB"];
    if s < 10 {
        return format!("{s} B");
    }
    let base: f64 = 1000.0;
    let e = ((s as f64).ln() / base.ln()).floor();
    let suffix = SIZES[(e as usize).min(SIZES.len() - 1)];
    let val = ((s as f64) / base.powf(e) * 10.0 + 0.5).floor() / 10.0;
    if val < 10.0 {
        format!("{val:.1} {suffix}")
    } else {
        format!("{val:.0} {suffix}")
    }
}

/// Go's `fmt.Sprint` of a `[]string`: `[a b c]`.
pub fn string_slice(items: &[String]) -> String {
    format!("[{}]", items.join(" "))
}

/// The `\xNN` form etcdctl prints for `--hex`.
pub fn hex_escaped(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 4);
    for b in bytes {
        let _ = write!(out, "\\x{b:02x}");
    }
    out
}

/// Go's `%x` of an `int64`: lowercase hex, a minus sign before negative values.
pub fn hex_i64(v: i64) -> String {
    if v < 0 {
        format!("-{:x}", v.unsigned_abs())
    } else {
        format!("{v:x}")
    }
}

/// Go's `%016x` of an `int64` (how etcdctl prints lease IDs): the sign counts toward the width.
pub fn hex016(v: i64) -> String {
    if v < 0 {
        format!("-{:015x}", v.unsigned_abs())
    } else {
        format!("{v:016x}")
    }
}

/// Go's text of an operating-system error (`syscall.Errno.Error()`): the C library's message
/// with a lowercase first letter ("no such file or directory"). Errors that carry no errno
/// keep Rust's text.
pub fn errno_text(e: &std::io::Error) -> String {
    let Some(code) = e.raw_os_error() else {
        return e.to_string();
    };
    let text = std::io::Error::from_raw_os_error(code).to_string();
    // Rust appends " (os error N)" to the C library's message.
    let text = text
        .strip_suffix(&format!(" (os error {code})"))
        .unwrap_or(&text);
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => format!("errno {code}"),
    }
}

/// A wall-clock timestamp as capnslog prints it ("2006-01-02 15:04:05.000000"), in UTC.
pub fn capnslog_timestamp(now: std::time::SystemTime) -> String {
    let since = now
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = since.as_secs();
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}.{:06}",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60,
        since.subsec_micros()
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errnos_read_like_go() {
        let e = |n| errno_text(&std::io::Error::from_raw_os_error(n));
        assert_eq!(e(2), "no such file or directory");
        assert_eq!(e(13), "permission denied");
        assert_eq!(e(17), "file exists");
        assert_eq!(e(28), "no space left on device");
        let other = std::io::Error::other("stream closed");
        assert_eq!(errno_text(&other), "stream closed");
    }

    #[test]
    fn lease_ids_print_like_go() {
        assert_eq!(hex016(0x694da23537d953be), "694da23537d953be");
        assert_eq!(hex016(0x1234), "0000000000001234");
        assert_eq!(hex016(-1), "-000000000000001");
        assert_eq!(hex_i64(0x694da23537d953be), "694da23537d953be");
        assert_eq!(hex_i64(-26), "-1a");
    }

    #[test]
    fn durations_parse_like_go() {
        assert_eq!(parse_duration("2s"), Ok(2_000_000_000));
        assert_eq!(parse_duration("500ms"), Ok(500_000_000));
        assert_eq!(parse_duration("1m"), Ok(60_000_000_000));
        assert_eq!(parse_duration("1h30m"), Ok(5_400_000_000_000));
        assert_eq!(parse_duration("1.5s"), Ok(1_500_000_000));
        assert_eq!(parse_duration(".5s"), Ok(500_000_000));
        assert_eq!(parse_duration("-1s"), Ok(-1_000_000_000));
        assert_eq!(parse_duration("+3us"), Ok(3_000));
        assert_eq!(parse_duration("3µs"), Ok(3_000));
        assert_eq!(parse_duration("0"), Ok(0));
        assert_eq!(parse_duration("10ns"), Ok(10));
        assert_eq!(
            parse_duration("abc"),
            Err(r#"time: invalid duration "abc""#.to_string())
        );
        assert_eq!(
            parse_duration("1"),
            Err(r#"time: missing unit in duration "1""#.to_string())
        );
        assert_eq!(
            parse_duration("1x"),
            Err(r#"time: unknown unit "x" in duration "1x""#.to_string())
        );
        assert_eq!(
            parse_duration(""),
            Err(r#"time: invalid duration """#.to_string())
        );
        assert_eq!(
            parse_duration("."),
            Err(r#"time: invalid duration ".""#.to_string())
        );
        assert!(parse_duration("9999999999999999999h").is_err());
    }

    #[test]
    fn durations_format_like_go() {
        assert_eq!(format_duration(0), "0s");
        assert_eq!(format_duration(1), "1ns");
        assert_eq!(format_duration(1_500), "1.5µs");
        assert_eq!(format_duration(3_366_041), "3.366041ms");
        assert_eq!(format_duration(1_000_000), "1ms");
        assert_eq!(format_duration(1_000_994_066), "1.000994066s");
        assert_eq!(format_duration(2_000_000_000), "2s");
        assert_eq!(format_duration(60_000_000_000), "1m0s");
        assert_eq!(format_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(format_duration(5_430_500_000_000), "1h30m30.5s");
        assert_eq!(format_duration(-1_500_000_000), "-1.5s");
    }

    #[test]
    fn humanized_sizes_match_go_humanize() {
        assert_eq!(humanize_bytes(0), "0 B");
        assert_eq!(humanize_bytes(9), "9 B");
        assert_eq!(humanize_bytes(10), "10 B");
        assert_eq!(humanize_bytes(999), "999 B");
        assert_eq!(humanize_bytes(1000), "1.0 kB");
        assert_eq!(humanize_bytes(20_480), "20 kB");
        assert_eq!(humanize_bytes(24_576), "25 kB");
        assert_eq!(humanize_bytes(1_500_000), "1.5 MB");
        assert_eq!(humanize_bytes(1_000_000), "1.0 MB");
        assert_eq!(humanize_bytes(82_000_000_000), "82 GB");
    }

    #[test]
    fn ints_parse_like_go() {
        assert_eq!(parse_int("10", 10), Ok(10));
        assert_eq!(parse_int("-10", 10), Ok(-10));
        assert_eq!(parse_int("+7", 10), Ok(7));
        assert_eq!(parse_int("ff", 16), Ok(255));
        assert_eq!(parse_int("0x10", 0), Ok(16));
        assert_eq!(parse_int("010", 0), Ok(8));
        assert_eq!(parse_int("1_000", 0), Ok(1000));
        assert_eq!(parse_int("-9223372036854775808", 10), Ok(i64::MIN));
        assert_eq!(
            parse_int("x", 0),
            Err(r#"strconv.ParseInt: parsing "x": invalid syntax"#.to_string())
        );
        assert_eq!(
            parse_int("0x10", 16),
            Err(r#"strconv.ParseInt: parsing "0x10": invalid syntax"#.to_string())
        );
        assert_eq!(
            parse_int("", 16),
            Err(r#"strconv.ParseInt: parsing "": invalid syntax"#.to_string())
        );
        assert_eq!(
            parse_int("9223372036854775808", 10),
            Err(
                r#"strconv.ParseInt: parsing "9223372036854775808": value out of range"#
                    .to_string()
            )
        );
        assert!(parse_int("1__0", 0).is_err());
        assert!(parse_int("1_0", 10).is_err());
    }

    #[test]
    fn bools_parse_like_go() {
        assert_eq!(parse_bool("true"), Ok(true));
        assert_eq!(parse_bool("F"), Ok(false));
        assert_eq!(
            parse_bool("yes"),
            Err(r#"strconv.ParseBool: parsing "yes": invalid syntax"#.to_string())
        );
    }

    #[test]
    fn quoting_matches_strconv_quote() {
        assert_eq!(quote(b"foo"), r#""foo""#);
        assert_eq!(quote(b"x\ny\n"), r#""x\ny\n""#);
        assert_eq!(quote(b"a\"b\\c"), r#""a\"b\\c""#);
        assert_eq!(quote(b"\x00\x7f\x1b"), r#""\x00\x7f\x1b""#);
        assert_eq!(quote(b"\xff\xfe"), r#""\xff\xfe""#);
        assert_eq!(quote("é☃".as_bytes()), "\"é☃\"");
        assert_eq!(quote("\u{a0}\u{200b}".as_bytes()), r#""\u00a0\u200b""#);
    }

    #[test]
    fn json_strings_escape_like_go() {
        let mut s = String::new();
        json_string(&mut s, b"a<b>&\"\\\n\x01\xff\xe2\x80\xa8");
        assert_eq!(s, r#""a\u003cb\u003e\u0026\"\\\n\u0001\ufffd\u2028""#);
    }

    #[test]
    fn timestamps_are_civil_dates() {
        let t = std::time::UNIX_EPOCH + Duration::from_micros(1_796_190_001_021_801);
        assert_eq!(capnslog_timestamp(t), "2026-12-02 05:40:01.021801");
    }
}
