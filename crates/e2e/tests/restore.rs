//! Backup and restore as the runbook does it: real etcdctl saves a snapshot of a running
//! cluster, `cairnutl snapshot status` reads it, `cairnutl snapshot restore` makes the data dirs
//! of a new 3-member cluster, and that cluster serves the same data, leases and revisions under
//! a new cluster ID. Damaged snapshots and unsafe targets are refused with etcdutl's errors, and
//! a restore killed at any moment leaves no data dir a member could start on half-written.

use cairn_e2e::{Cluster, Member, Run, cairnutl, etcdctl};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Instant;

fn json(run: &Run) -> Value {
    assert_eq!(run.code, 0, "{run:?}");
    serde_json::from_str(&run.stdout).unwrap_or_else(|e| panic!("{e}: {run:?}"))
}

fn ok(run: Run) -> Run {
    assert_eq!(run.code, 0, "{run:?}");
    run
}

/// Every key and value under the whole key space, in order.
fn all_kvs(ep: &str) -> Vec<(String, String)> {
    let out = ok(etcdctl(ep, &["get", "", "--prefix"], None));
    let lines: Vec<String> = out.stdout.lines().map(str::to_string).collect();
    lines
        .chunks(2)
        .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
        .collect()
}

fn header(ep: &str, field: &str) -> u64 {
    json(&etcdctl(ep, &["get", "missing", "-w", "json"], None))["header"][field]
        .as_u64()
        .unwrap()
}

/// Unstarted members for a new cluster: their `--initial-cluster` is known before any data
/// dir exists, so the restore can be told it.
fn new_members(dir: &Path, n: usize) -> (Vec<Member>, String) {
    let mut members: Vec<Member> = (1..=n)
        .map(|i| Member::unstarted(&format!("r{i}"), &dir.join(format!("r{i}")), &[]))
        .collect();
    let initial = cairn_e2e::share_initial_cluster(&mut members);
    (members, initial)
}

fn restore_args<'a>(
    snapshot: &'a str,
    m: &'a Member,
    initial: &'a str,
    data_dir: &'a str,
    peer: &'a str,
) -> Vec<&'a str> {
    vec![
        "snapshot",
        "restore",
        snapshot,
        "--name",
        &m.name,
        "--initial-cluster",
        initial,
        "--initial-cluster-token",
        "restored",
        "--initial-advertise-peer-urls",
        peer,
        "--data-dir",
        data_dir,
    ]
}

