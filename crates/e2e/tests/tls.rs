//! TLS on the client port, side by side with real etcd: the same flags, the same certificates,
//! real etcdctl (and cairnctl) with and without the right credentials, and the same outcomes.
//! Also `--auto-tls`, certificate rotation without a restart, and start-up errors.

use cairn_e2e::certs::Certs;
use cairn_e2e::{Member, RealEtcd, cairnctl, etcdctl, normalized};
use std::path::Path;
use std::time::{Duration, Instant};

fn p(path: &Path) -> String {
    path.display().to_string()
}

/// Server flags for TLS with client certificates required.
fn server_flags(c: &Certs) -> Vec<String> {
    vec![
        format!("--cert-file={}", p(&c.server_cert)),
        format!("--key-file={}", p(&c.server_key)),
        format!("--trusted-ca-file={}", p(&c.ca)),
        "--client-cert-auth".into(),
    ]
}

fn good_client(c: &Certs) -> Vec<String> {
    vec![
        format!("--cacert={}", p(&c.ca)),
        format!("--cert={}", p(&c.client_cert)),
        format!("--key={}", p(&c.client_key)),
    ]
}

fn tls_member(dir: &Path, c: &Certs, flags: Vec<String>) -> Member {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut m = Member::unstarted("m1", &dir.join("cairn"), &flags);
    m.scheme = "https";
    m.client_args = good_client(c);
    m.launch();
    m
}

fn with(args: &[String], rest: &[&str]) -> Vec<String> {
    let mut v = args.to_vec();
    v.extend(rest.iter().map(|s| s.to_string()));
    v
}

fn run(endpoint: &str, args: &[String]) -> cairn_e2e::Run {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    etcdctl(endpoint, &args, None)
}

#[test]
fn etcdctl_over_mtls_behaves_as_against_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let c = Certs::make(&dir.path().join("certs"), "alice");
    let cairn = tls_member(dir.path(), &c, server_flags(&c));
    let flags = server_flags(&c);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let good = good_client(&c);
    let good_ref: Vec<&str> = good.iter().map(String::as_str).collect();
    let etcd = RealEtcd::start_with("https", &flags, &good_ref);
    let e_url = format!("https://{}", etcd.endpoint());
    let c_url = cairn.url();

    let short = ["--dial-timeout=1s", "--command-timeout=2s"];
    let cases: Vec<(&str, Vec<String>)> = vec![
        (
            "put with a client certificate",
            with(&good, &["put", "k", "v"]),
        ),
        (
            "get with a client certificate",
            with(&good, &["get", "k", "-w", "json"]),
        ),
        (
            "skip verification, with a client certificate",
            with(
                &[
                    format!("--cert={}", p(&c.client_cert)),
                    format!("--key={}", p(&c.client_key)),
                ],
                &[
                    "--insecure-transport=false",
                    "--insecure-skip-tls-verify",
                    "get",
                    "k",
                ],
            ),
        ),
        (
            "no client certificate",
            with(
                &[format!("--cacert={}", p(&c.ca))],
                &[&short[..], &["put", "k", "x"]].concat(),
            ),
        ),
        (
            "a client certificate from another CA",
            with(
                &[
                    format!("--cacert={}", p(&c.ca)),
                    format!("--cert={}", p(&c.stranger_cert)),
                    format!("--key={}", p(&c.stranger_key)),
                ],
                &[&short[..], &["put", "k", "y"]].concat(),
            ),
        ),
        (
            "the server's CA not trusted",
            with(
                &[
                    format!("--cacert={}", p(&c.other_ca)),
                    format!("--cert={}", p(&c.client_cert)),
                    format!("--key={}", p(&c.client_key)),
                ],
                &[&short[..], &["put", "k", "z"]].concat(),
            ),
        ),
        (
            "plaintext to a TLS port",
            short
                .iter()
                .map(|s| s.to_string())
                .chain(["get".into(), "k".into()])
                .collect(),
        ),
        (
            "after the refused attempts",
            with(&good, &["get", "k", "--print-value-only"]),
        ),
    ];
    for (what, args) in &cases {
        // Plaintext goes to the bare host:port, the rest to the https:// URL.
        let (e_ep, c_ep) = if what.starts_with("plaintext") {
            (etcd.endpoint(), cairn.endpoint())
        } else {
            (e_url.clone(), c_url.clone())
        };
        let want = normalized(&run(&e_ep, args));
        let got = normalized(&run(&c_ep, args));
        assert_eq!(got, want, "{what}: etcdctl {args:?}");
    }
    // Nothing a refused client sent was applied.
    let value = run(&c_url, &with(&good, &["get", "k", "--print-value-only"]));
    assert_eq!(value.stdout.trim(), "v");
    assert!(
        cairn.log_text().contains("TLS handshake failed"),
        "refusals are logged:\n{}",
        cairn.log_text()
    );

    // cairnctl takes the same flags.
    let args: Vec<&str> = good
        .iter()
        .map(String::as_str)
        .chain(["get", "k"])
        .collect();
    let mine = cairnctl(&c_url, &args, None);
    assert_eq!(mine.code, 0, "{mine:?}");
    assert_eq!(mine.stdout, "k\nv\n");
    let half = cairnctl(
        &c_url,
        &[&format!("--cert={}", p(&c.client_cert)), "get", "k"],
        None,
    );
    let etcd_half = etcdctl(
        &e_url,
        &[&format!("--cert={}", p(&c.client_cert)), "get", "k"],
        None,
    );
    assert_eq!(normalized(&half), normalized(&etcd_half));
    let refused = cairnctl(
        &c_url,
        &[
            &format!("--cacert={}", p(&c.ca)),
            "--dial-timeout=1s",
            "--command-timeout=2s",
            "get",
            "k",
        ],
        None,
    );
    assert_ne!(refused.code, 0, "{refused:?}");
}

