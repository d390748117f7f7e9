//! Serving HTTP on a listener, one way for every port: HTTP/1.1 and HTTP/2 (cleartext or TLS,
//! whichever the client speaks), with the HTTP/2 settings etcd's gRPC flags choose, until the
//! member is told to stop.

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use axum::response::Response;
use axum::serve::Listener;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use std::convert::Infallible;
use std::time::Duration;
use tower::ServiceExt;

mod coalesce;

/// HTTP/2 settings of a port's connections.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Http2 {
    /// Streams a connection may have open at once (`--max-concurrent-streams`); the HTTP/2
    /// library's own default (200) would hold back clients that multiplex many watches.
    pub max_concurrent_streams: u32,
    /// How often an idle connection is pinged, if at all (`--grpc-keepalive-interval`).
    pub keepalive_interval: Option<Duration>,
    /// How long a ping may go unanswered before the connection is closed
    /// (`--grpc-keepalive-timeout`).
    pub keepalive_timeout: Duration,
}

impl Http2 {
    /// The client port's, from etcd's flags.
    pub(crate) fn from_config(config: &crate::Config) -> Http2 {
        let interval = config.grpc_keepalive_interval.0;
        Http2 {
            max_concurrent_streams: config.max_concurrent_streams,
            keepalive_interval: (!interval.is_zero()).then_some(interval),
            keepalive_timeout: config.grpc_keepalive_timeout.0,
        }
    }

    /// Ports that only members or scrapers use: no stream limit, no pings of their own.
    pub(crate) fn internal() -> Http2 {
        Http2 {
            max_concurrent_streams: u32::MAX,
            keepalive_interval: None,
            keepalive_timeout: Duration::from_secs(20),
        }
    }
}

/// Serves `service` on every connection `listener` accepts until the member stops; each
/// request carries `ConnectInfo` of what `info` says of its connection, if anything.
pub(crate) async fn serve<L, S, T>(
    mut listener: L,
    service: S,
    http2: Http2,
    info: impl Fn(&L::Io) -> Option<T>,
) -> std::io::Result<()>
where
    L: Listener,
    S: tower::Service<Request<Body>, Response = Response, Error = Infallible>
        + Clone
        + Send
        + 'static,
    S::Future: Send + 'static,
    T: Clone + Send + Sync + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(http2.max_concurrent_streams)
        .keep_alive_interval(http2.keepalive_interval)
        .keep_alive_timeout(http2.keepalive_timeout);
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    let stop = crate::shutdown_signal();
    tokio::pin!(stop);
    loop {
        let (io, _) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stop => break,
        };
        let info = info(&io);
        let service = service.clone();
        let per_request =
            hyper::service::service_fn(move |request: Request<hyper::body::Incoming>| {
                let mut request = request.map(Body::new);
                if let Some(info) = &info {
                    request.extensions_mut().insert(ConnectInfo(info.clone()));
                }
                service.clone().oneshot(request)
            });
        let connection = builder.serve_connection_with_upgrades(
            TokioIo::new(coalesce::Coalescing::new(io)),
            per_request,
        );
        let connection = graceful.watch(connection.into_owned());
        tokio::spawn(async move {
            // A connection's end (the client left, a protocol error) concerns only it.
            let _ = connection.await;
        });
    }
    drop(listener);
    // Requests in flight may finish; the caller bounds how long that may take.
    graceful.shutdown().await;
    Ok(())
}
