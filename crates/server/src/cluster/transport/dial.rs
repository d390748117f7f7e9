//! Keeping one Raft connection open to a peer: dial (over TLS when its URL and this member's
//! peer TLS say so), introduce this member, then feed the connection from the peer's
//! [`Link`] and watch it with pings until it breaks; redial with backoff.

use super::frame::{self, MAGIC, Reply};
use super::link::{Link, Writer};
use super::{MEMBER_REMOVED, PeerTransport};
use cairn_proto::cairnpb::PeerHello;
use prost::Message;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};

const BACKOFF_MIN: Duration = Duration::from_millis(50);
const BACKOFF_MAX: Duration = Duration::from_secs(1);
pub(super) const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the peer may take to answer the hello.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// How often an open connection is pinged, so that a peer that vanished without closing it
/// (a machine gone, a partition) is noticed within `--raft-read-timeout`; at least four pings
/// fit in that time.
const PING_INTERVAL: Duration = Duration::from_secs(1);
/// Largest reply frame: a refusal's reason.
const MAX_REPLY_BYTES: usize = 64 * 1024;

/// Why a connection ended, and whether it had been accepted by the peer.
struct Ended {
    accepted: bool,
    reason: String,
}

impl Ended {
    fn before(reason: impl Into<String>) -> Ended {
        Ended {
            accepted: false,
            reason: reason.into(),
        }
    }
    fn after(reason: impl Into<String>) -> Ended {
        Ended {
            accepted: true,
            reason: reason.into(),
        }
    }
}

