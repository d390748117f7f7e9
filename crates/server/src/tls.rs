//! TLS on the client port, on rustls: certificates and keys from etcd's flags (or generated with
//! `--auto-tls`), client certificate verification against `--trusted-ca-file` (and
//! `--client-crl-file`), etcd's cipher-suite and version flags, and a listener that hands
//! axum connections whose handshake is done.
//!
//! Certificates are read again when their files change on disk (checked at most once a
//! second, on a handshake), so a rotated certificate is served without a restart; a rotation
//! that leaves unreadable or mismatched files keeps the previous pair and logs why.
//!
//! Must not: know about gRPC or HTTP; whatever runs over the stream is the caller's.

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, CertificateRevocationListDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, WebPkiClientVerifier};
use rustls::sign::CertifiedKey;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// A TLS setting that cannot be used, said in terms of the flag that set it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TlsError(pub String);

/// How long a handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How often, at most, the certificate files are checked for changes.
const RELOAD_CHECK: Duration = Duration::from_secs(1);

/// ring: rustls 0.23.48 deprecates its provider for lacking post-quantum key exchange, which
/// etcd (Go's crypto/tls before 1.24) does not offer either; the alternative, aws-lc-rs, needs a
/// C toolchain beyond cc to build. One place to switch when that changes.
#[allow(deprecated)]
pub fn crypto_provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// The versions `--tls-min-version` and `--tls-max-version` accept (as etcd 3.5 names them).
fn version(name: &str) -> Result<Option<&'static rustls::SupportedProtocolVersion>, String> {
    match name {
        "" => Ok(None),
        "TLS1.2" => Ok(Some(&rustls::version::TLS12)),
        "TLS1.3" => Ok(Some(&rustls::version::TLS13)),
        "TLS1.0" | "TLS1.1" => Err(format!(
            "TLS version {name} is not supported (only TLS1.2 and TLS1.3 are)"
        )),
        other => Err(format!(
            "unexpected TLS version {other:?} (use TLS1.2 or TLS1.3)"
        )),
    }
}

/// Checks `--tls-min-version` / `--tls-max-version`; returns the versions to offer.
pub fn check_versions(
    min: &str,
    max: &str,
) -> Result<Vec<&'static rustls::SupportedProtocolVersion>, String> {
    let lo = version(min)?.map_or(0, |v| if v == &rustls::version::TLS12 { 0 } else { 1 });
    let hi = version(max)?.map_or(1, |v| if v == &rustls::version::TLS12 { 0 } else { 1 });
    if lo > hi {
        return Err(format!(
            "min version ({min}) is greater than max version ({max})"
        ));
    }
    let all = [&rustls::version::TLS12, &rustls::version::TLS13];
    Ok(all[lo..=hi].to_vec())
}

/// Parses `--cipher-suites` (IANA names, as Go's crypto/tls spells them). Empty: the library's
/// defaults. TLS 1.3's suites are not configurable, as in Go; the list applies to TLS 1.2.
pub fn cipher_suites(list: &str) -> Result<Vec<rustls::SupportedCipherSuite>, String> {
    use rustls::crypto::ring::cipher_suite as cs;
    let names = crate::config::split_list(list);
    if names.is_empty() {
        return Ok(rustls::crypto::ring::DEFAULT_CIPHER_SUITES.to_vec());
    }
    let mut out = vec![
        cs::TLS13_AES_128_GCM_SHA256,
        cs::TLS13_AES_256_GCM_SHA384,
        cs::TLS13_CHACHA20_POLY1305_SHA256,
    ];
    for name in names {
        let suite = match name.as_str() {
            "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256" => {
                cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
            }
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256" => cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384" => {
                cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
            }
            "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384" => cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305"
            | "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256" => {
                cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
            }
            "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305"
            | "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256" => {
                cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            }
            other => {
                return Err(format!(
                    "unexpected TLS cipher suite {other:?} (supported: the ECDHE AES-GCM and \
                     ChaCha20-Poly1305 suites)"
                ));
            }
        };
        if !out.contains(&suite) {
            out.push(suite);
        }
    }
    Ok(out)
}

fn read_certs(path: &Path, flag: &str) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| TlsError(format!("--{flag} {}: {e}", path.display())))?;
    if certs.is_empty() {
        return Err(TlsError(format!(
            "--{flag} {}: no certificate found",
            path.display()
        )));
    }
    Ok(certs)
}

