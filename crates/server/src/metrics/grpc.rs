//! go-grpc-prometheus's server metrics, which etcd exports: calls started and handled (by
//! status code), messages received and sent, and with `--metrics extensive` handling time, per
//! method. Every method Cairn serves is present from the start with zero counts, as in etcd,
//! so that rate() and absent() behave in alert rules before the first call.
//!
//! Counted by [`Track`], a service around the client port's whole HTTP service: it reads the
//! 5-byte gRPC message prefixes as the bodies stream through (no message is decoded or copied)
//! and the `grpc-status` of the trailers.

use super::Level;
use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderMap, HeaderName};
use axum::response::Response;
use bytes::Bytes;
use http_body::Frame;
use prometheus::{
    Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, Opts, Registry,
};
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// The gRPC methods Cairn serves, with go-grpc-prometheus's `grpc_type` of each.
const METHODS: &[(&str, &[(&str, &str)])] = &[
    (
        "etcdserverpb.KV",
        &[
            ("Range", UNARY),
            ("Put", UNARY),
            ("DeleteRange", UNARY),
            ("Txn", UNARY),
            ("Compact", UNARY),
            ("RangeStream", SERVER_STREAM),
        ],
    ),
    ("etcdserverpb.Watch", &[("Watch", BIDI)]),
    (
        "etcdserverpb.Lease",
        &[
            ("LeaseGrant", UNARY),
            ("LeaseRevoke", UNARY),
            ("LeaseKeepAlive", BIDI),
            ("LeaseTimeToLive", UNARY),
            ("LeaseLeases", UNARY),
        ],
    ),
    (
        "etcdserverpb.Cluster",
        &[
            ("MemberAdd", UNARY),
            ("MemberRemove", UNARY),
            ("MemberUpdate", UNARY),
            ("MemberList", UNARY),
            ("MemberPromote", UNARY),
        ],
    ),
    (
        "etcdserverpb.Maintenance",
        &[
            ("Alarm", UNARY),
            ("Status", UNARY),
            ("Defragment", UNARY),
            ("Hash", UNARY),
            ("HashKV", UNARY),
            ("Snapshot", SERVER_STREAM),
            ("MoveLeader", UNARY),
            ("Downgrade", UNARY),
        ],
    ),
    (
        "etcdserverpb.Auth",
        &[
            ("AuthEnable", UNARY),
            ("AuthDisable", UNARY),
            ("AuthStatus", UNARY),
            ("Authenticate", UNARY),
            ("UserAdd", UNARY),
            ("UserGet", UNARY),
            ("UserList", UNARY),
            ("UserDelete", UNARY),
            ("UserChangePassword", UNARY),
            ("UserGrantRole", UNARY),
            ("UserRevokeRole", UNARY),
            ("RoleAdd", UNARY),
            ("RoleGet", UNARY),
            ("RoleList", UNARY),
            ("RoleDelete", UNARY),
            ("RoleGrantPermission", UNARY),
            ("RoleRevokePermission", UNARY),
        ],
    ),
    (
        "v3electionpb.Election",
        &[
            ("Campaign", UNARY),
            ("Proclaim", UNARY),
            ("Leader", UNARY),
            ("Observe", SERVER_STREAM),
            ("Resign", UNARY),
        ],
    ),
    ("v3lockpb.Lock", &[("Lock", UNARY), ("Unlock", UNARY)]),
];

const UNARY: &str = "unary";
const BIDI: &str = "bidi_stream";
const SERVER_STREAM: &str = "server_stream";

/// gRPC status codes by number, as go-grpc-prometheus names them in `grpc_code`.
const CODES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CANCELED: usize = 1;
const UNKNOWN: usize = 2;

/// One method's counters, resolved once so that a call costs one map lookup.
struct Method {
    unary: bool,
    started: IntCounter,
    handled: Vec<IntCounter>,
    received: IntCounter,
    sent: IntCounter,
    handling: Option<Histogram>,
}

