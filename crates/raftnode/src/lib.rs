//! Cairn's Raft node.
//!
//! Owns: one thread that owns `raft::RawNode` and the WAL. It batches proposals and ReadIndex
//! requests (everything that arrived since the last step goes into one Ready), persists each
//! Ready with a single WAL fsync, hands committed entries to the apply loop over a channel,
//! hands messages for other members to a [`Transport`], steps the messages they send back, and
//! compacts the log once the state machine reports a durable index.
//!
//! Must not: touch MVCC or know what an entry means, or do network I/O. Entries and messages
//! leave this crate as opaque bytes ([`CommittedEntry`], [`Transport::send`]); no raft type
//! crosses the crate boundary.
//!
//! No lock surrounds the Raft state: other tasks talk to the node thread through [`RaftHandle`]'s
//! channel and read its progress from atomics.

mod commit_notice;
mod logstore;

use bytes::Bytes;
use cairn_wal::{EntryRecord, SnapshotRecord, Wal};
use logstore::LogStore;
use prost011::Message as _;
use raft::eraftpb::{
    ConfChangeSingle, ConfChangeType, ConfChangeV2, ConfState, Entry, EntryType, HardState,
    SnapshotMetadata,
};
use raft::{RawNode, StateRole};
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};
use tokio::sync::oneshot;

/// Errors from the Raft node.
#[derive(Debug, thiserror::Error)]
pub enum RaftError {
    #[error("etcdserver: no leader")]
    NoLeader,
    #[error("etcdserver: leader changed")]
    LeaderChanged,
    #[error("etcdserver: server stopped")]
    Stopped,
    #[error("raft: wal: {0}")]
    Wal(#[from] cairn_wal::WalError),
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    #[error("raft: corrupt log record at index {index}: {reason}")]
    Corrupt { index: u64, reason: String },
    #[error("raft: {0}")]
    Invalid(String),
    #[error(
        "raft: a proposal of {0} bytes is larger than a log entry can be ({MAX_PROPOSAL_BYTES})"
    )]
    ProposalTooLarge(usize),
}

/// The largest proposal the log accepts: what a WAL entry record holds, less room for the Raft
/// entry's own fields (index, term, type, context framing).
pub const MAX_PROPOSAL_BYTES: usize = cairn_wal::MAX_ENTRY_DATA_LEN - 64;

/// Entries kept in the log below a compaction point by default, so that a follower that is
/// only a little behind catches up from the log rather than needing the whole state machine
/// (etcd's SnapshotCatchUpEntries).
pub const CATCH_UP_ENTRIES: u64 = 5000;

/// The most entry data kept below a compaction point for followers a little behind, whatever
/// the entry count allows: 5000 entries of 1.5 MiB would be 7.5 GiB of memory.
pub const CATCH_UP_BYTES: u64 = 32 << 20;

/// How long a ReadIndex request may go unanswered before it is sent again (the message, or
/// the leader's answer, may have been lost).
/// How far past a snapshot being made or sent the leader lets its log grow before it compacts
/// anyway. The member catching up continues from the log right after its snapshot: compacting
/// past that point while a large backend is copied or streamed (seconds, with writes going on)
/// sends it back for another copy, and a busy cluster can keep it chasing for ever.
const MAX_ENTRIES_HELD_FOR_SNAPSHOTS: u64 = 100_000;

/// How long after delivering a snapshot the leader waits for its member's first answer before
/// it stops holding the log for it.
const DELIVERED_SNAPSHOT_HOLD: Duration = Duration::from_secs(30);

const READ_INDEX_RETRY: Duration = Duration::from_millis(500);

/// Carries messages to other members. Called on the node thread: it must not block.
pub trait Transport: Send + 'static {
    /// Queues an encoded Raft message for member `to`; false if it was dropped (queue full or
    /// peer unknown), which the node reports to Raft as the peer being unreachable.
    fn send(&mut self, to: u64, message: Bytes) -> bool;

    /// Sends a snapshot message together with the state machine copy made for `index`, on a
    /// path of its own so that the copy never delays other messages. The outcome is reported
    /// with [`RaftHandle::report_snapshot`]; false if it cannot even start.
    fn send_snapshot(&mut self, to: u64, message: Bytes, index: u64) -> bool;
}

/// How the node is set up.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub id: u64,
    /// Voting members of a new cluster, or of the cluster a new member joins. Written, with
    /// `learners`, into an empty WAL as its first configuration; ignored once the WAL holds one.
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    pub wal_dir: PathBuf,
    pub tick: Duration,
    pub election_ticks: usize,
    pub heartbeat_ticks: usize,
    /// The state machine's consistent index: entries up to it are not handed out again.
    pub applied: u64,
    /// etcd's `--unsafe-no-fsync`: write the WAL without making it durable (tests only).
    pub unsafe_no_fsync: bool,
    /// Entries kept below a compaction point when there are other members
    /// ([`CATCH_UP_ENTRIES`] by default).
    pub catch_up_entries: u64,
    /// etcd's `--force-new-cluster`: drop the uncommitted tail of the log and commit the
    /// removal of every other member, so that this one goes on alone with its data.
    pub force_new_cluster: bool,
    /// Told of what the node does, for metrics and logs.
    pub observer: Arc<dyn Observer>,
}

/// What the node reports as it works, for the server's metrics and logs. Called on the node
/// thread: must not block.
pub trait Observer: Send + Sync + 'static {
    /// WAL records were made durable by one fsync that took `took`.
    fn wal_synced(&self, _took: Duration) {}
    /// `bytes` more were written to the WAL.
    fn wal_written(&self, _bytes: u64) {}
    /// The leader this node knows of is now `leader` (0: none) in `term`.
    fn leader_changed(&self, _leader: u64, _term: u64) {}
    /// A heartbeat could not be handed to the transport (its peer's queue is full or gone).
    fn heartbeat_send_failed(&self) {}
    /// A ReadIndex went unanswered for a while and was sent again.
    fn read_index_slow(&self) {}
    /// A batch of reads failed: the leader changed, or there was none.
    fn read_index_failed(&self) {}
}

impl std::fmt::Debug for dyn Observer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Observer")
    }
}

