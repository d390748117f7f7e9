//! `/metrics` side by side with real etcd: the families the etcd mixin's alerts and etcd's
//! Grafana dashboard read exist under etcd's names, types, label names and buckets, and their
//! values follow what the member did.

use cairn_e2e::{Cluster, Member, RealEtcd, etcdctl, free_port, http_get};
use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

/// What the issue and the etcd mixin's alerts and dashboards need.
const REQUIRED: &[&str] = &[
    "etcd_server_has_leader",
    "etcd_server_is_leader",
    "etcd_server_leader_changes_seen_total",
    "etcd_server_proposals_committed_total",
    "etcd_server_proposals_applied_total",
    "etcd_server_proposals_pending",
    "etcd_server_proposals_failed_total",
    "etcd_server_slow_apply_total",
    "etcd_mvcc_db_total_size_in_bytes",
    "etcd_mvcc_db_total_size_in_use_in_bytes",
    "etcd_server_quota_backend_bytes",
    "etcd_debugging_mvcc_keys_total",
    "etcd_mvcc_put_total",
    "etcd_disk_wal_fsync_duration_seconds",
    "etcd_disk_backend_commit_duration_seconds",
    "etcd_network_client_grpc_received_bytes_total",
    "etcd_network_client_grpc_sent_bytes_total",
    "grpc_server_started_total",
    "grpc_server_handled_total",
    "grpc_server_msg_received_total",
    "grpc_server_msg_sent_total",
    "process_resident_memory_bytes",
    "process_cpu_seconds_total",
    "process_open_fds",
];

#[derive(Debug, Default)]
struct Family {
    kind: String,
    help: String,
    /// Label names of each series, `le` left out.
    labels: BTreeSet<Vec<String>>,
    /// Bucket bounds, for histograms.
    buckets: BTreeSet<String>,
    samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

/// Parses Prometheus's text exposition format (what both servers send).
fn parse(text: &str) -> BTreeMap<String, Family> {
    let mut families: BTreeMap<String, Family> = BTreeMap::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').unwrap_or((rest, ""));
            families.entry(name.to_string()).or_default().help = help.to_string();
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE line");
            families.entry(name.to_string()).or_default().kind = kind.to_string();
        } else if !line.is_empty() && !line.starts_with('#') {
            let (series, value) = line.rsplit_once(' ').expect("sample line");
            let (name, labels) = match series.split_once('{') {
                Some((n, l)) => (n, l.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels: BTreeMap<String, String> = labels
                .split("\",")
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').expect("label");
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|s| {
                    name.strip_suffix(s)
                        .filter(|base| families.get(*base).is_some_and(|f| f.kind == "histogram"))
                })
                .unwrap_or(name);
            let f = families.entry(family.to_string()).or_default();
            if let Some(le) = labels.get("le") {
                f.buckets.insert(le.clone());
            }
            f.labels
                .insert(labels.keys().filter(|k| *k != "le").cloned().collect());
            f.samples.push((
                name.to_string(),
                labels,
                value.parse().expect("sample value"),
            ));
        }
    }
    families
}

/// The value of the one series of `name` whose labels include `with`.
fn value(families: &BTreeMap<String, Family>, name: &str, with: &[(&str, &str)]) -> f64 {
    let family = name
        .strip_suffix("_count")
        .filter(|b| families.contains_key(*b))
        .unwrap_or(name);
    let f = families
        .get(family)
        .unwrap_or_else(|| panic!("no family {name}"));
    let matching: Vec<f64> = f
        .samples
        .iter()
        .filter(|(n, labels, _)| {
            n == name
                && with
                    .iter()
                    .all(|(k, v)| labels.get(*k).is_some_and(|l| l == v))
        })
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(matching.len(), 1, "{name} {with:?}: {matching:?}");
    matching[0]
}

fn scrape(port: u16) -> BTreeMap<String, Family> {
    parse(&http_get(port, "/metrics").expect("/metrics answers"))
}