pub struct GrpcMetrics {
    /// By request path, `/etcdserverpb.KV/Range`.
    methods: HashMap<String, Arc<Method>>,
    client_sent_bytes: IntCounter,
    client_received_bytes: IntCounter,
    client_requests: IntCounterVec,
    /// Per client version seen: its unary and stream counters of `client_requests`.
    versions: parking_lot::RwLock<Vec<(Box<str>, [IntCounter; 2])>>,
}

impl GrpcMetrics {
    pub(super) fn new(r: &Registry, level: Level) -> prometheus::Result<GrpcMetrics> {
        let labels = ["grpc_type", "grpc_service", "grpc_method"];
        let vec = |name: &str, help: &str, labels: &[&str]| -> prometheus::Result<IntCounterVec> {
            let v = IntCounterVec::new(Opts::new(name, help), labels)?;
            r.register(Box::new(v.clone()))?;
            Ok(v)
        };
        let started = vec(
            "grpc_server_started_total",
            "Total number of RPCs started on the server.",
            &labels,
        )?;
        let handled = vec(
            "grpc_server_handled_total",
            "Total number of RPCs completed on the server, regardless of success or failure.",
            &["grpc_type", "grpc_service", "grpc_method", "grpc_code"],
        )?;
        let received = vec(
            "grpc_server_msg_received_total",
            "Total number of RPC stream messages received on the server.",
            &labels,
        )?;
        let sent = vec(
            "grpc_server_msg_sent_total",
            "Total number of gRPC stream messages sent by the server.",
            &labels,
        )?;
        let handling = match level {
            Level::Basic => None,
            Level::Extensive => {
                let h = HistogramVec::new(
                    HistogramOpts::new(
                        "grpc_server_handling_seconds",
                        "Histogram of response latency (seconds) of gRPC that had been application-level handled by the server.",
                    ),
                    &labels,
                )?;
                r.register(Box::new(h.clone()))?;
                Some(h)
            }
        };
        let mut methods = HashMap::new();
        for (service, calls) in METHODS {
            for (name, kind) in *calls {
                let l = [*kind, *service, *name];
                let method = Method {
                    unary: *kind == UNARY,
                    started: started.with_label_values(&l),
                    handled: CODES
                        .iter()
                        .map(|code| handled.with_label_values(&[*kind, service, name, code]))
                        .collect(),
                    received: received.with_label_values(&l),
                    sent: sent.with_label_values(&l),
                    handling: handling.as_ref().map(|h| h.with_label_values(&l)),
                };
                methods.insert(format!("/{service}/{name}"), Arc::new(method));
            }
        }
        let counter = |name: &str, help: &str| -> prometheus::Result<IntCounter> {
            let c = IntCounter::new(name, help)?;
            r.register(Box::new(c.clone()))?;
            Ok(c)
        };
        Ok(GrpcMetrics {
            methods,
            client_sent_bytes: counter(
                "etcd_network_client_grpc_sent_bytes_total",
                "The total number of bytes sent to grpc clients.",
            )?,
            client_received_bytes: counter(
                "etcd_network_client_grpc_received_bytes_total",
                "The total number of bytes received from grpc clients.",
            )?,
            client_requests: vec(
                "etcd_server_client_requests_total",
                "The total number of client requests per client version.",
                &["type", "client_api_version"],
            )?,
            versions: parking_lot::RwLock::new(Vec::new()),
        })
    }
}

/// Counts the calls of known methods, from their start to their status, around the whole
/// HTTP service. A hand-written service rather than an axum middleware: per call it costs one
/// map lookup, two header lookups, a few atomic increments and three small allocations (the
/// future and the two body wrappers); `from_fn` cloned the route stack and moved a large
/// future around on every call, which cost 15% of a small read's CPU.
#[derive(Clone)]
pub struct Track<S> {
    inner: S,
    metrics: Arc<super::Metrics>,
}

impl<S> Track<S> {
    pub fn new(inner: S, metrics: Arc<super::Metrics>) -> Track<S> {
        Track { inner, metrics }
    }
}

