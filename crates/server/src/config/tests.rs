use super::*;

#[test]
fn defaults_like_etcd() {
    let c = Config::default();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir(), PathBuf::from("default.etcd"));
    assert_eq!(c.wal_dir(), PathBuf::from("default.etcd/member/wal"));
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.max_txn_ops, 128);
    assert_eq!(c.snapshot_count, 10_000);
    c.validate().unwrap();
    assert_eq!(
        c.client_listen_addrs().unwrap(),
        vec![("127.0.0.1:2379".parse().unwrap(), false)]
    );
}

#[test]
fn yaml_client_transport_security_sets_the_tls_flags() {
    let c = Config::from_yaml(
        "listen-client-urls: https://127.0.0.1:2379\nclient-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  client-cert-auth: true\n  trusted-ca-file: /ca.pem\n",
    )
    .unwrap();
    assert_eq!(
        (
            c.cert_file.as_str(),
            c.key_file.as_str(),
            c.trusted_ca_file.as_str()
        ),
        ("/c.pem", "/k.pem", "/ca.pem")
    );
    assert!(c.client_cert_auth && c.client_tls());
    assert_eq!(
        c.client_listen_addrs().unwrap(),
        vec![("127.0.0.1:2379".parse().unwrap(), true)]
    );
    let plain = Config::from_yaml("listen-client-urls: https://127.0.0.1:2379\n").unwrap();
    let err = plain.validate().unwrap_err().to_string();
    assert!(
        err.contains("TLS key/cert (--cert-file, --key-file) must be provided"),
        "{err}"
    );
}

#[test]
fn yaml_uses_flag_names_and_rejects_unknown_keys() {
    let c = Config::from_yaml(
        "name: m1\ndata-dir: /tmp/x\nsnapshot-count: 5\nlisten-client-urls: http://127.0.0.1:4000\ninitial-cluster: m1=http://localhost:2380\n",
    )
    .unwrap();
    assert_eq!(c.name, "m1");
    assert_eq!(c.snapshot_count, 5);
    assert_eq!(c.heartbeat_interval, 100);
    c.validate().unwrap();
    assert!(Config::from_yaml("no-such-key: 1\n").is_err());
}

#[test]
fn go_durations() {
    let d = |s: &str| s.parse::<GoDuration>().map(|d| d.0);
    assert_eq!(d("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(d("1h2m3.5s"), Ok(Duration::from_secs_f64(3723.5)));
    assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(d("5000000000"), Ok(Duration::from_secs(5)));
    assert!(d("5x").is_err());
    assert!(d("").is_err());
    assert!(d("99999999999999999999h").is_err());
    assert!(d("99999999999999999999").is_err());
    assert!(d("1e400s").is_err());
    assert_eq!(d("2562047h"), Ok(Duration::from_secs(2_562_047 * 3600)));
    assert!(d("2562048h").is_err());
    let c = Config::from_yaml("watch-progress-notify-interval: 5000000000\n").unwrap();
    assert_eq!(c.watch_progress_notify_interval.0, Duration::from_secs(5));
}

#[test]
fn auto_compaction_from_yaml_and_flags() {
    use crate::compactor::AutoCompaction;
    let c = Config::from_yaml("auto-compaction-mode: revision\nauto-compaction-retention: 1000\n")
        .unwrap();
    assert_eq!(
        c.auto_compaction().ok(),
        Some(AutoCompaction::Revision(1000))
    );
    let c = Config::from_yaml("auto-compaction-retention: \"30m\"\n").unwrap();
    assert_eq!(
        c.auto_compaction().ok(),
        Some(AutoCompaction::Periodic(Duration::from_secs(1800)))
    );
    let c = Config::parse_from(["cairn", "--auto-compaction-retention", "2"]);
    assert_eq!(
        c.auto_compaction().ok(),
        Some(AutoCompaction::Periodic(Duration::from_secs(7200)))
    );
    assert_eq!(
        Config::default().auto_compaction().ok(),
        Some(AutoCompaction::Off)
    );
    let bad = Config::parse_from(["cairn", "--auto-compaction-mode", "daily"]);
    assert!(bad.validate().is_err());
}

#[test]
fn bad_values_are_rejected() {
    let c = Config {
        listen_client_urls: "localhost:2379".into(),
        ..Default::default()
    };
    assert!(c.validate().is_err());
    let c = Config {
        election_timeout: 200,
        ..Default::default()
    };
    assert!(c.validate().is_err());
    let c = Config {
        initial_cluster: "other=http://localhost:2380".into(),
        ..Default::default()
    };
    assert!(c.validate().is_err());
    let c = Config {
        initial_cluster_state: "old".into(),
        ..Default::default()
    };
    assert!(c.validate().is_err());
    let c = Config {
        heartbeat_interval: u64::MAX,
        ..Default::default()
    };
    assert!(c.validate().is_err());
}

#[test]
fn max_request_bytes_fits_a_log_entry() {
    let limit = u32::try_from(cairn_raft::MAX_PROPOSAL_BYTES).unwrap();
    let at = Config {
        max_request_bytes: limit,
        ..Default::default()
    };
    at.validate().unwrap();
    let over = Config {
        max_request_bytes: limit + 1,
        ..Default::default()
    };
    assert!(over.validate().is_err());
}

#[test]
fn a_repeated_flag_keeps_its_last_value_as_go_does() {
    let c = Config::try_parse_from([
        "cairn",
        "--name",
        "a",
        "--client-cert-auth",
        "--name",
        "b",
        "--client-cert-auth",
    ])
    .unwrap();
    assert_eq!(c.name, "b");
    assert!(c.client_cert_auth);
}
