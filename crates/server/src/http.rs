//! HTTP on the client port, next to gRPC: `/health`, `/livez`, `/readyz`, `/version`, and
//! gRPC's UNIMPLEMENTED (with a message naming the method) for services not built yet.

use crate::etcd::EtcdServer;
use crate::maintenance::{ETCD_VERSION, STORAGE_VERSION};
use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderValue, Request, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;

pub fn routes(grpc: Router, server: Arc<EtcdServer>) -> Router {
    let http = Router::new()
        .route("/health", get(health))
        .route("/livez", get(livez))
        .route("/readyz", get(readyz))
        .route("/version", get(version))
        .with_state(server);
    grpc.merge(http).fallback(fallback)
}

async fn health(
    State(server): State<Arc<EtcdServer>>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let serializable = q.get("serializable").is_some_and(|v| v == "true");
    let check = if serializable {
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
    let (code, body) = match check {
        Ok(()) => (StatusCode::OK, json!({"health": "true", "reason": ""})),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"health": "false", "reason": reason}),
        ),
    };
    (code, axum::Json(body)).into_response()
}

async fn livez() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}

async fn readyz(State(server): State<Arc<EtcdServer>>) -> Response {
    match server.linearizable_barrier().await {
        Ok(()) => (StatusCode::OK, "ok\n").into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("[-]linearizable_read failed: {e}\nreadyz check failed\n"),
        )
            .into_response(),
    }
}

async fn version() -> Response {
    axum::Json(json!({
        "etcdserver": ETCD_VERSION,
        "etcdcluster": ETCD_VERSION.rsplit_once('.').map_or(ETCD_VERSION, |(mm, _)| mm).to_string() + ".0",
        "storage": STORAGE_VERSION,
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
