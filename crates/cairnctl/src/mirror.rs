//! `make-mirror <destination>`: copies this cluster's keys (all, or one prefix) into another
//! cluster and keeps them up to date, as etcdctl's make-mirror does. It is how data moves from
//! real etcd to Cairn (or back) while the source keeps serving.
//!
//! First the key space as of one revision, read in pages of 1000 keys at that revision and put
//! key by key; then a watch from the next revision, each source revision's events written as
//! one transaction, so the destination passes through the source's states in order. Only keys
//! and values are copied (no leases, no revisions), as etcdctl does. The number of keys copied
//! so far is printed every 30 seconds. It runs until it fails: the source compacted past the
//! watch, or a write to the destination was refused.

use crate::cli::MakeMirrorArgs;
use crate::commands::{client_config, dial, emit};
use crate::exit::Exit;
use crate::flags::{self, EnvScope, Globals};
use crate::watch::WatchHandle;
use cairn_client::Client;
use cairn_proto::etcdserverpb::{
    DeleteRangeRequest, PutRequest, RangeRequest, RequestOp, TxnRequest, WatchCreateRequest,
    request_op::Request,
};
use cairn_proto::mvccpb::event::EventType;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::runtime::Runtime;

/// Keys per range while copying the key space (clientv3's mirror uses as many).
const PAGE: i64 = 1000;
/// How often the running count is printed.
const REPORT_EVERY: Duration = Duration::from_secs(30);

/// Where keys go: the source prefix replaced by the destination's.
struct Rename {
    from: Vec<u8>,
    to: Vec<u8>,
}

impl Rename {
    /// Replaces the first occurrence of the source prefix (Go's `strings.Replace(key, prefix,
    /// dest, 1)`, which etcdctl applies: an empty prefix puts the destination prefix in front).
    fn apply(&self, key: &[u8]) -> Vec<u8> {
        let at = if self.from.is_empty() {
            Some(0)
        } else {
            key.windows(self.from.len()).position(|w| w == self.from)
        };
        match at {
            Some(i) => [&key[..i], &self.to[..], &key[i + self.from.len()..]].concat(),
            None => key.to_vec(),
        }
    }
}

pub fn make_mirror(rt: &Runtime, g: &mut Globals, a: &MakeMirrorArgs) -> Result<(), Exit> {
    let [destination] = a.args.as_slice() else {
        return Err(Exit::bad_args("make-mirror takes one destination argument"));
    };
    let destination = destination.to_string_lossy().into_owned();
    client_config(g, EnvScope::Global)?;
    let prefix = a.prefix.clone().unwrap_or_default().into_bytes();
    let dest_prefix = a.dest_prefix.clone().unwrap_or_default().into_bytes();
    let no_dest_prefix =
        flags::flag_bool(&a.no_dest_prefix, "no-dest-prefix").map_err(Exit::error)?;
    let insecure = flags::flag_bool_true(&a.dest_insecure_transport, "dest-insecure-transport")
        .map_err(Exit::error)?;
    if no_dest_prefix && !dest_prefix.is_empty() {
        return Err(Exit::bad_args(
            "`--dest-prefix` and `--no-dest-prefix` cannot be set at the same time, choose one",
        ));
    }
    let rename = Rename {
        to: if no_dest_prefix || !dest_prefix.is_empty() {
            dest_prefix
        } else {
            prefix.clone()
        },
        from: prefix.clone(),
    };
    let dest_tls = dest_tls(a, insecure, &destination)?;
    let dial_timeout = crate::gofmt::to_std(g.dial_timeout);
    rt.block_on(async {
        let source = dial(&g.endpoints, g.dial_timeout).await?;
        let mut dest = tokio::time::timeout(
            dial_timeout,
            Client::connect_one_with(&destination, dial_timeout, dest_tls),
        )
        .await
        .map_err(|_| Exit::error("context deadline exceeded"))?
        .map_err(Exit::error)?;
        let login = crate::auth::dest_credentials(
            a.dest_user.as_deref().unwrap_or_default(),
            a.dest_password.as_deref().unwrap_or_default(),
        )?;
        if let Some(login) = login {
            dest.authenticate(&login.user, &login.password)
                .await
                .map_err(Exit::error)?;
        }
        let copied = Arc::new(AtomicU64::new(0));
        let reporter = tokio::spawn({
            let copied = copied.clone();
            async move {
                loop {
                    tokio::time::sleep(REPORT_EVERY).await;
                    emit(format!("{}\n", copied.load(Ordering::Relaxed)).as_bytes());
                }
            }
        });
        let result = mirror(&source, &dest, &prefix, &rename, &copied).await;
        reporter.abort();
        // etcdctl exits with its error even when the watch just ended: "Error: <nil>".
        result.and(Err(Exit::error("<nil>")))
    })
}