/// An observer that ignores everything.
pub struct NoObserver;

impl Observer for NoObserver {}

/// A committed log entry on its way to the state machine.
#[derive(Debug, Clone)]
pub struct CommittedEntry {
    pub index: u64,
    pub term: u64,
    /// Empty for the no-op entries a new leader appends. For a configuration change, the
    /// context it was proposed with, once Raft has applied the change (empty if Raft refused it).
    pub data: Bytes,
    /// Not an entry: the state machine must install the snapshot received for `index` (see
    /// [`Snapshots`]) before it applies anything after it.
    pub install_snapshot: bool,
}

/// The state machine's side of Raft snapshots (copies of the whole state machine for members
/// too far behind for the log). Called on the node thread: must not block.
pub trait Snapshots: Send + 'static {
    /// Make a durable copy of the state machine in the background, once it has applied at least
    /// `at_least` (what this node has handed to it, configuration changes included: a copy from
    /// before the change that added a member would not do for that member), then report the
    /// log index it holds with [`RaftHandle::snapshot_made`] (None if it failed).
    fn make(&mut self, handle: RaftHandle, at_least: u64);
}

/// A change of who takes part in Raft, one member at a time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfChange {
    /// Add a voter, or promote a learner to one.
    AddVoter(u64),
    AddLearner(u64),
    Remove(u64),
}

/// What the leader knows of a member's log: how far it matches, and the leader's own last index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemberProgress {
    pub matched: u64,
    pub leader_last: u64,
}

/// Where committed entries go, in order, in batches. Called on the node thread: an
/// implementation must hand heavy work to another thread rather than do it here.
pub trait CommitSink: Send + 'static {
    fn committed(&mut self, batch: Vec<CommittedEntry>);
}

impl CommitSink for Sender<Vec<CommittedEntry>> {
    fn committed(&mut self, batch: Vec<CommittedEntry>) {
        // The receiver going away means the server is shutting down.
        let _ = self.send(batch);
    }
}

/// Progress of the node, readable from any thread.
#[derive(Debug, Default)]
pub struct Progress {
    pub term: AtomicU64,
    pub leader: AtomicU64,
    pub commit: AtomicU64,
    pub last_index: AtomicU64,
    pub is_leader: AtomicBool,
    /// This node is the configuration's only voter.
    pub sole_voter: AtomicBool,
    /// The leader has committed an entry of its own term, so its commit index covers every
    /// entry an earlier leader may have acknowledged.
    pub committed_in_term: AtomicBool,
}

/// Called on the node thread if a proposal cannot be appended (no leader, node stopping).
pub type RejectFn = Box<dyn FnOnce(RaftError) + Send>;

enum Command {
    Propose {
        data: Vec<u8>,
        on_reject: RejectFn,
    },
    ReadIndex {
        done: oneshot::Sender<Result<u64, RaftError>>,
    },
    /// The state machine has made everything up to `index` durable.
    Durable {
        index: u64,
    },
    ProposeConfChange {
        change: ConfChange,
        context: Vec<u8>,
        on_reject: RejectFn,
    },
    /// The leader's view of a member's log.
    Progress {
        member: u64,
        done: oneshot::Sender<Option<MemberProgress>>,
    },
    TransferLeader(u64),
    /// A state machine copy for snapshots is durable and holds the log up to this index.
    SnapshotMade(Option<u64>),
    /// Whether a snapshot reached `to`.
    ReportSnapshot {
        to: u64,
        delivered: bool,
    },
    /// An encoded Raft message from another member.
    Step(Bytes),
    /// The transport lost its connection to this member.
    Unreachable(u64),
    Stop,
}

/// Cheap to clone; talks to the node thread.
#[derive(Clone)]
pub struct RaftHandle {
    tx: Sender<Command>,
    progress: Arc<Progress>,
    id: u64,
}

impl RaftHandle {
    /// Queues `data` for the log without waiting: the outcome arrives through the apply loop, or
    /// through `on_reject` if the node cannot take it. Not waiting for an acceptance saves the
    /// proposer a wake-up per write, which is most of what a single write costs besides fsync.
    pub fn propose(&self, data: Vec<u8>, on_reject: RejectFn) -> Result<(), RaftError> {
        if data.len() > MAX_PROPOSAL_BYTES {
            return Err(RaftError::ProposalTooLarge(data.len()));
        }
        self.tx
            .send(Command::Propose { data, on_reject })
            .map_err(|_| RaftError::Stopped)
    }

