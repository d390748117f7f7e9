//! Server configuration with etcd's flag names, `ETCD_*` environment variables and etcd's YAML
//! configuration file.

pub mod etcd_flags;
mod sources;
mod urls;
mod values;

pub use urls::{is_tls_url, parse_url, split_list};
pub use values::GoDuration;

use clap::Parser;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;
use urls::listen_addrs;

/// Configuration errors: always reported before anything is opened or bound.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid URL {url:?} for --{flag}: {reason}")]
    BadUrl {
        flag: &'static str,
        url: String,
        reason: String,
    },
    #[error("--initial-cluster: {0}")]
    InitialCluster(String),
    #[error("cannot read config file {path}: {reason}")]
    ConfigFile { path: PathBuf, reason: String },
    #[error("{0}")]
    Invalid(String),
}

/// The server's settings. Field names follow etcd's flags: `--foo-bar`, `ETCD_FOO_BAR`, and the
/// YAML key `foo-bar` all set `foo_bar`.
#[derive(Debug, Clone, Parser)]
#[command(
    name = "cairn",
    disable_version_flag = true,
    after_help = "Cairn accepts every other flag of etcd 3.4 to 3.7 too: docs/flags.md says what each does here.",
    about = "Cairn: an etcd-compatible, Raft-replicated key-value store",
    long_about = None,
    // Go's flag package keeps the last of a repeated flag; etcd's own tests repeat some.
    args_override_self = true
)]
pub struct Config {
    /// Path to a YAML config file with etcd's keys; when given, flags and env vars are ignored.
    #[arg(long)]
    pub config_file: Option<PathBuf>,

    /// Human-readable name for this member.
    #[arg(long, default_value = "default")]
    pub name: String,

    /// Path to the data directory (default: ${name}.etcd).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,

    /// Path to the dedicated WAL directory (default: ${data-dir}/member/wal).
    #[arg(long)]
    pub wal_dir: Option<PathBuf>,

    /// Number of committed transactions that trigger a snapshot and WAL compaction.
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_count: u64,

    /// Time (in milliseconds) of a heartbeat interval.
    #[arg(long, default_value_t = 100)]
    pub heartbeat_interval: u64,

    /// Time (in milliseconds) for an election to timeout.
    #[arg(long, default_value_t = 1000)]
    pub election_timeout: u64,

    /// List of URLs to listen on for peer traffic.
    #[arg(long, default_value = "http://localhost:2380")]
    pub listen_peer_urls: String,

    /// List of URLs to listen on for client gRPC and HTTP traffic.
    #[arg(long, default_value = "http://localhost:2379")]
    pub listen_client_urls: String,

    /// List of this member's client URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2379")]
    pub advertise_client_urls: String,

    /// List of this member's peer URLs to advertise to the rest of the cluster.
    #[arg(long, default_value = "http://localhost:2380")]
    pub initial_advertise_peer_urls: String,

    /// Initial cluster configuration for bootstrapping: name=peerURL,...
    #[arg(long, default_value = "default=http://localhost:2380")]
    pub initial_cluster: String,

    /// Initial cluster state ('new' or 'existing').
    #[arg(long, default_value = "new")]
    pub initial_cluster_state: String,

    /// Initial cluster token for the cluster during bootstrap.
    #[arg(long, default_value = "etcd-cluster")]
    pub initial_cluster_token: String,

    /// Maximum client request size in bytes the server will accept.
    #[arg(long, default_value_t = 1_572_864)]
    pub max_request_bytes: u32,

    /// Maximum number of operations permitted in a transaction.
    #[arg(long, default_value_t = 128)]
    pub max_txn_ops: u32,

    /// Interpret 'auto-compaction-retention' one of: periodic|revision. 'periodic' for
    /// duration based retention (e.g. '5m'), 'revision' for revision number based retention.
    #[arg(long, default_value = "periodic")]
    pub auto_compaction_mode: String,

    /// Auto compaction retention for the mvcc key value store: a duration ('5m', '1h') or a
    /// number (hours in periodic mode, revisions in revision mode); 0 disables it.
    #[arg(long, default_value = "0")]
    pub auto_compaction_retention: String,

    /// Check data corruption against the peers before serving client traffic.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub experimental_initial_corrupt_check: bool,

    /// How often the leader compares its KV hash with the other members' (0s: never).
    #[arg(long, default_value = "0s")]
    pub experimental_corrupt_check_time: GoDuration,

    /// Backend quota in bytes; 0 means the default of 2 GiB.
    #[arg(long, default_value_t = 0)]
    pub quota_backend_bytes: u64,

