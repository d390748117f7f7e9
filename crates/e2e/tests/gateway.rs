//! The JSON gateway side by side with real etcd's: the same requests, sent with curl (as etcd's
//! own tests send them) to a fresh etcd 3.4 and a fresh Cairn member, give the same HTTP status
//! and the same JSON, once ids that differ by nature (cluster, member, lease ids, Raft terms)
//! are set aside.

use cairn_e2e::{Member, RealEtcd};
use serde_json::Value;
use std::process::{Command, Stdio};
use std::time::Duration;

/// One curl call: HTTP status and body.
fn curl(port: u16, method: &str, path: &str, body: &str, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-s", "-o", "-", "-w", "\n%{http_code}", "-X", method])
        .arg(format!("http://127.0.0.1:{port}{path}"));
    if !body.is_empty() {
        cmd.args(["-d", body]);
    }
    for h in headers {
        cmd.args(["-H", h]);
    }
    let out = cmd.stderr(Stdio::inherit()).output().expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').expect("curl's status line");
    (
        code.trim().parse().expect("an HTTP status"),
        body.to_string(),
    )
}

/// JSON with what differs between two clusters by nature replaced.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = match k.as_str() {
                        "cluster_id" | "member_id" | "raft_term" | "ID" | "token" => {
                            Value::String("<varies>".into())
                        }
                        _ => normalized(v),
                    };
                    (k.clone(), v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(normalized).collect()),
        other => other.clone(),
    }
}

/// Every line of a body as normalized JSON (a stream has one message per line); text that is
/// not JSON as it is.
fn lines(body: &str) -> Vec<Value> {
    body.lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .map(|v| normalized(&v))
                .unwrap_or_else(|_| Value::String(l.trim().to_string()))
        })
        .collect()
}

struct Pair {
    etcd: u16,
    cairn: u16,
}

impl Pair {
    /// The same call on both; the answers must match.
    fn same(&self, method: &str, path: &str, body: &str, headers: &[&str]) -> (u16, Vec<Value>) {
        let (e_code, e_body) = curl(self.etcd, method, path, body, headers);
        let (c_code, c_body) = curl(self.cairn, method, path, body, headers);
        assert_eq!(
            (c_code, lines(&c_body)),
            (e_code, lines(&e_body)),
            "{method} {path} {body}\netcd:  {e_body}\ncairn: {c_body}"
        );
        (c_code, lines(&c_body))
    }

    /// The same call on both; only the status and the error code must match (the messages of
    /// JSON decoders differ).
    fn same_error(&self, path: &str, body: &str) -> i64 {
        let (e_code, e_body) = curl(self.etcd, "POST", path, body, &[]);
        let (c_code, c_body) = curl(self.cairn, "POST", path, body, &[]);
        let code = |b: &str| serde_json::from_str::<Value>(b).ok()?["code"].as_i64();
        assert_eq!(
            (c_code, code(&c_body)),
            (e_code, code(&e_body)),
            "{path} {body}\netcd:  {e_body}\ncairn: {c_body}"
        );
        let c: Value = serde_json::from_str(&c_body).expect("a JSON error");
        assert_eq!(c["error"], c["message"], "{c_body}");
        code(&c_body).unwrap_or_default()
    }

    /// A watch over the gateway on both while `write` runs; the lines each sent.
    fn watch(&self, request: &str, write: impl Fn(u16)) {
        let spawn = |port: u16| {
            Command::new("curl")
                .args(["-s", "-N", "--max-time", "3", "-d", request])
                .arg(format!("http://127.0.0.1:{port}/v3/watch"))
                .stdout(Stdio::piped())
                .spawn()
                .expect("curl")
        };
        let e = spawn(self.etcd);
        let c = spawn(self.cairn);
        std::thread::sleep(Duration::from_millis(800));
        write(self.etcd);
        write(self.cairn);
        let e = e.wait_with_output().expect("curl");
        let c = c.wait_with_output().expect("curl");
        let (e, c) = (
            String::from_utf8_lossy(&e.stdout).into_owned(),
            String::from_utf8_lossy(&c.stdout).into_owned(),
        );
        assert!(lines(&e).len() >= 2, "{e}");
        assert_eq!(
            lines(&c),
            lines(&e),
            "watch {request}\netcd:  {e}\ncairn: {c}"
        );
    }
}

