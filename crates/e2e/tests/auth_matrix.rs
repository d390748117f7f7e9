//! Every RPC Cairn serves × {no credentials, a user without permissions, a user with
//! read-write on the keys the call touches, root}, with auth on: the expected answer for each.
//!
//! The list of RPCs is read from the service definitions Cairn is built from, and the test fails
//! when an RPC has no row here: a new RPC cannot be added without deciding who may call it.

use cairn_e2e::Member;
use cairn_proto::etcdserverpb::{
    self as pb, auth_client::AuthClient, cluster_client::ClusterClient, kv_client::KvClient,
    lease_client::LeaseClient, maintenance_client::MaintenanceClient, watch_client::WatchClient,
};
use cairn_proto::v3electionpb::{self as el, election_client::ElectionClient};
use cairn_proto::v3lockpb::{self as lk, lock_client::LockClient};
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Code, Status};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Who {
    Nobody,
    NoPerms,
    Permitted,
    Root,
}

const WHO: [Who; 4] = [Who::Nobody, Who::NoPerms, Who::Permitted, Who::Root];

/// What a call must get.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Through the auth checks: success or an error that has nothing to do with auth.
    Allowed,
    /// "etcdserver: user name is empty" (InvalidArgument).
    UserEmpty,
    /// "etcdserver: permission denied" (PermissionDenied).
    Denied,
    /// The Maintenance service's untranslated "auth: user name is empty" (Unknown).
    RawUserEmpty,
    /// The Maintenance service's untranslated "auth: permission denied" (Unknown).
    RawDenied,
    /// A watch created and canceled at once with etcd's permission-denied reason.
    WatchRefused,
    /// "etcdserver: authentication failed, invalid user ID or password".
    AuthFailed,
}

use Expect::*;

/// Calls anyone may make.
const OPEN: [Expect; 4] = [Allowed, Allowed, Allowed, Allowed];
/// Calls on keys: the permitted user may, as root may.
const KEYED: [Expect; 4] = [UserEmpty, Denied, Allowed, Allowed];
/// Root-only calls.
const ADMIN: [Expect; 4] = [UserEmpty, Denied, Denied, Allowed];
/// Root-only Maintenance calls.
const ADMIN_RAW: [Expect; 4] = [RawUserEmpty, RawDenied, RawDenied, Allowed];

const TABLE: &[(&str, &str, [Expect; 4])] = &[
    ("KV", "Range", KEYED),
    ("KV", "RangeStream", KEYED),
    ("KV", "Put", KEYED),
    ("KV", "DeleteRange", KEYED),
    ("KV", "Txn", KEYED),
    // Stricter than etcd 3.4, which lets anyone compact.
    ("KV", "Compact", ADMIN),
    (
        "Watch",
        "Watch",
        [WatchRefused, WatchRefused, Allowed, Allowed],
    ),
    ("Lease", "LeaseGrant", OPEN),
    // Revoking deletes the lease's keys: only for who may write them all.
    ("Lease", "LeaseRevoke", KEYED),
    ("Lease", "LeaseKeepAlive", OPEN),
    // Its key names are shown only to who may read them (etcd ≥ 3.4.26).
    ("Lease", "LeaseTimeToLive", KEYED),
    ("Lease", "LeaseLeases", OPEN),
    ("Cluster", "MemberAdd", ADMIN),
    ("Cluster", "MemberRemove", ADMIN),
    ("Cluster", "MemberUpdate", ADMIN),
    ("Cluster", "MemberList", OPEN),
    ("Cluster", "MemberPromote", ADMIN),
    ("Maintenance", "Alarm", OPEN),
    ("Maintenance", "Status", OPEN),
    ("Maintenance", "Defragment", ADMIN_RAW),
    ("Maintenance", "Hash", ADMIN_RAW),
    ("Maintenance", "HashKV", ADMIN_RAW),
    ("Maintenance", "Snapshot", ADMIN_RAW),
    ("Maintenance", "MoveLeader", ADMIN_RAW),
    ("Maintenance", "Downgrade", ADMIN_RAW),
    ("Auth", "AuthEnable", ADMIN),
    // etcd 3.7 answers anyone (3.4-3.6: root only).
    ("Auth", "AuthStatus", OPEN),
    // Needs no token: the caller's own name and password (none: refused).
    (
        "Auth",
        "Authenticate",
        [AuthFailed, Allowed, Allowed, Allowed],
    ),
    ("Auth", "UserAdd", ADMIN),
    ("Auth", "UserGet", ADMIN),
    ("Auth", "UserList", ADMIN),
    ("Auth", "UserDelete", ADMIN),
    ("Auth", "UserChangePassword", ADMIN),
    ("Auth", "UserGrantRole", ADMIN),
    ("Auth", "UserRevokeRole", ADMIN),
    ("Auth", "RoleAdd", ADMIN),
    ("Auth", "RoleGet", ADMIN),
    ("Auth", "RoleList", ADMIN),
    ("Auth", "RoleDelete", ADMIN),
    ("Auth", "RoleGrantPermission", ADMIN),
    ("Auth", "RoleRevokePermission", ADMIN),
    ("Election", "Campaign", KEYED),
    ("Election", "Proclaim", KEYED),
    ("Election", "Leader", KEYED),
    ("Election", "Observe", KEYED),
    ("Election", "Resign", KEYED),
    ("Lock", "Lock", KEYED),
    ("Lock", "Unlock", KEYED),
    // Last: root's call turns auth off, which ends every token.
    ("Auth", "AuthDisable", ADMIN),
];