    /// List of URLs to serve `/metrics`, `/health`, `/livez` and `/readyz` on, besides the
    /// client URLs (kubeadm probes http://127.0.0.1:2381).
    #[arg(long, default_value = "")]
    pub listen_metrics_urls: String,

    /// Set level of detail for exported metrics: 'basic' or 'extensive' (adds gRPC
    /// handling-time histograms).
    #[arg(long, default_value = "basic")]
    pub metrics: String,

    /// Specify 'zap' for structured (JSON) logging or 'capnslog' for human-readable lines.
    #[arg(long, default_value = "zap")]
    pub logger: String,

    /// Specify 'stdout' or 'stderr' to skip journald logging even when running under systemd,
    /// or list of comma separated output targets ('systemd/journal', file paths).
    #[arg(long, default_value = "default")]
    pub log_outputs: String,

    /// Log level: debug, info, warn, error, panic, or fatal.
    #[arg(long, default_value = "info")]
    pub log_level: String,

    /// Interval between progress notifications to watchers that asked for them (Go duration,
    /// e.g. 10m or 5s; integer nanoseconds in YAML, as etcd).
    #[arg(long, default_value = "10m")]
    pub watch_progress_notify_interval: GoDuration,

    /// Number of entries for a slow follower to catch up after compacting the raft storage
    /// entries.
    #[arg(long = "experimental-snapshot-catchup-entries", default_value_t = 5000)]
    pub experimental_snapshot_catchup_entries: u64,

    /// Force to create a new one member cluster.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub force_new_cluster: bool,

    /// Reject reconfiguration requests that would cause quorum loss.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub strict_reconfig_check: bool,

    /// Disables fsync of the WAL: unsafe, an acknowledged write can be lost at a power cut.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub unsafe_no_fsync: bool,

    /// Enable the JSON gateway on the client port (accepted for compatibility).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub enable_grpc_gateway: bool,

    /// bcrypt cost for hashing auth passwords (4..=31).
    #[arg(long, default_value_t = 10)]
    pub bcrypt_cost: u32,

    /// How callers prove who they are once auth is on: `simple` (opaque tokens kept by the
    /// members) or `jwt,pub-key=<file>,priv-key=<file>,sign-method=<RS256|ES256|…>,ttl=<5m>`.
    #[arg(long, default_value = "simple")]
    pub auth_token: String,

    /// Seconds a simple token lives after its last use.
    #[arg(long, default_value_t = 300)]
    pub auth_token_ttl: u64,

    /// Path to the client server TLS cert file.
    #[arg(long, default_value = "")]
    pub cert_file: String,

    /// Path to the client server TLS key file.
    #[arg(long, default_value = "")]
    pub key_file: String,

    /// Enable client cert authentication.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub client_cert_auth: bool,

    /// Path to the client certificate revocation list file.
    #[arg(long, default_value = "")]
    pub client_crl_file: String,

    /// Path to the client server TLS trusted CA cert file.
    #[arg(long, default_value = "")]
    pub trusted_ca_file: String,

    /// Client TLS using generated certificates.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub auto_tls: bool,

    /// The validity period of the client and peer certificates that are automatically
    /// generated, in years.
    #[arg(long, default_value_t = 1)]
    pub self_signed_cert_validity: u32,

    /// Comma-separated list of supported TLS cipher suites between client/server and peers
    /// (empty will be auto-populated by the TLS library).
    #[arg(long, default_value = "")]
    pub cipher_suites: String,

    /// Minimum TLS version supported: TLS1.2 or TLS1.3.
    #[arg(long, default_value = "TLS1.2")]
    pub tls_min_version: String,

    /// Maximum TLS version supported: TLS1.2 or TLS1.3 (empty: the library's maximum).
    #[arg(long, default_value = "")]
    pub tls_max_version: String,

    /// Path to the peer server TLS cert file.
    #[arg(long, default_value = "")]
    pub peer_cert_file: String,

    /// Path to the peer server TLS key file.
    #[arg(long, default_value = "")]
    pub peer_key_file: String,

    /// Enable peer client cert authentication.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub peer_client_cert_auth: bool,

    /// Path to the peer server TLS trusted CA file.
    #[arg(long, default_value = "")]
    pub peer_trusted_ca_file: String,

    /// Path to the peer certificate revocation list file.
    #[arg(long, default_value = "")]
    pub peer_crl_file: String,

    /// Peer TLS using self-generated certificates if --peer-key-file and --peer-cert-file are
    /// not provided.
    #[arg(long, default_value_t = false, action = clap::ArgAction::Set, num_args = 0..=1, default_missing_value = "true")]
    pub peer_auto_tls: bool,