fn read_key(path: &Path, prefix: &str) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError(format!("--{prefix}key-file {}: {e}", path.display())))
}

/// The certificate and key as they are on disk now, checked to belong together. `prefix` is
/// `""` for the client side's flags and `"peer-"` for the peer side's.
fn load_pair(cert: &Path, key: &Path, prefix: &str) -> Result<Arc<CertifiedKey>, TlsError> {
    let chain = read_certs(cert, &format!("{prefix}cert-file"))?;
    let key = read_key(key, prefix)?;
    let provider = crypto_provider();
    let certified = CertifiedKey::from_der(chain, key, &provider).map_err(|e| {
        TlsError(format!(
            "--{prefix}cert-file {} and --{prefix}key-file: {e}",
            cert.display()
        ))
    })?;
    Ok(Arc::new(certified))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// Serves the certificate in `cert`/`key`, reading them again when either file changes.
#[derive(Debug)]
struct ReloadingCert {
    cert: PathBuf,
    key: PathBuf,
    prefix: &'static str,
    state: parking_lot::Mutex<ReloadState>,
}

#[derive(Debug)]
struct ReloadState {
    current: Arc<CertifiedKey>,
    stamps: (Option<SystemTime>, Option<SystemTime>),
    checked: Instant,
}

impl ReloadingCert {
    fn new(cert: PathBuf, key: PathBuf, prefix: &'static str) -> Result<ReloadingCert, TlsError> {
        let current = load_pair(&cert, &key, prefix)?;
        let stamps = (modified(&cert), modified(&key));
        Ok(ReloadingCert {
            cert,
            key,
            prefix,
            state: parking_lot::Mutex::new(ReloadState {
                current,
                stamps,
                checked: Instant::now(),
            }),
        })
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let mut s = self.state.lock();
        if s.checked.elapsed() >= RELOAD_CHECK {
            s.checked = Instant::now();
            let stamps = (modified(&self.cert), modified(&self.key));
            if stamps != s.stamps {
                match load_pair(&self.cert, &self.key, self.prefix) {
                    Ok(fresh) => {
                        let side = if self.prefix.is_empty() {
                            "client"
                        } else {
                            "peer"
                        };
                        tracing::info!(cert = %self.cert.display(), "reloaded the {side} TLS certificate");
                        s.current = fresh;
                        s.stamps = stamps;
                    }
                    // Half-written during a rotation, most likely: keep serving the old pair and
                    // look again at the next check.
                    Err(e) => tracing::warn!(error = %e, "keeping the previous TLS certificate"),
                }
            }
        }
        Some(s.current.clone())
    }
}

/// One side's flags (client or peer), as [`ClientTls::side`] reads them.
struct SideFlags<'a> {
    prefix: &'static str,
    cert: &'a str,
    key: &'a str,
    trusted_ca: &'a str,
    client_cert_auth: bool,
    crl: &'a str,
    auto_tls: bool,
    /// The side's URLs: their hosts go into a generated certificate.
    urls: Vec<String>,
    /// `client` or `peer`: the fixtures directory, and the word in the error.
    fixtures: &'static str,
}

/// The TLS settings of the client port or of the peer port, from the configuration.
pub struct ClientTls {
    /// `""` for the client port's flags, `"peer-"` for the peer port's (in error messages).
    pub prefix: &'static str,
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
    /// CA bundle client certificates must chain to; set, it requires one (as etcd).
    pub trusted_ca_file: Option<PathBuf>,
    pub client_cert_auth: bool,
    pub crl_file: Option<PathBuf>,
    pub cipher_suites: String,
    pub min_version: String,
    pub max_version: String,
    /// `--peer-cert-allowed-cn` / `-hostname`: checked in the handshake on the certificates of
    /// members that dial in (as etcd's server side does; a refused member sees a bad_certificate
    /// alert).
    pub identity: Option<IdentityCheck>,
}

impl ClientTls {
    /// The client side, from etcd's flags; with `--auto-tls` and no certificate given, a
    /// self-signed pair is made (once) under `<data-dir>/fixtures/client`, as etcd does.
    pub fn from_config(config: &crate::Config) -> Result<ClientTls, TlsError> {
        ClientTls::side(
            config,
            SideFlags {
                prefix: "",
                cert: &config.cert_file,
                key: &config.key_file,
                trusted_ca: &config.trusted_ca_file,
                client_cert_auth: config.client_cert_auth,
                crl: &config.client_crl_file,
                auto_tls: config.auto_tls,
                urls: crate::config::split_list(&config.listen_client_urls),
                fixtures: "client",
            },
        )
    }

