//! Cairn's MVCC state machine.
//!
//! Owns: the backend database (redb), the revision counter, the in-memory key index, and etcd's
//! exact semantics for Range, Put, DeleteRange, Txn and Compact, plus Hash/HashKV. It also keeps
//! the *consistent index* (the last Raft index applied) in the same backend transaction as the
//! data, which makes applying a log entry idempotent across crashes.
//!
//! Must not: know about the network, gRPC, Raft or durability policy beyond "commit durably now
//! or not". Responses carry only `header.revision`; the server fills in cluster, member and term.
//!
//! # Backend layout
//!
//! | table | key | value |
//! |---|---|---|
//! | `kv` | `u128` = `(main << 64) \| sub` | `kind u8` (0 put, 1 tombstone) + encoded `mvccpb.KeyValue` |
//! | `meta` | name | bytes (`consistent_index`, `term`, `current_rev`, `compact_rev`, and any name the server stores) |
//!
//! # Concurrency
//!
//! One writer (the apply loop) at a time holds the state's write lock for a batch of requests;
//! readers take the read lock only long enough to resolve keys to revisions in the index and read
//! the values, so a read sees exactly the revisions the index showed it.
//!
//! Applied batches are not committed to the backend one by one: they collect in memory (see
//! [`buffer`]) and are written back in one backend transaction every
//! [`buffer::WRITE_BACK_INTERVAL`] or [`buffer::WRITE_BACK_MAX_RECORDS`] records, outside the
//! state lock, so neither writers nor readers wait for redb on the request path.

pub mod buffer;
pub mod index;
pub mod offline;
mod ops;
mod snapshot;
pub mod watch;
pub mod writeback;

use buffer::{Batch, KvSource, Marks};
use bytes::Bytes;
use cairn_proto::mvccpb::KeyValue;
use parking_lot::{RwLock, RwLockWriteGuard};
use prost::Message;
use redb::{Database, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable, TableDefinition};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub use index::{KeyIndex, Revision};
pub use ops::{Applier, CompactOutcome, RawRange, txn_is_read_only, txn_is_serializable};
pub use snapshot::{Defragmented, Frozen, FrozenMarks, close_gradually};
pub use watch::{StreamId, StreamSink, WatchError, WatchEvent, WatchId, WatchMsg, WatchSpec};

use cairn_proto::mvccpb::{Event, event::EventType};
use parking_lot::Mutex;

const KV: TableDefinition<u128, &[u8]> = TableDefinition::new("kv");
/// Keys a Range resolves per hold of the state lock (a few hundred microseconds of index walk).
pub const RANGE_CHUNK_KEYS: usize = 4096;
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
/// Lease id → the lessor's own encoding; written in the same transaction as the keys it affects.
const LEASES: TableDefinition<i64, &[u8]> = TableDefinition::new("lease");

const KIND_PUT: u8 = 0;
const KIND_TOMBSTONE: u8 = 1;

/// Errors of the MVCC layer. The `Display` strings of the first variants are etcd's.
#[derive(Debug, thiserror::Error)]
pub enum MvccError {
    #[error("mvcc: required revision has been compacted")]
    Compacted,
    #[error("mvcc: required revision is a future revision")]
    FutureRevision,
    #[error("etcdserver: key not found")]
    KeyNotFound,
    #[error("etcdserver: requested lease not found")]
    LeaseNotFound,
    #[error("mvcc: backend error: {0}")]
    Backend(String),
    #[error("mvcc: corrupt backend record at revision {rev:?}: {reason}")]
    Corrupt { rev: Revision, reason: String },
    #[error("mvcc: corrupt backend meta value {name:?}: {len} bytes where 8 were expected")]
    CorruptMeta { name: String, len: usize },
}

