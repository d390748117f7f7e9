//! `cairn-bench`: load generator for the etcd v3 API (the counterpart of etcd's
//! `tools/benchmark`). It speaks only the public wire API, so the same run can drive Cairn and
//! real etcd.
//!
//! Owns: workload generation, pacing, latency recording and reporting. Must not: know anything
//! about the server beyond the wire API.

mod coord;
mod raw;
mod report;

use anyhow::{Context, bail};
use bytes::Bytes;
use cairn_client::{Client, prefix_end};
use cairn_proto::etcdserverpb::{
    Compare, PutRequest, RangeRequest, RequestOp, TxnRequest,
    compare::{CompareResult, CompareTarget, TargetUnion},
    request_op,
};
use clap::{Args, Parser, Subcommand};
use rand::{Rng, SeedableRng};
use std::io::IsTerminal;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[derive(Parser, Debug)]
#[command(
    name = "cairn-bench",
    version,
    about = "Benchmark an etcd v3 API server (Cairn or etcd)"
)]
struct Cli {
    /// gRPC endpoints, comma separated.
    #[arg(
        long,
        default_value = "127.0.0.1:2379",
        value_delimiter = ',',
        global = true
    )]
    endpoints: Vec<String>,
    /// Total number of gRPC connections.
    #[arg(long, default_value_t = 1, global = true)]
    conns: usize,
    /// Total number of concurrent clients (requests in flight).
    #[arg(long, default_value_t = 1, global = true)]
    clients: usize,
    /// Total number of requests (ignored when --duration is given).
    #[arg(long, default_value_t = 10_000, global = true)]
    total: u64,
    /// Run for this long instead of a fixed number of requests, e.g. 10s.
    #[arg(long, value_parser = parse_duration, global = true)]
    duration: Option<Duration>,
    /// Maximum requests per second over all clients (0 = unlimited).
    #[arg(long, default_value_t = 0, global = true)]
    rate: u64,
    /// Send every request to the leader's endpoint (found with Maintenance.Status).
    #[arg(long, global = true, conflicts_with = "target_follower")]
    target_leader: bool,
    /// Send every request to one follower's endpoint: what a client that happens to be
    /// connected to a follower sees (its writes go through the leader and back).
    #[arg(long, global = true)]
    target_follower: bool,
    /// Print the result as JSON.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    workload: Workload,
}

#[derive(Subcommand, Debug, Clone)]
enum Workload {
    /// Puts with fixed-size keys and values.
    Put(KeyValueArgs),
    /// Ranges over a key or a prefix.
    Range(RangeArgs),
    /// kube-apiserver's update shape: Txn(mod_revision(key) == rev ? put : get).
    TxnPut(KeyValueArgs),
    /// Reads and writes mixed at a ratio.
    TxnMixed(MixedArgs),
    /// W watchers on one prefix while --clients writers put --total keys: events delivered per
    /// second and put-to-event latency.
    Watch(WatchArgs),
    /// Put-to-event latency with paced puts (--rate, default 100/s) and W watchers.
    WatchLatency(WatchArgs),
    /// Lease keep-alive round trips: one lease and one keep-alive stream per client.
    LeaseKeepalive,
}

#[derive(Args, Debug, Clone)]
struct WatchArgs {
    /// Number of watchers (each its own Watch stream, spread over --conns).
    #[arg(long, default_value_t = 100)]
    watchers: usize,
    /// Value size of the puts (at least 8: the send time travels in the value).
    #[arg(long, default_value_t = 32)]
    val_size: usize,
}

#[derive(Args, Debug, Clone)]
struct KeyValueArgs {
    #[arg(long, default_value_t = 8)]
    key_size: usize,
    #[arg(long, default_value_t = 8)]
    val_size: usize,
    /// Number of distinct keys written.
    #[arg(long, default_value_t = 1)]
    key_space_size: u64,
    /// Write keys in order instead of at random.
    #[arg(long)]
    sequential_keys: bool,
}

#[derive(Args, Debug, Clone)]
struct RangeArgs {
    /// The key to read (or the prefix with --prefix).
    key: String,
    /// Optional range end.
    end: Option<String>,
    /// l (linearizable) or s (serializable).
    #[arg(long, default_value = "l")]
    consistency: String,
    #[arg(long)]
    prefix: bool,
    #[arg(long, default_value_t = 0)]
    limit: i64,
}

