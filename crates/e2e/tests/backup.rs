//! Maintenance.Snapshot: real etcdctl saves a snapshot of a member while writes go on; the file
//! is etcd's framing (the backend copy, then the SHA-256 of it) and the copy is etcd's backend
//! file holding every write acknowledged before the save began.

use cairn_e2e::{Member, etcdctl};
use cairn_proto::mvccpb::KeyValue;
use prost::Message;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

#[test]
fn etcdctl_saves_a_consistent_snapshot_while_writes_go_on() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    for i in 0..200 {
        let out = etcdctl(
            &ep,
            &["put", &format!("before/{i:03}"), &"v".repeat(500)],
            None,
        );
        assert_eq!(out.code, 0, "{out:?}");
    }
    // Writers keep going during the save.
    let stop = Arc::new(AtomicBool::new(false));
    let writer = {
        let (stop, ep) = (stop.clone(), ep.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::Relaxed) {
                let out = etcdctl(&ep, &["put", &format!("during/{n}"), "w"], None);
                assert_eq!(out.code, 0, "a write failed during the save: {out:?}");
                n += 1;
            }
            n
        })
    };
    let file = dir.path().join("backup.db");
    let saved = etcdctl(&ep, &["snapshot", "save", file.to_str().unwrap()], None);
    stop.store(true, Ordering::Relaxed);
    let writes_during = writer.join().unwrap();
    assert_eq!(saved.code, 0, "{saved:?}");
    assert!(saved.stdout.contains("Snapshot saved at"), "{saved:?}");
    assert!(writes_during > 0);

    // etcd's framing: the copy, then its SHA-256.
    let bytes = std::fs::read(&file).unwrap();
    assert!(bytes.len() > 32);
    let (copy, trailer) = bytes.split_at(bytes.len() - 32);
    assert_eq!(
        ring::digest::digest(&ring::digest::SHA256, copy).as_ref(),
        trailer
    );

    // The copy is etcd's backend file holding everything written before the save.
    let db = dir.path().join("restored.db");
    std::fs::write(&db, copy).unwrap();
    let backend = cairn_bbolt::Reader::open(&db).unwrap();
    let mut before = std::collections::BTreeSet::new();
    backend
        .each(b"key", &mut |_, record| {
            let kv = KeyValue::decode(record).unwrap();
            if kv.key.starts_with(b"before/") {
                before.insert(kv.key.to_vec());
            }
            Ok::<(), cairn_bbolt::BboltError>(())
        })
        .unwrap();
    assert_eq!(before.len(), 200);

    // Only root may take one once auth is on.
    for step in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "bob:b"],
        &["auth", "enable"],
    ] {
        assert_eq!(etcdctl(&ep, step, None).code, 0, "{step:?}");
    }
    let refused = etcdctl(
        &ep,
        &[
            "--user=bob:b",
            "snapshot",
            "save",
            dir.path().join("no.db").to_str().unwrap(),
        ],
        None,
    );
    assert_ne!(refused.code, 0);
    assert!(
        refused.stderr.contains("auth: permission denied"),
        "{refused:?}"
    );
    let root = etcdctl(
        &ep,
        &[
            "--user=root:rootpw",
            "snapshot",
            "save",
            dir.path().join("root.db").to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(root.code, 0, "{root:?}");
}

/// A file that a save left in place must be a whole snapshot: backend pages, then the
/// SHA-256 of them.
fn assert_whole(path: &std::path::Path) {
    let data = std::fs::read(path).unwrap();
    assert!(
        data.len() > 32 && data.len() % 512 == 32,
        "{} bytes",
        data.len()
    );
    let (body, trailer) = data.split_at(data.len() - 32);
    let digest = ring::digest::digest(&ring::digest::SHA256, body);
    assert_eq!(digest.as_ref(), trailer, "{}", path.display());
}

#[test]
fn a_save_killed_on_either_side_leaves_nothing_half_written() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    cairn_e2e::load_keys(&ep, 4, 75, 64 * 1024, |t, i| format!("big/{t}/{i:04}"));
    // Clients killed at moments spread over a save: a file in place is a whole one.
    for tool in ["cairnctl", "etcdctl"] {
        let started = std::time::Instant::now();
        let probe = dir.path().join(format!("{tool}-timed.db"));
        let run = if tool == "etcdctl" {
            etcdctl(&ep, &["snapshot", "save", probe.to_str().unwrap()], None)
        } else {
            cairn_e2e::cairnctl(&ep, &["snapshot", "save", probe.to_str().unwrap()], None)
        };
        assert_eq!(run.code, 0, "{run:?}");
        let whole = started.elapsed();
        let mut interrupted = 0;
        for attempt in 0..8u32 {
            let path = dir.path().join(format!("{tool}-{attempt}.db"));
            let bin = if tool == "etcdctl" {
                cairn_e2e::etcdctl_bin()
            } else {
                cairn_e2e::cairnctl_bin()
            };
            let mut child = std::process::Command::new(bin)
                .env("ETCDCTL_API", "3")
                .args([
                    "--endpoints",
                    &ep,
                    "snapshot",
                    "save",
                    path.to_str().unwrap(),
                ])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap();
            std::thread::sleep(whole * attempt / 8);
            let _ = child.kill();
            let status = child.wait().unwrap();
            if path.exists() {
                assert_whole(&path);
            } else {
                assert!(
                    !status.success(),
                    "{tool}: a save that succeeded left no file"
                );
                interrupted += 1;
            }
        }
        assert!(interrupted > 0, "{tool}: no save was interrupted");
    }
    // The member killed mid-save: the client fails and keeps no file; the member restarts
    // clean, with no copy of its backend left beside it.
    let path = dir.path().join("server-killed.db");
    let mut child = std::process::Command::new(cairn_e2e::cairnctl_bin())
        .args([
            "--endpoints",
            &ep,
            "snapshot",
            "save",
            path.to_str().unwrap(),
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut part = path.clone().into_os_string();
    part.push(".part");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::path::Path::new(&part).exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the download never began"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    m.kill9();
    let status = child.wait().unwrap();
    if path.exists() {
        // The whole copy had already arrived.
        assert!(status.success());
        assert_whole(&path);
    } else {
        assert!(!status.success());
    }
    m.restart();
    let snap_dir = m.data_dir.join("member").join("snap");
    let leftovers: Vec<_> = std::fs::read_dir(&snap_dir)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("client-snapshot-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let run = etcdctl(
        &ep,
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
    );
    assert_eq!(run.code, 0, "{run:?}");
    let count = serde_json::from_str::<serde_json::Value>(&run.stdout).unwrap()["count"].clone();
    assert_eq!(count, 300, "{run:?}");
}

/// What etcdctl 3.5's `snapshot save` reads besides the data (its `SnapshotWithVersion`): the
/// server version in the stream's messages, the first one included. (etcdctl 3.5 itself cannot be
/// installed here; Debian ships 3.4.)
#[test]
fn the_snapshot_stream_carries_the_server_version() {
    let dir = tempfile::tempdir().expect("tempdir");
    let member = Member::start(&dir.path().join("m1"), &[]);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = cairn_client::Client::connect_one(
            &member.endpoint(),
            std::time::Duration::from_secs(5),
        )
        .await
        .expect("connect");
        client.put("k", "v").await.expect("put");
        let version = client
            .maintenance()
            .status(cairn_proto::etcdserverpb::StatusRequest {})
            .await
            .expect("status")
            .into_inner()
            .version;
        assert!(version.starts_with("3."), "{version}");
        let mut stream = client
            .maintenance()
            .snapshot(cairn_proto::etcdserverpb::SnapshotRequest {})
            .await
            .expect("snapshot")
            .into_inner();
        let mut messages = 0;
        while let Some(m) = stream.message().await.expect("a message") {
            if messages == 0 {
                assert!(m.header.is_some(), "the first message has the header");
            }
            assert_eq!(m.version, version);
            messages += 1;
        }
        assert!(messages >= 2, "data, then the SHA-256");
    });
}