#[test]
fn auto_tls_serves_grpc_and_http_on_one_port() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::unstarted("m1", &dir.path().join("m1"), &["--auto-tls"]);
    m.scheme = "https";
    // A plaintext listener beside the TLS one, as etcd allows.
    let plain = format!("127.0.0.1:{}", cairn_e2e::free_port());
    m.extra_client_urls = vec![format!("http://{plain}")];
    m.client_args = vec![
        "--insecure-transport=false".into(),
        "--insecure-skip-tls-verify".into(),
    ];
    m.launch();
    let skip = ["--insecure-transport=false", "--insecure-skip-tls-verify"];
    let put = etcdctl(&m.url(), &[&skip[..], &["put", "a", "1"]].concat(), None);
    assert_eq!(put.stdout, "OK\n", "{put:?}");
    let mine = cairnctl(&m.url(), &[&skip[..], &["get", "a"]].concat(), None);
    assert_eq!(mine.stdout, "a\n1\n", "{mine:?}");
    let plaintext = etcdctl(&plain, &["get", "a", "--print-value-only"], None);
    assert_eq!(plaintext.stdout, "1\n", "{plaintext:?}");
    let refused = etcdctl(
        &m.endpoint(),
        &["--dial-timeout=1s", "--command-timeout=2s", "get", "a"],
        None,
    );
    assert_ne!(refused.code, 0, "plaintext on the TLS port: {refused:?}");
    // Verification against the system's CAs fails for a self-signed certificate.
    let verified = etcdctl(
        &m.url(),
        &[
            "--insecure-transport=false",
            "--dial-timeout=1s",
            "--command-timeout=2s",
            "get",
            "a",
        ],
        None,
    );
    assert_ne!(verified.code, 0, "{verified:?}");
    let cert = dir.path().join("m1").join("fixtures/client/cert.pem");
    assert!(
        cert.exists(),
        "the generated certificate is kept in the data dir"
    );
    let before = std::fs::read(&cert).unwrap();
    // The JSON gateway and /health over the same TLS port (ALPN http/1.1) and HTTP/2.
    let health = tls_http_get(m.client_port, "/health");
    assert!(health.contains("\"health\":\"true\""), "{health}");
    m.restart();
    assert_eq!(
        std::fs::read(&cert).unwrap(),
        before,
        "kept across restarts"
    );
}

/// GET over TLS without verification, HTTP/1.1 (what `curl -k` does).
fn tls_http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let options = cairn_client::TlsOptions {
        skip_verify: true,
        ..Default::default()
    };
    let mut config = (*options.client_config().unwrap()).clone();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let tcp = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let name = rustls::pki_types::ServerName::try_from("127.0.0.1").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config))
            .connect(name, tcp)
            .await
            .unwrap();
        let request =
            format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n");
        tls.write_all(request.as_bytes()).await.unwrap();
        let mut body = Vec::new();
        let _ = tls.read_to_end(&mut body).await;
        String::from_utf8_lossy(&body).into_owned()
    })
}