/// The same client work on either server.
fn workload(endpoint: &str) {
    for i in 0..5 {
        assert_eq!(
            etcdctl(endpoint, &["put", &format!("k{i}"), "v"], None).code,
            0
        );
    }
    assert_eq!(etcdctl(endpoint, &["get", "k", "--prefix"], None).code, 0);
    assert_eq!(etcdctl(endpoint, &["del", "k0"], None).code, 0);
    let txn = "value(\"k1\") = \"v\"\n\nput k1 w\nget k2\n\n\n";
    assert_eq!(etcdctl(endpoint, &["txn"], Some(txn)).code, 0);
    assert_eq!(etcdctl(endpoint, &["lease", "grant", "60"], None).code, 0);
    assert_eq!(etcdctl(endpoint, &["endpoint", "status"], None).code, 0);
}

#[test]
fn families_match_etcds_and_count_what_happened() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = RealEtcd::start();
    let cairn = Member::start(&dir.path().join("m"), &[]);
    workload(&etcd.endpoint());
    workload(&cairn.endpoint());
    let theirs = scrape(etcd.client_port);
    let ours = scrape(cairn.client_port);

    for name in REQUIRED {
        assert!(ours.contains_key(*name), "Cairn has no {name}");
    }
    let mut shared = 0;
    for (name, ours) in &ours {
        let Some(theirs) = theirs.get(name) else {
            continue;
        };
        shared += 1;
        assert_eq!(ours.kind, theirs.kind, "type of {name}");
        assert_eq!(ours.help, theirs.help, "help of {name}");
        if name == "process_cpu_seconds_total" || name.starts_with("process_") {
            continue;
        }
        // Families with series on both sides must label them alike.
        if !theirs.samples.is_empty() && !ours.samples.is_empty() {
            assert_eq!(ours.labels, theirs.labels, "label names of {name}");
        }
        if ours.kind == "histogram" && !theirs.buckets.is_empty() {
            assert_eq!(ours.buckets, theirs.buckets, "buckets of {name}");
        }
    }
    assert!(shared >= 60, "only {shared} families in common with etcd");

    // The same work gives the same counts where both count the same thing.
    for (name, labels) in [
        ("etcd_mvcc_put_total", &[][..]),
        ("etcd_mvcc_delete_total", &[]),
        ("etcd_mvcc_txn_total", &[]),
        ("etcd_mvcc_range_total", &[]),
        ("etcd_debugging_lease_granted_total", &[]),
        ("etcd_debugging_mvcc_keys_total", &[]),
        ("etcd_server_has_leader", &[]),
        ("etcd_server_is_leader", &[]),
        ("etcd_server_leader_changes_seen_total", &[]),
        (
            "grpc_server_handled_total",
            &[("grpc_method", "Put"), ("grpc_code", "OK")][..],
        ),
        ("grpc_server_started_total", &[("grpc_method", "Txn")][..]),
        (
            "grpc_server_msg_received_total",
            &[("grpc_method", "Range")][..],
        ),
        (
            "grpc_server_msg_sent_total",
            &[("grpc_method", "Status")][..],
        ),
        (
            "grpc_server_handled_total",
            &[("grpc_service", "etcdserverpb.Watch"), ("grpc_code", "OK")][..],
        ),
    ] {
        assert_eq!(
            value(&ours, name, labels),
            value(&theirs, name, labels),
            "{name} {labels:?}"
        );
    }
    // Five puts and the txn's; the get, the txn's compare and its get.
    assert_eq!(value(&ours, "etcd_mvcc_put_total", &[]), 6.0);
    assert_eq!(value(&ours, "etcd_mvcc_range_total", &[]), 3.0);
    assert_eq!(value(&ours, "etcd_debugging_mvcc_keys_total", &[]), 4.0);
    assert!(value(&ours, "etcd_disk_wal_fsync_duration_seconds_count", &[]) >= 7.0);
    assert!(value(&ours, "etcd_disk_wal_write_bytes_total", &[]) > 0.0);
    assert!(value(&ours, "etcd_mvcc_db_total_size_in_bytes", &[]) > 0.0);
    assert!(value(&ours, "etcd_network_client_grpc_received_bytes_total", &[]) > 0.0);
    assert_eq!(
        value(&ours, "etcd_server_quota_backend_bytes", &[]),
        2_147_483_648.0
    );
    let committed = value(&ours, "etcd_server_proposals_committed_total", &[]);
    assert!(committed >= 8.0, "committed {committed}");
    assert!(value(&ours, "process_resident_memory_bytes", &[]) > 1e6);
}

