//! Nothing acknowledged is lost: concurrent writers put unique keys while `cairn` is killed with
//! SIGKILL at random moments, then restarted; every acknowledged put must be there with the
//! revision it was acknowledged with, and revisions must never go backwards.

use cairn_client::{Client, cairn_proto::etcdserverpb::StatusRequest};
use cairn_e2e::Member;
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

type Acked = Arc<Mutex<BTreeMap<String, (String, i64)>>>;

async fn writer(endpoint: String, prefix: String, acked: Acked) {
    let Ok(client) = Client::connect(&[endpoint], Duration::from_secs(2)).await else {
        return;
    };
    for i in 0.. {
        let key = format!("{prefix}-{i:06}");
        let value = format!("value of {key}");
        match client.put(key.clone(), value.clone()).await {
            Ok(resp) => {
                let rev = resp.header.map_or(0, |h| h.revision);
                acked.lock().unwrap().insert(key, (value, rev));
            }
            // The member was killed: whatever was not acknowledged may or may not be there.
            Err(_) => return,
        }
    }
}

async fn verify(endpoint: &str, acked: &Acked, min_rev: i64) -> i64 {
    let client = Client::connect(&[endpoint.to_string()], Duration::from_secs(5))
        .await
        .unwrap();
    let all = client.get_prefix("w").await.unwrap();
    let found: BTreeMap<String, (String, i64)> = all
        .kvs
        .iter()
        .map(|kv| {
            (
                String::from_utf8(kv.key.to_vec()).unwrap(),
                (
                    String::from_utf8(kv.value.to_vec()).unwrap(),
                    kv.mod_revision,
                ),
            )
        })
        .collect();
    let acked = acked.lock().unwrap().clone();
    for (k, (v, rev)) in acked.iter() {
        match found.get(k) {
            Some((fv, frev)) => {
                assert_eq!(fv, v, "value of acknowledged key {k}");
                assert_eq!(frev, rev, "revision of acknowledged key {k}");
            }
            None => panic!("acknowledged key {k} (revision {rev}) was lost"),
        }
    }
    let status = client
        .maintenance()
        .status(StatusRequest {})
        .await
        .unwrap()
        .into_inner();
    let rev = status.header.unwrap().revision;
    let max_acked = acked.values().map(|(_, r)| *r).max().unwrap_or(0);
    assert!(
        rev >= max_acked,
        "store revision {rev} < acknowledged {max_acked}"
    );
    assert!(rev >= min_rev, "revision went backwards: {rev} < {min_rev}");
    rev
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn acknowledged_puts_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    // A small snapshot count makes the WAL compact (and restarts replay from a snapshot marker)
    // several times during the test.
    let mut member = Member::start(&dir.path().join("m1"), &["--snapshot-count", "300"]);
    let acked: Acked = Arc::default();
    let mut last_rev = 0;
    let kill_after_ms = [700u64, 250, 1200, 450, 900, 150];
    for (round, delay) in kill_after_ms.iter().enumerate() {
        let writers: Vec<_> = (0..16)
            .map(|w| {
                tokio::spawn(writer(
                    member.endpoint(),
                    format!("w{round}-{w:02}"),
                    acked.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(*delay)).await;
        member.kill9();
        let t = std::time::Instant::now();
        for w in writers {
            w.await.unwrap();
        }
        eprintln!("writers stopped in {:?}", t.elapsed());
        let t = std::time::Instant::now();
        member.restart();
        eprintln!("restart in {:?}", t.elapsed());
        let t = std::time::Instant::now();
        last_rev = verify(&member.endpoint(), &acked, last_rev).await;
        eprintln!(
            "verify in {:?}, acked {}",
            t.elapsed(),
            acked.lock().unwrap().len()
        );
    }
    let total = acked.lock().unwrap().len();
    assert!(
        total > 300,
        "too few acknowledged writes to mean anything: {total}"
    );
    // Log compaction keeps the WAL bounded: without it, every acknowledged put would still be in
    // it (well over 100 bytes each). Segments are preallocated, so count what was written: up to
    // the zeros that follow the last record.
    let wal_bytes: u64 = std::fs::read_dir(dir.path().join("m1/member/wal"))
        .unwrap()
        .map(|e| cairn_e2e::wal_written_len(&std::fs::read(e.unwrap().path()).unwrap()) as u64)
        .sum();
    assert!(
        wal_bytes < 64 * 1024 + 300 * 512,
        "WAL holds {wal_bytes} bytes after {total} puts with --snapshot-count 300"
    );
}