impl MvccError {
    fn backend(e: impl std::fmt::Display) -> Self {
        MvccError::Backend(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, MvccError>;

/// State guarded by the store's lock.
#[derive(Debug, Default)]
pub(crate) struct State {
    pub(crate) index: KeyIndex,
    pub(crate) current: i64,
    pub(crate) compacted: i64,
    pub(crate) consistent_index: u64,
    pub(crate) term: u64,
    /// Applied changes not yet written back to the backend.
    pub(crate) pending: Batch,
    /// The batch being written back right now, readable until its backend commit is done.
    pub(crate) flushing: Option<Arc<Batch>>,
}

impl State {
    pub(crate) fn marks(&self) -> Marks {
        Marks {
            consistent_index: self.consistent_index,
            term: self.term,
            current: self.current,
            compacted: self.compacted,
        }
    }

    /// A reader over the in-memory layers and `table`.
    pub(crate) fn source<'a>(
        &'a self,
        table: &'a ReadOnlyTable<u128, &'static [u8]>,
    ) -> KvSource<'a> {
        KvSource {
            pending: &self.pending,
            flushing: self.flushing.as_deref(),
            table,
        }
    }
}

/// The MVCC key-value store.
pub struct Store {
    /// Replaced as a whole when a snapshot from another member is installed; readers that
    /// hold the old one finish on it.
    db: parking_lot::RwLock<Arc<Database>>,
    path: PathBuf,
    state: RwLock<State>,
    /// Watchers. Lock order: `state` before `hub`.
    hub: Mutex<watch::Hub>,
    /// One write-back at a time (redb has one writer anyway; this keeps batches in order).
    write_back: Mutex<()>,
    /// `db_size_in_use` is costly to compute (it walks the backend's trees): cached briefly.
    size_in_use: Mutex<Option<(Instant, u64)>>,
    /// Write-backs done, for tests and metrics.
    write_backs: AtomicU64,
    /// Keys a Range resolves per hold of the state lock ([`RANGE_CHUNK_KEYS`]).
    range_chunk_keys: AtomicUsize,
    /// While a defragmentation copies the backend, the batches written back meanwhile, to be
    /// written into the copy before it replaces the backend.
    replay: Mutex<Option<Vec<Arc<Batch>>>>,
    /// One defragmentation at a time.
    defrag: Mutex<()>,
    /// Bumped whenever the backend file is replaced by another store's copy, so that a
    /// defragmentation that began before never installs its (older) copy over it.
    generation: AtomicU64,
    /// Told how long each backend commit took (etcd's `backend_commit_duration_seconds`).
    commit_observer: std::sync::OnceLock<CommitObserver>,
}

/// Called with the duration of each backend commit.
pub type CommitObserver = Box<dyn Fn(std::time::Duration) + Send + Sync>;

fn encode_record(kind: u8, kv: &KeyValue) -> Vec<u8> {
    let mut buf = Vec::with_capacity(1 + kv.encoded_len());
    buf.push(kind);
    // Encoding into a Vec cannot run out of space.
    let _ = kv.encode(&mut buf);
    buf
}

/// What rebuilding the key index needs of a stored record (`mvccpb.KeyValue`'s field numbers):
/// the value (field 5) is skipped by the decoder instead of copied, which is most of the bytes.
#[derive(Clone, PartialEq, prost::Message)]
struct RecordMeta {
    #[prost(bytes = "vec", tag = "1")]
    key: Vec<u8>,
    #[prost(int64, tag = "2")]
    create_revision: i64,
    #[prost(int64, tag = "4")]
    version: i64,
    #[prost(int64, tag = "6")]
    lease: i64,
}

/// A stored record as its kind and a decoded message (`KeyValue`, or just its metadata).
fn decode_as<M: Message + Default>(rev: Revision, raw: &[u8]) -> Result<(u8, M)> {
    let corrupt = |reason: String| MvccError::Corrupt { rev, reason };
    let (&kind, body) = raw
        .split_first()
        .ok_or_else(|| corrupt("empty record".into()))?;
    if kind != KIND_PUT && kind != KIND_TOMBSTONE {
        return Err(corrupt(format!("unknown kind {kind}")));
    }
    let message = M::decode(body).map_err(|e| corrupt(e.to_string()))?;
    Ok((kind, message))
}

fn decode_record(rev: Revision, raw: &[u8]) -> Result<(u8, KeyValue)> {
    decode_as(rev, raw)
}

/// The size of a new, empty backend file: redb's header, allocator state and empty tables.
/// (A new bbolt file, etcd's backend, takes 6 pages of 4 KiB.)
pub const EMPTY_BACKEND_BYTES: u64 = 72 << 10;

/// redb's own page cache. Its default (1 GiB) grows with everything written and read, which
/// made a member's RSS track its database size; the OS page cache serves the rest just as well
/// (a miss costs a `pread`), and unlike the process's memory it is given back under pressure.
/// At 64 MiB it was still the largest part of an idle member's memory after a benchmark (a
/// third of it); 16 MiB holds the hot branch pages, and range, txn and put throughput stayed
/// within run-to-run noise (docs/performance.md).
pub const BACKEND_CACHE_BYTES: usize = 16 << 20;

/// Opens (or creates) a backend file with Cairn's settings.
pub(crate) fn open_backend(path: &Path) -> Result<Database> {
    redb::Builder::new()
        .set_cache_size(BACKEND_CACHE_BYTES)
        .create(path)
        .map_err(MvccError::backend)
}

/// Creates the tables if needed and rebuilds the in-memory state (key index, revisions,
/// consistent index) from a backend.
fn load_state(db: &Database) -> Result<State> {
    {
        let w = db.begin_write().map_err(MvccError::backend)?;
        w.open_table(KV).map_err(MvccError::backend)?;
        w.open_table(META).map_err(MvccError::backend)?;
        w.open_table(LEASES).map_err(MvccError::backend)?;
        w.commit().map_err(MvccError::backend)?;
    }
    let mut state = State::default();
    {
        let r = db.begin_read().map_err(MvccError::backend)?;
        let meta = r.open_table(META).map_err(MvccError::backend)?;
        state.consistent_index = meta_u64(&meta, "consistent_index")?;
        state.term = meta_u64(&meta, "term")?;
        state.current = meta_u64(&meta, "current_rev")? as i64;
        state.compacted = meta_u64(&meta, "compact_rev")? as i64;
    }
    // Reading and decoding the records (one thread) overlaps with inserting them into the key
    // index (this one): on a restart with a million keys the two halves take about as long
    // as each other. Batches keep the order of the records, which the histories need.
    std::thread::scope(|scope| -> Result<()> {
        let (batches, received) = std::sync::mpsc::sync_channel::<Result<IndexBatch>>(4);
        let reader = std::thread::Builder::new()
            .name("index-rebuild".into())
            .spawn_scoped(scope, move || read_index_batches(db, &batches))
            .map_err(|e| MvccError::Backend(format!("spawn index-rebuild thread: {e}")))?;
        for batch in received {
            let batch = batch?;
            let mut at = 0;
            for r in &batch.records {
                let key = &batch.keys[at..at + r.key_len];
                at += r.key_len;
                state.index.update(key, |hist| {
                    if r.kind == KIND_PUT {
                        hist.record_put(r.rev, r.create_revision, r.version, r.lease);
                    } else {
                        hist.record_delete(r.rev);
                    }
                });
                state.current = state.current.max(r.rev.main);
            }
        }
        reader
            .join()
            .map_err(|_| MvccError::Backend("the index-rebuild thread panicked".into()))
    })?;
    // Like etcd, a new store is at revision 1, so the first write is revision 2.
    state.current = state.current.max(state.compacted).max(1);
    Ok(state)
}

/// Records of the backend, decoded for the key index: their keys back to back in `keys`.
struct IndexBatch {
    keys: Vec<u8>,
    records: Vec<IndexRecord>,
}

struct IndexRecord {
    rev: Revision,
    kind: u8,
    key_len: usize,
    create_revision: i64,
    version: i64,
    lease: i64,
}

/// Records per batch handed from the reading thread to the index.
const INDEX_BATCH: usize = 4096;

/// Reads every record of the `kv` table in revision order and sends them decoded, in batches;
/// an error is sent as the last message.
fn read_index_batches(db: &Database, out: &std::sync::mpsc::SyncSender<Result<IndexBatch>>) {
    let fresh = || IndexBatch {
        keys: Vec::with_capacity(INDEX_BATCH * 32),
        records: Vec::with_capacity(INDEX_BATCH),
    };
    let read = || -> Result<()> {
        let r = db.begin_read().map_err(MvccError::backend)?;
        let kv = r.open_table(KV).map_err(MvccError::backend)?;
        let mut batch = fresh();
        for item in kv.iter().map_err(MvccError::backend)? {
            let (k, v) = item.map_err(MvccError::backend)?;
            let rev = Revision::from_key(k.value());
            let (kind, meta) = decode_as::<RecordMeta>(rev, v.value())?;
            batch.keys.extend_from_slice(&meta.key);
            batch.records.push(IndexRecord {
                rev,
                kind,
                key_len: meta.key.len(),
                create_revision: meta.create_revision,
                version: meta.version,
                lease: meta.lease,
            });
            if batch.records.len() == INDEX_BATCH
                && out
                    .send(Ok(std::mem::replace(&mut batch, fresh())))
                    .is_err()
            {
                return Ok(());
            }
        }
        if !batch.records.is_empty() {
            let _ = out.send(Ok(batch));
        }
        Ok(())
    };
    if let Err(e) = read() {
        let _ = out.send(Err(e));
    }
}

/// A numeric meta value; 0 when absent (a new store), an error when malformed.
fn meta_u64<T: ReadableTable<&'static str, &'static [u8]>>(t: &T, name: &str) -> Result<u64> {
    match t.get(name).map_err(MvccError::backend)? {
        None => Ok(0),
        Some(v) => decode_meta_u64(name, v.value()),
    }
}

/// Decodes a numeric meta value (8 bytes, little endian).
pub fn decode_meta_u64(name: &str, raw: &[u8]) -> Result<u64> {
    raw.try_into()
        .map(u64::from_le_bytes)
        .map_err(|_| MvccError::CorruptMeta {
            name: name.to_string(),
            len: raw.len(),
        })
}

impl Store {
    /// Opens or creates the backend at `path` and rebuilds the key index from it.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        // A defragmentation's copy that a crash left unfinished.
        let _ = std::fs::remove_file(snapshot::defrag_path(&path));
        let db = open_backend(&path)?;
        let state = load_state(&db)?;
        Ok(Store {
            db: parking_lot::RwLock::new(Arc::new(db)),
            path,
            state: RwLock::new(state),
            hub: Mutex::new(watch::Hub::default()),
            write_back: Mutex::new(()),
            size_in_use: Mutex::new(None),
            write_backs: AtomicU64::new(0),
            range_chunk_keys: AtomicUsize::new(RANGE_CHUNK_KEYS),
            replay: Mutex::new(None),
            defrag: Mutex::new(()),
            generation: AtomicU64::new(0),
            commit_observer: std::sync::OnceLock::new(),
        })
    }

