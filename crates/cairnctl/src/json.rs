//! `-w json`: Go's `encoding/json` rendering of etcd's gogo-generated response structs.
//!
//! Those structs carry `json:"<proto name>,omitempty"` on every field, so zero values are left
//! out, bytes are base64, 64-bit integers are plain numbers and a oneof is an untagged Go field
//! (`{"Response":{"ResponseRange":{...}}}`). serde_json's escaping differs from Go's, so the
//! text is built here directly.

use crate::gofmt::json_string;
use crate::watch::WatchResp;
use base64::Engine as _;
use cairn_proto::authpb::Permission;
use cairn_proto::etcdserverpb::{
    AlarmMember, AlarmResponse, AuthRoleGetResponse, AuthStatusResponse, DeleteRangeResponse,
    HashKvResponse, LeaseGrantResponse, LeaseKeepAliveResponse, LeaseLeasesResponse,
    LeaseRevokeResponse, LeaseTimeToLiveResponse, Member, MemberListResponse, PutResponse,
    RangeResponse, ResponseHeader, StatusResponse, TxnResponse, response_op,
};
use cairn_proto::mvccpb::{Event, KeyValue};
use std::fmt::Write as _;

/// A JSON object under construction; the `omit_*` setters skip zero values like `omitempty`.
struct Obj {
    s: String,
    empty: bool,
}

impl Obj {
    fn new() -> Obj {
        Obj {
            s: "{".to_string(),
            empty: true,
        }
    }

    fn key(&mut self, k: &str) {
        if !self.empty {
            self.s.push(',');
        }
        self.empty = false;
        json_string(&mut self.s, k.as_bytes());
        self.s.push(':');
    }

    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.s.push_str(v);
    }

    fn omit_u64(&mut self, k: &str, v: u64) {
        if v != 0 {
            self.key(k);
            let _ = write!(self.s, "{v}");
        }
    }

    fn omit_i64(&mut self, k: &str, v: i64) {
        if v != 0 {
            self.key(k);
            let _ = write!(self.s, "{v}");
        }
    }

    fn omit_bool(&mut self, k: &str, v: bool) {
        if v {
            self.raw(k, "true");
        }
    }

    fn omit_bytes(&mut self, k: &str, v: &[u8]) {
        if !v.is_empty() {
            self.key(k);
            self.s.push_str(&b64(v));
        }
    }

    fn i64(&mut self, k: &str, v: i64) {
        self.key(k);
        let _ = write!(self.s, "{v}");
    }

    fn bool(&mut self, k: &str, v: bool) {
        self.raw(k, if v { "true" } else { "false" });
    }

    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        json_string(&mut self.s, v.as_bytes());
    }

    fn omit_str(&mut self, k: &str, v: &str) {
        if !v.is_empty() {
            self.str(k, v);
        }
    }

    fn omit_strs(&mut self, k: &str, v: &[String]) {
        if !v.is_empty() {
            let items: Vec<String> = v
                .iter()
                .map(|s| {
                    let mut o = String::new();
                    json_string(&mut o, s.as_bytes());
                    o
                })
                .collect();
            self.raw(k, &format!("[{}]", items.join(",")));
        }
    }

    fn omit_list<T>(&mut self, k: &str, v: &[T], f: impl Fn(&T) -> String) {
        if !v.is_empty() {
            let items: Vec<String> = v.iter().map(f).collect();
            self.raw(k, &format!("[{}]", items.join(",")));
        }
    }

    fn finish(mut self) -> String {
        self.s.push('}');
        self.s
    }
}

/// A `[]byte` as Go's encoding/json writes it.
fn b64(v: &[u8]) -> String {
    format!(
        "\"{}\"",
        base64::engine::general_purpose::STANDARD.encode(v)
    )
}

pub fn header(h: &ResponseHeader) -> String {
    let mut o = Obj::new();
    o.omit_u64("cluster_id", h.cluster_id);
    o.omit_u64("member_id", h.member_id);
    o.omit_i64("revision", h.revision);
    o.omit_u64("raft_term", h.raft_term);
    o.finish()
}

fn omit_header(o: &mut Obj, h: &Option<ResponseHeader>) {
    if let Some(h) = h {
        o.raw("header", &header(h));
    }
}

pub fn key_value(kv: &KeyValue) -> String {
    let mut o = Obj::new();
    o.omit_bytes("key", &kv.key);
    o.omit_i64("create_revision", kv.create_revision);
    o.omit_i64("mod_revision", kv.mod_revision);
    o.omit_i64("version", kv.version);
    o.omit_bytes("value", &kv.value);
    o.omit_i64("lease", kv.lease);
    o.finish()
}

pub fn range(r: &RangeResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.omit_list("kvs", &r.kvs, key_value);
    o.omit_bool("more", r.more);
    o.omit_i64("count", r.count);
    o.finish()
}

