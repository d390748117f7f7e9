//! cairnctl's `snapshot save`, `defrag` and `alarm list|disarm`.
//!
//! Side by side with etcdctl 3.4 against real etcd: the same exit code, the same stdout, the same
//! outcome lines on stderr (`Error: …`, `Failed to defragment …`; etcdctl's zap logs and
//! cairnctl's progress are not compared) and, for snapshots, byte-identical files. Then
//! `snapshot save` from a Cairn member, and what cairnctl adds to etcdctl, tried against a fake
//! Maintenance server: the check of the stream's framing and SHA-256 trailer, and no file left
//! behind by a failed or interrupted save.

use cairn_e2e::{Member, RealEtcd, cairnctl_bin, cairnutl, etcdctl_bin, free_port};
use cairn_proto::etcdserverpb::maintenance_server::{Maintenance, MaintenanceServer};
use cairn_proto::etcdserverpb::{
    AlarmMember, AlarmRequest, AlarmResponse, DefragmentRequest, DefragmentResponse,
    DowngradeRequest, DowngradeResponse, HashKvRequest, HashKvResponse, HashRequest, HashResponse,
    MoveLeaderRequest, MoveLeaderResponse, PutRequest, RequestOp, ResponseHeader, SnapshotRequest,
    SnapshotResponse, StatusRequest, StatusResponse, TxnRequest, request_op,
};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tonic::{Request, Response, Status};

/// One run of a client.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: Vec<u8>,
    stderr: String,
}

impl Out {
    /// What must match between etcdctl and cairnctl: the exit code, stdout, and the stderr
    /// lines that report the outcome.
    fn outcome(&self) -> (i32, String, Vec<String>) {
        let lines = self
            .stderr
            .lines()
            .filter(|l| l.starts_with("Error:") || l.starts_with("Failed to "))
            .map(str::to_string)
            .collect();
        (
            self.code,
            String::from_utf8_lossy(&self.stdout).into_owned(),
            lines,
        )
    }

    fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }
}

fn command(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut cmd = Command::new(bin);
    cmd.env("ETCDCTL_API", "3")
        .envs(env.iter().copied())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd
}

fn run_env(bin: &Path, args: &[&str], env: &[(&str, &str)]) -> Out {
    let o = command(bin, args, env).output().expect("run client");
    Out {
        code: o.status.code().unwrap_or(-1),
        stdout: o.stdout,
        stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

fn etcdctl(args: &[&str]) -> Out {
    run_env(&etcdctl_bin(), args, &[])
}

fn cairnctl(args: &[&str]) -> Out {
    run_env(&cairnctl_bin(), args, &[])
}

/// Runs both with `args` and `env`; they must end the same way. Returns cairnctl's run.
fn same_env(args: &[&str], env: &[(&str, &str)]) -> Out {
    let e = run_env(&etcdctl_bin(), args, env);
    let c = run_env(&cairnctl_bin(), args, env);
    assert_eq!(
        c.outcome(),
        e.outcome(),
        "cairnctl (left) and etcdctl (right) differ for {args:?} {env:?}\ncairnctl stderr:\n{}\netcdctl stderr:\n{}",
        c.stderr,
        e.stderr
    );
    c
}

fn same(args: &[&str]) -> Out {
    same_env(args, &[])
}

/// Users root (rootpw) and bob (pw, no roles), then auth on, with real etcdctl.
fn enable_auth_with_bob(ep: &str) {
    for args in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "bob:pw"],
        &["auth", "enable"],
    ] {
        let mut full = vec!["--endpoints", ep];
        full.extend(args);
        assert_eq!(etcdctl(&full).code, 0, "{args:?}");
    }
}

fn s(p: &Path) -> &str {
    p.to_str().expect("utf-8 temp path")
}

fn sha256(data: &[u8]) -> Vec<u8> {
    ring::digest::digest(&ring::digest::SHA256, data)
        .as_ref()
        .to_vec()
}

