//! What the Raft node reports, turned into etcd's metrics and the log lines operators grep for.

use super::Metrics;
use std::sync::Arc;
use std::time::Duration;

pub struct RaftObserver {
    pub metrics: Arc<Metrics>,
    pub member_id: u64,
}

impl cairn_raft::Observer for RaftObserver {
    fn wal_synced(&self, took: Duration) {
        self.metrics.wal_fsync.observe(took.as_secs_f64());
    }

    fn wal_written(&self, bytes: u64) {
        self.metrics
            .wal_written
            .add(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    fn leader_changed(&self, leader: u64, term: u64) {
        if leader == 0 {
            tracing::warn!(term, "lost the leader");
            return;
        }
        // etcd counts a change only when a (new) leader is known.
        self.metrics.leader_changes.inc();
        if leader == self.member_id {
            tracing::info!(
                leader = format!("{leader:x}"),
                term,
                "this member was elected leader"
            );
        } else {
            tracing::info!(leader = format!("{leader:x}"), term, "leader elected");
        }
    }

    fn heartbeat_send_failed(&self) {
        self.metrics.heartbeat_send_failures.inc();
    }

    fn read_index_slow(&self) {
        self.metrics.slow_read_indexes.inc();
    }

    fn read_index_failed(&self) {
        self.metrics.read_indexes_failed.inc();
    }
}
