//! Joining a running cluster (`--initial-cluster-state=existing` with an empty data dir): the
//! new member asks the members named in `--initial-cluster` for the cluster's id and membership
//! and finds itself in it by its peer URLs, as etcd does. It must have been added first
//! (`etcdctl member add`), which is where its id comes from.

use crate::config::{Config, split_list};
use crate::errors::ServerError;
use cairn_proto::cairnpb::peer_client::PeerClient;
use cairn_proto::cairnpb::{MembersRequest, Membership};
use std::time::Duration;

const ASK_TIMEOUT: Duration = Duration::from_secs(2);

/// What a joining member learns from the cluster.
#[derive(Debug, Clone)]
pub struct Joined {
    pub cluster_id: u64,
    pub member_id: u64,
    pub membership: Membership,
}

pub(crate) async fn fetch(config: &Config) -> Result<Joined, ServerError> {
    let mine = split_list(&config.initial_advertise_peer_urls);
    let listed = config.initial_members()?;
    let others: Vec<String> = listed
        .iter()
        .filter(|m| m.name != config.name)
        .flat_map(|m| m.peer_urls.clone())
        .filter(|u| !mine.contains(u))
        .collect();
    let dialer = crate::tls::peer_dialer(config)?;
    let mut last_error = String::from("no other member is listed in --initial-cluster");
    for url in &others {
        match ask(url, &dialer).await {
            Ok((cluster_id, membership)) => {
                if membership.members.len() != listed.len() {
                    return Err(ServerError::Config(format!(
                        "error validating peerURLs {:?}: member count is unequal (the running \
                         cluster has {} members, --initial-cluster lists {})",
                        membership
                            .members
                            .iter()
                            .map(|m| m.peer_urls.join(","))
                            .collect::<Vec<_>>(),
                        membership.members.len(),
                        listed.len()
                    )));
                }
                let me = membership
                    .members
                    .iter()
                    .find(|m| m.peer_urls.iter().any(|u| mine.contains(u)))
                    .ok_or_else(|| {
                        ServerError::Config(format!(
                            "no member of the running cluster has the peer URLs {mine:?}: add \
                             this member first (etcdctl member add {} --peer-urls={})",
                            config.name,
                            mine.join(",")
                        ))
                    })?;
                return Ok(Joined {
                    cluster_id,
                    member_id: me.id,
                    membership,
                });
            }
            Err(e) => last_error = format!("{url}: {e}"),
        }
    }
    Err(ServerError::Config(format!(
        "cannot fetch cluster info from peer urls: could not retrieve cluster information from \
         the given URLs ({last_error})"
    )))
}

async fn ask(
    url: &str,
    dialer: &super::transport::PeerDialer,
) -> Result<(u64, Membership), String> {
    let channel = super::transport::channel(url, ASK_TIMEOUT, dialer, false)?
        .await
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(
        ASK_TIMEOUT,
        PeerClient::new(channel).members(MembersRequest {}),
    )
    .await
    .map_err(|_| "timed out".to_string())?
    .map_err(|s| s.message().to_string())?
    .into_inner();
    Ok((resp.cluster_id, resp.membership.unwrap_or_default()))
}
