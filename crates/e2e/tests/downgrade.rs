//! Cluster downgrades as etcd 3.6 and 3.7 have them (`Maintenance.Downgrade`, `etcdctl downgrade`):
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
    // Versions relative to the one the server reports (3.7 today): `now` and one below it.
    let server = versions(c.members[0].client_port)["etcdserver"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let minor: u64 = server.split('.').nth(1).unwrap().parse().unwrap();
    let v = |minor: u64| format!("3.{minor}");
    let (now, below) = (v(minor), v(minor - 1));
    let full = |mm: &str| format!("{mm}.0");
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
        &["downgrade", "enable", &below, "3.4"],
        128,
        "Error: too many arguments\n",
    );
    fails(
        &["downgrade", "enable", ""],
        128,
        "Error: target version not provided\n",
    );
    let format = "etcdserver: wrong downgrade target version format";
    let invalid = "etcdserver: invalid downgrade target version";
    for (target, error) in [
        (format!("v{below}"), format),
        ("3".to_string(), format),
        (v(minor - 2), invalid),
        (now.clone(), invalid),
        (format!("3.{}.0", minor + 1), invalid),
    ] {
        for action in ["validate", "enable"] {
            fails(
                &["downgrade", action, &target],
                1,
                &format!("Error: {error}\n"),
            );
        }
    }
    let ok = run(&["downgrade", "validate", &format!("{below}.2")]);
    assert_eq!(
        ok.stdout,
        format!("Downgrade validate success, cluster version {now}\n"),
        "{ok:?}"
    );
    wait_cluster_version(&c, &full(&now));

    let ok = run(&["downgrade", "enable", &below]);
    assert_eq!(
        ok.stdout,
        format!("Downgrade enable success, cluster version {now}\n"),
        "{ok:?}"
    );
    // Every member runs at the version below now, and says so everywhere etcd does.
    wait_cluster_version(&c, &full(&below));
    for m in &c.members {
        let s = status(&m.endpoint());
        assert_eq!(s["storageVersion"], full(&below), "{s}");
        assert_eq!(s["downgradeInfo"]["enabled"], true, "{s}");
        assert_eq!(s["downgradeInfo"]["targetVersion"], full(&below), "{s}");
        assert!(
            m.log_text().contains("The server is ready to downgrade"),
            "{}",
            m.log_text()
        );
        let metrics = http_get(m.client_port, "/metrics").unwrap_or_default();
        assert!(
            metrics.contains(&format!(
                "etcd_cluster_version{{cluster_version=\"{below}\"}} 1"
            )) && !metrics.contains(&format!("cluster_version=\"{now}\"")),
            "{}",
            metrics
                .lines()
                .filter(|l| l.contains("cluster_version"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    // As on etcd once its cluster version dropped: the target is no longer one below the
    // cluster version, and the version below that is but waits for this downgrade to end.
    fails(
        &["downgrade", "enable", &below],
        1,
        &format!("Error: {invalid}\n"),
    );
    let in_progress = "Error: etcdserver: cluster has a downgrade job in progress\n";
    fails(&["downgrade", "enable", &v(minor - 2)], 1, in_progress);
    fails(&["downgrade", "validate", &v(minor - 2)], 1, in_progress);

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
    wait_cluster_version(&c, &full(&below));

    // The answer names the cluster version the request found; the cluster is back at `now`.
    let json = run(&["downgrade", "cancel", "-w", "json"]);
    assert_eq!(json.code, 0, "{json:?}");
    let answer: serde_json::Value = serde_json::from_str(&json.stdout).unwrap_or_default();
    assert_eq!(answer["version"], below.as_str(), "{json:?}");
    assert!(answer["header"]["raft_term"].as_u64().is_some(), "{json:?}");
    wait_cluster_version(&c, &full(&now));
    assert!(
        c.members[2]
            .log_text()
            .contains("the downgrade was canceled"),
        "{}",
        c.members[2].log_text()
    );
    // etcd 3.6 and later answer a cancel with nothing to cancel with success, and log why.
    let again = run(&["downgrade", "cancel"]);
    assert_eq!(
        again.stdout,
        format!("Downgrade cancel success, cluster version {now}\n"),
        "{again:?}"
    );
    assert!(
        c.members[0]
            .log_text()
            .contains("failed to cancel downgrade")
    );
    let s = status(&ep);
    assert_eq!(s["storageVersion"], full(&now), "{s}");
    assert_eq!(
        s["downgradeInfo"]["enabled"],
        serde_json::Value::Null,
        "{s}"
    );
    fails(
        &["downgrade", "validate", &below, "-w", "table"],
        4,
        "Error: table not supported as output format\n",
    );
}
