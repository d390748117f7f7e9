//! cairnctl's `auth`, `user` and `role` commands and its `--user`/`--password` logins: the same
//! steps through real etcdctl against real etcd and through cairnctl against Cairn must print the
//! same and end with the same exit code (cluster and member IDs and the Raft term masked, in
//! protobuf headers too; of stderr only the `Error:` lines, since etcdctl's password prompt
//! also leaves `stty` complaints there).

use cairn_e2e::{Member, RealEtcd, Run, cairnctl_bin, etcdctl_bin, normalized};
use cairn_proto::etcdserverpb::ResponseHeader;
use prost::Message as _;
use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

/// Arguments, standard input (none: an empty one) and `ETCDCTL_*` variables of one step.
struct Step {
    args: &'static [&'static str],
    stdin: Option<&'static str>,
    env: &'static [(&'static str, &'static str)],
}

const fn s(args: &'static [&'static str]) -> Step {
    Step {
        args,
        stdin: None,
        env: &[],
    }
}

const fn input(args: &'static [&'static str], stdin: &'static str) -> Step {
    Step {
        args,
        stdin: Some(stdin),
        env: &[],
    }
}

const fn env(env: &'static [(&'static str, &'static str)], args: &'static [&'static str]) -> Step {
    Step {
        args,
        stdin: None,
        env,
    }
}

/// Users, roles and permissions while auth is off, in every output format.
const MANAGEMENT: &[Step] = &[
    // user add: name:password, --new-user-password, --no-password, typed twice, from stdin.
    s(&["user", "add", "alice:pw"]),
    s(&["user", "add", "alice:pw"]),
    s(&["user", "add", ":x"]),
    s(&["user", "add"]),
    s(&["user", "add", "a", "b"]),
    s(&["user", "add", "bob", "--new-user-password=b2"]),
    s(&["user", "add", "x:y:z", "--new-user-password=zz"]),
    s(&["user", "add", "carol", "--no-password"]),
    input(&["user", "add", "dave"], "dpw\ndpw\n"),
    input(&["user", "add", "erin"], "x\ny\n"),
    input(&["user", "add", "erin"], "\n"),
    s(&["user", "add", "erin"]),
    input(
        &["user", "add", "erin", "--interactive=false"],
        " epw rest\n",
    ),
    s(&["user", "add", "frank", "--interactive=false"]),
    s(&["user", "add", "u-json:pw", "-w", "json"]),
    s(&["user", "add", "u-fields:pw", "-w", "fields"]),
    s(&["user", "add", "u-pb:pw", "-w", "protobuf"]),
    s(&["user", "add", "u-table:pw", "-w", "table"]),
    s(&["user", "add", "u-bad:pw", "-w", "bogus"]),
    // role add.
    s(&["role", "add", "r1"]),
    s(&["role", "add", "r1"]),
    s(&["role", "add", ""]),
    s(&["role", "add"]),
    s(&["role", "add", "r-json", "-w", "json"]),
    s(&["role", "add", "r-fields", "-w", "fields"]),
    s(&["role", "add", "r-pb", "-w", "protobuf"]),
    s(&["role", "add", "r-table", "-w", "table"]),
    // user grant-role.
    s(&["user", "grant-role", "alice", "r1"]),
    s(&["user", "grant-role", "alice", "r1"]),
    s(&["user", "grant-role", "alice", "nope"]),
    s(&["user", "grant-role", "nobody", "r1"]),
    s(&["user", "grant-role", "alice"]),
    s(&["user", "grant-role", "alice", "r-json", "-w", "json"]),
    s(&["user", "grant-role", "alice", "r-fields", "-w", "fields"]),
    s(&["user", "grant-role", "alice", "r-pb", "-w", "protobuf"]),
    s(&["user", "grant-role", "alice", "r-table", "-w", "table"]),
    // role grant-permission: keys, ranges, prefixes, from-key, everything, and bad arguments.
    s(&["role", "grant-permission", "r1", "read", "/a"]),
    s(&[
        "role",
        "grant-permission",
        "r1",
        "readwrite",
        "/p/",
        "--prefix",
    ]),
    s(&["role", "grant-permission", "r1", "write", "/k", "/z"]),
    s(&[
        "role",
        "grant-permission",
        "r1",
        "READ",
        "/from",
        "--from-key",
    ]),
    s(&["role", "grant-permission", "r1", "write", "/a", "/b", "/c"]),
    s(&["role", "grant-permission", "r1", "read", "", "--prefix"]),
    s(&["role", "grant-permission", "r1", "write", "/a"]),
    s(&["role", "grant-permission", "r1", "bogus", "/x"]),
    s(&["role", "grant-permission", "r1", "read"]),
    s(&[
        "role",
        "grant-permission",
        "r1",
        "read",
        "/a",
        "--prefix",
        "--from-key",
    ]),
    s(&[
        "role",
        "grant-permission",
        "r1",
        "read",
        "/a",
        "/b",
        "--prefix",
    ]),
    s(&[
        "role",
        "grant-permission",
        "r1",
        "read",
        "/a",
        "/b",
        "--from-key",
    ]),
    s(&["role", "grant-permission", "nope", "read", "x"]),
    s(&[
        "role",
        "grant-permission",
        "r-json",
        "read",
        "/j",
        "-w",
        "json",
    ]),
    s(&[
        "role",
        "grant-permission",
        "r-fields",
        "read",
        "/f",
        "-w",
        "fields",
    ]),
    s(&[
        "role",
        "grant-permission",
        "r-pb",
        "write",
        "/pb/",
        "--prefix",
        "-w",
        "protobuf",
    ]),
    s(&[
        "role",
        "grant-permission",
        "r-table",
        "read",
        "/t",
        "-w",
        "table",
    ]),
    // role get and user get, with --detail.
    s(&["role", "get", "r1"]),
    s(&["role", "get", "r1", "-w", "json"]),
    s(&["role", "get", "r1", "-w", "fields"]),
    s(&["role", "get", "r1", "-w", "protobuf"]),
    s(&["role", "get", "r1", "-w", "table"]),
    s(&["role", "get", "nope"]),
    s(&["role", "get"]),
    s(&["user", "get", "alice"]),
    s(&["user", "get", "alice", "-w", "json"]),
    s(&["user", "get", "alice", "-w", "fields"]),
    s(&["user", "get", "alice", "-w", "protobuf"]),
    s(&["user", "get", "alice", "-w", "table"]),
    s(&["user", "get", "alice", "--detail"]),
    s(&["user", "get", "alice", "--detail", "-w", "json"]),
    s(&["user", "get", "alice", "--detail", "-w", "fields"]),
    s(&["user", "get", "alice", "--detail", "-w", "table"]),
    s(&["user", "get", "carol", "--detail", "-w", "table"]),
    s(&["user", "get", "x:y:z"]),
    s(&["user", "get", "nobody"]),
    s(&["user", "get", "nobody", "--detail"]),
    s(&["user", "get"]),
    // Lists.
    s(&["user", "list"]),
    s(&["user", "list", "-w", "json"]),
    s(&["user", "list", "-w", "fields"]),
    s(&["user", "list", "-w", "protobuf"]),
    s(&["user", "list", "-w", "table"]),
    s(&["user", "list", "x"]),
    s(&["role", "list"]),
    s(&["role", "list", "-w", "json"]),
    s(&["role", "list", "-w", "fields"]),
    s(&["role", "list", "-w", "protobuf"]),
    s(&["role", "list", "-w", "table"]),
    s(&["role", "list", "x"]),
    // Revocations.
    s(&["user", "revoke-role", "alice", "r-table"]),
    s(&["user", "revoke-role", "alice", "r-table"]),
    s(&["user", "revoke-role", "nobody", "r1"]),
    s(&["user", "revoke-role", "alice"]),
    s(&["user", "revoke-role", "alice", "r-json", "-w", "json"]),
    s(&["user", "revoke-role", "alice", "r-fields", "-w", "fields"]),
    s(&["user", "revoke-role", "alice", "r-pb", "-w", "protobuf"]),
    s(&["role", "revoke-permission", "r1", "/a"]),
    s(&["role", "revoke-permission", "r1", "/a"]),
    s(&["role", "revoke-permission", "r1", "/p/", "--prefix"]),
    s(&["role", "revoke-permission", "r1", "/k", "/z"]),
    s(&["role", "revoke-permission", "r1", "/from", "--from-key"]),
    s(&["role", "revoke-permission", "r1", "", "--prefix"]),
    s(&["role", "revoke-permission", "r1", ""]),
    s(&["role", "revoke-permission", "r1", "/a", "/b", "--prefix"]),
    s(&["role", "revoke-permission", "r1"]),
    s(&["role", "revoke-permission", "r-json", "/j", "-w", "json"]),
    s(&[
        "role",
        "revoke-permission",
        "r-fields",
        "/f",
        "-w",
        "fields",
    ]),
    s(&[
        "role",
        "revoke-permission",
        "r-pb",
        "/pb/",
        "--prefix",
        "-w",
        "protobuf",
    ]),
    s(&["role", "revoke-permission", "r-table", "/t", "-w", "table"]),
    s(&["role", "get", "r1"]),
    // Passwords.
    input(
        &["user", "passwd", "alice", "--interactive=false"],
        "newpw\n",
    ),
    input(&["user", "passwd", "alice"], "a1\na1\n"),
    input(&["user", "passwd", "alice"], "a1\na2\n"),
    input(&["user", "passwd", "alice"], " \n"),
    input(&["user", "passwd", "nobody", "--interactive=false"], "z\n"),
    input(
        &["user", "passwd", "bob", "--interactive=false", "-w", "json"],
        "z\n",
    ),
    input(
        &[
            "user",
            "passwd",
            "bob",
            "--interactive=false",
            "-w",
            "fields",
        ],
        "z\n",
    ),
    input(
        &[
            "user",
            "passwd",
            "bob",
            "--interactive=false",
            "-w",
            "protobuf",
        ],
        "z\n",
    ),
    s(&["user", "passwd"]),
    // Deletions.
    s(&["user", "delete", "bob"]),
    s(&["user", "delete", "bob"]),
    s(&["user", "delete", "u-json", "-w", "json"]),
    s(&["user", "delete", "u-fields", "-w", "fields"]),
    s(&["user", "delete", "u-pb", "-w", "protobuf"]),
    s(&["user", "delete", "u-table", "-w", "table"]),
    s(&["user", "delete"]),
    s(&["role", "delete", "r-json", "-w", "json"]),
    s(&["role", "delete", "r-fields", "-w", "fields"]),
    s(&["role", "delete", "r-pb", "-w", "protobuf"]),
    s(&["role", "delete", "r-table", "-w", "table"]),
    s(&["role", "delete", "r-table"]),
    s(&["role", "delete"]),
    s(&["user", "list"]),
    s(&["role", "list"]),
];

/// Turning auth on, logins of every kind, permissions enforced, turning auth off.
const ENFORCED: &[Step] = &[
    s(&["put", "/p/1", "one"]),
    s(&["put", "/secret", "s"]),
    s(&["auth", "enable"]),
    s(&["auth", "enable", "x"]),
    s(&["auth", "disable", "x"]),
    s(&["user", "add", "root:rootpw"]),
    // etcdctl 3.4 gives root the role root itself, but not when the role already exists.
    s(&["role", "add", "root"]),
    s(&["auth", "enable", "-w", "json"]),
    s(&["user", "grant-role", "root", "root"]),
    s(&["auth", "enable"]),
    // Without credentials, or with unusable ones.
    s(&["auth", "enable"]),
    s(&["get", "/p/1"]),
    s(&["put", "/p/1", "v"]),
    s(&["user", "list"]),
    s(&["--user=root:bad", "get", "/p/1"]),
    s(&["--user=nobody:x", "put", "/p/1", "v"]),
    s(&["--user=carol:", "get", "/p/1"]),
    s(&["--password=rootpw", "get", "/p/1"]),
    s(&[
        "--user",
        "root:rootpw",
        "--password",
        "rootpw",
        "get",
        "/p/1",
    ]),
    // A refused login ends any command, however it reports other errors.
    s(&["--user=root:bad", "endpoint", "status"]),
    s(&["--user=root:bad", "endpoint", "hashkv"]),
    s(&["--user=root:bad", "endpoint", "health"]),
    s(&["--user=root:bad", "member", "list"]),
    s(&["--user=root:bad", "lease", "grant", "10"]),
    s(&["--user=root:bad", "lease", "list"]),
    input(&["--user=root:bad", "txn", "-i"], "\n\n\n"),
    s(&["--user=root:bad", "watch", "x"]),
    s(&["--user=root:bad", "lock", "l"]),
    s(&["--user=root:bad", "elect", "e", "p"]),
    s(&["--user=root:bad", "compaction", "1"]),
    s(&["--user=root:bad", "user", "list"]),
    s(&["--user=root:bad", "auth", "disable"]),
    // name:password, --user with --password, the password typed, the environment.
    s(&["--user=root:rootpw", "user", "list"]),
    s(&[
        "--user",
        "root",
        "--password",
        "rootpw",
        "role",
        "list",
        "-w",
        "json",
    ]),
    input(&["--user", "root", "user", "get", "root"], "rootpw\n"),
    input(&["--user", "root", "user", "get", "root"], "  rootpw  \n"),
    input(&["--user", "root", "get", "/p/1"], "wrong\n"),
    s(&["--user", "root", "get", "/p/1"]),
    input(&["--user", "root", "put", "/p/2"], "rootpw\nvalue\n"),
    env(&[("ETCDCTL_USER", "root:rootpw")], &["get", "/secret"]),
    env(
        &[("ETCDCTL_USER", "root"), ("ETCDCTL_PASSWORD", "rootpw")],
        &["get", "/secret"],
    ),
    env(&[("ETCDCTL_USER", "root:bad")], &["get", "/secret"]),
    // Root sets up dave, who may use /p/ only.
    s(&[
        "--user=root:rootpw",
        "role",
        "grant-permission",
        "r1",
        "readwrite",
        "/p/",
        "--prefix",
    ]),
    s(&["--user=root:rootpw", "user", "grant-role", "dave", "r1"]),
    s(&["--user=root:rootpw", "role", "get", "r1", "-w", "fields"]),
    s(&["--user=root:rootpw", "user", "get", "dave", "--detail"]),
    s(&["--user=dave:dpw", "put", "/p/2", "two"]),
    s(&["--user=dave:dpw", "get", "/p/", "--prefix", "-w", "json"]),
    s(&["--user=dave:dpw", "get", "/secret"]),
    s(&["--user=dave:dpw", "put", "/secret", "x"]),
    s(&["--user=dave:dpw", "del", "/secret"]),
    input(
        &["--user=dave:dpw", "txn"],
        "\nget /p/1\n\nput /secret x\n\n",
    ),
    s(&["--user=dave:dpw", "endpoint", "health"]),
    s(&["--user=dave:dpw", "user", "list"]),
    s(&["--user=dave:dpw", "user", "get", "dave"]),
    s(&["--user=dave:dpw", "role", "get", "r1"]),
    s(&["--user=dave:dpw", "auth", "disable"]),
    s(&["--user=erin:epw", "get", "/p/1"]),
    s(&["--user=erin:epw", "user", "list"]),
    // Changes take effect at once.
    input(
        &[
            "--user=root:rootpw",
            "user",
            "passwd",
            "dave",
            "--interactive=false",
        ],
        "d2\n",
    ),
    s(&["--user=dave:dpw", "get", "/p/1"]),
    s(&["--user=dave:d2", "get", "/p/1"]),
    s(&["--user=root:rootpw", "user", "revoke-role", "dave", "r1"]),
    s(&["--user=dave:d2", "get", "/p/1"]),
    s(&["--user=root:rootpw", "auth", "disable", "-w", "json"]),
    s(&["--user=root:rootpw", "auth", "disable"]),
    s(&["get", "/secret"]),
    s(&["--user=dave:d2", "get", "/secret"]),
];

/// gogo/protobuf puts the header first: with its IDs and Raft term zeroed the rest of the
/// answer compares byte for byte.
fn mask_protobuf(out: &[u8]) -> Vec<u8> {
    let masked = (|| {
        let (&tag, rest) = out.split_first()?;
        if tag != 0x0a {
            return None;
        }
        let mut body = rest;
        let len = usize::try_from(prost::encoding::decode_varint(&mut body).ok()?).ok()?;
        let mut h = ResponseHeader::decode(body.get(..len)?).ok()?;
        (h.cluster_id, h.member_id, h.raft_term) = (0, 0, 0);
        let mut v = vec![0x0a];
        h.encode_length_delimited(&mut v).ok()?;
        v.extend_from_slice(body.get(len..)?);
        Some(v)
    })();
    masked.unwrap_or_else(|| out.to_vec())
}

fn run(bin: &Path, endpoint: &str, step: &Step) -> (i32, String, String) {
    let mut cmd = Command::new(bin);
    cmd.env("ETCDCTL_API", "3")
        .envs(step.env.iter().copied())
        .arg("--endpoints")
        .arg(endpoint)
        .args(step.args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    if let (Some(mut pipe), Some(text)) = (child.stdin.take(), step.stdin) {
        let _ = pipe.write_all(text.as_bytes());
    }
    let out = child.wait_with_output().expect("client output");
    let stdout = if step.args.contains(&"protobuf") {
        format!("{:02x?}", mask_protobuf(&out.stdout))
    } else {
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    normalized(&Run {
        code: out.status.code().unwrap_or(-1),
        stdout,
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    })
}

fn same(etcd: &RealEtcd, cairn: &Member, steps: &[Step]) {
    for step in steps {
        let want = run(&etcdctl_bin(), &etcd.endpoint(), step);
        let got = run(&cairnctl_bin(), &cairn.endpoint(), step);
        assert_eq!(
            got, want,
            "cairnctl {:?} (env {:?}) differs from etcdctl (left: cairnctl on Cairn)",
            step.args, step.env
        );
    }
}

#[test]
fn auth_commands_and_logins_match_etcdctl() {
    let dir = tempfile::tempdir().unwrap();
    let etcd = RealEtcd::start();
    let cairn = Member::start(&dir.path().join("m1"), &["--bcrypt-cost", "4"]);
    same(&etcd, &cairn, MANAGEMENT);
    same(&etcd, &cairn, ENFORCED);
}

/// etcdctl 3.4 has no `auth status` (it shows the `auth` help); cairnctl prints what etcdctl
/// 3.5 prints.
#[test]
fn auth_status_is_etcdctl_35s() {
    let dir = tempfile::tempdir().unwrap();
    let cairn = Member::start(&dir.path().join("m1"), &["--bcrypt-cost", "4"]);
    let ep = cairn.endpoint();
    let ctl = |args: &[&str]| cairn_e2e::cairnctl(&ep, args, None);
    let off = ctl(&["auth", "status"]);
    assert_eq!(
        (off.code, off.stdout.as_str()),
        (0, "Authentication Status: false\nAuthRevision: 1\n"),
        "{off:?}"
    );
    for step in [
        &["user", "add", "root:r"][..],
        &["auth", "enable"],
        &["--user=root:r", "auth", "status"],
    ] {
        assert_eq!(ctl(step).code, 0, "{step:?}");
    }
    let on = ctl(&["--user=root:r", "auth", "status", "-w", "json"]);
    let v: serde_json::Value = serde_json::from_str(&on.stdout).unwrap();
    assert_eq!(v["enabled"], true, "{on:?}");
    assert!(v["authRevision"].as_u64().unwrap() > 1, "{on:?}");
    let fields = ctl(&["--user=root:r", "auth", "status", "-w", "fields"]);
    assert_eq!(fields.code, 4, "{fields:?}");
    assert!(
        fields
            .stderr
            .contains("Error: fields not supported as output format")
    );
    let extra = ctl(&["auth", "status", "x"]);
    assert_eq!(extra.code, 128, "{extra:?}");
}
