//! `lease grant|revoke|timetolive|list|keep-alive`, and the keep-alive loop of clientv3's
//! lessor that `lease keep-alive` and the `elect`/`lock` sessions share.

use crate::cli::{KeepAliveArgs, LeaseIdArgs, TimeToLiveArgs};
use crate::commands::{client_config, dial, emit, is_login_failure, os_bytes, timed};
use crate::exit::{EXIT_BAD_CONNECTION, Exit, status_message};
use crate::flags::{self, EnvScope, Globals};
use crate::gofmt;
use crate::output::Format;
use cairn_client::AuthChannel;
use cairn_client::Client;
use cairn_proto::etcdserverpb::lease_client::LeaseClient;
use cairn_proto::etcdserverpb::{
    LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseLeasesRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest,
};
use std::future::Future;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_stream::wrappers::UnboundedReceiverStream;

/// clientv3's lessor checks its keep-alives this often.
const TICK: Duration = Duration::from_millis(500);

/// One Lease RPC under `--command-timeout`, failing as etcdctl's "failed to <what> lease (…)".
async fn timed_lease_call<T, F, Fut>(g: &Globals, what: &str, call: F) -> Result<T, Exit>
where
    F: FnOnce(LeaseClient<AuthChannel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    timed(g.command_timeout, async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        call(client.lease())
            .await
            .map(tonic::Response::into_inner)
            .map_err(|s| Exit::error(status_message(&s)))
    })
    .await
    .map_err(|e| {
        if is_login_failure(&e) {
            return e;
        }
        Exit::error(format!(
            "failed to {what} lease ({})",
            e.message.unwrap_or_default()
        ))
    })
}

/// One Lease RPC without a deadline, as etcdctl runs `timetolive` and `list`.
async fn lease_call<T, F, Fut>(g: &Globals, call: F) -> Result<T, Exit>
where
    F: FnOnce(LeaseClient<AuthChannel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let client = dial(&g.endpoints, g.dial_timeout).await?;
    call(client.lease())
        .await
        .map(tonic::Response::into_inner)
        .map_err(bad_connection)
}

/// etcdctl's `leaseFromArgs`: a hexadecimal lease ID.
pub fn lease_from_arg(arg: &[u8]) -> Result<i64, Exit> {
    gofmt::parse_int(&String::from_utf8_lossy(arg), 16)
        .map_err(|e| Exit::bad_args(format!("bad lease ID arg ({e}), expecting ID in Hex")))
}

/// How long clientv3 waits for the first keep-alive answer before it gives a lease up: the dial
/// timeout plus a second, or its default TTL when that would be just the second.
pub fn first_keep_alive_timeout(dial_timeout: gofmt::GoDuration) -> Duration {
    let t = gofmt::to_std(dial_timeout.max(0)) + Duration::from_secs(1);
    if t == Duration::from_secs(1) {
        Duration::from_secs(5)
    } else {
        t
    }
}

pub fn grant(rt: &Runtime, g: &mut Globals, a: &LeaseIdArgs) -> Result<(), Exit> {
    let args = os_bytes(&a.args);
    let [arg] = args.as_slice() else {
        return Err(Exit::bad_args("lease grant command needs TTL argument"));
    };
    let ttl = gofmt::parse_int(&String::from_utf8_lossy(arg), 10)
        .map_err(|e| Exit::bad_args(format!("bad TTL ({e})")))?;
    let printer = client_config(g, EnvScope::Global)?;
    let resp = rt.block_on(timed_lease_call(g, "grant", |mut l| async move {
        l.lease_grant(LeaseGrantRequest { ttl, id: 0 }).await
    }))?;
    emit(&printer.lease_grant(&resp)?);
    Ok(())
}

pub fn revoke(rt: &Runtime, g: &mut Globals, a: &LeaseIdArgs) -> Result<(), Exit> {
    let args = os_bytes(&a.args);
    let [arg] = args.as_slice() else {
        return Err(Exit::bad_args("lease revoke command needs 1 argument"));
    };
    let id = lease_from_arg(arg)?;
    let printer = client_config(g, EnvScope::Global)?;
    let resp = rt.block_on(timed_lease_call(g, "revoke", |mut l| async move {
        l.lease_revoke(LeaseRevokeRequest { id }).await
    }))?;
    emit(&printer.lease_revoke(id, &resp)?);
    Ok(())
}

fn bad_connection(s: tonic::Status) -> Exit {
    Exit::new(EXIT_BAD_CONNECTION, status_message(&s))
}

/// etcdctl runs `timetolive`, `list` and `keep-alive` without a deadline.
pub fn time_to_live(rt: &Runtime, g: &mut Globals, a: &TimeToLiveArgs) -> Result<(), Exit> {
    let keys = flags::flag_bool(&a.keys, "keys").map_err(Exit::error)?;
    let args = os_bytes(&a.args);
    let [arg] = args.as_slice() else {
        return Err(Exit::bad_args(
            "lease timetolive command needs lease ID as argument",
        ));
    };
    let printer = client_config(g, EnvScope::Global)?;
    let id = lease_from_arg(arg)?;
    let resp = rt.block_on(lease_call(g, |mut l| async move {
        l.lease_time_to_live(LeaseTimeToLiveRequest { id, keys })
            .await
    }))?;
    emit(&printer.lease_time_to_live(&resp, keys)?);
    Ok(())
}

pub fn list(rt: &Runtime, g: &mut Globals) -> Result<(), Exit> {
    let printer = client_config(g, EnvScope::Global)?;
    let resp = rt.block_on(lease_call(g, |mut l| async move {
        l.lease_leases(LeaseLeasesRequest {}).await
    }))?;
    emit(&printer.lease_list(&resp)?);
    Ok(())
}