    /// A commit index that a linearizable read must wait for the state machine to reach.
    pub async fn read_index(&self) -> Result<u64, RaftError> {
        if let Some(index) = self.local_read_index() {
            return Ok(index);
        }
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::ReadIndex { done })
            .map_err(|_| RaftError::Stopped)?;
        rx.await.map_err(|_| RaftError::Stopped)?
    }

    /// Queues a configuration change; like [`RaftHandle::propose`], its outcome arrives through
    /// the apply loop (as an entry carrying `context`) or through `on_reject`.
    pub fn propose_conf_change(
        &self,
        change: ConfChange,
        context: Vec<u8>,
        on_reject: RejectFn,
    ) -> Result<(), RaftError> {
        self.tx
            .send(Command::ProposeConfChange {
                change,
                context,
                on_reject,
            })
            .map_err(|_| RaftError::Stopped)
    }

    /// How far `member`'s log matches the leader's; None unless this node leads and knows it.
    pub async fn member_progress(&self, member: u64) -> Result<Option<MemberProgress>, RaftError> {
        let (done, rx) = oneshot::channel();
        self.tx
            .send(Command::Progress { member, done })
            .map_err(|_| RaftError::Stopped)?;
        rx.await.map_err(|_| RaftError::Stopped)
    }

    /// Asks the leader (this node) to hand leadership to `member`.
    pub fn transfer_leader(&self, member: u64) -> Result<(), RaftError> {
        self.tx
            .send(Command::TransferLeader(member))
            .map_err(|_| RaftError::Stopped)
    }

    /// Reports a state machine copy made for snapshots (see [`Snapshots::make`]).
    pub fn snapshot_made(&self, index: Option<u64>) {
        let _ = self.tx.send(Command::SnapshotMade(index));
    }

    /// Reports whether a snapshot sent to `to` arrived.
    pub fn report_snapshot(&self, to: u64, delivered: bool) {
        let _ = self.tx.send(Command::ReportSnapshot { to, delivered });
    }

    /// Hands an encoded Raft message received from another member to the node.
    pub fn step(&self, message: Bytes) -> Result<(), RaftError> {
        self.tx
            .send(Command::Step(message))
            .map_err(|_| RaftError::Stopped)
    }

    /// Tells Raft that messages to `member` are being lost, so it probes instead of streaming.
    pub fn report_unreachable(&self, member: u64) {
        let _ = self.tx.send(Command::Unreachable(member));
    }

    /// Tells the node the state machine durably holds everything up to `index`; the log below
    /// it may be compacted.
    pub fn report_durable(&self, index: u64) {
        let _ = self.tx.send(Command::Durable { index });
    }

    /// A leader that is the only voter needs no quorum round for a read: no other leader can
    /// exist, so once it has committed in its term its commit index is the read index. Answering
    /// here saves the round trip through the node thread, which on a small VM costs more than
    /// the read itself.
    fn local_read_index(&self) -> Option<u64> {
        let p = &self.progress;
        let ready = p.is_leader.load(Ordering::Acquire)
            && p.sole_voter.load(Ordering::Acquire)
            && p.committed_in_term.load(Ordering::Acquire);
        // Loaded after the flags that were stored after it: at least the commit they vouch for.
        ready.then(|| p.commit.load(Ordering::Acquire))
    }

    pub fn stop(&self) {
        let _ = self.tx.send(Command::Stop);
    }

    pub fn progress(&self) -> &Progress {
        &self.progress
    }

    pub fn id(&self) -> u64 {
        self.id
    }

    pub fn term(&self) -> u64 {
        self.progress.term.load(Ordering::Acquire)
    }

    pub fn leader(&self) -> u64 {
        self.progress.leader.load(Ordering::Acquire)
    }
}

/// Forwards raft-rs's slog records to `tracing`.
struct TracingDrain;

impl slog::Drain for TracingDrain {
    type Ok = ();
    type Err = slog::Never;

    fn log(&self, record: &slog::Record, _: &slog::OwnedKVList) -> Result<(), slog::Never> {
        match record.level() {
            slog::Level::Critical | slog::Level::Error => {
                tracing::error!(target: "raft", "{}", record.msg())
            }
            slog::Level::Warning => tracing::warn!(target: "raft", "{}", record.msg()),
            slog::Level::Info => tracing::info!(target: "raft", "{}", record.msg()),
            _ => tracing::debug!(target: "raft", "{}", record.msg()),
        }
        Ok(())
    }
}

fn decode<M: prost011::Message + Default>(bytes: &[u8], index: u64) -> Result<M, RaftError> {
    M::decode(bytes).map_err(|e| RaftError::Corrupt {
        index,
        reason: e.to_string(),
    })
}

fn encode<M: prost011::Message>(m: &M) -> Result<Vec<u8>, RaftError> {
    Ok(m.encode_to_vec())
}

fn to_record(e: &Entry) -> Result<EntryRecord, RaftError> {
    Ok(EntryRecord {
        index: e.index,
        term: e.term,
        data: Bytes::from(encode(e)?),
    })
}

fn conf_change_v2(change: ConfChange) -> ConfChangeV2 {
    let (change_type, node_id) = match change {
        ConfChange::AddVoter(id) => (ConfChangeType::AddNode, id),
        ConfChange::AddLearner(id) => (ConfChangeType::AddLearnerNode, id),
        ConfChange::Remove(id) => (ConfChangeType::RemoveNode, id),
    };
    let mut single = ConfChangeSingle::default();
    single.set_change_type(change_type);
    single.node_id = node_id;
    // One member at a time: Raft applies it as a simple change, without a joint configuration.
    ConfChangeV2 {
        changes: vec![single],
        ..Default::default()
    }
}

/// The index of the WAL's snapshot marker (0 if none). Reads the whole WAL: for start-up
/// checks that need it before the node starts.
pub fn wal_snapshot_index(wal_dir: &std::path::Path) -> Result<u64, RaftError> {
    let (_, rec) = Wal::open(wal_dir)?;
    Ok(rec.snapshot.map_or(0, |s| s.index))
}

/// Writes the WAL of a member of a new cluster whose state machine already holds everything up
/// to `index` (a restored snapshot): a snapshot marker at `index`/`term` naming `voters`, and a
/// hard state that has committed it. Refuses a WAL that already holds anything.
pub fn bootstrap_wal(
    wal_dir: &std::path::Path,
    index: u64,
    term: u64,
    voters: &[u64],
) -> Result<(), RaftError> {
    write_adopted_wal(
        wal_dir,
        &AdoptedLog {
            index,
            term,
            voters: voters.to_vec(),
            learners: Vec::new(),
            hard_term: term,
            vote: 0,
            commit: index,
            entries: Vec::new(),
        },
    )
}

/// A member's Raft state as another implementation of the same cluster left it (etcd's WAL,
/// read by the server): the point its state machine holds, its configuration there, its hard
/// state, and the log after that point with each entry's data already in Cairn's encoding.
#[derive(Debug, Clone, Default)]
pub struct AdoptedLog {
    /// The state machine holds everything up to `index`, an entry of `term`.
    pub index: u64,
    pub term: u64,
    pub voters: Vec<u64>,
    pub learners: Vec<u64>,
    /// The hard state: term, vote and commit index, kept as they were so that no vote is
    /// given twice in a term.
    pub hard_term: u64,
    pub vote: u64,
    pub commit: u64,
    /// The log after `index`: index, term and data (empty for an entry with nothing to apply).
    pub entries: Vec<(u64, u64, Vec<u8>)>,
}