    /// The peer side, from etcd's `--peer-*` flags; `--peer-auto-tls` makes a pair under
    /// `<data-dir>/fixtures/peer`.
    pub fn peer_from_config(config: &crate::Config) -> Result<ClientTls, TlsError> {
        let mut urls = crate::config::split_list(&config.listen_peer_urls);
        urls.extend(crate::config::split_list(
            &config.initial_advertise_peer_urls,
        ));
        ClientTls::side(
            config,
            SideFlags {
                prefix: "peer-",
                cert: &config.peer_cert_file,
                key: &config.peer_key_file,
                trusted_ca: &config.peer_trusted_ca_file,
                client_cert_auth: config.peer_client_cert_auth,
                crl: &config.peer_crl_file,
                auto_tls: config.peer_auto_tls,
                urls,
                fixtures: "peer",
            },
        )
    }

    fn side(config: &crate::Config, f: SideFlags<'_>) -> Result<ClientTls, TlsError> {
        let (cert_file, key_file) = if f.cert.is_empty() || f.key.is_empty() {
            if !f.auto_tls {
                let (p, side) = (f.prefix, f.fixtures);
                return Err(TlsError(format!(
                    "TLS key/cert (--{p}cert-file, --{p}key-file) must be provided for {side} urls with HTTPS scheme"
                )));
            }
            let hosts: Vec<String> = f.urls.iter().filter_map(|u| url_host(u)).collect();
            self_signed(
                &config.data_dir().join("fixtures").join(f.fixtures),
                &hosts,
                config.self_signed_cert_validity,
            )?
        } else {
            (PathBuf::from(f.cert), PathBuf::from(f.key))
        };
        let non_empty = |s: &str| (!s.is_empty()).then(|| PathBuf::from(s));
        Ok(ClientTls {
            prefix: f.prefix,
            cert_file,
            key_file,
            trusted_ca_file: non_empty(f.trusted_ca),
            client_cert_auth: f.client_cert_auth,
            crl_file: non_empty(f.crl),
            cipher_suites: config.cipher_suites.clone(),
            min_version: config.tls_min_version.clone(),
            max_version: config.tls_max_version.clone(),
            identity: if f.prefix == "peer-" {
                peer_identity_check(config)
            } else {
                None
            },
        })
    }

    /// How this member dials other members: its peer certificate as the client certificate,
    /// servers verified against `--peer-trusted-ca-file` (not at all with `--peer-auto-tls`,
    /// whose certificates no one can verify, as etcd).
    pub fn peer_dialer(&self, auto: bool) -> Result<Arc<rustls::ClientConfig>, TlsError> {
        cairn_client::TlsOptions {
            ca_file: self.trusted_ca_file.clone(),
            cert_file: Some(self.cert_file.clone()),
            key_file: Some(self.key_file.clone()),
            skip_verify: auto && self.trusted_ca_file.is_none(),
        }
        .client_config()
        .map_err(|e| TlsError(format!("peer TLS: {e}")))
    }

    /// A rustls server configuration: ALPN h2 and http/1.1 (gRPC and the HTTP endpoints share
    /// the port), client certificates required when a trusted CA is given.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let versions = check_versions(&self.min_version, &self.max_version).map_err(TlsError)?;
        let mut provider = crypto_provider();
        provider.cipher_suites = cipher_suites(&self.cipher_suites).map_err(TlsError)?;
        let provider = Arc::new(provider);
        let builder = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_protocol_versions(&versions)
            .map_err(|e| TlsError(format!("TLS settings: {e}")))?;
        let builder = match (&self.trusted_ca_file, self.client_cert_auth) {
            (Some(ca), _) => {
                let mut roots = rustls::RootCertStore::empty();
                let prefix = self.prefix;
                let trusted = read_certs(ca, &format!("{prefix}trusted-ca-file"))?;
                for c in trusted.iter().cloned() {
                    roots.add(c).map_err(|e| {
                        TlsError(format!("--{prefix}trusted-ca-file {}: {e}", ca.display()))
                    })?;
                }
                let mut verifier =
                    WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider);
                if let Some(crl) = &self.crl_file {
                    let flag = if prefix.is_empty() {
                        "client-crl-file"
                    } else {
                        "peer-crl-file"
                    };
                    let crls = read_crls(crl)
                        .map_err(|e| TlsError(format!("--{flag} {}: {e}", crl.display())))?;
                    verifier = verifier.with_crls(crls);
                }
                let verifier = verifier.build().map_err(|e| {
                    TlsError(format!("--{prefix}trusted-ca-file {}: {e}", ca.display()))
                })?;
                builder.with_client_cert_verifier(Arc::new(TrustedItself {
                    inner: verifier,
                    trusted,
                    identity: self.identity.clone(),
                }))
            }
            (None, true) => {
                let p = self.prefix;
                return Err(TlsError(format!(
                    "--{p}client-cert-auth needs --{p}trusted-ca-file: there is nothing to verify client certificates against"
                )));
            }
            (None, false) => builder.with_no_client_auth(),
        };
        let resolver =
            ReloadingCert::new(self.cert_file.clone(), self.key_file.clone(), self.prefix)?;
        let mut config = builder.with_cert_resolver(Arc::new(resolver));
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }
}

