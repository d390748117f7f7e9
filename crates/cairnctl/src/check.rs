//! `check perf`: etcdctl's quick judgement of whether a cluster keeps up with a write load. For
//! 60 seconds it writes 1 KiB values under random 256-byte keys below a prefix, at a fixed rate
//! from many clients (each its own connection), then deletes them and passes or fails the
//! cluster on throughput (over 90% of the rate), the slowest write (at most 0.5 s) and the
//! spread of write times (standard deviation at most 0.1 s), printing etcdctl's lines.
//!
//! The bar etcdctl draws on stdout while it runs is a progress line on stderr here (the shared
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
    let prefix = a
        .prefix
        .clone()
        .unwrap_or_else(|| "/etcdctl-check-perf/".to_string());
    let auto_compact = flags::flag_bool(&a.auto_compact, "auto-compact").map_err(Exit::error)?;
    let auto_defrag = flags::flag_bool(&a.auto_defrag, "auto-defrag").map_err(Exit::error)?;
    client_config(g, EnvScope::Global)?;
    let run_for = duration();
    rt.block_on(async {
        let mut clients = Vec::with_capacity(model.clients);
        for _ in 0..model.clients {
            clients.push(dial(&g.endpoints, g.dial_timeout).await?);
        }
        let Some(first) = clients.first().cloned() else {
            return Err(Exit::error("no client"));
        };
        let range_end = cairn_client::prefix_end(prefix.as_bytes());
        let existing = tokio::time::timeout(
            run_for,
            first.kv().range(RangeRequest {
                key: prefix.clone().into_bytes().into(),
                range_end: range_end.clone().into(),
                limit: 1,
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| Exit::error("context deadline exceeded"))?
        .map_err(|s| Exit::error(status_message(&s)))?
        .into_inner();
        if !existing.kvs.is_empty() {
            return Err(Exit::invalid_input(format!(
                "prefix {} has keys. Delete with etcdctl del --prefix {prefix} first",
                gofmt::quote_str(&prefix)
            )));
        }
        let outcome = write_load(clients, &prefix, model.rate, run_for).await;
        let deleted = tokio::time::timeout(
            Duration::from_secs(30),
            first.kv().delete_range(DeleteRangeRequest {
                key: prefix.clone().into_bytes().into(),
                range_end: range_end.into(),
                ..Default::default()
            }),
        )
        .await
        .map_err(|_| Exit::error("context deadline exceeded"))?
        .map_err(|s| Exit::error(status_message(&s)))?
        .into_inner();
        if auto_compact {
            let revision = deleted.header.map_or(0, |h| h.revision);
            compact(&first, revision).await?;
        }
        if auto_defrag {
            for ep in &g.endpoints {
                defrag(ep, g).await?;
            }
        }
        verdict(&outcome, model.rate)
    })
}

/// Writes at `rate` per second for `run_for`, spread over `clients`.
async fn write_load(clients: Vec<Client>, prefix: &str, rate: u32, run_for: Duration) -> Outcome {
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
        let value = bytes::Bytes::from(vec![0u8; 1024]);
        let mut tick = tokio::time::interval(Duration::from_secs(1) / rate.max(1));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let end = Instant::now() + run_for;
        let mut rng = SplitMix(u64::from(std::process::id()) ^ started.elapsed().as_nanos() as u64);
        loop {
            tick.tick().await;
            if Instant::now() >= end {
                return;
            }
            // A 256-byte key: a random varint, then zeros (etcdctl's shape).
            let mut key = vec![0u8; 256];
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
    let total = run_for.as_millis() as u64;
    let mut ticker = tokio::time::interval(Duration::from_millis(250));
    loop {
        tokio::select! {
            r = collected.recv() => match r {
                Some(Ok(took)) => outcome.latencies.push(took),
                Some(Err(e)) => *outcome.errors.entry(e).or_default() += 1,
                None => break,
            },
            _ = ticker.tick() => {
                let done = (started.elapsed().as_millis() as u64).min(total);
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
