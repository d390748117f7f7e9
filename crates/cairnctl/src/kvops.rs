//! Turns `put`/`get`/`del` arguments into wire requests exactly as etcdctl's `getPutOp`,
//! `getGetOp` and `getDelOp` (via clientv3's op options) do; shared by the commands and `txn`.

use crate::exit::Exit;
use crate::flags::{DelOpts, GetOpts, PutOpts};
use crate::gofmt;
use bytes::Bytes;
use cairn_client::prefix_end;
use cairn_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest,
    range_request::{SortOrder, SortTarget},
};

const PUT_ARGS: &str = "put command needs 1 argument and input from stdin or 2 arguments";

/// `put <key> [value]`; `stdin` supplies the value when it is not an argument.
pub fn put_request(
    args: &[Vec<u8>],
    o: &PutOpts,
    stdin: impl FnOnce() -> Vec<u8>,
) -> Result<PutRequest, Exit> {
    let Some(key) = args.first() else {
        return Err(Exit::bad_args(PUT_ARGS));
    };
    if o.ignore_value && args.len() > 1 {
        return Err(Exit::bad_args(
            "put command needs only 1 argument when 'ignore-value' is set",
        ));
    }
    let mut value = Vec::new();
    if !o.ignore_value {
        value = match args.get(1) {
            Some(v) => v.clone(),
            None => stdin(),
        };
        if args.len() < 2 && value.is_empty() {
            return Err(Exit::bad_args(PUT_ARGS));
        }
    }
    let lease = gofmt::parse_int(&o.lease, 16)
        .map_err(|e| Exit::bad_args(format!("bad lease ID ({e}), expecting ID in Hex")))?;
    Ok(PutRequest {
        key: Bytes::from(key.clone()),
        value: Bytes::from(value),
        lease,
        prev_kv: o.prev_kv,
        ignore_value: o.ignore_value,
        ignore_lease: o.ignore_lease,
    })
}

