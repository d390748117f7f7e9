//! Server errors and their mapping to etcd's gRPC status codes and exact messages.

use cairn_mvcc::MvccError;
use cairn_raft::RaftError;
use tonic::{Code, Status};

/// etcd's client-facing error strings (api/v3rpc/rpctypes), kept in one place.
pub mod msg {
    pub const EMPTY_KEY: &str = "etcdserver: key is not provided";
    pub const KEY_NOT_FOUND: &str = "etcdserver: key not found";
    pub const VALUE_PROVIDED: &str = "etcdserver: value is provided";
    pub const LEASE_PROVIDED: &str = "etcdserver: lease is provided";
    pub const TOO_MANY_OPS: &str = "etcdserver: too many operations in txn request";
    pub const DUPLICATE_KEY: &str = "etcdserver: duplicate key given in txn request";
    pub const INVALID_SORT: &str = "etcdserver: invalid sort option";
    pub const COMPACTED: &str = "etcdserver: mvcc: required revision has been compacted";
    pub const FUTURE_REV: &str = "etcdserver: mvcc: required revision is a future revision";
    pub const TOO_LARGE: &str = "etcdserver: request is too large";
    pub const NO_LEADER: &str = "etcdserver: no leader";
    pub const NO_SPACE: &str = "etcdserver: mvcc: database space exceeded";
    pub const CORRUPT: &str = "etcdserver: corrupt cluster";
    pub const LEADER_CHANGED: &str = "etcdserver: leader changed";
    pub const MEMBER_NOT_FOUND: &str = "etcdserver: member not found";
    pub const MEMBER_EXISTS: &str = "etcdserver: member ID already exist";
    pub const PEER_URL_EXISTS: &str = "etcdserver: Peer URLs already exists";
    pub const BAD_MEMBER_URLS: &str = "etcdserver: given member URLs are invalid";
    pub const NOT_ENOUGH_STARTED: &str =
        "etcdserver: re-configuration failed due to not enough started members";
    pub const UNHEALTHY: &str = "etcdserver: unhealthy cluster";
    pub const NOT_LEARNER: &str = "etcdserver: can only promote a learner member";
    pub const LEARNER_NOT_READY: &str =
        "etcdserver: can only promote a learner member which is in sync with leader";
    pub const TOO_MANY_LEARNERS: &str = "etcdserver: too many learner members in cluster";
    pub const NOT_FOR_LEARNER: &str = "etcdserver: rpc not supported for learner";
    pub const BAD_TRANSFEREE: &str = "etcdserver: bad leader transferee";
    pub const TRANSFER_TIMEOUT: &str =
        "etcdserver: request timed out, leader transfer took too long";
    pub const STOPPED: &str = "etcdserver: server stopped";
    pub const TIMEOUT: &str = "etcdserver: request timed out";
    pub const TIMEOUT_LEADER_FAIL: &str =
        "etcdserver: request timed out, possibly due to previous leader failure";
    pub const LEASE_NOT_FOUND: &str = "etcdserver: requested lease not found";
    pub const LEASE_EXISTS: &str = "etcdserver: lease already exists";
    pub const TOO_LARGE_LEASE_TTL: &str = "etcdserver: too large lease TTL";
    pub const NOT_LEADER: &str = "etcdserver: not leader";
    pub const TOO_MANY_REQUESTS: &str = "etcdserver: too many requests";
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Mvcc(#[from] MvccError),
    #[error(transparent)]
    Raft(#[from] RaftError),
    #[error("{}", msg::TOO_LARGE)]
    RequestTooLarge,
    #[error("{}", msg::TIMEOUT)]
    Timeout,
    /// A write timed out after the leader changed while it was in flight (etcd's
    /// ErrTimeoutDueToLeaderFail): it was most likely lost with the old leader.
    #[error("{}", msg::TIMEOUT_LEADER_FAIL)]
    TimeoutLeaderFail,
    #[error("{}", msg::LEASE_EXISTS)]
    LeaseExists,
    #[error("{}", msg::TOO_MANY_REQUESTS)]
    TooManyRequests,
    #[error("{}", msg::STOPPED)]
    Stopped,
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    ConfigError(#[from] crate::config::ConfigError),
    #[error("io: {0}")]
    Io(String),
    #[error(transparent)]
    Tls(#[from] crate::tls::TlsError),
    #[error(transparent)]
    Auth(#[from] crate::auth::AuthError),
    #[error("internal error: {0}")]
    Internal(String),
    /// A data dir etcd wrote that Cairn cannot start on as it is.
    #[error("cannot start on etcd's data dir {dir}: {reason}")]
    EtcdDataDir { dir: String, reason: String },
    #[error("{}", msg::MEMBER_NOT_FOUND)]
    MemberNotFound,
    #[error("{}", msg::MEMBER_EXISTS)]
    MemberExists,
    #[error("{}", msg::PEER_URL_EXISTS)]
    PeerUrlExists,
    #[error("{}", msg::BAD_MEMBER_URLS)]
    BadMemberUrls,
    #[error("{}", msg::NOT_ENOUGH_STARTED)]
    NotEnoughStarted,
    #[error("{}", msg::UNHEALTHY)]
    Unhealthy,
    #[error("{}", msg::NOT_LEARNER)]
    NotLearner,
    #[error("{}", msg::LEARNER_NOT_READY)]
    LearnerNotReady,
    #[error("{}", msg::TOO_MANY_LEARNERS)]
    TooManyLearners,
    #[error("{}", msg::NOT_FOR_LEARNER)]
    NotForLearner,
    #[error("{}", msg::NOT_LEADER)]
    NotLeader,
    #[error("{}", msg::BAD_TRANSFEREE)]
    BadLeaderTransferee,
    #[error("{}", msg::TRANSFER_TIMEOUT)]
    LeaderTransferTimeout,
    /// The backend reached `--quota-backend-bytes`, or a NOSPACE alarm is active.
    #[error("{}", msg::NO_SPACE)]
    NoSpace,
    /// A CORRUPT alarm is active: the members' data differ.
    #[error("{}", msg::CORRUPT)]
    Corrupt,
    /// The leader's answer to a request this member forwarded, passed on as it is.
    #[error("{}", .0.message())]
    Remote(Status),
}

impl From<ServerError> for Status {
    fn from(e: ServerError) -> Status {
        match e {
            ServerError::Mvcc(MvccError::Compacted) => Status::out_of_range(msg::COMPACTED),
            ServerError::Mvcc(MvccError::FutureRevision) => Status::out_of_range(msg::FUTURE_REV),
            ServerError::Mvcc(MvccError::KeyNotFound) => {
                Status::invalid_argument(msg::KEY_NOT_FOUND)
            }
            ServerError::Mvcc(MvccError::LeaseNotFound) => Status::not_found(msg::LEASE_NOT_FOUND),
            ServerError::LeaseExists => Status::failed_precondition(msg::LEASE_EXISTS),
            ServerError::Raft(RaftError::NoLeader) => Status::unavailable(msg::NO_LEADER),
            ServerError::Raft(RaftError::LeaderChanged) => Status::unavailable(msg::LEADER_CHANGED),
            ServerError::Raft(RaftError::Stopped) | ServerError::Stopped => {
                Status::unavailable(msg::STOPPED)
            }
            ServerError::RequestTooLarge | ServerError::Raft(RaftError::ProposalTooLarge(_)) => {
                Status::invalid_argument(msg::TOO_LARGE)
            }
            ServerError::Timeout => Status::unavailable(msg::TIMEOUT),
            ServerError::TimeoutLeaderFail => Status::unavailable(msg::TIMEOUT_LEADER_FAIL),
            ServerError::TooManyRequests => Status::resource_exhausted(msg::TOO_MANY_REQUESTS),
            ServerError::NoSpace => Status::resource_exhausted(msg::NO_SPACE),
            ServerError::Corrupt => Status::data_loss(msg::CORRUPT),
            ServerError::Remote(status) => status,
            ServerError::Auth(e) => e.status(),
            ServerError::MemberNotFound => Status::not_found(msg::MEMBER_NOT_FOUND),
            ServerError::BadMemberUrls => Status::invalid_argument(msg::BAD_MEMBER_URLS),
            ServerError::Unhealthy => Status::unavailable(msg::UNHEALTHY),
            ServerError::NotForLearner => Status::unavailable(msg::NOT_FOR_LEARNER),
            ServerError::LeaderTransferTimeout => Status::unavailable(msg::TRANSFER_TIMEOUT),
            e @ (ServerError::MemberExists
            | ServerError::PeerUrlExists
            | ServerError::NotEnoughStarted
            | ServerError::NotLearner
            | ServerError::LearnerNotReady
            | ServerError::TooManyLearners
            | ServerError::NotLeader
            | ServerError::BadLeaderTransferee) => Status::failed_precondition(e.to_string()),
            other => Status::new(Code::Internal, other.to_string()),
        }
    }
}