/// Writes a new, empty WAL dir with `log` in it: a snapshot marker at its point, its hard
/// state, and its entries.
pub fn write_adopted_wal(wal_dir: &std::path::Path, log: &AdoptedLog) -> Result<(), RaftError> {
    let (mut wal, rec) = Wal::open(wal_dir)?;
    if rec.snapshot.is_some() || rec.hard_state.is_some() || !rec.entries.is_empty() {
        return Err(RaftError::Invalid(format!(
            "the WAL in {} is not empty",
            wal_dir.display()
        )));
    }
    let meta = SnapshotMetadata {
        index: log.index,
        term: log.term,
        conf_state: Some(ConfState::from((log.voters.clone(), log.learners.clone()))),
    };
    let marker = SnapshotRecord {
        index: log.index,
        term: log.term,
        data: Bytes::from(encode(&meta)?),
    };
    let hard_state = HardState {
        term: log.hard_term.max(log.term),
        vote: log.vote,
        commit: log.commit.max(log.index),
    };
    let tail = log
        .entries
        .iter()
        .map(|(index, term, data)| {
            to_record(&Entry {
                index: *index,
                term: *term,
                data: data.clone(),
                ..Default::default()
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    wal.snapshot(&marker, &encode(&hard_state)?, &tail)?;
    Ok(())
}

/// Rebuilds the in-memory log from the WAL.
fn recover(config: &NodeConfig) -> Result<(Wal, LogStore), RaftError> {
    let (mut wal, rec) = Wal::open(&config.wal_dir)?;
    wal.set_unsafe_no_fsync(config.unsafe_no_fsync);
    if rec.repaired_bytes > 0 {
        tracing::warn!(bytes = rec.repaired_bytes, "cut a torn tail off the WAL");
    }
    let mut store = LogStore::default();
    match &rec.snapshot {
        Some(snap) => {
            let meta: SnapshotMetadata = decode(&snap.data, snap.index)?;
            store.snap_index = snap.index;
            store.snap_term = snap.term;
            store.conf_state = meta.get_conf_state().clone();
        }
        None => {
            store.conf_state = ConfState::from((config.voters.clone(), config.learners.clone()));
            let empty = rec.entries.is_empty() && rec.hard_state.is_none();
            if empty {
                // A new member: its first configuration must survive restarts without the
                // flags that described it (etcd ignores --initial-cluster once a data dir
                // exists). A snapshot marker at index 0 holds it.
                let meta = SnapshotMetadata {
                    index: 0,
                    term: 0,
                    conf_state: Some(store.conf_state.clone()),
                };
                let marker = SnapshotRecord {
                    index: 0,
                    term: 0,
                    data: Bytes::from(encode(&meta)?),
                };
                wal.snapshot(&marker, &encode(&store.hard_state)?, &[])?;
            }
        }
    }
    if let Some(hs) = &rec.hard_state {
        store.hard_state = decode(hs, 0)?;
    }
    let mut entries = Vec::with_capacity(rec.entries.len());
    for r in &rec.entries {
        entries.push(decode::<Entry>(&r.data, r.index)?);
    }
    store.append(&entries);
    if config.applied < store.snap_index {
        return Err(RaftError::Invalid(format!(
            "the backend has applied index {} but the WAL's snapshot is at index {}: the entries \
             between them are no longer in the WAL, so the backend is older than the log (a \
             replaced or lost db file, or a WAL from another data dir); restore the member's data \
             from a snapshot, or remove the member and add it back to the cluster",
            config.applied, store.snap_index
        )));
    }
    if config.applied > store.last() {
        return Err(RaftError::Invalid(format!(
            "the backend has applied index {} but the WAL ends at {}: the WAL is missing or belongs to another data dir",
            config.applied,
            store.last()
        )));
    }
    // Anything the state machine applied was committed, even if the hard state recording that
    // commit was not yet written. So is every entry in the durable log of a sole voter: its own
    // vote was the quorum.
    let sole_voter = store.conf_state.voters == [config.id] && store.conf_state.learners.is_empty();
    let durable_commit = if sole_voter { store.last() } else { 0 };
    let commit = store
        .hard_state
        .commit
        .max(config.applied)
        .max(store.snap_index)
        .max(durable_commit);
    store.hard_state.commit = commit;
    if config.force_new_cluster {
        force_alone(config.id, &mut wal, &mut store)?;
    }
    Ok((wal, store))
}

/// The configuration after the simple changes committed in the log.
fn committed_conf(store: &LogStore) -> Result<ConfState, RaftError> {
    let mut conf = store.conf_state.clone();
    for e in &store.entries {
        if e.index > store.hard_state.commit {
            break;
        }
        if e.get_entry_type() != EntryType::EntryConfChangeV2 {
            continue;
        }
        let cc: ConfChangeV2 = decode(&e.data, e.index)?;
        for c in &cc.changes {
            let id = c.node_id;
            conf.voters.retain(|v| *v != id);
            conf.learners.retain(|v| *v != id);
            match c.get_change_type() {
                ConfChangeType::AddNode => conf.voters.push(id),
                ConfChangeType::AddLearnerNode => conf.learners.push(id),
                ConfChangeType::RemoveNode => {}
            }
        }
    }
    Ok(conf)
}

/// `--force-new-cluster`: cuts the log after the commit index, then appends and commits one
/// configuration change per other member removing it, as etcd does, so that every replay of
/// the log ends with this member alone.
fn force_alone(me: u64, wal: &mut Wal, store: &mut LogStore) -> Result<(), RaftError> {
    let commit = store.hard_state.commit;
    let keep = store
        .entries
        .iter()
        .take_while(|e| e.index <= commit)
        .count();
    store.entries.truncate(keep);
    let conf = committed_conf(store)?;
    let term = store
        .hard_state
        .term
        .max(store.entries.last().map_or(store.snap_term, |e| e.term));
    let others = conf
        .voters
        .iter()
        .chain(conf.learners.iter())
        .copied()
        .filter(|id| *id != me);
    let mut appended = Vec::new();
    for (index, id) in (store.last() + 1..).zip(others) {
        let cc = conf_change_v2(ConfChange::Remove(id));
        let mut e = Entry {
            index,
            term,
            data: encode(&cc)?,
            ..Default::default()
        };
        e.set_entry_type(EntryType::EntryConfChangeV2);
        appended.push(e);
    }
    // The cut tail is overwritten by the appended entries, or by whatever comes next.
    let records = appended
        .iter()
        .map(to_record)
        .collect::<Result<Vec<_>, _>>()?;
    wal.append_entries(&records)?;
    store.append(&appended);
    store.hard_state.commit = store.last();
    store.hard_state.term = term;
    wal.set_hard_state(&encode(&store.hard_state)?);
    wal.sync()?;
    // Raft starts alone; replaying the log's configuration changes ends alone as well.
    store.conf_state = ConfState::from((vec![me], Vec::<u64>::new()));
    tracing::warn!(
        removed = appended.len(),
        commit = store.hard_state.commit,
        "--force-new-cluster: this member goes on alone with its data"
    );
    Ok(())
}

/// Starts the node thread. Committed entries are sent, in order and in batches, to `apply`.
pub fn start(
    config: NodeConfig,
    apply: impl CommitSink,
    transport: impl Transport,
    snapshots: impl Snapshots,
) -> Result<(RaftHandle, JoinHandle<()>), RaftError> {
    let (wal, store) = recover(&config)?;
    // Raft hands out again every committed entry above the WAL's snapshot marker: the state
    // machine skips what it has applied, and configuration changes in that stretch are applied
    // to Raft again, which rebuilds the configuration the marker does not yet hold.
    let snap_index = store.snap_index;
    let base_conf = store.conf_state.clone();
    let raft_config = raft::Config {
        id: config.id,
        election_tick: config.election_ticks,
        heartbeat_tick: config.heartbeat_ticks,
        applied: snap_index,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        pre_vote: true,
        check_quorum: true,
        // Followers hear of new commit indexes as `commit_notice` decides.
        skip_bcast_commit: true,
        ..Default::default()
    };
    raft_config.validate()?;
    let logger = slog::Logger::root(slog::Drain::fuse(TracingDrain), slog::o!());
    let mut node = RawNode::new(&raft_config, store, &logger)?;
    let progress = Arc::new(Progress::default());
    let (tx, rx) = mpsc::channel();
    // A member that is the only voter need not wait an election timeout to lead.
    let voters = node
        .raft
        .prs()
        .conf()
        .voters()
        .ids()
        .iter()
        .collect::<Vec<_>>();
    if voters == [config.id] {
        node.campaign()?;
    }
    let mut runner = Runner {
        node,
        wal,
        apply: Box::new(apply),
        transport: Box::new(transport),
        snapshots: Box::new(snapshots),
        making_snapshot: false,
        delivered_snapshots: HashMap::new(),
        catch_up_entries: config.catch_up_entries,
        handle: None,
        conf_history: vec![(snap_index, base_conf)],
        progress: progress.clone(),
        pending_reads: HashMap::new(),
        reads_leader: raft::INVALID_ID,
        waiting_reads: Vec::new(),
        next_read_ctx: 0,
        tick: config.tick,
        observer: config.observer.clone(),
        wal_bytes_reported: 0,
        commit_notices: commit_notice::CommitNotices::default(),
    };
    // Clients may arrive before the node thread's first step: they must see the recovered
    // commit index (admission control compares it with the applied index).
    runner.publish_progress();
    runner.handle = Some(RaftHandle {
        tx: tx.clone(),
        progress: progress.clone(),
        id: config.id,
    });
    let thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || {
            // raft-rs panics on states it considers impossible; a member whose Raft thread is
            // gone must not go on serving as if it were alive.
            match std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| runner.run(rx))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::error!(error = %e, "raft node stopped on error");
                    // A member that cannot persist its log must not go on acknowledging writes.
                    std::process::exit(2);
                }
                Err(_) => {
                    tracing::error!("raft node panicked; stopping the member");
                    std::process::exit(2);
                }
            }
        })
        .map_err(|e| RaftError::Invalid(format!("spawn raft thread: {e}")))?;
    Ok((
        RaftHandle {
            tx,
            progress,
            id: config.id,
        },
        thread,
    ))
}

