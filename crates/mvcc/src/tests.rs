use super::*;
use bytes::Bytes;
use cairn_proto::etcdserverpb::{
    Compare, DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest,
    compare::{CompareResult, CompareTarget, TargetUnion},
    range_request::{SortOrder, SortTarget},
    request_op, response_op,
};
use proptest::prelude::*;
use std::collections::BTreeMap;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    (dir, store)
}

fn put(store: &Store, key: &str, value: &str) -> i64 {
    let mut a = store.begin_apply().unwrap();
    let resp = a
        .put(&PutRequest {
            key: Bytes::from(key.to_owned()),
            value: Bytes::from(value.to_owned()),
            ..Default::default()
        })
        .unwrap();
    a.commit(0, 0, false).unwrap();
    resp.header.unwrap().revision
}

/// Applies one put as its own batch covering log entry `index` of `term`.
fn apply_put(store: &Store, req: PutRequest, index: u64, term: u64) {
    let mut a = store.begin_apply().unwrap();
    a.put(&req).unwrap();
    a.commit(index, term, false).unwrap();
}

fn del(store: &Store, key: &str, end: &str) -> i64 {
    let mut a = store.begin_apply().unwrap();
    let resp = a
        .delete_range(&DeleteRangeRequest {
            key: Bytes::from(key.to_owned()),
            range_end: Bytes::from(end.to_owned()),
            ..Default::default()
        })
        .unwrap();
    a.commit(0, 0, false).unwrap();
    resp.deleted
}

/// (key, value, create_revision, mod_revision, version)
type Row = (String, String, i64, i64, i64);

fn get(store: &Store, key: &str, end: &str, rev: i64) -> Result<Vec<Row>> {
    let resp = store.range(&RangeRequest {
        key: Bytes::from(key.to_owned()),
        range_end: Bytes::from(end.to_owned()),
        revision: rev,
        ..Default::default()
    })?;
    Ok(resp
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key.to_vec()).unwrap(),
                String::from_utf8(kv.value.to_vec()).unwrap(),
                kv.create_revision,
                kv.mod_revision,
                kv.version,
            )
        })
        .collect())
}

#[test]
fn put_get_versions_and_revisions() {
    let (_d, s) = open();
    // Like etcd, a new store is at revision 1.
    assert_eq!(s.revision(), 1);
    assert_eq!(put(&s, "a", "1"), 2);
    assert_eq!(put(&s, "a", "2"), 3);
    assert_eq!(put(&s, "b", "x"), 4);
    assert_eq!(
        get(&s, "a", "", 0).unwrap(),
        vec![("a".into(), "2".into(), 2, 3, 2)]
    );
    assert_eq!(
        get(&s, "a", "", 2).unwrap(),
        vec![("a".into(), "1".into(), 2, 2, 1)]
    );
    assert_eq!(del(&s, "a", ""), 1);
    assert_eq!(s.revision(), 5);
    assert!(get(&s, "a", "", 0).unwrap().is_empty());
    // Deleting nothing does not create a revision.
    assert_eq!(del(&s, "zzz", ""), 0);
    assert_eq!(s.revision(), 5);
    // Recreated keys start a new generation.
    assert_eq!(put(&s, "a", "3"), 6);
    assert_eq!(
        get(&s, "a", "", 0).unwrap(),
        vec![("a".into(), "3".into(), 6, 6, 1)]
    );
    assert!(matches!(
        get(&s, "a", "", 7),
        Err(MvccError::FutureRevision)
    ));
}

