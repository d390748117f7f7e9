//! Membership changes on real processes with real etcdctl: a learner joins a running cluster,
//! catches up, is promoted; a voter is removed and stops itself (also when it was down at the
//! time and comes back); etcd's refusals.

use cairn_e2e::{Cluster, Member, etcdctl};
use std::time::{Duration, Instant};

const FAST_RAFT: &[&str] = &["--heartbeat-interval", "50", "--election-timeout", "500"];

/// Runs etcdctl until it succeeds (or `timeout` passes); returns its stdout.
fn until_ok(endpoint: &str, args: &[&str], timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let run = etcdctl(endpoint, args, None);
        if run.code == 0 {
            return run.stdout;
        }
        assert!(
            Instant::now() < deadline,
            "etcdctl {args:?} kept failing: {run:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn member_id(list: &str, name: &str) -> String {
    list.lines()
        .find(|l| l.contains(&format!(", {name}, ")))
        .and_then(|l| l.split(',').next())
        .unwrap_or_else(|| panic!("{name} not in {list}"))
        .to_string()
}

#[test]
fn a_learner_joins_is_promoted_and_a_removed_voter_stops() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let ep = c.members[1].endpoint();
    for i in 0..50 {
        assert_eq!(
            etcdctl(&ep, &["put", &format!("k{i:02}"), "v"], None).code,
            0
        );
    }

    // Add m4 as a learner and start it with what `member add` prints.
    let (mut m4, out) = added(dir.path(), &ep, "m4", true, FAST_RAFT);
    assert!(
        out.contains("ETCD_INITIAL_CLUSTER_STATE=\"existing\""),
        "{out}"
    );
    let initial = m4.initial_cluster.clone().unwrap_or_default();
    assert!(
        initial.contains(&format!("m4={}", m4.peer_url())),
        "{initial}"
    );
    // Only one learner at a time; a peer URL only once.
    let second = etcdctl(
        &ep,
        &[
            "member",
            "add",
            "m5",
            "--learner",
            "--peer-urls=http://127.0.0.1:1",
        ],
        None,
    );
    assert!(
        second
            .stderr
            .contains("etcdserver: too many learner members in cluster"),
        "{second:?}"
    );
    let dup = etcdctl(
        &ep,
        &[
            "member",
            "add",
            "m5",
            &format!("--peer-urls={}", m4.peer_url()),
        ],
        None,
    );
    assert!(
        dup.stderr.contains("etcdserver: Peer URLs already exists"),
        "{dup:?}"
    );
    m4.launch();
    let e4 = m4.endpoint();
    // The learner catches up and serves serializable reads, nothing else.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = etcdctl(
            &e4,
            &["get", "k", "--prefix", "--keys-only", "--consistency=s"],
            None,
        );
        if got.code == 0 && got.stdout.lines().filter(|l| l.starts_with('k')).count() == 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "learner did not catch up: {got:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let lin = etcdctl(&e4, &["get", "k00"], None);
    assert!(
        lin.stderr
            .contains("etcdserver: rpc not supported for learner"),
        "{lin:?}"
    );

    let list = until_ok(&ep, &["member", "list"], Duration::from_secs(5));
    assert!(
        list.contains(", started, m4, ")
            && list
                .trim_end()
                .lines()
                .any(|l| l.contains("m4") && l.ends_with("true")),
        "{list}"
    );
    let id4 = member_id(&list, "m4");
    let id1 = member_id(&list, "m1");
    let not_learner = etcdctl(&ep, &["member", "promote", &id1], None);
    assert!(
        not_learner
            .stderr
            .contains("etcdserver: can only promote a learner member"),
        "{not_learner:?}"
    );
    let promoted = until_ok(&ep, &["member", "promote", &id4], Duration::from_secs(15));
    assert!(
        promoted.contains(&format!("Member {id4:>16} promoted in cluster")),
        "{promoted}"
    );
    // A voter now: linearizable reads work on it.
    let got = until_ok(
        &e4,
        &["get", "k49", "--print-value-only"],
        Duration::from_secs(5),
    );
    assert_eq!(got.trim(), "v");

    // Remove m1 (after the cluster has been connected long enough for the strict check); it
    // stops by itself, and the other three go on.
    let unknown = etcdctl(&ep, &["member", "remove", "1234"], None);
    assert!(
        unknown.stderr.contains("etcdserver: member not found"),
        "{unknown:?}"
    );
    let removed = until_ok(&ep, &["member", "remove", &id1], Duration::from_secs(15));
    assert!(
        removed.contains(&format!("Member {id1:>16} removed from cluster")),
        "{removed}"
    );
    let exit = c.members[0].run_to_exit_of_current(Duration::from_secs(10));
    assert!(exit.is_some(), "a removed member kept running");
    until_ok(
        &c.members[2].endpoint(),
        &["put", "after", "removal"],
        Duration::from_secs(10),
    );
    let got = until_ok(
        &e4,
        &["get", "after", "--print-value-only"],
        Duration::from_secs(5),
    );
    assert_eq!(got.trim(), "removal");
    let list = until_ok(&ep, &["member", "list"], Duration::from_secs(5));
    assert_eq!(list.lines().count(), 3, "{list}");
    assert!(!list.contains(", m1, "), "{list}");

    // A removed member started again on its data dir is told so by the others and stops.
    let exit = c.members[0].run_to_exit(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "removed m1 restarted and kept running"
    );
    assert!(
        c.members[0]
            .log_text()
            .contains("permanently removed from the cluster"),
        "{}",
        c.members[0].log_text()
    );

    // So does one removed while it was down: it never sees its removal in the log.
    c.members[2].kill9();
    let id3 = member_id(&list, "m3");
    let removed = until_ok(&ep, &["member", "remove", &id3], Duration::from_secs(15));
    assert!(removed.contains("removed from cluster"), "{removed}");
    let exit = c.members[2].run_to_exit(Duration::from_secs(10));
    assert!(
        exit.is_some_and(|s| s.success()),
        "m3, removed while down, kept running"
    );
    assert!(
        c.members[2]
            .log_text()
            .contains("permanently removed from the cluster"),
        "{}",
        c.members[2].log_text()
    );
    until_ok(&ep, &["put", "two", "left"], Duration::from_secs(10));
}