pub fn keep_alive_command(rt: &Runtime, g: &mut Globals, a: &KeepAliveArgs) -> Result<(), Exit> {
    let once = flags::flag_bool(&a.once, "once").map_err(Exit::error)?;
    let args = os_bytes(&a.args);
    let [arg] = args.as_slice() else {
        return Err(Exit::bad_args(
            "lease keep-alive command needs lease ID as argument",
        ));
    };
    let id = lease_from_arg(arg)?;
    let printer = client_config(g, EnvScope::Global)?;
    let first_timeout = first_keep_alive_timeout(g.dial_timeout);
    rt.block_on(async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        if once {
            let resp = keep_alive_once(&client, id).await?;
            emit(&printer.lease_keep_alive(&resp)?);
            return Ok(());
        }
        let (tx, mut rx) = mpsc::channel(16);
        let task = tokio::spawn(keep_alive(client, id, first_timeout, tx));
        while let Some(resp) = rx.recv().await {
            if let Err(e) = printer.lease_keep_alive(&resp).map(|out| emit(&out)) {
                task.abort();
                return Err(e);
            }
        }
        if printer.format == Format::Simple {
            emit(format!("lease {} expired or revoked.\n", gofmt::hex016(id)).as_bytes());
        }
        Ok(())
    })
}

/// clientv3's `KeepAliveOnce`: one request on a fresh stream; a lease the server no longer has
/// is an error.
async fn keep_alive_once(client: &Client, id: i64) -> Result<LeaseKeepAliveResponse, Exit> {
    let (tx, rx) = mpsc::unbounded_channel();
    let _ = tx.send(LeaseKeepAliveRequest { id });
    let mut stream = client
        .lease()
        .lease_keep_alive(UnboundedReceiverStream::new(rx))
        .await
        .map_err(bad_connection)?
        .into_inner();
    match stream.message().await {
        Ok(Some(r)) if r.ttl > 0 => Ok(r),
        Ok(Some(_)) => Err(Exit::new(
            EXIT_BAD_CONNECTION,
            "etcdserver: requested lease not found",
        )),
        Ok(None) => Err(Exit::new(EXIT_BAD_CONNECTION, "EOF")),
        Err(s) => Err(bad_connection(s)),
    }
}

/// Keeps lease `id` alive the way clientv3's lessor does, handing every answer to `tx`: a
/// request right away and then a third of the TTL after each answer, resent every tick while
/// unanswered, on a stream reopened whenever it breaks. Returns (closing `tx`) once the server
/// says the lease is gone, or when no answer came before the lease would have expired (at first:
/// `first_timeout`), or when the receiver is dropped.
pub async fn keep_alive(
    client: Client,
    id: i64,
    first_timeout: Duration,
    tx: mpsc::Sender<LeaseKeepAliveResponse>,
) {
    let mut deadline = Instant::now() + first_timeout;
    let mut next_send = Instant::now();
    loop {
        if Instant::now() >= deadline {
            return;
        }
        let (req_tx, req_rx) = mpsc::unbounded_channel();
        let open = tokio::time::timeout_at(
            deadline,
            client
                .lease()
                .lease_keep_alive(UnboundedReceiverStream::new(req_rx)),
        )
        .await;
        let mut stream = match open {
            Err(_) => return,
            Ok(Err(_)) => {
                tokio::time::sleep(TICK).await;
                continue;
            }
            Ok(Ok(r)) => r.into_inner(),
        };
        loop {
            let wake = next_send.min(deadline);
            tokio::select! {
                msg = stream.message() => match msg {
                    Ok(Some(r)) => {
                        if r.ttl <= 0 {
                            return;
                        }
                        let now = Instant::now();
                        let ttl = Duration::from_secs(r.ttl.unsigned_abs());
                        next_send = now + ttl / 3;
                        deadline = now + ttl;
                        // Like clientv3, a slow reader misses answers rather than stalling.
                        if let Err(mpsc::error::TrySendError::Closed(_)) = tx.try_send(r) {
                            return;
                        }
                    }
                    _ => break,
                },
                _ = tokio::time::sleep_until(wake) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return;
                    }
                    if now >= next_send {
                        if req_tx.send(LeaseKeepAliveRequest { id }).is_err() {
                            break;
                        }
                        next_send = now + TICK;
                    }
                }
                _ = tx.closed() => return,
            }
        }
        tokio::time::sleep(TICK).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_ids_are_hex() {
        assert_eq!(
            lease_from_arg(b"694da23537d953be").ok(),
            Some(0x694da23537d953be)
        );
        assert_eq!(lease_from_arg(b"-1").ok(), Some(-1));
        let e = lease_from_arg(b"zz").unwrap_err();
        assert_eq!(
            (e.code, e.message.as_deref()),
            (
                128,
                Some(
                    r#"bad lease ID arg (strconv.ParseInt: parsing "zz": invalid syntax), expecting ID in Hex"#
                )
            )
        );
        // strconv.ParseInt with base 16 takes no 0x prefix and no 64-bit unsigned values.
        assert!(lease_from_arg(b"0x10").is_err());
        assert!(lease_from_arg(b"ffffffffffffffff").is_err());
    }

    #[test]
    fn first_answer_timeout_follows_the_dial_timeout() {
        assert_eq!(
            first_keep_alive_timeout(2_000_000_000),
            Duration::from_secs(3)
        );
        assert_eq!(first_keep_alive_timeout(0), Duration::from_secs(5));
    }
}