#[test]
fn ranges_prefix_from_key_limit_count_sort() {
    let (_d, s) = open();
    for (k, v) in [("k1", "c"), ("k2", "b"), ("k3", "a"), ("l", "z")] {
        put(&s, k, v);
    }
    assert_eq!(get(&s, "k", "l", 0).unwrap().len(), 3);
    assert_eq!(get(&s, "k2", "\0", 0).unwrap().len(), 3);
    assert_eq!(get(&s, "\0", "\0", 0).unwrap().len(), 4);
    let resp = s
        .range(&RangeRequest {
            key: Bytes::from_static(b"k"),
            range_end: Bytes::from_static(b"l"),
            limit: 2,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.kvs.len(), 2);
    assert!(resp.more);
    assert_eq!(resp.count, 3);
    let resp = s
        .range(&RangeRequest {
            key: Bytes::from_static(b"k"),
            range_end: Bytes::from_static(b"l"),
            sort_target: SortTarget::Value as i32,
            sort_order: SortOrder::Ascend as i32,
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.kvs[0].key.as_ref(), b"k3");
    // etcd quirk kept on purpose: without an explicit order, a non-key target sorts ascending but
    // only among the first limit+1 keys in key order.
    let resp = s
        .range(&RangeRequest {
            key: Bytes::from_static(b"k"),
            range_end: Bytes::from_static(b"l"),
            sort_target: SortTarget::Value as i32,
            limit: 1,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.kvs[0].key.as_ref(), b"k2");
    let resp = s
        .range(&RangeRequest {
            key: Bytes::from_static(b"k"),
            range_end: Bytes::from_static(b"l"),
            sort_order: SortOrder::Descend as i32,
            ..Default::default()
        })
        .unwrap();
    let keys: Vec<_> = resp.kvs.iter().map(|kv| kv.key.clone()).collect();
    assert_eq!(keys, vec!["k3", "k2", "k1"]);
    let resp = s
        .range(&RangeRequest {
            key: Bytes::from_static(b"k"),
            range_end: Bytes::from_static(b"l"),
            count_only: true,
            ..Default::default()
        })
        .unwrap();
    assert!(resp.kvs.is_empty());
    assert_eq!(resp.count, 3);
    let resp = s
        .range(&RangeRequest {
            key: Bytes::from_static(b"k"),
            range_end: Bytes::from_static(b"l"),
            keys_only: true,
            min_mod_revision: 3,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.kvs.len(), 2);
    assert!(resp.kvs.iter().all(|kv| kv.value.is_empty()));
}

#[test]
fn put_options() {
    let (_d, s) = open();
    let mut a = s.begin_apply().unwrap();
    let err = a
        .put(&PutRequest {
            key: Bytes::from_static(b"x"),
            ignore_value: true,
            ..Default::default()
        })
        .unwrap_err();
    assert!(matches!(err, MvccError::KeyNotFound));
    a.put(&PutRequest {
        key: Bytes::from_static(b"x"),
        value: Bytes::from_static(b"v1"),
        lease: 7,
        ..Default::default()
    })
    .unwrap();
    let resp = a
        .put(&PutRequest {
            key: Bytes::from_static(b"x"),
            ignore_value: true,
            prev_kv: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.prev_kv.unwrap().value.as_ref(), b"v1");
    let resp = a
        .put(&PutRequest {
            key: Bytes::from_static(b"x"),
            value: Bytes::from_static(b"v2"),
            ignore_lease: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(resp.header.unwrap().revision, 4);
    a.commit(1, 1, true).unwrap();
    let kv = &s
        .range(&RangeRequest {
            key: Bytes::from_static(b"x"),
            ..Default::default()
        })
        .unwrap()
        .kvs[0];
    // The ignore_value put carried lease 0 and replaced the lease; ignore_lease then kept it.
    assert_eq!(
        (kv.value.as_ref(), kv.lease, kv.version),
        (&b"v2"[..], 0, 3)
    );
}

fn cmp(key: &str, target: CompareTarget, result: CompareResult, u: TargetUnion) -> Compare {
    Compare {
        key: Bytes::from(key.to_owned()),
        target: target as i32,
        result: result as i32,
        target_union: Some(u),
        ..Default::default()
    }
}

fn op_put(key: &str, value: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestPut(PutRequest {
            key: Bytes::from(key.to_owned()),
            value: Bytes::from(value.to_owned()),
            ..Default::default()
        })),
    }
}

fn op_get(key: &str) -> RequestOp {
    RequestOp {
        request: Some(request_op::Request::RequestRange(RangeRequest {
            key: Bytes::from(key.to_owned()),
            ..Default::default()
        })),
    }
}

#[test]
fn txn_compares_branches_and_single_revision() {
    let (_d, s) = open();
    put(&s, "a", "1");
    let mut ap = s.begin_apply().unwrap();
    // create-if-absent: mod == 0 on a missing key.
    let resp = ap
        .txn(&TxnRequest {
            compare: vec![cmp(
                "b",
                CompareTarget::Mod,
                CompareResult::Equal,
                TargetUnion::ModRevision(0),
            )],
            success: vec![op_put("b", "new"), op_put("c", "also"), op_get("b")],
            failure: vec![op_get("b")],
        })
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.header.as_ref().unwrap().revision, 3);
    // The range in the txn sees the txn's own write at the txn's revision.
    match &resp.responses[2].response {
        Some(response_op::Response::ResponseRange(r)) => {
            assert_eq!(r.kvs[0].value.as_ref(), b"new");
            assert_eq!(r.kvs[0].mod_revision, 3);
        }
        other => panic!("{other:?}"),
    }
    // Value compare on a missing key is false; greater-than on value.
    let resp = ap
        .txn(&TxnRequest {
            compare: vec![cmp(
                "zz",
                CompareTarget::Value,
                CompareResult::NotEqual,
                TargetUnion::Value(Bytes::from_static(b"q")),
            )],
            success: vec![op_put("never", "x")],
            failure: vec![op_get("a")],
        })
        .unwrap();
    assert!(!resp.succeeded);
    assert_eq!(resp.header.unwrap().revision, 3);
    // Range compare: every key in [b, d) has version 1.
    let mut c = cmp(
        "b",
        CompareTarget::Version,
        CompareResult::Equal,
        TargetUnion::Version(1),
    );
    c.range_end = Bytes::from_static(b"d");
    // Nested txn.
    let nested = RequestOp {
        request: Some(request_op::Request::RequestTxn(TxnRequest {
            compare: vec![cmp(
                "a",
                CompareTarget::Value,
                CompareResult::Greater,
                TargetUnion::Value(Bytes::from_static(b"0")),
            )],
            success: vec![op_put("n", "inner")],
            failure: vec![],
        })),
    };
    let resp = ap
        .txn(&TxnRequest {
            compare: vec![c],
            success: vec![nested, op_put("o", "outer")],
            failure: vec![],
        })
        .unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.header.unwrap().revision, 4);
    ap.commit(1, 1, false).unwrap();
    assert_eq!(get(&s, "n", "", 0).unwrap()[0].3, 4);
    assert_eq!(get(&s, "o", "", 0).unwrap()[0].3, 4);
}

#[test]
fn txn_with_failing_op_writes_nothing() {
    let (_d, s) = open();
    let mut ap = s.begin_apply().unwrap();
    let mut bad = PutRequest {
        key: Bytes::from_static(b"missing"),
        ignore_lease: true,
        ..Default::default()
    };
    bad.value = Bytes::from_static(b"v");
    let err = ap
        .txn(&TxnRequest {
            compare: vec![],
            success: vec![
                op_put("first", "x"),
                RequestOp {
                    request: Some(request_op::Request::RequestPut(bad)),
                },
            ],
            failure: vec![],
        })
        .unwrap_err();
    assert!(matches!(err, MvccError::KeyNotFound));
    ap.commit(1, 1, false).unwrap();
    assert_eq!(s.revision(), 1);
    assert!(get(&s, "first", "", 0).unwrap().is_empty());
}

#[test]
fn compaction_and_restart() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Store::open(&path).unwrap();
        put(&s, "a", "1"); // 2
        put(&s, "a", "2"); // 3
        put(&s, "b", "1"); // 4
        del(&s, "b", ""); // 5
        put(&s, "c", "1"); // 6
        let mut ap = s.begin_apply().unwrap();
        assert!(matches!(ap.compact(9), Err(MvccError::FutureRevision)));
        let out = ap.compact(5).unwrap();
        assert_eq!(out.removed_revisions, 3);
        assert!(matches!(ap.compact(5), Err(MvccError::Compacted)));
        ap.commit(42, 3, true).unwrap();
        assert!(matches!(get(&s, "a", "", 4), Err(MvccError::Compacted)));
        assert_eq!(get(&s, "a", "", 5).unwrap()[0].1, "2");
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.revision(), 6);
    assert_eq!(s.compact_revision(), 5);
    assert_eq!(s.consistent_index(), 42);
    assert_eq!(s.term(), 3);
    assert_eq!(get(&s, "\0", "\0", 0).unwrap().len(), 2);
    assert!(matches!(get(&s, "a", "", 4), Err(MvccError::Compacted)));
    let (h1, c, r) = s.hash_kv(0).unwrap();
    assert_eq!((c, r), (5, 6));
    assert_eq!(s.hash_kv(6).unwrap().0, h1);
}

#[test]
fn a_malformed_meta_value_refuses_to_open() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Store::open(&path).unwrap();
        put(&s, "a", "1");
        let a = s.begin_apply().unwrap();
        a.commit(7, 1, true).unwrap();
    }
    assert_eq!(Store::open(&path).unwrap().consistent_index(), 7);
    for name in ["consistent_index", "term", "current_rev", "compact_rev"] {
        let db = Database::create(&path).unwrap();
        let saved = {
            let r = db.begin_read().unwrap();
            let t = r.open_table(META).unwrap();
            t.get(name).unwrap().map(|v| v.value().to_vec())
        };
        let w = db.begin_write().unwrap();
        w.open_table(META)
            .unwrap()
            .insert(name, &[1u8, 2, 3][..])
            .unwrap();
        w.commit().unwrap();
        drop(db);
        match Store::open(&path) {
            Err(MvccError::CorruptMeta { name: n, len: 3 }) => assert_eq!(n, name),
            Err(e) => panic!("{name}: {e}"),
            Ok(_) => panic!("{name}: a 3-byte meta value was read as a number"),
        }
        let db = Database::create(&path).unwrap();
        let w = db.begin_write().unwrap();
        {
            let mut t = w.open_table(META).unwrap();
            match &saved {
                Some(v) => t.insert(name, v.as_slice()).unwrap(),
                None => t.remove(name).unwrap(),
            };
        }
        w.commit().unwrap();
    }
}

