//! A real Prometheus (Debian's `prometheus`) scrapes a 3-member Cairn cluster and evaluates
//! etcd's mixin alert rules (`tests/data/etcd-mixin-alerts.yml`): every rule evaluates without
//! error, and every metric the rules, the dashboards and the issue name is there with its type.

use cairn_e2e::{Cluster, etcdctl, free_port, http_get};
use serde_json::Value;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Metric families and the type Prometheus must record for them.
const TYPED: &[(&str, &str)] = &[
    ("etcd_server_has_leader", "gauge"),
    ("etcd_server_is_leader", "gauge"),
    ("etcd_server_leader_changes_seen_total", "counter"),
    ("etcd_server_proposals_committed_total", "gauge"),
    ("etcd_server_proposals_applied_total", "gauge"),
    ("etcd_server_proposals_pending", "gauge"),
    ("etcd_server_proposals_failed_total", "counter"),
    ("etcd_server_slow_apply_total", "counter"),
    ("etcd_mvcc_db_total_size_in_bytes", "gauge"),
    ("etcd_mvcc_db_total_size_in_use_in_bytes", "gauge"),
    ("etcd_server_quota_backend_bytes", "gauge"),
    ("etcd_debugging_mvcc_keys_total", "gauge"),
    ("etcd_mvcc_put_total", "counter"),
    ("etcd_disk_wal_fsync_duration_seconds", "histogram"),
    ("etcd_disk_backend_commit_duration_seconds", "histogram"),
    ("etcd_network_peer_round_trip_time_seconds", "histogram"),
    ("etcd_network_peer_sent_bytes_total", "counter"),
    ("etcd_network_peer_received_bytes_total", "counter"),
    ("etcd_network_peer_sent_failures_total", "counter"),
    ("etcd_network_client_grpc_received_bytes_total", "counter"),
    ("etcd_network_client_grpc_sent_bytes_total", "counter"),
    ("grpc_server_started_total", "counter"),
    ("grpc_server_handled_total", "counter"),
    ("grpc_server_msg_received_total", "counter"),
    ("grpc_server_msg_sent_total", "counter"),
    ("grpc_server_handling_seconds", "histogram"),
    ("process_resident_memory_bytes", "gauge"),
    ("process_cpu_seconds_total", "counter"),
];

fn prometheus_bin() -> &'static str {
    ["/usr/bin/prometheus", "/usr/local/bin/prometheus"]
        .into_iter()
        .find(|p| Path::new(p).exists())
        .unwrap_or_else(|| {
            panic!("prometheus not found: install Debian's prometheus; .ci/run does")
        })
}

/// Percent-encodes a PromQL query for a URL.
fn encode(q: &str) -> String {
    q.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' | b'-' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn api(port: u16, path: &str) -> Value {
    let body = http_get(port, path).unwrap_or_else(|| panic!("no answer for {path}"));
    let v: Value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{path}: {e}: {body}"));
    assert_eq!(v["status"], "success", "{path}: {v}");
    v["data"].clone()
}

/// Kills Prometheus when the test ends, however it ends.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn prometheus_scrapes_cairn_and_evaluates_etcds_alert_rules() {
    let rules = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/etcd-mixin-alerts.yml");
    let promtool = Path::new(prometheus_bin()).with_file_name("promtool");
    if promtool.exists() {
        let check = Command::new(&promtool)
            .arg("check")
            .arg("rules")
            .arg(&rules)
            .output()
            .unwrap();
        assert!(check.status.success(), "{check:?}");
    }

    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(dir.path(), 3, &["--metrics", "extensive"]);
    for i in 0..20 {
        let run = etcdctl(&cluster.endpoints(), &["put", &format!("k{i}"), "v"], None);
        assert_eq!(run.code, 0, "{run:?}");
    }
    let targets: Vec<String> = cluster
        .members
        .iter()
        .map(|m| format!("\"127.0.0.1:{}\"", m.client_port))
        .collect();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: etcd\n    static_configs:\n      - targets: [{}]\n",
            rules.display(),
            targets.join(", ")
        ),
    )
    .unwrap();
    let port = free_port();
    let log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let _prometheus = Running(
        Command::new(prometheus_bin())
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.path().join("tsdb").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("start prometheus"),
    );
    let log_text =
        || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Every member scraped.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(body) = http_get(port, "/api/v1/targets")
            && let Ok(v) = serde_json::from_str::<Value>(&body)
        {
            let active = v["data"]["activeTargets"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if active.len() == 3 && active.iter().all(|t| t["health"] == "up") {
                break;
            }
        }
        assert!(
            Instant::now() < deadline,
            "targets never up:\n{}",
            log_text()
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    // Every rule has run, without error.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let data = api(port, "/api/v1/rules");
        let rules: Vec<Value> = data["groups"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|g| g["rules"].as_array().cloned().unwrap_or_default())
            .collect();
        assert_eq!(rules.len(), 13, "{data}");
        let evaluated = rules.iter().all(|r| {
            !r["lastEvaluation"]
                .as_str()
                .unwrap_or("0001")
                .starts_with("0001")
        });
        if evaluated {
            for r in &rules {
                assert_eq!(r["health"], "ok", "{r}");
                assert!(r["lastError"].as_str().unwrap_or("").is_empty(), "{r}");
            }
            // A healthy cluster fires nothing.
            let firing: Vec<&Value> = rules.iter().filter(|r| r["state"] == "firing").collect();
            assert!(firing.is_empty(), "{firing:?}");
            break;
        }
        assert!(Instant::now() < deadline, "rules never evaluated: {data}");
        std::thread::sleep(Duration::from_millis(250));
    }

    // Every family present, with its type, on every member.
    for (name, kind) in TYPED {
        let meta = api(port, &format!("/api/v1/metadata?metric={name}"));
        assert_eq!(meta[name][0]["type"], *kind, "{name}: {meta}");
        let sample = if *kind == "histogram" {
            format!("{name}_count")
        } else {
            name.to_string()
        };
        let query = format!("count(count by (instance) ({sample}))");
        let result = api(port, &format!("/api/v1/query?query={}", encode(&query)));
        assert_eq!(
            result["result"][0]["value"][1], "3",
            "{name} is not on every member: {result}"
        );
    }
    // The alert's inputs carry data: one leader, and peers measured.
    let leaders = api(
        port,
        &format!(
            "/api/v1/query?query={}",
            encode("sum(etcd_server_is_leader{job=\"etcd\"})")
        ),
    );
    assert_eq!(leaders["result"][0]["value"][1], "1", "{leaders}");
}