/// Keeps a connection to `peer` open until its link closes.
pub(super) async fn run(t: PeerTransport, peer: u64, urls: Vec<String>, link: Arc<Link>) {
    let mut backoff = BACKOFF_MIN;
    let mut attempt = 0usize;
    // Logged once per change, not once per retry.
    let mut last_reason: Option<String> = None;
    loop {
        if link.is_closed() {
            // The member was removed (or its URLs changed and a new task took over).
            t.mark_inactive(peer, &link);
            return;
        }
        let Some(url) = urls.get(attempt % urls.len().max(1)).cloned() else {
            tracing::error!(peer = format!("{peer:x}"), "peer has no URL to dial");
            return;
        };
        attempt += 1;
        let ended = connect_once(&t, peer, &url, &link).await;
        link.disconnected();
        t.mark_inactive(peer, &link);
        let reason = super::go_tls_words(ended.reason);
        if ended.accepted || last_reason.as_deref() != Some(reason.as_str()) {
            tracing::warn!(peer = format!("{peer:x}"), %url, %reason, "peer became inactive");
            last_reason = Some(reason);
        }
        if !link.is_closed() {
            t.report_unreachable(peer);
        }
        if ended.accepted {
            backoff = BACKOFF_MIN;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}

/// One connection's life.
async fn connect_once(t: &PeerTransport, peer: u64, url: &str, link: &Arc<Link>) -> Ended {
    let uri: tonic::codegen::http::Uri = match url.parse() {
        Ok(uri) => uri,
        Err(e) => return Ended::before(format!("bad peer URL: {e}")),
    };
    let Some(host) = uri.host() else {
        return Ended::before("bad peer URL: no host");
    };
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let port = uri.port_u16().unwrap_or(2380);
    let tcp = match tokio::time::timeout(
        DIAL_TIMEOUT,
        tokio::net::TcpStream::connect((host.as_str(), port)),
    )
    .await
    {
        Ok(Ok(tcp)) => tcp,
        Ok(Err(e)) => return Ended::before(format!("dial: {e}")),
        Err(_) => return Ended::before("dial: timed out"),
    };
    let _ = tcp.set_nodelay(true);
    let tls = match &t.dialer {
        Some(config) if crate::config::is_tls_url(url) => Some(config.clone()),
        _ => None,
    };
    match tls {
        None => {
            let (mut r, mut w) = tcp.into_split();
            if let Err(e) = introduce(t, peer, &mut r, &mut w).await {
                return e;
            }
            let w = Arc::new(w);
            serve(
                t,
                peer,
                url,
                link,
                r,
                Writer::<tokio::io::Empty>::Plain(w.clone()),
                Some(w),
            )
            .await
        }
        Some(config) => {
            let name = match rustls::pki_types::ServerName::try_from(host) {
                Ok(name) => name,
                Err(_) => return Ended::before("bad peer URL: host is not a valid name"),
            };
            let connector = tokio_rustls::TlsConnector::from(config);
            let tls = match tokio::time::timeout(DIAL_TIMEOUT, connector.connect(name, tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => return Ended::before(format!("dial: {}", super::error_chain(&e))),
                Err(_) => return Ended::before("dial: TLS handshake timed out"),
            };
            let (mut r, mut w) = tokio::io::split(tls);
            if let Err(e) = introduce(t, peer, &mut r, &mut w).await {
                return e;
            }
            serve(t, peer, url, link, r, Writer::Stream(w), None).await
        }
    }
}

/// Sends the hello and waits for the peer's verdict.
async fn introduce<R, W>(t: &PeerTransport, peer: u64, r: &mut R, w: &mut W) -> Result<(), Ended>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let hello = PeerHello {
        cluster_id: t.cluster_id,
        from: t.me,
        to: peer,
    }
    .encode_to_vec();
    let mut opening = MAGIC.to_vec();
    opening.extend_from_slice(&frame::header(hello.len()));
    opening.extend_from_slice(&hello);
    let said = async {
        w.write_all(&opening).await?;
        w.flush().await?;
        frame::read(r, MAX_REPLY_BYTES).await
    };
    let answer = match tokio::time::timeout(HELLO_TIMEOUT, said).await {
        Ok(Ok(Some(answer))) => answer,
        Ok(Ok(None)) => return Err(Ended::before("the peer closed the connection")),
        Ok(Err(e)) => return Err(Ended::before(format!("hello: {e}"))),
        Err(_) => return Err(Ended::before("hello: the peer did not answer")),
    };
    match Reply::decode(&answer) {
        Ok(Reply::Accepted) => Ok(()),
        Ok(other) => Err(refused(t, peer, other)),
        Err(e) => Err(Ended::before(format!("hello: {e}"))),
    }
}

fn refused(t: &PeerTransport, peer: u64, reply: Reply) -> Ended {
    match reply {
        Reply::Removed => {
            tracing::error!(peer = format!("{peer:x}"), "{MEMBER_REMOVED}");
            t.removed.notify_one();
            Ended::before(MEMBER_REMOVED)
        }
        Reply::Refused(why) => Ended::before(why),
        other => Ended::before(format!("unexpected reply {other:?}")),
    }
}

/// Runs an accepted connection: the writer task, the pings, and the reader of the peer's
/// replies, until one of them ends it.
async fn serve<R, W>(
    t: &PeerTransport,
    peer: u64,
    url: &str,
    link: &Arc<Link>,
    mut r: R,
    writer: Writer<W>,
    direct: Option<Arc<tokio::net::tcp::OwnedWriteHalf>>,
) -> Ended
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    tracing::info!(peer = format!("{peer:x}"), %url, "peer became active");
    t.mark_active(peer, link);
    let generation = link.connected(direct);
    let writing = link.write(writer, generation, t.timeouts.write);
    let silence = t.timeouts.read;
    let pinging = async {
        let every = PING_INTERVAL.min(silence / 4).max(Duration::from_millis(1));
        let mut tick = tokio::time::interval(every);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            link.send(bytes::Bytes::new());
        }
    };
    let replies = async {
        loop {
            let reply = tokio::time::timeout(silence, frame::read(&mut r, MAX_REPLY_BYTES));
            match reply.await {
                Ok(Ok(Some(reply))) => match Reply::decode(&reply) {
                    Ok(Reply::Pong) => {}
                    Ok(other) => return refused(t, peer, other),
                    Err(e) => return Ended::after(e.to_string()),
                },
                Ok(Ok(None)) => return Ended::after("connection closed by the peer"),
                Ok(Err(e)) => return Ended::after(e.to_string()),
                // Pings wait behind a long backlog: a link still draining it is alive.
                Err(_) if link.drained_within(silence) => {}
                Err(_) => {
                    return Ended::after(format!(
                        "the peer stopped answering pings for {silence:?}"
                    ));
                }
            }
        }
    };
    tokio::select! {
        written = writing => match written {
            Ok(()) => Ended::after("connection replaced"),
            Err(e) => Ended::after(format!("write: {e}")),
        },
        ended = replies => ended,
        () = pinging => Ended::after("pings stopped"),
    }
}