pub fn put(r: &PutResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    if let Some(kv) = &r.prev_kv {
        o.raw("prev_kv", &key_value(kv));
    }
    o.finish()
}

pub fn delete(r: &DeleteRangeResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.omit_i64("deleted", r.deleted);
    o.omit_list("prev_kvs", &r.prev_kvs, key_value);
    o.finish()
}

pub fn txn(r: &TxnResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.omit_bool("succeeded", r.succeeded);
    o.omit_list("responses", &r.responses, |op| {
        let inner = match &op.response {
            Some(response_op::Response::ResponseRange(r)) => {
                format!("{{\"ResponseRange\":{}}}", range(r))
            }
            Some(response_op::Response::ResponsePut(r)) => {
                format!("{{\"ResponsePut\":{}}}", put(r))
            }
            Some(response_op::Response::ResponseDeleteRange(r)) => {
                format!("{{\"ResponseDeleteRange\":{}}}", delete(r))
            }
            Some(response_op::Response::ResponseTxn(r)) => {
                format!("{{\"ResponseTxn\":{}}}", txn(r))
            }
            None => "null".to_string(),
        };
        format!("{{\"Response\":{inner}}}")
    });
    o.finish()
}

pub fn member(m: &Member) -> String {
    let mut o = Obj::new();
    o.omit_u64("ID", m.id);
    o.omit_str("name", &m.name);
    o.omit_strs("peerURLs", &m.peer_ur_ls);
    o.omit_strs("clientURLs", &m.client_ur_ls);
    o.omit_bool("isLearner", m.is_learner);
    o.finish()
}

/// A membership change's answer: header, the member added (MemberAdd only), the members.
pub fn member_change(
    h: &Option<ResponseHeader>,
    added: Option<&Member>,
    members: &[Member],
) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, h);
    if let Some(m) = added {
        o.raw("member", &member(m));
    }
    o.omit_list("members", members, member);
    o.finish()
}

/// A response that carries only its header (MoveLeader).
pub fn header_only(h: &Option<ResponseHeader>) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, h);
    o.finish()
}

/// A DowngradeResponse: its header and the cluster version.
pub fn downgrade(r: &cairn_proto::etcdserverpb::DowngradeResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.omit_str("version", &r.version);
    o.finish()
}

/// etcdctl's `epHashKV{Ep string "Endpoint"; Resp *HashKVResponse "HashKV"}`, as 3.4 prints it
/// (3.5 adds `hash_revision`).
pub fn endpoint_hashkv(ep: &str, r: &HashKvResponse) -> String {
    let mut inner = Obj::new();
    omit_header(&mut inner, &r.header);
    inner.omit_u64("hash", u64::from(r.hash));
    inner.omit_i64("compact_revision", r.compact_revision);
    let mut o = Obj::new();
    o.str("Endpoint", ep);
    o.raw("HashKV", &inner.finish());
    o.finish()
}

pub fn alarm_member(m: &AlarmMember) -> String {
    let mut o = Obj::new();
    o.omit_u64("memberID", m.member_id);
    // An enum is a plain number to encoding/json.
    o.omit_i64("alarm", i64::from(m.alarm));
    o.finish()
}

pub fn alarm(r: &AlarmResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.omit_list("alarms", &r.alarms, alarm_member);
    o.finish()
}

pub fn member_list(r: &MemberListResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.omit_list("members", &r.members, member);
    o.finish()
}

pub fn status(r: &StatusResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.omit_str("version", &r.version);
    o.omit_i64("dbSize", r.db_size);
    o.omit_u64("leader", r.leader);
    o.omit_u64("raftIndex", r.raft_index);
    o.omit_u64("raftTerm", r.raft_term);
    o.omit_u64("raftAppliedIndex", r.raft_applied_index);
    o.omit_strs("errors", &r.errors);
    o.omit_i64("dbSizeInUse", r.db_size_in_use);
    o.omit_bool("isLearner", r.is_learner);
    o.omit_str("storageVersion", &r.storage_version);
    o.omit_i64("dbSizeQuota", r.db_size_quota);
    if let Some(d) = &r.downgrade_info {
        let mut di = Obj::new();
        di.omit_bool("enabled", d.enabled);
        di.omit_str("targetVersion", &d.target_version);
        o.raw("downgradeInfo", &di.finish());
    }
    o.finish()
}

/// etcdctl's `epStatus{Ep string "Endpoint"; Resp *StatusResponse "Status"}` (no omitempty).
pub fn endpoint_status(ep: &str, r: &StatusResponse) -> String {
    let mut o = Obj::new();
    o.str("Endpoint", ep);
    o.raw("Status", &status(r));
    o.finish()
}

/// etcdctl's `epHealth{endpoint, health, took, error,omitempty}`.
pub fn endpoint_health(ep: &str, health: bool, took: &str, error: &str) -> String {
    let mut o = Obj::new();
    o.str("endpoint", ep);
    o.raw("health", if health { "true" } else { "false" });
    o.str("took", took);
    o.omit_str("error", error);
    o.finish()
}

