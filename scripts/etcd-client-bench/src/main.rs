//! Puts through the `etcd-client` crate: N clients over C connections, 256-byte values over
//! 100 000 sequential keys, for a fixed number of requests. Prints requests/s, p50/p99 and this
//! process's CPU time per request.
//!
//! Usage: etcd-client-bench ENDPOINT CLIENTS CONNECTIONS TOTAL
//!
//! With `BENCH_CACERT=<ca.pem>` it connects over TLS (`https://ENDPOINT`) trusting that CA; with
//! `BENCH_USER` and `BENCH_PASSWORD` it signs in and sends its token with every request.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    (ticks(11) + ticks(12)) / 100.0
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = args.get(1).cloned().unwrap_or_else(|| "127.0.0.1:2379".into());
    let clients: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(1000);
    let conns: usize = args.get(3).and_then(|a| a.parse().ok()).unwrap_or(100);
    let total: u64 = args.get(4).and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let mut options = etcd_client::ConnectOptions::new();
    let mut endpoint = endpoint;
    if let Ok(ca) = std::env::var("BENCH_CACERT") {
        let pem = std::fs::read(ca)?;
        options = options.with_tls(
            etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(pem)),
        );
        endpoint = format!("https://{endpoint}");
    }
    if let (Ok(user), Ok(password)) = (std::env::var("BENCH_USER"), std::env::var("BENCH_PASSWORD")) {
        options = options.with_user(user, password);
    }
    let mut connections = Vec::new();
    for _ in 0..conns {
        connections
            .push(etcd_client::Client::connect([endpoint.clone()], Some(options.clone())).await?);
    }
    // Signing in (bcrypt on the server) is done: what follows is the steady state.
    eprintln!("connected");
    let failed = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let value = vec![b'v'; 256];
    let cpu0 = cpu_seconds();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..clients {
        let mut kv = connections[c % conns].kv_client();
        let (next, value, failed) = (next.clone(), value.clone(), failed.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= total {
                    return lat;
                }
                let key = format!("{:08}", n % 100_000);
                let t = Instant::now();
                if kv.put(key, value.clone(), None).await.is_ok() {
                    lat.push(t.elapsed().as_secs_f64());
                } else {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds() - cpu0;
    lat.sort_by(|a, b| a.total_cmp(b));
    let q = |p: f64| lat.get(((lat.len() as f64 - 1.0) * p) as usize).copied().unwrap_or(0.0);
    println!(
        "{{\"failed\":{},\"requests\":{},\"requests_per_second\":{:.0},\"p50_ms\":{:.2},\"p99_ms\":{:.2},\"generator_cpu_us_per_request\":{:.1}}}",
        failed.load(Ordering::Relaxed),
        lat.len(),
        lat.len() as f64 / secs,
        q(0.5) * 1e3,
        q(0.99) * 1e3,
        cpu / lat.len().max(1) as f64 * 1e6
    );
    Ok(())
}
