//! TLS for client connections, on rustls, with etcdctl's options: a CA bundle to verify the
//! server against (`--cacert`; the system's bundle without it), a client certificate and key
//! (`--cert`, `--key`), and `--insecure-skip-tls-verify`.

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where system CA bundles are on common Linux distributions (Go's crypto/x509 looks there too).
const SYSTEM_BUNDLES: &[&str] = &[
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
    "/etc/ssl/ca-bundle.pem",
    "/etc/ssl/cert.pem",
];

/// How to secure connections to the servers.
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// CA bundle to verify servers with; `None`: the system's.
    pub ca_file: Option<PathBuf>,
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// Accept any server certificate (etcdctl's `--insecure-skip-tls-verify`).
    pub skip_verify: bool,
}

/// ring: see `cairn_server::tls::crypto_provider` for why.
#[allow(deprecated)]
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn certs(path: &Path, what: &str) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{what} {}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{what} {}: no certificate found", path.display()));
    }
    Ok(certs)
}

impl TlsOptions {
    /// The rustls configuration these options describe (ALPN h2, as gRPC needs).
    pub fn client_config(&self) -> Result<Arc<rustls::ClientConfig>, String> {
        let provider = provider();
        let builder = rustls::ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?;
        let builder = if self.skip_verify {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
        } else {
            let mut roots = rustls::RootCertStore::empty();
            match &self.ca_file {
                Some(ca) => {
                    for c in certs(ca, "CA file")? {
                        roots
                            .add(c)
                            .map_err(|e| format!("CA file {}: {e}", ca.display()))?;
                    }
                }
                None => {
                    let bundle = std::env::var_os("SSL_CERT_FILE")
                        .map(PathBuf::from)
                        .into_iter()
                        .chain(SYSTEM_BUNDLES.iter().map(PathBuf::from))
                        .find(|p| p.exists());
                    if let Some(bundle) = bundle {
                        // A system bundle may hold a certificate webpki cannot use; skip it.
                        for c in certs(&bundle, "system CA bundle")? {
                            let _ = roots.add(c);
                        }
                    }
                }
            }
            builder.with_root_certificates(roots)
        };
        let mut config = match (&self.cert_file, &self.key_file) {
            (Some(cert), Some(key)) => {
                let chain = certs(cert, "certificate")?;
                let key = PrivateKeyDer::from_pem_file(key)
                    .map_err(|e| format!("key file {}: {e}", key.display()))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| format!("client certificate and key: {e}"))?
            }
            (None, None) => builder.with_no_client_auth(),
            _ => return Err("a client certificate needs both a certificate and a key file".into()),
        };
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

/// `--insecure-skip-tls-verify`: any certificate is accepted, but the handshake's signatures
/// are still checked against it, so the connection is at least to whoever holds its key.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens TCP to the URI's host and port and runs the TLS handshake over it.
pub async fn connect(
    uri: tonic::codegen::http::Uri,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<hyper_util::rt::TokioIo<tokio_rustls::client::TlsStream<tokio::net::TcpStream>>>
{
    let bad = |m: &str| std::io::Error::new(std::io::ErrorKind::InvalidInput, m.to_string());
    let host = uri.host().ok_or_else(|| bad("endpoint has no host"))?;
    let port = uri.port_u16().unwrap_or(2379);
    let host = host
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    let tcp = tokio::net::TcpStream::connect((host.as_str(), port)).await?;
    tcp.set_nodelay(true)?;
    let name = ServerName::try_from(host).map_err(|_| bad("endpoint host is not a valid name"))?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    Ok(hyper_util::rt::TokioIo::new(tls))
}
