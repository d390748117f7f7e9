//! What the migration tests (etcd → Cairn and Cairn → etcd) do on both sides: a history with
//! overwrites, deletions, a compaction, a lease and a transaction; the state and history as
//! etcdctl shows them; and auth set up with users, roles and permissions to compare answers.

use crate::{Bg, Member, Run, cairnutl, etcdctl, normalized};
use serde_json::Value;
use std::time::Duration;

pub fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "{run:?}");
    run
}

pub fn json(run: Run) -> Value {
    let run = ok(run);
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

/// Keys with values, create/mod revisions, versions and leases, as `get -w json` shows them,
/// and the revision.
pub fn state(ep: &str, extra: &[&str]) -> (Value, Value) {
    let mut args = vec!["get", "", "--prefix", "-w", "json"];
    args.extend_from_slice(extra);
    let v = json(etcdctl(ep, &args, None));
    (v["kvs"].clone(), v["header"]["revision"].clone())
}

/// What [`write_history`] left to compare.
pub struct History {
    /// The revision of the deletion; the compaction is 50 below it.
    pub mid: i64,
    pub lease_id: String,
    pub state: Value,
    pub revision: Value,
    /// The state 10 revisions before the deletion.
    pub old_state: Value,
    /// What a watch replaying `k/` from 10 revisions before the deletion reports.
    pub events: Vec<Value>,
}

/// Puts, overwrites, a deletion of two keys, a compaction, a lease with a key and a
/// transaction, on the member at `ep`.
pub fn write_history(ep: &str) -> History {
    for i in 0..300 {
        ok(etcdctl(
            ep,
            &["put", &format!("k/{i:03}"), &format!("v{i}")],
            None,
        ));
    }
    for i in (0..300).step_by(3) {
        ok(etcdctl(ep, &["put", &format!("k/{i:03}"), "again"], None));
    }
    ok(etcdctl(ep, &["del", "k/010", "k/020"], None));
    let mid = state(ep, &[]).1.as_i64().unwrap_or_default();
    ok(etcdctl(ep, &["compaction", &(mid - 50).to_string()], None));
    let lease = json(etcdctl(ep, &["lease", "grant", "600", "-w", "json"], None));
    let lease_id = format!("{:x}", lease["ID"].as_i64().unwrap_or_default());
    ok(etcdctl(
        ep,
        &["put", "leased", "x", "--lease", &lease_id],
        None,
    ));
    ok(etcdctl(ep, &["txn"], Some("\nput t/1 a\nput t/2 b\n\n\n")));
    let (state_now, revision) = state(ep, &[]);
    let old_state = state(ep, &["--rev", &(mid - 10).to_string()]).0;
    let events = replayed_events(ep, mid - 10);
    History {
        mid,
        lease_id,
        state: state_now,
        revision,
        old_state,
        events,
    }
}

/// The events a watch replaying `k/` from `from` reports.
pub fn replayed_events(ep: &str, from: i64) -> Vec<Value> {
    let watch = Bg::etcdctl(
        ep,
        &[
            "watch",
            "--prefix",
            "k/",
            "--rev",
            &from.to_string(),
            "-w",
            "json",
        ],
    );
    let mut events = Vec::new();
    for line in watch.drain(Duration::from_secs(3)) {
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        events.extend(v["Events"].as_array().cloned().unwrap_or_default());
    }
    events
}

/// Asserts that the member at `ep` holds `history` as the member it was written on did:
/// state, revision, history above the compaction, the compaction's error below it, watch
/// replay, the lease, and the next write's revision.
pub fn assert_same_history(ep: &str, history: &History) {
    let (got, got_revision) = state(ep, &[]);
    assert_eq!(got, history.state);
    assert_eq!(got_revision, history.revision);
    let mid = history.mid;
    assert_eq!(
        state(ep, &["--rev", &(mid - 10).to_string()]).0,
        history.old_state
    );
    let old = etcdctl(
        ep,
        &["get", "k/001", "--rev", &(mid - 60).to_string()],
        None,
    );
    assert!(
        old.stderr.contains("required revision has been compacted"),
        "{old:?}"
    );
    // Deletions are replayed with their revision.
    let replayed = replayed_events(ep, mid - 10);
    assert!(
        replayed
            .iter()
            .any(|e| e["kv"]["mod_revision"].as_i64() == Some(mid) && e["type"] == 1),
        "no deletion at {mid}: {replayed:?}"
    );
    assert_eq!(replayed, history.events);
    let ttl = json(etcdctl(
        ep,
        &[
            "lease",
            "timetolive",
            &history.lease_id,
            "--keys",
            "-w",
            "json",
        ],
        None,
    ));
    assert!(ttl["ttl"].as_i64().unwrap_or_default() > 500, "{ttl}");
    assert_eq!(ttl["granted-ttl"].as_i64(), Some(600), "{ttl}");
    let put = json(etcdctl(ep, &["put", "after", "1", "-w", "json"], None));
    assert_eq!(
        put["header"]["revision"].as_i64(),
        Some(history.revision.as_i64().unwrap_or_default() + 1)
    );
}

/// Users root and alice, role r with readwrite on `a/`, auth on, and a key in `a/` and `b/`.
pub fn set_up_auth(ep: &str) {
    for step in [
        &["user", "add", "root:pw"][..],
        &["user", "add", "alice:apw"],
        &["role", "add", "r"],
        &[
            "role",
            "grant-permission",
            "r",
            "readwrite",
            "a/",
            "--prefix",
        ],
        &["user", "grant-role", "alice", "r"],
        &["auth", "enable"],
    ] {
        ok(etcdctl(ep, step, None));
    }
    for key in ["a/1", "b/1"] {
        ok(etcdctl(ep, &["--user", "root:pw", "put", key, "v"], None));
    }
}

/// The members at `ours` and `theirs` give the same answers to credentials and permissions
/// [`set_up_auth`] set up.
pub fn assert_same_auth(ours: &str, theirs: &str) {
    for args in [
        &["get", "a/1"][..],
        &["--user", "root:pw", "get", "b/1"],
        &["--user", "alice:apw", "get", "a/1"],
        &["--user", "alice:apw", "get", "b/1"],
        &["--user", "alice:nope", "get", "a/1"],
        &["--user", "root:pw", "user", "list"],
        &["--user", "root:pw", "role", "get", "r"],
        &["--user", "root:pw", "user", "get", "alice"],
    ] {
        let expected = etcdctl(theirs, args, None);
        let got = etcdctl(ours, args, None);
        assert_eq!(normalized(&got), normalized(&expected), "{args:?}");
    }
}

/// etcdctl (at `ep`, for its client side only) and cairnutl print the same status of the
/// snapshot file `file` in every output format.
pub fn assert_same_snapshot_status(ep: &str, file: &str) {
    for format in ["simple", "json", "table"] {
        let theirs = ok(etcdctl(
            ep,
            &["snapshot", "status", file, "-w", format],
            None,
        ));
        let ours = ok(cairnutl(&["snapshot", "status", file, "-w", format]));
        assert_eq!(ours.stdout, theirs.stdout, "{format}");
    }
}

/// A one-member Cairn (not started) and `cairnutl snapshot restore` of `file` into its data dir
/// under `dir`,
/// with `extra` flags; the member is set up to start as the restored cluster.
pub fn restore_into(dir: &std::path::Path, file: &str, extra: &[&str]) -> (Member, Run) {
    let mut m = Member::unstarted("m1", &dir.join("m1"), &[]);
    let peer = m.peer_url();
    let data = m.data_dir.to_str().unwrap().to_string();
    let initial = format!("m1={peer}");
    let mut args = vec![
        "snapshot",
        "restore",
        file,
        "--name",
        "m1",
        "--initial-cluster",
        &initial,
        "--initial-advertise-peer-urls",
        &peer,
        "--data-dir",
        &data,
    ];
    args.extend_from_slice(extra);
    let run = cairnutl(&args);
    m.initial_cluster = Some(initial);
    (m, run)
}