#[test]
fn applied_batches_are_written_back_in_bulk() {
    let (_dir, s) = open();
    let base = s.write_back_count();
    for i in 0..50 {
        put(&s, &format!("k{i}"), "v");
    }
    // Fifty applied batches, read from memory, and not one backend commit yet.
    assert_eq!(s.write_back_count(), base);
    assert_eq!(get(&s, "\0", "\0", 0).unwrap().len(), 50);
    assert!(!s.write_back_if_due().unwrap());
    std::thread::sleep(buffer::WRITE_BACK_INTERVAL);
    put(&s, "late", "v");
    assert!(s.write_back_if_due().unwrap());
    assert_eq!(s.write_back_count(), base + 1);
    assert_eq!(get(&s, "\0", "\0", 0).unwrap().len(), 51);
    assert_eq!(get(&s, "k7", "", 0).unwrap()[0].1, "v");
}

#[test]
fn meta_and_lease_records_read_through_every_layer() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Store::open(&path).unwrap();
        let mut a = s.begin_apply().unwrap();
        a.put_meta("name", b"one").unwrap();
        a.put_lease(1, b"L1").unwrap();
        a.put_lease(2, b"L2").unwrap();
        a.commit(1, 1, false).unwrap();
        assert_eq!(s.meta("name").unwrap().as_deref(), Some(&b"one"[..]));
        s.write_back_now().unwrap();
        let mut a = s.begin_apply().unwrap();
        a.put_meta("name", b"two").unwrap();
        a.delete_lease(1).unwrap();
        a.put_lease(3, b"L3").unwrap();
        a.commit(2, 1, false).unwrap();
        // Newer in memory over older in the backend; a deletion hides the backend's row.
        assert_eq!(s.meta("name").unwrap().as_deref(), Some(&b"two"[..]));
        let leases = s.leases().unwrap();
        assert_eq!(leases, vec![(2, b"L2".to_vec()), (3, b"L3".to_vec())]);
        s.flush().unwrap();
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.consistent_index(), 2);
    assert_eq!(s.meta("name").unwrap().as_deref(), Some(&b"two"[..]));
    assert_eq!(s.leases().unwrap().len(), 2);
}