/// Under steady writes, a member catching up by snapshot needs one: the leader keeps the log
/// after a snapshot being made or streamed (instead of compacting past it and sending the
/// member back for another copy, for as long as the writes go on), and makes no second copy
/// for asks that came in while the first was made.
#[test]
fn a_member_joining_under_steady_writes_catches_up_from_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    // etcd's default timings: a leader change (a loaded CI machine, FAST_RAFT) would make the
    // new leader its own copy, which is not what this counts.
    let mut extra = vec!["--heartbeat-interval", "100", "--election-timeout", "1000"];
    extra.extend([
        "--snapshot-count",
        "100",
        "--experimental-snapshot-catchup-entries",
        "10",
    ]);
    let c = Cluster::start(dir.path(), 3, &extra);
    let endpoints: Vec<String> = c.members.iter().map(|m| m.endpoint()).collect();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let client = rt.block_on(cairn_e2e::connect_retrying(&endpoints[0]));
    // ~40 MB: copying and streaming it takes long enough for the writes below to move the log
    // far past the compaction margins.
    rt.block_on(async {
        let value = "v".repeat(8192);
        for chunk in 0..50 {
            let mut puts = Vec::new();
            for i in 0..100 {
                let (c, v) = (client.clone(), value.clone());
                puts.push(tokio::spawn(async move {
                    c.put(format!("big/{chunk:02}/{i:03}"), v).await
                }));
            }
            for p in puts {
                p.await.unwrap().unwrap();
            }
        }
    });
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writers: Vec<_> = (0..8)
        .map(|w| {
            let (c, stop) = (client.clone(), stop.clone());
            rt.spawn(async move {
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    c.put(format!("steady/{w}/{}", i % 100), format!("{i}"))
                        .await
                        .unwrap_or_else(|e| panic!("steady put: {e}"));
                    i += 1;
                }
                i
            })
        })
        .collect();

    let m4 = add_and_start(dir.path(), &endpoints[0], "m4", true, &extra);
    let deadline = Instant::now() + Duration::from_secs(60);
    while !m4
        .log_text()
        .contains("installed a snapshot from the leader")
    {
        assert!(
            Instant::now() < deadline,
            "m4 did not install a snapshot:\n{}",
            m4.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    // Writes go on for a while after the install: the member follows from the log.
    std::thread::sleep(Duration::from_secs(3));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written: u64 = rt.block_on(async {
        let mut n = 0;
        for w in writers {
            n += w.await.unwrap();
        }
        n
    });
    assert!(written > 1000, "too few steady writes to matter: {written}");
    let installs = m4
        .log_text()
        .matches("installed a snapshot from the leader")
        .count();
    let copies: usize = c
        .members
        .iter()
        .map(|m| m.log_text().matches("made a state machine copy").count())
        .sum();
    assert_eq!(
        installs,
        1,
        "m4 needed {installs} snapshots:\n{}",
        m4.log_text()
    );
    assert_eq!(copies, 1, "the leader made {copies} copies");
    let got = until_ok(
        &m4.endpoint(),
        &["get", "big/49/099", "--print-value-only", "--consistency=s"],
        Duration::from_secs(10),
    );
    assert_eq!(got.trim().len(), 8192);
}

/// A member that was down while the log was compacted catches up from a snapshot the leader
/// streams to it, and so does a new member; all end with the same data.
#[test]
fn members_behind_the_compacted_log_catch_up_by_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = FAST_RAFT.to_vec();
    extra.extend([
        "--snapshot-count",
        "200",
        "--experimental-snapshot-catchup-entries",
        "20",
    ]);
    let mut c = Cluster::start(dir.path(), 3, &extra);
    let ep = c.members[0].endpoint();
    c.members[2].kill9();
    // Users and roles made while m3 is down travel in the snapshot too.
    for step in [
        &["user", "add", "alice", "--no-password"][..],
        &["role", "add", "r1"],
        &["user", "grant-role", "alice", "r1"],
    ] {
        // A retry after a timeout that did commit finds the user or role there already.
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let run = etcdctl(&ep, step, None);
            if run.code == 0 || run.stderr.contains("already exists") {
                break;
            }
            assert!(Instant::now() < deadline, "etcdctl {step:?}: {run:?}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    let value = "x".repeat(1000);
    // The killed member may have led: a write in flight to it is lost and retried.
    for i in 0..600 {
        until_ok(
            &ep,
            &["put", &format!("s{i:04}"), &value],
            Duration::from_secs(15),
        );
    }
    c.members[2].restart();
    let e3 = c.members[2].endpoint();
    let got = until_ok(
        &e3,
        &["get", "s0599", "--print-value-only"],
        Duration::from_secs(20),
    );
    assert_eq!(got.trim(), value);
    assert!(
        c.members[2]
            .log_text()
            .contains("installed a snapshot from the leader"),
        "m3 did not catch up by snapshot:\n{}",
        c.members[2].log_text()
    );
    let alice = until_ok(&e3, &["user", "get", "alice"], Duration::from_secs(10));
    assert_eq!(alice, "User: alice\nRoles: r1\n");

    // A new member joins after the compaction: it gets a snapshot too.
    let m4 = add_and_start(dir.path(), &ep, "m4", true, &extra);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = etcdctl(
            &m4.endpoint(),
            &[
                "get",
                "s",
                "--prefix",
                "--keys-only",
                "-w",
                "json",
                "--consistency=s",
            ],
            None,
        );
        if got.stdout.contains("\"count\":600") {
            break;
        }
        assert!(Instant::now() < deadline, "m4 did not catch up: {got:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        m4.log_text()
            .contains("installed a snapshot from the leader"),
        "{}",
        m4.log_text()
    );

    // Same data everywhere (after one more write, which every member applies).
    until_ok(&ep, &["put", "final", "1"], Duration::from_secs(5));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut hashes = std::collections::BTreeSet::new();
        for e in [
            c.members[0].endpoint(),
            c.members[1].endpoint(),
            e3.clone(),
            m4.endpoint(),
        ] {
            let h = etcdctl(&e, &["endpoint", "hashkv", "-w", "json"], None);
            let v: serde_json::Value = serde_json::from_str(&h.stdout).unwrap_or_default();
            hashes.insert(v[0]["HashKV"]["hash"].as_u64().unwrap_or(0));
        }
        if hashes.len() == 1 && !hashes.contains(&0) {
            break;
        }
        assert!(Instant::now() < deadline, "HashKV differs: {hashes:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// A member killed after recording a received snapshot in its WAL but before installing the
/// copy finishes the installation when it starts again.
#[test]
fn an_interrupted_snapshot_install_is_finished_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut extra = FAST_RAFT.to_vec();
    extra.extend([
        "--snapshot-count",
        "100",
        "--experimental-snapshot-catchup-entries",
        "10",
    ]);
    let mut c = Cluster::start(dir.path(), 3, &extra);
    let ep = c.members[0].endpoint();
    c.members[2].kill9();
    for i in 0..300 {
        until_ok(
            &ep,
            &["put", &format!("i{i:04}"), "v"],
            Duration::from_secs(15),
        );
    }
    let m3 = &mut c.members[2];
    m3.env.push((
        "CAIRN_FAILPOINT_CRASH_BEFORE_SNAPSHOT_INSTALL".into(),
        "1".into(),
    ));
    let crashed = m3.run_to_exit(Duration::from_secs(20));
    assert!(
        crashed.is_some(),
        "the failpoint did not fire:\n{}",
        m3.log_text()
    );
    assert!(
        m3.log_text()
            .contains("failpoint: dying before installing a snapshot")
    );
    m3.env.clear();
    m3.restart();
    assert!(
        m3.log_text()
            .contains("finishing the installation of a received snapshot"),
        "{}",
        m3.log_text()
    );
    let got = until_ok(
        &m3.endpoint(),
        &["get", "i0299", "--print-value-only"],
        Duration::from_secs(10),
    );
    assert_eq!(got.trim(), "v");
}

/// Adds a member with `etcdctl member add` on `endpoint` and configures (without starting it)
/// a `Member` with what the command printed; returns it and the command's output.
fn added(
    dir: &std::path::Path,
    endpoint: &str,
    name: &str,
    learner: bool,
    extra: &[&str],
) -> (Member, String) {
    let mut m = Member::unstarted(name, &dir.join(name), extra);
    let peer = format!("--peer-urls={}", m.peer_url());
    let mut args = vec!["member", "add", name, peer.as_str()];
    if learner {
        args.push("--learner");
    }
    let out = until_ok(endpoint, &args, Duration::from_secs(20));
    let initial = out
        .lines()
        .find_map(|l| l.strip_prefix("ETCD_INITIAL_CLUSTER=\""))
        .and_then(|l| l.strip_suffix('"'))
        .unwrap_or_else(|| panic!("no ETCD_INITIAL_CLUSTER in {out}"))
        .to_string();
    m.initial_cluster = Some(initial);
    m.extra.extend([
        "--initial-cluster-state".to_string(),
        "existing".to_string(),
    ]);
    (m, out)
}

/// [`added`], then started; returns once it serves (a learner serves serializable reads only).
fn add_and_start(
    dir: &std::path::Path,
    endpoint: &str,
    name: &str,
    learner: bool,
    extra: &[&str],
) -> Member {
    let (mut m, _) = added(dir, endpoint, name, learner, extra);
    m.launch();
    m
}

/// Runbook 6: with two of three members gone, the survivor takes no writes but answers
/// serializable reads; restarted with `--force-new-cluster` it goes on alone with all its data,
/// and members can be added back.
#[test]
fn force_new_cluster_restarts_a_survivor_alone_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let ep = c.members[0].endpoint();
    for i in 0..100 {
        until_ok(
            &ep,
            &["put", &format!("f{i:03}"), "v"],
            Duration::from_secs(10),
        );
    }
    c.members[1].kill9();
    c.members[2].kill9();
    let put = etcdctl(
        &ep,
        &["put", "lost", "quorum", "--command-timeout=3s"],
        None,
    );
    assert_ne!(put.code, 0, "a write without quorum succeeded: {put:?}");
    let got = etcdctl(
        &ep,
        &["get", "f099", "--consistency=s", "--print-value-only"],
        None,
    );
    assert_eq!(got.stdout.trim(), "v", "{got:?}");

    let m1 = &mut c.members[0];
    m1.kill9();
    m1.extra.push("--force-new-cluster".to_string());
    m1.restart();
    m1.extra.pop();
    let ep = m1.endpoint();
    let got = etcdctl(
        &ep,
        &["get", "f", "--prefix", "--keys-only", "-w", "json"],
        None,
    );
    assert!(got.stdout.contains("\"count\":100"), "{got:?}");
    let list = until_ok(&ep, &["member", "list"], Duration::from_secs(5));
    assert_eq!(list.lines().count(), 1, "{list}");
    assert!(list.contains(", started, m1, "), "{list}");
    until_ok(&ep, &["put", "alone", "1"], Duration::from_secs(5));
    // It stays alone across a plain restart, without the flag.
    m1.restart();
    until_ok(&ep, &["put", "still", "alone"], Duration::from_secs(5));

    // Members come back the usual way.
    let m2 = add_and_start(dir.path(), &ep, "m2b", false, FAST_RAFT);
    let got = until_ok(
        &m2.endpoint(),
        &["get", "f000", "--print-value-only"],
        Duration::from_secs(10),
    );
    assert_eq!(got.trim(), "v");
}

/// Runbook 5 under load: a failed member is removed and replaced, then the cluster grows to
/// five (one through a learner) and shrinks back to three; nothing acknowledged is lost.
#[test]
fn a_failed_member_is_replaced_and_the_cluster_scales_3_to_5_to_3_under_load() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = Cluster::start(dir.path(), 3, FAST_RAFT);
    let ep = c.members[0].endpoint();
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let (ep, stop) = (ep.clone(), stop.clone());
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let cl = cairn_e2e::connect_retrying(&ep).await;
                let mut acked = Vec::new();
                let mut i = 0u64;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let key = format!("load/{i:06}");
                    i += 1;
                    if let Ok(Ok(_)) =
                        tokio::time::timeout(Duration::from_secs(8), cl.put(key.clone(), "v")).await
                    {
                        acked.push(key);
                    }
                }
                acked
            })
        })
    };
    let id_of = |list: &str, name: &str| member_id(list, name);

    // m3 fails; it is removed and replaced by m4.
    c.members[2].kill9();
    let list = until_ok(&ep, &["member", "list"], Duration::from_secs(5));
    let failed = id_of(&list, "m3");
    let removed = until_ok(&ep, &["member", "remove", &failed], Duration::from_secs(20));
    assert!(removed.contains("removed from cluster"), "{removed}");
    let m4 = add_and_start(dir.path(), &ep, "m4", false, FAST_RAFT);
    // Grow to five: m5 through a learner, m6 directly.
    let m5 = add_and_start(dir.path(), &ep, "m5", true, FAST_RAFT);
    let list = until_ok(&ep, &["member", "list"], Duration::from_secs(5));
    let id5 = id_of(&list, "m5");
    until_ok(&ep, &["member", "promote", &id5], Duration::from_secs(20));
    let mut m6 = add_and_start(dir.path(), &ep, "m6", false, FAST_RAFT);
    let list = until_ok(&ep, &["member", "list"], Duration::from_secs(5));
    assert_eq!(list.lines().count(), 5, "{list}");
    assert!(!list.contains(", true"), "a learner is left: {list}");
    // And back to three.
    let id6 = id_of(&list, "m6");
    until_ok(&ep, &["member", "remove", &id6], Duration::from_secs(20));
    assert!(
        m6.run_to_exit_of_current(Duration::from_secs(10)).is_some(),
        "removed m6 kept running"
    );
    let mut m5 = m5;
    until_ok(&ep, &["member", "remove", &id5], Duration::from_secs(20));
    assert!(
        m5.run_to_exit_of_current(Duration::from_secs(10)).is_some(),
        "removed m5 kept running"
    );
    let list = until_ok(&ep, &["member", "list"], Duration::from_secs(5));
    assert_eq!(list.lines().count(), 3, "{list}");

    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let acked = writer.join().unwrap();
    assert!(acked.len() > 100, "{}", acked.len());
    for e in [
        c.members[0].endpoint(),
        c.members[1].endpoint(),
        m4.endpoint(),
    ] {
        let got = until_ok(
            &e,
            &["get", "load/", "--prefix", "--keys-only"],
            Duration::from_secs(10),
        );
        let have: std::collections::HashSet<&str> = got.lines().filter(|l| !l.is_empty()).collect();
        let lost = acked.iter().filter(|k| !have.contains(k.as_str())).count();
        assert_eq!(lost, 0, "{e} lost {lost} acknowledged writes");
    }
}