impl<S> tower::Service<Request> for Track<S>
where
    S: tower::Service<Request, Response = Response, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = Response;
    type Error = Infallible;
    type Future = TrackFuture;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request) -> TrackFuture {
        let Some(method) = self.metrics.grpc.methods.get(request.uri().path()).cloned() else {
            return TrackFuture {
                inner: Box::pin(self.inner.call(request)),
                call: None,
            };
        };
        let grpc = &self.metrics.grpc;
        method.started.inc();
        grpc.count_client_request(method.unary, request.headers());
        let started = Instant::now();
        let (parts, body) = request.into_parts();
        let body = Counted {
            inner: body,
            prefix: MessagePrefixes::default(),
            side: Side::Received,
            method: method.clone(),
            bytes: grpc.client_received_bytes.clone(),
            started,
            finished: true,
        };
        let request = Request::from_parts(parts, Body::new(body));
        TrackFuture {
            inner: Box::pin(self.inner.call(request)),
            call: Some((method, started, grpc.client_sent_bytes.clone())),
        }
    }
}

/// The response of a tracked call: its body is counted as it goes out.
pub struct TrackFuture {
    inner: Pin<Box<dyn Future<Output = Result<Response, Infallible>> + Send>>,
    call: Option<(Arc<Method>, Instant, IntCounter)>,
}

impl Drop for TrackFuture {
    fn drop(&mut self) {
        // Dropped before the handler answered: the client gave up (a deadline, a cancel).
        if let Some((method, started, _)) = self.call.take() {
            finish(&method, CANCELED, started);
        }
    }
}

impl Future for TrackFuture {
    type Output = Result<Response, Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let response = match self.inner.as_mut().poll(cx) {
            Poll::Pending => return Poll::Pending,
            Poll::Ready(Ok(response)) => response,
            Poll::Ready(Err(never)) => match never {},
        };
        let Some((method, started, bytes)) = self.call.take() else {
            return Poll::Ready(Ok(response));
        };
        let (parts, body) = response.into_parts();
        // A trailers-only response carries its status in the headers; otherwise it comes in
        // the trailers at the end of the body, or never if the client goes away first.
        let status_in_headers = status_code(&parts.headers);
        if let Some(code) = status_in_headers {
            finish(&method, code, started);
        }
        let body = Counted {
            inner: body,
            prefix: MessagePrefixes::default(),
            side: Side::Sent,
            method,
            bytes,
            started,
            finished: status_in_headers.is_some(),
        };
        Poll::Ready(Ok(Response::from_parts(parts, Body::new(body))))
    }
}

const GRPC_STATUS: HeaderName = HeaderName::from_static("grpc-status");
/// etcd's clients send their API version (`3.4`, `3.5`) in this metadata key.
const CLIENT_API_VERSION: HeaderName = HeaderName::from_static("client-api-version");
/// Distinct client versions given a series of their own; later ones count as "unknown" (the
/// label comes from clients, and a series per made-up version would grow without bound).
const MAX_CLIENT_VERSIONS: usize = 16;

impl GrpcMetrics {
    /// etcd's `client_requests_total{type, client_api_version}`, with the counters of the
    /// versions seen so far kept at hand: looking a labelled series up costs more than the
    /// increment.
    fn count_client_request(&self, unary: bool, headers: &HeaderMap) {
        let version = headers
            .get(&CLIENT_API_VERSION)
            .and_then(|v| v.to_str().ok())
            .filter(|v| !v.is_empty() && v.len() <= 16)
            .unwrap_or("unknown");
        let kind = usize::from(!unary);
        if let Some((_, counters)) = self.versions.read().iter().find(|(v, _)| **v == *version) {
            counters[kind].inc();
            return;
        }
        let mut versions = self.versions.write();
        let version = if versions.len() < MAX_CLIENT_VERSIONS {
            version
        } else {
            "unknown"
        };
        let at = match versions.iter().position(|(v, _)| **v == *version) {
            Some(at) => at,
            None => {
                let counters = [
                    self.client_requests.with_label_values(&["unary", version]),
                    self.client_requests.with_label_values(&["stream", version]),
                ];
                versions.push((version.into(), counters));
                versions.len() - 1
            }
        };
        versions[at].1[kind].inc();
    }
}