#[test]
fn without_a_write_back_the_backend_keeps_its_last_consistent_state() {
    // What a crash looks like to the backend: batches applied after the last write-back are
    // gone, and the consistent index says exactly which log entries must be replayed.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Store::open(&path).unwrap();
        let key = |k: &'static [u8]| PutRequest {
            key: Bytes::from_static(k),
            ..Default::default()
        };
        apply_put(&s, key(b"a"), 7, 2);
        s.flush().unwrap();
        apply_put(&s, key(b"b"), 8, 2);
    }
    let s = Store::open(&path).unwrap();
    assert_eq!((s.consistent_index(), s.revision()), (7, 2));
    assert_eq!(get(&s, "\0", "\0", 0).unwrap().len(), 1);
}

#[test]
fn compacting_revisions_still_in_memory_leaves_no_garbage() {
    let (_dir, s) = open();
    for i in 0..5 {
        put(&s, "k", &format!("v{i}"));
    }
    // Compact while the earlier revisions are still only in memory, then write back: the backend
    // must end up holding only what survives the compaction.
    let mut a = s.begin_apply().unwrap();
    a.compact(5).unwrap();
    a.commit(0, 0, false).unwrap();
    s.write_back_now().unwrap();
    let (h, compacted, rev) = s.hash_kv(0).unwrap();
    assert_eq!((compacted, rev), (5, 6));
    let hash_now = s.hash().unwrap();
    s.flush().unwrap();
    assert_eq!(s.hash_kv(0).unwrap().0, h);
    assert_eq!(s.hash().unwrap(), hash_now);
    assert_eq!(get(&s, "k", "", 0).unwrap()[0].1, "v4");
    assert!(matches!(get(&s, "k", "", 4), Err(MvccError::Compacted)));
}

#[test]
fn readers_never_miss_a_record_while_it_moves_to_the_backend() {
    let (_dir, s) = open();
    let s = std::sync::Arc::new(s);
    let writer = {
        let s = s.clone();
        std::thread::spawn(move || {
            for i in 0..600 {
                put(&s, &format!("k{i:04}"), "v");
                if i % 7 == 0 {
                    s.write_back_now().unwrap();
                }
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads == 0 {
        let resp = s
            .range(&RangeRequest {
                key: Bytes::from_static(b"\0"),
                range_end: Bytes::from_static(b"\0"),
                ..Default::default()
            })
            .expect("every indexed revision is readable");
        let rev = resp.header.unwrap().revision;
        // One key per revision after the initial revision 1.
        assert_eq!(resp.kvs.len() as i64, rev - 1);
        reads += 1;
    }
    writer.join().unwrap();
}

#[test]
fn leased_keys_come_from_the_index_and_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    let put_with = |s: &Store, key: &'static [u8], lease: i64, ignore_lease: bool| {
        let req = PutRequest {
            key: Bytes::from_static(key),
            lease,
            ignore_lease,
            ..Default::default()
        };
        apply_put(s, req, 0, 0);
    };
    {
        let s = Store::open(&path).unwrap();
        put_with(&s, b"a", 7, false);
        put_with(&s, b"b", 7, false);
        put_with(&s, b"c", 9, false);
        // Keeps its lease; loses it; is deleted.
        put_with(&s, b"a", 0, true);
        put_with(&s, b"b", 0, false);
        del(&s, "c", "");
        put_with(&s, b"d", 9, false);
        s.flush().unwrap();
    }
    let s = Store::open(&path).unwrap();
    let got: Vec<(Bytes, i64)> = s.leased_keys();
    assert_eq!(
        got,
        vec![(Bytes::from_static(b"a"), 7), (Bytes::from_static(b"d"), 9)]
    );
}

#[test]
fn uncommitted_batch_is_invisible_after_reopen_without_flush() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("db");
    {
        let s = Store::open(&path).unwrap();
        put(&s, "a", "1");
        s.flush().unwrap();
        let mut ap = s.begin_apply().unwrap();
        ap.put(&PutRequest {
            key: Bytes::from_static(b"b"),
            ..Default::default()
        })
        .unwrap();
        drop(ap); // aborted
    }
    let s = Store::open(&path).unwrap();
    assert_eq!(s.revision(), 2);
    assert_eq!(get(&s, "\0", "\0", 0).unwrap().len(), 1);
}

// ---------------------------------------------------------------------------------------------
// Property test: the store against a naive model that keeps a full copy of the key space at every
// revision.

#[derive(Debug, Clone)]
enum Op {
    Put(u8, u8),
    Delete(u8, u8),
    Txn(u8, i64, u8, u8),
    Compact(u8),
    Get(u8, u8, u8),
    WriteBack,
    Reopen,
}

fn key(k: u8) -> Bytes {
    Bytes::from(format!("k{}", k % 8))
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Op::Put(k, v)),
        2 => (any::<u8>(), 0u8..3).prop_map(|(k, w)| Op::Delete(k, w)),
        2 => (any::<u8>(), 0i64..4, any::<u8>(), any::<u8>()).prop_map(|(k, v, a, b)| Op::Txn(k, v, a, b)),
        1 => any::<u8>().prop_map(Op::Compact),
        3 => (any::<u8>(), 0u8..3, any::<u8>()).prop_map(|(k, w, r)| Op::Get(k, w, r)),
        1 => Just(Op::WriteBack),
        1 => Just(Op::Reopen),
    ]
}

#[derive(Default, Clone)]
struct Model {
    /// Key space after each revision; index 0 is revision 0 (empty).
    snapshots: Vec<BTreeMap<Bytes, KeyValue>>,
    compacted: i64,
}