/// How this member dials the others: `None` unless its peer URLs are `https://`.
pub fn peer_dialer(config: &crate::Config) -> Result<Option<Arc<rustls::ClientConfig>>, TlsError> {
    if !config.peer_tls() {
        return Ok(None);
    }
    ClientTls::peer_from_config(config)?
        .peer_dialer(config.peer_auto_tls)
        .map(Some)
}

/// `host` of `https://host:port`.
fn url_host(url: &str) -> Option<String> {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))?;
    let (host, _) = rest.trim_end_matches('/').rsplit_once(':')?;
    Some(
        host.trim_start_matches('[')
            .trim_end_matches(']')
            .to_string(),
    )
}

/// A self-signed certificate for `hosts` in `dir` (cert.pem, key.pem), made if not there yet.
fn self_signed(dir: &Path, hosts: &[String], years: u32) -> Result<(PathBuf, PathBuf), TlsError> {
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    if cert.exists() && key.exists() {
        return Ok((cert, key));
    }
    let io = |e: std::io::Error| TlsError(format!("--auto-tls: {}: {e}", dir.display()));
    std::fs::create_dir_all(dir).map_err(io)?;
    let mut names = hosts.to_vec();
    if names.is_empty() {
        names.push("localhost".into());
    }
    let mut params =
        rcgen::CertificateParams::new(names).map_err(|e| TlsError(format!("--auto-tls: {e}")))?;
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::OrganizationName, "cairn");
    params.distinguished_name = dn;
    let now = time::OffsetDateTime::now_utc();
    params.not_before = now;
    params.not_after = now + time::Duration::days(365 * i64::from(years.max(1)));
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![
        rcgen::ExtendedKeyUsagePurpose::ServerAuth,
        rcgen::ExtendedKeyUsagePurpose::ClientAuth,
    ];
    let pair = rcgen::KeyPair::generate().map_err(|e| TlsError(format!("--auto-tls: {e}")))?;
    let made = params
        .self_signed(&pair)
        .map_err(|e| TlsError(format!("--auto-tls: {e}")))?;
    std::fs::write(&key, pair.serialize_pem()).map_err(io)?;
    std::fs::write(&cert, made.pem()).map_err(io)?;
    tracing::info!(dir = %dir.display(), "generated a self-signed client certificate (--auto-tls)");
    Ok((cert, key))
}

