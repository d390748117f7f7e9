use super::*;
use bytes::Bytes;
use cairn_proto::etcdserverpb::{DeleteRangeRequest, PutRequest};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path().join("db")).unwrap();
    (dir, store)
}

fn put(s: &Store, k: &str, v: &str) {
    let mut a = s.begin_apply().unwrap();
    a.put(&PutRequest {
        key: Bytes::from(k.to_owned()),
        value: Bytes::from(v.to_owned()),
        ..Default::default()
    })
    .unwrap();
    a.commit(0, 0, false).unwrap();
}

fn del(s: &Store, k: &str) {
    let mut a = s.begin_apply().unwrap();
    a.delete_range(&DeleteRangeRequest {
        key: Bytes::from(k.to_owned()),
        ..Default::default()
    })
    .unwrap();
    a.commit(0, 0, false).unwrap();
}

fn stream(s: &Store) -> (StreamId, StreamSink, UnboundedReceiver<WatchMsg>) {
    let (tx, rx) = unbounded_channel();
    let sink = StreamSink::new(tx);
    (s.open_watch_stream(sink.clone()), sink, rx)
}

/// Drains the channel: (watch id, [(key, mod revision, is_put)]) per events message.
fn drain(sink: &StreamSink, rx: &mut UnboundedReceiver<WatchMsg>) -> Vec<WatchMsg> {
    let mut out = Vec::new();
    while let Ok(m) = rx.try_recv() {
        sink.delivered(&m);
        out.push(m);
    }
    out
}

fn event_keys(msgs: &[WatchMsg]) -> Vec<(String, i64, bool)> {
    msgs.iter()
        .filter_map(|m| match m {
            WatchMsg::Events { events, .. } => Some(events),
            _ => None,
        })
        .flatten()
        .map(|e| {
            let kv = e.event.kv.as_ref().unwrap();
            (
                String::from_utf8(kv.key.to_vec()).unwrap(),
                kv.mod_revision,
                e.is_put(),
            )
        })
        .collect()
}

fn spec(key: &str, end: &str, start: i64) -> WatchSpec {
    WatchSpec {
        key: Bytes::from(key.to_owned()),
        range_end: Bytes::from(end.to_owned()),
        start_revision: start,
        ..Default::default()
    }
}

#[test]
fn live_events_in_order_with_filters() {
    let (_d, s) = open();
    let (sid, sink, mut rx) = stream(&s);
    let all = s.watch(sid, spec("k", "l", 0)).unwrap();
    let no_put = s
        .watch(
            sid,
            WatchSpec {
                no_put: true,
                ..spec("k", "l", 0)
            },
        )
        .unwrap();
    assert_ne!(all, no_put);
    put(&s, "k1", "a"); // rev 2
    put(&s, "x", "ignored"); // rev 3
    del(&s, "k1"); // rev 4
    let msgs = drain(&sink, &mut rx);
    assert!(matches!(msgs[0], WatchMsg::Created { revision: 1, .. }));
    let for_all: Vec<_> = msgs
        .iter()
        .filter(|m| matches!(m, WatchMsg::Events { watch_id, .. } if *watch_id == all))
        .cloned_events();
    assert_eq!(
        for_all,
        vec![("k1".into(), 2, true), ("k1".into(), 4, false)]
    );
    let for_no_put: Vec<_> = msgs
        .iter()
        .filter(|m| matches!(m, WatchMsg::Events { watch_id, .. } if *watch_id == no_put))
        .cloned_events();
    assert_eq!(for_no_put, vec![("k1".into(), 4, false)]);
    // The delete event points at the put it removed (for prev_kv).
    let prev = msgs.iter().find_map(|m| match m {
        WatchMsg::Events { events, .. } if !events[0].is_put() => events[0].prev,
        _ => None,
    });
    assert_eq!(
        s.kv_at(prev.unwrap()).unwrap().unwrap().value.as_ref(),
        b"a"
    );
}

trait ClonedEvents<'a> {
    fn cloned_events(self) -> Vec<(String, i64, bool)>;
}

