//! cairnctl against Cairn must print exactly what etcdctl 3.4 prints against real etcd, for the
//! same commands on the same history (IDs and Raft term masked), with the same exit codes.

use cairn_e2e::{Member, RealEtcd, Step, cairnctl, etcdctl, normalized};

fn same(steps: &[Step]) {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &[]);
    let etcd = RealEtcd::start();
    for (args, stdin) in steps {
        let want = normalized(&etcdctl(&etcd.endpoint(), args, *stdin));
        let got = normalized(&cairnctl(&cairn.endpoint(), args, *stdin));
        assert_eq!(
            got, want,
            "cairnctl {args:?} differs from etcdctl (left: cairnctl on Cairn)"
        );
    }
}

#[test]
fn kv_commands_match_etcdctl() {
    same(cairn_e2e::KV_STEPS);
}

#[test]
fn txn_and_compaction_match_etcdctl() {
    same(cairn_e2e::TXN_STEPS);
}

#[test]
fn count_only_endpoint_status_and_version() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &[]);
    let ep = cairn.endpoint();
    for k in ["a1", "a2", "a3", "b"] {
        assert_eq!(cairnctl(&ep, &["put", k, "v"], None).code, 0);
    }
    // etcdctl 3.5's --count-only (3.4 lacks it).
    let r = cairnctl(
        &ep,
        &["get", "a", "--prefix", "--count-only", "-w", "fields"],
        None,
    );
    assert_eq!(r.code, 0, "{r:?}");
    assert!(r.stdout.contains("\"Count\" : 3\n"), "{}", r.stdout);
    let r = cairnctl(&ep, &["endpoint", "status", "-w", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(v[0]["Status"]["header"]["revision"], 5);
    assert_eq!(v[0]["Endpoint"], ep.as_str());
    let r = cairnctl(&ep, &["endpoint", "health"], None);
    assert!(
        r.stderr
            .starts_with(&format!("{ep} is healthy: successfully committed proposal"))
    );
    let r = cairnctl(&ep, &["version"], None);
    assert!(r.stdout.starts_with("cairnctl version: "), "{}", r.stdout);
    // ETCDCTL_* variables work like flags.
    let out = std::process::Command::new(cairn_e2e::cairnctl_bin())
        .env("ETCDCTL_ENDPOINTS", &ep)
        .env("ETCDCTL_WRITE_OUT", "json")
        .args(["get", "b"])
        .output()
        .unwrap();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["count"], 1);
}