impl Model {
    fn current(&self) -> &BTreeMap<Bytes, KeyValue> {
        self.snapshots.last().unwrap()
    }
    fn rev(&self) -> i64 {
        self.snapshots.len() as i64 - 1
    }
    fn write(&mut self, f: impl FnOnce(&mut BTreeMap<Bytes, KeyValue>, i64) -> bool) {
        let mut next = self.current().clone();
        let rev = self.rev() + 1;
        if f(&mut next, rev) {
            self.snapshots.push(next);
        }
    }
    fn put(map: &mut BTreeMap<Bytes, KeyValue>, rev: i64, k: Bytes, v: Bytes) {
        let (create, version) = map
            .get(&k)
            .map_or((rev, 1), |p| (p.create_revision, p.version + 1));
        map.insert(
            k.clone(),
            KeyValue {
                key: k,
                create_revision: create,
                mod_revision: rev,
                version,
                value: v,
                lease: 0,
            },
        );
    }
}

fn range_end(k: u8, width: u8) -> (Bytes, Bytes) {
    let start = key(k);
    match width {
        0 => (start, Bytes::new()),
        1 => (start, Bytes::from_static(b"\0")),
        _ => (start, Bytes::from(format!("k{}", (k % 8) + 3))),
    }
}

fn in_range(k: &Bytes, start: &Bytes, end: &Bytes) -> bool {
    if end.is_empty() {
        k == start
    } else if end.as_ref() == b"\0" {
        k >= start
    } else {
        k >= start && k < end
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn store_matches_model(ops in proptest::collection::vec(op(), 1..80)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("db");
        let mut store = Store::open(&path).unwrap();
        store.set_range_chunk_keys(2);
        let mut model = Model { snapshots: vec![BTreeMap::new(), BTreeMap::new()], compacted: 0 };
        for op in ops {
            match op {
                Op::Put(k, v) => {
                    let value = Bytes::from(vec![v; (v % 5) as usize]);
                    let mut a = store.begin_apply().unwrap();
                    let r = a.put(&PutRequest { key: key(k), value: value.clone(), ..Default::default() }).unwrap();
                    a.commit(0, 0, false).unwrap();
                    model.write(|m, rev| { Model::put(m, rev, key(k), value); true });
                    prop_assert_eq!(r.header.unwrap().revision, model.rev());
                }
                Op::Delete(k, w) => {
                    let (start, end) = range_end(k, w);
                    let mut a = store.begin_apply().unwrap();
                    let r = a.delete_range(&DeleteRangeRequest { key: start.clone(), range_end: end.clone(), prev_kv: true }).unwrap();
                    a.commit(0, 0, false).unwrap();
                    let victims: Vec<KeyValue> = model.current().values().filter(|kv| in_range(&kv.key, &start, &end)).cloned().collect();
                    prop_assert_eq!(&r.prev_kvs, &victims);
                    model.write(|m, _| { m.retain(|kk, _| !in_range(kk, &start, &end)); !victims.is_empty() });
                    prop_assert_eq!(r.header.unwrap().revision, model.rev());
                }
                Op::Txn(k, version, a1, a2) => {
                    let mut ap = store.begin_apply().unwrap();
                    let r = ap.txn(&TxnRequest {
                        compare: vec![cmp(&format!("k{}", k % 8), CompareTarget::Version, CompareResult::Equal, TargetUnion::Version(version))],
                        success: vec![op_put(&format!("k{}", a1 % 8), "s"), op_put(&format!("k{}", (a1 % 8) + 8), "s2")],
                        failure: vec![op_put(&format!("k{}", a2 % 8), "f")],
                    }).unwrap();
                    ap.commit(0, 0, false).unwrap();
                    let cur_version = model.current().get(&key(k)).map_or(0, |kv| kv.version);
                    let ok = cur_version == version;
                    prop_assert_eq!(r.succeeded, ok);
                    model.write(|m, rev| {
                        if ok {
                            Model::put(m, rev, key(a1), Bytes::from_static(b"s"));
                            Model::put(m, rev, Bytes::from(format!("k{}", (a1 % 8) + 8)), Bytes::from_static(b"s2"));
                        } else {
                            Model::put(m, rev, key(a2), Bytes::from_static(b"f"));
                        }
                        true
                    });
                }
                Op::Compact(r) => {
                    let rev = i64::from(r) % (model.rev() + 2);
                    let mut a = store.begin_apply().unwrap();
                    let res = a.compact(rev);
                    a.commit(0, 0, false).unwrap();
                    if rev <= model.compacted {
                        prop_assert!(matches!(res, Err(MvccError::Compacted)));
                    } else if rev > model.rev() {
                        prop_assert!(matches!(res, Err(MvccError::FutureRevision)));
                    } else {
                        prop_assert!(res.is_ok());
                        model.compacted = rev;
                    }
                }
                Op::Get(k, w, r) => {
                    let (start, end) = range_end(k, w);
                    let rev = i64::from(r) % (model.rev() + 2);
                    let res = store.range(&RangeRequest { key: start.clone(), range_end: end.clone(), revision: rev, ..Default::default() });
                    let at = if rev == 0 { model.rev() } else { rev };
                    if rev > model.rev() {
                        prop_assert!(matches!(res, Err(MvccError::FutureRevision)));
                    } else if at < model.compacted {
                        prop_assert!(matches!(res, Err(MvccError::Compacted)));
                    } else {
                        let expect: Vec<KeyValue> = model.snapshots[at as usize].values().filter(|kv| in_range(&kv.key, &start, &end)).cloned().collect();
                        let got = res.unwrap();
                        prop_assert_eq!(got.count, expect.len() as i64);
                        prop_assert_eq!(got.kvs, expect);
                        prop_assert_eq!(got.header.unwrap().revision, model.rev());
                    }
                }
                Op::WriteBack => {
                    // Where a record lives (memory or backend) must not show in any answer.
                    let before = (store.hash().unwrap(), store.hash_kv(0).unwrap());
                    store.write_back_now().unwrap();
                    prop_assert_eq!((store.hash().unwrap(), store.hash_kv(0).unwrap()), before);
                }
                Op::Reopen => {
                    let before = (store.hash().unwrap(), store.hash_kv(0).unwrap());
                    store.flush().unwrap();
                    drop(store);
                    store = Store::open(&path).unwrap();
                    store.set_range_chunk_keys(2);
                    prop_assert_eq!(store.revision(), model.rev());
                    prop_assert_eq!(store.compact_revision(), model.compacted);
                    prop_assert_eq!((store.hash().unwrap(), store.hash_kv(0).unwrap()), before);
                }
            }
        }
    }
}

#[test]
fn a_range_read_in_stretches_is_one_consistent_view_while_writes_go_on() {
    let (_dir, store) = open();
    store.set_range_chunk_keys(5);
    let store = std::sync::Arc::new(store);
    let base = store.revision();
    let writer = {
        let store = store.clone();
        std::thread::spawn(move || {
            for i in 0..2000 {
                put(&store, &format!("c{i:05}"), &format!("{i}"));
                if i % 300 == 299 {
                    store.write_back_now().unwrap();
                }
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() || reads < 5 {
        let resp = store
            .range(&RangeRequest {
                key: Bytes::from_static(b"c"),
                range_end: Bytes::from_static(b"d"),
                ..Default::default()
            })
            .unwrap();
        // Exactly the keys written up to the revision the answer claims, in order.
        let written = (resp.header.unwrap().revision - base) as usize;
        assert_eq!(resp.kvs.len(), written);
        assert_eq!(resp.count as usize, written);
        for (i, kv) in resp.kvs.iter().enumerate() {
            assert_eq!(kv.key.as_ref(), format!("c{i:05}").as_bytes());
            assert_eq!(kv.mod_revision, base + 1 + i as i64);
        }
        reads += 1;
    }
    writer.join().unwrap();
}

#[test]
fn read_only_txns_evaluate_on_one_view() {
    let (_dir, store) = open();
    put(&store, "a", "1");
    put(&store, "b", "2");
    let txn = TxnRequest {
        compare: vec![cmp(
            "a",
            CompareTarget::Value,
            CompareResult::Equal,
            TargetUnion::Value(Bytes::from_static(b"1")),
        )],
        success: vec![op_get("a"), op_get("b")],
        failure: vec![op_get("b")],
    };
    assert!(txn_is_read_only(&txn));
    let resp = store.read_only_txn(&txn).unwrap();
    assert!(resp.succeeded);
    assert_eq!(resp.responses.len(), 2);
    assert_eq!(resp.header.unwrap().revision, store.revision());
    let with_put = TxnRequest {
        compare: vec![],
        success: vec![],
        failure: vec![op_put("a", "x")],
    };
    assert!(!txn_is_read_only(&with_put));
}

#[test]
fn raw_ranges_are_the_encoded_decoded_ranges() {
    use prost::Message as _;
    let (_dir, store) = open();
    store.set_range_chunk_keys(3);
    for i in 0..20 {
        put(&store, &format!("r{i:02}"), &format!("v{}", 20 - i));
    }
    store.write_back_now().unwrap();
    for i in 0..5 {
        put(&store, &format!("r{i:02}"), "again");
    }
    del(&store, "r07", "");
    let base = RangeRequest {
        key: Bytes::from_static(b"r"),
        range_end: Bytes::from_static(b"s"),
        ..Default::default()
    };
    let cases = [
        base.clone(),
        RangeRequest {
            limit: 4,
            ..base.clone()
        },
        RangeRequest {
            sort_order: SortOrder::Descend as i32,
            ..base.clone()
        },
        RangeRequest {
            sort_order: SortOrder::Descend as i32,
            limit: 3,
            ..base.clone()
        },
        RangeRequest {
            count_only: true,
            ..base.clone()
        },
        RangeRequest {
            revision: 10,
            ..base.clone()
        },
        // These take the decoding path.
        RangeRequest {
            sort_target: SortTarget::Value as i32,
            ..base.clone()
        },
        RangeRequest {
            keys_only: true,
            ..base.clone()
        },
        RangeRequest {
            min_mod_revision: 15,
            ..base.clone()
        },
    ];
    for req in cases {
        let decoded = store.range(&req).unwrap();
        let raw = store.range_raw(&req).unwrap();
        let encoded: Vec<Bytes> = decoded
            .kvs
            .iter()
            .map(|kv| Bytes::from(kv.encode_to_vec()))
            .collect();
        assert_eq!(raw.kvs, encoded, "{req:?}");
        assert_eq!(
            (raw.more, raw.count),
            (decoded.more, decoded.count),
            "{req:?}"
        );
        assert_eq!(raw.revision, decoded.header.unwrap().revision);
    }
}

#[test]
fn a_snapshot_copy_replaces_another_stores_backend() {
    let (dir, a) = open();
    for i in 0..50 {
        apply_put(
            &a,
            PutRequest {
                key: Bytes::from(format!("k{i:02}")),
                value: Bytes::from(format!("v{i}")),
                ..Default::default()
            },
            10 + i,
            2,
        );
    }
    del(&a, "k00", "k05");
    // Only what has been written back is in the copy: flush first, as a snapshot maker may
    // find any state; the copy says which index it holds.
    a.flush().unwrap();
    let copy = dir.path().join("copy.db");
    let index = a.write_snapshot(&copy).unwrap();
    assert_eq!(index, a.consistent_index());
    // Later writes are not in the copy.
    put(&a, "late", "x");

    let (_d2, b) = open();
    put(&b, "stale", "gone");
    let restored = b.restore(&copy, &[]).unwrap();
    assert_eq!(restored, index);
    assert_eq!(b.consistent_index(), index);
    assert!(!copy.exists(), "the copy is moved into place");
    assert_eq!(get(&b, "stale", "", 0).unwrap(), vec![]);
    assert_eq!(get(&b, "late", "", 0).unwrap(), vec![]);
    assert_eq!(get(&b, "k", "l", 0).unwrap().len(), 45);
    assert_eq!(b.revision(), a.revision() - 1);
    assert_eq!(b.hash_kv(0).unwrap(), {
        // The same history gives the same hash; compare against a copy of `a` at the same point.
        let again = dir.path().join("again.db");
        let (_d3, c) = open();
        a.write_snapshot(&again).unwrap();
        c.restore(&again, &[]).unwrap();
        c.hash_kv(0).unwrap()
    });
    // A restored store keeps working and survives a reopen.
    put(&b, "after", "1");
    b.flush().unwrap();
    let path = b.path.clone();
    drop(b);
    let reopened = Store::open(&path).unwrap();
    assert_eq!(get(&reopened, "k", "l", 0).unwrap().len(), 45);
    assert_eq!(get(&reopened, "after", "", 0).unwrap().len(), 1);
}

#[test]
fn a_rebased_copy_starts_a_new_log_with_its_revisions_moved_on() {
    let (dir, store) = open();
    for i in 0..20 {
        apply_put(
            &store,
            PutRequest {
                key: Bytes::from(format!("k{i}")),
                value: Bytes::from("v"),
                ..Default::default()
            },
            100 + i,
            7,
        );
    }
    store.flush().unwrap();
    let revision = store.revision();
    drop(store);
    let path = dir.path().join("db");
    let before = offline::status(&path).unwrap();
    assert_eq!(before.revision, revision);

    let rebased = offline::rebase(
        &path,
        &offline::Rebase {
            consistent_index: 3,
            term: 1,
            bump_revision: 500,
            mark_compacted: true,
            meta: vec![("member_id".into(), 9u64.to_le_bytes().to_vec())],
        },
    )
    .unwrap();
    assert_eq!(rebased.revision, revision + 500);
    assert_eq!(rebased.compact_revision, revision + 500);
    let after = offline::status(&path).unwrap();
    assert_eq!(after.revision, revision + 500);
    assert_ne!(after.hash, before.hash);

    let store = Store::open(&path).unwrap();
    // Lowered, which an apply can never do.
    assert_eq!(store.consistent_index(), 3);
    assert_eq!(store.term(), 1);
    assert_eq!(store.revision(), revision + 500);
    assert_eq!(
        store.meta("member_id").unwrap(),
        Some(9u64.to_le_bytes().to_vec())
    );
    assert!(matches!(
        get(&store, "k1", "", revision),
        Err(MvccError::Compacted)
    ));
    assert_eq!(get(&store, "k1", "", 0).unwrap().len(), 1);
    assert_eq!(put(&store, "new", "x"), revision + 501);
}

#[test]
fn offline_defragment_gives_back_the_space_of_deleted_history() {
    let (dir, store) = open();
    let big = "x".repeat(4096);
    for i in 0..500 {
        put(&store, &format!("k{i:03}"), &big);
    }
    store.flush().unwrap();
    del(&store, "k", "l");
    let at = store.revision();
    let mut a = store.begin_apply().unwrap();
    a.compact(at).unwrap();
    a.commit(0, 0, true).unwrap();
    let hash = store.hash_kv(0).unwrap();
    drop(store);
    let path = dir.path().join("db");
    let (before, after) = offline::defragment(&path, &mut |_, _| {}).unwrap();
    assert!(after * 4 < before, "{before} -> {after}");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.hash_kv(0).unwrap(), hash);
    assert!(get(&store, "k", "l", 0).unwrap().is_empty());
}

#[test]
fn writes_during_an_online_defragmentation_survive_it_and_a_reopen() {
    let (dir, store) = open();
    let store = Arc::new(store);
    let big = "x".repeat(2048);
    for i in 0..3000 {
        put(&store, &format!("old/{i:05}"), &big);
    }
    store.flush().unwrap();
    del(&store, "old/00", "old/01");
    let at = store.revision();
    let mut a = store.begin_apply().unwrap();
    a.compact(at).unwrap();
    a.commit(0, 0, false).unwrap();
    store.flush().unwrap();

    // A writer and its write-backs keep going for the whole defragmentation.
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (store, stop) = (store.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0u32;
            while !stop.load(Ordering::Relaxed) || n < 200 {
                put(&store, &format!("new/{n:06}"), "v");
                if n.is_multiple_of(50) {
                    store.write_back_now().unwrap();
                }
                n += 1;
            }
            n
        })
    };
    // (Whether the file shrinks depends on how much the writer adds meanwhile: the offline and
    // e2e tests check the shrinking; this one checks that nothing written is lost.)
    let first = store.defragment().unwrap();
    // Until one of them had write-backs to replay: that is the path this test is about.
    let mut replayed = first.replayed_batches;
    for _ in 0..50 {
        if replayed > 0 {
            break;
        }
        replayed = store.defragment().unwrap().replayed_batches;
    }
    stop.store(true, Ordering::Relaxed);
    let written = writer.join().unwrap();
    assert!(replayed > 0, "no defragmentation overlapped a write-back");
    let count = |s: &Store, from: &str, to: &str| {
        s.range(&RangeRequest {
            key: Bytes::from(from.to_owned()),
            range_end: Bytes::from(to.to_owned()),
            count_only: true,
            ..Default::default()
        })
        .unwrap()
        .count
    };
    assert_eq!(count(&store, "new/", "new0"), i64::from(written));
    assert_eq!(count(&store, "old/", "old0"), 2000);
    let hash = store.hash_kv(0).unwrap();
    store.flush().unwrap();
    drop(store);
    let reopened = Store::open(dir.path().join("db")).unwrap();
    assert_eq!(count(&reopened, "new/", "new0"), i64::from(written));
    assert_eq!(count(&reopened, "old/", "old0"), 2000);
    assert_eq!(reopened.hash_kv(0).unwrap(), hash);
}

#[test]
fn an_empty_backend_takes_what_the_constant_says() {
    let (_dir, store) = open();
    store.flush().unwrap();
    assert_eq!(store.db_size(), EMPTY_BACKEND_BYTES);
}

/// Keys-only reads at the current revision come from the key index (no record is read) and
/// equal a full read with the values taken out, in every shape a Range can have.
#[test]
fn keys_only_reads_come_from_the_index_and_equal_full_reads() {
    let (_dir, s) = open();
    for i in 0..40 {
        put(&s, &format!("k{i:02}"), &format!("v{}", 40 - i));
    }
    for i in (0..40).step_by(3) {
        put(&s, &format!("k{i:02}"), "again");
    }
    del(&s, "k05", "k08");
    put(&s, "k06", "reborn");
    apply_put(
        &s,
        PutRequest {
            key: Bytes::from_static(b"k10"),
            value: Bytes::from_static(b"leased"),
            lease: 77,
            ..Default::default()
        },
        0,
        0,
    );
    // Half of it written back to the backend, the rest still in memory.
    s.write_back_now().unwrap();
    for i in 20..30 {
        put(&s, &format!("k{i:02}"), "late");
    }
    let current = s.revision();
    let shapes = [
        RangeRequest::default(),
        RangeRequest {
            limit: 7,
            ..Default::default()
        },
        RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Mod as i32,
            ..Default::default()
        },
        RangeRequest {
            sort_order: SortOrder::Ascend as i32,
            sort_target: SortTarget::Version as i32,
            limit: 5,
            ..Default::default()
        },
        RangeRequest {
            sort_order: SortOrder::Descend as i32,
            sort_target: SortTarget::Value as i32,
            ..Default::default()
        },
        RangeRequest {
            min_mod_revision: 30,
            max_create_revision: 35,
            ..Default::default()
        },
        RangeRequest {
            revision: current - 5,
            ..Default::default()
        },
    ];
    for shape in shapes {
        let req = RangeRequest {
            key: Bytes::from_static(b"k"),
            range_end: Bytes::from_static(b"l"),
            ..shape
        };
        let mut full = s.range(&req).unwrap();
        for kv in &mut full.kvs {
            kv.value = Bytes::new();
        }
        let keys_only = s
            .range(&RangeRequest {
                keys_only: true,
                ..req.clone()
            })
            .unwrap();
        assert_eq!(keys_only, full, "{req:?}");
        assert!(!keys_only.kvs.is_empty(), "{req:?}");
    }
    let leased = s
        .range(&RangeRequest {
            key: Bytes::from_static(b"k10"),
            keys_only: true,
            ..Default::default()
        })
        .unwrap();
    assert_eq!(leased.kvs[0].lease, 77);

    // Take a record out of the backend behind the store's back: a full read now fails, a
    // keys-only read at the current revision does not notice, as it reads no record.
    let victim = s.range(&RangeRequest {
        key: Bytes::from_static(b"k01"),
        ..Default::default()
    });
    let rev = victim.unwrap().kvs[0].mod_revision;
    let w = s.db().begin_write().unwrap();
    {
        let mut t = w.open_table(KV).unwrap();
        t.remove(Revision::new(rev, 0).to_key()).unwrap();
    }
    w.commit().unwrap();
    let whole = RangeRequest {
        key: Bytes::from_static(b"k"),
        range_end: Bytes::from_static(b"l"),
        ..Default::default()
    };
    assert!(s.range(&whole).is_err());
    let keys_only = s
        .range(&RangeRequest {
            keys_only: true,
            ..whole.clone()
        })
        .unwrap();
    assert_eq!((keys_only.count, keys_only.kvs.len()), (38, 38));
    // An older revision still needs the records.
    assert!(
        s.range(&RangeRequest {
            keys_only: true,
            revision: current - 1,
            ..whole
        })
        .is_err()
    );
}

/// How long opening a store of 1M keys takes (the key index rebuilt from the backend, most of a
/// member's restart). Run with `cargo test --release -p cairn-mvcc -- --ignored --nocapture`.
#[test]
#[ignore]
fn open_time_with_a_million_keys() {
    let (dir, store) = open();
    let value = Bytes::from(vec![b'v'; 256]);
    for batch in 0..100u64 {
        let mut a = store.begin_apply().unwrap();
        for i in 0..10_000u64 {
            a.put(&PutRequest {
                key: Bytes::from(format!("{:08}", batch * 10_000 + i)),
                value: value.clone(),
                ..Default::default()
            })
            .unwrap();
        }
        a.commit(batch + 1, 1, false).unwrap();
        store.write_back_now().unwrap();
    }
    drop(store);
    for _ in 0..3 {
        let started = std::time::Instant::now();
        let store = Store::open(dir.path().join("db")).unwrap();
        println!(
            "open with 1M keys: {:?} (revision {})",
            started.elapsed(),
            store.revision()
        );
    }
}