/// Every `service`/`rpc` pair of the public definitions and of Cairn's own KV definition.
fn served_rpcs() -> BTreeSet<(String, String)> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../proto/proto");
    let mut rpcs = BTreeSet::new();
    for file in [
        "etcdserverpb/rpc.proto",
        "cairnpb/kv_server.proto",
        "v3electionpb/v3election.proto",
        "v3lockpb/v3lock.proto",
    ] {
        let text = std::fs::read_to_string(root.join(file)).unwrap();
        let mut service = String::new();
        for line in text.lines().map(str::trim) {
            if let Some(rest) = line.strip_prefix("service ") {
                service = rest.split_whitespace().next().unwrap().to_string();
            } else if let Some(rest) = line.strip_prefix("rpc ") {
                let name = rest.split('(').next().unwrap().trim().to_string();
                rpcs.insert((service.clone(), name));
            }
        }
    }
    rpcs
}

#[derive(Clone)]
struct Token(Option<MetadataValue<Ascii>>);

impl tonic::service::Interceptor for Token {
    fn call(&mut self, mut r: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(t) = &self.0 {
            r.metadata_mut().insert("token", t.clone());
        }
        Ok(r)
    }
}

type Ch = InterceptedService<Channel, Token>;

struct Fixture {
    channel: Channel,
    tokens: [Token; 4],
    root: Ch,
    unique: AtomicU64,
}

fn creds(who: Who) -> (&'static str, &'static str) {
    match who {
        Who::Nobody => ("", ""),
        Who::NoPerms => ("noperms", "np"),
        Who::Permitted => ("permitted", "pp"),
        Who::Root => ("root", "rootpw"),
    }
}

impl Fixture {
    fn as_(&self, who: Who) -> Ch {
        let i = WHO.iter().position(|w| *w == who).unwrap();
        InterceptedService::new(self.channel.clone(), self.tokens[i].clone())
    }

    fn next(&self) -> u64 {
        self.unique.fetch_add(1, Ordering::Relaxed)
    }

    async fn lease_with_key(&self) -> i64 {
        let id = LeaseClient::new(self.root.clone())
            .lease_grant(pb::LeaseGrantRequest { ttl: 600, id: 0 })
            .await
            .unwrap()
            .into_inner()
            .id;
        KvClient::new(self.root.clone())
            .put(pb::PutRequest {
                key: format!("/m/leased-{}", self.next()).into_bytes().into(),
                value: b"v".to_vec().into(),
                lease: id,
                ..Default::default()
            })
            .await
            .unwrap();
        id
    }

    /// A learner that never starts (a cluster may have one): the one there is, or a new one.
    async fn learner(&self) -> u64 {
        let mut cluster = ClusterClient::new(self.root.clone());
        let members = cluster
            .member_list(pb::MemberListRequest { linearizable: true })
            .await
            .unwrap()
            .into_inner()
            .members;
        if let Some(m) = members.iter().find(|m| m.is_learner) {
            return m.id;
        }
        let url = format!("http://127.0.0.1:{}", 20000 + self.next());
        cluster
            .member_add(pb::MemberAddRequest {
                peer_ur_ls: vec![url],
                is_learner: true,
            })
            .await
            .unwrap()
            .into_inner()
            .member
            .unwrap()
            .id
    }

