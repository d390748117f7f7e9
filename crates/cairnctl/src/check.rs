//! `check perf` and `check datascale`.
//!
//! `check perf` is etcdctl's quick judgement of whether a cluster keeps up with a write load. For
//! 60 seconds it writes 1 KiB values under random 256-byte keys below a prefix, at a fixed rate
//! from many clients (each its own connection), then deletes them and passes or fails the
//! cluster on throughput (over 90% of the rate), the slowest write (at most 0.5 s) and the
//! spread of write times (standard deviation at most 0.1 s), printing etcdctl's lines.
//!
//! `check datascale` writes a fixed number of 1 KiB key-values (512-byte keys and values) from
//! many clients and reports how much the first endpoint's resident memory grew, read from its
//! `/metrics` (`process_resident_memory_bytes`) before and after, then deletes them again.
//!
//! The bar etcdctl draws on stdout while they run is a progress line on stderr here (the shared
//! display, a line per tenth off a terminal), so stdout carries only the verdict lines.

use crate::cli::CheckPerfArgs;
use crate::commands::{client_config, dial, emit, emit_err};
use crate::exit::{EXIT_ERROR, Exit, status_message};
use crate::flags::{self, EnvScope, Globals};
use crate::gofmt;
use cairn_client::Client;
use cairn_cliout::progress::Progress;
use cairn_proto::etcdserverpb::{
    CompactionRequest, DefragmentRequest, DeleteRangeRequest, PutRequest, RangeRequest,
};
use std::collections::BTreeMap;
use std::io::IsTerminal as _;
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// `check datascale`'s models: key-values written, concurrent clients.
fn datascale_load(name: &str) -> Option<(u64, usize)> {
    Some(match name {
        "s" | "small" => (10_000, 50),
        "m" | "medium" => (100_000, 200),
        "l" | "large" => (1_000_000, 500),
        "xl" | "xLarge" => (3_000_000, 1000),
        _ => return None,
    })
}

/// How a write load is fed: at a rate for a while, or a number of writes as fast as they go.
#[derive(Clone, Copy)]
enum Feed {
    Rate { per_second: u32, run_for: Duration },
    Count(u64),
}

/// A load model: writes per second, concurrent clients.
struct Load {
    rate: u32,
    clients: usize,
}

fn load(name: &str) -> Option<Load> {
    let (rate, clients) = match name {
        "s" | "small" => (150, 50),
        "m" | "medium" => (1000, 200),
        "l" | "large" => (8000, 500),
        "xl" | "xLarge" => (15000, 1000),
        _ => return None,
    };
    Some(Load { rate, clients })
}

/// etcdctl runs every model for a minute. Tests shorten it with this variable (whole seconds).
const DURATION_ENV: &str = "CAIRNCTL_CHECK_PERF_SECONDS";

fn duration() -> Duration {
    let secs = std::env::var(DURATION_ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|s| *s > 0)
        .unwrap_or(60);
    Duration::from_secs(secs)
}

/// What the write load measured: latencies of the writes that succeeded, errors by message.
#[derive(Default)]
struct Outcome {
    latencies: Vec<f64>,
    errors: BTreeMap<String, u64>,
    took: Duration,
}

