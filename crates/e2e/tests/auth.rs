//! The Auth service, driven by real etcdctl side by side with real etcd: user, role and
//! permission management, then auth turned on and every kind of request made by callers with
//! no credentials, a wrong password, too few permissions, enough, and root — the same outputs
//! and errors for the same commands.

use cairn_e2e::{Cluster, Member, RealEtcd, etcdctl, normalized};
use cairn_proto::etcdserverpb as pb;

const STEPS: &[&[&str]] = &[
    &["user", "add", "alice:pw"],
    &["user", "add", "alice:pw"],
    &["user", "add", ":x"],
    &["user", "add", "bob", "--new-user-password=b2"],
    &["user", "add", "carol", "--no-password"],
    &["role", "add", "r1"],
    &["role", "add", "r1"],
    &["role", "add", ""],
    &["role", "add", "r2"],
    &["user", "grant-role", "alice", "r1"],
    &["user", "grant-role", "alice", "r1"],
    &["user", "grant-role", "alice", "nope"],
    &["user", "grant-role", "nobody", "r1"],
    &["user", "grant-role", "alice", "root"],
    &["user", "grant-role", "carol", "r2"],
    &["role", "grant-permission", "r1", "read", "/a"],
    &[
        "role",
        "grant-permission",
        "r1",
        "readwrite",
        "/p/",
        "--prefix",
    ],
    &["role", "grant-permission", "r1", "write", "/k", "/z"],
    &[
        "role",
        "grant-permission",
        "r1",
        "read",
        "/from",
        "--from-key",
    ],
    &["role", "grant-permission", "r1", "write", "/a"],
    &["role", "grant-permission", "nope", "read", "x"],
    &["role", "get", "r1"],
    &["role", "get", "r1", "-w", "json"],
    &["role", "get", "nope"],
    &["user", "get", "alice"],
    &["user", "get", "alice", "--detail"],
    &["user", "get", "alice", "-w", "json"],
    &["user", "get", "nobody"],
    &["user", "list"],
    &["user", "list", "-w", "json"],
    &["role", "list"],
    &["user", "revoke-role", "alice", "r2"],
    &["user", "revoke-role", "nobody", "r2"],
    &["role", "revoke-permission", "r1", "/a"],
    &["role", "revoke-permission", "r1", "/a"],
    &["role", "revoke-permission", "r1", "/p/", "--prefix"],
    &["role", "get", "r1"],
    &["user", "passwd", "alice", "--new-user-password=zz"],
    &["user", "passwd", "nobody", "--new-user-password=zz"],
    &["auth", "status"],
    &["auth", "status", "-w", "json"],
    &["user", "delete", "bob"],
    &["user", "delete", "bob"],
    &["role", "delete", "r2"],
    &["role", "delete", "r2"],
    &["user", "get", "carol"],
    &["user", "list"],
    &["role", "list"],
    &["auth", "status"],
    // Two permissions on one key: etcd keeps them in grant order, and looks only at the first
    // when the same key is granted again.
    &["role", "grant-permission", "r1", "read", "/dup", "/z"],
    &["role", "grant-permission", "r1", "read", "/dup", "/b"],
    &["role", "get", "r1"],
    &["role", "grant-permission", "r1", "write", "/dup", "/b"],
    &["role", "grant-permission", "r1", "write", "/dup", "/z"],
    &["role", "get", "r1"],
    &["auth", "disable"],
];

#[test]
fn user_and_role_management_matches_etcd() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = RealEtcd::start();
    let mut cairn = Member::start(&dir.path().join("m1"), &["--bcrypt-cost", "4"]);
    same_as_etcd(&etcd, &cairn, STEPS.iter().copied());
    // The record is durable: after a SIGKILL and restart the member still has it.
    cairn.restart();
    let after = etcdctl(&cairn.endpoint(), &["user", "get", "alice"], None);
    assert_eq!(after.stdout, "User: alice\nRoles: r1 root\n", "{after:?}");
    let roles = etcdctl(&cairn.endpoint(), &["role", "get", "r1"], None);
    let want = etcdctl(&etcd.endpoint(), &["role", "get", "r1"], None);
    assert_eq!(roles.stdout, want.stdout);
}

