//! The node thread end to end on a real WAL: commit, restart, replay from the applied index, and
//! log compaction.

use cairn_raft::{CommittedEntry, NodeConfig, RaftHandle, Transport, start};
use std::sync::mpsc::{Receiver, channel};
use std::time::Duration;

/// A single member has no one to talk to.
struct NoPeers;

impl Transport for NoPeers {
    fn send(&mut self, _: u64, _: bytes::Bytes) -> bool {
        false
    }

    fn send_snapshot(&mut self, _: u64, _: bytes::Bytes, _: u64) -> bool {
        false
    }
}

/// These tests never fall far enough behind to need a snapshot.
struct NoSnapshots;

impl cairn_raft::Snapshots for NoSnapshots {
    fn make(&mut self, handle: RaftHandle, _at_least: u64) {
        handle.snapshot_made(None);
    }
}

fn config(dir: &std::path::Path, applied: u64) -> NodeConfig {
    NodeConfig {
        id: 1,
        voters: vec![1],
        learners: vec![],
        wal_dir: dir.to_path_buf(),
        tick: Duration::from_millis(10),
        election_ticks: 10,
        heartbeat_ticks: 1,
        applied,
        unsafe_no_fsync: false,
        catch_up_entries: cairn_raft::CATCH_UP_ENTRIES,
        force_new_cluster: false,
        observer: std::sync::Arc::new(cairn_raft::NoObserver),
    }
}

fn collect(rx: &Receiver<Vec<CommittedEntry>>, want: usize) -> Vec<CommittedEntry> {
    let mut got = Vec::new();
    while got
        .iter()
        .filter(|e: &&CommittedEntry| !e.data.is_empty())
        .count()
        < want
    {
        let batch = rx
            .recv_timeout(Duration::from_secs(10))
            .expect("committed entries");
        got.extend(batch);
    }
    got
}

/// Proposes p{from}..p{to}; a rejection arrives as a string on the returned channel.
fn propose_all(h: &RaftHandle, from: u32, to: u32) -> Receiver<String> {
    let (rejected, rejections) = channel();
    for i in from..to {
        let rejected = rejected.clone();
        h.propose(
            format!("p{i}").into_bytes(),
            Box::new(move |e| {
                let _ = rejected.send(format!("p{i}: {e}"));
            }),
        )
        .expect("propose");
    }
    rejections
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn commits_restarts_and_compacts() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = channel();
    let (h, thread) = start(config(dir.path(), 0), tx, NoPeers, NoSnapshots).unwrap();
    // The single voter elects itself without waiting for an election timeout.
    for _ in 0..100 {
        if h.leader() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(h.leader(), 1);
    let rejections = propose_all(&h, 0, 20);
    let got = collect(&rx, 20);
    assert!(
        rejections.try_recv().is_err(),
        "a leader rejected a proposal"
    );
    let data: Vec<_> = got
        .iter()
        .filter(|e| !e.data.is_empty())
        .map(|e| e.data.clone())
        .collect();
    assert_eq!(data[0].as_ref(), b"p0");
    assert_eq!(data[19].as_ref(), b"p19");
    let read = h.read_index().await.unwrap();
    assert!(read >= got.last().unwrap().index);
    let applied = got[10].index;
    h.stop();
    thread.join().unwrap();

    // Restart as if the state machine had applied up to `applied`. Everything above the WAL's
    // snapshot marker comes back (configuration changes in it are applied to Raft again); the
    // state machine skips what it has applied.
    let (tx, rx) = channel();
    let (h, thread) = start(config(dir.path(), applied), tx, NoPeers, NoSnapshots).unwrap();
    // Right after a restart the read index must already cover everything the previous run may
    // have acknowledged, whatever the recovered hard state says.
    let last_before = got.last().unwrap().index;
    assert!(h.read_index().await.unwrap() > last_before);
    let again = collect(&rx, 20);
    let indexes: Vec<u64> = again.iter().map(|e| e.index).collect();
    assert!(indexes.windows(2).all(|w| w[1] == w[0] + 1), "{indexes:?}");
    assert!(
        again
            .iter()
            .any(|e| e.index == applied + 1 && !e.data.is_empty())
    );

    // Compact below the applied index, add more, restart: nothing above it is lost.
    h.report_durable(applied);
    let _ = propose_all(&h, 20, 25);
    let mut all = again;
    while all
        .iter()
        .filter(|e| e.data.starts_with(b"p2") && e.data.len() == 3)
        .count()
        < 5
    {
        all.extend(rx.recv_timeout(Duration::from_secs(10)).unwrap());
    }
    h.stop();
    thread.join().unwrap();
    let (tx, rx) = channel();
    let (h, thread) = start(config(dir.path(), applied), tx, NoPeers, NoSnapshots).unwrap();
    let replay = collect(&rx, 14);
    let payloads: Vec<_> = replay
        .iter()
        .filter(|e| !e.data.is_empty())
        .map(|e| String::from_utf8(e.data.to_vec()).unwrap())
        .collect();
    assert!(payloads.contains(&"p24".to_string()), "{payloads:?}");
    assert!(!payloads.contains(&"p5".to_string()));
    h.stop();
    thread.join().unwrap();
    // A stopped node refuses proposals at once instead of leaving the proposer waiting.
    assert!(h.propose(b"late".to_vec(), Box::new(|_| {})).is_err());
}

#[test]
fn proposals_without_a_leader_are_rejected_through_the_callback() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, _rx) = channel();
    // One of two voters alone can never win an election.
    let mut cfg = config(dir.path(), 0);
    cfg.voters = vec![1, 2];
    let (h, thread) = start(cfg, tx, NoPeers, NoSnapshots).unwrap();
    let rejections = propose_all(&h, 0, 1);
    let why = rejections
        .recv_timeout(Duration::from_secs(10))
        .expect("a rejection");
    assert_eq!(why, "p0: etcdserver: no leader");
    h.stop();
    thread.join().unwrap();
}