#[test]
fn a_failed_call_is_counted_with_its_code() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m"), &[]);
    assert_eq!(etcdctl(&cairn.endpoint(), &["put", "a", "1"], None).code, 0);
    assert_eq!(etcdctl(&cairn.endpoint(), &["compact", "1"], None).code, 0);
    // At or below the compaction: OUT_OF_RANGE.
    let r = etcdctl(&cairn.endpoint(), &["compact", "1"], None);
    assert_ne!(r.code, 0, "compacting again must fail");
    let m = scrape(cairn.client_port);
    assert_eq!(
        value(
            &m,
            "grpc_server_handled_total",
            &[("grpc_method", "Compact"), ("grpc_code", "OutOfRange")]
        ),
        1.0
    );
    assert_eq!(
        value(
            &m,
            "grpc_server_handled_total",
            &[("grpc_method", "Compact"), ("grpc_code", "OK")]
        ),
        1.0
    );
    // A health check counts.
    let before = value(&m, "etcd_server_health_success", &[]);
    assert!(http_get(cairn.client_port, "/health").is_some());
    let after = value(
        &scrape(cairn.client_port),
        "etcd_server_health_success",
        &[],
    );
    assert_eq!(after, before + 1.0);
}

#[test]
fn the_metrics_url_serves_metrics_and_probes_only() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let cairn = Member::start(
        &dir.path().join("m"),
        &["--listen-metrics-urls", &url, "--metrics", "extensive"],
    );
    assert_eq!(etcdctl(&cairn.endpoint(), &["put", "a", "1"], None).code, 0);
    let m = scrape(port);
    assert_eq!(value(&m, "etcd_server_has_leader", &[]), 1.0);
    // --metrics extensive adds the handling-time histograms.
    assert_eq!(
        value(
            &m,
            "grpc_server_handling_seconds_count",
            &[("grpc_method", "Put")]
        ),
        1.0
    );
    let health = http_get(port, "/health").expect("/health");
    assert!(health.contains("\"health\":\"true\""), "{health}");
    assert_eq!(http_get(port, "/livez").as_deref(), Some("ok\n"));
    assert_eq!(http_get(port, "/readyz").as_deref(), Some("ok\n"));
    // The gRPC API is not served there.
    assert_eq!(
        http_get(port, "/version").as_deref(),
        Some("404 page not found\n")
    );
    // Basic, the default, has no histograms per method.
    let basic = scrape(cairn.client_port);
    assert!(basic.contains_key("grpc_server_handling_seconds"));
    let plain = Member::start(&dir.path().join("p"), &[]);
    assert!(!scrape(plain.client_port).contains_key("grpc_server_handling_seconds"));

    let bad = Member::unstarted("b", &dir.path().join("b"), &["--metrics", "everything"])
        .command()
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(
        String::from_utf8_lossy(&bad.stderr).contains("unknown --metrics \"everything\""),
        "{}",
        String::from_utf8_lossy(&bad.stderr)
    );
}