/// Output with what differs between two runs of a membership change masked: member ids (hex
/// and decimal), cluster and member ids in headers, the Raft term, and the order of members
/// (which follows their ids).
fn masked(run: &cairn_e2e::Run) -> (i32, String, String) {
    let (code, out, err) = normalized(run);
    let hex = |s: &str| {
        s.split(' ')
            .map(|w| {
                let t = w.trim_end_matches([',', '\n']);
                if (1..=16).contains(&t.len())
                    && t.len() >= 12
                    && t.chars().all(|c| c.is_ascii_hexdigit())
                {
                    w.replace(t, "<id>")
                } else {
                    w.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(" ")
            // `%16x` pads shorter ids with spaces.
            .replace("  <id>", " <id>")
    };
    let out = match serde_json::from_str::<serde_json::Value>(&run.stdout) {
        Ok(mut v) => {
            fn scrub(v: &mut serde_json::Value) {
                match v {
                    serde_json::Value::Object(m) => {
                        for k in ["ID", "cluster_id", "member_id", "raft_term"] {
                            if m.contains_key(k) {
                                m.insert(k.into(), 0.into());
                            }
                        }
                        for x in m.values_mut() {
                            scrub(x);
                        }
                        if let Some(serde_json::Value::Array(a)) = m.get_mut("members") {
                            a.sort_by_key(|x| x.to_string());
                        }
                    }
                    serde_json::Value::Array(a) => a.iter_mut().for_each(scrub),
                    _ => {}
                }
            }
            scrub(&mut v);
            v.to_string()
        }
        Err(_) => out
            .lines()
            .map(|l| match l.strip_prefix("ETCD_INITIAL_CLUSTER=") {
                Some(list) => {
                    let mut items: Vec<&str> = list.trim_matches('"').split(',').collect();
                    items.sort();
                    format!("ETCD_INITIAL_CLUSTER={}", items.join(","))
                }
                None => hex(l),
            })
            .collect::<Vec<_>>()
            .join("\n"),
    };
    (code, out, hex(&err))
}

/// Membership and cluster commands, each run with etcdctl and then cairnctl against the same
/// 3-member Cairn cluster, in every output format.
#[test]
fn cluster_commands_match_etcdctl() {
    use cairn_e2e::Cluster;
    let dir = tempfile::tempdir().unwrap();
    let c = Cluster::start(
        dir.path(),
        3,
        &["--heartbeat-interval", "50", "--election-timeout", "500"],
    );
    let ep = c.members[0].endpoint();
    let all = c.endpoints();
    let peer = format!("--peer-urls=http://127.0.0.1:{}", cairn_e2e::free_port());
    let peer2 = format!("--peer-urls=http://127.0.0.1:{}", cairn_e2e::free_port());
    let learner_id = |tool: &dyn Fn(&str, &[&str]) -> cairn_e2e::Run| -> String {
        let list = tool(&ep, &["member", "list"]);
        list.stdout
            .lines()
            .find(|l| l.ends_with("true"))
            .and_then(|l| l.split(',').next())
            .unwrap_or("0")
            .to_string()
    };
    let etcdctl_run = |e: &str, a: &[&str]| etcdctl(e, a, None);
    let cairnctl_run = |e: &str, a: &[&str]| cairnctl(e, a, None);
    for format in ["simple", "json", "fields", "table", "protobuf"] {
        let mut runs: Vec<Vec<(i32, String, String)>> = Vec::new();
        for tool in [
            &etcdctl_run as &dyn Fn(&str, &[&str]) -> cairn_e2e::Run,
            &cairnctl_run,
        ] {
            let mut got = Vec::new();
            let add = tool(
                &ep,
                &["member", "add", "x", &peer, "--learner", "-w", format],
            );
            got.push(masked(&add));
            // With fields and table the member is added, then printing is refused.
            assert_ne!(
                learner_id(tool),
                "0",
                "-w {format}: no learner after {add:?}"
            );
            let id = learner_id(tool);
            got.push(masked(&tool(
                &ep,
                &["member", "add", "y", &peer2, "--learner", "-w", format],
            )));
            got.push(masked(&tool(
                &ep,
                &["member", "update", &id, &peer2, "-w", format],
            )));
            got.push(masked(&tool(
                &ep,
                &["member", "promote", &id, "-w", format],
            )));
            got.push(masked(&tool(&ep, &["member", "remove", &id, "-w", format])));
            if tool(&ep, &["member", "list"]).stdout.contains(", true") {
                assert_eq!(tool(&ep, &["member", "remove", &id]).code, 0);
            }
            got.push(masked(&tool(&all, &["endpoint", "hashkv", "-w", format])));
            runs.push(got);
        }
        if format == "protobuf" {
            // Binary answers carry the ids: compare only success and errors.
            let codes = |r: &Vec<(i32, String, String)>| {
                r.iter()
                    .map(|(c, _, e)| (*c, e.clone()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(codes(&runs[1]), codes(&runs[0]), "-w protobuf");
        } else {
            for (i, (want, got)) in runs[0].iter().zip(&runs[1]).enumerate() {
                assert_eq!(got, want, "-w {format}, step {i} (left: cairnctl)");
            }
        }
    }
    // Argument errors.
    for args in [
        &["member", "add"][..],
        &["member", "add", "a", "b"],
        &["member", "add", "a"],
        &["member", "remove"],
        &["member", "remove", "zz"],
        &["member", "update", "1"],
        &["member", "promote"],
        &["move-leader"],
        &["move-leader", "zz"],
    ] {
        assert_eq!(
            masked(&cairnctl(&ep, args, None)),
            masked(&etcdctl(&ep, args, None)),
            "{args:?}"
        );
    }
    // move-leader, asked of a follower only, then of every member.
    let follower = c.members.iter().find(|m| {
        let s = etcdctl(&m.endpoint(), &["endpoint", "status", "-w", "json"], None);
        let v: serde_json::Value = serde_json::from_str(&s.stdout).unwrap();
        v[0]["Status"]["leader"] != v[0]["Status"]["header"]["member_id"]
    });
    let follower = follower.unwrap().endpoint();
    let status = etcdctl(&follower, &["endpoint", "status", "-w", "json"], None);
    let v: serde_json::Value = serde_json::from_str(&status.stdout).unwrap();
    let me = format!(
        "{:x}",
        v[0]["Status"]["header"]["member_id"].as_u64().unwrap()
    );
    assert_eq!(
        masked(&cairnctl(&follower, &["move-leader", &me], None)),
        masked(&etcdctl(&follower, &["move-leader", &me], None))
    );
    for format in ["simple", "json", "fields"] {
        let want = masked(&etcdctl(&all, &["move-leader", &me, "-w", format], None));
        let got = masked(&cairnctl(&all, &["move-leader", &me, "-w", format], None));
        assert_eq!(got, want, "move-leader -w {format}");
    }
}
