//! The watchable store: watchers, live delivery of committed events, catch-up from history.
//!
//! Every committed batch is offered to the *synced* watchers (those that have seen everything up
//! to the store revision) while the store's write lock is still held, so no revision can slip
//! between commit and notification. A watcher whose stream is not keeping up (more than
//! [`MAX_PENDING_MESSAGES`] undelivered event messages) becomes *unsynced*: it stops receiving live
//! events and is later caught up from the backend's history by [`crate::Store::sync_watchers`],
//! at most [`CATCH_UP_MAX_REVISIONS`] revisions per pass. Memory per stream is therefore bounded,
//! and a slow watcher never blocks writers or other watchers.
//!
//! Events of one revision always travel in one message (etcd's "atomic" guarantee); messages of
//! one watcher are delivered in revision order, each revision once.

use crate::index::{Revision, key_bounds};
use bytes::Bytes;
use cairn_proto::mvccpb::{Event, event::EventType};
use std::collections::HashMap;
use std::ops::Bound;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::Notify;
use tokio::sync::mpsc::UnboundedSender;

/// Undelivered event messages a stream may hold before its watchers are moved to catch-up.
pub const MAX_PENDING_MESSAGES: usize = 128;
/// Undelivered control messages (created, canceled, progress) a stream may hold. A client that
/// sends requests without reading the answers is then not read from until it catches up (etcd
/// blocks the stream's control path the same way), and periodic progress notifications to it
/// are skipped.
pub const MAX_PENDING_CONTROL: usize = 64;
/// Revisions read from history for one watcher in one catch-up pass (etcd's watchBatchMaxRevs).
pub const CATCH_UP_MAX_REVISIONS: i64 = 1000;
/// Unsynced watchers handled per catch-up pass (etcd's maxWatchersPerSync).
pub const CATCH_UP_MAX_WATCHERS: usize = 512;

pub type StreamId = u64;
pub type WatchId = i64;

/// etcd's watch id meaning "the server picks one".
pub const AUTO_WATCH_ID: WatchId = 0;

/// A committed change, with the revision that held the key's previous value (for `prev_kv`).
#[derive(Debug, Clone)]
pub struct WatchEvent {
    pub event: Event,
    pub revision: Revision,
    pub prev: Option<Revision>,
}

impl WatchEvent {
    pub fn key(&self) -> &[u8] {
        self.event.kv.as_ref().map_or(&[][..], |kv| kv.key.as_ref())
    }

    pub fn is_put(&self) -> bool {
        self.event.r#type == EventType::Put as i32
    }
}

/// What a watch stream receives, in order.
#[derive(Debug)]
pub enum WatchMsg {
    Created {
        watch_id: WatchId,
        revision: i64,
    },
    /// Creation refused (e.g. a duplicate client-chosen id): created and canceled at once.
    Refused {
        watch_id: WatchId,
        revision: i64,
        reason: String,
    },
    Events {
        watch_id: WatchId,
        revision: i64,
        events: Vec<WatchEvent>,
        prev_kv: bool,
        fragment: bool,
    },
    Canceled {
        watch_id: WatchId,
        revision: i64,
        compact_revision: i64,
        reason: String,
    },
    /// An empty response carrying progress; `watch_id` is -1 for a RequestProgress answer.
    Progress {
        watch_id: WatchId,
        revision: i64,
    },
}

/// The sending half of a stream, with its counts of undelivered event and control messages.
#[derive(Clone)]
pub struct StreamSink {
    tx: UnboundedSender<WatchMsg>,
    pub(crate) pending: Arc<AtomicUsize>,
    control_pending: Arc<AtomicUsize>,
    /// Woken when a control message is delivered, for [`StreamSink::control_room`].
    room: Arc<Notify>,
}

impl StreamSink {
    pub fn new(tx: UnboundedSender<WatchMsg>) -> Self {
        StreamSink {
            tx,
            pending: Arc::new(AtomicUsize::new(0)),
            control_pending: Arc::new(AtomicUsize::new(0)),
            room: Arc::new(Notify::new()),
        }
    }

    /// The receiver calls this for every message it takes off the channel.
    pub fn delivered(&self, msg: &WatchMsg) {
        if matches!(msg, WatchMsg::Events { .. }) {
            self.pending.fetch_sub(1, Ordering::AcqRel);
        } else {
            self.control_pending.fetch_sub(1, Ordering::AcqRel);
            self.room.notify_waiters();
        }
    }

    /// Waits until the stream holds fewer than [`MAX_PENDING_CONTROL`] undelivered control
    /// messages. Whoever reads the client's requests calls this before handling each one, so a
    /// client that does not read its answers stops being read from.
    pub async fn control_room(&self) {
        loop {
            let notified = self.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.control_pending.load(Ordering::Acquire) < MAX_PENDING_CONTROL {
                return;
            }
            notified.await;
        }
    }

    fn has_control_room(&self) -> bool {
        self.control_pending.load(Ordering::Acquire) < MAX_PENDING_CONTROL
    }