    /// Allowed CN for inter peer authentication.
    #[arg(long, default_value = "")]
    pub peer_cert_allowed_cn: String,

    /// Allowed TLS hostname for inter peer authentication.
    #[arg(long, default_value = "")]
    pub peer_cert_allowed_hostname: String,

    /// The most concurrent streams a client connection may have open (etcd's
    /// `--max-concurrent-streams`; the JSON gateway counts as one connection, as in etcd).
    #[arg(long, default_value_t = u32::MAX)]
    pub max_concurrent_streams: u32,

    /// How often the server pings an idle client connection (0s: never).
    #[arg(long, default_value = "2h")]
    pub grpc_keepalive_interval: GoDuration,

    /// How long a ping may go unanswered before the connection is closed.
    #[arg(long, default_value = "20s")]
    pub grpc_keepalive_timeout: GoDuration,

    /// How long a Raft connection between members may stay silent (no message, no ping answer)
    /// before it is closed and dialed again.
    #[arg(long, default_value = "5s")]
    pub raft_read_timeout: GoDuration,

    /// How long a write on a Raft connection between members may stay blocked before the
    /// connection is closed and dialed again.
    #[arg(long, default_value = "5s")]
    pub raft_write_timeout: GoDuration,

    /// The most learners the cluster may have at once.
    #[arg(long, default_value_t = 1)]
    pub max_learners: u32,

    /// Print etcd's version lines (with Cairn's values) and exit.
    #[arg(long, default_value_t = false)]
    pub version: bool,

    /// The etcd flags Cairn accepts without a `Config` field that were set, with their
    /// checked values (see `etcd_flags`).
    #[arg(skip)]
    pub etcd_flags: Vec<(&'static str, String)>,

    /// What to log once logging is set up: variables used, flags without effect, and what
    /// etcd would warn about.
    #[arg(skip)]
    pub startup_notes: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        // The flag defaults are the one source of truth for defaults, YAML included.
        Config::parse_from(["cairn"])
    }
}

/// One member of `--initial-cluster`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InitialMember {
    pub name: String,
    pub peer_urls: Vec<String>,
}

/// etcd's quota default when `--quota-backend-bytes` is 0.
pub const DEFAULT_QUOTA_BYTES: u64 = 2 << 30;

impl Config {
    /// The configuration as etcd would read it: the command line (Go's flag syntax), then
    /// `ETCD_*` variables for flags the command line did not set; or, when `--config-file` (or
    /// `ETCD_CONFIG_FILE`) names a YAML file, that file alone (the command line is still
    /// checked). `--help` prints and exits here, as Go's flag package does; `--version` is
    /// left to the binary, which knows its build.
    pub fn load() -> Result<Config, ConfigError> {
        let args: Vec<String> = std::env::args().skip(1).collect();
        let env: Vec<(String, String)> = std::env::vars().collect();
        sources::load(&args, &env)
    }

    /// The configuration from a YAML file with etcd's keys.
    pub fn from_yaml_file(path: &std::path::Path) -> Result<Config, ConfigError> {
        let err = |reason: String| ConfigError::ConfigFile {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| err(e.to_string()))?;
        Config::from_yaml(&text).map_err(|e| err(e.to_string()))
    }

    /// The configuration from YAML text with etcd's keys.
    pub fn from_yaml(text: &str) -> Result<Config, ConfigError> {
        sources::from_yaml(text)
    }