/// The file is a backend followed by the SHA-256 of it, as etcd frames snapshots.
fn assert_trailer_checks_out(file: &Path) -> Vec<u8> {
    let data = std::fs::read(file).expect("read snapshot");
    assert!(data.len() > 32, "{} is too short", file.display());
    let (body, trailer) = data.split_at(data.len() - 32);
    assert_eq!(
        sha256(body),
        trailer,
        "{}: trailer is not the SHA-256 of the rest",
        file.display()
    );
    data
}

fn part_of(p: &Path) -> PathBuf {
    PathBuf::from(format!("{}.part", p.display()))
}

/// cairnctl's progress on a stderr that is not a terminal: a few plain lines, the last at 100%.
fn assert_plain_progress(stderr: &str) {
    assert!(
        !stderr.contains('\r'),
        "carriage returns off a terminal: {stderr:?}"
    );
    let lines: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("Downloading snapshot: "))
        .collect();
    assert!(
        !lines.is_empty() && lines.len() <= 10,
        "progress lines: {lines:?}"
    );
    assert!(
        lines.last().is_some_and(|l| l.ends_with("(100%)")),
        "{lines:?}"
    );
}

fn sigterm(child: &Child) {
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: sends a signal to a child this test started and has not reaped.
    unsafe {
        libc::kill(pid, libc::SIGTERM);
    }
}

