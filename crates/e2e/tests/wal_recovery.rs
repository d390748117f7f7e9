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

async fn put_keys(ep: &str, n: usize) {
    let c = Client::connect(&[ep.to_string()], Duration::from_secs(2))
        .await
        .unwrap();
    for i in 0..n {
        c.put(format!("key-{i:03}"), format!("v{i}")).await.unwrap();
    }
}

async fn count_keys(ep: &str) -> usize {
    let c = Client::connect(&[ep.to_string()], Duration::from_secs(2))
        .await
        .unwrap();
    c.get_prefix("key-").await.unwrap().kvs.len()
}

async fn damaged_tail_is_repaired(damage: impl Fn(&mut Vec<u8>)) {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("m1");
    let mut m = Member::start(&data, &[]);
    put_keys(&m.endpoint(), 20).await;
    m.kill9();
    let seg = last_segment(&data);
    let mut bytes = std::fs::read(&seg).unwrap();
    damage(&mut bytes);
    std::fs::write(&seg, &bytes).unwrap();
    m.restart();
    // At most the last record is gone, and it is a hard state or the last put.
    let n = count_keys(&m.endpoint()).await;
    assert!(n >= 19, "only {n} keys survived a damaged tail");
    assert!(
        m.log_text().contains("torn"),
        "repair was not logged:\n{}",
        m.log_text()
    );
    // The repaired log takes new writes and survives another crash.
    put_keys(&m.endpoint(), 25).await;
    m.restart();
    assert_eq!(count_keys(&m.endpoint()).await, 25);
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