#[test]
fn a_snapshot_restores_into_a_new_three_member_cluster() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let source = Cluster::start(&dir.path().join("src"), 3, &[]);
    let ep = source.endpoints();
    for i in 0..300 {
        ok(etcdctl(
            &ep,
            &["put", &format!("k/{i:03}"), &format!("v{i}")],
            None,
        ));
    }
    for i in 0..50 {
        ok(etcdctl(&ep, &["del", &format!("k/{i:03}")], None));
    }
    let granted = ok(etcdctl(&ep, &["lease", "grant", "900"], None));
    let lease = granted
        .stdout
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_string();
    ok(etcdctl(
        &ep,
        &["put", "leased", "x", "--lease", &lease],
        None,
    ));
    let compact_at = header(&ep, "revision") - 10;
    ok(etcdctl(&ep, &["compaction", &compact_at.to_string()], None));
    ok(etcdctl(&ep, &["put", "last", "y"], None));
    let revision = header(&ep, "revision");
    let source_cluster = header(&ep, "cluster_id");
    let expected = all_kvs(&ep);

    let file = dir.path().join("backup.db");
    let file_s = file.to_str().unwrap().to_string();
    let first = source.members[0].endpoint();
    let saved = ok(etcdctl(&first, &["snapshot", "save", &file_s], None));
    assert!(saved.stdout.contains("Snapshot saved at"), "{saved:?}");

    let status = json(&cairnutl(&["snapshot", "status", &file_s, "-w", "json"]));
    assert_eq!(status["revision"].as_u64(), Some(revision), "{status}");
    let file_len = std::fs::metadata(&file).unwrap().len();
    assert_eq!(status["totalSize"].as_u64(), Some(file_len - 32));
    // 301 put revisions and 50 tombstones above the compaction, and meta rows.
    assert!(status["totalKey"].as_u64().unwrap() > 250, "{status}");
    let table = ok(cairnutl(&["snapshot", "status", &file_s, "-w", "table"]));
    assert!(
        table
            .stdout
            .contains("| REVISION | TOTAL KEYS | TOTAL SIZE |"),
        "{table:?}"
    );
    drop(source);

    let (mut members, initial) = new_members(dir.path(), 3);
    for m in &members {
        let data_dir = m.data_dir.to_str().unwrap().to_string();
        let peer = m.peer_url();
        let mut args = restore_args(&file_s, m, &initial, &data_dir, &peer);
        args.extend(["--bump-revision", "1000", "--mark-compacted"]);
        let run = ok(cairnutl(&args));
        assert!(run.stderr.contains("restored snapshot"), "{run:?}");
        // Progress, a line per tenth when stderr is no terminal.
        assert!(
            run.stderr.contains("Restoring snapshot: ") && run.stderr.contains("(100%)\n"),
            "{run:?}"
        );
    }
    // No member serves before a quorum runs: start all, then wait.
    for m in &mut members {
        m.restart_unready();
    }
    for m in &mut members {
        m.wait_ready();
    }
    let eps = members
        .iter()
        .map(Member::endpoint)
        .collect::<Vec<_>>()
        .join(",");
    for m in &members {
        assert_eq!(all_kvs(&m.endpoint()), expected, "data on {}", m.name);
    }
    assert_ne!(header(&eps, "cluster_id"), source_cluster);
    let bumped = header(&eps, "revision");
    assert_eq!(bumped, revision + 1000);
    // Watchers and reads from before the restore are told to start over.
    let old = etcdctl(&eps, &["get", "last", "--rev", &revision.to_string()], None);
    assert!(
        old.stderr.contains("required revision has been compacted"),
        "{old:?}"
    );
    let listed = json(&etcdctl(&eps, &["member", "list", "-w", "json"], None));
    let mut names: Vec<&str> = listed["members"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|m| m["name"].as_str())
        .collect();
    names.sort_unstable();
    assert_eq!(names, ["r1", "r2", "r3"]);
    // The lease and its key came along, with time left.
    let ttl = ok(etcdctl(
        &eps,
        &["lease", "timetolive", &lease, "--keys"],
        None,
    ));
    assert!(ttl.stdout.contains("attached keys([leased])"), "{ttl:?}");
    // New writes get revisions above everything the old cluster handed out.
    ok(etcdctl(&eps, &["put", "after", "z"], None));
    let after = json(&etcdctl(&eps, &["get", "after", "-w", "json"], None));
    assert_eq!(
        after["kvs"][0]["mod_revision"].as_u64(),
        Some(revision + 1001)
    );
    let hashes: Vec<Value> = members
        .iter()
        .map(|m| {
            json(&etcdctl(
                &m.endpoint(),
                &["endpoint", "hashkv", "-w", "json"],
                None,
            ))
        })
        .map(|v| v[0]["HashKV"]["hash"].clone())
        .collect();
    assert!(hashes.windows(2).all(|w| w[0] == w[1]), "{hashes:?}");
}

/// Entries of `dir` whose names start with `prefix`.
fn leftovers(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect()
}