#[derive(Args, Debug, Clone)]
struct MixedArgs {
    #[command(flatten)]
    kv: KeyValueArgs,
    /// Reads per write.
    #[arg(long, default_value_t = 1.0)]
    rw_ratio: f64,
    #[arg(long, default_value = "l")]
    consistency: String,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (num, unit) = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .map_or((s, "s"), |i| s.split_at(i));
    let n: f64 = num.parse().map_err(|_| format!("invalid duration {s:?}"))?;
    let secs = match unit {
        "ms" => n / 1000.0,
        "s" => n,
        "m" => n * 60.0,
        _ => return Err(format!("invalid duration unit in {s:?} (use ms, s or m)")),
    };
    Ok(Duration::from_secs_f64(secs))
}

fn key_for(args: &KeyValueArgs, n: u64, rng: &mut impl Rng) -> Bytes {
    let idx = if args.sequential_keys {
        n % args.key_space_size.max(1)
    } else {
        rng.random_range(0..args.key_space_size.max(1))
    };
    // Keys are the index in decimal, zero-padded to the key size (like etcd's benchmark).
    let mut k = format!("{idx:0width$}", width = args.key_size).into_bytes();
    k.truncate(args.key_size.max(1));
    Bytes::from(k)
}

/// Work shared by all clients: which request number is next, and when to stop.
pub(crate) struct Plan {
    issued: AtomicU64,
    pub(crate) total: u64,
    deadline: Option<Instant>,
    rate: u64,
    start: Instant,
}

impl Plan {
    /// Claims the next request number, or `None` when the run is over; paces to `--rate`.
    pub(crate) async fn next(&self) -> Option<u64> {
        let n = self.issued.fetch_add(1, Ordering::Relaxed);
        match self.deadline {
            Some(d) if Instant::now() >= d => return None,
            None if n >= self.total => return None,
            _ => {}
        }
        if self.rate > 0 {
            let due = self.start + Duration::from_secs_f64(n as f64 / self.rate as f64);
            tokio::time::sleep_until(due.into()).await;
        }
        Some(n)
    }
}

/// The first endpoint whose member is (`leader`) or is not (`!leader`) the leader, by its own
/// Maintenance.Status.
async fn endpoint_by_role(endpoints: &[String], leader: bool) -> anyhow::Result<String> {
    for ep in endpoints {
        let Ok(c) = Client::connect_one(ep, Duration::from_secs(2)).await else {
            continue;
        };
        let Ok(s) = c.status().await else { continue };
        let Some(header) = s.header else { continue };
        if s.leader != 0 && (header.member_id == s.leader) == leader {
            return Ok(ep.clone());
        }
    }
    if leader {
        bail!("no endpoint reports itself as leader")
    }
    bail!("no endpoint reports itself as a follower of a leader")
}

async fn run_client(
    client: Client,
    workload: Workload,
    plan: Arc<Plan>,
    done: Arc<AtomicU64>,
) -> (Vec<u32>, u64, Option<String>) {
    let mut kv = client.kv();
    let mut lat = Vec::new();
    let mut errors = 0u64;
    let mut first_error = None;
    let mut rng = rand::rngs::StdRng::from_rng(&mut rand::rng());
    while let Some(n) = plan.next().await {
        let t = Instant::now();
        let res = match &workload {
            Workload::Put(a) => {
                let req = PutRequest {
                    key: key_for(a, n, &mut rng),
                    value: Bytes::from(vec![b'v'; a.val_size]),
                    ..Default::default()
                };
                kv.put(req).await.map(|_| ())
            }
            Workload::Range(a) => {
                let key = Bytes::from(a.key.clone().into_bytes());
                let range_end = match (&a.end, a.prefix) {
                    (_, true) => Bytes::from(prefix_end(&key)),
                    (Some(e), false) => Bytes::from(e.clone().into_bytes()),
                    (None, false) => Bytes::new(),
                };
                let req = RangeRequest {
                    key,
                    range_end,
                    limit: a.limit,
                    serializable: a.consistency == "s",
                    ..Default::default()
                };
                raw::range(client.channel(), req).await.map(|_| ())
            }
            Workload::TxnPut(a) => {
                let key = key_for(a, n, &mut rng);
                txn_put(&mut kv, key, a.val_size).await
            }
            Workload::Watch(_) | Workload::WatchLatency(_) | Workload::LeaseKeepalive => {
                Err(tonic::Status::internal("not a per-request workload"))
            }
            Workload::TxnMixed(a) => {
                let key = key_for(&a.kv, n, &mut rng);
                let read = rng.random_bool(a.rw_ratio / (1.0 + a.rw_ratio));
                if read {
                    let req = RangeRequest {
                        key,
                        serializable: a.consistency == "s",
                        ..Default::default()
                    };
                    kv.range(req).await.map(|_| ())
                } else {
                    txn_put(&mut kv, key, a.kv.val_size).await
                }
            }
        };
        let micros = t.elapsed().as_micros().min(u32::MAX as u128) as u32;
        match res {
            Ok(()) => lat.push(micros),
            Err(e) => {
                errors += 1;
                first_error.get_or_insert_with(|| e.message().to_string());
            }
        }
        done.fetch_add(1, Ordering::Relaxed);
    }
    (lat, errors, first_error)
}

