//! The Cairn server: etcd's v3 gRPC API and HTTP endpoints on top of Raft and MVCC.
//!
//! Owns: configuration (etcd's flags, `ETCD_*` variables, YAML file), bootstrap of a member's
//! data dir, the gRPC services with etcd's validation and error strings, the apply loop that
//! feeds committed entries into the MVCC store, HTTP on the client port (`/health`,
//! `/version`, `/metrics`, …) and on `--listen-metrics-urls`, and TLS on those ports.
//!
//! Must not: hold state that is neither in the Raft log nor derived from it, or reach into the
//! internals of the MVCC store or the Raft node; it uses their public APIs only.

mod alarm;
mod api;
mod apply;
mod auth;
mod cluster;
pub mod compactor;
pub mod config;
mod errors;
pub mod etcd;
mod etcd_backend;
mod failpoint;
mod gateway;
mod http;
mod idgen;
mod lease;
pub mod logging;
pub mod metrics;
pub mod offline;
mod probes;
mod readpool;
mod serve;
mod systemd;
pub mod tls;

pub use api::maintenance::ETCD_VERSION;
pub use config::Config;
pub use errors::ServerError;
pub use etcd::EtcdServer;

use api::{election, kv, maintenance, watch};
use cairn_proto::etcdserverpb::{
    cluster_server::ClusterServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};
use cairn_proto::kv_server::kv_server::KvServer;
use cluster::transport::SniffingListener;
use std::sync::Arc;