#[test]
fn a_cluster_reports_its_peers_and_one_leader() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, &[]);
    assert_eq!(
        etcdctl(&cluster.endpoints(), &["put", "a", "1"], None).code,
        0
    );
    // The prober measures every 5 s.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let scrapes: Vec<_> = cluster
            .members
            .iter()
            .map(|m| scrape(m.client_port))
            .collect();
        let leaders: f64 = scrapes
            .iter()
            .map(|m| value(m, "etcd_server_is_leader", &[]))
            .sum();
        let probed = scrapes.iter().all(|m| {
            m.get("etcd_network_peer_round_trip_time_seconds")
                .is_some_and(|f| {
                    f.samples
                        .iter()
                        .filter(|(n, _, v)| n.ends_with("_count") && *v > 0.0)
                        .count()
                        == 2
                })
        });
        // Followers apply the put once they hear it committed, which may come after the
        // client's answer (with the next append, or within milliseconds).
        let applied = scrapes
            .iter()
            .all(|m| value(m, "etcd_mvcc_put_total", &[]) == 1.0);
        if leaders == 1.0 && probed && applied {
            for (m, s) in cluster.members.iter().zip(&scrapes) {
                assert_eq!(value(s, "etcd_server_has_leader", &[]), 1.0);
                assert_eq!(value(s, "etcd_mvcc_put_total", &[]), 1.0, "{}", m.name);
                // A leader sends to both peers; a follower answers the leader (followers say
                // nothing to each other).
                let sent = &s["etcd_network_peer_sent_bytes_total"];
                let sent_to = sent.samples.iter().filter(|(_, _, v)| *v > 0.0).count();
                let leader = value(s, "etcd_server_is_leader", &[]) == 1.0;
                assert_eq!(sent_to, if leader { 2 } else { 1 }, "{:?}", sent.samples);
                let received = &s["etcd_network_peer_received_bytes_total"];
                let received_from = received.samples.iter().filter(|(_, _, v)| *v > 0.0).count();
                assert_eq!(
                    received_from,
                    if leader { 2 } else { 1 },
                    "{:?}",
                    received.samples
                );
                assert_eq!(s["etcd_network_active_peers"].samples.len(), 2);
                assert!(value(s, "etcd_server_leader_changes_seen_total", &[]) >= 1.0);
            }
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leaders {leaders}, probed {probed}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The status line and body of a GET.
fn get_with_status(port: u16, path: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = String::new();
    s.read_to_string(&mut buf).unwrap();
    let status = buf
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_string());
    (status, body.unwrap_or_default())
}

#[test]
fn probes_report_each_check_as_etcd_does() {
    let dir = tempfile::tempdir().unwrap();
    let mut cluster = Cluster::start(dir.path(), 3, &[]);
    let port = cluster.members[0].client_port;
    assert_eq!(get_with_status(port, "/readyz"), (200, "ok\n".into()));
    assert_eq!(
        get_with_status(port, "/readyz?verbose"),
        (
            200,
            "[+]data_corruption ok\n[+]serializable_read ok\n[+]linearizable_read ok\n[+]non_learner ok\nok\n"
                .into()
        )
    );
    assert_eq!(
        get_with_status(port, "/readyz?verbose&exclude=data_corruption,non_learner"),
        (
            200,
            "[+]serializable_read ok\n[+]linearizable_read ok\nok\n".into()
        )
    );
    assert_eq!(
        get_with_status(port, "/livez?verbose"),
        (200, "[+]serializable_read ok\nok\n".into())
    );
    assert_eq!(
        get_with_status(port, "/readyz/linearizable_read?verbose"),
        (200, "[+]linearizable_read ok\nok\n".into())
    );
    assert_eq!(get_with_status(port, "/readyz/nonsense").0, 404);

    // Without quorum the member is alive but not ready.
    cluster.members[1].kill9();
    cluster.members[2].kill9();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, body) = get_with_status(port, "/readyz");
        if status == 503 {
            assert!(body.contains("[-]linearizable_read failed: "), "{body}");
            assert!(body.contains("[+]serializable_read ok\n"), "{body}");
            break;
        }
        assert!(Instant::now() < deadline, "still ready: {body}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(get_with_status(port, "/livez"), (200, "ok\n".into()));
    let (status, body) = get_with_status(port, "/readyz?exclude=linearizable_read");
    assert_eq!((status, body.as_str()), (200, "ok\n"));
}