    pub fn data_dir(&self) -> PathBuf {
        self.data_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(format!("{}.etcd", self.name)))
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.wal_dir
            .clone()
            .unwrap_or_else(|| self.data_dir().join("member").join("wal"))
    }

    pub fn backend_path(&self) -> PathBuf {
        self.data_dir().join("member").join("snap").join("db")
    }

    /// What the auto-compaction flags ask for.
    pub fn auto_compaction(&self) -> Result<crate::compactor::AutoCompaction, ConfigError> {
        crate::compactor::AutoCompaction::parse(
            &self.auto_compaction_mode,
            &self.auto_compaction_retention,
        )
        .map_err(ConfigError::Invalid)
    }

    pub fn quota_bytes(&self) -> u64 {
        if self.quota_backend_bytes == 0 {
            DEFAULT_QUOTA_BYTES
        } else {
            self.quota_backend_bytes
        }
    }

    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.heartbeat_interval)
    }

    /// Everything that can be checked without touching the disk or network.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.auto_compaction()?;
        if self.heartbeat_interval == 0 {
            return Err(ConfigError::Invalid(
                "--heartbeat-interval must be greater than 0".into(),
            ));
        }
        if self.election_timeout < self.heartbeat_interval.saturating_mul(5) {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] should be at least as 5 times as --heartbeat-interval[{}ms]",
                self.election_timeout, self.heartbeat_interval
            )));
        }
        if self.election_timeout > 50_000 {
            return Err(ConfigError::Invalid(format!(
                "--election-timeout[{}ms] is too long, and should be set less than 50000ms",
                self.election_timeout
            )));
        }
        if self.max_request_bytes as usize > cairn_raft::MAX_PROPOSAL_BYTES {
            return Err(ConfigError::Invalid(format!(
                "--max-request-bytes {} is larger than a replicated request can be ({} bytes)",
                self.max_request_bytes,
                cairn_raft::MAX_PROPOSAL_BYTES
            )));
        }
        if self.max_txn_ops == 0 {
            return Err(ConfigError::Invalid(
                "--max-txn-ops must be greater than 0".into(),
            ));
        }
        if self.watch_progress_notify_interval.0.is_zero() {
            return Err(ConfigError::Invalid(
                "--watch-progress-notify-interval must be greater than 0".into(),
            ));
        }
        if self.snapshot_count == 0 {
            return Err(ConfigError::Invalid(
                "--snapshot-count must be greater than 0".into(),
            ));
        }
        if !matches!(self.initial_cluster_state.as_str(), "new" | "existing") {
            return Err(ConfigError::Invalid(format!(
                "invalid value {:?} for --initial-cluster-state (valid: new, existing)",
                self.initial_cluster_state
            )));
        }
        if !matches!(
            self.log_level.as_str(),
            "debug" | "info" | "warn" | "error" | "dpanic" | "panic" | "fatal"
        ) {
            return Err(ConfigError::Invalid(format!(
                "unknown --log-level {:?} (valid: debug, info, warn, error, dpanic, panic, fatal)",
                self.log_level
            )));
        }
        self.metrics_level()?;
        if !matches!(self.logger.as_str(), "zap" | "capnslog") {
            return Err(ConfigError::Invalid(format!(
                "unknown logger option {:?}",
                self.logger
            )));
        }
        crate::logging::check_outputs(&split_list(&self.log_outputs))
            .map_err(ConfigError::Invalid)?;
        for (flag, urls) in [
            ("listen-metrics-urls", &self.listen_metrics_urls),
            ("listen-peer-urls", &self.listen_peer_urls),
            ("listen-client-urls", &self.listen_client_urls),
            ("advertise-client-urls", &self.advertise_client_urls),
            (
                "initial-advertise-peer-urls",
                &self.initial_advertise_peer_urls,
            ),
        ] {
            for u in split_list(urls) {
                parse_url(flag, &u)?;
            }
        }
        for u in split_list(&self.listen_peer_urls) {
            if is_tls_url(&u)
                && !self.peer_auto_tls
                && (self.peer_cert_file.is_empty() || self.peer_key_file.is_empty())
            {
                return Err(ConfigError::Invalid(format!(
                    "TLS key/cert (--peer-cert-file, --peer-key-file) must be provided for peer url {u} with HTTPS scheme"
                )));
            }
        }
        if !self.peer_cert_allowed_cn.is_empty() && !self.peer_cert_allowed_hostname.is_empty() {
            return Err(ConfigError::Invalid(format!(
                "AllowedCN and AllowedHostname are mutually exclusive (cn={:?}, hostname={:?})",
                self.peer_cert_allowed_cn, self.peer_cert_allowed_hostname
            )));
        }
        let client_and_metrics = split_list(&self.listen_client_urls)
            .into_iter()
            .chain(split_list(&self.listen_metrics_urls));
        for u in client_and_metrics {
            if is_tls_url(&u)
                && !self.auto_tls
                && (self.cert_file.is_empty() || self.key_file.is_empty())
            {
                return Err(ConfigError::Invalid(format!(
                    "TLS key/cert (--cert-file, --key-file) must be provided for client url {u} with HTTPS scheme"
                )));
            }
        }
        crate::tls::check_versions(&self.tls_min_version, &self.tls_max_version)
            .map_err(ConfigError::Invalid)?;
        crate::tls::cipher_suites(&self.cipher_suites).map_err(ConfigError::Invalid)?;
        if !(4..=31).contains(&self.bcrypt_cost) {
            return Err(ConfigError::Invalid(format!(
                "invalid --bcrypt-cost {}: must be between 4 and 31",
                self.bcrypt_cost
            )));
        }
        match self.auth_token.split(',').next() {
            Some("simple") => {}
            Some("jwt") => {
                let options = self.auth_token.split_once(',').map_or("", |(_, o)| o);
                crate::auth::jwt::JwtOptions::parse(options)
                    .map_err(|e| ConfigError::Invalid(format!("invalid --auth-token: {e}")))?;
            }
            _ => {
                return Err(ConfigError::Invalid(format!(
                    "invalid --auth-token {:?}: auth: invalid auth options",
                    self.auth_token
                )));
            }
        }
        if self.auth_token_ttl == 0 {
            return Err(ConfigError::Invalid(
                "invalid --auth-token-ttl 0: must be at least 1 second".into(),
            ));
        }
        self.local_initial_member()?;
        Ok(())
    }

    /// This member's entry in `--initial-cluster`, checked against
    /// `--initial-advertise-peer-urls` as etcd checks it.
    pub fn local_initial_member(&self) -> Result<InitialMember, ConfigError> {
        let members = self.initial_members()?;
        let me = members
            .into_iter()
            .find(|m| m.name == self.name)
            .ok_or_else(|| {
                ConfigError::InitialCluster(format!(
                    "couldn't find local name {:?} in the initial cluster configuration",
                    self.name
                ))
            })?;
        let mut advertised = split_list(&self.initial_advertise_peer_urls);
        let mut listed = me.peer_urls.clone();
        advertised.sort();
        listed.sort();
        if advertised != listed {
            return Err(ConfigError::InitialCluster(format!(
                "--initial-cluster has {}={} but missing from --initial-advertise-peer-urls={} (advertised peer URLs must match those in --initial-cluster)",
                self.name,
                me.peer_urls.join(","),
                self.initial_advertise_peer_urls
            )));
        }
        Ok(me)
    }

    pub fn initial_members(&self) -> Result<Vec<InitialMember>, ConfigError> {
        let mut members: Vec<InitialMember> = Vec::new();
        for item in split_list(&self.initial_cluster) {
            let (name, url) = item.split_once('=').ok_or_else(|| {
                ConfigError::InitialCluster(format!("{item:?} is not of the form name=url"))
            })?;
            parse_url("initial-cluster", url)?;
            match members.iter_mut().find(|m| m.name == name) {
                Some(m) => m.peer_urls.push(url.to_string()),
                None => members.push(InitialMember {
                    name: name.to_string(),
                    peer_urls: vec![url.to_string()],
                }),
            }
        }
        if members.is_empty() {
            return Err(ConfigError::InitialCluster("no members given".into()));
        }
        Ok(members)
    }

    /// Socket addresses to listen on for clients, each with whether it is `https://`.
    pub fn client_listen_addrs(&self) -> Result<Vec<(SocketAddr, bool)>, ConfigError> {
        listen_addrs("listen-client-urls", &self.listen_client_urls)
    }

    /// Socket addresses to serve metrics and health on, each with whether it is `https://`
    /// (served with the client certificate, as etcd does).
    pub fn metrics_listen_addrs(&self) -> Result<Vec<(SocketAddr, bool)>, ConfigError> {
        listen_addrs("listen-metrics-urls", &self.listen_metrics_urls)
    }

    /// `--metrics`.
    pub fn metrics_level(&self) -> Result<crate::metrics::Level, ConfigError> {
        match self.metrics.as_str() {
            "basic" => Ok(crate::metrics::Level::Basic),
            "extensive" => Ok(crate::metrics::Level::Extensive),
            other => Err(ConfigError::Invalid(format!(
                "unknown --metrics {other:?} (valid: basic, extensive)"
            ))),
        }
    }

    /// Whether members talk TLS: some peer URL of this member is `https://`.
    pub fn peer_tls(&self) -> bool {
        split_list(&self.listen_peer_urls)
            .iter()
            .chain(split_list(&self.initial_advertise_peer_urls).iter())
            .any(|u| is_tls_url(u))
    }

    /// Socket addresses to listen on for other members, each with whether it is `https://`.
    pub fn peer_listen_addrs(&self) -> Result<Vec<(SocketAddr, bool)>, ConfigError> {
        listen_addrs("listen-peer-urls", &self.listen_peer_urls)
    }

    /// Whether clients are served over TLS on some URL.
    pub fn client_tls(&self) -> bool {
        split_list(&self.listen_client_urls)
            .iter()
            .chain(split_list(&self.listen_metrics_urls).iter())
            .any(|u| is_tls_url(u))
    }
}

#[cfg(test)]
mod tests;
