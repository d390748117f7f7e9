//! Leases through real etcdctl: grant, attach, keep-alive, expiry seen by a watcher, revoke, and
//! remaining TTLs that survive SIGKILL.

use cairn_e2e::{Member, etcdctl};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn grant(ep: &str, ttl: u64) -> String {
    let r = etcdctl(ep, &["lease", "grant", &ttl.to_string()], None);
    assert_eq!(r.code, 0, "{r:?}");
    // "lease 694da2354f299d00 granted with TTL(2s)"
    r.stdout.split_whitespace().nth(1).unwrap().to_string()
}

fn ttl_of(ep: &str, id: &str) -> (i64, i64, Vec<String>) {
    let r = etcdctl(
        ep,
        &["lease", "timetolive", id, "--keys", "-w", "json"],
        None,
    );
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let keys = v["keys"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|k| String::from_utf8(base64_decode(k.as_str().unwrap())).unwrap())
                .collect()
        })
        .unwrap_or_default();
    (
        v["ttl"].as_i64().unwrap(),
        v["granted-ttl"].as_i64().unwrap(),
        keys,
    )
}

fn base64_decode(s: &str) -> Vec<u8> {
    const T: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|&c| c != b'=') {
        let v = T.iter().position(|&t| t == c).unwrap() as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
        }
    }
    out
}

/// Whether `key` exists; a failing get fails the test rather than reading as "gone".
fn exists(ep: &str, key: &str) -> bool {
    let r = etcdctl(ep, &["get", key], None);
    assert_eq!(r.code, 0, "get {key}: {r:?}");
    !r.stdout.is_empty()
}

/// Runs etcdctl and requires it to succeed.
fn ok(ep: &str, args: &[&str]) -> String {
    let r = etcdctl(ep, args, None);
    assert_eq!(r.code, 0, "{args:?}: {r:?}");
    r.stdout
}