impl Outcome {
    fn rps(&self) -> f64 {
        self.latencies.len() as f64 / self.took.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    fn slowest(&self) -> f64 {
        self.latencies.iter().copied().fold(0.0, f64::max)
    }

    /// The population standard deviation, as etcd's report computes it.
    fn stddev(&self) -> f64 {
        let n = self.latencies.len() as f64;
        if n == 0.0 {
            return f64::NAN;
        }
        let mean = self.latencies.iter().sum::<f64>() / n;
        (self
            .latencies
            .iter()
            .map(|l| (l - mean) * (l - mean))
            .sum::<f64>()
            / n)
            .sqrt()
    }
}

pub fn perf(rt: &Runtime, g: &mut Globals, a: &CheckPerfArgs) -> Result<(), Exit> {
    let name = a.load.clone().unwrap_or_else(|| "s".to_string());
    let model =
        load(&name).ok_or_else(|| Exit::bad_feature(format!("unknown load option {name}")))?;
    let (prefix, auto_compact, auto_defrag) = common_flags(a, "/etcdctl-check-perf/")?;
    client_config(g, EnvScope::Global)?;
    let run_for = duration();
    rt.block_on(async {
        let clients = dial_each(model.clients, g).await?;
        let Some(first) = clients.first().cloned() else {
            return Err(Exit::error("no client"));
        };
        refuse_busy_prefix(&first, &prefix, run_for).await?;
        let feed = Feed::Rate {
            per_second: model.rate,
            run_for,
        };
        let outcome = write_load(clients, &prefix, feed, (256, 1024)).await;
        clean_up(&first, &prefix, auto_compact, auto_defrag, g).await?;
        verdict(&outcome, model.rate)
    })
}

/// The flags both checks take: the prefix (or its default), `--auto-compact`, `--auto-defrag`.
fn common_flags(a: &CheckPerfArgs, default_prefix: &str) -> Result<(String, bool, bool), Exit> {
    let prefix = a
        .prefix
        .clone()
        .unwrap_or_else(|| default_prefix.to_string());
    let auto_compact = flags::flag_bool(&a.auto_compact, "auto-compact").map_err(Exit::error)?;
    let auto_defrag = flags::flag_bool(&a.auto_defrag, "auto-defrag").map_err(Exit::error)?;
    Ok((prefix, auto_compact, auto_defrag))
}

/// `n` clients, each with its own connection, as etcdctl makes them.
async fn dial_each(n: usize, g: &Globals) -> Result<Vec<Client>, Exit> {
    let mut clients = Vec::with_capacity(n);
    for _ in 0..n {
        clients.push(dial(&g.endpoints, g.dial_timeout).await?);
    }
    Ok(clients)
}

/// etcdctl refuses to write under a prefix that already holds keys (it deletes them after).
async fn refuse_busy_prefix(c: &Client, prefix: &str, timeout: Duration) -> Result<(), Exit> {
    let existing = tokio::time::timeout(
        timeout,
        c.kv().range(RangeRequest {
            key: prefix.as_bytes().to_vec().into(),
            range_end: cairn_client::prefix_end(prefix.as_bytes()).into(),
            limit: 1,
            ..Default::default()
        }),
    )
    .await
    .map_err(|_| Exit::error("context deadline exceeded"))?
    .map_err(|s| Exit::error(status_message(&s)))?
    .into_inner();
    if existing.kvs.is_empty() {
        return Ok(());
    }
    Err(Exit::invalid_input(format!(
        "prefix {} has keys. Delete with etcdctl del --prefix {prefix} first",
        gofmt::quote_str(prefix)
    )))
}

/// Deletes what the check wrote, then compacts and defragments if asked.
async fn clean_up(
    first: &Client,
    prefix: &str,
    auto_compact: bool,
    auto_defrag: bool,
    g: &Globals,
) -> Result<(), Exit> {
    let deleted = tokio::time::timeout(
        Duration::from_secs(30),
        first.kv().delete_range(DeleteRangeRequest {
            key: prefix.as_bytes().to_vec().into(),
            range_end: cairn_client::prefix_end(prefix.as_bytes()).into(),
            ..Default::default()
        }),
    )
    .await
    .map_err(|_| Exit::error("context deadline exceeded"))?
    .map_err(|s| Exit::error(status_message(&s)))?
    .into_inner();
    if auto_compact {
        let revision = deleted.header.map_or(0, |h| h.revision);
        compact(first, revision).await?;
    }
    if auto_defrag {
        for ep in &g.endpoints {
            defrag(ep, g).await?;
        }
    }
    Ok(())
}

/// Writes `feed`'s load of (key size, value size) key-values, spread over `clients`.
async fn write_load(
    clients: Vec<Client>,
    prefix: &str,
    feed: Feed,
    (key_size, value_size): (usize, usize),
) -> Outcome {
    let (ops, queue) = async_channel(clients.len());
    let (results, mut collected) = tokio::sync::mpsc::unbounded_channel();
    let started = Instant::now();
    let mut workers = Vec::new();
    for client in clients {
        let queue = queue.clone();
        let results = results.clone();
        workers.push(tokio::spawn(async move {
            let mut kv = client.kv();
            while let Ok(req) = queue.recv().await {
                let at = Instant::now();
                let outcome = kv.put(req).await;
                let took = at.elapsed().as_secs_f64();
                let _ = results.send(outcome.map(|_| took).map_err(|s| status_message(&s)));
            }
        }));
    }
    drop(results);
    let prefix = prefix.as_bytes().to_vec();
    let feeder = tokio::spawn(async move {
        let value = bytes::Bytes::from(vec![0u8; value_size]);
        let (mut tick, end, mut left) = match feed {
            Feed::Rate {
                per_second,
                run_for,
            } => {
                let mut tick = tokio::time::interval(Duration::from_secs(1) / per_second.max(1));
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                (Some(tick), Some(Instant::now() + run_for), u64::MAX)
            }
            Feed::Count(n) => (None, None, n),
        };
        let mut rng = SplitMix(u64::from(std::process::id()) ^ started.elapsed().as_nanos() as u64);
        while left > 0 {
            left -= 1;
            if let Some(tick) = tick.as_mut() {
                tick.tick().await;
            }
            if end.is_some_and(|end| Instant::now() >= end) {
                return;
            }
            // A random varint, then zeros (etcdctl's key shape).
            let mut key = vec![0u8; key_size];
            put_varint(&mut key, (rng.next() >> 1) as i64);
            let req = PutRequest {
                key: [&prefix[..], &key[..]].concat().into(),
                value: value.clone(),
                ..Default::default()
            };
            if ops.send(req).await.is_err() {
                return;
            }
        }
    });
    let mut progress = Progress::percent_only("Checking", std::io::stderr().is_terminal());
    let mut outcome = Outcome::default();
    // Progress by time for a rate, by writes done for a count.
    let total = match feed {
        Feed::Rate { run_for, .. } => run_for.as_millis() as u64,
        Feed::Count(n) => n,
    };
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            r = collected.recv() => match r {
                Some(Ok(took)) => outcome.latencies.push(took),
                Some(Err(e)) => *outcome.errors.entry(e).or_default() += 1,
                None => break,
            },
            _ = ticker.tick() => {
                let done = match feed {
                    Feed::Rate { .. } => started.elapsed().as_millis() as u64,
                    Feed::Count(_) => (outcome.latencies.len() + outcome.errors.values().sum::<u64>() as usize) as u64,
                }
                .min(total);
                show(progress.update(done, total, Instant::now()));
            }
        }
    }
    show(progress.finish());
    let _ = feeder.await;
    for w in workers {
        let _ = w.await;
    }
    outcome.took = started.elapsed();
    outcome
}

