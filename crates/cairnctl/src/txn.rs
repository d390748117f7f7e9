//! The `txn` input language, as etcdctl reads it from stdin:
//!
//! ```text
//! mod("key1") > "0"          <- compares, one per line, ended by an empty line
//!
//! put key1 "overwrote-key1"  <- success requests (put/get/del with their flags), empty line
//!
//! put key1 "created-key1"    <- failure requests, empty line
//!
//! ```
//!
//! Every line, the last included, must end with a newline (etcdctl fails with "EOF" otherwise).
//! Compares follow Go's `fmt.Sscanf(rest, "%q) %s %q")` and request lines etcdctl's `Argify`
//! word splitting, so the same input is accepted or refused with the same message.

use crate::cli::TxnRequestLine;
use crate::exit::Exit;
use crate::flags::{DelOpts, GetOpts, PutOpts};
use crate::gofmt;
use crate::kvops;
use bytes::Bytes;
use cairn_proto::etcdserverpb::{
    Compare, RequestOp, TxnRequest,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op::Request,
};
use clap::Parser as _;
use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::os::unix::ffi::OsStringExt as _;

/// Reads a whole transaction from `input`; with `interactive`, prints etcdctl's section prompts
/// to `prompt` before each section.
pub fn read_txn(
    input: &mut dyn BufRead,
    interactive: bool,
    prompt: &mut dyn Write,
) -> Result<TxnRequest, Exit> {
    let mut say = |s: &str| {
        if interactive {
            let _ = writeln!(prompt, "{s}");
            let _ = prompt.flush();
        }
    };
    say("compares:");
    let mut compare = Vec::new();
    while let Some(line) = next_line(input)? {
        compare.push(parse_compare(&line)?);
    }
    say("success requests (get, put, del):");
    let success = read_ops(input)?;
    say("failure requests (get, put, del):");
    let failure = read_ops(input)?;
    Ok(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn read_ops(input: &mut dyn BufRead) -> Result<Vec<RequestOp>, Exit> {
    let mut ops = Vec::new();
    while let Some(line) = next_line(input)? {
        ops.push(parse_request(&line)?);
    }
    Ok(ops)
}

/// The next line, trimmed; `None` for the empty line that ends a section. A line without its
/// newline is an error, as with Go's `ReadString('\n')`.
fn next_line(input: &mut dyn BufRead) -> Result<Option<Vec<u8>>, Exit> {
    let mut buf = Vec::new();
    input
        .read_until(b'\n', &mut buf)
        .map_err(|e| Exit::invalid_input(e.to_string()))?;
    if buf.last() != Some(&b'\n') {
        return Err(Exit::invalid_input("EOF"));
    }
    let line = trim_space(&buf);
    Ok(if line.is_empty() {
        None
    } else {
        Some(line.to_vec())
    })
}

/// Go's `strings.TrimSpace` (ASCII whitespace and Unicode spaces at both ends).
fn trim_space(b: &[u8]) -> &[u8] {
    const UNICODE_SPACES: &[char] = &[
        '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}', '\u{2001}', '\u{2002}', '\u{2003}', '\u{2004}',
        '\u{2005}', '\u{2006}', '\u{2007}', '\u{2008}', '\u{2009}', '\u{200a}', '\u{2028}',
        '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
    ];
    let mut s = b;
    loop {
        let before = s.len();
        while let Some((&c, rest)) = s.split_first() {
            if !matches!(c, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b' ') {
                break;
            }
            s = rest;
        }
        while let Some((&c, rest)) = s.split_last() {
            if !matches!(c, b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r' | b' ') {
                break;
            }
            s = rest;
        }
        for sp in UNICODE_SPACES {
            let mut enc = [0u8; 4];
            let enc = sp.encode_utf8(&mut enc).as_bytes();
            if let Some(rest) = s.strip_prefix(enc) {
                s = rest;
            }
            if let Some(rest) = s.strip_suffix(enc) {
                s = rest;
            }
        }
        if s.len() == before {
            return s;
        }
    }
}

/// Go's `fmt` scanning notion of a space.
fn is_scan_space(c: char) -> bool {
    matches!(c as u32,
        0x09..=0x0d | 0x20 | 0x85 | 0xa0 | 0x1680 | 0x2000..=0x200a | 0x2028 | 0x2029 | 0x202f
        | 0x205f | 0x3000)
}

/// What `fmt.Sscanf(rest, "%q) %s %q", &key, &op, &val)` stores before it stops: the count of
/// values scanned and the values (an unscanned one stays empty).
#[derive(Debug, Default, PartialEq)]
struct Scanned {
    n: usize,
    key: Vec<u8>,
    op: String,
    val: Vec<u8>,
}

fn scan_compare(rest: &str) -> Scanned {
    let chars: Vec<char> = rest.chars().collect();
    let mut i = 0;
    let mut out = Scanned::default();
    let skip_space = |i: &mut usize| {
        while *i < chars.len() && is_scan_space(chars[*i]) {
            *i += 1;
        }
    };
    // A space in a Sscanf format needs one or more spaces in the input, or its end.
    let format_space = |i: &mut usize| -> bool {
        match chars.get(*i) {
            None => true,
            Some(&c) if is_scan_space(c) => {
                while *i < chars.len() && is_scan_space(chars[*i]) {
                    *i += 1;
                }
                true
            }
            Some(_) => false,
        }
    };

    skip_space(&mut i);
    let Some(key) = scan_quoted(&chars, &mut i) else {
        return out;
    };
    out.key = key;
    out.n = 1;
    if chars.get(i) != Some(&')') {
        return out;
    }
    i += 1;
    if !format_space(&mut i) {
        return out;
    }
    skip_space(&mut i);
    if i >= chars.len() {
        return out;
    }
    let start = i;
    while i < chars.len() && !is_scan_space(chars[i]) {
        i += 1;
    }
    out.op = chars[start..i].iter().collect();
    out.n = 2;
    if !format_space(&mut i) {
        return out;
    }
    skip_space(&mut i);
    if let Some(val) = scan_quoted(&chars, &mut i) {
        out.val = val;
        out.n = 3;
    }
    out
}

/// The `%q` scan verb: a back-quoted raw string or a double-quoted Go string literal.
fn scan_quoted(chars: &[char], i: &mut usize) -> Option<Vec<u8>> {
    let quote = *chars.get(*i)?;
    *i += 1;
    match quote {
        '`' => {
            let start = *i;
            while *chars.get(*i)? != '`' {
                *i += 1;
            }
            let s: String = chars[start..*i].iter().collect();
            *i += 1;
            Some(s.into_bytes())
        }
        '"' => {
            let mut lit = String::from('"');
            loop {
                let c = *chars.get(*i)?;
                *i += 1;
                lit.push(c);
                if c == '\\' {
                    // Only the character right after a backslash can itself be a quote.
                    lit.push(*chars.get(*i)?);
                    *i += 1;
                } else if c == '"' {
                    break;
                }
            }
            unquote(&lit)
        }
        _ => None,
    }
}

/// Go's `strconv.Unquote` for a double-quoted literal. Returns bytes: `\x` escapes may produce
/// invalid UTF-8, which Go strings (and etcd keys) allow.
pub fn unquote(lit: &str) -> Option<Vec<u8>> {
    let inner = lit.strip_prefix('"')?.strip_suffix('"')?;
    if inner.contains('\n') {
        return None;
    }
    let mut out = Vec::with_capacity(inner.len());
    let mut it = inner.chars().peekable();
    let hex = |it: &mut std::iter::Peekable<std::str::Chars>, n: usize| -> Option<u32> {
        let mut v = 0u32;
        for _ in 0..n {
            v = v * 16 + it.next()?.to_digit(16)?;
        }
        Some(v)
    };
    while let Some(c) = it.next() {
        if c == '"' {
            return None;
        }
        if c != '\\' {
            let mut buf = [0u8; 4];
            out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            continue;
        }
        let e = it.next()?;
        let simple = match e {
            'a' => Some(7u8),
            'b' => Some(8),
            'f' => Some(12),
            'n' => Some(b'\n'),
            'r' => Some(b'\r'),
            't' => Some(b'\t'),
            'v' => Some(11),
            '\\' => Some(b'\\'),
            '"' => Some(b'"'),
            _ => None,
        };
        if let Some(b) = simple {
            out.push(b);
            continue;
        }
        match e {
            'x' => out.push(hex(&mut it, 2)? as u8),
            'u' | 'U' => {
                let v = hex(&mut it, if e == 'u' { 4 } else { 8 })?;
                let c = char::from_u32(v)?;
                let mut buf = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
            }
            '0'..='7' => {
                let mut v = e.to_digit(8)?;
                for _ in 0..2 {
                    v = v * 8 + it.next()?.to_digit(8)?;
                }
                if v > 255 {
                    return None;
                }
                out.push(v as u8);
            }
            _ => return None,
        }
    }
    Some(out)
}

/// One compare line, e.g. `mod("k1") > "0"` or `value("k") = "v"`.
pub fn parse_compare(line: &[u8]) -> Result<Compare, Exit> {
    // Go's scanner reads runes, so invalid UTF-8 reaches the parser as U+FFFD.
    let line = String::from_utf8_lossy(line);
    let Some((target, rest)) = line.split_once('(') else {
        return Err(Exit::invalid_input(format!("malformed comparison: {line}")));
    };
    let sc = scan_compare(rest);
    if sc.n != 3 {
        return Err(Exit::invalid_input(format!(
            "malformed comparison: {line}; got {target}({}) {} {}",
            gofmt::quote(&sc.key),
            sc.op,
            gofmt::quote(&sc.val)
        )));
    }
    let val_str = String::from_utf8_lossy(&sc.val);
    let int = |base: u32| {
        gofmt::parse_int(&val_str, base)
            .map_err(|_| Exit::invalid_input(format!("invalid txn compare request: {line}")))
    };
    let (target, union) = match target {
        "ver" | "version" => (CompareTarget::Version, TargetUnion::Version(int(10)?)),
        "c" | "create" => (CompareTarget::Create, TargetUnion::CreateRevision(int(10)?)),
        "m" | "mod" => (CompareTarget::Mod, TargetUnion::ModRevision(int(10)?)),
        "val" | "value" => (
            CompareTarget::Value,
            TargetUnion::Value(Bytes::from(sc.val.clone())),
        ),
        "lease" => (CompareTarget::Lease, TargetUnion::Lease(int(16)?)),
        _ => {
            return Err(Exit::invalid_input(format!(
                "malformed comparison: {line} (unknown target {target})"
            )));
        }
    };
    let result = match sc.op.as_str() {
        "=" => CompareResult::Equal,
        "!=" => CompareResult::NotEqual,
        ">" => CompareResult::Greater,
        "<" => CompareResult::Less,
        // etcdctl panics here ("Unknown result op"); an input error is kinder.
        other => {
            return Err(Exit::invalid_input(format!(
                "malformed comparison: {line} (unknown operator {other})"
            )));
        }
    };
    Ok(Compare {
        result: result as i32,
        target: target as i32,
        key: Bytes::from(sc.key),
        range_end: Bytes::new(),
        target_union: Some(union),
    })
}

/// etcdctl's `Argify`: words split on whitespace, where `"..."` is a Go string literal and
/// `'...'` is taken verbatim. Mirrors the regexp `"(?:[^"\\]|\\.)*"|'[^']*'|[^'"\s]\S*[^'"\s]?`.
pub fn argify(line: &[u8]) -> Result<Vec<Vec<u8>>, Exit> {
    let is_space = |b: u8| matches!(b, b'\t' | b'\n' | b'\x0c' | b'\r' | b' ');
    let n = line.len();
    let mut args = Vec::new();
    let mut i = 0;
    while i < n {
        match line[i] {
            b'"' => {
                let mut j = i + 1;
                let mut end = None;
                while j < n {
                    match line[j] {
                        b'\\' if j + 1 < n && line[j + 1] != b'\n' => j += 2,
                        b'\\' => break,
                        b'"' => {
                            end = Some(j);
                            break;
                        }
                        _ => j += 1,
                    }
                }
                // An unterminated quote matches nothing here; scanning resumes after it.
                let Some(end) = end else {
                    i += 1;
                    continue;
                };
                let lit = String::from_utf8_lossy(&line[i..=end]);
                args.push(unquote(&lit).ok_or_else(|| Exit::invalid_input("invalid syntax"))?);
                i = end + 1;
            }
            b'\'' => match line[i + 1..].iter().position(|&b| b == b'\'') {
                Some(off) => {
                    // etcdctl 3.4 slices this by the wrong length (a known bug); the quotes
                    // are simply removed here.
                    args.push(line[i + 1..i + 1 + off].to_vec());
                    i += off + 2;
                }
                None => i += 1,
            },
            c if is_space(c) => i += 1,
            _ => {
                let start = i;
                while i < n && !is_space(line[i]) {
                    i += 1;
                }
                args.push(line[start..i].to_vec());
            }
        }
    }
    Ok(args)
}

/// One request line: `put k v [flags]`, `get k [range_end] [flags]` or `del k [range_end] [flags]`.
pub fn parse_request(line: &[u8]) -> Result<RequestOp, Exit> {
    let shown = String::from_utf8_lossy(line);
    let args = argify(line)?;
    if args.len() < 2 {
        return Err(Exit::invalid_input(format!(
            "invalid txn compare request: {shown}"
        )));
    }
    let invalid = || Exit::invalid_input(format!("invalid txn request: {shown}"));
    let os_args: Vec<OsString> = args.into_iter().map(OsString::from_vec).collect();
    let parsed = TxnRequestLine::try_parse_from(os_args).map_err(|_| invalid())?;
    let bytes_of = |v: &[OsString]| -> Vec<Vec<u8>> {
        v.iter().map(|a| a.as_encoded_bytes().to_vec()).collect()
    };
    let request = match parsed {
        TxnRequestLine::Put(a) => {
            let o = PutOpts::from_cli(&a).map_err(|_| invalid())?;
            // etcdctl would read the value from stdin, which the txn reader already consumed.
            Request::RequestPut(kvops::put_request(&bytes_of(&a.args), &o, Vec::new)?)
        }
        TxnRequestLine::Get(a) => {
            let o = GetOpts::from_cli(&a).map_err(|_| invalid())?;
            Request::RequestRange(kvops::get_request(&bytes_of(&a.args), &o)?)
        }
        TxnRequestLine::Del(a) => {
            let o = DelOpts::from_cli(&a).map_err(|_| invalid())?;
            Request::RequestDeleteRange(kvops::del_request(&bytes_of(&a.args), &o)?)
        }
    };
    Ok(RequestOp {
        request: Some(request),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(r: Result<impl std::fmt::Debug, Exit>) -> (i32, String) {
        let e = r.unwrap_err();
        (e.code, e.message.unwrap_or_default())
    }

    #[test]
    fn compares() {
        let c = parse_compare(br#"mod("k1") > "0""#).unwrap();
        assert_eq!(c.target, CompareTarget::Mod as i32);
        assert_eq!(c.result, CompareResult::Greater as i32);
        assert_eq!(&c.key[..], b"k1");
        assert_eq!(c.target_union, Some(TargetUnion::ModRevision(0)));

        let c = parse_compare(br#"value("k\x41") != "v\u00e9""#).unwrap();
        assert_eq!(&c.key[..], b"kA");
        assert_eq!(c.target_union, Some(TargetUnion::Value(Bytes::from("vé"))));
        assert_eq!(c.result, CompareResult::NotEqual as i32);

        let c = parse_compare(b"c(`k`) < `5` trailing").unwrap();
        assert_eq!(c.target_union, Some(TargetUnion::CreateRevision(5)));
        let c = parse_compare(br#"lease("k") = "1f""#).unwrap();
        assert_eq!(c.target_union, Some(TargetUnion::Lease(31)));
        let c = parse_compare(br#"ver( "k") = "+2""#).unwrap();
        assert_eq!(c.target_union, Some(TargetUnion::Version(2)));
    }

    #[test]
    fn compare_errors_read_like_etcdctl() {
        // Messages captured from etcdctl 3.4.23.
        let cases: &[(&[u8], &str)] = &[
            (b"put k1 'abc'", "malformed comparison: put k1 'abc'"),
            (
                br#"mod("k1") >"0""#,
                r#"malformed comparison: mod("k1") >"0"; got mod("k1") >"0" """#,
            ),
            (
                br#"mod("k1") > 0"#,
                r#"malformed comparison: mod("k1") > 0; got mod("k1") > """#,
            ),
            (
                br#"mod("k1")> "0""#,
                r#"malformed comparison: mod("k1")> "0"; got mod("k1")  """#,
            ),
            (
                br#"value("k1")"#,
                r#"malformed comparison: value("k1"); got value("k1")  """#,
            ),
            (
                br#"value(k1) = "ab""#,
                r#"malformed comparison: value(k1) = "ab"; got value("")  """#,
            ),
            (
                br#"value("k1" ) = "0""#,
                r#"malformed comparison: value("k1" ) = "0"; got value("k1")  """#,
            ),
            (
                br#"mod("k1") > "x""#,
                r#"invalid txn compare request: mod("k1") > "x""#,
            ),
            (
                br#"mod("k1") > "0x1""#,
                r#"invalid txn compare request: mod("k1") > "0x1""#,
            ),
            (
                br#"foo("k1") > "0""#,
                r#"malformed comparison: foo("k1") > "0" (unknown target foo)"#,
            ),
        ];
        for (line, want) in cases {
            assert_eq!(err(parse_compare(line)), (3, want.to_string()), "{line:?}");
        }
        assert_eq!(err(parse_compare(br#"value("k") == "v""#)).0, 3);
    }

    #[test]
    fn argify_splits_like_etcdctl() {
        let words = |s: &str| -> Vec<String> {
            argify(s.as_bytes())
                .unwrap()
                .into_iter()
                .map(|w| String::from_utf8(w).unwrap())
                .collect()
        };
        assert_eq!(words(r#"put k2 "x y""#), vec!["put", "k2", "x y"]);
        assert_eq!(words(r#"put k1 "a\tb\x41""#), vec!["put", "k1", "a\tbA"]);
        assert_eq!(
            words("put  k1\t'a b'  --prev-kv"),
            vec!["put", "k1", "a b", "--prev-kv"]
        );
        assert_eq!(words(r#"put k "abc"#), vec!["put", "k", "abc"]);
        assert_eq!(words(r#"put x="a b""#), vec!["put", r#"x="a"#, r#"b""#]);
        let e = argify(br#"put k "\q""#).unwrap_err();
        assert_eq!((e.code, e.message.as_deref()), (3, Some("invalid syntax")));
    }

    #[test]
    fn request_lines() {
        let op = parse_request(br#"put k2 "x y" --prev-kv"#).unwrap();
        let Some(Request::RequestPut(p)) = op.request else {
            panic!("not a put")
        };
        assert_eq!(
            (&p.key[..], &p.value[..], p.prev_kv),
            (&b"k2"[..], &b"x y"[..], true)
        );

        let op = parse_request(b"get k2 --prefix --limit=0x2").unwrap();
        let Some(Request::RequestRange(g)) = op.request else {
            panic!("not a get")
        };
        assert_eq!((&g.range_end[..], g.limit), (&b"k3"[..], 2));

        let op = parse_request(b"del k -- -x").unwrap();
        let Some(Request::RequestDeleteRange(d)) = op.request else {
            panic!("not a del")
        };
        assert_eq!(&d.range_end[..], b"-x");
    }

    #[test]
    fn request_line_errors() {
        assert_eq!(
            err(parse_request(b"put")),
            (3, "invalid txn compare request: put".into())
        );
        assert_eq!(
            err(parse_request(b"foo k1 v")),
            (3, "invalid txn request: foo k1 v".into())
        );
        assert_eq!(
            err(parse_request(b"put k1 v --bogus")),
            (3, "invalid txn request: put k1 v --bogus".into())
        );
        assert_eq!(
            err(parse_request(b"get k1 --limit=x")),
            (3, "invalid txn request: get k1 --limit=x".into())
        );
        assert_eq!(
            err(parse_request(b"get k1 -w json")),
            (3, "invalid txn request: get k1 -w json".into())
        );
        assert_eq!(
            err(parse_request(b"put k1 --lease=zz v")),
            (
                128,
                r#"bad lease ID (strconv.ParseInt: parsing "zz": invalid syntax), expecting ID in Hex"#
                    .into()
            )
        );
        assert_eq!(
            err(parse_request(b"get k1 --prefix --from-key")),
            (
                128,
                "`--prefix` and `--from-key` cannot be set at the same time, choose one".into()
            )
        );
        assert_eq!(
            err(parse_request(b"get k1 --consistency=x")),
            (4, r#"unknown consistency flag "x""#.into())
        );
    }

    #[test]
    fn whole_transactions() {
        let input =
            b"value(\"k1\") = \"abc\"\n\nput k2 \"x y\"\nget k1\ndel k9\n\nget k2 --prefix\n\n";
        let mut prompts = Vec::new();
        let t = read_txn(&mut &input[..], true, &mut prompts).unwrap();
        assert_eq!(
            (t.compare.len(), t.success.len(), t.failure.len()),
            (1, 3, 1)
        );
        assert_eq!(
            String::from_utf8(prompts).unwrap(),
            "compares:\nsuccess requests (get, put, del):\nfailure requests (get, put, del):\n"
        );

        let mut quiet = Vec::new();
        let t = read_txn(&mut &b"\n\n\n"[..], false, &mut quiet).unwrap();
        assert!(t.compare.is_empty() && t.success.is_empty() && t.failure.is_empty());
        assert!(quiet.is_empty());

        for short in [&b""[..], b"\n\n", b"\nput k v\n\nput k v"] {
            assert_eq!(
                err(read_txn(&mut &short[..], false, &mut quiet)),
                (3, "EOF".into())
            );
        }
        // Surrounding whitespace (including CR) is trimmed from every line.
        let t = read_txn(
            &mut &b"  mod(\"k\") > \"0\"  \r\n \r\n\tput k v\r\n\r\n\r\n"[..],
            false,
            &mut quiet,
        )
        .unwrap();
        assert_eq!((t.compare.len(), t.success.len()), (1, 1));
    }
}