#[test]
fn snapshot_save_matches_etcdctl() {
    let etcd = RealEtcd::start();
    let ep = etcd.endpoint();
    let ep = ep.as_str();
    let dir = tempfile::tempdir().expect("tempdir");
    let value = "v".repeat(20_000);
    for i in 0..20 {
        assert_eq!(
            etcdctl(&["--endpoints", ep, "put", &format!("k{i}"), &value]).code,
            0
        );
    }

    // Saved files: the same bytes (nothing is written in between), private, framed as etcd's.
    let e_path = dir.path().join("etcdctl.db");
    let c_path = dir.path().join("cairnctl.db");
    let e = etcdctl(&["--endpoints", ep, "snapshot", "save", s(&e_path)]);
    let c = cairnctl(&["--endpoints", ep, "snapshot", "save", s(&c_path)]);
    assert_eq!((e.code, c.code), (0, 0), "{e:?}\n{c:?}");
    assert_eq!(
        e.stdout_text(),
        format!("Snapshot saved at {}\n", e_path.display())
    );
    assert_eq!(
        c.stdout_text(),
        format!("Snapshot saved at {}\n", c_path.display())
    );
    let saved = assert_trailer_checks_out(&c_path);
    assert!(saved.len() > 200_000, "{} bytes", saved.len());
    assert_eq!(saved, std::fs::read(&e_path).expect("read etcdctl's file"));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(&c_path)
        .expect("stat")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    assert_plain_progress(&c.stderr);
    // An existing file is replaced.
    let again = cairnctl(&["--endpoints", ep, "snapshot", "save", s(&c_path)]);
    assert_eq!(again.code, 0);
    assert_eq!(std::fs::read(&c_path).expect("read"), saved);

    // Refusals before anything is written, then failures that must leave no file behind.
    let missing = dir.path().join("missing").join("x.db");
    let a_dir = dir.path().join("a-dir");
    std::fs::create_dir(&a_dir).expect("mkdir");
    let dead = format!("127.0.0.1:{}", free_port());
    let two = format!("{ep},{dead}");
    let target = dir.path().join("t.db");
    for args in [
        vec!["--endpoints", ep, "snapshot", "save"],
        vec!["--endpoints", ep, "snapshot", "save", "a", "b"],
        vec![
            "--endpoints",
            ep,
            "snapshot",
            "save",
            s(&target),
            "-w",
            "bogus",
        ],
        vec!["--endpoints", &two, "snapshot", "save", s(&target)],
        vec!["--endpoints", ep, "snapshot", "save", s(&missing)],
        // Downloaded, then the rename fails: the partial file goes too.
        vec!["--endpoints", ep, "snapshot", "save", s(&a_dir)],
        vec![
            "--endpoints",
            &dead,
            "--command-timeout",
            "1s",
            "snapshot",
            "save",
            s(&target),
        ],
    ] {
        let c = same(&args);
        assert_ne!(c.code, 0, "{args:?}");
        assert!(!target.exists() && !part_of(&target).exists(), "{args:?}");
        assert!(!part_of(&a_dir).exists(), "{args:?}");
    }
    // The timeout counts as given when it comes from the environment.
    let c = same_env(
        &["--endpoints", &dead, "snapshot", "save", s(&target)],
        &[("ETCDCTL_COMMAND_TIMEOUT", "1s")],
    );
    assert_eq!(c.code, 5);
    assert!(!target.exists() && !part_of(&target).exists());

    // Without --command-timeout a save has no deadline: both still wait for the member after
    // longer than the default command timeout. etcdctl dies on SIGTERM leaving its partial
    // file; cairnctl removes it.
    let e_target = dir.path().join("e-wait.db");
    let c_target = dir.path().join("c-wait.db");
    let mut e = command(
        &etcdctl_bin(),
        &["--endpoints", &dead, "snapshot", "save", s(&e_target)],
        &[],
    )
    .spawn()
    .expect("spawn etcdctl");
    let mut c = command(
        &cairnctl_bin(),
        &["--endpoints", &dead, "snapshot", "save", s(&c_target)],
        &[],
    )
    .spawn()
    .expect("spawn cairnctl");
    std::thread::sleep(Duration::from_secs(7));
    assert!(matches!(e.try_wait(), Ok(None)), "etcdctl gave up");
    assert!(matches!(c.try_wait(), Ok(None)), "cairnctl gave up");
    assert!(part_of(&c_target).exists());
    sigterm(&c);
    let status = cairn_e2e::wait_with_timeout(&mut c, Duration::from_secs(10));
    assert_eq!(status.code(), Some(143));
    assert!(!c_target.exists() && !part_of(&c_target).exists());
    let _ = e.kill();
    let _ = e.wait();
    assert!(!e_target.exists());

    // With auth on: only root may take a snapshot; a refused login is exit code 5 as well.
    enable_auth_with_bob(ep);
    for user in ["bob:pw", "root:bad"] {
        let c = same(&[
            "--endpoints",
            ep,
            "--user",
            user,
            "snapshot",
            "save",
            s(&target),
        ]);
        assert_eq!(c.code, 5);
        assert!(!target.exists() && !part_of(&target).exists());
    }
    let c = cairnctl(&[
        "--endpoints",
        ep,
        "--user",
        "root:rootpw",
        "snapshot",
        "save",
        s(&target),
    ]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_trailer_checks_out(&target);
}

#[test]
fn snapshot_save_from_cairn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let member = Member::start(&dir.path().join("m1"), &[]);
    let ep = member.endpoint();
    let ep = ep.as_str();
    let value = "w".repeat(10_000);
    for i in 0..30 {
        assert_eq!(
            cairnctl(&["--endpoints", ep, "put", &format!("key{i}"), &value]).code,
            0
        );
    }
    let path = dir.path().join("cairn.db");
    let c = cairnctl(&["--endpoints", ep, "snapshot", "save", s(&path)]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(
        c.stdout_text(),
        format!("Snapshot saved at {}\n", path.display())
    );
    assert_plain_progress(&c.stderr);
    let data = assert_trailer_checks_out(&path);
    // Whole backend pages, then the 32-byte trailer (what restore tools look for).
    assert_eq!(data.len() % 512, 32);
    assert!(!part_of(&path).exists());
    // etcdctl takes the same kind of file from the same member.
    let e_path = dir.path().join("etcdctl.db");
    let e = etcdctl(&["--endpoints", ep, "snapshot", "save", s(&e_path)]);
    assert_eq!(e.code, 0, "{e:?}");
    assert_trailer_checks_out(&e_path);
    // And the offline tool reads it: every key is in it.
    let st = cairnutl(&["snapshot", "status", s(&path), "-w", "json"]);
    assert_eq!(st.code, 0, "{st:?}");
    let status: serde_json::Value = serde_json::from_str(st.stdout.trim()).expect("json status");
    assert!(
        status["totalKey"].as_u64().is_some_and(|n| n >= 30),
        "{status}"
    );
}

#[test]
fn defrag_matches_etcdctl() {
    // The member also advertises a client URL nobody serves, so `--cluster` meets a failure.
    let port = free_port();
    let dead = format!("127.0.0.1:{}", free_port());
    let urls = format!("http://127.0.0.1:{port},http://{dead}");
    let etcd = RealEtcd::start_on(port, "http", &["--advertise-client-urls", &urls], &[]);
    let ep = etcd.endpoint();
    let ep = ep.as_str();
    let both = format!("{dead},{ep}");
    let fast = ["--command-timeout", "1s"];
    let c = same(&["--endpoints", ep, "defrag"]);
    assert_eq!(
        (c.code, c.stdout_text()),
        (0, format!("Finished defragmenting etcd member[{ep}]\n"))
    );
    let mut cluster = vec!["--endpoints", ep];
    cluster.extend(fast);
    cluster.extend(["defrag", "--cluster"]);
    let c = same(&cluster);
    assert_eq!(c.code, 1);
    assert_eq!(
        c.stdout_text(),
        format!("Finished defragmenting etcd member[http://127.0.0.1:{port}]\n")
    );
    assert!(
        c.stderr.contains(&format!(
            "Failed to defragment etcd member[http://{dead}] (context deadline exceeded)\n"
        )),
        "{}",
        c.stderr
    );
    for args in [
        vec!["--endpoints", ep, "defrag", "--cluster=false", "-w", "json"],
        vec!["--endpoints", ep, "defrag", "-w", "protobuf"],
        vec!["--endpoints", ep, "defrag", "-w", "bogus"],
        vec!["--endpoints", ep, "defrag", "ignored", "words"],
        vec!["--endpoints", &both, "--command-timeout", "1s", "defrag"],
        vec![
            "--endpoints",
            &dead,
            "--command-timeout",
            "1s",
            "defrag",
            "--cluster",
        ],
    ] {
        same(&args);
    }
    // `--cluster` has no variable for defrag (etcdctl warns about it and ignores it).
    let c = same_env(
        &["--endpoints", ep, "defrag"],
        &[("ETCDCTL_CLUSTER", "true")],
    );
    assert_eq!(
        c.stdout_text(),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );

    // With auth on: a non-root user's defrag fails per member (exit code 1), a refused login
    // ends the command (exit code 2).
    enable_auth_with_bob(ep);
    assert_eq!(
        same(&["--endpoints", ep, "--user", "bob:pw", "defrag"]).code,
        1
    );
    assert_eq!(
        same(&["--endpoints", ep, "--user", "root:bad", "defrag"]).code,
        2
    );
    assert_eq!(
        same(&["--endpoints", ep, "--user", "root:rootpw", "defrag"]).code,
        0
    );
}

const FORMATS: [&str; 4] = ["simple", "json", "protobuf", "table"];

/// Writes big values until etcd refuses one for its quota, which raises NOSPACE.
fn raise_nospace(ep: &str) {
    let value = "x".repeat(1_000_000);
    for i in 0..40 {
        let r = cairn_e2e::etcdctl(ep, &["put", &format!("big{i}")], Some(&value));
        if r.stderr
            .contains("etcdserver: mvcc: database space exceeded")
        {
            let list = etcdctl(&["--endpoints", ep, "alarm", "list"]);
            assert!(list.stdout_text().contains("alarm:NOSPACE"), "{list:?}");
            return;
        }
        assert_eq!(r.code, 0, "{r:?}");
    }
    panic!("etcd never ran out of space");
}

fn alarms_of(ep: &str) -> String {
    etcdctl(&["--endpoints", ep, "alarm", "list"]).stdout_text()
}

/// `alarm list` and `alarm disarm` in every format, without and with a NOSPACE alarm, by both
/// clients against one member with a 4 MiB quota. `headerless`: the member answers alarms
/// without a header (etcd 3.4), on which etcdctl 3.4's fields printer crashes.
fn alarms_side_by_side(ep: &str, headerless: bool) {
    let zero_header = "\"ClusterID\" : 0\n\"MemberID\" : 0\n\"Revision\" : 0\n\"RaftTerm\" : 0\n";
    let formats: &[&str] = if headerless {
        &FORMATS
    } else {
        &["simple", "json", "protobuf", "table", "fields"]
    };

    // No alarm. A disarm's combined answer has no header, so etcdctl's fields printer always
    // crashes on it.
    for f in formats {
        same(&["--endpoints", ep, "alarm", "list", "-w", f]);
    }
    for f in FORMATS {
        same(&["--endpoints", ep, "alarm", "disarm", "-w", f]);
    }
    for args in [
        vec!["--endpoints", ep, "alarm", "list", "x"],
        vec!["--endpoints", ep, "alarm", "disarm", "x"],
        vec!["--endpoints", ep, "alarm", "list", "-w", "bogus"],
    ] {
        same(&args);
    }
    if headerless {
        let e = etcdctl(&["--endpoints", ep, "alarm", "list", "-w", "fields"]);
        assert_eq!(e.code, 2);
        assert!(e.stderr.starts_with("panic: "), "{}", e.stderr);
        let c = cairnctl(&["--endpoints", ep, "alarm", "list", "-w", "fields"]);
        assert_eq!((c.code, c.stdout_text()), (0, zero_header.to_string()));
    }

    // NOSPACE raised: listed alike in every format.
    raise_nospace(ep);
    let member_id = {
        let list = alarms_of(ep);
        let id = list
            .strip_prefix("memberID:")
            .and_then(|rest| rest.strip_suffix(" alarm:NOSPACE \n"))
            .unwrap_or_else(|| panic!("unexpected alarm list {list:?}"))
            .to_string();
        assert!(id.parse::<u64>().is_ok(), "{id}");
        id
    };
    for f in formats {
        let c = same(&["--endpoints", ep, "alarm", "list", "-w", f]);
        if *f == "json" {
            assert!(
                c.stdout_text().ends_with(&format!(
                    "\"alarms\":[{{\"memberID\":{member_id},\"alarm\":1}}]}}\n"
                )),
                "{}",
                c.stdout_text()
            );
        }
    }
    let alarm_fields = format!("\"MemberID\" : {member_id}\n\"AlarmType\" : NOSPACE\n\n");
    if headerless {
        let c = cairnctl(&["--endpoints", ep, "alarm", "list", "-w", "fields"]);
        assert_eq!(c.stdout_text(), format!("{zero_header}{alarm_fields}"));
    }

    // Disarmed by each in each format (table disarms, then refuses to print).
    for f in FORMATS {
        let e = etcdctl(&["--endpoints", ep, "alarm", "disarm", "-w", f]);
        assert_eq!(alarms_of(ep), "", "etcdctl disarm -w {f}");
        raise_nospace(ep);
        let c = cairnctl(&["--endpoints", ep, "alarm", "disarm", "-w", f]);
        assert_eq!(alarms_of(ep), "", "cairnctl disarm -w {f}");
        assert_eq!(c.outcome(), e.outcome(), "disarm -w {f}: {}", c.stderr);
        if f == "simple" {
            assert_eq!(
                c.stdout_text(),
                format!("memberID:{member_id} alarm:NOSPACE \n")
            );
        }
        raise_nospace(ep);
    }
    let c = cairnctl(&["--endpoints", ep, "alarm", "disarm", "-w", "fields"]);
    assert_eq!(
        (c.code, c.stdout_text()),
        (0, format!("{zero_header}{alarm_fields}"))
    );
    assert_eq!(alarms_of(ep), "");
}

#[test]
fn alarms_match_etcdctl() {
    let etcd = RealEtcd::start_with("http", &["--quota-backend-bytes", "4194304"], &[]);
    alarms_side_by_side(&etcd.endpoint(), true);
}

/// Against a Cairn member, cairnctl prints what etcdctl prints for alarms and defrag (Cairn
/// answers alarms with a header, so the fields format is compared too).
#[test]
fn alarms_and_defrag_on_cairn_match_etcdctl() {
    let dir = tempfile::tempdir().expect("tempdir");
    let member = Member::start(
        &dir.path().join("m1"),
        &["--quota-backend-bytes", "4194304"],
    );
    let ep = member.endpoint();
    alarms_side_by_side(&ep, false);
    let c = same(&["--endpoints", &ep, "defrag"]);
    assert_eq!(
        c.stdout_text(),
        format!("Finished defragmenting etcd member[{ep}]\n")
    );
    same(&["--endpoints", &ep, "defrag", "--cluster"]);
}

#[test]
fn online_defrag_shows_progress() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut member = Member::unstarted("m1", &dir.path().join("m1"), &["--max-txn-ops", "10000"]);
    // The copy pauses after each batch of 20,000 records, so that a poll every 250 ms sees it.
    member
        .env
        .push(("CAIRN_FAILPOINT_DEFRAG_STEP_DELAY_MS".into(), "400".into()));
    member.launch();
    member.wait_ready();
    let ep = member.endpoint();
    put_in_txns(&ep, 6, 10_000);
    let c = cairnctl(&["--endpoints", &ep, "defrag"]);
    assert_eq!(
        (c.code, c.stdout_text()),
        (0, format!("Finished defragmenting etcd member[{ep}]\n"))
    );
    assert!(!c.stderr.contains('\r'), "{:?}", c.stderr);
    let percents: Vec<u64> = c
        .stderr
        .lines()
        .filter_map(|l| l.strip_prefix("Defragmenting: "))
        .map(|p| p.trim_end_matches('%').parse().expect("a percentage"))
        .collect();
    // Three batches of the 60,000 keys (and a few other records): a line per tenth crossed.
    assert!(percents.len() >= 2, "{:?}", c.stderr);
    assert!(percents.windows(2).all(|w| w[0] < w[1]), "{percents:?}");
    assert!(percents.iter().all(|p| *p <= 100), "{percents:?}");
    // etcd's server cannot tell: etcdctl's output and nothing else, as from etcdctl.
    let etcd = RealEtcd::start();
    let e = cairnctl(&["--endpoints", &etcd.endpoint(), "defrag"]);
    assert_eq!(e.code, 0);
    assert_eq!(e.stderr, "");
}

