//! The Watch service: one bidirectional stream per client call, many watchers per stream.
//!
//! The MVCC store decides what each watcher receives and when; this module turns its messages
//! into `WatchResponse`s (headers, `prev_kv`, fragmentation) and runs the background work:
//! catching up unsynced watchers and periodic progress notifications.

use crate::errors::msg;
use crate::etcd::EtcdServer;
use cairn_mvcc::{StreamId, StreamSink, WatchMsg, WatchSpec};
use cairn_proto::etcdserverpb::{
    WatchRequest, WatchResponse, watch_create_request::FilterType, watch_request::RequestUnion,
    watch_server::Watch,
};
use cairn_proto::mvccpb::Event;
use futures::Stream;
use prost::Message;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::sync::Notify;
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};
use tonic::{Request, Response, Status, Streaming};

pub struct WatchService {
    pub server: Arc<EtcdServer>,
    /// Wakes the catch-up task when a watcher starts in the past.
    pub catch_up: Arc<Notify>,
}

/// The response stream of one Watch call. Dropping it (the client went away) closes the watch
/// stream in the store, so its watchers stop costing anything.
struct ResponseStream {
    server: Arc<EtcdServer>,
    stream: StreamId,
    sink: StreamSink,
    rx: UnboundedReceiver<WatchMsg>,
    /// Responses already built but not yet handed out (fragments of one message).
    ready: std::collections::VecDeque<WatchResponse>,
}

impl Drop for ResponseStream {
    fn drop(&mut self) {
        self.server.store.close_watch_stream(self.stream);
        self.server.metrics.watch_streams.dec();
    }
}