    fn db(&self) -> Arc<Database> {
        self.db.read().clone()
    }

    fn kv_table(&self) -> Result<ReadOnlyTable<u128, &'static [u8]>> {
        let r = self.db().begin_read().map_err(MvccError::backend)?;
        r.open_table(KV).map_err(MvccError::backend)
    }

    /// The store revision: the revision of the last write transaction.
    pub fn revision(&self) -> i64 {
        self.state.read().current
    }

    pub fn compact_revision(&self) -> i64 {
        self.state.read().compacted
    }

    /// The last Raft index whose effects are in the backend (durable or not yet).
    pub fn consistent_index(&self) -> u64 {
        self.state.read().consistent_index
    }

    pub fn term(&self) -> u64 {
        self.state.read().term
    }

    /// Number of keys (live or with history) in the index.
    pub fn key_count(&self) -> usize {
        self.state.read().index.len()
    }

    /// Number of keys that exist now, deleted ones left out.
    pub fn live_key_count(&self) -> usize {
        self.state.read().index.live_len()
    }

    /// Size of the backend file in bytes.
    pub fn db_size(&self) -> u64 {
        std::fs::metadata(&self.path).map(|m| m.len()).unwrap_or(0)
    }

    /// Bytes of the backend file holding live pages (as of the last write-back, give or take a
    /// second).
    pub fn db_size_in_use(&self) -> u64 {
        const FRESH: Duration = Duration::from_secs(1);
        let mut cached = self.size_in_use.lock();
        if let Some((at, size)) = *cached
            && at.elapsed() < FRESH
        {
            return size;
        }
        let stats = self.db().begin_write().ok().and_then(|w| {
            let s = w.stats().ok();
            w.abort().ok();
            s
        });
        let size = match stats {
            Some(s) => s.allocated_pages() * s.page_size() as u64,
            None => self.db_size(),
        };
        *cached = Some((Instant::now(), size));
        size
    }

    /// A value stored with [`Applier::put_meta`].
    pub fn meta(&self, name: &str) -> Result<Option<Vec<u8>>> {
        let state = self.state.read();
        let layers = std::iter::once(&state.pending).chain(state.flushing.as_deref());
        for layer in layers {
            if let Some(v) = layer.meta.get(name) {
                return Ok(Some(v.to_vec()));
            }
        }
        let r = self.db().begin_read().map_err(MvccError::backend)?;
        let t = r.open_table(META).map_err(MvccError::backend)?;
        let v = t.get(name).map_err(MvccError::backend)?;
        Ok(v.map(|g| g.value().to_vec()))
    }

    /// Serves a Range outside of any write, in stretches of [`RANGE_CHUNK_KEYS`] keys. Under the
    /// read lock a stretch only resolves keys to revisions in the index, takes the records that
    /// are still in memory (reference counts) and opens a backend snapshot; reading the rest,
    /// decoding and sorting happen without the lock. All stretches read at one revision, fixed
    /// at the start, so the result is one consistent view; the lock is never held longer than
    /// one stretch takes, so a large range never holds up the apply path. (If a compaction
    /// passes that revision mid-read, the read fails as compacted, where etcd's would finish on
    /// its snapshot.)
    pub fn range(
        &self,
        req: &cairn_proto::etcdserverpb::RangeRequest,
    ) -> Result<cairn_proto::etcdserverpb::RangeResponse> {
        let mut kvs = Vec::new();
        let (count, current) = self.range_in_stretches(req, |records, from_index, table| {
            kvs.extend(from_index);
            ops::read_records(records, table, &mut kvs)
        })?;
        Ok(ops::shape_range(kvs, count, current, req))
    }

    /// A Range answered with the stored records as they are (encoded `mvccpb.KeyValue`s), so
    /// that they go into the response without being decoded and encoded again. Ranges that
    /// filter, sort by anything but the key, or strip values take the decoding path.
    pub fn range_raw(&self, req: &cairn_proto::etcdserverpb::RangeRequest) -> Result<RawRange> {
        if !ops::raw_answerable(req) {
            let resp = self.range(req)?;
            return Ok(RawRange {
                revision: resp.header.map_or(0, |h| h.revision),
                kvs: resp
                    .kvs
                    .iter()
                    .map(|kv| Bytes::from(kv.encode_to_vec()))
                    .collect(),
                more: resp.more,
                count: resp.count,
            });
        }
        let mut kvs = Vec::new();
        // Raw answers are never keys-only, so nothing comes from the index alone.
        let (count, current) = self.range_in_stretches(req, |records, _, table| {
            ops::read_raw(records, table, &mut kvs)
        })?;
        Ok(ops::shape_raw(kvs, count, current, req))
    }

    /// Walks a Range in stretches (see [`Store::range`]), handing each stretch's records and
    /// its backend snapshot to `read` with the lock released. Returns (count, current revision).
    fn range_in_stretches(
        &self,
        req: &cairn_proto::etcdserverpb::RangeRequest,
        mut read: impl FnMut(
            Vec<(Revision, Option<Bytes>)>,
            Vec<cairn_proto::mvccpb::KeyValue>,
            &ReadOnlyTable<u128, &'static [u8]>,
        ) -> Result<()>,
    ) -> Result<(i64, i64)> {
        let room = ops::fetch_limit(req);
        let mut taken = 0usize;
        let mut count = 0i64;
        let mut after: Option<Bytes> = None;
        // (read revision, current revision), fixed under the first stretch's lock hold, so a
        // single-key read takes the lock once.
        let mut fixed: Option<(i64, i64)> = None;
        loop {
            let (chunk, table, current) = {
                let state = self.state.read();
                let (rev, current) = match fixed {
                    Some(f) => f,
                    None => *fixed.insert((
                        ops::read_revision(&state, state.current, req.revision)?,
                        state.current,
                    )),
                };
                if state.compacted > rev {
                    return Err(MvccError::Compacted);
                }
                let table = self.kv_table()?;
                let chunk = ops::plan_chunk(
                    &state,
                    &state.source(&table),
                    rev,
                    req,
                    after.as_deref(),
                    self.range_chunk_keys.load(Ordering::Relaxed).max(1),
                    room.saturating_sub(taken),
                );
                (chunk, table, current)
            };
            count += chunk.count;
            taken += chunk.records.len() + chunk.kvs.len();
            read(chunk.records, chunk.kvs, &table)?;
            match chunk.resume_after {
                Some(key) => after = Some(key),
                None => return Ok((count, current)),
            }
        }
    }

    /// How many keys a Range resolves per hold of the state lock; tests set it small so that
    /// every read crosses many stretch boundaries.
    pub fn set_range_chunk_keys(&self, keys: usize) {
        self.range_chunk_keys.store(keys.max(1), Ordering::Relaxed);
    }

    /// Serves a txn that only reads (see [`ops::txn_is_read_only`]) on one consistent view at
    /// the current revision, without a log entry.
    pub fn read_only_txn(
        &self,
        req: &cairn_proto::etcdserverpb::TxnRequest,
    ) -> Result<cairn_proto::etcdserverpb::TxnResponse> {
        let state = self.state.read();
        let table = self.kv_table()?;
        ops::read_only_txn(&state, &state.source(&table), state.current, req)
    }

    /// Starts applying a batch of writes. The batch becomes visible to readers when it commits.
    pub fn begin_apply(&self) -> Result<Applier<'_>> {
        Ok(Applier::new(self, self.state.write(), &self.hub))
    }

    /// Every stored lease record (see [`Applier::put_lease`]).
    pub fn leases(&self) -> Result<Vec<(i64, Vec<u8>)>> {
        let state = self.state.read();
        let r = self.db().begin_read().map_err(MvccError::backend)?;
        let t = r.open_table(LEASES).map_err(MvccError::backend)?;
        let mut disk = Vec::new();
        for item in t.iter().map_err(MvccError::backend)? {
            let (k, v) = item.map_err(MvccError::backend)?;
            disk.push((k.value(), Bytes::copy_from_slice(v.value())));
        }
        let mut layers = Vec::new();
        if let Some(f) = state.flushing.as_deref() {
            layers.push(&f.leases);
        }
        layers.push(&state.pending.leases);
        Ok(buffer::overlay(disk, &layers)
            .into_iter()
            .map(|(k, v)| (k, v.to_vec()))
            .collect())
    }

    /// Every live key that is attached to a lease, with its lease (from the index alone).
    pub fn leased_keys(&self) -> Vec<(bytes::Bytes, i64)> {
        let state = self.state.read();
        state
            .index
            .range(b"\0", b"\0")
            .filter_map(|(key, hist)| match hist.live_lease() {
                0 => None,
                lease => Some((bytes::Bytes::copy_from_slice(key), lease)),
            })
            .collect()
    }

    /// Opens a watch stream whose messages go to `sink`.
    pub fn open_watch_stream(&self, sink: StreamSink) -> StreamId {
        self.hub.lock().open_stream(sink)
    }

    pub fn close_watch_stream(&self, stream: StreamId) {
        self.hub.lock().close_stream(stream);
    }

    /// Creates a watcher; its `Created` message (or `Refused`) is queued on the stream.
    pub fn watch(
        &self,
        stream: StreamId,
        spec: WatchSpec,
    ) -> std::result::Result<WatchId, WatchError> {
        let state = self.state.read();
        self.hub.lock().create(stream, spec, state.current)
    }

    /// Cancels a watcher; false if there was none with that id.
    pub fn cancel_watch(&self, stream: StreamId, id: WatchId) -> bool {
        let state = self.state.read();
        self.hub.lock().cancel(stream, id, state.current)
    }

    /// Queues a progress response (watch id -1) once every watcher of the stream is synced.
    pub fn request_progress(&self, stream: StreamId) {
        let state = self.state.read();
        self.hub.lock().request_progress(stream, state.current);
    }

    /// Sends progress notifications to idle synced watchers that asked for them.
    pub fn progress_tick(&self) {
        let state = self.state.read();
        self.hub.lock().progress_tick(state.current);
    }

    pub fn watcher_count(&self) -> usize {
        self.hub.lock().watcher_count()
    }

    /// The watch spec of a watcher (for the stream that serves it).
    pub fn watch_spec(&self, stream: StreamId, id: WatchId) -> Option<WatchSpec> {
        self.hub.lock().spec(stream, id).cloned()
    }

    /// One catch-up pass over unsynced watchers: reads up to
    /// [`watch::CATCH_UP_MAX_REVISIONS`] revisions of history for each and delivers what
    /// matches. Returns how many watchers were still behind at the start of the pass.
    ///
    /// The history is read from a view taken under the locks (in-memory records and a backend
    /// snapshot) but decoded without them; delivery takes the locks again, briefly.
    pub fn sync_watchers(&self) -> Result<usize> {
        let (behind, views, table, total) = {
            let state = self.state.read();
            let mut hub = self.hub.lock();
            let behind = hub.unsynced();
            if behind.is_empty() {
                return Ok(0);
            }
            let total = behind.len();
            let table = self.kv_table()?;
            let source = state.source(&table);
            let mut views = std::collections::BTreeMap::new();
            let mut waiting = Vec::new();
            for (sid, id, next) in &behind {
                if *next < state.compacted {
                    hub.cancel_compacted(*sid, *id, state.compacted, state.current);
                    continue;
                }
                let upto = state.current.min(next + watch::CATCH_UP_MAX_REVISIONS - 1);
                views
                    .entry(*next)
                    .or_insert_with(|| (upto, source.memory_in(history_keys(*next, upto))));
                waiting.push((*sid, *id, *next));
            }
            (waiting, views, table, total)
        };
        let mut decoded = std::collections::HashMap::new();
        for (next, (upto, memory)) in &views {
            let mut records = Vec::new();
            memory.scan(&table, history_keys(*next, *upto), |k, v| {
                let rev = Revision::from_key(k);
                let (kind, kv) = decode_record(rev, v)?;
                records.push((rev, kind, kv));
                Ok(())
            })?;
            decoded.insert(*next, (*upto, records));
        }
        let state = self.state.read();
        let mut hub = self.hub.lock();
        let mut events_of = std::collections::HashMap::new();
        for (next, (upto, records)) in decoded {
            let events: Vec<WatchEvent> = records
                .into_iter()
                .map(|(rev, kind, kv)| {
                    let prev = state.index.get(&kv.key).and_then(|h| h.prev_before(rev));
                    make_event(kind == KIND_PUT, kv, rev, prev)
                })
                .collect();
            events_of.insert(next, (upto, events));
        }
        for (sid, id, next) in &behind {
            if let Some((upto, events)) = events_of.get(next) {
                hub.deliver_history(*sid, *id, events, (*next, *upto), state.current);
            }
        }
        Ok(total)
    }

    /// The key-value stored at exactly `rev`, if it is a put that has not been compacted away.
    pub fn kv_at(&self, rev: Revision) -> Result<Option<KeyValue>> {
        let state = self.state.read();
        let table = self.kv_table()?;
        let Some(decoded) = state
            .source(&table)
            .get(rev.to_key(), |raw| decode_record(rev, raw))?
        else {
            return Ok(None);
        };
        let (kind, kv) = decoded?;
        Ok((kind == KIND_PUT).then_some(kv))
    }

    /// Hash of every key-value record up to `rev` (0 = current), and the compact revision.
    pub fn hash_kv(&self, rev: i64) -> Result<(u32, i64, i64)> {
        let state = self.state.read();
        // etcd refuses a requested revision at or below the compact revision (the compact
        // revision itself too); 0 means the current revision, always allowed.
        if rev > 0 && rev <= state.compacted {
            return Err(MvccError::Compacted);
        }
        let rev = if rev <= 0 { state.current } else { rev };
        if rev > state.current {
            return Err(MvccError::FutureRevision);
        }
        let table = self.kv_table()?;
        let upper = Revision::new(rev, i64::MAX).to_key();
        let memory = state.source(&table).memory_in(0..=upper);
        let compacted = state.compacted;
        // The scan reads every record: do it with the view taken, not under the lock.
        drop(state);
        // etcd's hash, over the records as etcd's backend holds them: the bucket name, then
        // each record's key (main and sub revision, big endian, joined by '_', with a 't'
        // appended for a tombstone) and value (the encoded KeyValue; a tombstone's holds only
        // the key), so that HashKV compares with etcd's on the same history.
        // Like etcd, at or below the compact revision only revisions in etcd's `Keep(rev)`
        // count: each key's last revision up to the hashed revision, unless that is a
        // tombstone (so a key deleted after the compaction drops out of the hash entirely).
        let mut last: std::collections::HashMap<Bytes, (Revision, bool)> =
            std::collections::HashMap::new();
        if compacted > 0 {
            memory.scan(&table, 0..=upper, |k, v| {
                let rev = Revision::from_key(k);
                let (kind, kv) = decode_record(rev, v)?;
                last.insert(kv.key, (rev, kind == KIND_TOMBSTONE));
                Ok(())
            })?;
        }
        let keep: std::collections::HashSet<Revision> = last
            .into_values()
            .filter(|(_, tomb)| !tomb)
            .map(|(rev, _)| rev)
            .collect();
        let mut h = crc32c::crc32c(b"key");
        let mut key = Vec::with_capacity(18);
        memory.scan(&table, 0..=upper, |k, v| {
            let rev = Revision::from_key(k);
            if rev.main <= compacted && !keep.is_empty() && !keep.contains(&rev) {
                return Ok(());
            }
            let (kind, body) = v.split_first().ok_or_else(|| MvccError::Corrupt {
                rev,
                reason: "empty record".into(),
            })?;
            key.clear();
            key.extend_from_slice(&rev.main.to_be_bytes());
            key.push(b'_');
            key.extend_from_slice(&rev.sub.to_be_bytes());
            if *kind == KIND_TOMBSTONE {
                key.push(b't');
                h = crc32c::crc32c_append(h, &key);
                let (_, kv) = decode_record(rev, v)?;
                let only_key = KeyValue {
                    key: kv.key,
                    ..Default::default()
                };
                h = crc32c::crc32c_append(h, &only_key.encode_to_vec());
            } else {
                h = crc32c::crc32c_append(h, &key);
                h = crc32c::crc32c_append(h, body);
            }
            Ok(())
        })?;
        // etcd reports -1 for a store that was never compacted.
        let compacted = if compacted > 0 { compacted } else { -1 };
        Ok((h, compacted, rev))
    }

    /// Hash of the whole backend (every key and value of the kv and meta tables) as it will be
    /// once everything applied is written back.
    pub fn hash(&self) -> Result<u32> {
        let state = self.state.read();
        let rtxn = self.db().begin_read().map_err(MvccError::backend)?;
        let kv = rtxn.open_table(KV).map_err(MvccError::backend)?;
        let memory = state.source(&kv).memory_in(0..=u128::MAX);
        let meta = rtxn.open_table(META).map_err(MvccError::backend)?;
        let mut rows = std::collections::BTreeMap::new();
        for item in meta.iter().map_err(MvccError::backend)? {
            let (k, v) = item.map_err(MvccError::backend)?;
            rows.insert(k.value().to_owned(), Bytes::copy_from_slice(v.value()));
        }
        for layer in state
            .flushing
            .as_deref()
            .into_iter()
            .chain([&state.pending])
        {
            for (k, v) in &layer.meta {
                rows.insert(k.clone(), v.clone());
            }
        }
        for (name, v) in state.marks().entries() {
            rows.insert(name.to_owned(), Bytes::copy_from_slice(&v.to_le_bytes()));
        }
        // The view is complete: the scan over every record runs without the lock.
        drop(state);
        let mut h = 0u32;
        memory.scan(&kv, 0..=u128::MAX, |k, v| {
            h = crc32c::crc32c_append(h, &k.to_be_bytes());
            h = crc32c::crc32c_append(h, v);
            Ok(())
        })?;
        for (k, v) in &rows {
            h = crc32c::crc32c_append(h, k.as_bytes());
            h = crc32c::crc32c_append(h, v);
        }
        Ok(h)
    }

    /// Writes everything applied back to the backend and makes it durable (one backend fsync).
    pub fn flush(&self) -> Result<()> {
        self.write_back(true)
    }

    /// Whether applied changes have waited long enough or grown large enough to be written back.
    pub fn write_back_due(&self) -> bool {
        self.state.read().pending.due()
    }

    /// Writes applied changes back to the backend if [`Store::write_back_due`]; true if it did.
    pub fn write_back_if_due(&self) -> Result<bool> {
        if !self.write_back_due() {
            return Ok(false);
        }
        self.write_back(false)?;
        Ok(true)
    }

    /// Writes applied changes back to the backend now, without an fsync.
    pub fn write_back_now(&self) -> Result<()> {
        self.write_back(false)
    }

    /// How many write-backs this store has done.
    pub fn write_back_count(&self) -> u64 {
        self.write_backs.load(Ordering::Relaxed)
    }

    /// Sets what is told the duration of every backend commit from now on (once per store).
    pub fn observe_commits(&self, observer: CommitObserver) {
        let _ = self.commit_observer.set(observer);
    }

    /// Moves the pending batch aside (readers still see it), commits it to the backend without
    /// holding the state lock, then drops it.
    fn write_back(&self, durable: bool) -> Result<()> {
        let _one = self.write_back.lock();
        let batch = {
            let mut state = self.state.write();
            let mut batch = std::mem::take(&mut state.pending);
            batch.marks = state.marks();
            let batch = Arc::new(batch);
            state.flushing = Some(batch.clone());
            batch
        };
        let started = Instant::now();
        let result = (|| {
            let mut w = self.db().begin_write().map_err(MvccError::backend)?;
            let durability = if durable {
                Durability::Immediate
            } else {
                Durability::None
            };
            w.set_durability(durability).map_err(MvccError::backend)?;
            batch.write_to(&w)?;
            w.commit().map_err(MvccError::backend)
        })();
        let mut state = self.state.write();
        state.flushing = None;
        if result.is_err() {
            // Keep the changes readable; the caller stops the member on a backend error.
            state.pending.restore(&batch);
        } else {
            self.write_backs.fetch_add(1, Ordering::Relaxed);
            if let Some(observe) = self.commit_observer.get() {
                observe(started.elapsed());
            }
            if let Some(replay) = self.replay.lock().as_mut() {
                replay.push(batch);
            }
        }
        result
    }
}

pub(crate) type WriteGuard<'a> = RwLockWriteGuard<'a, State>;

/// The events of revisions `from..=upto`, read from the backend, in revision order.
/// The backend keys of every record of revisions `from..=upto`.
fn history_keys(from: i64, upto: i64) -> std::ops::RangeInclusive<u128> {
    Revision::new(from, 0).to_key()..=Revision::new(upto, i64::MAX).to_key()
}

pub(crate) fn make_event(
    put: bool,
    kv: KeyValue,
    revision: Revision,
    prev: Option<Revision>,
) -> WatchEvent {
    let r#type = if put {
        EventType::Put
    } else {
        EventType::Delete
    } as i32;
    WatchEvent {
        event: Event {
            r#type,
            kv: Some(kv),
            prev_kv: None,
        },
        revision,
        prev,
    }
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod watch_tests;
