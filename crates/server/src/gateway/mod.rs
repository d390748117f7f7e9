//! etcd's JSON gateway on the client port (`POST /v3/kv/range` and the rest), as etcd's
//! grpc-gateway serves it: each request is transcoded from JSON by the method's descriptor,
//! called on the very gRPC services that serve gRPC clients (in process, with the caller's
//! `Authorization` / `Grpc-Metadata-*` headers as metadata), and the answer transcoded back.
//! Streams (watch, lease keep-alive, snapshot, observe) take a sequence of JSON objects in the
//! request body and answer with one `{"result": …}` line per message.
//!
//! Must not: hold any logic of the services. Everything a gRPC client gets, the gateway gets
//! from the same code path.

mod transcode;

use axum::Router;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, Method, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::any;
use bytes::{Bytes, BytesMut};
use http_body_util::BodyExt;
use prost_reflect::MethodDescriptor;
use std::convert::Infallible;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tower::ServiceExt;

/// The gateway's paths (after the version prefix) and the gRPC method each stands for, from
/// the `google.api.http` annotations of etcd's protos (3.4, plus 3.5's additions).
const ROUTES: &[(&str, &str, &str)] = &[
    ("kv/range", "etcdserverpb.KV", "Range"),
    ("kv/put", "etcdserverpb.KV", "Put"),
    ("kv/deleterange", "etcdserverpb.KV", "DeleteRange"),
    ("kv/txn", "etcdserverpb.KV", "Txn"),
    ("kv/compaction", "etcdserverpb.KV", "Compact"),
    ("watch", "etcdserverpb.Watch", "Watch"),
    ("lease/grant", "etcdserverpb.Lease", "LeaseGrant"),
    ("lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("kv/lease/revoke", "etcdserverpb.Lease", "LeaseRevoke"),
    ("lease/keepalive", "etcdserverpb.Lease", "LeaseKeepAlive"),
    ("lease/timetolive", "etcdserverpb.Lease", "LeaseTimeToLive"),
    (
        "kv/lease/timetolive",
        "etcdserverpb.Lease",
        "LeaseTimeToLive",
    ),
    ("lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("kv/lease/leases", "etcdserverpb.Lease", "LeaseLeases"),
    ("cluster/member/add", "etcdserverpb.Cluster", "MemberAdd"),
    (
        "cluster/member/remove",
        "etcdserverpb.Cluster",
        "MemberRemove",
    ),
    (
        "cluster/member/update",
        "etcdserverpb.Cluster",
        "MemberUpdate",
    ),
    ("cluster/member/list", "etcdserverpb.Cluster", "MemberList"),
    (
        "cluster/member/promote",
        "etcdserverpb.Cluster",
        "MemberPromote",
    ),
    ("maintenance/alarm", "etcdserverpb.Maintenance", "Alarm"),
    ("maintenance/status", "etcdserverpb.Maintenance", "Status"),
    (
        "maintenance/defragment",
        "etcdserverpb.Maintenance",
        "Defragment",
    ),
    // etcd 3.4 annotates Hash and HashKV with the same path, and the first one wins; 3.5
    // gives HashKV a path of its own.
    ("maintenance/hash", "etcdserverpb.Maintenance", "Hash"),
    ("maintenance/hashkv", "etcdserverpb.Maintenance", "HashKV"),
    (
        "maintenance/snapshot",
        "etcdserverpb.Maintenance",
        "Snapshot",
    ),
    (
        "maintenance/transfer-leadership",
        "etcdserverpb.Maintenance",
        "MoveLeader",
    ),
    (
        "maintenance/downgrade",
        "etcdserverpb.Maintenance",
        "Downgrade",
    ),
    ("auth/enable", "etcdserverpb.Auth", "AuthEnable"),
    ("auth/disable", "etcdserverpb.Auth", "AuthDisable"),
    ("auth/status", "etcdserverpb.Auth", "AuthStatus"),
    ("auth/authenticate", "etcdserverpb.Auth", "Authenticate"),
    ("auth/user/add", "etcdserverpb.Auth", "UserAdd"),
    ("auth/user/get", "etcdserverpb.Auth", "UserGet"),
    ("auth/user/list", "etcdserverpb.Auth", "UserList"),
    ("auth/user/delete", "etcdserverpb.Auth", "UserDelete"),
    (
        "auth/user/changepw",
        "etcdserverpb.Auth",
        "UserChangePassword",
    ),
    ("auth/user/grant", "etcdserverpb.Auth", "UserGrantRole"),
    ("auth/user/revoke", "etcdserverpb.Auth", "UserRevokeRole"),
    ("auth/role/add", "etcdserverpb.Auth", "RoleAdd"),
    ("auth/role/get", "etcdserverpb.Auth", "RoleGet"),
    ("auth/role/list", "etcdserverpb.Auth", "RoleList"),
    ("auth/role/delete", "etcdserverpb.Auth", "RoleDelete"),
    (
        "auth/role/grant",
        "etcdserverpb.Auth",
        "RoleGrantPermission",
    ),
    (
        "auth/role/revoke",
        "etcdserverpb.Auth",
        "RoleRevokePermission",
    ),
    ("election/campaign", "v3electionpb.Election", "Campaign"),
    ("election/proclaim", "v3electionpb.Election", "Proclaim"),
    ("election/leader", "v3electionpb.Election", "Leader"),
    ("election/observe", "v3electionpb.Election", "Observe"),
    ("election/resign", "v3electionpb.Election", "Resign"),
    ("lock/lock", "v3lockpb.Lock", "Lock"),
    ("lock/unlock", "v3lockpb.Lock", "Unlock"),
];

/// The version prefixes etcd's gateway has answered to.
const PREFIXES: &[&str] = &["v3", "v3beta", "v3alpha"];

struct Gateway {
    /// The gRPC services, called in process.
    grpc: Router,
    /// Calls in flight, at most `--max-concurrent-streams`: etcd's gateway is one gRPC
    /// connection to its own member, and a call past the limit waits for a stream to end.
    streams: Arc<tokio::sync::Semaphore>,
    /// The most a request body may hold (the gRPC limit the services apply, and some).
    body_limit: usize,
}

/// The gateway's routes, calling into `grpc`.
pub(crate) fn routes(grpc: Router, body_limit: usize, max_streams: u32) -> Router {
    let permits = usize::try_from(max_streams)
        .unwrap_or(usize::MAX)
        .min(tokio::sync::Semaphore::MAX_PERMITS);
    let state = Arc::new(Gateway {
        grpc,
        streams: Arc::new(tokio::sync::Semaphore::new(permits)),
        body_limit,
    });
    let mut router = Router::new();
    for prefix in PREFIXES {
        router = router.route(&format!("/{prefix}/{{*path}}"), any(handle));
    }
    router.with_state(state)
}

fn method_of(path: &str) -> Option<MethodDescriptor> {
    let (_, service, method) = ROUTES.iter().find(|(p, _, _)| *p == path)?;
    let pool = transcode::pool().ok()?;
    pool.get_service_by_name(service)?
        .methods()
        .find(|m| m.name() == *method)
}

fn plain(status: StatusCode, text: &'static str) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{text}\n"),
    )
        .into_response()
}

/// grpc-gateway's HTTP status for a gRPC code, as the version etcd 3.4 ships maps them.
fn http_status(code: i32) -> StatusCode {
    match code {
        0 => StatusCode::OK,
        1 => StatusCode::REQUEST_TIMEOUT,
        3 | 11 => StatusCode::BAD_REQUEST,
        4 => StatusCode::GATEWAY_TIMEOUT,
        5 => StatusCode::NOT_FOUND,
        6 | 10 => StatusCode::CONFLICT,
        7 => StatusCode::FORBIDDEN,
        8 => StatusCode::TOO_MANY_REQUESTS,
        9 => StatusCode::PRECONDITION_FAILED,
        12 => StatusCode::NOT_IMPLEMENTED,
        14 => StatusCode::SERVICE_UNAVAILABLE,
        16 => StatusCode::UNAUTHORIZED,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// grpc-gateway's error body for a unary call.
fn error_response(code: i32, message: &str) -> Response {
    // In grpc-gateway's field order (serde_json's maps would sort the keys).
    let text = serde_json::Value::String(message.to_string());
    let body = format!(r#"{{"error":{text},"message":{text},"code":{code}}}"#);
    (
        http_status(code),
        [(header::CONTENT_TYPE, "application/json")],
        body,
    )
        .into_response()
}

/// grpc-gateway's error line ending a stream.
fn stream_error_line(code: i32, message: &str) -> Bytes {
    let status = http_status(code);
    let text = serde_json::Value::String(message.to_string());
    let reason = serde_json::Value::String(status.canonical_reason().unwrap_or_default().into());
    Bytes::from(
        format!(
            r#"{{"error":{{"grpc_code":{code},"http_code":{},"message":{text},"http_status":{reason}}}}}"#,
            status.as_u16()
        ) + "\n",
    )
}

/// gRPC's `grpc-message` is percent-encoded.
fn percent_decode(s: &str) -> String {
    fn hex(b: u8) -> Option<u8> {
        (b as char).to_digit(16).and_then(|d| u8::try_from(d).ok())
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let (Some(hi), Some(lo)) = (
                bytes.get(i + 1).copied().and_then(hex),
                bytes.get(i + 2).copied().and_then(hex),
            )
        {
            out.push(hi * 16 + lo);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The gRPC status a response or its trailers carry, if any.
fn grpc_status(headers: &HeaderMap) -> Option<(i32, String)> {
    let code = headers.get("grpc-status")?.to_str().ok()?.parse().ok()?;
    let message = headers
        .get("grpc-message")
        .and_then(|m| m.to_str().ok())
        .map(percent_decode)
        .unwrap_or_default();
    Some((code, message))
}

/// The metadata grpc-gateway forwards: `Authorization`, and `Grpc-Metadata-<name>` as `<name>`.
fn forwarded_metadata(from: &HeaderMap, to: &mut HeaderMap) {
    for (name, value) in from {
        let name = name.as_str();
        if name == "authorization" {
            to.insert(header::AUTHORIZATION, value.clone());
        } else if let Some(key) = name.strip_prefix("grpc-metadata-")
            && let Ok(key) = header::HeaderName::from_bytes(key.as_bytes())
        {
            to.insert(key, value.clone());
        }
    }
}

async fn handle(
    State(gw): State<Arc<Gateway>>,
    Path(path): Path<String>,
    req: Request<Body>,
) -> Response {
    let Some(method) = method_of(&path) else {
        return plain(StatusCode::NOT_FOUND, "Not Found");
    };
    if req.method() != Method::POST {
        return plain(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed");
    }
    let (parts, body) = req.into_parts();
    let grpc_path = format!("/{}/{}", method.parent_service().full_name(), method.name());
    let input = method.input();
    let request_body = if method.is_client_streaming() {
        Body::from_stream(ReceiverStream::new(json_stream_to_frames(
            body,
            input,
            gw.body_limit,
        )))
    } else {
        let json = match axum::body::to_bytes(body, gw.body_limit).await {
            Ok(b) => b,
            Err(e) => return error_response(3, &e.to_string()),
        };
        match transcode::message_from_json(&input, &json) {
            Ok(msg) => Body::from(transcode::frame(&msg)),
            Err(e) => return error_response(3, &e),
        }
    };
    let mut inner = Request::builder()
        .method(Method::POST)
        .uri(grpc_path)
        .header(header::CONTENT_TYPE, "application/grpc")
        .header(header::TE, "trailers")
        .body(request_body)
        .unwrap_or_default();
    forwarded_metadata(&parts.headers, inner.headers_mut());
    let Ok(stream) = gw.streams.clone().acquire_owned().await else {
        return error_response(14, "the gateway is shutting down");
    };
    let response = match gw.grpc.clone().oneshot(inner).await {
        Ok(r) => r,
        Err(never) => match never {},
    };
    if method.is_server_streaming() {
        streamed(response, method, stream)
    } else {
        let answer = unary(response, method).await;
        drop(stream);
        answer
    }
}

/// Turns a body of concatenated JSON objects into request frames as they arrive; the request
/// stream ends (half-closes) when the body does, or at the first object that does not decode.
fn json_stream_to_frames(
    body: Body,
    input: prost_reflect::MessageDescriptor,
    limit: usize,
) -> mpsc::Receiver<Result<Bytes, Infallible>> {
    let (tx, rx) = mpsc::channel(16);
    tokio::spawn(async move {
        let mut body = body;
        let mut buf: Vec<u8> = Vec::new();
        loop {
            loop {
                let mut values =
                    serde_json::Deserializer::from_slice(&buf).into_iter::<serde_json::Value>();
                match values.next() {
                    Some(Ok(value)) => {
                        let used = values.byte_offset();
                        buf.drain(..used);
                        match transcode::message_from_value(&input, value) {
                            Ok(msg) => {
                                if tx.send(Ok(transcode::frame(&msg))).await.is_err() {
                                    return;
                                }
                            }
                            Err(e) => {
                                tracing::debug!(error = %e, "gateway: a streamed request does not decode; ending the stream");
                                return;
                            }
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "gateway: a streamed request is not JSON; ending the stream");
                        return;
                    }
                    None => {
                        buf.clear();
                        break;
                    }
                }
            }
            if buf.len() > limit {
                tracing::debug!("gateway: a streamed request is larger than the limit");
                return;
            }
            match body.frame().await {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        buf.extend_from_slice(&data);
                    }
                }
                _ => return,
            }
        }
    });
    rx
}

async fn unary(response: Response, method: MethodDescriptor) -> Response {
    let early = grpc_status(response.headers());
    let collected = match response.into_body().collect().await {
        Ok(c) => c,
        Err(e) => return error_response(2, &e.to_string()),
    };
    let status = early.or_else(|| collected.trailers().and_then(grpc_status));
    let mut data = BytesMut::from(&collected.to_bytes()[..]);
    match status {
        Some((0, _)) => {}
        Some((code, message)) => return error_response(code, &message),
        None => return error_response(2, "the call ended without a status"),
    }
    let frames = match transcode::take_frames(&mut data) {
        Ok(f) => f,
        Err(e) => return error_response(13, &e),
    };
    let Some(message) = frames.first() else {
        return error_response(13, "the call answered no message");
    };
    match transcode::json_from_message(&method.output(), message) {
        Ok(json) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            json,
        )
            .into_response(),
        Err(e) => error_response(13, &e),
    }
}

fn streamed(
    response: Response,
    method: MethodDescriptor,
    stream: tokio::sync::OwnedSemaphorePermit,
) -> Response {
    let (tx, rx) = mpsc::channel::<Result<Bytes, Infallible>>(16);
    let early = grpc_status(response.headers());
    let output = method.output();
    tokio::spawn(async move {
        // The stream counts against the limit until it ends.
        let _stream = stream;
        if let Some((code, message)) = early.filter(|(code, _)| *code != 0) {
            let _ = tx.send(Ok(stream_error_line(code, &message))).await;
            return;
        }
        let mut body = response.into_body();
        let mut buf = BytesMut::new();
        let mut status = None;
        loop {
            // A client that leaves ends the call, even while the stream is quiet (a watch
            // with nothing to say): dropping the call's body cancels it.
            let frame = tokio::select! {
                frame = body.frame() => frame,
                () = tx.closed() => return,
            };
            let Some(frame) = frame else { break };
            let frame = match frame {
                Ok(f) => f,
                Err(e) => {
                    status = Some((2, e.to_string()));
                    break;
                }
            };
            let frame = match frame.into_data() {
                Ok(data) => data,
                Err(frame) => {
                    if let Some(trailers) = frame.trailers_ref() {
                        status = grpc_status(trailers);
                    }
                    continue;
                }
            };
            buf.extend_from_slice(&frame);
            let messages = match transcode::take_frames(&mut buf) {
                Ok(m) => m,
                Err(e) => {
                    status = Some((13, e));
                    break;
                }
            };
            for message in messages {
                let line = match transcode::json_from_message(&output, &message) {
                    Ok(json) => {
                        let mut line = Vec::with_capacity(json.len() + 12);
                        line.extend_from_slice(b"{\"result\":");
                        line.extend_from_slice(&json);
                        line.extend_from_slice(b"}\n");
                        Bytes::from(line)
                    }
                    Err(e) => stream_error_line(13, &e),
                };
                // The client left: dropping the call's body cancels the stream.
                if tx.send(Ok(line)).await.is_err() {
                    return;
                }
            }
        }
        if let Some((code, message)) = status.filter(|(code, _)| *code != 0) {
            let _ = tx.send(Ok(stream_error_line(code, &message))).await;
        }
    });
    let mut response = Response::new(Body::from_stream(ReceiverStream::new(rx)));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_names_a_method_etcd_has() {
        for (path, _, _) in ROUTES {
            assert!(method_of(path).is_some(), "{path}");
        }
        assert!(method_of("kv/nope").is_none());
        let watch = method_of("watch").unwrap();
        assert!(watch.is_client_streaming() && watch.is_server_streaming());
    }

    #[test]
    fn statuses_and_messages_as_grpc_gateway_gives_them() {
        assert_eq!(http_status(9), StatusCode::PRECONDITION_FAILED);
        assert_eq!(http_status(11), StatusCode::BAD_REQUEST);
        assert_eq!(http_status(16), StatusCode::UNAUTHORIZED);
        assert_eq!(percent_decode("a%20b%3A"), "a b:");
        assert_eq!(percent_decode("100%"), "100%");
    }
}
