//! `cairnutl backup` (etcdutl 3.5's legacy backup): a copy of a stopped member's data dir that
//! starts only with `--force-new-cluster`, as a one-member cluster with every acknowledged
//! write, while the original is left as it was.

use cairn_e2e::{Member, cairnctl, cairnutl};
use std::time::Duration;

fn keys(m: &Member) -> String {
    let got = cairnctl(
        &m.endpoint(),
        &["get", "k", "--prefix", "--keys-only"],
        None,
    );
    assert_eq!(got.code, 0, "{got:?}");
    got.stdout
}

#[test]
fn a_backup_starts_alone_with_force_new_cluster_and_has_every_write() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("m1");
    let mut original = Member::start(&data, &[]);
    for i in 0..20 {
        let put = cairnctl(
            &original.endpoint(),
            &["put", &format!("k{i:02}"), "v"],
            None,
        );
        assert_eq!(put.code, 0, "{put:?}");
    }
    assert_eq!(
        cairnctl(&original.endpoint(), &["del", "k05"], None).code,
        0
    );
    let want = keys(&original);
    let d = data.to_str().unwrap();
    let copy = dir.path().join("copy");
    let c = copy.to_str().unwrap();

    // Not while the member runs (its backend is locked).
    let busy = cairnutl(&["backup", "--data-dir", d, "--backup-dir", c]);
    assert_eq!(busy.code, 1, "{busy:?}");
    original.kill9();

    let bad = cairnutl(&[
        "backup",
        "--data-dir",
        d,
        "--backup-dir",
        c,
        "--with-v3=false",
    ]);
    assert_eq!(bad.code, 128, "{bad:?}");
    let made = cairnutl(&["backup", "--data-dir", d, "--backup-dir", c]);
    assert_eq!(made.code, 0, "{made:?}");
    let again = cairnutl(&["backup", "--data-dir", d, "--backup-dir", c, "--with-v3"]);
    assert_eq!(
        (again.code, again.stderr.as_str()),
        (
            1,
            format!(
                "Error: expected {:?} to be empty, got [db]\n",
                copy.join("member").join("snap").display().to_string()
            )
            .as_str()
        ),
        "{again:?}"
    );

    // Without --force-new-cluster the copy would be the original member: refused.
    let mut plain = Member::unstarted("m1", &copy, &[]);
    let status = plain.run_to_exit(Duration::from_secs(20));
    assert!(status.is_some_and(|s| !s.success()), "{}", plain.log_text());
    assert!(
        plain
            .log_text()
            .contains("is a copy made by `cairnutl backup`"),
        "{}",
        plain.log_text()
    );

    // With it: a cluster of one with every write the original acknowledged.
    let mut alone = Member::unstarted("m1", &copy, &["--force-new-cluster"]);
    alone.launch();
    assert_eq!(keys(&alone), want);
    let members = cairnctl(&alone.endpoint(), &["member", "list"], None);
    assert_eq!(members.stdout.lines().count(), 1, "{members:?}");
    assert_eq!(
        cairnctl(&alone.endpoint(), &["put", "k99", "new"], None).code,
        0
    );
    // The mark is gone once it started alone: later starts need no flag.
    alone.kill9();
    alone.extra.clear();
    alone.launch();
    assert!(keys(&alone).contains("k99"));

    // The original is untouched.
    original.launch();
    assert_eq!(keys(&original), want);
}
