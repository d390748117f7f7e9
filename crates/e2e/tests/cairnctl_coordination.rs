//! cairnctl's coordination commands on a real Cairn member: `watch`, `lease`, `lock` and `elect`
//! do what they promise (ordering, history replay, expiry, keep-alive, mutual exclusion,
//! leadership handover), and where the output is deterministic it is byte for byte what etcdctl
//! prints for the same command against the same member.

use cairn_e2e::{Bg, Member, cairnctl, etcdctl};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

/// The store's current revision.
fn revision(ep: &str) -> i64 {
    let r = cairnctl(ep, &["get", "nokey", "-w", "json"], None);
    assert_eq!(r.code, 0, "{r:?}");
    let v: serde_json::Value = serde_json::from_str(&r.stdout).expect("json");
    v["header"]["revision"].as_i64().expect("revision")
}

fn ok(ep: &str, args: &[&str]) -> String {
    let r = cairnctl(ep, args, None);
    assert_eq!(r.code, 0, "cairnctl {args:?}: {r:?}");
    r.stdout
}

/// Both clients, same member, same command: same stdout, stderr and exit code.
fn same_as_etcdctl(ep: &str, args: &[&str]) {
    let want = etcdctl(ep, args, None);
    let got = cairnctl(ep, args, None);
    // etcdctl logs retries as JSON lines on stderr; only its own lines count.
    let want_err: String = want
        .stderr
        .lines()
        .filter(|l| !l.starts_with('{'))
        .map(|l| format!("{l}\n"))
        .collect();
    assert_eq!(
        (got.code, &got.stdout, &got.stderr),
        (want.code, &want.stdout, &want_err),
        "cairnctl {args:?} differs from etcdctl (left: cairnctl)"
    );
}

#[test]
fn watch_sees_puts_and_deletes_in_order_and_replays_history() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let start = revision(&ep) + 1;
    let rev = start.to_string();
    let live = Bg::cairnctl(&ep, &["watch", "k", "--prefix", "--rev", &rev]);
    ok(&ep, &["put", "k1", "v1"]);
    ok(&ep, &["put", "k2", "v2"]);
    ok(&ep, &["del", "k1"]);
    ok(&ep, &["put", "k2", "v3"]);
    ok(&ep, &["put", "other", "x"]);
    let want = [
        "PUT", "k1", "v1", "PUT", "k2", "v2", "DELETE", "k1", "", "PUT", "k2", "v3",
    ];
    assert_eq!(live.lines(want.len(), 10 * SECOND), want);
    assert!(
        live.quiet_for(Duration::from_millis(300)),
        "unexpected event"
    );
    drop(live);

    // Replaying the same history, in every format, prints what etcdctl prints.
    for format in ["simple", "json", "fields"] {
        let args = [
            "watch",
            "k",
            "--prefix",
            "--rev",
            &rev,
            "--prev-kv",
            "-w",
            format,
        ];
        let quiet = Duration::from_millis(700);
        let got = Bg::cairnctl(&ep, &args).drain(quiet);
        let want = Bg::etcdctl(&ep, &args).drain(quiet);
        assert_eq!(got, want, "watch -w {format} differs from etcdctl");
    }

    // A command per event, with etcdctl's environment.
    let script = "echo \"$ETCD_WATCH_EVENT_TYPE $ETCD_WATCH_KEY $ETCD_WATCH_VALUE\"";
    let exec = Bg::cairnctl(
        &ep,
        &["watch", "k2", "--rev", &rev, "--", "sh", "-c", script],
    );
    // The commands run after each response is printed; how events are grouped into responses
    // is the server's choice, so the two streams are checked apart.
    let (ran, printed): (Vec<String>, Vec<String>) = exec
        .lines(8, 10 * SECOND)
        .into_iter()
        .partition(|l| l.starts_with('"'));
    assert_eq!(printed, ["PUT", "k2", "v2", "PUT", "k2", "v3"]);
    assert_eq!(ran, ["\"PUT\" \"k2\" \"v2\"", "\"PUT\" \"k2\" \"v3\""]);
    drop(exec);

    // Interactive watches read `watch ...` lines; the end of the input ends the command.
    let r = cairnctl(
        &ep,
        &["watch", "-i"],
        Some(&format!("watch k1 --rev {rev}\nbogus\n")),
    );
    assert_eq!(r.code, 3, "{r:?}");
    assert!(
        r.stderr
            .contains("Invalid command bogus (only support watch)\n")
            && r.stderr
                .ends_with("Error: Error reading watch request line: EOF\n"),
        "{r:?}"
    );

    // Watching from a compacted revision fails as etcdctl does.
    ok(&ep, &["compaction", &(start + 2).to_string()]);
    for format in ["simple", "json"] {
        same_as_etcdctl(&ep, &["watch", "k", "--prefix", "--rev", "1", "-w", format]);
    }
    let r = cairnctl(&ep, &["watch", "k", "--rev", "1"], None);
    assert_eq!(r.code, 5);
    assert_eq!(
        r.stderr,
        "watch was canceled (etcdserver: mvcc: required revision has been compacted)\n\
         Error: watch is canceled by the server\n"
    );
    for args in [
        &["watch"][..],
        &["watch", "a", "b", "--prefix"],
        &["watch", "k", "--"],
        &["watch", "k", "-w", "bogus"],
        &["watch", "k", "-w", "table", "--rev", "1"],
    ] {
        same_as_etcdctl(&ep, args);
    }
}