type ReadWaiters = Vec<oneshot::Sender<Result<u64, RaftError>>>;

struct Runner {
    node: RawNode<LogStore>,
    wal: Wal,
    apply: Box<dyn CommitSink>,
    transport: Box<dyn Transport>,
    snapshots: Box<dyn Snapshots>,
    /// A state machine copy is being made.
    making_snapshot: bool,
    /// Members that have just received a snapshot, with its index and when it was delivered:
    /// until their first answer from that index on reaches the leader, the log after it must
    /// stay (see [`MAX_ENTRIES_HELD_FOR_SNAPSHOTS`]).
    delivered_snapshots: HashMap<u64, (u64, Instant)>,
    catch_up_entries: u64,
    /// A handle to this node, for the snapshot maker to report back with.
    handle: Option<RaftHandle>,
    /// The configuration as of each change applied since the WAL's snapshot marker (the first
    /// element is the marker's), so that a compaction records the one in force at its index.
    conf_history: Vec<(u64, ConfState)>,
    progress: Arc<Progress>,
    /// Read requests sent to raft, by the context that identifies their batch, with when the
    /// request last went out.
    pending_reads: HashMap<u64, (Instant, ReadWaiters)>,
    /// The leader the pending reads were sent to: when it changes, they are answered with
    /// "leader changed" (the old leader's answer may never come).
    reads_leader: u64,
    /// Read requests that arrived since the last step; they go out as one ReadIndex.
    waiting_reads: ReadWaiters,
    next_read_ctx: u64,
    tick: Duration,
    observer: Arc<dyn Observer>,
    /// The WAL's byte count when last reported to the observer.
    wal_bytes_reported: u64,
    /// What followers have been told of the commit index, as leader.
    commit_notices: commit_notice::CommitNotices,
}

impl Runner {
    fn run(&mut self, rx: Receiver<Command>) -> Result<(), RaftError> {
        let result = self.run_loop(&rx);
        // Proposals still queued will never be appended: tell their proposers now rather than
        // letting them wait for a timeout.
        while let Ok(cmd) = rx.try_recv() {
            if let Command::Propose { on_reject, .. } = cmd {
                on_reject(RaftError::Stopped);
            }
        }
        result
    }