#[test]
fn a_rotated_certificate_is_served_without_a_restart_and_writers_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let c = Certs::make(&dir.path().join("certs"), "alice");
    // Clients from both CAs are trusted, so that the client side stays valid across the switch.
    let bundle = dir.path().join("certs/both.crt");
    let both = format!(
        "{}{}",
        std::fs::read_to_string(&c.ca).unwrap(),
        std::fs::read_to_string(&c.other_ca).unwrap()
    );
    std::fs::write(&bundle, both).unwrap();
    let flags = server_flags(&c)
        .into_iter()
        .map(|f| {
            if f.starts_with("--trusted-ca-file=") {
                format!("--trusted-ca-file={}", p(&bundle))
            } else {
                f
            }
        })
        .collect();
    let m = tls_member(dir.path(), &c, flags);
    let old_ca = good_client(&c);
    let new_ca = vec![
        format!("--cacert={}", p(&c.other_ca)),
        format!("--cert={}", p(&c.client_cert)),
        format!("--key={}", p(&c.client_key)),
    ];
    assert_eq!(run(&m.url(), &with(&old_ca, &["put", "r", "1"])).code, 0);
    let refused = run(
        &m.url(),
        &with(
            &new_ca,
            &["--dial-timeout=1s", "--command-timeout=2s", "get", "r"],
        ),
    );
    assert_ne!(refused.code, 0, "{refused:?}");

    // Writers that trust both CAs keep writing through the rotation, each opening a new
    // connection (a new handshake) every few puts.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dialer = cairn_client::TlsOptions {
        ca_file: Some(bundle.clone()),
        cert_file: Some(c.client_cert.clone()),
        key_file: Some(c.client_key.clone()),
        skip_verify: false,
    }
    .client_config()
    .unwrap();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (url, dialer, stop) = (m.url(), dialer.clone(), stop.clone());
            rt.spawn(async move {
                let (mut acked, mut failed) = (Vec::new(), Vec::new());
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let client = match cairn_client::Client::connect_one_with(
                        &url,
                        Duration::from_secs(2),
                        Some(dialer.clone()),
                    )
                    .await
                    {
                        Ok(client) => client,
                        Err(e) => {
                            failed.push(format!("connect: {e}"));
                            continue;
                        }
                    };
                    for _ in 0..5 {
                        let key = format!("rot/{w}/{i:06}");
                        match client.put(key.clone(), format!("{i}")).await {
                            Ok(_) => acked.push(key),
                            Err(e) => failed.push(format!("put {key}: {e}")),
                        }
                        i += 1;
                    }
                }
                (acked, failed)
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));

    c.rotate_server_to_other_ca();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = run(
            &m.url(),
            &with(
                &new_ca,
                &[
                    "--dial-timeout=1s",
                    "--command-timeout=2s",
                    "get",
                    "r",
                    "--print-value-only",
                ],
            ),
        );
        if got.code == 0 {
            assert_eq!(got.stdout.trim(), "1");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not served: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(m.log_text().contains("reloaded the client TLS certificate"));

    // Nothing acknowledged before, during or after the switch is missing.
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let (mut acked, mut failed) = (Vec::new(), Vec::new());
    for w in writers {
        let (a, f) = rt.block_on(w).unwrap();
        acked.extend(a);
        failed.extend(f);
    }
    assert!(
        failed.is_empty(),
        "the rotation interrupted writers: {failed:?}"
    );
    assert!(
        acked.len() > 100,
        "too few writes to matter: {}",
        acked.len()
    );
    let keys = run(
        &m.url(),
        &with(
            &old_ca_after_rotation(&c, &bundle),
            &["get", "rot/", "--prefix", "--keys-only"],
        ),
    );
    let stored: std::collections::HashSet<&str> =
        keys.stdout.lines().filter(|l| !l.is_empty()).collect();
    let missing: Vec<_> = acked
        .iter()
        .filter(|k| !stored.contains(k.as_str()))
        .collect();
    assert!(
        missing.is_empty(),
        "acknowledged writes missing: {missing:?}"
    );
}