/// Runs each step with real etcdctl against etcd and against Cairn: the same exit code, output
/// and errors.
fn same_as_etcd<'s>(etcd: &RealEtcd, cairn: &Member, steps: impl Iterator<Item = &'s [&'s str]>) {
    for step in steps {
        let want = normalized(&etcdctl(&etcd.endpoint(), step, None));
        let got = normalized(&etcdctl(&cairn.endpoint(), step, None));
        assert_eq!(got, want, "etcdctl {step:?}");
    }
}

/// Users and roles both servers get before auth is turned on.
const SETUP: &[&[&str]] = &[
    &["user", "add", "root:rootpw"],
    &["role", "add", "reader"],
    &[
        "role",
        "grant-permission",
        "reader",
        "read",
        "/r/",
        "--prefix",
    ],
    &["role", "add", "writer"],
    &[
        "role",
        "grant-permission",
        "writer",
        "readwrite",
        "/w/",
        "--prefix",
    ],
    &["role", "grant-permission", "writer", "write", "/wo"],
    &["role", "add", "fk"],
    &[
        "role",
        "grant-permission",
        "fk",
        "read",
        "/fk",
        "--from-key",
    ],
    &["user", "add", "alice:a"],
    &["user", "grant-role", "alice", "reader"],
    &["user", "grant-role", "alice", "writer"],
    &["user", "add", "bob:b"],
    &["user", "grant-role", "bob", "fk"],
    &["user", "add", "carol", "--no-password"],
    &["put", "/r/1", "one"],
    &["put", "/w/1", "w-one"],
    &["put", "/secret", "s"],
    // etcdctl 3.4 grants root the root role itself when enabling.
    &["auth", "enable"],
];

const ALICE: &str = "--user=alice:a";
const BOB: &str = "--user=bob:b";
const ROOT: &str = "--user=root:rootpw";

/// (arguments, standard input) once auth is on.
const ENFORCED: &[(&[&str], Option<&str>)] = &[
    // No credentials, wrong or missing passwords.
    (&["get", "/r/1"], None),
    (&["put", "/w/x", "v"], None),
    (&["--user=alice:wrong", "get", "/r/1"], None),
    (&["--user=nobody:x", "get", "/r/1"], None),
    (&["--user=carol:", "get", "/r/1"], None),
    // Reads: a key, a prefix, a range beyond the permission, from-key ranges.
    (&[ALICE, "get", "/r/1"], None),
    (&[ALICE, "get", "/r/", "--prefix"], None),
    (&[ALICE, "get", "/r/", "/r0"], None),
    (&[ALICE, "get", "/r/", "/s"], None),
    (&[ALICE, "get", "/secret"], None),
    (&[ALICE, "get", "/", "--prefix"], None),
    (&[ALICE, "get", "/wo"], None),
    (&[BOB, "get", "/fk", "--from-key"], None),
    (&[BOB, "get", "/fkz"], None),
    (&[BOB, "get", "/fa", "--from-key"], None),
    (&[ALICE, "get", "/fk", "--from-key"], None),
    // Writes.
    (&[ALICE, "put", "/w/2", "two"], None),
    (&[ALICE, "put", "/wo", "write-only"], None),
    (&[ALICE, "put", "/wo", "again", "--prev-kv"], None),
    (&[ALICE, "put", "/r/2", "no"], None),
    (&[ALICE, "del", "/w/2"], None),
    (&[ALICE, "del", "/w/", "--prefix"], None),
    (&[ALICE, "del", "/r/1"], None),
    (&[BOB, "put", "/fkz", "no"], None),
    // Transactions: every compare and every operation in both branches.
    (
        &[ALICE, "txn"],
        Some("value(\"/r/1\") = \"one\"\n\nput /w/t yes\n\nput /w/t no\n\n"),
    ),
    (
        &[ALICE, "txn"],
        Some("value(\"/r/1\") = \"one\"\n\nput /w/t yes\n\nput /secret no\n\n"),
    ),
    (
        &[ALICE, "txn"],
        Some("value(\"/secret\") = \"s\"\n\nput /w/t yes\n\n\n"),
    ),
    (&[ALICE, "txn"], Some("\nget /r/1\n\nget /secret\n\n")),
    (&[ALICE, "get", "/w/t"], None),
    // Watches need read permission on their range.
    (&[ALICE, "watch", "/secret"], None),
    (&[ALICE, "watch", "/r/", "/s"], None),
    // Root-only calls.
    (&[ALICE, "user", "list"], None),
    (&[ALICE, "role", "list"], None),
    (&[ALICE, "user", "get", "alice"], None),
    (&[ALICE, "user", "get", "bob"], None),
    (&[ALICE, "role", "get", "reader"], None),
    (&[ALICE, "role", "get", "fk"], None),
    (&[ALICE, "user", "add", "eve:e"], None),
    (
        &[
            ALICE,
            "role",
            "grant-permission",
            "reader",
            "read",
            "/secret",
        ],
        None,
    ),
    (&[ALICE, "auth", "disable"], None),
    (&["user", "list"], None),
    (
        &[
            ALICE,
            "member",
            "add",
            "x",
            "--peer-urls=http://127.0.0.1:1",
        ],
        None,
    ),
    (
        &["member", "add", "x", "--peer-urls=http://127.0.0.1:1"],
        None,
    ),
    (&[ALICE, "endpoint", "hashkv"], None),
    (&["endpoint", "hashkv"], None),
    (&[ALICE, "defrag"], None),
    (&[BOB, "lock", "l", "echo", "held"], None),
    (&[BOB, "elect", "e", "p"], None),
    // Calls anyone may make.
    (&[ALICE, "endpoint", "health"], None),
    (&[ALICE, "alarm", "list"], None),
    // Root may do everything.
    (&[ROOT, "get", "/secret"], None),
    (&[ROOT, "user", "list"], None),
    (&[ROOT, "role", "get", "writer"], None),
    (&[ROOT, "user", "get", "alice"], None),
    // Permission changes take effect at once.
    (
        &[
            ROOT,
            "role",
            "grant-permission",
            "reader",
            "read",
            "/secret",
        ],
        None,
    ),
    (&[ALICE, "get", "/secret"], None),
    (&[ROOT, "user", "revoke-role", "alice", "reader"], None),
    (&[ALICE, "get", "/secret"], None),
    (&[ROOT, "user", "delete", "bob"], None),
    (&[BOB, "get", "/fkz"], None),
    (
        &[ROOT, "user", "passwd", "alice", "--interactive=false"],
        Some("a2\n"),
    ),
    (&[ALICE, "get", "/w/1"], None),
    (&["--user=alice:a2", "get", "/w/1"], None),
    (&[ROOT, "user", "delete", "root"], None),
    (&[ROOT, "user", "revoke-role", "root", "root"], None),
    (&[ROOT, "role", "delete", "root"], None),
];

