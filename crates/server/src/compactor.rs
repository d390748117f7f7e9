//! Auto-compaction (`--auto-compaction-mode`, `--auto-compaction-retention`) with etcd's
//! semantics. Only the leader compacts; the compaction goes through the log like a client's.
//!
//! - `periodic` (retention a duration, or a number of hours): the revision is sampled every
//!   tenth of the retention (at most every 6 minutes); once the retention has passed, and then
//!   every retention (at most every hour), history is compacted at the revision sampled one
//!   retention ago.
//! - `revision` (retention a number of revisions): every 5 minutes, history is compacted at the
//!   current revision minus the retention.

use crate::errors::ServerError;
use crate::etcd::EtcdServer;
use cairn_mvcc::MvccError;
use cairn_proto::cairnpb::internal_request::Request;
use cairn_proto::etcdserverpb::CompactionRequest;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How often revision mode looks (etcd's revInterval).
const REVISION_INTERVAL: Duration = Duration::from_secs(300);
const HOUR: Duration = Duration::from_secs(3600);

/// What `--auto-compaction-mode` and `--auto-compaction-retention` ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AutoCompaction {
    Off,
    Periodic(Duration),
    Revision(i64),
}

impl AutoCompaction {
    /// etcd's parsing: a plain number is hours (periodic) or revisions (revision); otherwise a
    /// Go duration. Zero turns auto-compaction off.
    pub fn parse(mode: &str, retention: &str) -> Result<AutoCompaction, String> {
        if mode != "periodic" && mode != "revision" {
            return Err(format!("unknown auto-compaction-mode {mode:?}"));
        }
        let parsed = match retention.parse::<i64>() {
            Ok(n) if n >= 0 => match mode {
                "revision" => AutoCompaction::Revision(n),
                _ => AutoCompaction::Periodic(HOUR.saturating_mul(n as u32)),
            },
            _ => {
                let d = retention
                    .parse::<crate::config::GoDuration>()
                    .map_err(|e| format!("error parsing CompactionRetention: {e}"))?
                    .0;
                // A duration in revision mode counts nanoseconds as revisions, as etcd does.
                match mode {
                    "revision" => {
                        AutoCompaction::Revision(i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
                    }
                    _ => AutoCompaction::Periodic(d),
                }
            }
        };
        Ok(match parsed {
            AutoCompaction::Periodic(d) if d.is_zero() => AutoCompaction::Off,
            AutoCompaction::Revision(0) => AutoCompaction::Off,
            other => other,
        })
    }
}

/// Periodic mode's bookkeeping: revisions sampled every `step`, the oldest one retention ago.
#[derive(Debug)]
pub(crate) struct Periodic {
    retention: Duration,
    samples: VecDeque<i64>,
    keep: usize,
    last: Instant,
    wait: Duration,
}

impl Periodic {
    pub(crate) fn new(retention: Duration, now: Instant) -> Periodic {
        let step = Periodic::step_of(retention);
        let keep = (retention.as_nanos() / step.as_nanos().max(1)) as usize + 1;
        Periodic {
            retention,
            samples: VecDeque::with_capacity(keep),
            keep,
            last: now,
            // The first compaction waits one whole retention.
            wait: retention,
        }
    }

    fn step_of(retention: Duration) -> Duration {
        retention.min(HOUR) / 10
    }

    pub(crate) fn step(&self) -> Duration {
        Periodic::step_of(self.retention)
    }