    /// Answers a create request refused before it reached the hub (the caller may not read
    /// the range): created and canceled at once.
    pub fn refuse(&self, watch_id: WatchId, revision: i64, reason: String) -> bool {
        self.control(WatchMsg::Refused {
            watch_id,
            revision,
            reason,
        })
    }

    fn control(&self, msg: WatchMsg) -> bool {
        self.control_pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(msg).is_err() {
            self.control_pending.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }

    fn has_room(&self) -> bool {
        self.pending.load(Ordering::Acquire) < MAX_PENDING_MESSAGES
    }

    fn events(&self, msg: WatchMsg) -> bool {
        self.pending.fetch_add(1, Ordering::AcqRel);
        if self.tx.send(msg).is_err() {
            self.pending.fetch_sub(1, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// What a client asked to watch.
#[derive(Debug, Clone, Default)]
pub struct WatchSpec {
    pub key: Bytes,
    pub range_end: Bytes,
    /// 0: from the next revision.
    pub start_revision: i64,
    pub watch_id: WatchId,
    pub no_put: bool,
    pub no_delete: bool,
    pub prev_kv: bool,
    pub progress_notify: bool,
    pub fragment: bool,
}

struct Watcher {
    spec: WatchSpec,
    /// Lowest revision not yet delivered (or skipped as not matching).
    next_rev: i64,
    synced: bool,
    /// Whether anything was sent since the last progress notification.
    active: bool,
}

impl Watcher {
    fn matches(&self, ev: &WatchEvent) -> bool {
        if ev.revision.main < self.next_rev {
            return false;
        }
        if (ev.is_put() && self.spec.no_put) || (!ev.is_put() && self.spec.no_delete) {
            return false;
        }
        let (lo, hi) = key_bounds(&self.spec.key, &self.spec.range_end);
        let key = ev.key();
        let above = match lo {
            Bound::Included(l) => key >= l,
            _ => true,
        };
        let below = match hi {
            Bound::Included(h) => key <= h,
            Bound::Excluded(h) => key < h,
            Bound::Unbounded => true,
        };
        above && below
    }
}

struct StreamState {
    sink: StreamSink,
    watchers: HashMap<WatchId, Watcher>,
    next_auto_id: WatchId,
    /// A RequestProgress is waiting for every watcher of the stream to be synced.
    progress_requested: bool,
}

/// All watch streams of a store.
#[derive(Default)]
pub(crate) struct Hub {
    streams: HashMap<StreamId, StreamState>,
    next_stream: StreamId,
}

/// Why a watch could not be created.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WatchError {
    #[error("mvcc: duplicate watch ID provided on the WatchStream")]
    DuplicateId,
    #[error("mvcc: watch stream closed")]
    StreamClosed,
}

impl Hub {
    pub(crate) fn open_stream(&mut self, sink: StreamSink) -> StreamId {
        self.next_stream += 1;
        self.streams.insert(
            self.next_stream,
            StreamState {
                sink,
                watchers: HashMap::new(),
                next_auto_id: 0,
                progress_requested: false,
            },
        );
        self.next_stream
    }

    /// Every watcher catches up from the backend again (after the backend was replaced).
    pub(crate) fn unsync_all(&mut self) {
        for st in self.streams.values_mut() {
            for w in st.watchers.values_mut() {
                w.synced = false;
            }
        }
    }

    pub(crate) fn close_stream(&mut self, stream: StreamId) {
        self.streams.remove(&stream);
    }

    /// Registers a watcher; `current` is the store revision at this moment.
    pub(crate) fn create(
        &mut self,
        stream: StreamId,
        spec: WatchSpec,
        current: i64,
    ) -> Result<WatchId, WatchError> {
        let st = self
            .streams
            .get_mut(&stream)
            .ok_or(WatchError::StreamClosed)?;
        let id = if spec.watch_id == AUTO_WATCH_ID {
            while st.watchers.contains_key(&st.next_auto_id) {
                st.next_auto_id += 1;
            }
            st.next_auto_id
        } else {
            spec.watch_id
        };
        if st.watchers.contains_key(&id) {
            st.sink.control(WatchMsg::Refused {
                watch_id: id,
                revision: current,
                reason: WatchError::DuplicateId.to_string(),
            });
            return Err(WatchError::DuplicateId);
        }
        let (next_rev, synced) = if spec.start_revision <= 0 || spec.start_revision > current {
            (spec.start_revision.max(current + 1), true)
        } else {
            (spec.start_revision, false)
        };
        st.sink.control(WatchMsg::Created {
            watch_id: id,
            revision: current,
        });
        st.watchers.insert(
            id,
            Watcher {
                spec,
                next_rev,
                synced,
                active: false,
            },
        );
        Ok(id)
    }

    pub(crate) fn cancel(&mut self, stream: StreamId, id: WatchId, current: i64) -> bool {
        let Some(st) = self.streams.get_mut(&stream) else {
            return false;
        };
        if st.watchers.remove(&id).is_none() {
            return false;
        }
        st.sink.control(WatchMsg::Canceled {
            watch_id: id,
            revision: current,
            compact_revision: 0,
            reason: String::new(),
        });
        Self::answer_progress_if_synced(st, current);
        true
    }

    pub(crate) fn request_progress(&mut self, stream: StreamId, current: i64) {
        if let Some(st) = self.streams.get_mut(&stream) {
            st.progress_requested = true;
            Self::answer_progress_if_synced(st, current);
        }
    }

    fn answer_progress_if_synced(st: &mut StreamState, current: i64) {
        if st.progress_requested && st.watchers.values().all(|w| w.synced) {
            st.progress_requested = false;
            st.sink.control(WatchMsg::Progress {
                watch_id: -1,
                revision: current,
            });
        }
    }

    /// Offers a committed batch (events in revision order, `current` = revision after it) to
    /// every synced watcher.
    pub(crate) fn notify(&mut self, events: &[WatchEvent], current: i64) {
        let mut closed = Vec::new();
        for (sid, st) in &mut self.streams {
            let sink = st.sink.clone();
            for (id, w) in &mut st.watchers {
                if !w.synced {
                    continue;
                }
                let mine: Vec<WatchEvent> =
                    events.iter().filter(|e| w.matches(e)).cloned().collect();
                if mine.is_empty() {
                    w.next_rev = w.next_rev.max(current + 1);
                    continue;
                }
                if !sink.has_room() {
                    // Too far behind: from here on the watcher reads history instead.
                    w.synced = false;
                    w.next_rev = mine[0].revision.main;
                    continue;
                }
                let sent = sink.events(WatchMsg::Events {
                    watch_id: *id,
                    revision: current,
                    events: mine,
                    prev_kv: w.spec.prev_kv,
                    fragment: w.spec.fragment,
                });
                if !sent {
                    closed.push(*sid);
                    break;
                }
                w.active = true;
                w.next_rev = current + 1;
            }
        }
        for sid in closed {
            self.streams.remove(&sid);
        }
    }

    /// Sends progress notifications to synced, idle watchers that asked for them.
    pub(crate) fn progress_tick(&mut self, current: i64) {
        for st in self.streams.values_mut() {
            for (id, w) in &mut st.watchers {
                // A stream whose client is not reading gets no more notifications.
                if w.spec.progress_notify && w.synced && !w.active && st.sink.has_control_room() {
                    st.sink.control(WatchMsg::Progress {
                        watch_id: *id,
                        revision: current,
                    });
                }
                w.active = false;
            }
        }
    }

    /// Unsynced watchers to catch up this pass: (stream, id, next_rev, spec).
    pub(crate) fn unsynced(&self) -> Vec<(StreamId, WatchId, i64)> {
        let mut out = Vec::new();
        for (sid, st) in &self.streams {
            if !st.sink.has_room() {
                continue;
            }
            for (id, w) in &st.watchers {
                if !w.synced {
                    out.push((*sid, *id, w.next_rev));
                    if out.len() >= CATCH_UP_MAX_WATCHERS {
                        return out;
                    }
                }
            }
        }
        out
    }

    /// Cancels a watcher whose next revision was compacted away.
    pub(crate) fn cancel_compacted(
        &mut self,
        stream: StreamId,
        id: WatchId,
        compacted: i64,
        current: i64,
    ) {
        if let Some(st) = self.streams.get_mut(&stream)
            && st.watchers.remove(&id).is_some()
        {
            st.sink.control(WatchMsg::Canceled {
                watch_id: id,
                revision: current,
                compact_revision: compacted,
                reason: "mvcc: required revision has been compacted".into(),
            });
            Self::answer_progress_if_synced(st, current);
        }
    }

    /// Delivers history `events` (all revisions in `[from, upto]`) to one unsynced watcher; it
    /// becomes synced once `upto` reaches `current`.
    /// Delivers history `from..=upto` to a watcher that is still waiting for it (one that was
    /// canceled, replaced or caught up meanwhile is left alone).
    pub(crate) fn deliver_history(
        &mut self,
        stream: StreamId,
        id: WatchId,
        events: &[WatchEvent],
        (from, upto): (i64, i64),
        current: i64,
    ) {
        let Some(st) = self.streams.get_mut(&stream) else {
            return;
        };
        let sink = st.sink.clone();
        let Some(w) = st.watchers.get_mut(&id) else {
            return;
        };
        if w.synced || w.next_rev != from {
            return;
        }
        let mine: Vec<WatchEvent> = events.iter().filter(|e| w.matches(e)).cloned().collect();
        if !mine.is_empty() {
            if !sink.has_room() {
                return;
            }
            if !sink.events(WatchMsg::Events {
                watch_id: id,
                revision: current,
                events: mine,
                prev_kv: w.spec.prev_kv,
                fragment: w.spec.fragment,
            }) {
                self.streams.remove(&stream);
                return;
            }
            w.active = true;
        }
        w.next_rev = upto + 1;
        if upto >= current {
            w.synced = true;
            Self::answer_progress_if_synced(st, current);
        }
    }

    pub(crate) fn watcher_count(&self) -> usize {
        self.streams.values().map(|s| s.watchers.len()).sum()
    }

    pub(crate) fn spec(&self, stream: StreamId, id: WatchId) -> Option<&WatchSpec> {
        self.streams
            .get(&stream)?
            .watchers
            .get(&id)
            .map(|w| &w.spec)
    }
}