#[test]
fn permissions_are_enforced_as_etcd_enforces_them() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = RealEtcd::start();
    let mut cairn = Member::start(&dir.path().join("m1"), &["--bcrypt-cost", "4"]);
    same_as_etcd(&etcd, &cairn, SETUP.iter().copied());
    for (step, stdin) in ENFORCED {
        let want = normalized(&etcdctl(&etcd.endpoint(), step, *stdin));
        let got = normalized(&etcdctl(&cairn.endpoint(), step, *stdin));
        assert_eq!(got, want, "etcdctl {step:?}");
    }

    let members = etcdctl(&cairn.endpoint(), &["member", "list"], None);
    assert!(
        members.stdout.contains(", started, m1, "),
        "anyone lists members: {members:?}"
    );

    // Where Cairn is stricter than etcd 3.4.23, on purpose:
    // compaction destroys history, so it is root's (etcd 3.4 lets any caller compact) ...
    let compact = etcdctl(
        &cairn.endpoint(),
        &["--user=alice:a2", "compact", "2"],
        None,
    );
    assert!(
        compact.stderr.contains("etcdserver: permission denied"),
        "{compact:?}"
    );
    let compact = etcdctl(&cairn.endpoint(), &[ROOT, "compact", "2"], None);
    assert_eq!(compact.stdout, "compacted revision 2\n", "{compact:?}");
    // ... and a lease's key names are shown only to who may read them (fixed in etcd 3.4.26).
    let grant = etcdctl(&cairn.endpoint(), &[ROOT, "lease", "grant", "600"], None);
    let lease = grant.stdout.split_whitespace().nth(1).unwrap().to_string();
    let put = etcdctl(
        &cairn.endpoint(),
        &[
            ROOT,
            "put",
            "/secret/leased",
            "v",
            &format!("--lease={lease}"),
        ],
        None,
    );
    assert_eq!(put.stdout, "OK\n", "{put:?}");
    let ttl = etcdctl(
        &cairn.endpoint(),
        &["--user=alice:a2", "lease", "timetolive", &lease, "--keys"],
        None,
    );
    assert!(ttl.stderr.contains("permission denied"), "{ttl:?}");
    // Revoking a lease deletes its keys: only for who may write them all.
    let revoke = etcdctl(
        &cairn.endpoint(),
        &["--user=alice:a2", "lease", "revoke", &lease],
        None,
    );
    assert!(revoke.stderr.contains("permission denied"), "{revoke:?}");
    let revoke = etcdctl(&cairn.endpoint(), &[ROOT, "lease", "revoke", &lease], None);
    assert!(revoke.stdout.contains("revoked"), "{revoke:?}");

    // Auth stays on across a SIGKILL and restart; tokens do not (clients authenticate again).
    cairn.restart();
    let anon = etcdctl(&cairn.endpoint(), &["get", "/r/1"], None);
    assert!(anon.stderr.contains("user name is empty"), "{anon:?}");
    let alice = etcdctl(&cairn.endpoint(), &["--user=alice:a2", "get", "/w/t"], None);
    assert_eq!(alice.stdout, "/w/t\nyes\n", "{alice:?}");

    same_as_etcd(
        &etcd,
        &cairn,
        [&[ROOT, "auth", "disable"][..], &["get", "/secret"][..]].into_iter(),
    );
}