#[test]
fn the_gateway_answers_as_etcds() {
    let etcd = RealEtcd::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let member = Member::start(&dir.path().join("m1"), &[]);
    let pair = Pair {
        etcd: etcd.client_port,
        cairn: member.client_port,
    };
    // foo = bar, then baz: base64 in, base64 out.
    pair.same(
        "POST",
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmFy"}"#,
        &[],
    );
    pair.same(
        "POST",
        "/v3/kv/put",
        r#"{"key":"Zm9v","value":"YmF6","prev_kv":true}"#,
        &[],
    );
    pair.same("POST", "/v3/kv/range", r#"{"key":"Zm9v"}"#, &[]);
    // Either field name, enums by name, unknown fields ignored, 64-bit integers as strings.
    pair.same(
        "POST",
        "/v3/kv/range",
        r#"{"key":"AA==","range_end":"AA==","keysOnly":true,"sort_order":"DESCEND","limit":"10","bogus":1}"#,
        &[],
    );
    pair.same(
        "POST",
        "/v3beta/kv/range",
        r#"{"key":"Zm9v","count_only":true}"#,
        &[],
    );
    pair.same(
        "POST",
        "/v3/kv/txn",
        r#"{"compare":[{"target":"CREATE","key":"Zm9v","createRevision":"2"}],"success":[{"requestRange":{"key":"Zm9v"}}],"failure":[{"requestPut":{"key":"Zm9v","value":"eA=="}}]}"#,
        &[],
    );
    pair.same("POST", "/v3/lease/grant", r#"{"TTL":30}"#, &[]);
    pair.same("POST", "/v3/kv/lease/leases", "{}", &[]);
    pair.same("POST", "/v3/kv/compaction", r#"{"revision":"2"}"#, &[]);
    pair.same(
        "POST",
        "/v3/kv/deleterange",
        r#"{"key":"Zm9v","prev_kv":true}"#,
        &[],
    );

    // Errors: grpc-gateway's body and HTTP status for the service's code.
    let (status, _) = pair.same(
        "POST",
        "/v3/kv/range",
        r#"{"key":"Zm9v","revision":"100"}"#,
        &[],
    );
    assert_eq!(status, 400);
    let (status, body) = pair.same("POST", "/v3/kv/range", "", &[]);
    assert_eq!((status, body[0]["code"].as_i64()), (400, Some(3)));
    let (status, _) = pair.same("POST", "/v3/auth/enable", "{}", &[]);
    assert_eq!(status, 412);
    let (status, _) = pair.same("POST", "/v3/election/proclaim", "{}", &[]);
    assert_eq!(status, 500);
    assert_eq!(pair.same_error("/v3/kv/range", r#"{"key":1}"#), 3);
    assert_eq!(pair.same("GET", "/v3/kv/range", "", &[]).0, 405);
    assert_eq!(pair.same("POST", "/v3/kv/nope", "{}", &[]).0, 404);

    // A watch streams one `{"result": …}` line per message.
    pair.watch(r#"{"create_request":{"key":"d2F0Y2hlZA=="}}"#, |port| {
        curl(
            port,
            "POST",
            "/v3/kv/put",
            r#"{"key":"d2F0Y2hlZA==","value":"MQ=="}"#,
            &[],
        );
        curl(
            port,
            "POST",
            "/v3/kv/deleterange",
            r#"{"key":"d2F0Y2hlZA=="}"#,
            &[],
        );
    });

    // With auth on, the token travels in `Authorization` or `Grpc-Metadata-Token`.
    pair.same(
        "POST",
        "/v3/auth/user/add",
        r#"{"name":"root","password":"pw"}"#,
        &[],
    );
    pair.same(
        "POST",
        "/v3/auth/user/grant",
        r#"{"user":"root","role":"root"}"#,
        &[],
    );
    pair.same("POST", "/v3/auth/enable", "{}", &[]);
    let token = |port: u16| {
        let (_, body) = curl(
            port,
            "POST",
            "/v3/auth/authenticate",
            r#"{"name":"root","password":"pw"}"#,
            &[],
        );
        let v: Value = serde_json::from_str(&body).expect("an authenticate answer");
        v["token"].as_str().expect("a token").to_string()
    };
    let (e_token, c_token) = (token(pair.etcd), token(pair.cairn));
    for header in ["Authorization: ", "Grpc-Metadata-Token: "] {
        let e = curl(
            pair.etcd,
            "POST",
            "/v3/kv/range",
            r#"{"key":"Zm9v"}"#,
            &[&format!("{header}{e_token}")],
        );
        let c = curl(
            pair.cairn,
            "POST",
            "/v3/kv/range",
            r#"{"key":"Zm9v"}"#,
            &[&format!("{header}{c_token}")],
        );
        assert_eq!((c.0, lines(&c.1)), (e.0, lines(&e.1)), "{header}");
        assert_eq!(c.0, 200);
    }
    let (status, _) = pair.same("POST", "/v3/kv/range", r#"{"key":"Zm9v"}"#, &[]);
    assert_eq!(status, 400, "no token: etcd's 'user name is empty'");
    let (status, _) = pair.same(
        "POST",
        "/v3/auth/authenticate",
        r#"{"name":"root","password":"bad"}"#,
        &[],
    );
    assert_eq!(status, 400);
}

#[test]
fn streams_past_max_concurrent_streams_wait() {
    // etcd's gateway is one connection to its member: with --max-concurrent-streams 2 and two
    // watches open, a third call waits until one ends.
    let dir = tempfile::tempdir().expect("tempdir");
    let member = Member::start(&dir.path().join("m1"), &["--max-concurrent-streams", "2"]);
    let port = member.client_port;
    let watch = || {
        Command::new("curl")
            .args([
                "-s",
                "-N",
                "--max-time",
                "4",
                "-d",
                r#"{"create_request":{"key":"Zm9v"}}"#,
            ])
            .arg(format!("http://127.0.0.1:{port}/v3/watch"))
            .stdout(Stdio::null())
            .spawn()
            .expect("curl")
    };
    let mut watches = [watch(), watch()];
    std::thread::sleep(Duration::from_millis(800));
    let waited = Command::new("curl")
        .args(["-s", "--max-time", "1", "-d", r#"{"key":"Zm9v"}"#])
        .arg(format!("http://127.0.0.1:{port}/v3/kv/range"))
        .output()
        .expect("curl");
    assert_eq!(
        waited.status.code(),
        Some(28),
        "curl's timeout: the call waited"
    );
    for w in &mut watches {
        let _ = w.wait();
    }
    let (status, _) = curl(port, "POST", "/v3/kv/range", r#"{"key":"Zm9v"}"#, &[]);
    assert_eq!(status, 200, "with the watches gone, calls go through");
}