pub fn datascale(rt: &Runtime, g: &mut Globals, a: &CheckPerfArgs) -> Result<(), Exit> {
    let name = a.load.clone().unwrap_or_else(|| "s".to_string());
    let (count, clients_n) = datascale_load(&name)
        .ok_or_else(|| Exit::bad_feature(format!("unknown load option {name}")))?;
    let count = std::env::var(DATASCALE_COUNT_ENV)
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
        .filter(|n| *n > 0)
        .unwrap_or(count);
    let (prefix, auto_compact, auto_defrag) = common_flags(a, "/etcdctl-check-datascale/")?;
    client_config(g, EnvScope::Global)?;
    let Some(first_endpoint) = g.endpoints.first().cloned() else {
        return Err(Exit::error("no endpoint"));
    };
    rt.block_on(async {
        let clients = dial_each(clients_n, g).await?;
        let Some(first) = clients.first().cloned() else {
            return Err(Exit::error("no client"));
        };
        refuse_busy_prefix(&first, &prefix, Duration::from_secs(3600)).await?;
        let fail = |what: &str| {
            emit(format!("FAIL: Could not read process_resident_memory_bytes {what} the put operations.\n").as_bytes());
            Exit::silent(EXIT_ERROR)
        };
        let before = resident_memory(&first_endpoint).await;
        if before == 0.0 {
            return Err(fail("before"));
        }
        emit(format!("Start data scale check for work load [{count} key-value pairs, 1024 bytes per key-value, {clients_n} concurrent clients].\n").as_bytes());
        let outcome = write_load(clients, &prefix, Feed::Count(count), (512, 512)).await;
        let after = resident_memory(&first_endpoint).await;
        if after == 0.0 {
            return Err(fail("after"));
        }
        clean_up(&first, &prefix, auto_compact, auto_defrag, g).await?;
        if !outcome.errors.is_empty() {
            let mut out = String::from("FAIL: too many errors\n");
            for (e, n) in &outcome.errors {
                out.push_str(&format!("FAIL: ERROR({e}) -> {n}\n"));
            }
            emit(out.as_bytes());
            return Err(Exit::silent(EXIT_ERROR));
        }
        let used = (after - before) / (1024.0 * 1024.0);
        emit(format!("PASS: Approximate system memory used : {used:.2} MB.\n").as_bytes());
        Ok(())
    })
}