/// `--auth-token jwt,…` side by side with etcd given the same keys: signed tokens, the same
/// outputs and errors.
#[test]
fn jwt_tokens_behave_as_etcds() {
    let dir = tempfile::tempdir().unwrap();
    let key = rcgen::KeyPair::generate().unwrap();
    let (public, private) = (dir.path().join("jwt.pub"), dir.path().join("jwt.key"));
    std::fs::write(&public, key.public_key_pem()).unwrap();
    std::fs::write(&private, key.serialize_pem()).unwrap();
    let token_flag = format!(
        "--auth-token=jwt,pub-key={},priv-key={},sign-method=ES256,ttl=5m",
        public.display(),
        private.display()
    );
    let etcd = RealEtcd::start_with("http", &[&token_flag], &[]);
    let cairn = Member::start(&dir.path().join("m1"), &["--bcrypt-cost", "4", &token_flag]);
    let steps: &[&[&str]] = &[
        &["user", "add", "root:rootpw"],
        &["user", "add", "alice:a"],
        &["role", "add", "r"],
        &[
            "role",
            "grant-permission",
            "r",
            "readwrite",
            "/a/",
            "--prefix",
        ],
        &["user", "grant-role", "alice", "r"],
        &["auth", "enable"],
        &["get", "/a/1"],
        &[ALICE, "put", "/a/1", "one"],
        &[ALICE, "get", "/a/1"],
        &[ALICE, "get", "/b"],
        &["--user=alice:wrong", "get", "/a/1"],
    ];
    same_as_etcd(&etcd, &cairn, steps.iter().copied());
    // A token signed before a permission change carries the old auth revision: both refuse it
    // with "revision of auth store is old" (clients then sign in again).
    let stale = |endpoint: String| {
        let rt = tokio::runtime::Runtime::new().unwrap();
        rt.block_on(async {
            let channel = tonic::transport::Channel::from_shared(format!("http://{endpoint}"))
                .unwrap()
                .connect()
                .await
                .unwrap();
            let token = pb::auth_client::AuthClient::new(channel.clone())
                .authenticate(pb::AuthenticateRequest {
                    name: "alice".into(),
                    password: "a".into(),
                })
                .await
                .unwrap()
                .into_inner()
                .token;
            let put = |token: String| {
                let channel = channel.clone();
                async move {
                    let mut req = tonic::Request::new(pb::PutRequest {
                        key: b"/a/2".to_vec().into(),
                        value: b"v".to_vec().into(),
                        ..Default::default()
                    });
                    req.metadata_mut().insert("token", token.parse().unwrap());
                    pb::kv_client::KvClient::new(channel).put(req).await
                }
            };
            put(token.clone()).await.unwrap();
            let change = etcdctl(&endpoint, &[ROOT, "role", "add", "another"], None);
            assert_eq!(change.code, 0, "{change:?}");
            let refused = put(token).await.unwrap_err();
            (refused.code(), refused.message().to_string())
        })
    };
    let want = stale(etcd.endpoint());
    assert_eq!(
        want,
        (
            tonic::Code::InvalidArgument,
            "etcdserver: revision of auth store is old".to_string()
        )
    );
    assert_eq!(stale(cairn.endpoint()), want);
    let steps: &[&[&str]] = &[
        &[ROOT, "user", "revoke-role", "alice", "r"],
        &[ALICE, "get", "/a/1"],
        &[ROOT, "auth", "disable"],
        &["get", "/a/1"],
    ];
    same_as_etcd(&etcd, &cairn, steps.iter().copied());
    // A bad key is refused at start with the file named.
    let bad = dir.path().join("not-a-key.pem");
    std::fs::write(&bad, "nonsense").unwrap();
    let out = std::process::Command::new(cairn_e2e::cairn_bin())
        .arg(format!("--data-dir={}", dir.path().join("m2").display()))
        .arg(format!(
            "--auth-token=jwt,pub-key={},sign-method=ES256",
            bad.display()
        ))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("JWT key {}", bad.display())),
        "{stderr}"
    );
}