/// `get <key> [range_end]`.
pub fn get_request(args: &[Vec<u8>], o: &GetOpts) -> Result<RangeRequest, Exit> {
    let Some(first) = args.first() else {
        return Err(Exit::bad_args(
            "get command needs one argument as key and an optional argument as range_end",
        ));
    };
    if o.prefix && o.from_key {
        return Err(Exit::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    if o.keys_only && o.count_only {
        return Err(Exit::bad_args(
            "`--keys-only` and `--count-only` cannot be set at the same time, choose one",
        ));
    }
    let mut req = RangeRequest::default();
    match o.consistency.as_str() {
        "s" => req.serializable = true,
        "l" => {}
        other => {
            return Err(Exit::bad_feature(format!(
                "unknown consistency flag {}",
                gofmt::quote_str(other)
            )));
        }
    }
    let mut key = first.clone();
    let mut end = Vec::new();
    if let Some(range_end) = args.get(1) {
        if o.prefix || o.from_key {
            return Err(too_many_args());
        }
        end = range_end.clone();
    }
    req.limit = o.limit;
    if o.rev > 0 {
        req.revision = o.rev;
    }
    let mut order = match o.order.to_uppercase().as_str() {
        "ASCEND" => SortOrder::Ascend,
        "DESCEND" => SortOrder::Descend,
        "" => SortOrder::None,
        _ => return Err(Exit::bad_feature(format!("bad sort order {}", o.order))),
    };
    let target = match o.sort_by.to_uppercase().as_str() {
        "CREATE" => SortTarget::Create,
        "KEY" | "" => SortTarget::Key,
        "MODIFY" => SortTarget::Mod,
        "VALUE" => SortTarget::Value,
        "VERSION" => SortTarget::Version,
        _ => return Err(Exit::bad_feature(format!("bad sort target {}", o.sort_by))),
    };
    // clientv3.WithSort: the server already returns keys ascending, so (KEY, ASCEND) is sent as
    // no sort at all; a target without an order is sent as NONE and the server sorts ascending.
    if target == SortTarget::Key && order == SortOrder::Ascend {
        order = SortOrder::None;
    }
    req.sort_order = order as i32;
    req.sort_target = target as i32;
    apply_prefix_from_key(&mut key, &mut end, o.prefix, o.from_key);
    req.key = Bytes::from(key);
    req.range_end = Bytes::from(end);
    req.keys_only = o.keys_only;
    req.count_only = o.count_only;
    req.min_mod_revision = o.min_mod_rev;
    req.max_mod_revision = o.max_mod_rev;
    req.min_create_revision = o.min_create_rev;
    req.max_create_revision = o.max_create_rev;
    Ok(req)
}

/// `del <key> [range_end]`.
pub fn del_request(args: &[Vec<u8>], o: &DelOpts) -> Result<DeleteRangeRequest, Exit> {
    if args.is_empty() || args.len() > 2 {
        return Err(Exit::bad_args(
            "del command needs one argument as key and an optional argument as range_end",
        ));
    }
    if o.prefix && o.from_key {
        return Err(Exit::bad_args(
            "`--prefix` and `--from-key` cannot be set at the same time, choose one",
        ));
    }
    let mut key = args[0].clone();
    let mut end = Vec::new();
    if let Some(range_end) = args.get(1) {
        if o.prefix || o.from_key {
            return Err(too_many_args());
        }
        end = range_end.clone();
    }
    apply_prefix_from_key(&mut key, &mut end, o.prefix, o.from_key);
    Ok(DeleteRangeRequest {
        key: Bytes::from(key),
        range_end: Bytes::from(end),
        prev_kv: o.prev_kv,
    })
}

fn too_many_args() -> Exit {
    Exit::bad_args(
        "too many arguments, only accept one argument when `--prefix` or `--from-key` is set",
    )
}

/// `--prefix` selects [key, prefix_end(key)); `--from-key` selects [key, ∞). An empty key means
/// every key in both cases, which etcd spells as key "\0" with range end "\0".
fn apply_prefix_from_key(key: &mut Vec<u8>, end: &mut Vec<u8>, prefix: bool, from_key: bool) {
    if prefix {
        if key.is_empty() {
            *key = vec![0];
            *end = vec![0];
        } else {
            *end = prefix_end(key);
        }
    }
    if from_key {
        if key.is_empty() {
            *key = vec![0];
        }
        *end = vec![0];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(a: &[&str]) -> Vec<Vec<u8>> {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    #[test]
    fn put_reads_stdin_only_without_value() {
        let o = PutOpts {
            lease: "0".into(),
            ..Default::default()
        };
        let r = put_request(&args(&["k", "v"]), &o, || b"x".to_vec()).unwrap();
        assert_eq!(&r.value[..], b"v");
        let r = put_request(&args(&["k"]), &o, || b"x\n".to_vec()).unwrap();
        assert_eq!(&r.value[..], b"x\n");
        let e = put_request(&args(&["k"]), &o, Vec::new).unwrap_err();
        assert_eq!((e.code, e.message.as_deref()), (128, Some(PUT_ARGS)));
        let r = put_request(&args(&["k", ""]), &o, Vec::new).unwrap();
        assert!(r.value.is_empty());
    }

    #[test]
    fn put_lease_is_hex() {
        let o = PutOpts {
            lease: "1f".into(),
            ..Default::default()
        };
        assert_eq!(
            put_request(&args(&["k", "v"]), &o, Vec::new).unwrap().lease,
            31
        );
        let o = PutOpts {
            lease: "zz".into(),
            ..Default::default()
        };
        let e = put_request(&args(&["k", "v"]), &o, Vec::new).unwrap_err();
        assert_eq!(
            e.message.as_deref(),
            Some(
                r#"bad lease ID (strconv.ParseInt: parsing "zz": invalid syntax), expecting ID in Hex"#
            )
        );
    }

    #[test]
    fn get_prefix_and_sort() {
        let o = GetOpts {
            prefix: true,
            sort_by: "value".into(),
            ..Default::default()
        };
        let r = get_request(&args(&["ab"]), &o).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"ab"[..], &b"ac"[..]));
        assert_eq!(r.sort_order, SortOrder::None as i32);
        assert_eq!(r.sort_target, SortTarget::Value as i32);

        let o = GetOpts {
            prefix: true,
            order: "ascend".into(),
            ..Default::default()
        };
        let r = get_request(&args(&[""]), &o).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"\0"[..], &b"\0"[..]));
        assert_eq!(r.sort_order, SortOrder::None as i32);
    }

    #[test]
    fn get_argument_errors() {
        let o = GetOpts {
            prefix: true,
            from_key: true,
            ..Default::default()
        };
        assert_eq!(get_request(&args(&["k"]), &o).unwrap_err().code, 128);
        let o = GetOpts {
            consistency: "x".into(),
            ..Default::default()
        };
        let e = get_request(&args(&["k"]), &o).unwrap_err();
        assert_eq!(
            (e.code, e.message.as_deref()),
            (4, Some(r#"unknown consistency flag "x""#))
        );
        let o = GetOpts {
            prefix: true,
            ..Default::default()
        };
        assert_eq!(get_request(&args(&["a", "b"]), &o).unwrap_err().code, 128);
        assert_eq!(get_request(&[], &GetOpts::default()).unwrap_err().code, 128);
    }

    #[test]
    fn del_ranges() {
        let r = del_request(&args(&["a", "c"]), &DelOpts::default()).unwrap();
        assert_eq!(&r.range_end[..], b"c");
        let o = DelOpts {
            from_key: true,
            ..Default::default()
        };
        let r = del_request(&args(&["a"]), &o).unwrap();
        assert_eq!(&r.range_end[..], b"\0");
        assert_eq!(
            del_request(&args(&["a", "b", "c"]), &DelOpts::default())
                .unwrap_err()
                .code,
            128
        );
    }
}
