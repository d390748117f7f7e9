//! Logs as etcd writes them (zap JSON lines by default, `--log-outputs`, `--log-level`,
//! `--logger capnslog`, the systemd journal), the key events each logged once with their
//! numbers, and systemd's readiness notification.

use cairn_e2e::{Member, etcdctl, free_port};
use serde_json::Value;
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

fn json_lines(text: &str) -> Vec<serde_json::Map<String, Value>> {
    text.lines()
        .map(|l| match serde_json::from_str::<Value>(l) {
            Ok(Value::Object(m)) => m,
            _ => panic!("not a zap JSON line: {l:?}"),
        })
        .collect()
}

fn with_msg<'a>(
    lines: &'a [serde_json::Map<String, Value>],
    msg: &str,
) -> Vec<&'a serde_json::Map<String, Value>> {
    lines.iter().filter(|l| l["msg"] == msg).collect()
}

fn ok(run: cairn_e2e::Run) -> cairn_e2e::Run {
    assert_eq!(run.code, 0, "{run:?}");
    run
}

#[test]
fn zap_json_lines_carry_the_key_events_once_with_their_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let mut m = Member::start(&dir.path().join("m"), &[]);
    let ep = m.endpoint();
    ok(etcdctl(&ep, &["put", "a", "1"], None));
    ok(etcdctl(&ep, &["put", "a", "2"], None));
    ok(etcdctl(&ep, &["compact", "3"], None));
    ok(etcdctl(&ep, &["defrag"], None));
    let snap = dir.path().join("s.db");
    ok(etcdctl(
        &ep,
        &["snapshot", "save", snap.to_str().unwrap()],
        None,
    ));
    m.kill9();
    let raw = m.raw_log();
    let lines = json_lines(&raw);
    for l in &lines {
        let level = l["level"].as_str().unwrap_or_default();
        assert!(["debug", "info", "warn", "error"].contains(&level), "{l:?}");
        let ts = l["ts"].as_str().unwrap_or_default();
        assert!(
            ts.len() >= 20 && ts.ends_with('Z') && ts.as_bytes()[10] == b'T',
            "{ts}"
        );
        let caller = l["caller"].as_str().unwrap_or_default();
        assert!(caller.contains(".rs:"), "{caller}");
        assert!(l["msg"].is_string());
    }
    let elected = with_msg(&lines, "this member was elected leader");
    assert_eq!(elected.len(), 1, "{raw}");
    assert_eq!(elected[0]["term"], 1);
    assert!(elected[0]["leader"].is_string());
    let compacted = with_msg(&lines, "compacted");
    assert_eq!(compacted.len(), 1, "{raw}");
    assert_eq!(compacted[0]["revision"], 3);
    assert!(compacted[0]["removed_revisions"].as_u64().is_some());
    let defrag = with_msg(&lines, "finished defragmenting");
    assert_eq!(defrag.len(), 1, "{raw}");
    assert!(defrag[0]["size_before"].as_u64().is_some_and(|s| s > 0));
    let snapshot = with_msg(&lines, "wrote the backend in etcd's format for a snapshot");
    assert_eq!(snapshot.len(), 1, "{raw}");
    assert!(snapshot[0]["size"].as_u64().is_some_and(|s| s > 0));
    assert_eq!(with_msg(&lines, "member started").len(), 1);
}

