//! Watch and lease workloads: events delivered per second and put-to-event latency, and
//! keep-alive round trips.

use crate::Plan;
use crate::report::Report;
use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_client::{Client, prefix_end};
use cairn_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, PutRequest, WatchCreateRequest, WatchRequest,
    lease_client::LeaseClient, watch_client::WatchClient, watch_request::RequestUnion,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;

/// Values carry the nanoseconds since `base` at which the put was sent, so a watcher can tell
/// how long the event took to reach it.
fn stamped_value(base: Instant, size: usize) -> Bytes {
    let mut v = (base.elapsed().as_nanos() as u64).to_le_bytes().to_vec();
    v.resize(size.max(8), b'v');
    Bytes::from(v)
}

fn stamp_of(value: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(value.get(..8)?.try_into().ok()?))
}

/// W watchers on one prefix, `clients` writers putting `total` keys (paced by `rate`).
pub async fn watch(
    conns: &[Client],
    clients: usize,
    plan: Arc<Plan>,
    watchers: usize,
    val_size: usize,
) -> anyhow::Result<Report> {
    let prefix = format!("/bench-watch/{}/", std::process::id());
    let base = Instant::now();
    let total = plan.total;
    let mut tasks = Vec::with_capacity(watchers);
    for w in 0..watchers {
        let ch = conns[w % conns.len()].clone();
        let (tx, rx) = mpsc::channel(4);
        tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(WatchCreateRequest {
                key: Bytes::from(prefix.clone()),
                range_end: Bytes::from(prefix_end(prefix.as_bytes())),
                ..Default::default()
            })),
        })
        .await?;
        let mut stream = WatchClient::new(ch.channel())
            .max_decoding_message_size(usize::MAX)
            .watch(ReceiverStream::new(rx))
            .await
            .context("open watch stream")?
            .into_inner();
        let created = stream.message().await?.context("watch stream closed")?;
        if !created.created {
            bail!("watch was not created: {}", created.cancel_reason);
        }
        tasks.push(tokio::spawn(async move {
            let _keep_open = tx;
            let mut lat = Vec::new();
            let mut seen = 0u64;
            let mut last_at = Duration::ZERO;
            while seen < total {
                let Ok(Some(resp)) = stream.message().await else {
                    break;
                };
                let now = base.elapsed();
                for ev in &resp.events {
                    seen += 1;
                    if let Some(sent) = ev.kv.as_ref().and_then(|kv| stamp_of(&kv.value)) {
                        let micros = now.as_nanos().saturating_sub(u128::from(sent)) / 1000;
                        lat.push(micros.min(u128::from(u32::MAX)) as u32);
                    }
                }
                last_at = now;
            }
            (lat, seen, last_at)
        }));
    }
    let put_errors = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(first_error::FirstError::default());
    let writers: Vec<_> = (0..clients)
        .map(|i| {
            let mut kv = conns[i % conns.len()].kv();
            let plan = plan.clone();
            let prefix = prefix.clone();
            let errors = put_errors.clone();
            let first_error = first_error.clone();
            tokio::spawn(async move {
                while let Some(n) = plan.next().await {
                    let req = PutRequest {
                        key: Bytes::from(format!("{prefix}{n}")),
                        value: stamped_value(base, val_size),
                        ..Default::default()
                    };
                    if let Err(e) = kv.put(req).await {
                        errors.fetch_add(1, Ordering::Relaxed);
                        first_error.set(e.message().to_string());
                    }
                }
            })
        })
        .collect();
    let start = base.elapsed();
    for w in writers {
        w.await?;
    }
    let mut lat = Vec::new();
    let mut end = start;
    for t in tasks {
        // A watcher that misses events would wait forever: bound it.
        match tokio::time::timeout(Duration::from_secs(60), t).await {
            Ok(r) => {
                let (l, _, last) = r?;
                lat.extend(l);
                end = end.max(last);
            }
            Err(_) => bail!("a watcher did not receive all events within 60 s"),
        }
    }
    Ok(Report::new(
        lat,
        put_errors.load(Ordering::Relaxed),
        first_error.take(),
        end.saturating_sub(start),
    ))
}

/// Keep-alive round trips: each client renews its own lease on its own stream.
pub async fn lease_keepalive(
    conns: &[Client],
    clients: usize,
    plan: Arc<Plan>,
) -> anyhow::Result<Report> {
    let mut leases = Vec::with_capacity(clients);
    for i in 0..clients {
        let mut l = LeaseClient::new(conns[i % conns.len()].channel());
        let id = l
            .lease_grant(LeaseGrantRequest { ttl: 60, id: 0 })
            .await
            .context("grant a lease")?
            .into_inner()
            .id;
        leases.push(id);
    }
    let start = Instant::now();
    let tasks: Vec<_> = leases
        .into_iter()
        .enumerate()
        .map(|(i, id)| {
            let ch = conns[i % conns.len()].channel();
            let plan = plan.clone();
            tokio::spawn(async move {
                let mut lat = Vec::new();
                let (tx, rx) = mpsc::channel(1);
                // grpc-go servers send response headers only with the first message, so the
                // first request must be queued before the call can return.
                let Some(_) = plan.next().await else {
                    return (lat, 0, None);
                };
                let mut t = Instant::now();
                if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                    return (lat, 1, Some("keep-alive stream closed".into()));
                }
                let Ok(resp) = LeaseClient::new(ch)
                    .lease_keep_alive(ReceiverStream::new(rx))
                    .await
                else {
                    return (lat, 1u64, Some("cannot open keep-alive stream".to_string()));
                };
                let mut stream = resp.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(r)) if r.ttl > 0 => {
                            lat.push(t.elapsed().as_micros().min(u128::from(u32::MAX)) as u32)
                        }
                        Ok(_) => return (lat, 1, Some("lease expired during the run".into())),
                        Err(e) => return (lat, 1, Some(e.message().to_string())),
                    }
                    if plan.next().await.is_none() {
                        break;
                    }
                    t = Instant::now();
                    if tx.send(LeaseKeepAliveRequest { id }).await.is_err() {
                        return (lat, 1, Some("keep-alive stream closed".into()));
                    }
                }
                (lat, 0, None)
            })
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first = None;
    for t in tasks {
        let (l, e, f) = t.await?;
        lat.extend(l);
        errors += e;
        first = first.or(f);
    }
    Ok(Report::new(lat, errors, first, start.elapsed()))
}

/// The first error message of a run, shared by its tasks.
mod first_error {
    use std::sync::Mutex;

    #[derive(Default)]
    pub struct FirstError(Mutex<Option<String>>);

    impl FirstError {
        pub fn set(&self, s: String) {
            if let Ok(mut g) = self.0.lock()
                && g.is_none()
            {
                *g = Some(s);
            }
        }

        pub fn take(&self) -> Option<String> {
            self.0.lock().ok().and_then(|mut g| g.take())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_roundtrip_and_pad() {
        let base = Instant::now();
        let v = stamped_value(base, 64);
        assert_eq!(v.len(), 64);
        assert!(stamp_of(&v).is_some());
        assert_eq!(stamped_value(base, 2).len(), 8);
        assert_eq!(stamp_of(b"short"), None);
    }
}