#[test]
fn damaged_snapshots_and_unsafe_targets_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(&dir.path().join("src"), &[]);
    for i in 0..100 {
        ok(etcdctl(
            &m.endpoint(),
            &["put", &format!("k{i}"), "v"],
            None,
        ));
    }
    let file = dir.path().join("backup.db");
    ok(etcdctl(
        &m.endpoint(),
        &["snapshot", "save", file.to_str().unwrap()],
        None,
    ));
    let bytes = std::fs::read(&file).unwrap();
    let target = dir.path().join("out");
    let target_s = target.to_str().unwrap();
    let restore = |snapshot: &Path, extra: &[&str]| {
        let mut args = vec![
            "snapshot",
            "restore",
            snapshot.to_str().unwrap(),
            "--data-dir",
            target_s,
        ];
        args.extend_from_slice(extra);
        cairnutl(&args)
    };
    let nothing_left = || {
        assert!(!target.exists());
        assert_eq!(leftovers(dir.path(), ".out"), Vec::<PathBuf>::new());
    };

    let mut flipped = bytes.clone();
    flipped[bytes.len() / 2] ^= 0x40;
    let bad = dir.path().join("flipped.db");
    std::fs::write(&bad, &flipped).unwrap();
    let run = restore(&bad, &[]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(run.stderr.contains("Error: expected sha256"), "{run:?}");
    nothing_left();

    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    let run = restore(&cut, &[]);
    assert!(
        run.stderr
            .contains("snapshot missing hash but --skip-hash-check=false"),
        "{run:?}"
    );
    nothing_left();
    let run = restore(&cut, &["--skip-hash-check"]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains(&format!(
            "Error: {}: not an etcd backend or damaged",
            cut.display()
        )),
        "{run:?}"
    );
    nothing_left();
    let run = cairnutl(&["snapshot", "status", cut.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert_eq!(leftovers(dir.path(), ".cut"), Vec::<PathBuf>::new());

    let run = restore(&file, &["--bump-revision", "5"]);
    assert_eq!(run.code, 128, "{run:?}");
    assert!(
        run.stderr
            .contains("--mark-compacted required if --revision-bump > 0"),
        "{run:?}"
    );
    let run = restore(&file, &["--name", "nobody"]);
    assert!(
        run.stderr
            .contains("couldn't find local name \"nobody\" in the initial cluster configuration"),
        "{run:?}"
    );
    nothing_left();

    // A data dir that holds anything is never overwritten; an empty one is used.
    std::fs::create_dir(&target).unwrap();
    std::fs::write(target.join("keep"), "x").unwrap();
    let run = restore(&file, &[]);
    assert!(
        run.stderr.contains(&format!(
            "data-dir {target_s:?} not empty or could not be read"
        )),
        "{run:?}"
    );
    assert_eq!(std::fs::read(target.join("keep")).unwrap(), b"x");
    std::fs::remove_file(target.join("keep")).unwrap();
    ok(restore(&file, &[]));
    let wal = dir.path().join("wal");
    std::fs::create_dir(&wal).unwrap();
    let other = dir.path().join("other");
    let run = cairnutl(&[
        "snapshot",
        "restore",
        file.to_str().unwrap(),
        "--data-dir",
        other.to_str().unwrap(),
        "--wal-dir",
        wal.to_str().unwrap(),
    ]);
    assert!(
        run.stderr
            .contains(&format!("wal-dir {:?} exists", wal.to_str().unwrap())),
        "{run:?}"
    );
    assert!(!other.exists());

    // A running member's backend is not touched by the offline tools.
    let run = cairnutl(&["defrag", "--data-dir", m.data_dir.to_str().unwrap()]);
    assert_eq!(run.code, 1, "{run:?}");
    assert!(
        run.stderr.contains("Failed to defragment etcd data"),
        "{run:?}"
    );
    // Stopped, it is, with its progress shown.
    m.kill9();
    let data_dir = m.data_dir.to_str().unwrap();
    let run = ok(cairnutl(&["defrag", "--data-dir", data_dir]));
    assert_eq!(
        run.stdout,
        format!("Finished defragmenting etcd data[{data_dir}]\n")
    );
    assert!(run.stderr.contains("Defragmenting: 100%\n"), "{run:?}");
}

#[test]
fn a_restore_killed_at_any_moment_leaves_no_half_written_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(&dir.path().join("src"), &[]);
    // A snapshot large enough that a restore takes a while to copy and check.
    let ep = m.endpoint();
    cairn_e2e::load_keys(&ep, 8, 2500, 1024, |t, i| format!("big/{t}/{i:05}"));
    let file = dir.path().join("backup.db");
    ok(etcdctl(
        &ep,
        &["snapshot", "save", file.to_str().unwrap()],
        None,
    ));
    m.kill9();

    let (mut members, initial) = new_members(dir.path(), 1);
    let member = &mut members[0];
    let data_dir = member.data_dir.to_str().unwrap().to_string();
    let peer = member.peer_url();
    let file_s = file.to_str().unwrap().to_string();
    let args: Vec<String> = restore_args(&file_s, member, &initial, &data_dir, &peer)
        .into_iter()
        .map(str::to_string)
        .collect();
    let started = Instant::now();
    ok(cairnutl(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    let whole = started.elapsed();
    std::fs::remove_dir_all(&member.data_dir).unwrap();

    let mut completed = 0;
    for attempt in 0..12u32 {
        let delay = whole * attempt / 10;
        let mut child = std::process::Command::new(cairn_e2e::cairnutl_bin())
            .args(&args)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        // The last one runs to its end: a restore can take longer than the timed one did when
        // the machine is busy, and one must be seen to finish.
        if attempt < 11 {
            std::thread::sleep(delay);
            let _ = child.kill();
        }
        let status = child.wait().unwrap();
        if member.data_dir.exists() {
            // In place means whole: the member starts on it and serves every key.
            member.launch();
            let count = json(&etcdctl(
                &member.endpoint(),
                &[
                    "get",
                    "big/",
                    "--prefix",
                    "--keys-only",
                    "--limit",
                    "1",
                    "-w",
                    "json",
                ],
                None,
            ));
            assert_eq!(
                count["count"].as_u64(),
                Some(20_000),
                "after a kill at {delay:?}"
            );
            member.kill9();
            std::fs::remove_dir_all(&member.data_dir).unwrap();
            completed += 1;
        } else {
            assert!(
                !status.success(),
                "a restore that succeeded left no data dir"
            );
        }
    }
    // The last restore finished; early kills interrupted theirs, and the staging they left was
    // cleared by the next restore.
    assert!((1..12).contains(&completed), "completed {completed} of 12");
    ok(cairnutl(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
    ));
    assert_eq!(leftovers(dir.path(), ".r1"), Vec::<PathBuf>::new());
}

/// etcdctl 3.5 still answers `snapshot status|restore` (deprecated, by etcdutl's code), and
/// runbooks written for etcdctl 3.4 use them, often with the command's own flags before its
/// name. cairnctl runs cairnutl's code: the same output after the same note, a member starts
/// on what it restored.
#[test]
fn cairnctl_restores_and_reads_snapshots_as_etcdctl_3_5() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let source = Cluster::start(&dir.path().join("src"), 1, &[]);
    let ep = source.endpoints();
    for i in 0..20 {
        ok(etcdctl(
            &ep,
            &["put", &format!("k{i:02}"), &format!("v{i}")],
            None,
        ));
    }
    let expected = all_kvs(&ep);
    let file = dir.path().join("backup.db");
    let file_s = file.to_str().unwrap().to_string();
    ok(cairn_e2e::cairnctl(
        &ep,
        &["snapshot", "save", &file_s],
        None,
    ));
    drop(source);

    let note = |command: &str| format!("Deprecated: Use `etcdutl snapshot {command}` instead.\n\n");
    for format in ["simple", "json", "table", "fields"] {
        let ctl = ok(cairn_e2e::cairnctl(
            "127.0.0.1:1",
            &["snapshot", "status", &file_s, "-w", format],
            None,
        ));
        let utl = ok(cairnutl(&["snapshot", "status", &file_s, "-w", format]));
        assert_eq!(ctl.stdout, utl.stdout, "{format}");
        assert!(!ctl.stdout.is_empty(), "{format}");
        assert_eq!(ctl.stderr, note("status"), "{format}");
    }
    let missing = cairn_e2e::cairnctl("127.0.0.1:1", &["snapshot", "status"], None);
    assert_eq!(missing.code, 128, "{missing:?}");
    assert!(
        missing.stderr.starts_with(&note("status"))
            && missing
                .stderr
                .ends_with("Error: snapshot status requires exactly one argument\n"),
        "{missing:?}"
    );

    let (mut members, initial) = new_members(dir.path(), 1);
    let m = &mut members[0];
    let data_dir = m.data_dir.to_str().unwrap().to_string();
    let peer = m.peer_url();
    // The runbook's order: the restore's flags before `snapshot restore`.
    let run = ok(cairn_e2e::cairnctl(
        "127.0.0.1:1",
        &[
            "--data-dir",
            &data_dir,
            "--name",
            &m.name.clone(),
            "--initial-cluster",
            &initial,
            "--initial-advertise-peer-urls",
            &peer,
            "snapshot",
            "restore",
            &file_s,
        ],
        None,
    ));
    assert!(run.stderr.starts_with(&note("restore")), "{run:?}");
    assert!(run.stderr.contains("restored snapshot"), "{run:?}");
    m.restart_unready();
    m.wait_ready();
    assert_eq!(all_kvs(&m.endpoint()), expected);
    // A data dir that holds something is refused, as etcdutl refuses it.
    let again = cairn_e2e::cairnctl(
        "127.0.0.1:1",
        &["snapshot", "restore", &file_s, "--data-dir", &data_dir],
        None,
    );
    assert_eq!(again.code, 1, "{again:?}");
    assert!(again.stderr.contains("not empty"), "{again:?}");

    // `defrag --data-dir` works offline as in etcdctl 3.5 (after its note): refused while the
    // member runs, silent on success once it is stopped, and the member starts on the result.
    let note =
        "Use `etcdutl defrag` instead. The --data-dir is going to be decomissioned in v3.6.\n\n";
    let busy = cairn_e2e::cairnctl("127.0.0.1:1", &["defrag", "--data-dir", &data_dir], None);
    assert_eq!(busy.code, 1, "{busy:?}");
    assert!(
        busy.stderr.starts_with(&format!("{note}Error: ")),
        "{busy:?}"
    );
    m.kill9();
    let done = ok(cairn_e2e::cairnctl(
        "127.0.0.1:1",
        &["--data-dir", &data_dir, "defrag"],
        None,
    ));
    assert_eq!(done.stdout, "", "{done:?}");
    assert!(done.stderr.starts_with(note), "{done:?}");
    m.restart();
    assert_eq!(all_kvs(&m.endpoint()), expected);
}
