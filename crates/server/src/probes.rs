//! `/livez` and `/readyz` with etcd's checks: `/livez` asks whether the member can serve a
//! local read; `/readyz` also whether no CORRUPT alarm is raised, the cluster can serve a
//! linearizable read, and the member votes. Each check is also served on its own path
//! (`/readyz/linearizable_read`), `?exclude=` leaves checks out and `?verbose` lists them. A
//! failure answers 503 with one `[-]name failed: reason` line per failed check (the passing
//! ones as `[+]name ok`), as etcd does, so that kubelet probes and scripts read it alike.

use crate::etcd::EtcdServer;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use cairn_proto::etcdserverpb::{AlarmType, RangeRequest};
use std::sync::Arc;

const LIVEZ: &[&str] = &["serializable_read"];
const READYZ: &[&str] = &[
    "data_corruption",
    "serializable_read",
    "linearizable_read",
    "non_learner",
];

const NOT_PUBLISHED: &str = "member has not yet published its attributes to the cluster";

pub(crate) async fn livez(
    State(server): State<Arc<EtcdServer>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    respond(&server, LIVEZ, &query).await
}

pub(crate) async fn readyz(
    State(server): State<Arc<EtcdServer>>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    respond(&server, READYZ, &query).await
}

pub(crate) async fn livez_check(
    State(server): State<Arc<EtcdServer>>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    single(&server, LIVEZ, &name, &query).await
}

pub(crate) async fn readyz_check(
    State(server): State<Arc<EtcdServer>>,
    Path(name): Path<String>,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    single(&server, READYZ, &name, &query).await
}

async fn single(
    server: &EtcdServer,
    checks: &[&'static str],
    name: &str,
    query: &[(String, String)],
) -> Response {
    match checks.iter().find(|c| **c == name) {
        Some(check) => respond(server, &[*check], query).await,
        None => (StatusCode::NOT_FOUND, "404 page not found\n").into_response(),
    }
}

async fn respond(server: &EtcdServer, checks: &[&str], query: &[(String, String)]) -> Response {
    // `exclude` may repeat and may list names separated by commas.
    let excluded: Vec<&str> = query
        .iter()
        .filter(|(k, _)| k == "exclude")
        .flat_map(|(_, v)| v.split(','))
        .map(str::trim)
        .collect();
    let verbose = query.iter().any(|(k, _)| k == "verbose");
    let mut report = String::new();
    let mut failed = false;
    // A member serves nothing before it has published itself: no check can pass yet.
    if !server.is_published() {
        report.push_str(&format!("[-]published failed: {NOT_PUBLISHED}\n"));
        failed = true;
    }
    for name in checks.iter().filter(|c| !excluded.contains(c)) {
        match run(server, name).await {
            Ok(()) => report.push_str(&format!("[+]{name} ok\n")),
            Err(reason) => {
                failed = true;
                report.push_str(&format!("[-]{name} failed: {reason}\n"));
            }
        }
    }
    if failed {
        return (StatusCode::SERVICE_UNAVAILABLE, format!("{report}\n")).into_response();
    }
    let body = if verbose {
        format!("{report}ok\n")
    } else {
        "ok\n".to_string()
    };
    ([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], body).into_response()
}

async fn run(server: &EtcdServer, check: &str) -> Result<(), String> {
    let read = |serializable| RangeRequest {
        key: b"\0".to_vec().into(),
        keys_only: true,
        limit: 1,
        serializable,
        ..Default::default()
    };
    match check {
        "data_corruption" => {
            let corrupt = server
                .alarms
                .list(0)
                .iter()
                .any(|a| a.alarm == AlarmType::Corrupt as i32);
            if corrupt {
                Err("alarm activated: CORRUPT".to_string())
            } else {
                Ok(())
            }
        }
        "serializable_read" => server
            .range(read(true))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "linearizable_read" => server
            .range(read(false))
            .await
            .map(|_| ())
            .map_err(|e| e.to_string()),
        "non_learner" if server.is_learner() => Err("not supported for learner".to_string()),
        _ => Ok(()),
    }
}