/// Writes `txns * per_txn` small keys, `per_txn` to a transaction: a store of many records,
/// quickly.
fn put_in_txns(ep: &str, txns: usize, per_txn: usize) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = cairn_client::Client::connect_one(ep, Duration::from_secs(5))
            .await
            .expect("connect");
        for t in 0..txns {
            let success = (0..per_txn)
                .map(|i| RequestOp {
                    request: Some(request_op::Request::RequestPut(PutRequest {
                        key: format!("k/{t}/{i:05}").into_bytes().into(),
                        value: b"v".to_vec().into(),
                        ..Default::default()
                    })),
                })
                .collect();
            client
                .kv()
                .txn(TxnRequest {
                    success,
                    ..Default::default()
                })
                .await
                .expect("txn");
        }
    });
}

/// What the fake member's Snapshot sends.
#[derive(Clone, Copy, Debug)]
enum Stream {
    Whole,
    WrongTrailer,
    /// Ends after two blobs.
    Cut,
    /// Ends after two blobs and 32 more bytes, which makes a file of the size etcdctl expects.
    CutLooksWhole,
    Failing,
}

/// A Maintenance service serving made-up snapshots and alarms with headers, for what real
/// members do not do on demand.
struct Fake {
    stream: Arc<Mutex<Stream>>,
}