/// The store revision, from a serializable-free header read.
fn revision(ep: &str) -> i64 {
    let out = ok(ep, &["get", "no-such-key", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    v["header"]["revision"].as_i64().unwrap()
}

#[test]
fn grant_attach_list_revoke_and_errors() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let id = grant(&ep, 100);
    assert_eq!(
        etcdctl(&ep, &["put", "k1", "v", "--lease", &id], None).code,
        0
    );
    assert_eq!(
        etcdctl(&ep, &["put", "k2", "v", "--lease", &id], None).code,
        0
    );
    let (ttl, granted, keys) = ttl_of(&ep, &id);
    assert!((98..=100).contains(&ttl), "{ttl}");
    assert_eq!(granted, 100);
    assert_eq!(keys, vec!["k1", "k2"]);
    // Re-putting a key without the lease detaches it.
    ok(&ep, &["put", "k2", "v2"]);
    assert_eq!(ttl_of(&ep, &id).2, vec!["k1"]);
    let list = etcdctl(&ep, &["lease", "list"], None);
    assert!(list.stdout.contains(&id), "{}", list.stdout);
    // The minimum TTL is raised like etcd's (1.5 election timeouts, rounded up: 2s).
    let short = etcdctl(&ep, &["lease", "grant", "1"], None);
    assert!(
        short.stdout.ends_with("granted with TTL(2s)\n"),
        "{}",
        short.stdout
    );

    let r = etcdctl(&ep, &["lease", "revoke", &id], None);
    assert_eq!(r.stdout, format!("lease {id} revoked\n"));
    assert!(!exists(&ep, "k1"));
    assert!(exists(&ep, "k2"));
    let r = etcdctl(&ep, &["lease", "revoke", &id], None);
    assert_eq!(r.code, 1);
    assert!(
        r.stderr.contains("etcdserver: requested lease not found"),
        "{}",
        r.stderr
    );
    let r = etcdctl(&ep, &["put", "k3", "v", "--lease", &id], None);
    assert!(
        r.stderr.contains("etcdserver: requested lease not found"),
        "{}",
        r.stderr
    );
    let r = etcdctl(&ep, &["lease", "timetolive", &id], None);
    assert_eq!(r.stdout, format!("lease {id} already expired\n"));
    let r = etcdctl(&ep, &["lease", "grant", "9000000001"], None);
    assert!(
        r.stderr.contains("etcdserver: too large lease TTL"),
        "{}",
        r.stderr
    );
    // A txn whose put names a missing lease changes nothing.
    let r = etcdctl(
        &ep,
        &["txn"],
        Some(&format!("\nput t1 v\nput t2 v --lease={id}\n\n\n")),
    );
    assert!(r.stderr.contains("requested lease not found"), "{r:?}");
    assert!(!exists(&ep, "t1"));
}

#[test]
fn expiry_deletes_keys_and_watchers_see_it_and_keepalive_prevents_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let doomed = grant(&ep, 2);
    let kept = grant(&ep, 2);
    ok(&ep, &["put", "doomed", "x", "--lease", &doomed]);
    ok(&ep, &["put", "kept", "y", "--lease", &kept]);
    // From the next revision on, so the watch sees the expiry however late it starts.
    let from = (revision(&ep) + 1).to_string();
    let mut watch = Command::new(cairn_e2e::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &ep, "watch", "doomed", "--rev", &from])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut keepalive = Command::new(cairn_e2e::etcdctl_bin())
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &ep, "lease", "keep-alive", &kept])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while exists(&ep, "doomed") {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "lease did not expire"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        start.elapsed() >= Duration::from_millis(1000),
        "expired too early"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        exists(&ep, "kept"),
        "keep-alive did not keep the lease alive"
    );
    let _ = watch.kill();
    let out = watch.wait_with_output().unwrap();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "DELETE\ndoomed\n\n");
    let _ = keepalive.kill();
    let out = keepalive.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&out.stdout)
            .contains(&format!("lease {kept} keepalived with TTL(2)"))
    );
    // Without keep-alives it expires too.
    let start = Instant::now();
    while exists(&ep, "kept") {
        assert!(
            start.elapsed() < Duration::from_secs(8),
            "lease did not expire"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn remaining_ttl_survives_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let short = grant(&ep, 6);
    let granted_at = Instant::now();
    let long = grant(&ep, 30);
    ok(&ep, &["put", "short", "x", "--lease", &short]);
    ok(&ep, &["put", "long", "y", "--lease", &long]);
    // A renewal must survive the crash too: renew `long` after 2 s, let the checkpoint land.
    std::thread::sleep(Duration::from_secs(2));
    let r = etcdctl(&ep, &["lease", "keep-alive", "--once", &long], None);
    assert_eq!(r.code, 0, "{r:?}");
    std::thread::sleep(Duration::from_millis(1200));
    m.restart();
    let ep = m.endpoint();
    let (ttl, granted, keys) = ttl_of(&ep, &short);
    assert_eq!(granted, 6);
    assert!(ttl <= 3, "remaining TTL was reset by the restart: {ttl}");
    assert_eq!(keys, vec!["short"]);
    let (ttl, _, keys) = ttl_of(&ep, &long);
    assert!(ttl >= 27, "the renewal was lost: {ttl}");
    assert_eq!(keys, vec!["long"]);
    // The short lease still expires on its original schedule.
    while exists(&ep, "short") {
        assert!(
            granted_at.elapsed() < Duration::from_secs(10),
            "lease did not expire after restart"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        granted_at.elapsed() >= Duration::from_millis(5500),
        "expired early: {:?}",
        granted_at.elapsed()
    );
    assert!(exists(&ep, "long"));
}

/// libfaketime (Debian's `libfaketime`, installed by .ci/run) shifts the wall clock of the
/// member under test, re-reading the shift from a file, and leaves its monotonic clock alone.
const FAKETIME_LIB: &str = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

#[test]
fn wall_clock_steps_do_not_move_expiry() {
    assert!(
        std::path::Path::new(FAKETIME_LIB).exists(),
        "{FAKETIME_LIB} not found: install Debian's libfaketime (.ci/run does)"
    );
    let dir = tempfile::tempdir().unwrap();
    let shift = dir.path().join("faketime");
    std::fs::write(&shift, "+0\n").unwrap();
    let mut m = Member::start(&dir.path().join("m1"), &[]);
    m.env = vec![
        ("LD_PRELOAD".into(), FAKETIME_LIB.into()),
        (
            "FAKETIME_TIMESTAMP_FILE".into(),
            shift.to_string_lossy().into(),
        ),
        ("FAKETIME_NO_CACHE".into(), "1".into()),
        ("DONT_FAKE_MONOTONIC".into(), "1".into()),
    ];
    m.restart();
    let ep = m.endpoint();

    // A step forward (NTP correcting a slow clock by two hours) must not expire a live lease.
    let forward = grant(&ep, 6);
    let granted_at = Instant::now();
    ok(&ep, &["put", "forward", "x", "--lease", &forward]);
    std::fs::write(&shift, "+2h\n").unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        exists(&ep, "forward"),
        "a wall-clock step forward expired the lease early"
    );
    let (ttl, _, _) = ttl_of(&ep, &forward);
    assert!(
        (2..=4).contains(&ttl),
        "remaining TTL jumped with the clock: {ttl}"
    );
    while exists(&ep, "forward") {
        assert!(
            granted_at.elapsed() < Duration::from_secs(12),
            "lease did not expire"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(granted_at.elapsed() >= Duration::from_millis(5500));

    // A step back must not keep a lease alive past its TTL.
    let back = grant(&ep, 3);
    let granted_at = Instant::now();
    ok(&ep, &["put", "back", "y", "--lease", &back]);
    std::fs::write(&shift, "-2h\n").unwrap();
    while exists(&ep, "back") {
        assert!(
            granted_at.elapsed() < Duration::from_secs(9),
            "a wall-clock step back kept the lease alive"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(granted_at.elapsed() >= Duration::from_millis(2500));
}