/// Tests shrink `check datascale`'s write count with this variable.
const DATASCALE_COUNT_ENV: &str = "CAIRNCTL_CHECK_DATASCALE_COUNT";

/// The endpoint's `process_resident_memory_bytes`, 0 when it cannot be read (after saying why
/// on stdout, as etcdctl does).
async fn resident_memory(endpoint: &str) -> f64 {
    const KEY: &str = "process_resident_memory_bytes";
    let url = if endpoint.starts_with("http://") || endpoint.starts_with("https://") {
        format!("{endpoint}/metrics")
    } else {
        format!("http://{endpoint}/metrics")
    };
    let body = match http_get(&url).await {
        Ok(body) => body,
        Err(e) => {
            emit(format!("fetch error: {e}\n").as_bytes());
            return 0.0;
        }
    };
    let Some(value) = body
        .lines()
        .find_map(|line| line.strip_prefix(KEY))
        .map(str::trim)
    else {
        emit(format!("could not find: {KEY}\n").as_bytes());
        return 0.0;
    };
    match value.parse::<f64>() {
        Ok(v) => v,
        Err(e) => {
            emit(format!("parse error: {e}\n").as_bytes());
            0.0
        }
    }
}

/// One HTTP/1.1 GET, over TLS for `https://` with this run's client TLS settings.
async fn http_get(url: &str) -> Result<String, String> {
    use http_body_util::BodyExt as _;
    let uri: hyper::Uri = url.parse().map_err(|e| format!("{e}"))?;
    let host = uri.host().ok_or("no host")?.to_string();
    let tls = uri.scheme_str() == Some("https");
    let port = uri.port_u16().unwrap_or(if tls { 443 } else { 80 });
    let request = hyper::Request::get(uri.clone())
        .header(hyper::header::HOST, format!("{host}:{port}"))
        .body(http_body_util::Empty::<bytes::Bytes>::new())
        .map_err(|e| e.to_string())?;
    let response = if tls {
        let config =
            crate::commands::client_tls_config().ok_or("https endpoint without TLS settings")?;
        let io = cairn_client::tls::connect(uri, config)
            .await
            .map_err(|e| e.to_string())?;
        send(io, request).await?
    } else {
        let tcp =
            tokio::net::TcpStream::connect((host.trim_matches(|c| c == '[' || c == ']'), port))
                .await
                .map_err(|e| e.to_string())?;
        send(hyper_util::rt::TokioIo::new(tcp), request).await?
    };
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| format!("reading {url}: {e}"))?
        .to_bytes();
    Ok(String::from_utf8_lossy(&body).into_owned())
}

async fn send<I>(
    io: I,
    request: hyper::Request<http_body_util::Empty<bytes::Bytes>>,
) -> Result<hyper::Response<hyper::body::Incoming>, String>
where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(io)
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    sender
        .send_request(request)
        .await
        .map_err(|e| e.to_string())
}

fn verdict(s: &Outcome, rate: u32) -> Result<(), Exit> {
    let mut out = String::new();
    let mut ok = true;
    if !s.errors.is_empty() {
        out.push_str("FAIL: too many errors\n");
        for (e, n) in &s.errors {
            out.push_str(&format!("FAIL: ERROR({e}) -> {n}\n"));
        }
        ok = false;
    }
    let rps = s.rps();
    if rps / f64::from(rate) <= 0.9 {
        out.push_str(&format!(
            "FAIL: Throughput too low: {} writes/s\n",
            rps as i64 + 1
        ));
        ok = false;
    } else {
        out.push_str(&format!(
            "PASS: Throughput is {} writes/s\n",
            rps as i64 + 1
        ));
    }
    let slowest = s.slowest();
    if slowest > 0.5 {
        out.push_str(&format!("Slowest request took too long: {slowest:.6}s\n"));
        ok = false;
    } else {
        out.push_str(&format!("PASS: Slowest request took {slowest:.6}s\n"));
    }
    let stddev = s.stddev();
    if stddev > 0.1 {
        out.push_str(&format!("Stddev too high: {stddev:.6}s\n"));
        ok = false;
    } else {
        out.push_str(&format!("PASS: Stddev is {}s\n", go_float(stddev)));
    }
    out.push_str(if ok { "PASS\n" } else { "FAIL\n" });
    emit(out.as_bytes());
    if ok {
        Ok(())
    } else {
        Err(Exit::silent(EXIT_ERROR))
    }
}

