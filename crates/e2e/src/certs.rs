//! Certificates for TLS tests: a CA, server and client certificates signed by it, and a second
//! CA whose certificates the first refuses. Written as PEM files into a directory.

use std::path::{Path, PathBuf};

/// PEM files for one test.
pub struct Certs {
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    /// Signed by `ca`, CN `client_cn`.
    pub client_cert: PathBuf,
    pub client_key: PathBuf,
    /// From another CA: a client that presents it must be refused.
    pub stranger_cert: PathBuf,
    pub stranger_key: PathBuf,
    pub other_ca: PathBuf,
    pub other_server_cert: PathBuf,
    pub other_server_key: PathBuf,
    /// From `ca`, for the same names as the server's, but with CN `intruder`.
    pub intruder_cert: PathBuf,
    pub intruder_key: PathBuf,
}

/// Server certificates double as members' peer certificates, which are also presented as
/// client certificates when a member dials another (as etcd's are).
const SERVER_AND_PEER: &[rcgen::ExtendedKeyUsagePurpose] = &[
    rcgen::ExtendedKeyUsagePurpose::ServerAuth,
    rcgen::ExtendedKeyUsagePurpose::ClientAuth,
];

struct Authority {
    cert: rcgen::Certificate,
    key: rcgen::KeyPair,
}

fn authority(name: &str) -> Authority {
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, name);
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
        rcgen::KeyUsagePurpose::DigitalSignature,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.self_signed(&key).unwrap();
    Authority { cert, key }
}

fn leaf(
    ca: &Authority,
    cn: &str,
    sans: &[&str],
    usage: &[rcgen::ExtendedKeyUsagePurpose],
) -> (String, String) {
    let mut params =
        rcgen::CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.extended_key_usages = usage.to_vec();
    params.key_usages = vec![
        rcgen::KeyUsagePurpose::DigitalSignature,
        rcgen::KeyUsagePurpose::KeyEncipherment,
    ];
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca.cert, &ca.key).unwrap();
    (cert.pem(), key.serialize_pem())
}

impl Certs {
    /// Makes everything in `dir`; the server certificate is for 127.0.0.1 and localhost.
    pub fn make(dir: &Path, client_cn: &str) -> Certs {
        std::fs::create_dir_all(dir).unwrap();
        let write = |name: &str, pem: &str| {
            let p = dir.join(name);
            std::fs::write(&p, pem).unwrap();
            p
        };
        let ca = authority("cairn test CA");
        let other = authority("another CA");
        let (sc, sk) = leaf(&ca, "server", &["127.0.0.1", "localhost"], SERVER_AND_PEER);
        let (cc, ck) = leaf(
            &ca,
            client_cn,
            &[],
            &[rcgen::ExtendedKeyUsagePurpose::ClientAuth],
        );
        let (xc, xk) = leaf(
            &other,
            client_cn,
            &[],
            &[rcgen::ExtendedKeyUsagePurpose::ClientAuth],
        );
        let (oc, ok) = leaf(
            &other,
            "server",
            &["127.0.0.1", "localhost"],
            SERVER_AND_PEER,
        );
        let (ic, ik) = leaf(
            &ca,
            "intruder",
            &["127.0.0.1", "localhost"],
            SERVER_AND_PEER,
        );
        Certs {
            ca: write("ca.crt", &ca.cert.pem()),
            server_cert: write("server.crt", &sc),
            server_key: write("server.key", &sk),
            client_cert: write("client.crt", &cc),
            client_key: write("client.key", &ck),
            stranger_cert: write("stranger.crt", &xc),
            stranger_key: write("stranger.key", &xk),
            other_ca: write("other-ca.crt", &other.cert.pem()),
            other_server_cert: write("other-server.crt", &oc),
            other_server_key: write("other-server.key", &ok),
            intruder_cert: write("intruder.crt", &ic),
            intruder_key: write("intruder.key", &ik),
        }
    }

    /// Replaces the server's certificate and key files with a pair for the same names from the
    /// other CA, as a rotation would (clients trusting only `ca` then refuse the server).
    pub fn rotate_server_to_other_ca(&self) {
        std::fs::copy(&self.other_server_cert, &self.server_cert).unwrap();
        std::fs::copy(&self.other_server_key, &self.server_key).unwrap();
    }
}
