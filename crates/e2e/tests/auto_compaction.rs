//! `--auto-compaction-mode` and `--auto-compaction-retention`: history older than the
//! retention is compacted away by the member itself, and nothing younger.

use cairn_e2e::{Member, etcdctl};
use serde_json::Value;
use std::time::{Duration, Instant};

fn revision_of_put(ep: &str, key: &str) -> i64 {
    let out = etcdctl(ep, &["put", key, "v", "-w", "json"], None);
    assert_eq!(out.code, 0, "{out:?}");
    let v: Value = serde_json::from_str(&out.stdout).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

fn compacted_at(ep: &str, rev: i64) -> bool {
    let out = etcdctl(ep, &["get", "k", "--rev", &rev.to_string()], None);
    if out.code == 0 {
        return false;
    }
    assert!(
        out.stderr.contains("required revision has been compacted"),
        "{out:?}"
    );
    true
}

#[test]
fn periodic_retention_compacts_what_is_older_than_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(
        &dir.path().join("m1"),
        &["--auto-compaction-retention", "2s"],
    );
    let ep = m.endpoint();
    let first = revision_of_put(&ep, "k");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let now = revision_of_put(&ep, "k");
        if compacted_at(&ep, first) {
            // Compaction only reaches revisions sampled a retention ago: what was just written
            // is still there.
            assert!(!compacted_at(&ep, now), "revision {now} compacted at once");
            break;
        }
        assert!(Instant::now() < deadline, "nothing was compacted in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn revision_retention_keeps_exactly_that_many_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::unstarted(
        "m1",
        &dir.path().join("m1"),
        &[
            "--auto-compaction-mode",
            "revision",
            "--auto-compaction-retention",
            "10",
        ],
    );
    // Look every 200 ms instead of every 5 minutes.
    m.env.push((
        "CAIRN_FAILPOINT_REVISION_COMPACTION_INTERVAL_MS".into(),
        "200".into(),
    ));
    m.launch();
    let ep = m.endpoint();
    let mut last = 0;
    for _ in 0..30 {
        last = revision_of_put(&ep, "k");
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while !compacted_at(&ep, last - 11) {
        assert!(
            Instant::now() < deadline,
            "revision {} never compacted",
            last - 11
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Settled: the last ten revisions before the current one stay readable.
    std::thread::sleep(Duration::from_millis(600));
    assert!(!compacted_at(&ep, last - 10));

    let mut wrong = Member::unstarted(
        "m1",
        &dir.path().join("m2"),
        &["--auto-compaction-mode", "daily"],
    );
    let status = wrong.run_to_exit(Duration::from_secs(10));
    assert!(status.is_some_and(|s| !s.success()));
    assert!(
        wrong
            .log_text()
            .contains("unknown auto-compaction-mode \"daily\""),
        "{}",
        wrong.log_text()
    );
}