/// Whole 512-byte pages, as a backend is.
const DATA_LEN: usize = 100 * 1024;
const CHUNK: usize = 32 * 1024;

fn header() -> Option<ResponseHeader> {
    Some(ResponseHeader {
        cluster_id: 11,
        member_id: 22,
        revision: 33,
        raft_term: 44,
    })
}

fn snapshot_messages(kind: Stream) -> Vec<Result<SnapshotResponse, Status>> {
    let data: Vec<u8> = (0..DATA_LEN).map(|i| (i % 251) as u8).collect();
    let mut out = Vec::new();
    let mut sent = 0;
    for chunk in data.chunks(CHUNK) {
        sent += chunk.len();
        out.push(Ok(SnapshotResponse {
            header: None,
            remaining_bytes: (DATA_LEN - sent) as u64,
            blob: bytes::Bytes::copy_from_slice(chunk),
            version: String::new(),
        }));
    }
    let mut trailer = sha256(&data);
    match kind {
        Stream::Whole => {}
        Stream::WrongTrailer => trailer[0] ^= 1,
        Stream::Cut => {
            out.truncate(2);
            return out;
        }
        Stream::CutLooksWhole => {
            out.truncate(2);
            out.push(Ok(SnapshotResponse {
                header: None,
                remaining_bytes: (DATA_LEN - 2 * CHUNK - 32) as u64,
                blob: bytes::Bytes::copy_from_slice(&data[2 * CHUNK..2 * CHUNK + 32]),
                version: String::new(),
            }));
            return out;
        }
        Stream::Failing => {
            out.truncate(2);
            // Not Unavailable: etcdctl's client would open the stream again and append.
            out.push(Err(Status::internal("the copy broke")));
            return out;
        }
    }
    out.push(Ok(SnapshotResponse {
        header: None,
        remaining_bytes: 0,
        blob: trailer.into(),
        version: String::new(),
    }));
    out
}