    /// Records the revision now; returns the revision to compact at, if it is time.
    pub(crate) fn sample(&mut self, revision: i64, now: Instant) -> Option<i64> {
        self.samples.push_back(revision);
        if self.samples.len() > self.keep {
            self.samples.pop_front();
        }
        if now.duration_since(self.last) < self.wait {
            return None;
        }
        self.wait = self.retention.min(HOUR);
        self.last = now;
        self.samples.front().copied().filter(|r| *r > 0)
    }
}

/// Runs auto-compaction for as long as the member does.
pub(crate) async fn run(server: Arc<EtcdServer>, how: AutoCompaction) {
    match how {
        AutoCompaction::Off => {}
        AutoCompaction::Periodic(retention) => {
            tracing::info!(retention = ?retention, "auto-compaction: periodic");
            let mut periodic = Periodic::new(retention, Instant::now());
            let mut prev = 0;
            loop {
                tokio::time::sleep(periodic.step()).await;
                let due = periodic.sample(server.store.revision(), Instant::now());
                if let Some(rev) = due
                    && rev != prev
                    && server.is_leader()
                    && compact(&server, rev, &format!("{retention:?}")).await
                {
                    prev = rev;
                }
            }
        }
        AutoCompaction::Revision(retention) => {
            tracing::info!(retention, "auto-compaction: revision");
            let interval =
                crate::failpoint::revision_compaction_interval().unwrap_or(REVISION_INTERVAL);
            let mut prev = 0;
            loop {
                tokio::time::sleep(interval).await;
                let rev = server.store.revision() - retention;
                if rev <= 0 || rev == prev || !server.is_leader() {
                    continue;
                }
                if compact(&server, rev, &format!("{retention} revisions")).await {
                    prev = rev;
                }
            }
        }
    }
}

/// Proposes a compaction at `rev`; true if history is now compacted there.
async fn compact(server: &EtcdServer, rev: i64, retention: &str) -> bool {
    tracing::info!(revision = rev, retention, "starting auto-compaction");
    let request = Request::Compaction(CompactionRequest {
        revision: rev,
        physical: false,
    });
    match server.propose_entry(request, None, None).await {
        Ok(_) | Err(ServerError::Mvcc(MvccError::Compacted)) => {
            tracing::info!(revision = rev, "finished auto-compaction");
            true
        }
        Err(e) => {
            tracing::warn!(revision = rev, error = %e, "auto-compaction failed; will retry");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_is_parsed_as_etcd_parses_it() {
        let p = AutoCompaction::parse;
        assert_eq!(p("periodic", "0"), Ok(AutoCompaction::Off));
        assert_eq!(p("periodic", "1"), Ok(AutoCompaction::Periodic(HOUR)));
        assert_eq!(
            p("periodic", "5m"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(300)))
        );
        assert_eq!(
            p("periodic", "1h30m"),
            Ok(AutoCompaction::Periodic(Duration::from_secs(5400)))
        );
        assert_eq!(p("revision", "1000"), Ok(AutoCompaction::Revision(1000)));
        assert_eq!(p("revision", "0"), Ok(AutoCompaction::Off));
        assert!(p("periodic", "5x").is_err());
        assert!(p("periodic", "-1").is_err());
        assert_eq!(
            p("hourly", "1"),
            Err("unknown auto-compaction-mode \"hourly\"".into())
        );
    }

    #[test]
    fn periodic_compacts_at_the_revision_of_one_retention_ago() {
        let t0 = Instant::now();
        let retention = Duration::from_secs(10);
        let mut p = Periodic::new(retention, t0);
        assert_eq!(p.step(), Duration::from_secs(1));
        // Revision 100 + 10 per second; nothing before one whole retention.
        let mut due = Vec::new();
        for s in 1..=35u64 {
            let at = t0 + Duration::from_secs(s);
            if let Some(rev) = p.sample(100 + 10 * s as i64, at) {
                due.push((s, rev));
            }
        }
        // At 10 s the oldest sample is from 1 s; afterwards every 10 s, one retention back.
        assert_eq!(due, vec![(10, 110), (20, 200), (30, 300)]);
    }

    #[test]
    fn long_retentions_compact_hourly() {
        let t0 = Instant::now();
        let mut p = Periodic::new(Duration::from_secs(5 * 3600), t0);
        assert_eq!(p.step(), Duration::from_secs(360));
        let mut due = Vec::new();
        for i in 1..=80u64 {
            let at = t0 + Duration::from_secs(360 * i);
            if let Some(rev) = p.sample(i as i64, at) {
                due.push((i, rev));
            }
        }
        // First after 5 h (50 steps), then hourly, each time at the sample 5 h back.
        assert_eq!(due, vec![(50, 1), (60, 10), (70, 20), (80, 30)]);
    }
}