/// A check of the verified client certificate chain, after the handshake (etcd's
/// `--peer-cert-allowed-cn` / `--peer-cert-allowed-hostname`).
pub type IdentityCheck = Arc<dyn Fn(&[CertificateDer<'_>]) -> Result<(), String> + Send + Sync>;

/// The common name of a certificate's subject, if it has one.
pub fn common_name(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?;
    cn.as_str().ok().map(str::to_string)
}

/// The peer side's identity check, if `--peer-cert-allowed-cn` or `-hostname` is set.
pub fn peer_identity_check(config: &crate::Config) -> Option<IdentityCheck> {
    let cn = config.peer_cert_allowed_cn.clone();
    let hostname = config.peer_cert_allowed_hostname.clone();
    if !cn.is_empty() {
        return Some(Arc::new(move |chain: &[CertificateDer<'_>]| {
            let got = chain.first().and_then(common_name);
            if got.as_deref() == Some(cn.as_str()) {
                Ok(())
            } else {
                Err(format!(
                    "certificate CN {got:?} is not the allowed CN {cn:?} (--peer-cert-allowed-cn)"
                ))
            }
        }));
    }
    if !hostname.is_empty() {
        return Some(Arc::new(move |chain: &[CertificateDer<'_>]| {
            let name =
                rustls::pki_types::ServerName::try_from(hostname.as_str()).map_err(|_| {
                    format!("--peer-cert-allowed-hostname {hostname:?} is not a host name")
                })?;
            let leaf = chain
                .first()
                .ok_or_else(|| "no client certificate".to_string())?;
            webpki::EndEntityCert::try_from(leaf)
                .and_then(|c| c.verify_is_valid_for_subject_name(&name))
                .map_err(|e| {
                    format!(
                        "certificate is not valid for the allowed hostname {hostname:?} \
                         (--peer-cert-allowed-hostname): {e}"
                    )
                })
        }));
    }
    None
}

/// A listener whose connections have finished the TLS handshake. Handshakes run in their own
/// tasks, so one slow or silent client holds up nobody else; failed ones are logged and dropped.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// `side` names the connections in log lines ("client" or "peer").
    pub fn new(
        tcp: TcpListener,
        config: Arc<rustls::ServerConfig>,
        side: &'static str,
    ) -> std::io::Result<Self> {
        let local = tcp.local_addr()?;
        let acceptor = TlsAcceptor::from(config);
        let (tx, ready) = mpsc::channel(1024);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = match tcp.accept().await {
                    Ok(c) => c,
                    Err(e) => {
                        // Out of descriptors and the like: back off rather than spin.
                        tracing::warn!(error = %e, "accepting a {side} connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                if tx.is_closed() {
                    return;
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::warn!(%peer, error = %e, "rejected a {side} connection: TLS handshake failed");
                        }
                        Err(_) => {
                            tracing::warn!(%peer, "rejected a {side} connection: TLS handshake timed out");
                        }
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }
}

/// The common name of a client connection's verified certificate, which is the caller's user
/// name under `--client-cert-auth` (etcd's AuthInfoFromTLS); attached to every request of the
/// connection.
#[derive(Debug, Clone)]
pub struct ClientCertName(pub Option<String>);

impl ClientCertName {
    /// The name of a TLS connection's verified client certificate, if it showed one.
    pub fn of(io: &TlsStream<TcpStream>) -> ClientCertName {
        let name = io
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|leaf| common_name(leaf));
        ClientCertName(name)
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(c) => c,
            // The accept task only ends when this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// The revocation lists in a CRL file, PEM or DER as Go's x509.ParseCRL takes them. A file
/// that holds none is an error: an empty list would let every revoked certificate in.
fn read_crls(path: &Path) -> Result<Vec<CertificateRevocationListDer<'static>>, String> {
    let bytes = std::fs::read(path).map_err(|e| e.to_string())?;
    let pem: Vec<_> = CertificateRevocationListDer::pem_slice_iter(&bytes)
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if !pem.is_empty() {
        return Ok(pem);
    }
    // DER: one CertificateList, an ASN.1 SEQUENCE.
    if bytes.first() == Some(&0x30) {
        return Ok(vec![CertificateRevocationListDer::from(bytes)]);
    }
    Err("no certificate revocation list in it (neither PEM nor DER)".into())
}

/// Client certificate verification as Go's: WebPKI's, and besides it a certificate that is
/// itself one of the trusted CA certificates (a self-signed CA certificate used as a client's,
/// which Go accepts and WebPKI refuses as "CA used as end entity"). The client still proves it
/// holds the key in the handshake; the certificate must be within its validity period.
struct TrustedItself {
    inner: Arc<dyn rustls::server::danger::ClientCertVerifier>,
    trusted: Vec<CertificateDer<'static>>,
    /// The allowed CN or hostname of peers, if one is set.
    identity: Option<IdentityCheck>,
}

impl std::fmt::Debug for TrustedItself {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustedItself")
            .field("trusted", &self.trusted.len())
            .field("identity", &self.identity.is_some())
            .finish()
    }
}

/// A certificate that verified but is not the allowed CN or hostname: refused in the
/// handshake with a bad_certificate alert (what Go's server sends), named in the log with
/// etcd's words.
fn refuse_identity(
    check: Option<&IdentityCheck>,
    chain: &[CertificateDer<'_>],
) -> Result<(), rustls::Error> {
    let Some(check) = check else {
        return Ok(());
    };
    check(chain).map_err(|reason| {
        tracing::warn!(%reason, "client certificate authentication failed");
        rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
    })
}

impl rustls::server::danger::ClientCertVerifier for TrustedItself {
    fn offer_client_auth(&self) -> bool {
        self.inner.offer_client_auth()
    }

    fn client_auth_mandatory(&self) -> bool {
        self.inner.client_auth_mandatory()
    }

    fn root_hint_subjects(&self) -> &[rustls::DistinguishedName] {
        self.inner.root_hint_subjects()
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::server::danger::ClientCertVerified, rustls::Error> {
        let verified = match self
            .inner
            .verify_client_cert(end_entity, intermediates, now)
        {
            Ok(verified) => verified,
            Err(refused) => {
                let is_trusted = self
                    .trusted
                    .iter()
                    .any(|t| t.as_ref() == end_entity.as_ref());
                if !(is_trusted && within_validity(end_entity, now)) {
                    return Err(refused);
                }
                rustls::server::danger::ClientCertVerified::assertion()
            }
        };
        refuse_identity(self.identity.as_ref(), std::slice::from_ref(end_entity))?;
        Ok(verified)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

fn within_validity(cert: &CertificateDer<'_>, now: rustls::pki_types::UnixTime) -> bool {
    let Ok((_, parsed)) = x509_parser::parse_x509_certificate(cert.as_ref()) else {
        return false;
    };
    let Ok(now) = i64::try_from(now.as_secs()) else {
        return false;
    };
    let validity = parsed.validity();
    validity.not_before.timestamp() <= now && now <= validity.not_after.timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_and_suites_follow_etcds_flags() {
        assert_eq!(check_versions("TLS1.2", "").map(|v| v.len()), Ok(2));
        assert_eq!(check_versions("TLS1.3", "").map(|v| v.len()), Ok(1));
        assert_eq!(check_versions("TLS1.2", "TLS1.2").map(|v| v.len()), Ok(1));
        assert!(
            check_versions("TLS1.3", "TLS1.2")
                .unwrap_err()
                .contains("greater than max")
        );
        assert!(check_versions("TLS1.1", "").is_err());
        assert!(check_versions("SSL3", "").is_err());
        assert!(!cipher_suites("").unwrap().is_empty());
        let two = cipher_suites(
            "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305",
        )
        .unwrap();
        assert_eq!(two.len(), 5, "three TLS 1.3 suites and the two named");
        assert!(
            cipher_suites("TLS_RSA_WITH_RC4_128_SHA")
                .unwrap_err()
                .contains("TLS_RSA_WITH_RC4_128_SHA")
        );
    }

    #[test]
    fn auto_tls_makes_a_pair_once_and_it_loads() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path().join("fixtures/client");
        let (c, k) = self_signed(&d, &["127.0.0.1".into(), "localhost".into()], 1).unwrap();
        let first = std::fs::read(&c).unwrap();
        load_pair(&c, &k, "").unwrap();
        let again = self_signed(&d, &["127.0.0.1".into()], 1).unwrap();
        assert_eq!(again, (c.clone(), k));
        assert_eq!(
            std::fs::read(&c).unwrap(),
            first,
            "an existing pair is kept"
        );
    }

    #[test]
    fn allowed_cn_and_hostname_checks() {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["m1.example".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "member-1");
        let cert = params.self_signed(&key).unwrap();
        let der = cert.der().clone();
        assert_eq!(common_name(&der).as_deref(), Some("member-1"));
        let chain = [der];

        let mut config = crate::Config::default();
        assert!(peer_identity_check(&config).is_none());
        config.peer_cert_allowed_cn = "member-1".into();
        assert!(peer_identity_check(&config).unwrap()(&chain).is_ok());
        config.peer_cert_allowed_cn = "member-2".into();
        let e = peer_identity_check(&config).unwrap()(&chain).unwrap_err();
        assert!(e.contains("member-1") && e.contains("member-2"), "{e}");
        config.peer_cert_allowed_cn.clear();
        config.peer_cert_allowed_hostname = "m1.example".into();
        assert!(peer_identity_check(&config).unwrap()(&chain).is_ok());
        config.peer_cert_allowed_hostname = "m2.example".into();
        assert!(peer_identity_check(&config).unwrap()(&chain).is_err());
        assert!(peer_identity_check(&config).unwrap()(&[]).is_err());
    }

    #[test]
    fn bad_files_are_refused_with_the_flag_named() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let e = load_pair(&junk, &junk, "").unwrap_err().to_string();
        assert!(e.contains("--cert-file"), "{e}");
        let missing = dir.path().join("missing.pem");
        let e = load_pair(&missing, &missing, "peer-")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("--peer-cert-file") && e.contains("missing.pem"),
            "{e}"
        );
    }

    fn ca(name: &str) -> (rcgen::Certificate, rcgen::KeyPair) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(vec!["localhost".to_string()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::DigitalSignature,
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
        ];
        (params.self_signed(&key).unwrap(), key)
    }

    #[test]
    fn crl_files_in_pem_or_der() {
        let (ca_cert, ca_key) = ca("ca");
        let crl = rcgen::CertificateRevocationListParams {
            this_update: rcgen::date_time_ymd(2024, 1, 1),
            next_update: rcgen::date_time_ymd(2024, 2, 1),
            crl_number: rcgen::SerialNumber::from(1u64),
            issuing_distribution_point: None,
            revoked_certs: vec![rcgen::RevokedCertParams {
                serial_number: rcgen::SerialNumber::from(7u64),
                revocation_time: rcgen::date_time_ymd(2024, 1, 1),
                reason_code: None,
                invalidity_date: None,
            }],
            key_identifier_method: rcgen::KeyIdMethod::Sha256,
        }
        .signed_by(&ca_cert, &ca_key)
        .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let der = dir.path().join("revoke.crl");
        std::fs::write(&der, crl.der()).unwrap();
        let pem = dir.path().join("revoke.pem");
        std::fs::write(&pem, crl.pem().unwrap()).unwrap();
        assert_eq!(read_crls(&der).unwrap()[0].as_ref(), crl.der().as_ref());
        assert_eq!(read_crls(&pem).unwrap()[0].as_ref(), crl.der().as_ref());
        let junk = dir.path().join("junk");
        std::fs::write(&junk, "no list here").unwrap();
        assert!(
            read_crls(&junk)
                .unwrap_err()
                .contains("neither PEM nor DER")
        );
    }

    #[test]
    fn a_trusted_ca_certificate_may_be_the_client_certificate() {
        use rustls::server::danger::ClientCertVerifier;
        let (trusted, _) = ca("root");
        let (stranger, _) = ca("root");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(trusted.der().clone()).unwrap();
        let inner = WebPkiClientVerifier::builder_with_provider(
            Arc::new(roots),
            Arc::new(crypto_provider()),
        )
        .build()
        .unwrap();
        let verifier = TrustedItself {
            inner: inner.clone(),
            trusted: vec![trusted.der().clone()],
            identity: None,
        };
        let now = rustls::pki_types::UnixTime::now();
        assert!(verifier.verify_client_cert(trusted.der(), &[], now).is_ok());
        assert!(
            verifier
                .verify_client_cert(stranger.der(), &[], now)
                .is_err(),
            "same name, other key: not trusted"
        );
        let far = rustls::pki_types::UnixTime::since_unix_epoch(Duration::from_secs(1 << 40));
        assert!(
            verifier
                .verify_client_cert(trusted.der(), &[], far)
                .is_err()
        );

        // An allowed CN is checked in the handshake: refused with a bad_certificate alert.
        let mut config = crate::Config {
            peer_cert_allowed_cn: "someone-else".into(),
            ..Default::default()
        };
        let strict = TrustedItself {
            inner,
            trusted: vec![trusted.der().clone()],
            identity: peer_identity_check(&config),
        };
        let refused = strict
            .verify_client_cert(trusted.der(), &[], now)
            .unwrap_err();
        assert_eq!(
            refused,
            rustls::Error::InvalidCertificate(rustls::CertificateError::NotValidForName)
        );
        assert_eq!(
            rustls::AlertDescription::from(rustls::CertificateError::NotValidForName),
            rustls::AlertDescription::BadCertificate
        );
        config.peer_cert_allowed_cn = "root".into();
        let allowed = TrustedItself {
            identity: peer_identity_check(&config),
            ..strict
        };
        assert!(allowed.verify_client_cert(trusted.der(), &[], now).is_ok());
    }
}