/// clientv3's lease responses embed `*pb.ResponseHeader`, so encoding/json lifts the header's
/// fields to the top level of the object.
fn promoted_header(o: &mut Obj, h: &Option<ResponseHeader>) {
    if let Some(h) = h {
        o.omit_u64("cluster_id", h.cluster_id);
        o.omit_u64("member_id", h.member_id);
        o.omit_i64("revision", h.revision);
        o.omit_u64("raft_term", h.raft_term);
    }
}

/// clientv3's `LeaseGrantResponse{*ResponseHeader; ID; TTL; Error}` (no tags, no omitempty).
pub fn lease_grant(r: &LeaseGrantResponse) -> String {
    let mut o = Obj::new();
    promoted_header(&mut o, &r.header);
    o.i64("ID", r.id);
    o.i64("TTL", r.ttl);
    o.str("Error", &r.error);
    o.finish()
}

/// clientv3's `LeaseRevokeResponse` is etcdserverpb's.
pub fn lease_revoke(r: &LeaseRevokeResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.finish()
}

/// clientv3's `LeaseKeepAliveResponse{*ResponseHeader; ID; TTL}`.
pub fn lease_keep_alive(r: &LeaseKeepAliveResponse) -> String {
    let mut o = Obj::new();
    promoted_header(&mut o, &r.header);
    o.i64("ID", r.id);
    o.i64("TTL", r.ttl);
    o.finish()
}

/// clientv3's `LeaseTimeToLiveResponse` with its `id`, `ttl`, `granted-ttl` and `keys` tags;
/// `keys` is null when the server sent none.
pub fn lease_time_to_live(r: &LeaseTimeToLiveResponse) -> String {
    let mut o = Obj::new();
    promoted_header(&mut o, &r.header);
    o.i64("id", r.id);
    o.i64("ttl", r.ttl);
    o.i64("granted-ttl", r.granted_ttl);
    if r.keys.is_empty() {
        o.raw("keys", "null");
    } else {
        let keys: Vec<String> = r.keys.iter().map(|k| b64(k)).collect();
        o.raw("keys", &format!("[{}]", keys.join(",")));
    }
    o.finish()
}

/// clientv3's `LeaseLeasesResponse{*ResponseHeader; Leases []LeaseStatus "leases"}`; clientv3
/// always makes the slice, so it is `[]` rather than null when empty.
pub fn lease_leases(r: &LeaseLeasesResponse) -> String {
    let mut o = Obj::new();
    promoted_header(&mut o, &r.header);
    let ids: Vec<String> = r
        .leases
        .iter()
        .map(|l| format!("{{\"id\":{}}}", l.id))
        .collect();
    o.raw("leases", &format!("[{}]", ids.join(",")));
    o.finish()
}

/// An Auth answer that lists names (`roles` of a user or of the cluster, `users`).
pub fn auth_names(h: &Option<ResponseHeader>, key: &str, names: &[String]) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, h);
    o.omit_strs(key, names);
    o.finish()
}

/// authpb's `Permission`: the type is a number, left out for READ (0).
pub fn permission(p: &Permission) -> String {
    let mut o = Obj::new();
    o.omit_i64("permType", i64::from(p.perm_type));
    o.omit_bytes("key", &p.key);
    o.omit_bytes("range_end", &p.range_end);
    o.finish()
}

pub fn role_get(r: &AuthRoleGetResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.omit_list("perm", &r.perm, permission);
    o.finish()
}

pub fn auth_status(r: &AuthStatusResponse) -> String {
    let mut o = Obj::new();
    omit_header(&mut o, &r.header);
    o.omit_bool("enabled", r.enabled);
    o.omit_u64("authRevision", r.auth_revision);
    o.finish()
}

/// mvccpb's `Event`: the type is a number, left out for PUT (0).
pub fn event(e: &Event) -> String {
    let mut o = Obj::new();
    o.omit_i64("type", i64::from(e.r#type));
    if let Some(kv) = &e.kv {
        o.raw("kv", &key_value(kv));
    }
    if let Some(kv) = &e.prev_kv {
        o.raw("prev_kv", &key_value(kv));
    }
    o.finish()
}

/// clientv3's `WatchResponse`: exported fields without json tags, so every one is written under
/// its Go name and nothing is omitted (the header's own fields still are).
pub fn watch(r: &WatchResp) -> String {
    let mut o = Obj::new();
    o.raw("Header", &header(&r.header));
    if r.events_nil {
        o.raw("Events", "null");
    } else {
        let events: Vec<String> = r.events.iter().map(event).collect();
        o.raw("Events", &format!("[{}]", events.join(",")));
    }
    o.i64("CompactRevision", r.compact_revision);
    o.bool("Canceled", r.canceled);
    o.bool("Created", r.created);
    o.finish()
}