    /// Makes one call of `rpc` as `who`; `Ok` for any answer but an error.
    async fn call(&self, service: &str, rpc: &str, who: Who) -> Result<(), Status> {
        let ch = self.as_(who);
        let n = self.next();
        let key = |p: &str| format!("/m/{p}-{n}").into_bytes();
        match (service, rpc) {
            ("KV", "Range") => {
                KvClient::new(ch)
                    .range(pb::RangeRequest {
                        key: key("k").into(),
                        ..Default::default()
                    })
                    .await?;
            }
            ("KV", "RangeStream") => {
                let mut s = KvClient::new(ch)
                    .range_stream(pb::RangeRequest {
                        key: key("k").into(),
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                s.message().await?;
            }
            ("KV", "Put") => {
                KvClient::new(ch)
                    .put(pb::PutRequest {
                        key: key("k").into(),
                        value: b"v".to_vec().into(),
                        ..Default::default()
                    })
                    .await?;
            }
            ("KV", "DeleteRange") => {
                KvClient::new(ch)
                    .delete_range(pb::DeleteRangeRequest {
                        key: key("k").into(),
                        ..Default::default()
                    })
                    .await?;
            }
            ("KV", "Txn") => {
                let put = pb::RequestOp {
                    request: Some(pb::request_op::Request::RequestPut(pb::PutRequest {
                        key: key("t").into(),
                        ..Default::default()
                    })),
                };
                KvClient::new(ch)
                    .txn(pb::TxnRequest {
                        compare: vec![pb::Compare {
                            key: key("t").into(),
                            target: pb::compare::CompareTarget::Version as i32,
                            target_union: Some(pb::compare::TargetUnion::Version(0)),
                            ..Default::default()
                        }],
                        success: vec![put],
                        failure: vec![],
                    })
                    .await?;
            }
            ("KV", "Compact") => {
                KvClient::new(ch)
                    .compact(pb::CompactionRequest {
                        revision: 1,
                        physical: false,
                    })
                    .await?;
            }
            ("Watch", "Watch") => {
                let create = pb::WatchRequest {
                    request_union: Some(pb::watch_request::RequestUnion::CreateRequest(
                        pb::WatchCreateRequest {
                            key: key("w").into(),
                            ..Default::default()
                        },
                    )),
                };
                let mut answers = WatchClient::new(ch)
                    .watch(futures::stream::iter(vec![create]).chain(futures::stream::pending()))
                    .await?
                    .into_inner();
                let first = answers
                    .message()
                    .await?
                    .ok_or_else(|| Status::internal("watch stream ended"))?;
                if first.canceled {
                    return Err(Status::new(Code::Aborted, first.cancel_reason));
                }
            }
            ("Lease", "LeaseGrant") => {
                LeaseClient::new(ch)
                    .lease_grant(pb::LeaseGrantRequest { ttl: 60, id: 0 })
                    .await?;
            }
            ("Lease", "LeaseRevoke") => {
                let id = self.lease_with_key().await;
                LeaseClient::new(ch)
                    .lease_revoke(pb::LeaseRevokeRequest { id })
                    .await?;
            }
            ("Lease", "LeaseKeepAlive") => {
                let id = self.lease_with_key().await;
                let mut answers = LeaseClient::new(ch)
                    .lease_keep_alive(futures::stream::iter(vec![pb::LeaseKeepAliveRequest {
                        id,
                    }]))
                    .await?
                    .into_inner();
                answers.message().await?;
            }
            ("Lease", "LeaseTimeToLive") => {
                let id = self.lease_with_key().await;
                LeaseClient::new(ch)
                    .lease_time_to_live(pb::LeaseTimeToLiveRequest { id, keys: true })
                    .await?;
            }
            ("Lease", "LeaseLeases") => {
                LeaseClient::new(ch)
                    .lease_leases(pb::LeaseLeasesRequest {})
                    .await?;
            }
            ("Cluster", "MemberAdd") => {
                ClusterClient::new(ch)
                    .member_add(pb::MemberAddRequest {
                        peer_ur_ls: vec![format!("http://127.0.0.1:{}", 20000 + n)],
                        is_learner: true,
                    })
                    .await?;
            }
            ("Cluster", "MemberRemove") => {
                let id = self.learner().await;
                ClusterClient::new(ch)
                    .member_remove(pb::MemberRemoveRequest { id })
                    .await?;
            }
            ("Cluster", "MemberUpdate") => {
                let id = self.learner().await;
                ClusterClient::new(ch)
                    .member_update(pb::MemberUpdateRequest {
                        id,
                        peer_ur_ls: vec![format!("http://127.0.0.1:{}", 30000 + n)],
                    })
                    .await?;
            }
            ("Cluster", "MemberList") => {
                ClusterClient::new(ch)
                    .member_list(pb::MemberListRequest { linearizable: true })
                    .await?;
            }
            ("Cluster", "MemberPromote") => {
                let id = self.learner().await;
                ClusterClient::new(ch)
                    .member_promote(pb::MemberPromoteRequest { id })
                    .await?;
            }
            ("Maintenance", "Alarm") => {
                MaintenanceClient::new(ch)
                    .alarm(pb::AlarmRequest::default())
                    .await?;
            }
            ("Maintenance", "Status") => {
                MaintenanceClient::new(ch)
                    .status(pb::StatusRequest {})
                    .await?;
            }
            ("Maintenance", "Defragment") => {
                MaintenanceClient::new(ch)
                    .defragment(pb::DefragmentRequest {})
                    .await?;
            }
            ("Maintenance", "Hash") => {
                MaintenanceClient::new(ch).hash(pb::HashRequest {}).await?;
            }
            ("Maintenance", "HashKV") => {
                MaintenanceClient::new(ch)
                    .hash_kv(pb::HashKvRequest { revision: 0 })
                    .await?;
            }
            ("Maintenance", "Snapshot") => {
                let mut s = MaintenanceClient::new(ch)
                    .snapshot(pb::SnapshotRequest {})
                    .await?
                    .into_inner();
                s.message().await?;
            }
            ("Maintenance", "MoveLeader") => {
                MaintenanceClient::new(ch)
                    .move_leader(pb::MoveLeaderRequest { target_id: 1 })
                    .await?;
            }
            ("Maintenance", "Downgrade") => {
                MaintenanceClient::new(ch)
                    .downgrade(pb::DowngradeRequest::default())
                    .await?;
            }
            ("Auth", "AuthEnable") => {
                AuthClient::new(ch)
                    .auth_enable(pb::AuthEnableRequest {})
                    .await?;
            }
            ("Auth", "AuthDisable") => {
                AuthClient::new(ch)
                    .auth_disable(pb::AuthDisableRequest {})
                    .await?;
                let status = AuthClient::new(self.channel.clone())
                    .auth_status(pb::AuthStatusRequest {})
                    .await?
                    .into_inner();
                assert!(!status.enabled, "root turned auth off");
            }
            ("Auth", "AuthStatus") => {
                AuthClient::new(ch)
                    .auth_status(pb::AuthStatusRequest {})
                    .await?;
            }
            ("Auth", "Authenticate") => {
                let (name, password) = creds(who);
                AuthClient::new(ch)
                    .authenticate(pb::AuthenticateRequest {
                        name: name.into(),
                        password: password.into(),
                    })
                    .await?;
            }
            ("Auth", "UserAdd") => {
                AuthClient::new(ch)
                    .user_add(pb::AuthUserAddRequest {
                        name: format!("u{n}"),
                        password: "x".into(),
                        ..Default::default()
                    })
                    .await?;
            }
            ("Auth", "UserGet") => {
                AuthClient::new(ch)
                    .user_get(pb::AuthUserGetRequest {
                        name: "root".into(),
                    })
                    .await?;
            }
            ("Auth", "UserList") => {
                AuthClient::new(ch)
                    .user_list(pb::AuthUserListRequest {})
                    .await?;
            }
            ("Auth", "UserDelete") => {
                AuthClient::new(ch)
                    .user_delete(pb::AuthUserDeleteRequest {
                        name: "scratch".into(),
                    })
                    .await?;
            }
            ("Auth", "UserChangePassword") => {
                AuthClient::new(ch)
                    .user_change_password(pb::AuthUserChangePasswordRequest {
                        name: "scratch".into(),
                        password: "y".into(),
                        ..Default::default()
                    })
                    .await?;
            }
            ("Auth", "UserGrantRole") => {
                AuthClient::new(ch)
                    .user_grant_role(pb::AuthUserGrantRoleRequest {
                        user: "scratch".into(),
                        role: "scratchrole".into(),
                    })
                    .await?;
            }
            ("Auth", "UserRevokeRole") => {
                AuthClient::new(ch)
                    .user_revoke_role(pb::AuthUserRevokeRoleRequest {
                        name: "scratch".into(),
                        role: "scratchrole".into(),
                    })
                    .await?;
            }
            ("Auth", "RoleAdd") => {
                AuthClient::new(ch)
                    .role_add(pb::AuthRoleAddRequest {
                        name: format!("r{n}"),
                    })
                    .await?;
            }
            ("Auth", "RoleGet") => {
                AuthClient::new(ch)
                    .role_get(pb::AuthRoleGetRequest {
                        role: "scratchrole".into(),
                    })
                    .await?;
            }
            ("Auth", "RoleList") => {
                AuthClient::new(ch)
                    .role_list(pb::AuthRoleListRequest {})
                    .await?;
            }
            ("Auth", "RoleDelete") => {
                AuthClient::new(ch)
                    .role_delete(pb::AuthRoleDeleteRequest {
                        role: format!("gone{n}"),
                    })
                    .await?;
            }
            ("Auth", "RoleGrantPermission") => {
                AuthClient::new(ch)
                    .role_grant_permission(pb::AuthRoleGrantPermissionRequest {
                        name: "scratchrole".into(),
                        perm: Some(cairn_proto::authpb::Permission {
                            perm_type: 0,
                            key: key("p").into(),
                            range_end: Default::default(),
                        }),
                    })
                    .await?;
            }
            ("Auth", "RoleRevokePermission") => {
                AuthClient::new(ch)
                    .role_revoke_permission(pb::AuthRoleRevokePermissionRequest {
                        role: "scratchrole".into(),
                        key: key("p").into(),
                        range_end: Default::default(),
                    })
                    .await?;
            }
            ("Election", "Campaign") => {
                let lease = self.lease_with_key().await;
                ElectionClient::new(ch)
                    .campaign(el::CampaignRequest {
                        name: key("e").into(),
                        lease,
                        value: b"me".to_vec().into(),
                    })
                    .await?;
            }
            ("Election", "Proclaim") => {
                ElectionClient::new(ch)
                    .proclaim(el::ProclaimRequest {
                        leader: Some(el::LeaderKey {
                            name: key("e").into(),
                            key: [key("e"), b"/1".to_vec()].concat().into(),
                            rev: 1,
                            lease: 1,
                        }),
                        value: b"v".to_vec().into(),
                    })
                    .await?;
            }
            ("Election", "Leader") => {
                ElectionClient::new(ch)
                    .leader(el::LeaderRequest {
                        name: key("e").into(),
                    })
                    .await?;
            }
            ("Election", "Observe") => {
                ElectionClient::new(ch)
                    .observe(el::LeaderRequest {
                        name: key("e").into(),
                    })
                    .await?;
            }
            ("Election", "Resign") => {
                ElectionClient::new(ch)
                    .resign(el::ResignRequest {
                        leader: Some(el::LeaderKey {
                            name: key("e").into(),
                            key: [key("e"), b"/1".to_vec()].concat().into(),
                            rev: 1,
                            lease: 1,
                        }),
                    })
                    .await?;
            }
            ("Lock", "Lock") => {
                let lease = self.lease_with_key().await;
                LockClient::new(ch)
                    .lock(lk::LockRequest {
                        name: key("l").into(),
                        lease,
                    })
                    .await?;
            }
            ("Lock", "Unlock") => {
                LockClient::new(ch)
                    .unlock(lk::UnlockRequest {
                        key: [key("l"), b"/1".to_vec()].concat().into(),
                    })
                    .await?;
            }
            other => panic!("no call written for {other:?}"),
        }
        Ok(())
    }
}

fn is_auth_error(s: &Status) -> bool {
    let m = s.message();
    m.contains("user name is empty")
        || m.contains("permission denied")
        || m.contains("invalid auth token")
        || m.contains("authentication failed")
        || m.contains("revision of auth store is old")
}

fn check(expect: Expect, got: &Result<(), Status>) -> bool {
    let is = |code: Code, msg: &str| {
        got.as_ref()
            .err()
            .is_some_and(|s| s.code() == code && s.message() == msg)
    };
    match expect {
        Allowed => got.as_ref().err().is_none_or(|s| !is_auth_error(s)),
        UserEmpty => is(Code::InvalidArgument, "etcdserver: user name is empty"),
        Denied => is(Code::PermissionDenied, "etcdserver: permission denied"),
        RawUserEmpty => is(Code::Unknown, "auth: user name is empty"),
        RawDenied => is(Code::Unknown, "auth: permission denied"),
        WatchRefused => is(
            Code::Aborted,
            "rpc error: code = PermissionDenied desc = etcdserver: permission denied",
        ),
        AuthFailed => is(
            Code::InvalidArgument,
            "etcdserver: authentication failed, invalid user ID or password",
        ),
    }
}

async fn setup(channel: Channel) -> Fixture {
    let none = InterceptedService::new(channel.clone(), Token(None));
    let mut auth = AuthClient::new(none.clone());
    for (name, pw) in [
        ("root", "rootpw"),
        ("noperms", "np"),
        ("permitted", "pp"),
        ("scratch", "s"),
    ] {
        auth.user_add(pb::AuthUserAddRequest {
            name: name.into(),
            password: pw.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    for role in ["root", "m", "scratchrole"] {
        auth.role_add(pb::AuthRoleAddRequest { name: role.into() })
            .await
            .unwrap();
    }
    auth.role_grant_permission(pb::AuthRoleGrantPermissionRequest {
        name: "m".into(),
        perm: Some(cairn_proto::authpb::Permission {
            perm_type: 2,
            key: b"/m/".to_vec().into(),
            range_end: b"/m0".to_vec().into(),
        }),
    })
    .await
    .unwrap();
    for (user, role) in [("root", "root"), ("permitted", "m")] {
        auth.user_grant_role(pb::AuthUserGrantRoleRequest {
            user: user.into(),
            role: role.into(),
        })
        .await
        .unwrap();
    }
    auth.auth_enable(pb::AuthEnableRequest {}).await.unwrap();
    let mut tokens = Vec::new();
    for who in WHO {
        let (name, password) = creds(who);
        if name.is_empty() {
            tokens.push(Token(None));
            continue;
        }
        let token = auth
            .authenticate(pb::AuthenticateRequest {
                name: name.into(),
                password: password.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .token;
        tokens.push(Token(Some(token.parse().unwrap())));
    }
    let tokens: [Token; 4] = tokens.try_into().unwrap_or_else(|_| unreachable!());
    let root = InterceptedService::new(channel.clone(), tokens[3].clone());
    Fixture {
        channel,
        tokens,
        root,
        unique: AtomicU64::new(1),
    }
}

use futures::StreamExt;

#[test]
fn every_rpc_has_a_row_and_answers_each_kind_of_caller_as_the_row_says() {
    let served = served_rpcs();
    let rows: BTreeSet<(String, String)> = TABLE
        .iter()
        .map(|(s, r, _)| (s.to_string(), r.to_string()))
        .collect();
    let missing: Vec<_> = served.difference(&rows).collect();
    assert!(
        missing.is_empty(),
        "RPCs without a row in TABLE: {missing:?}"
    );
    let stale: Vec<_> = rows.difference(&served).collect();
    assert!(
        stale.is_empty(),
        "rows for RPCs that are not served: {stale:?}"
    );

    let dir = tempfile::tempdir().unwrap();
    let member = Member::start(&dir.path().join("m1"), &["--bcrypt-cost", "4"]);
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let channel = Channel::from_shared(format!("http://{}", member.endpoint()))
            .unwrap()
            .connect()
            .await
            .unwrap();
        let f = setup(channel).await;
        let mut failures = Vec::new();
        for (service, rpc, expected) in TABLE {
            for (who, expect) in WHO.iter().zip(expected) {
                let got = tokio::time::timeout(
                    std::time::Duration::from_secs(10),
                    f.call(service, rpc, *who),
                )
                .await
                .unwrap_or_else(|_| Err(Status::deadline_exceeded("no answer in 10 s")));
                if !check(*expect, &got) {
                    failures.push(format!(
                        "{service}.{rpc} as {who:?}: want {expect:?}, got {got:?}"
                    ));
                }
            }
        }
        assert!(failures.is_empty(), "{}", failures.join("\n"));
    });
}
