//! `make-mirror` as the way data moves from real etcd to Cairn while etcd keeps serving: real
//! etcd is the source, and two Cairn members are mirrored from it, one by `cairnctl
//! make-mirror`, one by real etcdctl's. Both must end with the same keys, values and revisions
//! (the same writes in the same order), renamed to the destination prefix, with each source
//! transaction still one transaction. Argument errors match etcdctl's.

use cairn_e2e::{Bg, Member, RealEtcd, Run, etcdctl};
use serde_json::Value;
use std::time::{Duration, Instant};

fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "{run:?}");
    run
}

/// Every key with its value and revisions, as `get -w json` shows them.
fn dump(ep: &str) -> Vec<(String, String, u64, u64, u64)> {
    let run = ok(etcdctl(ep, &["get", "", "--prefix", "-w", "json"], None));
    let v: Value = serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"));
    let text = |x: &Value| {
        use base64::Engine as _;
        let raw = base64::engine::general_purpose::STANDARD
            .decode(x.as_str().unwrap_or_default())
            .unwrap_or_default();
        String::from_utf8_lossy(&raw).into_owned()
    };
    let num = |x: &Value| x.as_u64().unwrap_or(0);
    v["kvs"]
        .as_array()
        .map(|kvs| {
            kvs.iter()
                .map(|kv| {
                    (
                        text(&kv["key"]),
                        text(&kv["value"]),
                        num(&kv["create_revision"]),
                        num(&kv["mod_revision"]),
                        num(&kv["version"]),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

fn wait_for_key(ep: &str, key: &str, mirror: &Bg) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = ok(etcdctl(ep, &["get", key], None));
        if !got.stdout.is_empty() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{key} never reached {ep}: {}",
            mirror.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn cairnctl_mirrors_real_etcd_into_cairn_as_etcdctl_does() {
    let source = RealEtcd::start();
    let src = source.endpoint();
    for i in 0..1500 {
        ok(etcdctl(
            &src,
            &["put", &format!("a/{i:04}"), &format!("v{i}")],
            None,
        ));
        if i % 500 == 0 {
            ok(etcdctl(&src, &["put", "other", &i.to_string()], None));
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let by_cairnctl = Member::start(&dir.path().join("d1"), &[]);
    let by_etcdctl = Member::start(&dir.path().join("d2"), &[]);
    let args = |dest: &Member| {
        vec![
            "make-mirror".to_string(),
            "--prefix".into(),
            "a/".into(),
            "--dest-prefix".into(),
            "m/".into(),
            dest.endpoint(),
        ]
    };
    let a1 = args(&by_cairnctl);
    let a2 = args(&by_etcdctl);
    let m1 = Bg::cairnctl(&src, &a1.iter().map(String::as_str).collect::<Vec<_>>());
    let m2 = Bg::etcdctl(&src, &a2.iter().map(String::as_str).collect::<Vec<_>>());
    // The copy of the key space (1500 keys, two pages and a half) lands first...
    wait_for_key(&by_cairnctl.endpoint(), "m/1499", &m1);
    wait_for_key(&by_etcdctl.endpoint(), "m/1499", &m2);
    // ...then changes follow: puts, deletes, a transaction of three, and keys outside the prefix.
    ok(etcdctl(&src, &["put", "a/new", "n"], None));
    ok(etcdctl(&src, &["del", "a/0003"], None));
    ok(etcdctl(&src, &["put", "a/0004", "changed"], None));
    ok(etcdctl(&src, &["put", "other", "x"], None));
    ok(etcdctl(
        &src,
        &["txn"],
        Some("\nput a/t1 1\nput a/t2 2\ndel a/0005\n\n\n"),
    ));
    ok(etcdctl(&src, &["put", "a/last", "z"], None));
    wait_for_key(&by_cairnctl.endpoint(), "m/last", &m1);
    wait_for_key(&by_etcdctl.endpoint(), "m/last", &m2);

    let mirrored = dump(&by_cairnctl.endpoint());
    assert_eq!(mirrored, dump(&by_etcdctl.endpoint()));
    let expected: Vec<(String, String)> = dump(&src)
        .into_iter()
        .filter_map(|(k, v, ..)| k.strip_prefix("a/").map(|rest| (format!("m/{rest}"), v)))
        .collect();
    let got: Vec<(String, String)> = mirrored
        .iter()
        .map(|(k, v, ..)| (k.clone(), v.clone()))
        .collect();
    assert_eq!(got, expected);
    let value = |key: &str| {
        mirrored
            .iter()
            .find(|(k, ..)| k == key)
            .map(|(_, v, ..)| v.as_str())
    };
    assert_eq!(value("m/0003"), None);
    assert_eq!(value("m/0004"), Some("changed"));
    assert_eq!(value("m/new"), Some("n"));
    assert_eq!(value("m/0005"), None);
    assert_eq!(mirrored.len(), 1500 - 2 + 4);
    // The source's transaction is one revision on the destination too.
    let rev = |key: &str| {
        mirrored
            .iter()
            .find(|(k, ..)| k == key)
            .map(|(_, _, _, m, _)| *m)
    };
    assert!(rev("m/t1").is_some());
    assert_eq!(rev("m/t1"), rev("m/t2"));
    assert!(mirrored.iter().all(|(k, ..)| k.starts_with("m/")));
}

#[test]
fn make_mirror_argument_errors_match_etcdctl() {
    let source = RealEtcd::start();
    let src = source.endpoint();
    let dir = tempfile::tempdir().unwrap();
    let dest = Member::start(&dir.path().join("d"), &[]);
    for args in [
        vec!["make-mirror"],
        vec!["make-mirror", "a:1", "b:2"],
        vec![
            "make-mirror",
            "--dest-prefix",
            "x/",
            "--no-dest-prefix",
            &dest.endpoint(),
        ],
    ] {
        let ours = cairn_e2e::cairnctl(&src, &args, None);
        let theirs = etcdctl(&src, &args, None);
        assert_eq!(ours.code, theirs.code, "{args:?}: {ours:?} {theirs:?}");
        assert_ne!(ours.code, 0);
        assert_eq!(ours.stderr, theirs.stderr, "{args:?}");
    }
}

/// etcdctl 3.5's `--dest-user` without a password asks for it ("Destination Password: ") and
/// logs in to the destination with it.
#[test]
fn a_destination_user_without_password_is_asked_for_one() {
    let dir = tempfile::tempdir().unwrap();
    let source = Member::start(&dir.path().join("src"), &[]);
    let dest = Member::start(&dir.path().join("dst"), &["--bcrypt-cost", "4"]);
    let src = source.endpoint();
    let dst = dest.endpoint();
    ok(etcdctl(&src, &["put", "a/1", "one"], None));
    ok(etcdctl(&dst, &["user", "add", "root:pw"], None));
    ok(etcdctl(&dst, &["auth", "enable"], None));
    let mut cmd = std::process::Command::new(cairn_e2e::cairnctl_bin());
    cmd.args([
        "--endpoints",
        &src,
        "make-mirror",
        "--dest-user",
        "root",
        &dst,
    ]);
    let mirror = Bg::spawn_fed(cmd, Some("pw\n"));
    let as_root = |args: &[&str]| {
        let mut all = vec!["--user", "root:pw"];
        all.extend_from_slice(args);
        etcdctl(&dst, &all, None)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while as_root(&["get", "a/1", "--print-value-only"]).stdout.trim() != "one" {
        assert!(
            Instant::now() < deadline,
            "nothing mirrored: {}",
            mirror.stderr_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    ok(etcdctl(&src, &["put", "a/2", "two"], None));
    let deadline = Instant::now() + Duration::from_secs(30);
    while as_root(&["get", "a/2", "--print-value-only"]).stdout.trim() != "two" {
        assert!(Instant::now() < deadline, "{}", mirror.stderr_text());
        std::thread::sleep(Duration::from_millis(100));
    }
    let prompt = mirror.lines(1, Duration::from_secs(5));
    assert!(
        prompt[0].starts_with("Destination Password: "),
        "{prompt:?}"
    );
}