#[test]
fn outputs_levels_and_loggers_follow_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("cairn.log");
    let mut m = Member::start(
        &dir.path().join("m"),
        &[
            "--log-outputs",
            &format!("stdout,{}", file.display()),
            "--log-level",
            "info",
        ],
    );
    m.kill9();
    // The same lines in the file and on stdout (the harness's log).
    let in_file = std::fs::read_to_string(&file).unwrap();
    assert!(!json_lines(&in_file).is_empty());
    assert_eq!(json_lines(&in_file).len(), json_lines(&m.raw_log()).len());

    // warn leaves the info lines out.
    let mut quiet = Member::start(&dir.path().join("q"), &["--log-level", "warn"]);
    quiet.kill9();
    let lines = json_lines(&quiet.raw_log());
    assert!(lines.iter().all(|l| l["level"] != "info"), "{lines:?}");

    // capnslog: human-readable lines, not JSON.
    let mut text = Member::start(&dir.path().join("t"), &["--logger", "capnslog"]);
    text.kill9();
    let raw = text.raw_log();
    assert!(raw.contains("member started"), "{raw}");
    assert!(raw.lines().all(|l| !l.starts_with('{')), "{raw}");

    // etcd's refusals.
    for (flags, error) in [
        (
            &["--log-outputs", "default,stderr"][..],
            "multi logoutput for \"default\" is not supported yet",
        ),
        (
            &["--log-outputs", "systemd/journal,stderr"][..],
            "cannot combine 'systemd/journal' with other log outputs",
        ),
        (&["--logger", "glog"][..], "unknown logger option \"glog\""),
    ] {
        let out = Member::unstarted("x", &dir.path().join("x"), flags)
            .command()
            .output()
            .unwrap();
        assert!(!out.status.success(), "{flags:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(error), "{flags:?}: {stderr}");
    }
}

#[test]
fn the_journal_receives_each_line_with_its_priority() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("journal.sock");
    let journal = UnixDatagram::bind(&socket_path).unwrap();
    journal
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut m = Member::unstarted(
        "m1",
        &dir.path().join("m"),
        &["--log-outputs", "systemd/journal"],
    );
    m.env.push((
        "CAIRN_JOURNAL_SOCKET".into(),
        socket_path.display().to_string(),
    ));
    m.launch();
    let mut seen_started = false;
    let mut buf = vec![0u8; 65536];
    while !seen_started {
        let n = journal.recv(&mut buf).expect("a journal entry");
        let entry = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(entry.contains("SYSLOG_IDENTIFIER=cairn\n"), "{entry}");
        let message = entry
            .lines()
            .find_map(|l| l.strip_prefix("MESSAGE="))
            .expect("MESSAGE field");
        let line: Value = serde_json::from_str(message).expect("a zap line");
        let priority = match line["level"].as_str() {
            Some("info") => "PRIORITY=6",
            Some("warn") => "PRIORITY=4",
            Some("error") => "PRIORITY=3",
            _ => "PRIORITY=7",
        };
        assert!(entry.contains(priority), "{entry}");
        seen_started |= line["msg"] == "member started";
    }
    m.kill9();

    // Asked for a journal that is not there: no start, and the reason.
    let mut missing = Member::unstarted(
        "m1",
        &dir.path().join("n"),
        &["--log-outputs", "systemd/journal"],
    );
    missing.env.push((
        "CAIRN_JOURNAL_SOCKET".into(),
        dir.path().join("none.sock").display().to_string(),
    ));
    let out = missing.command().output().unwrap();
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("failed to find systemd journal"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn systemd_hears_ready_once_the_member_serves() {
    let dir = tempfile::tempdir().unwrap();
    for abstract_name in [false, true] {
        let (socket, address) = if abstract_name {
            use std::os::linux::net::SocketAddrExt;
            let name = format!("cairn-notify-{}-{}", std::process::id(), free_port());
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
            (UnixDatagram::bind_addr(&addr).unwrap(), format!("@{name}"))
        } else {
            let path = dir.path().join("notify.sock");
            (
                UnixDatagram::bind(&path).unwrap(),
                path.display().to_string(),
            )
        };
        socket
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        let name = if abstract_name { "a" } else { "p" };
        let mut m = Member::unstarted("m1", &dir.path().join(name), &[]);
        m.env.push(("NOTIFY_SOCKET".into(), address));
        m.launch();
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf).expect("READY=1 from the member");
        assert_eq!(&buf[..n], b"READY=1");
        // Ready means serving.
        ok(etcdctl(&m.endpoint(), &["put", "k", "v"], None));
        m.kill9();
    }
}
