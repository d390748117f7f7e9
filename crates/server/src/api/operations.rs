//! `cairnpb.Operations`: Cairn's own calls on the client port, for what etcd's API cannot say.
//! Today one: how far the defragmentation in flight has come, which `cairnctl defrag` shows
//! while etcd's unary Maintenance.Defragment waits.

use crate::etcd::EtcdServer;
use cairn_proto::cairnpb::{
    DefragmentProgressRequest, DefragmentProgressResponse, operations_server::Operations,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use tonic::{Request, Response, Status};

/// The defragmentation in flight on this member, as its copy reports it.
#[derive(Debug, Default)]
pub(crate) struct DefragProgress {
    /// Defragmentations running or waiting for the one running (the store does one at a time).
    running: AtomicU32,
    copied: AtomicU64,
    total: AtomicU64,
}

impl DefragProgress {
    /// Marks a defragmentation begun until the guard drops.
    pub(crate) fn begin(self: &Arc<Self>) -> DefragRunning {
        self.running.fetch_add(1, Ordering::AcqRel);
        self.copied.store(0, Ordering::Release);
        self.total.store(0, Ordering::Release);
        DefragRunning(self.clone())
    }

    pub(crate) fn report(&self, copied: u64, total: u64) {
        self.total.store(total, Ordering::Release);
        self.copied.store(copied, Ordering::Release);
    }

    fn snapshot(&self) -> DefragmentProgressResponse {
        DefragmentProgressResponse {
            running: self.running.load(Ordering::Acquire) > 0,
            records_copied: self.copied.load(Ordering::Acquire),
            records_total: self.total.load(Ordering::Acquire),
        }
    }
}

/// A defragmentation counted as running.
pub(crate) struct DefragRunning(Arc<DefragProgress>);

impl Drop for DefragRunning {
    fn drop(&mut self) {
        self.0.running.fetch_sub(1, Ordering::AcqRel);
    }
}

pub struct OperationsService {
    pub server: Arc<EtcdServer>,
}

#[tonic::async_trait]
impl Operations for OperationsService {
    async fn defragment_progress(
        &self,
        request: Request<DefragmentProgressRequest>,
    ) -> Result<Response<DefragmentProgressResponse>, Status> {
        // Whoever may defragment may watch it; nobody else learns anything from it.
        super::require_root_untranslated(&self.server, &request).await?;
        Ok(Response::new(self.server.defrag_progress.snapshot()))
    }
}
