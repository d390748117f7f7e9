//! Cluster downgrades as etcd 3.6 has them (`Maintenance.Downgrade`, `etcdctl downgrade`):
//! validation and its errors, enabling (the cluster then runs at the target version on every
//! member, through restarts), cancelling.

use cairn_e2e::{Cluster, cairnctl, http_get};
use std::time::{Duration, Instant};

const FLAGS: &[&str] = &[
    "--heartbeat-interval",
    "50",
    "--election-timeout",
    "500",
    "--snapshot-count",
    "5",
];

fn versions(port: u16) -> serde_json::Value {
    let body = http_get(port, "/version").unwrap_or_default();
    serde_json::from_str(&body).unwrap_or_default()
}

fn status(endpoint: &str) -> serde_json::Value {
    let run = cairnctl(endpoint, &["endpoint", "status", "-w", "json"], None);
    assert_eq!(run.code, 0, "{run:?}");
    let parsed: serde_json::Value = serde_json::from_str(&run.stdout).unwrap_or_default();
    parsed[0]["Status"].clone()
}

/// Waits until every member reports `cluster` as the cluster version.
fn wait_cluster_version(c: &Cluster, cluster: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    for m in &c.members {
        loop {
            let v = versions(m.client_port);
            if v["etcdcluster"] == cluster && v["storage"] == cluster {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{} reports {v}, not cluster version {cluster}",
                m.name
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_downgrade_is_validated_enabled_everywhere_kept_and_canceled() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FLAGS);
    c.leader(Duration::from_secs(10)).await;
    // Sent to a follower as often as to the leader: any member takes it.
    let ep = c.members[0].endpoint();
    let run = |args: &[&str]| cairnctl(&ep, args, None);
    let fails = |args: &[&str], code: i32, stderr: &str| {
        let r = run(args);
        assert_eq!(
            (r.code, r.stderr.as_str(), r.stdout.as_str()),
            (code, stderr, ""),
            "{args:?}"
        );
    };

    // etcdctl 3.6's argument errors, then the server's.
    fails(
        &["downgrade", "validate"],
        128,
        "Error: TARGET_VERSION not provided\n",
    );
    fails(
        &["downgrade", "enable", "3.5", "3.4"],
        128,
        "Error: too many arguments\n",
    );
    fails(
        &["downgrade", "enable", ""],
        128,
        "Error: target version not provided\n",
    );
    for (target, error) in [
        ("v3.5", "etcdserver: wrong downgrade target version format"),
        ("3", "etcdserver: wrong downgrade target version format"),
        ("3.4", "etcdserver: invalid downgrade target version"),
        ("3.6", "etcdserver: invalid downgrade target version"),
        ("3.7.0", "etcdserver: invalid downgrade target version"),
    ] {
        fails(
            &["downgrade", "validate", target],
            1,
            &format!("Error: {error}\n"),
        );
        fails(
            &["downgrade", "enable", target],
            1,
            &format!("Error: {error}\n"),
        );
    }
    let ok = run(&["downgrade", "validate", "3.5.2"]);
    assert_eq!(
        ok.stdout, "Downgrade validate success, cluster version 3.6\n",
        "{ok:?}"
    );
    wait_cluster_version(&c, "3.6.0");

    let ok = run(&["downgrade", "enable", "3.5"]);
    assert_eq!(
        ok.stdout, "Downgrade enable success, cluster version 3.6\n",
        "{ok:?}"
    );
    // Every member runs at 3.5 now, and says so everywhere etcd does.
    wait_cluster_version(&c, "3.5.0");
    for m in &c.members {
        let s = status(&m.endpoint());
        assert_eq!(s["storageVersion"], "3.5.0", "{s}");
        assert_eq!(s["downgradeInfo"]["enabled"], true, "{s}");
        assert_eq!(s["downgradeInfo"]["targetVersion"], "3.5.0", "{s}");
        assert!(
            m.log_text().contains("The server is ready to downgrade"),
            "{}",
            m.log_text()
        );
        let metrics = http_get(m.client_port, "/metrics").unwrap_or_default();
        assert!(
            metrics.contains("etcd_cluster_version{cluster_version=\"3.5\"} 1")
                && !metrics.contains("cluster_version=\"3.6\""),
            "{}",
            metrics
                .lines()
                .filter(|l| l.contains("cluster_version"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // As on etcd once its cluster version dropped: 3.5 is no longer one below the cluster
    // version, and 3.4 is but waits for this downgrade to end.
    fails(
        &["downgrade", "enable", "3.5"],
        1,
        "Error: etcdserver: invalid downgrade target version\n",
    );
    let in_progress = "Error: etcdserver: cluster has a downgrade job in progress\n";
    fails(&["downgrade", "enable", "3.4"], 1, in_progress);
    fails(&["downgrade", "validate", "3.4"], 1, in_progress);

    // The state is the log's and the backend's: a member restarted from its data keeps it,
    // also once a durable copy of its backend was made after the downgrade (every 5 entries
    // here), so that the entry is no longer replayed from the WAL.
    for i in 0..20 {
        assert_eq!(run(&["put", &format!("after{i}"), "v"]).code, 0);
    }
    std::thread::sleep(Duration::from_millis(500));
    c.members[1].restart();
    let started = c.members[1].log_text();
    let last_start = started.rsplit("member started").next().unwrap_or_default();
    assert!(
        !last_start.contains("ready to downgrade") || started.matches("member started").count() < 2,
        "the restart replayed the downgrade from the WAL, so the backend went untested"
    );
    wait_cluster_version(&c, "3.5.0");

    // The answer names the cluster version the request found; the cluster is back at 3.6.
    let json = run(&["downgrade", "cancel", "-w", "json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let answer: serde_json::Value = serde_json::from_str(&json.stdout).unwrap_or_default();
    assert_eq!(answer["version"], "3.5", "{json:?}");
    assert!(answer["header"]["raft_term"].as_u64().is_some(), "{json:?}");
    wait_cluster_version(&c, "3.6.0");
    assert!(
        c.members[2]
            .log_text()
            .contains("the downgrade was canceled"),
        "{}",
        c.members[2].log_text()
    );
    // etcd 3.6 answers a cancel with nothing to cancel with success, and logs why.
    let again = run(&["downgrade", "cancel"]);
    assert_eq!(
        again.stdout, "Downgrade cancel success, cluster version 3.6\n",
        "{again:?}"
    );
    assert!(
        c.members[0]
            .log_text()
            .contains("failed to cancel downgrade")
    );
    let s = status(&ep);
    assert_eq!(s["storageVersion"], "3.6.0", "{s}");
    assert_eq!(
        s["downgradeInfo"]["enabled"],
        serde_json::Value::Null,
        "{s}"
    );
    fails(
        &["downgrade", "validate", "3.5", "-w", "table"],
        4,
        "Error: table not supported as output format\n",
    );
}
