//! WAL damage on disk: a torn or bit-flipped tail is repaired on start; a corrupt record in the
//! middle stops the member with a clear error and leaves the files as they were.

use cairn_client::Client;
use cairn_e2e::{Member, wal_written_len};
use std::path::{Path, PathBuf};
use std::time::Duration;

fn last_segment(data_dir: &Path) -> PathBuf {
    let mut segs: Vec<PathBuf> = std::fs::read_dir(data_dir.join("member/wal"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "wal"))
        .collect();
    segs.sort();
    segs.pop().expect("a WAL segment")
}

/// Puts `key-000`.. in order; returns the revision each was acknowledged at.
async fn put_keys(ep: &str, n: usize) -> Vec<i64> {
    let c = Client::connect(&[ep.to_string()], Duration::from_secs(2))
        .await
        .unwrap();
    let mut revisions = Vec::with_capacity(n);
    for i in 0..n {
        let r = c.put(format!("key-{i:03}"), format!("v{i}")).await.unwrap();
        revisions.push(r.header.unwrap().revision);
    }
    revisions
}

/// How many of the keys `put_keys` acknowledged survived, checking that each survivor has its
/// value and its acknowledged revision, and that only a suffix of the writes is missing.
async fn surviving_keys(ep: &str, acknowledged: &[i64]) -> usize {
    let c = Client::connect(&[ep.to_string()], Duration::from_secs(2))
        .await
        .unwrap();
    let kvs = c.get_prefix("key-").await.unwrap().kvs;
    for (i, kv) in kvs.iter().enumerate() {
        assert_eq!(
            kv.key.as_ref(),
            format!("key-{i:03}").as_bytes(),
            "a gap in the log"
        );
        assert_eq!(kv.value.as_ref(), format!("v{i}").as_bytes());
        assert_eq!(
            kv.mod_revision, acknowledged[i],
            "key-{i:03} moved revision"
        );
    }
    kvs.len()
}

async fn damaged_tail_is_repaired(damage: impl Fn(&mut Vec<u8>)) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("m1");
    let mut m = Member::start(&data, &[]);
    let acknowledged = put_keys(&m.endpoint(), 20).await;
    m.kill9();
    let seg = last_segment(&data);
    let mut bytes = std::fs::read(&seg).unwrap();
    damage(&mut bytes);
    std::fs::write(&seg, &bytes).unwrap();
    m.restart();
    // At most the last record is gone, and it is a hard state or the last put.
    let n = surviving_keys(&m.endpoint(), &acknowledged).await;
    assert!(n >= 19, "only {n} keys survived a damaged tail");
    assert!(
        m.log_text().contains("torn"),
        "repair was not logged:\n{}",
        m.log_text()
    );
    // The repaired log takes new writes and survives another crash.
    let acknowledged = put_keys(&m.endpoint(), 25).await;
    m.restart();
    assert_eq!(surviving_keys(&m.endpoint(), &acknowledged).await, 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_tail_is_repaired() {
    damaged_tail_is_repaired(|b| {
        let n = wal_written_len(b);
        b.truncate(n - 5);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bit_flipped_tail_is_repaired() {
    damaged_tail_is_repaired(|b| {
        let n = wal_written_len(b);
        b[n - 2] ^= 0x10;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torn_write_inside_the_preallocated_segment_is_repaired() {
    // The last sector of the last write never reached the disk: it reads back as zeros, while
    // the bytes before it hold half a record.
    damaged_tail_is_repaired(|b| {
        let n = wal_written_len(b);
        b[n - 7..n].fill(0);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corruption_in_the_middle_stops_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("m1");
    let mut m = Member::start(&data, &[]);
    put_keys(&m.endpoint(), 50).await;
    m.kill9();
    let seg = last_segment(&data);
    let mut bytes = std::fs::read(&seg).unwrap();
    let mid = wal_written_len(&bytes) / 2;
    bytes[mid] ^= 0x01;
    std::fs::write(&seg, &bytes).unwrap();
    let status = m
        .run_to_exit(Duration::from_secs(20))
        .expect("member must exit on a corrupt WAL");
    assert!(!status.success());
    let log = m.log_text();
    assert!(log.contains("corrupt record"), "{log}");
    assert!(log.contains("Refusing to start"), "{log}");
    assert_eq!(std::fs::read(&seg).unwrap(), bytes, "the WAL was modified");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_replaced_by_an_older_copy_stops_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("m1");
    let mut m = Member::start(&data, &["--snapshot-count", "100"]);
    put_keys(&m.endpoint(), 5).await;
    m.kill9();
    let db = data.join("member/snap/db");
    let early = std::fs::read(&db).unwrap();
    m.restart();
    put_keys(&m.endpoint(), 400).await;
    m.kill9();
    std::fs::write(&db, &early).unwrap();
    let status = m
        .run_to_exit(Duration::from_secs(20))
        .expect("a member whose backend is older than its WAL must not start");
    assert!(!status.success());
    let log = m.log_text();
    assert!(
        log.contains("the backend has applied index")
            && log.contains("but the WAL's snapshot is at index"),
        "{log}"
    );
    assert!(
        log.contains("restore the member's data from a snapshot"),
        "{log}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_backend_with_a_surviving_wal_dir_stops_the_member() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("m1");
    let wal = dir.path().join("wal");
    let wal_arg = wal.to_string_lossy().into_owned();
    let mut m = Member::start(&data, &["--snapshot-count", "100", "--wal-dir", &wal_arg]);
    put_keys(&m.endpoint(), 400).await;
    m.kill9();
    std::fs::remove_dir_all(&data).unwrap();
    let status = m
        .run_to_exit(Duration::from_secs(20))
        .expect("a member whose backend is gone while its WAL survives must not start");
    assert!(!status.success());
    let log = m.log_text();
    assert!(
        log.contains("the backend has applied index 0 but the WAL's snapshot is at index"),
        "{log}"
    );
}