/// A token handed out by one member works on every member (simple tokens are made through the
/// log; a member that has not applied the entry yet waits for it instead of refusing the
/// token), and an unknown token is refused everywhere with etcd's error.
#[test]
fn a_token_from_one_member_is_good_on_all_members() {
    let dir = tempfile::tempdir().unwrap();
    let cluster = Cluster::start_partitionable(dir.path(), 3, &["--bcrypt-cost", "4"]);
    let first = cluster.members[0].endpoint();
    for step in [
        &["user", "add", "root:rootpw"][..],
        &["user", "add", "alice:a"],
        &["role", "add", "r"],
        &[
            "role",
            "grant-permission",
            "r",
            "readwrite",
            "/a/",
            "--prefix",
        ],
        &["user", "grant-role", "alice", "r"],
        &["auth", "enable"],
    ] {
        let out = etcdctl(&first, step, None);
        assert_eq!(out.code, 0, "{step:?}: {out:?}");
    }
    let rt = tokio::runtime::Runtime::new().unwrap();
    let connect = |endpoint: String| async move {
        tonic::transport::Channel::from_shared(format!("http://{endpoint}"))
            .unwrap()
            .connect()
            .await
            .unwrap()
    };
    let put = |channel: tonic::transport::Channel, key: String, token: String| async move {
        let mut req = tonic::Request::new(pb::PutRequest {
            key: key.into_bytes().into(),
            value: b"v".to_vec().into(),
            ..Default::default()
        });
        req.metadata_mut().insert("token", token.parse().unwrap());
        pb::kv_client::KvClient::new(channel).put(req).await
    };
    // The third member is cut off while alice signs in with the first, so it has not seen her
    // token when she first uses it there.
    cluster.partition(&[&[0, 1]]);
    let token = rt.block_on(async {
        let mut auth = pb::auth_client::AuthClient::new(connect(first.clone()).await);
        loop {
            match auth
                .authenticate(pb::AuthenticateRequest {
                    name: "alice".into(),
                    password: "a".into(),
                })
                .await
            {
                Ok(r) => return r.into_inner().token,
                // The majority may be electing a leader.
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
    });
    let third = rt.block_on(connect(cluster.members[2].endpoint()));
    let early = rt.spawn(put(third, "/a/early".into(), token.clone()));
    std::thread::sleep(std::time::Duration::from_millis(500));
    cluster.heal();
    rt.block_on(async {
        early
            .await
            .unwrap()
            .expect("the lagging member waits for the token's entry");
        for (i, m) in cluster.members.iter().enumerate() {
            let channel = connect(m.endpoint()).await;
            put(channel.clone(), format!("/a/{i}"), token.clone())
                .await
                .unwrap_or_else(|e| panic!("member {i}: {e:?}"));
            let refused = put(channel, format!("/a/{i}"), "notatoken.1".into())
                .await
                .unwrap_err();
            assert_eq!(refused.code(), tonic::Code::Unauthenticated);
            assert_eq!(refused.message(), "etcdserver: invalid auth token");
        }
    });
}
