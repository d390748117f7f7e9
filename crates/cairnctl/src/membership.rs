//! Cluster commands: `member add|remove|update|promote`, `move-leader` and `endpoint hashkv`,
//! with etcdctl 3.4's argument checks, messages and exit codes.

use crate::cli::{HashKvArgs, MemberAddArgs, MemberUpdateArgs, RestArgs};
use crate::commands::{client_config, dial, each_endpoint, emit, target_endpoints, timed};
use crate::exit::{Exit, status_message};
use crate::flags::{self, EnvScope, Globals};
use crate::gofmt;
use cairn_client::AuthChannel;
use cairn_proto::etcdserverpb::cluster_client::ClusterClient;
use cairn_proto::etcdserverpb::{
    HashKvRequest, MemberAddRequest, MemberPromoteRequest, MemberRemoveRequest,
    MemberUpdateRequest, MoveLeaderRequest, StatusRequest,
};
use tokio::runtime::Runtime;

fn rpc_error(s: tonic::Status) -> Exit {
    Exit::error(status_message(&s))
}

/// Dials the endpoints and makes one Cluster call within the command timeout.
fn cluster_call<T, F, Fut>(rt: &Runtime, g: &Globals, call: F) -> Result<T, Exit>
where
    F: FnOnce(ClusterClient<AuthChannel>) -> Fut,
    Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    rt.block_on(timed(g.command_timeout, async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        call(client.cluster())
            .await
            .map(tonic::Response::into_inner)
            .map_err(rpc_error)
    }))
}

fn peer_urls(raw: &Option<String>) -> Result<Vec<String>, Exit> {
    let urls: Vec<String> = raw
        .as_deref()
        .unwrap_or_default()
        .split(',')
        .filter(|u| !u.is_empty())
        .map(str::to_string)
        .collect();
    if urls.is_empty() {
        return Err(Exit::bad_args("member peer urls not provided"));
    }
    Ok(urls)
}

/// A member id argument in hexadecimal, as etcdctl parses it.
fn member_id(args: &[std::ffi::OsString]) -> Result<u64, Exit> {
    let Some(raw) = args.first() else {
        return Err(Exit::bad_args("member ID is not provided"));
    };
    let raw = raw.to_string_lossy();
    u64::from_str_radix(&raw, 16).map_err(|_| {
        Exit::bad_args(format!(
            "bad member ID arg (strconv.ParseUint: parsing {}: invalid syntax), expecting ID in Hex",
            gofmt::quote_str(&raw)
        ))
    })
}

pub fn add(rt: &Runtime, g: &mut Globals, a: &MemberAddArgs) -> Result<(), Exit> {
    let Some(name) = a.args.first().map(|n| n.to_string_lossy().into_owned()) else {
        return Err(Exit::bad_args("member name not provided"));
    };
    if a.args.len() > 1 {
        return Err(Exit::bad_args("too many arguments"));
    }
    let urls = peer_urls(&a.peer_urls)?;
    let learner = flags::flag_bool(&a.learner, "learner").map_err(Exit::error)?;
    let printer = client_config(g, EnvScope::Global)?;
    let req = MemberAddRequest {
        peer_ur_ls: urls,
        is_learner: learner,
    };
    let resp = cluster_call(rt, g, |mut c| async move { c.member_add(req).await })?;
    emit(&printer.member_add(&resp, &name)?);
    Ok(())
}

pub fn remove(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    let id = member_id(&a.args)?;
    let printer = client_config(g, EnvScope::Global)?;
    let resp = cluster_call(rt, g, |mut c| async move {
        c.member_remove(MemberRemoveRequest { id }).await
    })?;
    emit(&printer.member_changed(id, "removed from", &resp.header, &resp)?);
    Ok(())
}

pub fn update(rt: &Runtime, g: &mut Globals, a: &MemberUpdateArgs) -> Result<(), Exit> {
    let id = member_id(&a.args)?;
    let urls = peer_urls(&a.peer_urls)?;
    let printer = client_config(g, EnvScope::Global)?;
    let req = MemberUpdateRequest {
        id,
        peer_ur_ls: urls,
    };
    let resp = cluster_call(rt, g, |mut c| async move { c.member_update(req).await })?;
    emit(&printer.member_changed(id, "updated in", &resp.header, &resp)?);
    Ok(())
}

pub fn promote(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    let id = member_id(&a.args)?;
    let printer = client_config(g, EnvScope::Global)?;
    let resp = cluster_call(rt, g, |mut c| async move {
        c.member_promote(MemberPromoteRequest { id }).await
    })?;
    emit(&printer.member_changed(id, "promoted in", &resp.header, &resp)?);
    Ok(())
}

/// `move-leader <target>`: asks every endpoint for its status, sends the request to the one
/// that leads (etcdctl refuses when none of them does).
pub fn move_leader(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    if a.args.len() != 1 {
        return Err(Exit::bad_args("move-leader command needs 1 argument"));
    }
    let raw = a.args[0].to_string_lossy();
    let target = u64::from_str_radix(&raw, 16).map_err(|_| {
        Exit::bad_args(format!(
            "strconv.ParseUint: parsing {}: invalid syntax",
            gofmt::quote_str(&raw)
        ))
    })?;
    let printer = client_config(g, EnvScope::Global)?;
    let mut leader = None;
    for ep in g.endpoints.clone() {
        let status = rt.block_on(timed(g.command_timeout, async {
            let client = dial(std::slice::from_ref(&ep), g.dial_timeout).await?;
            client
                .maintenance()
                .status(StatusRequest {})
                .await
                .map(tonic::Response::into_inner)
                .map_err(rpc_error)
        }))?;
        let id = status.header.as_ref().map_or(0, |h| h.member_id);
        if status.leader == id && id != 0 {
            leader = Some((ep, id));
            break;
        }
    }
    let Some((ep, from)) = leader else {
        return Err(Exit::bad_args(format!(
            "no leader endpoint given at [{}]",
            g.endpoints.join(" ")
        )));
    };
    let resp = rt.block_on(timed(g.command_timeout, async {
        let client = dial(std::slice::from_ref(&ep), g.dial_timeout).await?;
        client
            .maintenance()
            .move_leader(MoveLeaderRequest { target_id: target })
            .await
            .map(tonic::Response::into_inner)
            .map_err(rpc_error)
    }))?;
    emit(&printer.move_leader(from, target, &resp)?);
    Ok(())
}

/// `endpoint hashkv`: each endpoint's HashKV, failures reported per endpoint.
pub fn hashkv(rt: &Runtime, g: &mut Globals, a: &HashKvArgs) -> Result<(), Exit> {
    let revision = match &a.rev {
        Some(r) => gofmt::parse_int(r, 10).map_err(Exit::error)?,
        None => 0,
    };
    let printer = client_config(g, EnvScope::Endpoint)?;
    let endpoints = target_endpoints(rt, g)?;
    let (list, failed) = each_endpoint(rt, g, endpoints, "hash", |c| async move {
        c.maintenance().hash_kv(HashKvRequest { revision }).await
    })?;
    emit(&printer.endpoint_hashkv(&list)?);
    if failed {
        return Err(Exit::silent(1));
    }
    Ok(())
}