/// gRPC overhead etcd allows on top of `--max-request-bytes` before the transport refuses a
/// message outright.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// Starts a member and serves clients until SIGINT or SIGTERM.
pub async fn run(config: Config) -> anyhow::Result<()> {
    for note in &config.startup_notes {
        // What etcd logs at info; the rest are what an operator should look at.
        if note.starts_with("recognized and used")
            || note.starts_with("loaded server configuration")
        {
            tracing::info!("{note}");
        } else {
            tracing::warn!("{note}");
        }
    }
    let addrs = config.client_listen_addrs()?;
    let peer_addrs = config.peer_listen_addrs()?;
    // A new member of a running cluster learns the cluster from it first; a member with data
    // ignores the initial-* flags, as etcd's does.
    let join = if config.initial_cluster_state == "existing" && !config.backend_path().exists() {
        Some(cluster::join::fetch(&config).await?)
    } else {
        None
    };
    let server = EtcdServer::start_with(config.clone(), join)?;
    let mut tasks = Vec::new();
    let peer_tls = if config.peer_tls() {
        Some(tls::ClientTls::peer_from_config(&config)?.server_config()?)
    } else {
        None
    };
    let peer_service = Arc::new(cluster::transport::PeerService {
        me: server.member_id,
        cluster_id: server.cluster_id,
        raft: server.raft.clone(),
        server: server.clone(),
    });
    for (addr, over_tls) in peer_addrs {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("listen on {addr} for peers: {e}"))?;
        let router = tonic::service::Routes::new(
            cairn_proto::cairnpb::peer_server::PeerServer::from_arc(peer_service.clone())
                .max_decoding_message_size(cluster::transport::MAX_MESSAGE_BYTES),
        )
        .into_axum_router();
        if let (true, Some(tls)) = (over_tls, &peer_tls) {
            tracing::info!(%addr, "serving peer traffic over TLS");
            let listener = tls::TlsListener::new(listener, tls.clone(), "peer")?;
            let listener = SniffingListener::new(listener, peer_service.clone())?;
            tasks.push(tokio::spawn(serve::serve(
                listener,
                router,
                serve::Http2::internal(),
                no_info,
            )));
            continue;
        }
        tracing::info!(%addr, "serving peer traffic");
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let listener = SniffingListener::new(listener, peer_service.clone())?;
        tasks.push(tokio::spawn(serve::serve(
            listener,
            router,
            serve::Http2::internal(),
            no_info,
        )));
    }
    server.peers.start(server.raft.clone());
    tokio::spawn(cluster::publish(server.clone()));
    tokio::spawn(cluster::monitor_leader(server.clone()));
    tokio::spawn(cluster::stop_when_told_removed(server.clone()));
    tokio::spawn(compactor::run(server.clone(), config.auto_compaction()?));
    // Before any client is served, as etcd: a member whose data differ from its peers' must
    // not answer from them.
    if config.experimental_initial_corrupt_check {
        cluster::corruption::initial_check(&server).await?;
    }
    tokio::spawn(cluster::corruption::monitor(
        server.clone(),
        config.experimental_corrupt_check_time.0,
    ));
    if let Some(path) = failpoint::peer_block_file() {
        tokio::spawn(cluster::follow_block_file(server.clone(), path));
    }
    let recv_limit = config.max_request_bytes as usize + GRPC_OVERHEAD_BYTES;
    let routes = tonic::service::Routes::new(
        KvServer::new(kv::KvService {
            server: server.clone(),
        })
        .max_decoding_message_size(recv_limit)
        .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        MaintenanceServer::new(maintenance::MaintenanceService {
            server: server.clone(),
        })
        .max_decoding_message_size(recv_limit)
        .max_encoding_message_size(usize::MAX),
    )
    .add_service(
        cairn_proto::cairnpb::operations_server::OperationsServer::new(
            api::operations::OperationsService {
                server: server.clone(),
            },
        ),
    )
    .add_service(
        ClusterServer::new(api::cluster::ClusterService {
            server: server.clone(),
        })
        .max_decoding_message_size(recv_limit),
    );
    let catch_up = Arc::new(tokio::sync::Notify::new());
    let routes = routes.add_service(
        WatchServer::new(watch::WatchService {
            server: server.clone(),
            catch_up: catch_up.clone(),
        })
        .max_decoding_message_size(recv_limit)
        .max_encoding_message_size(usize::MAX),
    );
    let routes = routes.add_service(
        LeaseServer::new(api::lease::LeaseService {
            server: server.clone(),
        })
        .max_decoding_message_size(recv_limit),
    );
    let routes = routes
        .add_service(
            cairn_proto::etcdserverpb::auth_server::AuthServer::new(api::auth::AuthService {
                server: server.clone(),
            })
            .max_decoding_message_size(recv_limit),
        )
        .add_service(
            cairn_proto::v3electionpb::election_server::ElectionServer::new(
                election::ElectionService {
                    server: server.clone(),
                },
            )
            .max_decoding_message_size(recv_limit),
        )
        .add_service(
            cairn_proto::v3lockpb::lock_server::LockServer::new(election::LockService {
                server: server.clone(),
            })
            .max_decoding_message_size(recv_limit),
        );
    lease::spawn_background(server.clone());
    watch::spawn_background(
        server.clone(),
        catch_up,
        config.watch_progress_notify_interval.0,
    );
    let router = http::routes(routes.into_axum_router(), server.clone(), recv_limit);
    let service = metrics::grpc::Track::new(router, server.metrics.clone());

    // Read before anything is bound: a bad certificate stops the start with the file named.
    let tls = if config.client_tls() {
        Some(tls::ClientTls::from_config(&config)?.server_config()?)
    } else {
        None
    };
    let client_http2 = serve::Http2::from_config(&config);
    for (addr, over_tls) in addrs {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("listen on {addr}: {e}"))?;
        let service = service.clone();
        if let (true, Some(tls)) = (over_tls, &tls) {
            tracing::info!(%addr, "serving client traffic (gRPC and HTTP) over TLS");
            let listener = tls::TlsListener::new(listener, tls.clone(), "client")?;
            // Each request learns its connection's certificate name (the user under
            // --client-cert-auth).
            tasks.push(tokio::spawn(serve::serve(
                listener,
                service,
                client_http2,
                |io| Some(tls::ClientCertName::of(io)),
            )));
            continue;
        }
        tracing::info!(%addr, "serving client traffic (gRPC and HTTP)");
        // Small gRPC responses must not wait for Nagle's algorithm.
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tasks.push(tokio::spawn(serve::serve(
            listener,
            service,
            client_http2,
            no_info,
        )));
    }
    for (addr, over_tls) in config.metrics_listen_addrs()? {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| anyhow::anyhow!("listen on {addr} for metrics: {e}"))?;
        let router = http::metrics_routes(server.clone());
        if let (true, Some(tls)) = (over_tls, &tls) {
            tracing::info!(%addr, "serving metrics and health over TLS");
            let listener = tls::TlsListener::new(listener, tls.clone(), "metrics")?;
            tasks.push(tokio::spawn(serve::serve(
                listener,
                router,
                serve::Http2::internal(),
                no_info,
            )));
            continue;
        }
        tracing::info!(%addr, "serving metrics and health");
        tasks.push(tokio::spawn(serve::serve(
            listener,
            router,
            serve::Http2::internal(),
            no_info,
        )));
    }
    // Every listener is bound: once the member has published itself, it serves.
    tokio::spawn(systemd::notify_when_ready(server.clone()));
    let all = futures::future::join_all(tasks);
    tokio::pin!(all);
    tokio::select! {
        results = &mut all => {
            for r in results {
                r??;
            }
        }
        _ = shutdown_signal() => {
            // Open watch or keep-alive streams would hold a graceful shutdown forever; give
            // in-flight requests a moment, then stop regardless.
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, &mut all).await;
        }
    }
    shutdown(&server);
    Ok(())
}

/// How long a stopping member waits for open client streams to finish.
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(2);

fn shutdown(server: &Arc<EtcdServer>) {
    server.raft.stop();
    if let Err(e) = server.store.flush() {
        tracing::error!(error = %e, "flushing the backend on shutdown failed");
    }
    tracing::info!("stopped");
}

/// Connections that carry nothing requests need to know.
fn no_info<Io>(_: &Io) -> Option<()> {
    None
}

pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}