/// Go's `%f` of a float: NaN prints as `NaN` (no write succeeded), anything else with six
/// decimals.
fn go_float(x: f64) -> String {
    if x.is_nan() {
        "NaN".to_string()
    } else {
        format!("{x:.6}")
    }
}

async fn compact(c: &Client, revision: i64) -> Result<(), Exit> {
    emit(format!("Compacting with revision {revision}\n").as_bytes());
    tokio::time::timeout(
        Duration::from_secs(30),
        c.kv().compact(CompactionRequest {
            revision,
            physical: true,
        }),
    )
    .await
    .map_err(|_| Exit::error("context deadline exceeded"))?
    .map_err(|s| Exit::error(status_message(&s)))?;
    emit(format!("Compacted with revision {revision}\n").as_bytes());
    Ok(())
}

async fn defrag(ep: &str, g: &Globals) -> Result<(), Exit> {
    emit(format!("Defragmenting {}\n", gofmt::quote_str(ep)).as_bytes());
    let c = dial(std::slice::from_ref(&ep.to_string()), g.dial_timeout).await?;
    tokio::time::timeout(
        Duration::from_secs(30),
        c.maintenance().defragment(DefragmentRequest {}),
    )
    .await
    .map_err(|_| Exit::error("context deadline exceeded"))?
    .map_err(|s| Exit::error(status_message(&s)))?;
    emit(format!("Defragmented {}\n", gofmt::quote_str(ep)).as_bytes());
    Ok(())
}

/// A bounded multi-consumer queue: the feeder waits when every client is busy, as etcdctl's
/// channel of `clients` slots makes it wait.
fn async_channel(
    capacity: usize,
) -> (
    tokio::sync::mpsc::Sender<PutRequest>,
    SharedReceiver<PutRequest>,
) {
    let (tx, rx) = tokio::sync::mpsc::channel(capacity.max(1));
    (
        tx,
        SharedReceiver(std::sync::Arc::new(tokio::sync::Mutex::new(rx))),
    )
}

struct SharedReceiver<T>(std::sync::Arc<tokio::sync::Mutex<tokio::sync::mpsc::Receiver<T>>>);

impl<T> Clone for SharedReceiver<T> {
    fn clone(&self) -> Self {
        SharedReceiver(self.0.clone())
    }
}

impl<T> SharedReceiver<T> {
    async fn recv(&self) -> Result<T, ()> {
        self.0.lock().await.recv().await.ok_or(())
    }
}

fn show(text: Option<String>) {
    if let Some(text) = text {
        emit_err(text.as_bytes());
    }
}

/// Go's `binary.PutVarint`: zig-zag, then 7 bits per byte, low first.
fn put_varint(buf: &mut [u8], x: i64) {
    let mut u = ((x << 1) ^ (x >> 63)) as u64;
    for b in buf.iter_mut() {
        if u < 0x80 {
            *b = u as u8;
            return;
        }
        *b = (u as u8) | 0x80;
        u >>= 7;
    }
}

/// Random keys need no cryptographic quality: a SplitMix64 sequence.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verdict_lines_follow_etcdctl() {
        let good = Outcome {
            latencies: vec![0.01; 1400],
            errors: BTreeMap::new(),
            took: Duration::from_secs(10),
        };
        assert!(verdict(&good, 150).is_ok());
        let slow = Outcome {
            latencies: vec![0.01, 0.9],
            errors: BTreeMap::from([("etcdserver: request timed out".to_string(), 3)]),
            took: Duration::from_secs(10),
        };
        assert!(verdict(&slow, 150).is_err());
        assert!((slow.stddev() - 0.445).abs() < 1e-9);
        assert_eq!(go_float(Outcome::default().stddev()), "NaN");
        assert!(load("xLarge").is_some() && load("huge").is_none());
        let mut buf = [0u8; 4];
        put_varint(&mut buf, 150);
        assert_eq!(buf, [0xac, 0x02, 0, 0]);
        put_varint(&mut buf, -1);
        assert_eq!(buf[0], 1);
    }
}