type SnapshotStream =
    Pin<Box<dyn tokio_stream::Stream<Item = Result<SnapshotResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Maintenance for Fake {
    async fn alarm(&self, r: Request<AlarmRequest>) -> Result<Response<AlarmResponse>, Status> {
        let r = r.into_inner();
        let alarms = match r.action {
            // GET: two members with alarms.
            0 => vec![
                AlarmMember {
                    member_id: 22,
                    alarm: 1,
                },
                AlarmMember {
                    member_id: 23,
                    alarm: 2,
                },
            ],
            _ => vec![AlarmMember {
                member_id: r.member_id,
                alarm: r.alarm,
            }],
        };
        Ok(Response::new(AlarmResponse {
            header: header(),
            alarms,
        }))
    }

    async fn status(&self, _: Request<StatusRequest>) -> Result<Response<StatusResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn defragment(
        &self,
        _: Request<DefragmentRequest>,
    ) -> Result<Response<DefragmentResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn hash(&self, _: Request<HashRequest>) -> Result<Response<HashResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn hash_kv(&self, _: Request<HashKvRequest>) -> Result<Response<HashKvResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    type SnapshotStream = SnapshotStream;

    async fn snapshot(
        &self,
        _: Request<SnapshotRequest>,
    ) -> Result<Response<Self::SnapshotStream>, Status> {
        let kind = *self.stream.lock().unwrap_or_else(|e| e.into_inner());
        Ok(Response::new(Box::pin(tokio_stream::iter(
            snapshot_messages(kind),
        ))))
    }

    async fn move_leader(
        &self,
        _: Request<MoveLeaderRequest>,
    ) -> Result<Response<MoveLeaderResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }

    async fn downgrade(
        &self,
        _: Request<DowngradeRequest>,
    ) -> Result<Response<DowngradeResponse>, Status> {
        Err(Status::unimplemented("fake"))
    }
}