impl Stream for ResponseStream {
    type Item = Result<WatchResponse, Status>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        loop {
            if let Some(r) = self.ready.pop_front() {
                return Poll::Ready(Some(Ok(r)));
            }
            match self.rx.poll_recv(cx) {
                Poll::Ready(Some(m)) => {
                    self.sink.delivered(&m);
                    let responses = to_responses(&self.server, m);
                    self.ready.extend(responses);
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

fn to_responses(server: &EtcdServer, m: WatchMsg) -> Vec<WatchResponse> {
    match m {
        WatchMsg::Created { watch_id, revision } => vec![WatchResponse {
            header: server.header(revision),
            watch_id,
            created: true,
            ..Default::default()
        }],
        WatchMsg::Refused {
            watch_id,
            revision,
            reason,
        } => vec![WatchResponse {
            header: server.header(revision),
            watch_id,
            created: true,
            canceled: true,
            cancel_reason: reason,
            ..Default::default()
        }],
        WatchMsg::Canceled {
            watch_id,
            revision,
            compact_revision,
            reason,
        } => vec![WatchResponse {
            header: server.header(revision),
            watch_id,
            canceled: true,
            compact_revision,
            cancel_reason: reason,
            ..Default::default()
        }],
        WatchMsg::Progress { watch_id, revision } => vec![WatchResponse {
            header: server.header(revision),
            watch_id,
            ..Default::default()
        }],
        WatchMsg::Events {
            watch_id,
            revision,
            events,
            prev_kv,
            fragment,
        } => {
            let events: Vec<Event> = events
                .into_iter()
                .map(|e| {
                    let mut ev = e.event;
                    if prev_kv && let Some(prev) = e.prev {
                        // A prev revision compacted away meanwhile leaves prev_kv empty, as etcd.
                        ev.prev_kv = server.store.kv_at(prev).ok().flatten();
                    }
                    ev
                })
                .collect();
            server.metrics.events_sent.inc_by(events.len() as u64);
            let base = WatchResponse {
                header: server.header(revision),
                watch_id,
                ..Default::default()
            };
            let limit = server.config.max_request_bytes as usize;
            if !fragment
                || base.encoded_len() + events.iter().map(|e| e.encoded_len() + 4).sum::<usize>()
                    <= limit
            {
                return vec![WatchResponse { events, ..base }];
            }
            fragments(base, events, limit)
        }
    }
}

/// Splits one response into pieces of at most about `limit` bytes (at least one event each); all
/// but the last carry `fragment = true`, which clients use to reassemble them.
fn fragments(base: WatchResponse, events: Vec<Event>, limit: usize) -> Vec<WatchResponse> {
    let mut out = Vec::new();
    let mut cur: Vec<Event> = Vec::new();
    let mut size = base.encoded_len();
    for ev in events {
        let n = ev.encoded_len() + 4;
        if !cur.is_empty() && size + n > limit {
            out.push(WatchResponse {
                events: std::mem::take(&mut cur),
                fragment: true,
                ..base.clone()
            });
            size = base.encoded_len();
        }
        size += n;
        cur.push(ev);
    }
    out.push(WatchResponse {
        events: cur,
        ..base
    });
    out
}

fn spec_of(c: cairn_proto::etcdserverpb::WatchCreateRequest) -> WatchSpec {
    WatchSpec {
        no_put: c.filters.contains(&(FilterType::Noput as i32)),
        no_delete: c.filters.contains(&(FilterType::Nodelete as i32)),
        key: c.key,
        range_end: c.range_end,
        start_revision: c.start_revision,
        watch_id: c.watch_id,
        prev_kv: c.prev_kv,
        progress_notify: c.progress_notify,
        fragment: c.fragment,
    }
}

/// etcd puts the whole gRPC error text in the reason (clients show it as it is).
const PERMISSION_DENIED_REASON: &str =
    "rpc error: code = PermissionDenied desc = etcdserver: permission denied";

#[tonic::async_trait]
impl Watch for WatchService {
    type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

    async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<Self::WatchStream>, Status> {
        self.server.refuse_learner()?;
        let require_leader = super::requires_leader(request.metadata());
        if require_leader && self.server.raft.leader() == 0 {
            return Err(Status::unavailable(msg::NO_LEADER));
        }
        let credentials = super::Credentials::of(&request);
        let mut inbound = request.into_inner();
        let (tx, rx) = unbounded_channel();
        let sink = StreamSink::new(tx);
        let stream = self.server.store.open_watch_stream(sink.clone());
        self.server.metrics.watch_streams.inc();
        let server = self.server.clone();
        let catch_up = self.catch_up.clone();
        let control = sink.clone();
        tokio::spawn(async move {
            // Ends when the client half-closes or the connection drops; the response stream's
            // drop then closes the watch stream. A client that does not read its answers is not
            // read from either: its requests wait in the transport's flow-control window.
            loop {
                control.control_room().await;
                let Ok(Some(req)) = inbound.message().await else {
                    break;
                };
                match req.request_union {
                    Some(RequestUnion::CreateRequest(c)) => {
                        // Checked for each watch with the credentials as they stand now, as
                        // etcd does; a refused one is created and canceled at once.
                        let permitted =
                            super::caller_of(&server, &credentials)
                                .await
                                .is_ok_and(|who| {
                                    server
                                        .auth
                                        .check_key(&who, &c.key, &c.range_end, false)
                                        .is_ok()
                                });
                        if !permitted {
                            control.refuse(
                                -1,
                                server.store.revision(),
                                PERMISSION_DENIED_REASON.to_string(),
                            );
                            continue;
                        }
                        let past =
                            c.start_revision > 0 && c.start_revision <= server.store.revision();
                        // A refused create (duplicate id) is answered on the stream.
                        let _ = server.store.watch(stream, spec_of(c));
                        if past {
                            catch_up.notify_one();
                        }
                    }
                    Some(RequestUnion::CancelRequest(c)) => {
                        server.store.cancel_watch(stream, c.watch_id);
                    }
                    Some(RequestUnion::ProgressRequest(_)) => {
                        server.store.request_progress(stream);
                    }
                    None => {}
                }
            }
        });
        let out = ResponseStream {
            server: self.server.clone(),
            stream,
            sink,
            rx,
            ready: Default::default(),
        };
        if require_leader {
            let lost = self.server.leader_lost();
            return Ok(Response::new(Box::pin(super::RequireLeader::new(
                out, lost,
            ))));
        }
        Ok(Response::new(Box::pin(out)))
    }
}

/// Background work for watchers: catch-up passes (every 100 ms, sooner when woken) and progress
/// notifications every `progress_interval`.
pub fn spawn_background(
    server: Arc<EtcdServer>,
    catch_up: Arc<Notify>,
    progress_interval: Duration,
) {
    let s = server.clone();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                _ = catch_up.notified() => {}
            }
            // Keep going while watchers are behind and making progress.
            loop {
                let store = s.store.clone();
                match s.reads.run(move || store.sync_watchers()).await {
                    Ok(Ok(0)) => break,
                    Ok(Ok(_)) => tokio::task::yield_now().await,
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "watch catch-up failed");
                        break;
                    }
                    Err(_) => break,
                }
            }
        }
    });
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(progress_interval);
        tick.tick().await;
        loop {
            tick.tick().await;
            server.store.progress_tick();
        }
    });
}
