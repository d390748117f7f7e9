//! HTTP on the client port, next to gRPC: the JSON gateway (`crate::gateway`), `/health`,
//! `/livez`, `/readyz`, `/version`, `/metrics`, and gRPC's UNIMPLEMENTED (with a message naming the method) for services not
//! built yet. The same probes and metrics are served alone on `--listen-metrics-urls`.

use crate::etcd::EtcdServer;
use crate::maintenance::ETCD_VERSION;
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes(grpc: Router, server: Arc<EtcdServer>, body_limit: usize) -> Router {
    let gateway = server.config.enable_grpc_gateway.then(|| {
        crate::gateway::routes(
            grpc.clone(),
            body_limit,
            server.config.max_concurrent_streams,
        )
    });
    let http = probes().route("/version", get(version)).with_state(server);
    let grpc = match gateway {
        Some(gateway) => grpc.merge(gateway),
        None => grpc,
    };
    grpc.merge(http)
        .fallback(fallback)
        .layer(axum::middleware::map_response(grpc_go_size_error))
}

/// What `--listen-metrics-urls` serve.
pub fn metrics_routes(server: Arc<EtcdServer>) -> Router {
    probes().with_state(server).fallback(fallback)
}

fn probes() -> Router<Arc<EtcdServer>> {
    Router::new()
        .route("/health", get(health))
        .route("/livez", get(crate::probes::livez))
        .route("/livez/{check}", get(crate::probes::livez_check))
        .route("/readyz", get(crate::probes::readyz))
        .route("/readyz/{check}", get(crate::probes::readyz_check))
        .route("/metrics", get(metrics))
}

async fn metrics(State(server): State<Arc<EtcdServer>>) -> Response {
    // Rendering reads sizes and walks every family: off the async workers.
    let rendered = {
        let server = server.clone();
        tokio::task::spawn_blocking(move || server.metrics.render(&server)).await
    };
    match rendered {
        Ok(body) => (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            body,
        )
            .into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{e}\n")).into_response(),
    }
}

/// tonic rejects an over-limit request message with OUT_OF_RANGE; grpc-go, and so etcd, answers
/// RESOURCE_EXHAUSTED "grpc: received message larger than max (N vs. M)". Clients that match
/// on the code (e.g. to stop retrying) must see etcd's. The status travels in the headers of a
/// trailers-only response or in the trailers, so both are checked.
async fn grpc_go_size_error(resp: Response) -> Response {
    use http_body_util::BodyExt;
    let is_grpc = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/grpc"));
    if !is_grpc {
        return resp;
    }
    let (mut parts, body) = resp.into_parts();
    rewrite_size_status(&mut parts.headers);
    let body = body.map_frame(|frame| match frame.into_trailers() {
        Ok(mut trailers) => {
            rewrite_size_status(&mut trailers);
            http_body::Frame::trailers(trailers)
        }
        Err(frame) => frame,
    });
    Response::from_parts(parts, Body::new(body))
}

fn rewrite_size_status(h: &mut axum::http::HeaderMap) {
    if h.get("grpc-status").is_none_or(|v| v != "11") {
        return;
    }
    let message = h
        .get("grpc-message")
        .map(|v| percent_decode(v.as_bytes()))
        .unwrap_or_default();
    if !message.contains("message length too large") {
        return;
    }
    // "… found {len} bytes, the limit is: {limit} bytes"
    let numbers: Vec<&str> = message
        .split(|c: char| !c.is_ascii_digit())
        .filter(|n| !n.is_empty())
        .collect();
    let msg = match numbers.as_slice() {
        [len, limit, ..] => format!("grpc: received message larger than max ({len} vs. {limit})"),
        _ => "grpc: received message larger than max".to_string(),
    };
    h.insert("grpc-status", HeaderValue::from_static("8"));
    if let Ok(v) = HeaderValue::from_str(&msg) {
        h.insert("grpc-message", v);
    }
}

/// gRPC percent-encodes `grpc-message`.
fn percent_decode(raw: &[u8]) -> String {
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        let hex = raw
            .get(i + 1..i + 3)
            .and_then(|h| std::str::from_utf8(h).ok())
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match (raw[i], hex) {
            (b'%', Some(b)) => {
                out.push(b);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

async fn health(
    State(server): State<Arc<EtcdServer>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let serializable = q.get("serializable").is_some_and(|v| v == "true");
    // etcd 3.5: `?exclude=NOSPACE` leaves an alarm out of the verdict.
    let excluded: Vec<&str> = q
        .get("exclude")
        .map_or(Vec::new(), |v| v.split(',').collect());
    let alarm = server
        .alarms
        .list(0)
        .into_iter()
        .filter_map(|a| cairn_proto::etcdserverpb::AlarmType::try_from(a.alarm).ok())
        .find(|t| !excluded.contains(&t.as_str_name()));
    let check = if let Some(alarm) = alarm {
        Err(format!("ALARM {}", alarm.as_str_name()))
    } else if !server.is_published() {
        // etcd serves no client before its member is published; a member that has not yet
        // joined the cluster's view of itself is not healthy.
        Err("member has not yet published its attributes to the cluster".to_string())
    } else if serializable {
        if server.raft.leader() == 0 {
            Err("RAFT NO LEADER".to_string())
        } else {
            Ok(())
        }
    } else {
        server
            .linearizable_barrier()
            .await
            .map_err(|e| e.to_string())
    };
    match check {
        Ok(()) => server.metrics.health_success.inc(),
        Err(_) => server.metrics.health_failures.inc(),
    }
    // etcd 3.4's body: its own tests (and scripts written against it) match the whole object,
    // so the reason 3.5 added goes to the log instead (and `/readyz?verbose` names it).
    let (code, body) = match check {
        Ok(()) => (StatusCode::OK, json!({"health": "true"})),
        Err(reason) => {
            tracing::debug!(%reason, "/health answered false");
            (StatusCode::SERVICE_UNAVAILABLE, json!({"health": "false"}))
        }
    };
    (code, axum::Json(body)).into_response()
}

async fn version(State(server): State<Arc<EtcdServer>>) -> Response {
    axum::Json(json!({
        "etcdserver": ETCD_VERSION,
        "etcdcluster": server.versions.cluster().full(),
        "storage": server.versions.storage().full(),
        "cairn": env!("CARGO_PKG_VERSION"),
    }))
    .into_response()
}

async fn fallback(req: Request<Body>) -> Response {
    let is_grpc = req
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/grpc"));
    if !is_grpc {
        return (StatusCode::NOT_FOUND, "404 page not found\n").into_response();
    }
    // A trailers-only gRPC response: status 12 (UNIMPLEMENTED) with a message naming the method.
    let message = format!("cairn: {} is not implemented yet", req.uri().path());
    let mut resp = Response::new(Body::empty());
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/grpc"),
    );
    h.insert("grpc-status", HeaderValue::from_static("12"));
    if let Ok(v) = HeaderValue::from_str(&message) {
        h.insert("grpc-message", v);
    }
    resp
}
