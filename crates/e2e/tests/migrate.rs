//! `cairnutl migrate` (etcdutl 3.6's): the storage version a stopped member's backend records,
//! its argument checks and log lines, and a member started afterwards moving it back to the
//! cluster version as etcd's storage version monitor does.

use cairn_e2e::{Member, cairnctl, cairnutl, http_get};

fn storage(m: &Member) -> String {
    let body = http_get(m.client_port, "/version").unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
    v["storage"].as_str().unwrap_or_default().to_string()
}

#[test]
fn migrate_sets_the_recorded_storage_version_and_a_member_moves_it_back() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("m1");
    let mut m = Member::start(&data, &[]);
    let now = storage(&m);
    let status = cairnctl(&m.endpoint(), &["endpoint", "status", "-w", "json"], None);
    assert!(
        status.stdout.contains(&format!("\"version\":\"{now}\"")),
        "the storage version is the server's at first: {status:?} {now}"
    );
    let minor: u64 = now.split('.').nth(1).unwrap().parse().unwrap();
    let below = format!("3.{}", minor - 1);
    assert_eq!(cairnctl(&m.endpoint(), &["put", "k", "v"], None).code, 0);
    let d = data.to_str().unwrap();

    // A running member's backend is refused.
    let busy = cairnutl(&["migrate", "--data-dir", d, "--target-version", &below]);
    assert_eq!(busy.code, 1, "{busy:?}");
    m.kill9();

    // etcdutl's argument checks.
    for (target, error) in [
        (
            "3.6.0".to_string(),
            "Error: wrong target version format, expected \"X.Y\", got \"3.6.0\"\n",
        ),
        (
            "3".to_string(),
            "Error: wrong target version format, expected \"X.Y\", got \"3\"\n",
        ),
        (
            "3.4".to_string(),
            "Error: target version \"3.4\" not supported. Minimal \"3.5\"\n",
        ),
        (
            "a.b".to_string(),
            "Error: failed to parse target version: a.b.0 is not a valid version\n",
        ),
    ] {
        let r = cairnutl(&["migrate", "--data-dir", d, "--target-version", &target]);
        assert_eq!((r.code, r.stderr.as_str()), (128, error), "{target}");
    }
    let missing = cairnutl(&["migrate", "--target-version", &below]);
    assert_eq!(missing.code, 128, "{missing:?}");

    let same = cairnutl(&[
        "migrate",
        "--data-dir",
        d,
        "--target-version",
        &format!("3.{minor}"),
    ]);
    assert_eq!(same.code, 0, "{same:?}");
    assert!(
        same.stderr.contains("storage version up-to-date"),
        "{same:?}"
    );
    assert!(
        same.stderr
            .contains(&format!("\"storage-version\":\"3.{minor}\"")),
        "{same:?}"
    );

    let down = cairnutl(&["migrate", "--data-dir", d, "--target-version", &below]);
    assert_eq!(down.code, 0, "{down:?}");
    assert!(
        down.stderr.contains("updated storage version")
            && down
                .stderr
                .contains(&format!("\"new-storage-version\":\"{below}.0\"")),
        "{down:?}"
    );
    let again = cairnutl(&["migrate", "--data-dir", d, "--target-version", &below]);
    assert!(
        again.stderr.contains("storage version up-to-date"),
        "{again:?}"
    );

    // Newer than this build: refused unless forced.
    let newer = format!("3.{}", minor + 1);
    let refused = cairnutl(&["migrate", "--data-dir", d, "--target-version", &newer]);
    assert_eq!(
        (refused.code, refused.stderr.as_str()),
        (
            1,
            format!(
                "Error: cannot create migration plan: version \"3.{}.0\" is not supported\n",
                minor + 1
            )
            .as_str()
        ),
        "{refused:?}"
    );
    let forced = cairnutl(&[
        "migrate",
        "--data-dir",
        d,
        "--target-version",
        &newer,
        "--force",
    ]);
    assert_eq!(forced.code, 0, "{forced:?}");
    assert!(
        forced
            .stderr
            .contains("normal migrate failed, trying with force")
            && forced.stderr.contains("forcefully set storage version"),
        "{forced:?}"
    );
    let down = cairnutl(&["migrate", "--data-dir", d, "--target-version", &below]);
    assert!(down.stderr.contains("updated storage version"), "{down:?}");

    // The member finds the older record, moves it to the cluster version, and lost nothing.
    m.restart();
    assert_eq!(storage(&m), now);
    let log = m.log_text();
    assert!(
        log.contains("cluster version differs from storage version.")
            && log.contains("updated storage version"),
        "{log}"
    );
    let got = cairnctl(&m.endpoint(), &["get", "k", "--print-value-only"], None);
    assert_eq!(got.stdout.trim(), "v", "{got:?}");
    let status = cairnctl(&m.endpoint(), &["endpoint", "status", "-w", "json"], None);
    assert!(
        status
            .stdout
            .contains(&format!("\"storageVersion\":\"{now}\"")),
        "{status:?}"
    );
}