/// A client that trusts both CAs (the server's certificate now comes from the other one).
fn old_ca_after_rotation(c: &Certs, bundle: &Path) -> Vec<String> {
    vec![
        format!("--cacert={}", p(bundle)),
        format!("--cert={}", p(&c.client_cert)),
        format!("--key={}", p(&c.client_key)),
    ]
}

#[test]
fn bad_tls_settings_stop_the_start_with_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let c = Certs::make(&dir.path().join("certs"), "alice");
    let missing = dir.path().join("nope.crt");
    let cases: Vec<(Vec<String>, &str)> = vec![
        (
            vec![],
            "TLS key/cert (--cert-file, --key-file) must be provided for client url https://",
        ),
        (
            vec![
                format!("--cert-file={}", p(&missing)),
                format!("--key-file={}", p(&c.server_key)),
            ],
            "nope.crt",
        ),
        (
            vec![
                format!("--cert-file={}", p(&c.server_cert)),
                format!("--key-file={}", p(&c.client_key)),
            ],
            "--cert-file",
        ),
        (
            vec![
                format!("--cert-file={}", p(&c.server_cert)),
                format!("--key-file={}", p(&c.server_key)),
                "--tls-min-version=TLS1.3".into(),
                "--tls-max-version=TLS1.2".into(),
            ],
            "min version (TLS1.3) is greater than max version (TLS1.2)",
        ),
        (
            vec![
                format!("--cert-file={}", p(&c.server_cert)),
                format!("--key-file={}", p(&c.server_key)),
                "--cipher-suites=TLS_RSA_WITH_RC4_128_SHA".into(),
            ],
            "TLS_RSA_WITH_RC4_128_SHA",
        ),
    ];
    for (i, (flags, want)) in cases.iter().enumerate() {
        let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
        let mut m = Member::unstarted("m1", &dir.path().join(format!("bad{i}")), &flags);
        m.scheme = "https";
        let exit = m.run_to_exit(Duration::from_secs(10));
        assert!(
            exit.is_some_and(|s| !s.success()),
            "case {i} started: {flags:?}"
        );
        assert!(
            m.log_text().contains(want),
            "case {i}: {want:?} not in\n{}",
            m.log_text()
        );
    }
}

/// Members of a 3-member cluster talk mTLS to each other; a member whose certificate comes from
/// another CA is refused by every peer, with a log line, and never gets the data.
#[test]
fn a_peer_mtls_cluster_replicates_and_refuses_a_member_of_another_ca() {
    let dir = tempfile::tempdir().unwrap();
    let c = Certs::make(&dir.path().join("certs"), "alice");
    let peer_flags = |cert: &Path, key: &Path| {
        vec![
            format!("--peer-cert-file={}", p(cert)),
            format!("--peer-key-file={}", p(key)),
            format!("--peer-trusted-ca-file={}", p(&c.ca)),
            "--peer-client-cert-auth".to_string(),
        ]
    };
    let mut flags = peer_flags(&c.server_cert, &c.server_key);
    flags.push("--peer-cert-allowed-cn=server".into());
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let cluster = cairn_e2e::Cluster::start_peer_tls(dir.path(), 3, &flags);
    let e1 = cluster.members[0].endpoint();
    let e3 = cluster.members[2].endpoint();
    assert_eq!(etcdctl(&e1, &["put", "over", "tls"], None).stdout, "OK\n");
    let got = etcdctl(&e3, &["get", "over", "--print-value-only"], None);
    assert_eq!(got.stdout, "tls\n", "{got:?}");
    let list = etcdctl(&e1, &["member", "list"], None);
    assert_eq!(
        list.stdout.matches("https://127.0.0.1:").count(),
        3,
        "peer URLs are https: {list:?}"
    );

    // m4 presents a certificate from another CA: nobody lets it in.
    let m4 = refused_joiner(
        dir.path(),
        &e1,
        "m4",
        peer_flags(&c.other_server_cert, &c.other_server_key),
    );
    assert!(
        m4.log_text().contains("cannot fetch cluster info"),
        "{}",
        m4.log_text()
    );
    assert!(
        cluster.members.iter().any(|m| m
            .log_text()
            .contains("rejected a peer connection: TLS handshake failed")),
        "the refusal is logged by the cluster"
    );

    // m5's certificate is from the right CA, but its CN is not the allowed one (m4, never
    // started, is removed first: one learner at a time).
    let list = etcdctl(&e1, &["member", "list"], None).stdout;
    let m4_id = list
        .lines()
        .find(|l| l.contains(", unstarted, "))
        .and_then(|l| l.split(',').next())
        .unwrap()
        .to_string();
    assert_eq!(etcdctl(&e1, &["member", "remove", &m4_id], None).code, 0);
    refused_joiner(
        dir.path(),
        &e1,
        "m5",
        peer_flags(&c.intruder_cert, &c.intruder_key),
    );
    assert!(
        cluster
            .members
            .iter()
            .any(|m| m.log_text().contains("is not the allowed CN \"server\"")),
        "the CN refusal is logged by the cluster"
    );
    // The cluster goes on.
    assert_eq!(etcdctl(&e3, &["put", "still", "up"], None).stdout, "OK\n");
}