#[test]
fn damaged_streams_and_alarm_headers() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let stream = Arc::new(Mutex::new(Stream::Whole));
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind");
    let ep = format!("127.0.0.1:{}", listener.local_addr().expect("addr").port());
    let ep = ep.as_str();
    let fake = Fake {
        stream: stream.clone(),
    };
    rt.spawn(
        tonic::transport::Server::builder()
            .add_service(MaintenanceServer::new(fake))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let set = |k: Stream| *stream.lock().unwrap_or_else(|e| e.into_inner()) = k;

    // A whole stream: the same file from both.
    let e_path = dir.path().join("e.db");
    let c_path = dir.path().join("c.db");
    let e = etcdctl(&["--endpoints", ep, "snapshot", "save", s(&e_path)]);
    assert_eq!(e.code, 0, "{e:?}");
    let c = cairnctl(&["--endpoints", ep, "snapshot", "save", s(&c_path)]);
    assert_eq!(c.code, 0, "{c:?}");
    assert_eq!(std::fs::read(&c_path).ok(), std::fs::read(&e_path).ok());
    assert_eq!(assert_trailer_checks_out(&c_path).len(), DATA_LEN + 32);
    let progress: Vec<&str> = c.stderr.lines().collect();
    assert_eq!(
        progress,
        [
            "Downloading snapshot: 33 kB of 102 kB (32%)",
            "Downloading snapshot: 66 kB of 102 kB (64%)",
            "Downloading snapshot: 98 kB of 102 kB (96%)",
            "Downloading snapshot: 102 kB of 102 kB (100%)",
        ]
    );

    // A mid-stream error, and a stream cut off between pages (refused for its size): both
    // fail alike and leave nothing.
    let target = dir.path().join("t.db");
    for (kind, error) in [
        (
            Stream::Failing,
            "Error: rpc error: code = Internal desc = the copy broke\n",
        ),
        (
            Stream::Cut,
            "Error: sha256 checksum not found [bytes: 65536]\n",
        ),
    ] {
        set(kind);
        let c = same(&["--endpoints", ep, "snapshot", "save", s(&target)]);
        assert_eq!(c.code, 5, "{kind:?}");
        assert!(c.stderr.contains(error), "{kind:?}: {}", c.stderr);
        assert!(!target.exists() && !part_of(&target).exists(), "{kind:?}");
    }

    // A wrong trailer, or a stream cut where the size looks right: etcdctl saves what came,
    // cairnctl refuses it.
    for (kind, error) in [
        (
            Stream::WrongTrailer,
            "Error: snapshot integrity check failed: the data's SHA-256 is ",
        ),
        (
            Stream::CutLooksWhole,
            "Error: the snapshot stream ended early: 36832 more bytes were announced\n",
        ),
    ] {
        set(kind);
        let e_path = dir.path().join(format!("{kind:?}-etcdctl.db"));
        let e = etcdctl(&["--endpoints", ep, "snapshot", "save", s(&e_path)]);
        assert_eq!(e.code, 0, "{e:?}");
        let c = cairnctl(&["--endpoints", ep, "snapshot", "save", s(&target)]);
        assert_eq!((c.code, c.stdout_text()), (5, String::new()), "{kind:?}");
        assert!(c.stderr.contains(error), "{kind:?}: {}", c.stderr);
        assert!(!target.exists() && !part_of(&target).exists(), "{kind:?}");
    }

    // Alarms answered with a header: listed alike in every format, fields included.
    for f in ["simple", "json", "protobuf", "table", "fields"] {
        let c = same(&["--endpoints", ep, "alarm", "list", "-w", f]);
        if f == "simple" {
            assert_eq!(
                c.stdout_text(),
                "memberID:22 alarm:NOSPACE \nmemberID:23 alarm:CORRUPT \n"
            );
        }
    }
    // Disarming answers each alarm; the combined answer has no header.
    for f in FORMATS {
        let c = same(&["--endpoints", ep, "alarm", "disarm", "-w", f]);
        if f == "json" {
            assert_eq!(
                c.stdout_text(),
                "{\"alarms\":[{\"memberID\":22,\"alarm\":1},{\"memberID\":23,\"alarm\":2}]}\n"
            );
        }
    }
}
