//! Three node threads with real WALs, connected by an in-process transport that can cut members
//! off: election, forwarding of proposals and reads from followers, failover, and catch-up.

use bytes::Bytes;
use cairn_raft::{CommittedEntry, ConfChange, NodeConfig, RaftHandle, Transport, start};
use std::collections::{HashMap, HashSet};
use std::sync::mpsc::{Receiver, channel};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Wires {
    handles: RwLock<HashMap<u64, RaftHandle>>,
    isolated: RwLock<HashSet<u64>>,
}

struct Net {
    from: u64,
    wires: Arc<Wires>,
}

impl Transport for Net {
    fn send(&mut self, to: u64, message: Bytes) -> bool {
        let isolated = self.wires.isolated.read().unwrap();
        if isolated.contains(&self.from) || isolated.contains(&to) {
            return false;
        }
        match self.wires.handles.read().unwrap().get(&to) {
            Some(h) => h.step(message).is_ok(),
            None => false,
        }
    }

    fn send_snapshot(&mut self, _: u64, _: Bytes, _: u64) -> bool {
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

struct Node {
    handle: RaftHandle,
    committed: Receiver<Vec<CommittedEntry>>,
    seen: Vec<Bytes>,
    _dir: tempfile::TempDir,
}

impl Node {
    /// Takes what has been committed so far; returns the non-empty entries seen in total.
    fn drain(&mut self) -> &[Bytes] {
        while let Ok(batch) = self.committed.try_recv() {
            self.seen.extend(
                batch
                    .into_iter()
                    .filter(|e| !e.data.is_empty())
                    .map(|e| e.data),
            );
        }
        &self.seen
    }
}

fn cluster(ids: &[u64]) -> (Arc<Wires>, HashMap<u64, Node>) {
    let wires = Arc::new(Wires::default());
    let mut nodes = HashMap::new();
    for &id in ids {
        nodes.insert(id, node(&wires, id, ids));
    }
    (wires, nodes)
}

/// A node whose first configuration is `voters` (empty for one that joins a running cluster).
fn node(wires: &Arc<Wires>, id: u64, voters: &[u64]) -> Node {
    node_with_learners(wires, id, voters, &[])
}

fn node_with_learners(wires: &Arc<Wires>, id: u64, voters: &[u64], learners: &[u64]) -> Node {
    {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = channel();
        let (handle, _thread) = start(
            NodeConfig {
                id,
                voters: voters.to_vec(),
                learners: learners.to_vec(),
                wal_dir: dir.path().to_path_buf(),
                tick: Duration::from_millis(10),
                election_ticks: 10,
                heartbeat_ticks: 1,
                applied: 0,
                unsafe_no_fsync: true,
                catch_up_entries: cairn_raft::CATCH_UP_ENTRIES,
                force_new_cluster: false,
                observer: std::sync::Arc::new(cairn_raft::NoObserver),
            },
            tx,
            Net {
                from: id,
                wires: wires.clone(),
            },
            NoSnapshots,
        )
        .unwrap();
        wires.handles.write().unwrap().insert(id, handle.clone());
        Node {
            handle,
            committed: rx,
            seen: Vec::new(),
            _dir: dir,
        }
    }
}

/// The member every given member agrees leads, once they agree.
fn agreed_leader(nodes: &HashMap<u64, Node>, among: &[u64]) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let leaders: HashSet<u64> = among.iter().map(|id| nodes[id].handle.leader()).collect();
        if leaders.len() == 1
            && let Some(&l) = leaders.iter().next()
            && l != 0
            && among.contains(&l)
            && nodes[&l]
                .handle
                .progress()
                .is_leader
                .load(std::sync::atomic::Ordering::Acquire)
        {
            return l;
        }
        assert!(
            Instant::now() < deadline,
            "no agreed leader among {among:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn propose(h: &RaftHandle, data: &str) {
    h.propose(
        data.as_bytes().to_vec(),
        Box::new(|e| panic!("rejected: {e}")),
    )
    .unwrap();
}

fn wait_for(nodes: &mut HashMap<u64, Node>, among: &[u64], want: &[&str]) {
    let want: Vec<Bytes> = want
        .iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(10);
    for id in among {
        loop {
            let seen = nodes.get_mut(id).unwrap().drain();
            if seen == want.as_slice() {
                break;
            }
            assert!(
                seen.len() <= want.len() && seen == &want[..seen.len()],
                "member {id} committed {seen:?}, expected a prefix of {want:?}"
            );
            assert!(
                Instant::now() < deadline,
                "member {id} has {seen:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_members_elect_replicate_and_forward() {
    let ids = [1, 2, 3];
    let (_wires, mut nodes) = cluster(&ids);
    let leader = agreed_leader(&nodes, &ids);
    let follower = *ids.iter().find(|&&id| id != leader).unwrap();
    propose(&nodes[&leader].handle, "a");
    // A follower's proposal is forwarded to the leader.
    propose(&nodes[&follower].handle, "b");
    wait_for(&mut nodes, &ids, &["a", "b"]);
    // A follower's read index covers everything committed before the call.
    let index = nodes[&follower].handle.read_index().await.unwrap();
    let commit = nodes[&leader]
        .handle
        .progress()
        .commit
        .load(std::sync::atomic::Ordering::Acquire);
    assert!(
        index >= 3 && index <= commit,
        "read index {index}, commit {commit}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_isolated_leader_steps_down_and_catches_up_after_healing() {
    let ids = [1, 2, 3];
    let (wires, mut nodes) = cluster(&ids);
    let old = agreed_leader(&nodes, &ids);
    propose(&nodes[&old].handle, "before");
    wait_for(&mut nodes, &ids, &["before"]);

    wires.isolated.write().unwrap().insert(old);
    let rest: Vec<u64> = ids.iter().copied().filter(|&id| id != old).collect();
    let new = agreed_leader(&nodes, &rest);
    assert_ne!(new, old);
    propose(&nodes[&new].handle, "during");
    wait_for(&mut nodes, &rest, &["before", "during"]);
    // CheckQuorum: the cut-off leader stops leading, and cannot serve a linearizable read.
    let deadline = Instant::now() + Duration::from_secs(5);
    while nodes[&old]
        .handle
        .progress()
        .is_leader
        .load(std::sync::atomic::Ordering::Acquire)
    {
        assert!(Instant::now() < deadline, "isolated leader kept leading");
        std::thread::sleep(Duration::from_millis(10));
    }
    assert!(nodes[&old].handle.read_index().await.is_err());

    wires.isolated.write().unwrap().clear();
    propose(&nodes[&new].handle, "after");
    wait_for(&mut nodes, &ids, &["before", "during", "after"]);
}

fn change(h: &RaftHandle, c: ConfChange, context: &str) {
    h.propose_conf_change(
        c,
        context.as_bytes().to_vec(),
        Box::new(|e| panic!("rejected: {e}")),
    )
    .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_learner_joins_catches_up_is_promoted_and_a_voter_leaves() {
    let ids = [1, 2, 3];
    let (wires, mut nodes) = cluster(&ids);
    let leader = agreed_leader(&nodes, &ids);
    propose(&nodes[&leader].handle, "a");
    wait_for(&mut nodes, &ids, &["a"]);

    // Node 4 is added, then starts with the configuration the cluster has at that point (the
    // bootstrap configuration is not in the log) and replays the whole log on top of it.
    change(
        &nodes[&leader].handle,
        ConfChange::AddLearner(4),
        "learner 4",
    );
    wait_for(&mut nodes, &ids, &["a", "learner 4"]);
    nodes.insert(4, node_with_learners(&wires, 4, &ids, &[4]));
    let all = [1, 2, 3, 4];
    wait_for(&mut nodes, &all, &["a", "learner 4"]);
    let p = nodes[&leader]
        .handle
        .member_progress(4)
        .await
        .unwrap()
        .unwrap();
    assert!(p.matched >= 1 && p.matched <= p.leader_last, "{p:?}");
    // A follower does not know progress.
    let follower = *ids.iter().find(|&&i| i != leader).unwrap();
    assert_eq!(
        nodes[&follower].handle.member_progress(4).await.unwrap(),
        None
    );

    change(&nodes[&leader].handle, ConfChange::AddVoter(4), "voter 4");
    wait_for(&mut nodes, &all, &["a", "learner 4", "voter 4"]);

    // Remove a voter that is not the leader; the other three go on without it.
    let gone = *ids.iter().find(|&&i| i != leader).unwrap();
    change(&nodes[&leader].handle, ConfChange::Remove(gone), "remove");
    let rest: Vec<u64> = all.iter().copied().filter(|&i| i != gone).collect();
    wait_for(&mut nodes, &rest, &["a", "learner 4", "voter 4", "remove"]);
    wires.isolated.write().unwrap().insert(gone);
    propose(&nodes[&leader].handle, "b");
    wait_for(
        &mut nodes,
        &rest,
        &["a", "learner 4", "voter 4", "remove", "b"],
    );
}