    fn run_loop(&mut self, rx: &Receiver<Command>) -> Result<(), RaftError> {
        let mut next_tick = Instant::now() + self.tick;
        loop {
            let wake_at = match self.commit_notices.deadline() {
                Some(due) => due.min(next_tick),
                None => next_tick,
            };
            let wait = wake_at.saturating_duration_since(Instant::now());
            match rx.recv_timeout(wait) {
                Ok(cmd) => {
                    if !self.handle(cmd)? {
                        return Ok(());
                    }
                    // Take everything already queued so that it shares one Ready and one fsync.
                    while let Ok(cmd) = rx.try_recv() {
                        if !self.handle(cmd)? {
                            return Ok(());
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(()),
            }
            if Instant::now() >= next_tick {
                self.node.tick();
                next_tick += self.tick;
                if next_tick < Instant::now() {
                    next_tick = Instant::now() + self.tick;
                }
            }
            self.flush_reads();
            self.on_ready()?;
            if self.notify_commit() {
                self.on_ready()?;
            }
            if self.node.store().wanted.take()
                && !self.making_snapshot
                && let Some(handle) = self.handle.clone()
            {
                self.making_snapshot = true;
                let applied = self.node.raft.raft_log.applied;
                self.snapshots.make(handle, applied);
            }
        }
    }

    /// Returns false on Stop.
    fn handle(&mut self, cmd: Command) -> Result<bool, RaftError> {
        match cmd {
            Command::Propose { data, on_reject } => {
                if self.node.raft.state == StateRole::Leader {
                    self.commit_notices.proposed(Instant::now());
                }
                let res = if self.node.raft.leader_id == raft::INVALID_ID {
                    Err(RaftError::NoLeader)
                } else {
                    self.node.propose(vec![], data).map_err(|e| match e {
                        raft::Error::ProposalDropped => RaftError::NoLeader,
                        other => RaftError::Raft(other),
                    })
                };
                if let Err(e) = res {
                    on_reject(e);
                }
            }
            Command::ProposeConfChange {
                change,
                context,
                on_reject,
            } => {
                let res = if self.node.raft.leader_id == raft::INVALID_ID {
                    Err(RaftError::NoLeader)
                } else {
                    self.node
                        .propose_conf_change(context, conf_change_v2(change))
                        .map_err(|e| match e {
                            raft::Error::ProposalDropped => RaftError::NoLeader,
                            other => RaftError::Raft(other),
                        })
                };
                if let Err(e) = res {
                    on_reject(e);
                }
            }
            Command::Progress { member, done } => {
                let raft = &self.node.raft;
                let progress = (raft.state == StateRole::Leader)
                    .then(|| raft.prs().get(member))
                    .flatten()
                    .map(|p| MemberProgress {
                        matched: p.matched,
                        leader_last: raft.raft_log.last_index(),
                    });
                let _ = done.send(progress);
            }
            Command::TransferLeader(member) => self.node.transfer_leader(member),
            Command::SnapshotMade(index) => {
                self.making_snapshot = false;
                // Raft kept asking while the copy was made; those asks are answered now, and it
                // asks again if this copy does not serve.
                self.node.store().wanted.set(false);
                if let Some(index) = index {
                    self.prepare_snapshot(index);
                }
            }
            Command::ReportSnapshot { to, delivered } => {
                if delivered
                    && let Some(p) = self.node.raft.prs().get(to)
                    && p.state == raft::ProgressState::Snapshot
                {
                    self.delivered_snapshots
                        .insert(to, (p.pending_snapshot, Instant::now()));
                }
                let status = if delivered {
                    raft::SnapshotStatus::Finish
                } else {
                    raft::SnapshotStatus::Failure
                };
                self.node.report_snapshot(to, status);
            }
            Command::ReadIndex { done } => self.waiting_reads.push(done),
            Command::Durable { index } => self.compact(index)?,
            Command::Step(bytes) => match raft::eraftpb::Message::decode(bytes.as_ref()) {
                Ok(m) => {
                    let forwarded = (m.get_msg_type() == raft::eraftpb::MessageType::MsgPropose
                        && self.node.raft.state == StateRole::Leader)
                        .then_some(m.from);
                    // Messages from removed members or of stale terms are expected; raft
                    // drops them, and nothing needs to be done about the rest here either.
                    if let Err(e) = self.node.step(m) {
                        tracing::debug!(error = %e, "raft message not stepped");
                    } else if let Some(from) = forwarded {
                        let last = self.node.raft.raft_log.last_index();
                        self.commit_notices.forwarded(from, last);
                        self.commit_notices.proposed(Instant::now());
                    }
                }
                Err(e) => tracing::warn!(error = %e, "undecodable raft message from a peer"),
            },
            Command::Unreachable(member) => self.node.report_unreachable(member),
            Command::Stop => return Ok(false),
        }
        Ok(true)
    }

    fn flush_reads(&mut self) {
        let leader = self.node.raft.leader_id;
        if leader != self.reads_leader {
            // Reads sent to an earlier leader may never be answered, and one that leads now
            // knows nothing of them.
            for (_, (_, waiters)) in self.pending_reads.drain() {
                self.observer.read_index_failed();
                for w in waiters {
                    let _ = w.send(Err(RaftError::LeaderChanged));
                }
            }
            self.reads_leader = leader;
        }
        if leader == raft::INVALID_ID {
            if !self.waiting_reads.is_empty() {
                self.observer.read_index_failed();
            }
            for w in self.waiting_reads.drain(..) {
                let _ = w.send(Err(RaftError::NoLeader));
            }
            return;
        }
        // raft drops a ReadIndex silently while the leader has not yet committed an entry of its
        // own term; keep the reads queued until it has (the no-op entry commits right away).
        if self.node.raft.state == StateRole::Leader && !self.node.raft.commit_to_current_term() {
            return;
        }
        let now = Instant::now();
        for (ctx, (sent, _)) in self.pending_reads.iter_mut() {
            if now.duration_since(*sent) >= READ_INDEX_RETRY {
                *sent = now;
                self.observer.read_index_slow();
                self.node.read_index(ctx.to_le_bytes().to_vec());
            }
        }
        if self.waiting_reads.is_empty() {
            return;
        }
        self.next_read_ctx += 1;
        let ctx = self.next_read_ctx;
        self.node.read_index(ctx.to_le_bytes().to_vec());
        self.pending_reads
            .insert(ctx, (now, std::mem::take(&mut self.waiting_reads)));
    }

    /// Hands messages to the transport; a dropped one marks its peer unreachable.
    fn send_messages(&mut self, messages: Vec<raft::eraftpb::Message>) {
        let mut dropped = Vec::new();
        for m in messages {
            let to = m.to;
            if m.get_msg_type() == raft::eraftpb::MessageType::MsgSnapshot {
                let index = m.get_snapshot().get_metadata().index;
                if !self
                    .transport
                    .send_snapshot(to, Bytes::from(m.encode_to_vec()), index)
                {
                    self.node.report_snapshot(to, raft::SnapshotStatus::Failure);
                }
                continue;
            }
            let heartbeat = m.get_msg_type() == raft::eraftpb::MessageType::MsgHeartbeat;
            if self.transport.send(to, Bytes::from(m.encode_to_vec())) {
                self.commit_notices.sent(&m);
            } else {
                if heartbeat {
                    self.observer.heartbeat_send_failed();
                }
                dropped.push(to);
            }
        }
        dropped.dedup();
        for to in dropped {
            self.node.report_unreachable(to);
        }
    }

    /// Sends the commit index to the followers that are owed it now (see `commit_notice`);
    /// true if that left messages to send.
    fn notify_commit(&mut self) -> bool {
        let raft = &mut self.node.raft;
        if raft.state != StateRole::Leader {
            self.commit_notices.reset();
            return false;
        }
        let me = raft.id;
        let due = self.commit_notices.due(
            raft.raft_log.committed,
            raft.prs().iter().map(|(id, _)| *id).filter(|&id| id != me),
            Instant::now(),
        );
        for member in due {
            if raft.prs().get(member).is_some() {
                raft.send_append(member);
            }
        }
        self.node.has_ready()
    }

    fn publish_progress(&self) {
        let raft = &self.node.raft;
        let p = &self.progress;
        p.term.store(raft.term, Ordering::Release);
        if p.leader.swap(raft.leader_id, Ordering::AcqRel) != raft.leader_id {
            self.observer.leader_changed(raft.leader_id, raft.term);
        }
        p.commit.store(raft.raft_log.committed, Ordering::Release);
        p.last_index
            .store(raft.raft_log.last_index(), Ordering::Release);
        let leader = raft.state == StateRole::Leader;
        let voters = raft.prs().conf().voters().ids();
        let sole = voters.len() == 1 && voters.contains(raft.id);
        // Stored after `commit` (see `RaftHandle::local_read_index`), cleared before anything
        // else can change: this thread is the only writer.
        p.sole_voter.store(sole, Ordering::Release);
        p.committed_in_term
            .store(leader && raft.commit_to_current_term(), Ordering::Release);
        p.is_leader.store(leader, Ordering::Release);
    }

    fn send_committed(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        // Readers must never see a commit index below an entry the state machine may already
        // have applied (and acknowledged): publish before handing entries out.
        self.publish_progress();
        let mut batch = Vec::with_capacity(entries.len());
        for e in entries {
            let data = match e.get_entry_type() {
                EntryType::EntryNormal => Bytes::from(e.data),
                EntryType::EntryConfChangeV2 => self.apply_conf_change(&e),
                // Cairn never proposes the first version of configuration changes.
                EntryType::EntryConfChange => Bytes::new(),
            };
            batch.push(CommittedEntry {
                index: e.index,
                term: e.term,
                data,
                install_snapshot: false,
            });
        }
        self.apply.committed(batch);
    }

    /// Applies a committed configuration change to Raft; returns the context the state machine
    /// applies, or nothing if Raft refused the change.
    fn apply_conf_change(&mut self, e: &Entry) -> Bytes {
        let cc = match ConfChangeV2::decode(e.data.as_ref()) {
            Ok(cc) => cc,
            Err(err) => {
                tracing::error!(index = e.index, error = %err, "undecodable configuration change ignored");
                return Bytes::new();
            }
        };
        match self.node.apply_conf_change(&cc) {
            Ok(conf) => {
                tracing::info!(index = e.index, voters = ?conf.voters, learners = ?conf.learners, "applied a configuration change");
                self.node.mut_store().conf_state = conf.clone();
                self.conf_history.push((e.index, conf));
                Bytes::from(e.context.clone())
            }
            Err(err) => {
                tracing::warn!(index = e.index, error = %err, "raft refused a configuration change");
                Bytes::new()
            }
        }
    }

    fn on_ready(&mut self) -> Result<(), RaftError> {
        if !self.node.has_ready() {
            self.publish_progress();
            return Ok(());
        }
        let mut ready = self.node.ready();
        // A leader's messages (appends, heartbeats) may leave before its own copy of the entries
        // is durable: the entries count towards a quorum only once persisted, and the leader's
        // own persistence is acknowledged by advancing below.
        self.send_messages(ready.take_messages());
        if !ready.snapshot().is_empty() {
            let snapshot = ready.snapshot().clone();
            self.install_snapshot(&snapshot)?;
        }
        let committed = ready.take_committed_entries();
        self.send_committed(committed);

        if !ready.entries().is_empty() {
            let records = ready
                .entries()
                .iter()
                .map(to_record)
                .collect::<Result<Vec<_>, _>>()?;
            self.wal.append_entries(&records)?;
            self.node.mut_store().append(ready.entries());
        }
        // Like etcd, only new entries or a new term or vote must be on disk before going on; a
        // hard state that only moves the commit index rides along with the next sync (a lost
        // commit index is recomputed after a restart).
        let mut must_sync = !ready.entries().is_empty();
        if let Some(hs) = ready.hs() {
            let old = &self.node.store().hard_state;
            must_sync |= hs.term != old.term || hs.vote != old.vote;
            self.wal.set_hard_state(&encode(hs)?);
            self.node.mut_store().hard_state = hs.clone();
        }
        if must_sync {
            // Group commit: one fsync for every entry and state change in this Ready.
            let started = Instant::now();
            self.wal.sync()?;
            self.observer.wal_synced(started.elapsed());
        } else {
            // A commit index that only moved is written without a sync, as etcd writes it: it
            // survives a killed process (which `--force-new-cluster` relies on), and after a
            // power cut it is recomputed.
            self.wal.write()?;
        }
        let written = self.wal.bytes_written();
        if written != self.wal_bytes_reported {
            self.observer.wal_written(written - self.wal_bytes_reported);
            self.wal_bytes_reported = written;
        }

        for rs in ready.take_read_states() {
            let ctx = rs
                .request_ctx
                .as_slice()
                .try_into()
                .map(u64::from_le_bytes)
                .unwrap_or(0);
            if let Some((_, waiters)) = self.pending_reads.remove(&ctx) {
                for w in waiters {
                    let _ = w.send(Ok(rs.index));
                }
            }
        }
        // Votes and append answers promise what is now on disk: only now may they leave.
        let persisted = ready.take_persisted_messages();
        self.send_messages(persisted);
        let mut light = self.node.advance(ready);
        if let Some(commit) = light.commit_index() {
            self.node.mut_store().hard_state.commit = commit;
        }
        let messages = light.take_messages();
        self.send_messages(messages);
        let committed = light.take_committed_entries();
        self.send_committed(committed);
        self.node.advance_apply();
        self.publish_progress();
        Ok(())
    }

    /// A snapshot from the leader replaces the log: its marker goes into the WAL first (so that
    /// after a crash the member knows to finish installing the copy it received), then the
    /// state machine is told to install the copy, before any entry after it.
    fn install_snapshot(&mut self, snapshot: &raft::eraftpb::Snapshot) -> Result<(), RaftError> {
        let meta = snapshot.get_metadata();
        let (index, term) = (meta.index, meta.term);
        let record = SnapshotRecord {
            index,
            term,
            data: Bytes::from(encode(meta)?),
        };
        let mut hs = self.node.store().hard_state.clone();
        hs.commit = hs.commit.max(index);
        self.wal.snapshot(&record, &encode(&hs)?, &[])?;
        self.node.mut_store().apply_snapshot(meta);
        self.conf_history = vec![(index, meta.get_conf_state().clone())];
        tracing::info!(index, term, "installing a snapshot from the leader");
        self.apply.committed(vec![CommittedEntry {
            index,
            term,
            data: Bytes::new(),
            install_snapshot: true,
        }]);
        Ok(())
    }

    /// Turns a state machine copy at `index` into the snapshot raft hands to members that
    /// need one.
    fn prepare_snapshot(&mut self, index: u64) {
        let store = self.node.store();
        let term = match raft::Storage::term(store, index) {
            Ok(term) => term,
            Err(e) => {
                tracing::warn!(index, error = %e, "a state machine copy is older than the log; another will be made");
                return;
            }
        };
        let at = self
            .conf_history
            .iter()
            .rposition(|(i, _)| *i <= index)
            .unwrap_or(0);
        let mut snapshot = raft::eraftpb::Snapshot {
            data: index.to_le_bytes().to_vec(),
            ..Default::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.conf_history[at].1.clone());
        tracing::info!(
            index,
            term,
            "prepared a snapshot for members behind the log"
        );
        self.node.mut_store().prepared = Some(snapshot);
    }

    /// The lowest log index a member catching up by snapshot still needs: none is compacted
    /// while a state machine copy is being made (its index is not known yet), and none after
    /// the snapshot a member is receiving.
    fn snapshot_floor(&mut self) -> Option<u64> {
        if self.making_snapshot {
            return Some(self.node.store().snap_index);
        }
        if self.node.raft.state != StateRole::Leader {
            self.delivered_snapshots.clear();
            return None;
        }
        let prs = self.node.raft.prs();
        self.delivered_snapshots.retain(|id, (index, at)| {
            prs.get(*id).is_some_and(|p| p.matched < *index)
                && at.elapsed() < DELIVERED_SNAPSHOT_HOLD
        });
        let receiving = prs
            .iter()
            .filter(|(_, p)| p.state == raft::ProgressState::Snapshot)
            .map(|(_, p)| p.pending_snapshot);
        let delivered = self.delivered_snapshots.values().map(|(index, _)| *index);
        receiving.chain(delivered).min()
    }

    /// Folds the log up to `index` into a WAL snapshot marker and drops it from memory. With
    /// other members, the last `catch_up_entries` entries below `index` (no more than
    /// [`CATCH_UP_BYTES`] of them) are kept for followers that are a little behind.
    fn compact(&mut self, index: u64) -> Result<(), RaftError> {
        let floor = self.snapshot_floor();
        let store = self.node.store();
        let alone = store.conf_state.voters.len() + store.conf_state.learners.len() <= 1;
        let index = if alone {
            index
        } else {
            store.catch_up_floor(index, self.catch_up_entries, CATCH_UP_BYTES)
        };
        let index = match floor {
            Some(floor) if index > floor && index - floor <= MAX_ENTRIES_HELD_FOR_SNAPSHOTS => {
                floor
            }
            Some(floor) if index > floor => {
                tracing::warn!(
                    index,
                    floor,
                    "compacting the raft log past a snapshot in progress: its member will need another"
                );
                index
            }
            _ => index,
        };
        if index <= store.snap_index || index > store.last() {
            return Ok(());
        }
        let term = raft::Storage::term(store, index)?;
        // The configuration in force at `index`: the last change at or below it.
        let at = self
            .conf_history
            .iter()
            .rposition(|(i, _)| *i <= index)
            .unwrap_or(0);
        let conf = self.conf_history[at].1.clone();
        let meta = SnapshotMetadata {
            index,
            term,
            conf_state: Some(conf),
        };
        let snapshot = SnapshotRecord {
            index,
            term,
            data: Bytes::from(encode(&meta)?),
        };
        let tail = store
            .entries
            .iter()
            .filter(|e| e.index > index)
            .map(to_record)
            .collect::<Result<Vec<_>, _>>()?;
        let hs = encode(&store.hard_state)?;
        self.wal.snapshot(&snapshot, &hs, &tail)?;
        self.node.mut_store().compact(index, term);
        self.conf_history.drain(..at);
        tracing::info!(index, "compacted raft log");
        Ok(())
    }
}