/// kube-apiserver's optimistic update: read the key's mod revision, then write if unchanged.
async fn txn_put(
    kv: &mut cairn_proto::etcdserverpb::kv_client::KvClient<cairn_client::AuthChannel>,
    key: Bytes,
    val_size: usize,
) -> Result<(), tonic::Status> {
    let cur = kv
        .range(RangeRequest {
            key: key.clone(),
            ..Default::default()
        })
        .await?
        .into_inner();
    let rev = cur.kvs.first().map_or(0, |kv| kv.mod_revision);
    let txn = TxnRequest {
        compare: vec![Compare {
            key: key.clone(),
            target: CompareTarget::Mod as i32,
            result: CompareResult::Equal as i32,
            target_union: Some(TargetUnion::ModRevision(rev)),
            ..Default::default()
        }],
        success: vec![RequestOp {
            request: Some(request_op::Request::RequestPut(PutRequest {
                key: key.clone(),
                value: Bytes::from(vec![b'v'; val_size]),
                ..Default::default()
            })),
        }],
        failure: vec![RequestOp {
            request: Some(request_op::Request::RequestRange(RangeRequest {
                key,
                ..Default::default()
            })),
        }],
    };
    kv.txn(txn).await.map(|_| ())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if cli.clients == 0 || cli.conns == 0 {
        bail!("--clients and --conns must be at least 1");
    }
    let endpoints = if cli.target_leader || cli.target_follower {
        vec![endpoint_by_role(&cli.endpoints, cli.target_leader).await?]
    } else {
        cli.endpoints.clone()
    };
    let mut conns = Vec::with_capacity(cli.conns);
    for i in 0..cli.conns {
        let ep = &endpoints[i % endpoints.len()];
        conns.push(
            Client::connect_one(ep, Duration::from_secs(5))
                .await
                .with_context(|| format!("connect to {ep}"))?,
        );
    }
    let start = Instant::now();
    let rate = match (&cli.workload, cli.rate) {
        (Workload::WatchLatency(_), 0) => 100,
        (_, r) => r,
    };
    let plan = Arc::new(Plan {
        issued: AtomicU64::new(0),
        total: cli.total,
        deadline: cli.duration.map(|d| start + d),
        rate,
        start,
    });
    let coordination = match &cli.workload {
        Workload::Watch(a) | Workload::WatchLatency(a) => {
            if cli.duration.is_some() {
                bail!("watch workloads need --total (every watcher must see every put)");
            }
            Some(coord::watch(&conns, cli.clients, plan.clone(), a.watchers, a.val_size).await?)
        }
        Workload::LeaseKeepalive => {
            Some(coord::lease_keepalive(&conns, cli.clients, plan.clone()).await?)
        }
        _ => None,
    };
    if let Some(r) = coordination {
        if cli.json {
            println!("{}", r.json());
        } else {
            print!("{}", r.text());
        }
        return Ok(());
    }
    let done = Arc::new(AtomicU64::new(0));
    let progress = (!cli.json && std::io::stderr().is_terminal()).then(|| {
        let done = done.clone();
        let total = cli.duration.map_or(cli.total, |_| 0);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                let d = done.load(Ordering::Relaxed);
                if total > 0 {
                    let width = 40;
                    let filled = (d * width / total.max(1)).min(width) as usize;
                    eprint!(
                        "\r[{}{}] {d}/{total}",
                        "#".repeat(filled),
                        " ".repeat(width as usize - filled)
                    );
                } else {
                    eprint!("\r{d} requests");
                }
            }
        })
    });
    let tasks: Vec<_> = (0..cli.clients)
        .map(|i| {
            tokio::spawn(run_client(
                conns[i % conns.len()].clone(),
                cli.workload.clone(),
                plan.clone(),
                done.clone(),
            ))
        })
        .collect();
    let mut lat = Vec::new();
    let mut errors = 0;
    let mut first_error = None;
    for t in tasks {
        let (l, e, fe) = t.await?;
        lat.extend(l);
        errors += e;
        if first_error.is_none() {
            first_error = fe;
        }
    }
    let elapsed = start.elapsed();
    if let Some(p) = progress {
        p.abort();
        eprintln!();
    }
    let r = report::Report::new(lat, errors, first_error, elapsed);
    if cli.json {
        println!("{}", r.json());
    } else {
        print!("{}", r.text());
    }
    Ok(())
}