/// The lease ID from "lease <id> granted with TTL(<n>s)".
fn granted(out: &str) -> String {
    out.split_whitespace().nth(1).expect("lease id").to_string()
}

#[test]
fn lease_expiry_deletes_the_key_and_the_watcher_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let out = ok(&ep, &["lease", "grant", "2"]);
    assert!(out.ends_with(" granted with TTL(2s)\n"), "{out}");
    let id = granted(&out);
    let rev = (revision(&ep) + 1).to_string();
    let watcher = Bg::cairnctl(&ep, &["watch", "lk", "--rev", &rev]);
    ok(&ep, &["put", "--lease", &id, "lk", "v"]);
    let ttl = ok(&ep, &["lease", "timetolive", &id, "--keys"]);
    assert!(
        ttl.starts_with(&format!("lease {id} granted with TTL(2s), remaining("))
            && ttl.ends_with("s), attached keys([lk])\n"),
        "{ttl}"
    );
    assert_eq!(
        watcher.lines(6, 15 * SECOND),
        ["PUT", "lk", "v", "DELETE", "lk", ""]
    );
    assert_eq!(ok(&ep, &["get", "lk"]), "");
    same_as_etcdctl(&ep, &["lease", "timetolive", &id]);
    same_as_etcdctl(&ep, &["lease", "timetolive", &id, "-w", "json"]);
    same_as_etcdctl(&ep, &["lease", "keep-alive", "--once", &id]);
    same_as_etcdctl(&ep, &["lease", "keep-alive", &id]);
    same_as_etcdctl(&ep, &["lease", "revoke", &id]);
}

#[test]
fn lease_keep_alive_keeps_the_key_and_outputs_match_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let id = granted(&ok(&ep, &["lease", "grant", "2"]));
    ok(&ep, &["put", "--lease", &id, "kept", "v"]);
    let mut keeper = Bg::cairnctl(&ep, &["lease", "keep-alive", &id]);
    let first = keeper.lines(1, 5 * SECOND);
    assert_eq!(first, [format!("lease {id} keepalived with TTL(2)")]);
    std::thread::sleep(Duration::from_millis(4500));
    assert_eq!(ok(&ep, &["get", "kept", "--print-value-only"]), "v\n");

    // Deterministic lease outputs, compared with etcdctl's on the same member.
    for args in [
        &["lease", "list"][..],
        &["lease", "list", "-w", "json"],
        &["lease", "list", "-w", "fields"],
        &["lease", "list", "-w", "table"],
        &["lease", "timetolive", "1234"],
        &["lease", "timetolive", "1234", "-w", "json"],
        &["lease", "timetolive", "1234", "-w", "fields"],
        &["lease", "timetolive", "zz"],
        &["lease", "timetolive"],
        &["lease", "revoke", "1234"],
        &["lease", "revoke"],
        &["lease", "grant"],
        &["lease", "grant", "abc"],
        &["lease", "keep-alive", "--once", "1234"],
        &["lease", "keep-alive", "1234"],
        &["lease", "keep-alive", "1234", "-w", "json"],
    ] {
        same_as_etcdctl(&ep, args);
    }

    // Revoking ends the keep-alive the way etcdctl's does.
    let revoked = ok(&ep, &["lease", "revoke", &id]);
    assert_eq!(revoked, format!("lease {id} revoked\n"));
    assert_eq!(keeper.exit_code(10 * SECOND), 0);
    let rest = keeper.rest();
    assert_eq!(
        rest.last().map(String::as_str),
        Some(format!("lease {id} expired or revoked.").as_str()),
        "{rest:?}"
    );
    assert_eq!(ok(&ep, &["get", "kept"]), "");
}