fn dest_tls(
    a: &MakeMirrorArgs,
    insecure: bool,
    destination: &str,
) -> Result<Option<Arc<rustls::ClientConfig>>, Exit> {
    let path = |s: &Option<String>| {
        s.as_deref()
            .filter(|s| !s.is_empty())
            .map(std::path::PathBuf::from)
    };
    let options = cairn_client::TlsOptions {
        ca_file: path(&a.dest_cacert),
        cert_file: path(&a.dest_cert),
        key_file: path(&a.dest_key),
        skip_verify: false,
    };
    let configured =
        options.ca_file.is_some() || options.cert_file.is_some() || options.key_file.is_some();
    if !configured && insecure && !destination.starts_with("https://") {
        return Ok(None);
    }
    options.client_config().map(Some).map_err(Exit::error)
}

fn rpc_error(s: tonic::Status) -> Exit {
    Exit::error(crate::exit::status_message(&s))
}

async fn mirror(
    source: &Client,
    dest: &Client,
    prefix: &[u8],
    rename: &Rename,
    copied: &AtomicU64,
) -> Result<(), Exit> {
    let (mut key, range_end) = if prefix.is_empty() {
        (vec![0], vec![0])
    } else {
        (prefix.to_vec(), cairn_client::prefix_end(prefix))
    };
    // The key space as of one revision: the watch resumes right after it.
    let revision = source
        .kv()
        .range(RangeRequest {
            key: b"foo".to_vec().into(),
            ..Default::default()
        })
        .await
        .map_err(rpc_error)?
        .into_inner()
        .header
        .map_or(0, |h| h.revision);
    loop {
        let page = source
            .kv()
            .range(RangeRequest {
                key: key.clone().into(),
                range_end: range_end.clone().into(),
                limit: PAGE,
                revision,
                ..Default::default()
            })
            .await
            .map_err(rpc_error)?
            .into_inner();
        for kv in &page.kvs {
            dest.kv()
                .put(PutRequest {
                    key: rename.apply(&kv.key).into(),
                    value: kv.value.clone(),
                    ..Default::default()
                })
                .await
                .map_err(rpc_error)?;
            copied.fetch_add(1, Ordering::Relaxed);
        }
        match page.kvs.last() {
            Some(last) if page.more => {
                key = [&last.key[..], &[0]].concat();
            }
            _ => break,
        }
    }

    let mut watch = WatchHandle::start(
        source,
        WatchCreateRequest {
            key: (if prefix.is_empty() {
                vec![0]
            } else {
                prefix.to_vec()
            })
            .into(),
            range_end: range_end.into(),
            start_revision: revision + 1,
            ..Default::default()
        },
        false,
    );
    while let Some(resp) = watch.rx.recv().await {
        if resp.compact_revision != 0 {
            return Err(Exit::error(
                "etcdserver: mvcc: required revision has been compacted",
            ));
        }
        if let Some(err) = resp.close_err {
            return Err(Exit::error(err));
        }
        // One transaction per source revision: a source txn stays one txn.
        let mut ops: Vec<RequestOp> = Vec::new();
        let mut at = 0;
        for ev in resp.events {
            let Some(kv) = ev.kv else { continue };
            if at != 0 && kv.mod_revision != at && !ops.is_empty() {
                commit(dest, std::mem::take(&mut ops)).await?;
            }
            at = kv.mod_revision;
            let key = rename.apply(&kv.key).into();
            let request = if ev.r#type == EventType::Delete as i32 {
                Request::RequestDeleteRange(DeleteRangeRequest {
                    key,
                    ..Default::default()
                })
            } else {
                Request::RequestPut(PutRequest {
                    key,
                    value: kv.value,
                    ..Default::default()
                })
            };
            ops.push(RequestOp {
                request: Some(request),
            });
            copied.fetch_add(1, Ordering::Relaxed);
        }
        if !ops.is_empty() {
            commit(dest, ops).await?;
        }
    }
    Ok(())
}

async fn commit(dest: &Client, ops: Vec<RequestOp>) -> Result<(), Exit> {
    dest.kv()
        .txn(TxnRequest {
            success: ops,
            ..Default::default()
        })
        .await
        .map(|_| ())
        .map_err(rpc_error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_occurrence_of_the_prefix_is_replaced() {
        let r = Rename {
            from: b"a/".to_vec(),
            to: b"b/".to_vec(),
        };
        assert_eq!(r.apply(b"a/x"), b"b/x");
        assert_eq!(r.apply(b"a/a/x"), b"b/a/x");
        let root = Rename {
            from: b"a/".to_vec(),
            to: Vec::new(),
        };
        assert_eq!(root.apply(b"a/x"), b"x");
        let everything = Rename {
            from: Vec::new(),
            to: b"copy/".to_vec(),
        };
        assert_eq!(everything.apply(b"k"), b"copy/k");
    }
}