impl<'a, I: Iterator<Item = &'a WatchMsg>> ClonedEvents<'a> for I {
    fn cloned_events(self) -> Vec<(String, i64, bool)> {
        let msgs: Vec<&WatchMsg> = self.collect();
        msgs.iter()
            .flat_map(|m| match m {
                WatchMsg::Events { events, .. } => events.clone(),
                _ => vec![],
            })
            .map(|e| {
                let kv = e.event.kv.unwrap();
                (
                    String::from_utf8(kv.key.to_vec()).unwrap(),
                    kv.mod_revision,
                    e.event.r#type == 0,
                )
            })
            .collect()
    }
}

#[test]
fn past_start_revision_is_served_from_history_then_live() {
    let (_d, s) = open();
    for i in 0..5 {
        put(&s, &format!("k{i}"), "v"); // revs 2..=6
    }
    let (sid, sink, mut rx) = stream(&s);
    s.watch(sid, spec("k", "l", 3)).unwrap();
    s.request_progress(sid); // answered only once the watcher has caught up
    assert_eq!(drain(&sink, &mut rx).len(), 1); // created
    assert_eq!(s.sync_watchers().unwrap(), 1);
    put(&s, "k9", "live"); // rev 7
    assert_eq!(s.sync_watchers().unwrap(), 0);
    let msgs = drain(&sink, &mut rx);
    let revs: Vec<i64> = event_keys(&msgs).iter().map(|e| e.1).collect();
    assert_eq!(revs, vec![3, 4, 5, 6, 7]);
    assert!(
        msgs.iter()
            .any(|m| matches!(m, WatchMsg::Progress { watch_id: -1, .. }))
    );
}

#[test]
fn slow_watcher_catches_up_without_loss_or_duplicates() {
    let (_d, s) = open();
    let (sid, sink, mut rx) = stream(&s);
    s.watch(sid, spec("k", "l", 0)).unwrap();
    drain(&sink, &mut rx);
    // Never drained while writing: the stream fills up and the watcher falls back to history.
    for i in 0..400 {
        put(&s, &format!("k{:03}", i % 50), &format!("{i}"));
    }
    assert!(sink_pending(&sink) <= watch::MAX_PENDING_MESSAGES);
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen.extend(event_keys(&drain(&sink, &mut rx)));
        if s.sync_watchers().unwrap() == 0 {
            seen.extend(event_keys(&drain(&sink, &mut rx)));
            break;
        }
    }
    let revs: Vec<i64> = seen.iter().map(|e| e.1).collect();
    assert_eq!(revs, (2..402).collect::<Vec<_>>());
}

fn sink_pending(sink: &StreamSink) -> usize {
    sink.pending.load(std::sync::atomic::Ordering::Acquire)
}

#[test]
fn compacted_start_revision_cancels_the_watch() {
    let (_d, s) = open();
    for i in 0..5 {
        put(&s, "k", &format!("{i}"));
    }
    let mut a = s.begin_apply().unwrap();
    a.compact(4).unwrap();
    a.commit(0, 0, false).unwrap();
    let (sid, sink, mut rx) = stream(&s);
    let id = s.watch(sid, spec("k", "", 2)).unwrap();
    s.sync_watchers().unwrap();
    let msgs = drain(&sink, &mut rx);
    assert!(msgs.iter().any(|m| matches!(m,
        WatchMsg::Canceled { watch_id, compact_revision: 4, reason, .. }
            if *watch_id == id && reason == "mvcc: required revision has been compacted")));
    assert_eq!(s.watcher_count(), 0);
}

#[test]
fn duplicate_ids_are_refused_and_cancel_works() {
    let (_d, s) = open();
    let (sid, sink, mut rx) = stream(&s);
    assert_eq!(
        s.watch(
            sid,
            WatchSpec {
                watch_id: 7,
                ..spec("a", "", 0)
            }
        ),
        Ok(7)
    );
    assert_eq!(
        s.watch(
            sid,
            WatchSpec {
                watch_id: 7,
                ..spec("b", "", 0)
            }
        ),
        Err(WatchError::DuplicateId)
    );
    assert!(s.cancel_watch(sid, 7));
    assert!(!s.cancel_watch(sid, 7));
    put(&s, "a", "after cancel");
    let msgs = drain(&sink, &mut rx);
    assert!(event_keys(&msgs).is_empty());
    assert!(matches!(msgs[1], WatchMsg::Refused { watch_id: 7, .. }));
    assert!(matches!(msgs[2], WatchMsg::Canceled { watch_id: 7, .. }));
}