#[test]
fn lock_gives_mutual_exclusion() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let log = dir.path().join("critical.log");
    let log_s = log.to_string_lossy().into_owned();
    let section =
        |who: &str| format!("echo in-{who} >> {log_s}; sleep 1; echo out-{who} >> {log_s}");
    let (sa, sb) = (section("a"), section("b"));
    let mut a = Bg::cairnctl(&ep, &["lock", "mx", "--", "sh", "-c", &sa]);
    let mut b = Bg::cairnctl(&ep, &["lock", "mx", "--", "sh", "-c", &sb]);
    assert_eq!(a.exit_code(20 * SECOND), 0, "{}", a.stderr_text());
    assert_eq!(b.exit_code(20 * SECOND), 0, "{}", b.stderr_text());
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    for pair in lines.chunks(2) {
        let who = pair[0].trim_start_matches("in-");
        assert_eq!(pair[1], format!("out-{who}"), "sections overlap: {text}");
    }
    assert_eq!(ok(&ep, &["get", "mx", "--prefix"]), "");

    // A held lock: the key is printed, a second locker waits, SIGINT releases it.
    let holder = Bg::cairnctl(&ep, &["lock", "mx"]);
    let held = holder.lines(2, 10 * SECOND);
    assert!(held[0].starts_with("mx/") && held[1].is_empty(), "{held:?}");
    let mut waiter = Bg::etcdctl(&ep, &["lock", "mx"]);
    assert!(waiter.quiet_for(SECOND), "etcdctl got a held lock");
    let mut holder = holder;
    holder.signal(libc::SIGINT);
    assert_eq!(holder.exit_code(10 * SECOND), 0);
    let got = waiter.lines(2, 10 * SECOND);
    assert!(got[0].starts_with("mx/") && got[0] != held[0], "{got:?}");
    waiter.signal(libc::SIGINT);
    assert_eq!(waiter.exit_code(10 * SECOND), 0);

    // A locked command's failure is reported and its exit code passed on.
    let r = cairnctl(&ep, &["lock", "mx", "--", "sh", "-c", "exit 3"], None);
    assert_eq!((r.code, r.stderr.as_str()), (3, "Error: exit status 3\n"));
    let r = cairnctl(
        &ep,
        &["lock", "mx", "--", "sh", "-c", "echo $ETCD_LOCK_KEY"],
        None,
    );
    assert!(r.code == 0 && r.stdout.starts_with("mx/"), "{r:?}");
    same_as_etcdctl(&ep, &["lock"]);
    same_as_etcdctl(&ep, &["lock", "mx", "/nonexistent/cmd"]);
    assert_eq!(ok(&ep, &["get", "mx", "--prefix"]), "");
}

#[test]
fn elect_hands_over_leadership_when_the_leader_exits() {
    let dir = tempfile::tempdir().unwrap();
    let m = Member::start(&dir.path().join("m1"), &[]);
    let ep = m.endpoint();
    let mut observer = Bg::cairnctl(&ep, &["elect", "-l", "el"]);
    let mut a = Bg::cairnctl(&ep, &["elect", "el", "A"]);
    let la = a.lines(2, 10 * SECOND);
    assert!(la[0].starts_with("el/") && la[1] == "A", "{la:?}");
    let mut b = Bg::cairnctl(&ep, &["elect", "el", "B"]);
    assert!(b.quiet_for(SECOND), "two leaders at once");
    a.signal(libc::SIGTERM);
    assert_eq!(a.exit_code(10 * SECOND), 0);
    let lb = b.lines(2, 10 * SECOND);
    assert!(
        lb[0].starts_with("el/") && lb[0] != la[0] && lb[1] == "B",
        "{lb:?}"
    );
    assert_eq!(
        observer.lines(4, 10 * SECOND),
        [la[0].clone(), la[1].clone(), lb[0].clone(), lb[1].clone()]
    );
    b.signal(libc::SIGTERM);
    assert_eq!(b.exit_code(10 * SECOND), 0);
    observer.signal(libc::SIGINT);
    assert_eq!(observer.exit_code(10 * SECOND), 0);
    assert_eq!(ok(&ep, &["get", "el", "--prefix"]), "");

    // A candidate interrupted while waiting gives up its place.
    let holder = Bg::cairnctl(&ep, &["elect", "el", "H"]);
    holder.lines(2, 10 * SECOND);
    let mut queued = Bg::cairnctl(&ep, &["elect", "el", "Q"]);
    assert!(queued.quiet_for(Duration::from_millis(500)));
    queued.signal(libc::SIGINT);
    assert_eq!(queued.exit_code(10 * SECOND), 1);
    assert_eq!(queued.stderr_text(), "Error: context canceled\n");
    let keys = ok(&ep, &["get", "el", "--prefix", "--keys-only"]);
    assert_eq!(keys.lines().filter(|l| !l.is_empty()).count(), 1, "{keys}");

    for args in [
        &["elect"][..],
        &["elect", "el"],
        &["elect", "-l", "el", "x"],
        &["elect", "a", "b", "c"],
    ] {
        same_as_etcdctl(&ep, args);
    }
}