/// Adds `name` as a learner through `endpoint` and starts it with `flags`, expecting it to fail
/// to join (it exits with an error); returns it for its log.
fn refused_joiner(dir: &Path, endpoint: &str, name: &str, flags: Vec<String>) -> Member {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let mut m = Member::unstarted(name, &dir.join(name), &flags);
    m.peer_scheme = "https";
    let peer_urls = format!("--peer-urls={}", m.peer_url());
    let add = etcdctl(
        endpoint,
        &["member", "add", name, "--learner", &peer_urls],
        None,
    );
    assert_eq!(add.code, 0, "{add:?}");
    let initial = add
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap()
        .to_string();
    m.initial_cluster = Some(initial);
    m.extra
        .extend(["--initial-cluster-state".into(), "existing".into()]);
    let exit = m.run_to_exit(Duration::from_secs(20));
    assert!(
        exit.is_some_and(|s| !s.success()),
        "{name} joined although it should have been refused:\n{}",
        m.log_text()
    );
    m
}

/// With `--client-cert-auth` and auth on, the client certificate's common name is the user, and
/// a password given as well takes precedence (etcd's rule): side by side with etcd.
#[test]
fn the_client_certificate_names_the_user_once_auth_is_on() {
    let dir = tempfile::tempdir().unwrap();
    let c = Certs::make(&dir.path().join("certs"), "alice");
    let cairn = tls_member(dir.path(), &c, server_flags(&c));
    let flags = server_flags(&c);
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    let good = good_client(&c);
    let good_ref: Vec<&str> = good.iter().map(String::as_str).collect();
    let etcd = RealEtcd::start_with("https", &flags, &good_ref);
    let e_url = format!("https://{}", etcd.endpoint());
    let c_url = cairn.url();
    let root = "--user=root:rootpw";
    let steps: Vec<Vec<String>> = vec![
        with(&good, &["user", "add", "root:rootpw"]),
        with(&good, &["user", "add", "alice", "--no-password"]),
        with(&good, &["user", "add", "bob:b"]),
        with(&good, &["role", "add", "a"]),
        with(
            &good,
            &[
                "role",
                "grant-permission",
                "a",
                "readwrite",
                "/a/",
                "--prefix",
            ],
        ),
        with(&good, &["user", "grant-role", "alice", "a"]),
        with(&good, &["put", "/a/1", "one"]),
        with(&good, &["put", "/b/1", "two"]),
        with(&good, &["auth", "enable"]),
        // The certificate alone: user alice.
        with(&good, &["get", "/a/1"]),
        with(&good, &["put", "/a/2", "by-cn"]),
        with(&good, &["get", "/b/1"]),
        with(&good, &["user", "list"]),
        // A password as well: that user instead.
        with(&good, &[root, "get", "/b/1"]),
        with(&good, &["--user=bob:b", "get", "/a/1"]),
        with(&good, &["--user=bob:wrong", "get", "/a/1"]),
        with(&good, &[root, "auth", "disable"]),
        with(&good, &["get", "/b/1"]),
    ];
    for step in &steps {
        let want = normalized(&run(&e_url, step));
        let got = normalized(&run(&c_url, step));
        assert_eq!(got, want, "etcdctl {step:?}");
    }
}