fn status_code(headers: &HeaderMap) -> Option<usize> {
    let code = headers
        .get(&GRPC_STATUS)?
        .to_str()
        .ok()?
        .parse::<usize>()
        .ok()?;
    Some(if code < CODES.len() { code } else { UNKNOWN })
}

fn finish(method: &Method, code: usize, started: Instant) {
    if let Some(c) = method.handled.get(code) {
        c.inc();
    }
    if let Some(h) = &method.handling {
        h.observe(started.elapsed().as_secs_f64());
    }
}

enum Side {
    Received,
    Sent,
}

/// A body passed through unchanged while its gRPC messages are counted.
struct Counted {
    inner: Body,
    prefix: MessagePrefixes,
    side: Side,
    method: Arc<Method>,
    /// etcd's client byte counter for this direction (message payloads).
    bytes: IntCounter,
    started: Instant,
    /// The call's status has been counted (always true for a request body).
    finished: bool,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = &mut *self;
        let polled = Pin::new(&mut this.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(data) = frame.data_ref() {
                let (messages, payload) = this.prefix.feed(data);
                if messages > 0 {
                    match this.side {
                        Side::Received => this.method.received.inc_by(messages),
                        Side::Sent => this.method.sent.inc_by(messages),
                    }
                }
                this.bytes.inc_by(payload);
            } else if let Some(trailers) = frame.trailers_ref()
                && !this.finished
            {
                this.finished = true;
                finish(
                    &this.method,
                    status_code(trailers).unwrap_or(UNKNOWN),
                    this.started,
                );
            }
        } else if let Poll::Ready(None) = &polled
            && !this.finished
        {
            // Ended without a status anywhere: not a gRPC answer, but not a cancel either.
            this.finished = true;
            finish(&this.method, UNKNOWN, this.started);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        // The response went away before its status: the client canceled the call.
        if !self.finished {
            finish(&self.method, CANCELED, self.started);
        }
    }
}

/// Finds the gRPC message boundaries in a byte stream: each message is a flag byte, a 4-byte
/// big-endian length, then that many bytes.
#[derive(Default)]
struct MessagePrefixes {
    /// Bytes of the current prefix seen so far.
    header: [u8; 5],
    header_len: usize,
    /// Payload bytes of the current message still to skip.
    skip: u64,
}

impl MessagePrefixes {
    /// Feeds the next bytes; returns the messages that began in them and the payload bytes
    /// among them (counted as they pass, so a cut message counts what arrived).
    fn feed(&mut self, mut data: &[u8]) -> (u64, u64) {
        let (mut messages, mut payload) = (0, 0);
        while !data.is_empty() {
            if self.skip > 0 {
                let n = self.skip.min(data.len() as u64);
                self.skip -= n;
                payload += n;
                data = &data[n as usize..];
                continue;
            }
            let take = (5 - self.header_len).min(data.len());
            self.header[self.header_len..self.header_len + take].copy_from_slice(&data[..take]);
            self.header_len += take;
            data = &data[take..];
            if self.header_len == 5 {
                let len = u32::from_be_bytes([
                    self.header[1],
                    self.header[2],
                    self.header[3],
                    self.header[4],
                ]);
                messages += 1;
                self.skip = u64::from(len);
                self.header_len = 0;
            }
        }
        (messages, payload)
    }
}

#[cfg(test)]
mod tests {
    use super::MessagePrefixes;

    fn message(len: u32) -> Vec<u8> {
        let mut m = vec![0];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend(std::iter::repeat_n(7, len as usize));
        m
    }

    #[test]
    fn messages_are_found_however_the_stream_is_cut() {
        let stream: Vec<u8> = [message(0), message(3), message(300), message(1)].concat();
        for chunk in [1, 2, 4, 5, 6, 7, 64, stream.len()] {
            let mut p = MessagePrefixes::default();
            let (mut messages, mut payload) = (0, 0);
            for piece in stream.chunks(chunk) {
                let (m, b) = p.feed(piece);
                messages += m;
                payload += b;
            }
            assert_eq!((messages, payload), (4, 304), "chunks of {chunk}");
        }
    }
}
