//! Command-line grammar, shaped like etcdctl's cobra/pflag one.
//!
//! clap only splits the command line here: every flag value is kept as the raw string and
//! converted afterwards by [`crate::flags`], because pflag's conversions (base-0 integers, Go
//! durations, Go booleans) and their error texts differ from clap's. Booleans take an optional
//! `=value` (`--prefix=false`) and never consume the next word, as in pflag; valued flags accept
//! values starting with '-' (`--limit -1`); repeated flags keep the last value; and leaf
//! commands accept (and, like cobra, ignore) surplus positional arguments.

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;

/// An etcdctl-compatible client for Cairn and etcd.
#[derive(Parser, Debug)]
#[command(
    name = "cairnctl",
    disable_version_flag = true,
    args_override_self = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Flags every command accepts (etcdctl's persistent root flags).
#[derive(Args, Debug, Default, Clone)]
pub struct GlobalArgs {
    /// gRPC endpoints [default: 127.0.0.1:2379]
    #[arg(long, global = true, value_delimiter = ',', allow_hyphen_values = true)]
    pub endpoints: Vec<String>,
    /// dial timeout for client connections [default: 2s]
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub dial_timeout: Option<String>,
    /// timeout for short running command (excluding dial timeout) [default: 5s]
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub command_timeout: Option<String>,
    /// keepalive time for client connections [default: 2s] (accepted, not used)
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub keepalive_time: Option<String>,
    /// keepalive timeout for client connections [default: 6s] (accepted, not used)
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub keepalive_timeout: Option<String>,
    /// set the output format (fields, json, protobuf, simple, table) [default: simple]
    #[arg(short = 'w', long, global = true, allow_hyphen_values = true)]
    pub write_out: Option<String>,
    /// print byte strings as hex encoded strings
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub hex: Option<String>,
    /// enable client-side debug logging
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub debug: Option<String>,
    /// disable transport security for client connections [default: true]
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub insecure_transport: Option<String>,
    /// skip server certificate verification
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub insecure_skip_tls_verify: Option<String>,
    /// accept insecure SRV records describing cluster endpoints [default: true]
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub insecure_discovery: Option<String>,
    /// domain name to query for SRV records describing cluster endpoints (not supported)
    #[arg(short = 'd', long, global = true, allow_hyphen_values = true)]
    pub discovery_srv: Option<String>,
    /// service name to query when using DNS discovery (not supported)
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub discovery_srv_name: Option<String>,
    /// identify secure client using this TLS certificate file
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub cert: Option<String>,
    /// identify secure client using this TLS key file
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub key: Option<String>,
    /// verify certificates of TLS-enabled secure servers using this CA bundle
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub cacert: Option<String>,
    /// username[:password] for authentication (prompt if password is not supplied)
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub user: Option<String>,
    /// password for authentication (if this option is used, --user option shouldn't include password)
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub password: Option<String>,
    /// client-side request send limit in bytes (0: the client default)
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub max_request_bytes: Option<String>,
    /// client-side response receive limit in bytes (0: unlimited)
    #[arg(long, global = true, allow_hyphen_values = true)]
    pub max_recv_bytes: Option<String>,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Puts the given key into the store
    #[command(args_override_self = true)]
    Put(PutArgs),
    /// Gets the key or a range of keys
    #[command(args_override_self = true)]
    Get(Box<GetArgs>),
    /// Removes the specified key or range of keys [key, range_end)
    #[command(args_override_self = true)]
    Del(DelArgs),
    /// Txn processes all the requests in one transaction
    #[command(args_override_self = true)]
    Txn(TxnArgs),
    /// Compacts the event history in etcd
    #[command(args_override_self = true)]
    Compaction(CompactionArgs),
    /// Endpoint related commands
    #[command(args_override_self = true)]
    Endpoint(EndpointArgs),
    /// Membership related commands
    #[command(args_override_self = true)]
    Member(MemberArgs),
    /// Watches events stream on keys or prefixes
    #[command(args_override_self = true)]
    Watch(WatchArgs),
    /// Transfers leadership to another etcd cluster member.
    #[command(name = "move-leader", args_override_self = true)]
    MoveLeader(RestArgs),
    /// commands for checking properties of the etcd cluster
    #[command(subcommand_required = false)]
    Check(CheckArgs),
    /// Makes a mirror at the destination etcd cluster
    #[command(name = "make-mirror", args_override_self = true)]
    MakeMirror(MakeMirrorArgs),
    /// Lease related commands
    #[command(args_override_self = true)]
    Lease(LeaseArgs),
    /// Observes and participates in leader election
    #[command(args_override_self = true)]
    Elect(ElectArgs),
    /// Acquires a named lock
    #[command(args_override_self = true)]
    Lock(LockArgs),
    /// Prints the version of cairnctl
    #[command(args_override_self = true)]
    Version(RestArgs),
    /// Enable or disable authentication
    #[command(args_override_self = true)]
    Auth(AuthArgs),
    /// User related commands
    #[command(args_override_self = true)]
    User(UserArgs),
    /// Role related commands
    #[command(args_override_self = true)]
    Role(RoleArgs),
    /// Saves a member's backend snapshot to a file
    #[command(args_override_self = true)]
    Snapshot(SnapshotArgs),
    /// Compacts the backend storage of each endpoint's member
    #[command(args_override_self = true)]
    Defrag(DefragArgs),
    /// Lists or disarms the cluster's alarms
    #[command(args_override_self = true)]
    Alarm(AlarmArgs),
    /// Downgrade related commands
    #[command(args_override_self = true)]
    Downgrade(DowngradeArgs),
    #[command(external_subcommand)]
    External(Vec<OsString>),
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct CheckArgs {
    #[command(subcommand)]
    pub command: Option<CheckCommand>,
}

#[derive(Subcommand, Debug)]
pub enum CheckCommand {
    /// Check the performance of the etcd cluster
    #[command(args_override_self = true)]
    Perf(CheckPerfArgs),
    /// Check the memory usage of holding data for different workloads on a given server endpoint.
    #[command(args_override_self = true)]
    Datascale(CheckPerfArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

/// `check perf|datascale [options]` (the same flags; the prefix default differs).
#[derive(Args, Debug, Default)]
pub struct CheckPerfArgs {
    /// The performance check's workload model. Accepted workloads: s(small), m(medium), l(large), xl(xLarge) [default: s]
    #[arg(long, allow_hyphen_values = true)]
    pub load: Option<String>,
    /// The prefix for writing the performance check's keys. [default: /etcdctl-check-perf/]
    #[arg(long, allow_hyphen_values = true)]
    pub prefix: Option<String>,
    /// Compact storage with last revision after test is finished.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub auto_compact: Option<String>,
    /// Defragment storage after test is finished.
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub auto_defrag: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString), hide = true)]
    pub args: Vec<OsString>,
}

/// `make-mirror [options] <destination>`.
#[derive(Args, Debug, Default)]
pub struct MakeMirrorArgs {
    /// Key-value prefix to mirror
    #[arg(long, allow_hyphen_values = true)]
    pub prefix: Option<String>,
    /// destination prefix to mirror a prefix to a different prefix in the destination cluster
    #[arg(long, allow_hyphen_values = true)]
    pub dest_prefix: Option<String>,
    /// mirror key-values to the root of the destination cluster
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub no_dest_prefix: Option<String>,
    /// Identify secure client using this TLS certificate file for the destination cluster
    #[arg(long, allow_hyphen_values = true)]
    pub dest_cert: Option<String>,
    /// Identify secure client using this TLS key file
    #[arg(long, allow_hyphen_values = true)]
    pub dest_key: Option<String>,
    /// Verify certificates of TLS enabled secure servers using this CA bundle
    #[arg(long, allow_hyphen_values = true)]
    pub dest_cacert: Option<String>,
    /// Disable transport security for client connections [default: true]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub dest_insecure_transport: Option<String>,
    /// Destination username[:password] for authentication (prompt if password is not supplied)
    #[arg(long, allow_hyphen_values = true)]
    pub dest_user: Option<String>,
    /// Destination password for authentication (if this option is used, --dest-user option shouldn't include password)
    #[arg(long, allow_hyphen_values = true)]
    pub dest_password: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString), hide = true)]
    pub args: Vec<OsString>,
}

/// Positional arguments a command ignores, as cobra does.
#[derive(Args, Debug, Default)]
pub struct RestArgs {
    #[arg(value_parser = clap::value_parser!(OsString), hide = true)]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct PutArgs {
    /// lease ID (in hexadecimal) to attach to the key [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    pub lease: Option<String>,
    /// return the previous key-value pair before modification
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prev_kv: Option<String>,
    /// updates the key using its current value
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ignore_value: Option<String>,
    /// updates the key using its current lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub ignore_lease: Option<String>,
    /// <key> [value] (the value is read from stdin when absent)
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct GetArgs {
    /// Linearizable(l) or Serializable(s) [default: l]
    #[arg(long, allow_hyphen_values = true)]
    pub consistency: Option<String>,
    /// Order of results; ASCEND or DESCEND (ASCEND by default)
    #[arg(long, allow_hyphen_values = true)]
    pub order: Option<String>,
    /// Sort target; CREATE, KEY, MODIFY, VALUE, or VERSION
    #[arg(long, allow_hyphen_values = true)]
    pub sort_by: Option<String>,
    /// Maximum number of results
    #[arg(long, allow_hyphen_values = true)]
    pub limit: Option<String>,
    /// Get keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prefix: Option<String>,
    /// Get keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub from_key: Option<String>,
    /// Specify the kv revision
    #[arg(long, allow_hyphen_values = true)]
    pub rev: Option<String>,
    /// Get only the keys
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub keys_only: Option<String>,
    /// Get only the count
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub count_only: Option<String>,
    /// Only write values when using the "simple" output format
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub print_value_only: Option<String>,
    /// Only keys modified at or after this revision
    #[arg(long, allow_hyphen_values = true)]
    pub min_mod_rev: Option<String>,
    /// Only keys modified at or before this revision
    #[arg(long, allow_hyphen_values = true)]
    pub max_mod_rev: Option<String>,
    /// Only keys created at or after this revision
    #[arg(long, allow_hyphen_values = true)]
    pub min_create_rev: Option<String>,
    /// Only keys created at or before this revision
    #[arg(long, allow_hyphen_values = true)]
    pub max_create_rev: Option<String>,
    /// <key> [range_end]
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug, Default, Clone)]
pub struct DelArgs {
    /// delete keys with matching prefix
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prefix: Option<String>,
    /// return deleted key-value pairs
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prev_kv: Option<String>,
    /// delete keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub from_key: Option<String>,
    /// delete range of keys (accepted for compatibility; ranges are never delayed)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub range: Option<String>,
    /// <key> [range_end]
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug, Default)]
pub struct TxnArgs {
    /// Input transaction in interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub interactive: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString), hide = true)]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug, Default)]
pub struct CompactionArgs {
    /// Use physical compaction
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub physical: Option<String>,
    /// <revision>
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct EndpointArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, global = true, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub cluster: Option<String>,
    #[command(subcommand)]
    pub command: Option<EndpointCommand>,
}

#[derive(Subcommand, Debug)]
pub enum EndpointCommand {
    /// Checks the healthiness of endpoints specified in `--endpoints` flag
    #[command(args_override_self = true)]
    Health(RestArgs),
    /// Prints out the status of endpoints specified in `--endpoints` flag
    #[command(args_override_self = true)]
    Status(RestArgs),
    /// Prints the KV history hash for each endpoint in --endpoints
    #[command(args_override_self = true)]
    Hashkv(HashKvArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

/// `endpoint hashkv [--rev=N]`.
#[derive(Args, Debug, Default)]
pub struct HashKvArgs {
    /// maximum revision to hash (default: all revisions)
    #[arg(long, allow_hyphen_values = true)]
    pub rev: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString), hide = true)]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct MemberArgs {
    #[command(subcommand)]
    pub command: Option<MemberCommand>,
}

#[derive(Subcommand, Debug)]
pub enum MemberCommand {
    /// Lists all members in the cluster
    #[command(args_override_self = true)]
    List(RestArgs),
    /// Adds a member into the cluster
    #[command(args_override_self = true)]
    Add(MemberAddArgs),
    /// Removes a member from the cluster
    #[command(args_override_self = true)]
    Remove(RestArgs),
    /// Updates a member in the cluster
    #[command(args_override_self = true)]
    Update(MemberUpdateArgs),
    /// Promotes a non-voting member in the cluster
    #[command(args_override_self = true)]
    Promote(RestArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

/// `member add <memberName> [options]`.
#[derive(Args, Debug, Default)]
pub struct MemberAddArgs {
    /// comma separated peer URLs for the new member.
    #[arg(long)]
    pub peer_urls: Option<String>,
    /// indicates if the new member is raft learner
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub learner: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

/// `member update <memberID> [options]`.
#[derive(Args, Debug, Default)]
pub struct MemberUpdateArgs {
    /// comma separated peer URLs for the updated member.
    #[arg(long)]
    pub peer_urls: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

/// `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`; the same
/// flags make up an interactive `watch ...` line.
#[derive(Args, Debug, Default, Clone)]
pub struct WatchArgs {
    /// Interactive mode
    #[arg(short = 'i', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub interactive: Option<String>,
    /// Watch on a prefix if prefix is set
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prefix: Option<String>,
    /// Revision to start watching [default: 0]
    #[arg(long, allow_hyphen_values = true)]
    pub rev: Option<String>,
    /// get the previous key-value pair before the event happens
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prev_kv: Option<String>,
    /// get periodic watch progress notification from server
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub progress_notify: Option<String>,
    /// [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

/// One `watch ...` line of `watch -i` (after the word "watch"): the watch flags only.
#[derive(Parser, Debug)]
#[command(
    name = "watch",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct WatchLine {
    #[command(flatten)]
    pub watch: WatchArgs,
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct LeaseArgs {
    #[command(subcommand)]
    pub command: Option<LeaseCommand>,
}

#[derive(Subcommand, Debug)]
pub enum LeaseCommand {
    /// Creates leases
    #[command(args_override_self = true)]
    Grant(LeaseIdArgs),
    /// Revokes leases
    #[command(args_override_self = true)]
    Revoke(LeaseIdArgs),
    /// Get lease information
    #[command(args_override_self = true)]
    Timetolive(TimeToLiveArgs),
    /// List all active leases
    #[command(args_override_self = true)]
    List(RestArgs),
    /// Keeps leases alive (renew)
    #[command(name = "keep-alive", args_override_self = true)]
    KeepAlive(KeepAliveArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

/// `lease grant <ttl>` / `lease revoke <leaseID>`.
#[derive(Args, Debug, Default)]
pub struct LeaseIdArgs {
    /// <ttl> or <leaseID> (hexadecimal)
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug, Default)]
pub struct TimeToLiveArgs {
    /// Get keys attached to this lease
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub keys: Option<String>,
    /// <leaseID> (hexadecimal)
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug, Default)]
pub struct KeepAliveArgs {
    /// Resets the keep-alive time to its original value and exits immediately
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub once: Option<String>,
    /// <leaseID> (hexadecimal)
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug, Default)]
pub struct ElectArgs {
    /// observation mode
    #[arg(short = 'l', long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub listen: Option<String>,
    /// <election-name> [proposal]
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug, Default)]
pub struct LockArgs {
    /// timeout for session [default: 10]
    #[arg(long, allow_hyphen_values = true)]
    pub ttl: Option<String>,
    /// <lockname> [exec-command arg1 arg2 ...]
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct AuthArgs {
    #[command(subcommand)]
    pub command: Option<AuthCommand>,
}

#[derive(Subcommand, Debug)]
pub enum AuthCommand {
    /// Enables authentication
    #[command(args_override_self = true)]
    Enable(RestArgs),
    /// Disables authentication
    #[command(args_override_self = true)]
    Disable(RestArgs),
    /// Returns authentication status
    #[command(args_override_self = true)]
    Status(RestArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: Option<UserCommand>,
}

#[derive(Subcommand, Debug)]
pub enum UserCommand {
    /// Adds a new user
    #[command(args_override_self = true)]
    Add(UserAddArgs),
    /// Deletes a user
    #[command(args_override_self = true)]
    Delete(RestArgs),
    /// Gets detailed information of a user
    #[command(args_override_self = true)]
    Get(UserGetArgs),
    /// Lists all users
    #[command(args_override_self = true)]
    List(RestArgs),
    /// Changes password of user
    #[command(args_override_self = true)]
    Passwd(PasswdArgs),
    /// Grants a role to a user
    #[command(name = "grant-role", args_override_self = true)]
    GrantRole(RestArgs),
    /// Revokes a role from a user
    #[command(name = "revoke-role", args_override_self = true)]
    RevokeRole(RestArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

/// `user add <user name or user:password> [options]`.
#[derive(Args, Debug, Default)]
pub struct UserAddArgs {
    /// Read password from stdin instead of interactive terminal [default: true]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub interactive: Option<String>,
    /// Supply password from the command line flag
    #[arg(long, allow_hyphen_values = true)]
    pub new_user_password: Option<String>,
    /// Create a user without password (CN based auth only)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub no_password: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

/// `user get <user name> [options]`.
#[derive(Args, Debug, Default)]
pub struct UserGetArgs {
    /// Show permissions of roles granted to the user
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub detail: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

/// `user passwd <user name> [options]`.
#[derive(Args, Debug, Default)]
pub struct PasswdArgs {
    /// If true, read password from stdin instead of interactive terminal [default: true]
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub interactive: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct RoleArgs {
    #[command(subcommand)]
    pub command: Option<RoleCommand>,
}

#[derive(Subcommand, Debug)]
pub enum RoleCommand {
    /// Adds a new role
    #[command(args_override_self = true)]
    Add(RestArgs),
    /// Deletes a role
    #[command(args_override_self = true)]
    Delete(RestArgs),
    /// Gets detailed information of a role
    #[command(args_override_self = true)]
    Get(RestArgs),
    /// Lists all roles
    #[command(args_override_self = true)]
    List(RestArgs),
    /// Grants a key to a role
    #[command(name = "grant-permission", args_override_self = true)]
    GrantPermission(PermissionArgs),
    /// Revokes a key from a role
    #[command(name = "revoke-permission", args_override_self = true)]
    RevokePermission(PermissionArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

/// `role grant-permission [options] <role name> <permission type> <key> [endkey]` and
/// `role revoke-permission <role name> <key> [endkey]`.
#[derive(Args, Debug, Default)]
pub struct PermissionArgs {
    /// grant a prefix permission
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub prefix: Option<String>,
    /// grant a permission of keys that are greater than or equal to the given key using byte compare
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub from_key: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString))]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct SnapshotArgs {
    #[command(subcommand)]
    pub command: Option<SnapshotCommand>,
}

#[derive(Subcommand, Debug)]
pub enum SnapshotCommand {
    /// Streams one member's backend snapshot into the given file
    #[command(args_override_self = true)]
    Save(RestArgs),
    /// Gets backend snapshot status of a given file (deprecated: use `cairnutl snapshot status`)
    #[command(args_override_self = true)]
    Status(RestArgs),
    /// Restores an etcd member snapshot to an etcd directory (deprecated: use `cairnutl
    /// snapshot restore`)
    #[command(args_override_self = true)]
    Restore(SnapshotRestoreArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

/// `snapshot restore <filename>`: etcdctl 3.5's flags (etcdutl's, less the revision bump).
#[derive(Args, Debug, Default)]
pub struct SnapshotRestoreArgs {
    /// Path to the data directory
    #[arg(long, allow_hyphen_values = true)]
    pub data_dir: Option<String>,
    /// Path to the WAL directory (use --data-dir if none given)
    #[arg(long, allow_hyphen_values = true)]
    pub wal_dir: Option<String>,
    /// Initial cluster configuration for restore bootstrap [default: default=http://localhost:2380]
    #[arg(long, allow_hyphen_values = true)]
    pub initial_cluster: Option<String>,
    /// Initial cluster token for the etcd cluster during restore bootstrap [default: etcd-cluster]
    #[arg(long, allow_hyphen_values = true)]
    pub initial_cluster_token: Option<String>,
    /// List of this member's peer URLs to advertise to the rest of the cluster [default: http://localhost:2380]
    #[arg(long, allow_hyphen_values = true)]
    pub initial_advertise_peer_urls: Option<String>,
    /// Human-readable name for this member [default: default]
    #[arg(long, allow_hyphen_values = true)]
    pub name: Option<String>,
    /// Ignore snapshot integrity hash value (required if copied from data directory)
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub skip_hash_check: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString), hide = true)]
    pub args: Vec<OsString>,
}

/// `defrag [--cluster]`.
#[derive(Args, Debug, Default)]
pub struct DefragArgs {
    /// use all endpoints from the cluster member list
    #[arg(long, num_args = 0..=1, require_equals = true, default_missing_value = "true", value_name = "BOOL")]
    pub cluster: Option<String>,
    /// Optional. If present, defragments a data directory not in use by etcd.
    #[arg(long, allow_hyphen_values = true)]
    pub data_dir: Option<String>,
    #[arg(value_parser = clap::value_parser!(OsString), hide = true)]
    pub args: Vec<OsString>,
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct AlarmArgs {
    #[command(subcommand)]
    pub command: Option<AlarmCommand>,
}

#[derive(Subcommand, Debug)]
pub enum AlarmCommand {
    /// Lists the active alarms
    #[command(args_override_self = true)]
    List(RestArgs),
    /// Deactivates every active alarm
    #[command(args_override_self = true)]
    Disarm(RestArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

#[derive(Args, Debug)]
#[command(subcommand_required = false)]
pub struct DowngradeArgs {
    #[command(subcommand)]
    pub command: Option<DowngradeCommand>,
}

#[derive(Subcommand, Debug)]
pub enum DowngradeCommand {
    /// Validate downgrade capability before starting downgrade
    #[command(args_override_self = true)]
    Validate(RestArgs),
    /// Start a downgrade action to cluster
    #[command(args_override_self = true)]
    Enable(RestArgs),
    /// Cancel the ongoing downgrade action to cluster
    #[command(args_override_self = true)]
    Cancel(RestArgs),
    /// An unknown subcommand: cobra shows the parent's help and ignores its arguments.
    #[command(external_subcommand)]
    External(#[allow(dead_code)] Vec<OsString>),
}

/// The grammar of one request line inside `txn`: put/get/del with their own flags only (no
/// global flags, as etcdctl parses these lines with a fresh root command).
#[derive(Parser, Debug)]
#[command(
    name = "txn-request",
    no_binary_name = true,
    disable_help_subcommand = true,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub enum TxnRequestLine {
    #[command(args_override_self = true, disable_help_flag = true)]
    Put(PutArgs),
    #[command(args_override_self = true, disable_help_flag = true)]
    Get(Box<GetArgs>),
    #[command(args_override_self = true, disable_help_flag = true)]
    Del(DelArgs),
}

/// The same words with the command path (`snapshot restore`) first and every flag after it.
///
/// cobra finds the command before it parses flags, so a command's own flag may come before the
/// command's name (`etcdctl --data-dir d snapshot restore f`, common in runbooks); clap accepts
/// only global flags there. Applied when clap refuses a line as given. A flag's value is the
/// next word unless the flag is written `--flag=value` or takes no value (etcdctl's booleans).
pub fn command_path_first(argv: &[OsString]) -> Option<Vec<OsString>> {
    use clap::CommandFactory as _;
    let root = Cli::command();
    let takes_next_word = |cmd: &clap::Command, word: &str| {
        let name = word.trim_start_matches('-');
        let arg = cmd.get_arguments().chain(root.get_arguments()).find(|a| {
            a.get_long() == Some(name) || (word.len() == 2 && a.get_short() == name.chars().next())
        });
        // pflag: an unknown flag's value is the next word, as cobra assumes when it strips flags.
        arg.is_none_or(|a| a.get_num_args().is_none_or(|n| n.min_values() > 0))
    };
    let (program, rest) = argv.split_first()?;
    let mut path: Vec<OsString> = Vec::new();
    let mut others: Vec<OsString> = Vec::new();
    let mut cmd = root.clone();
    let mut i = 0;
    while i < rest.len() {
        let word = rest[i].to_string_lossy();
        if word == "--" {
            others.extend_from_slice(&rest[i..]);
            break;
        }
        if word.starts_with('-') && word.len() > 1 {
            others.push(rest[i].clone());
            if !word.contains('=') && takes_next_word(&cmd, &word) && i + 1 < rest.len() {
                i += 1;
                others.push(rest[i].clone());
            }
        } else if let Some(sub) = cmd.find_subcommand(word.as_ref()).cloned() {
            path.push(rest[i].clone());
            cmd = sub;
        } else {
            // The first positional argument: the command path is complete.
            others.extend_from_slice(&rest[i..]);
            break;
        }
        i += 1;
    }
    let reordered: Vec<OsString> = std::iter::once(program.clone())
        .chain(path)
        .chain(others)
        .collect();
    (reordered != argv).then_some(reordered)
}

/// Turns a clap parse error into etcdctl's wording for the same pflag/cobra error.
pub fn describe_parse_error(err: &clap::Error) -> String {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let ctx_str = |kind: ContextKind| match err.get(kind) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        Some(ContextValue::Strings(v)) => v.first().cloned(),
        _ => None,
    };
    // The flag as the user typed it, e.g. "--bogus" (from "--bogus=1") or "-z".
    let flag_name = |arg: &str| -> String {
        let first = arg.split_whitespace().next().unwrap_or(arg);
        first.split('=').next().unwrap_or(first).to_string()
    };
    match err.kind() {
        ErrorKind::UnknownArgument => {
            let arg = ctx_str(ContextKind::InvalidArg).unwrap_or_default();
            let name = flag_name(&arg);
            if name.starts_with("--") {
                format!("unknown flag: {name}")
            } else if let Some(c) = name.strip_prefix('-').and_then(|s| s.chars().next()) {
                format!("unknown shorthand flag: '{c}' in {arg}")
            } else {
                format!("unknown command {}", crate::gofmt::quote_str(&arg))
            }
        }
        ErrorKind::InvalidValue | ErrorKind::NoEquals
            if ctx_str(ContextKind::InvalidValue)
                .map(|v| v.is_empty())
                .unwrap_or(true) =>
        {
            let arg = ctx_str(ContextKind::InvalidArg).unwrap_or_default();
            format!("flag needs an argument: {}", flag_name(&arg))
        }
        _ => {
            let text = err.render().to_string();
            let line = text.lines().next().unwrap_or("").trim();
            line.strip_prefix("error: ").unwrap_or(line).to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    fn words(line: &str) -> Vec<OsString> {
        line.split_whitespace().map(OsString::from).collect()
    }

    #[test]
    fn a_commands_own_flag_before_its_name_moves_after_it() {
        let moved = command_path_first(&words(
            "cairnctl --endpoints=a:1 --data-dir /d snapshot restore --skip-hash-check f.db",
        ));
        assert_eq!(
            moved,
            Some(words(
                "cairnctl snapshot restore --endpoints=a:1 --data-dir /d --skip-hash-check f.db"
            ))
        );
        let parsed = Cli::try_parse_from(moved.unwrap_or_default());
        let Ok(Cli {
            command:
                Some(Command::Snapshot(SnapshotArgs {
                    command: Some(SnapshotCommand::Restore(a)),
                })),
            ..
        }) = parsed
        else {
            panic!("not a restore: {parsed:?}");
        };
        assert_eq!(a.data_dir.as_deref(), Some("/d"));
        assert_eq!(a.args, words("f.db"));
        // A boolean flag takes no value; the path after it is still found.
        assert_eq!(
            command_path_first(&words("cairnctl --hex get k")),
            Some(words("cairnctl get --hex k"))
        );
        assert_eq!(command_path_first(&words("cairnctl get k --hex")), None);
    }

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("cairnctl").chain(args.iter().copied()))
    }

    #[test]
    fn flags_are_pflag_like() {
        let cli = parse(&["get", "k", "--prefix", "--limit", "-1", "-wjson"]).unwrap();
        let Some(Command::Get(g)) = cli.command else {
            panic!("not get")
        };
        assert_eq!(g.prefix.as_deref(), Some("true"));
        assert_eq!(g.limit.as_deref(), Some("-1"));
        assert_eq!(g.args, vec![OsString::from("k")]);
        assert_eq!(cli.global.write_out.as_deref(), Some("json"));

        let cli = parse(&[
            "--endpoints",
            "a,b",
            "get",
            "--prefix=false",
            "k",
            "--rev=2",
            "--rev=3",
        ])
        .unwrap();
        let Some(Command::Get(g)) = cli.command else {
            panic!("not get")
        };
        assert_eq!(cli.global.endpoints, vec!["a", "b"]);
        assert_eq!(g.prefix.as_deref(), Some("false"));
        assert_eq!(g.rev.as_deref(), Some("3"));
    }

    #[test]
    fn errors_read_like_pflag() {
        let e = parse(&["get", "k", "--bogus"]).unwrap_err();
        assert_eq!(describe_parse_error(&e), "unknown flag: --bogus");
        let e = parse(&["get", "k", "--limit"]).unwrap_err();
        assert_eq!(describe_parse_error(&e), "flag needs an argument: --limit");
        let e = parse(&["compaction", "-1"]).unwrap_err();
        assert_eq!(
            describe_parse_error(&e),
            "unknown shorthand flag: '1' in -1"
        );
    }

    #[test]
    fn unknown_commands_are_external() {
        let cli = parse(&["bogus", "x"]).unwrap();
        assert!(matches!(cli.command, Some(Command::External(_))));
        let cli = parse(&["endpoint", "bogus"]).unwrap();
        let Some(Command::Endpoint(ep)) = cli.command else {
            panic!("not endpoint")
        };
        assert!(matches!(ep.command, Some(EndpointCommand::External(_))));
    }

    #[test]
    fn txn_lines_have_no_global_flags() {
        assert!(TxnRequestLine::try_parse_from(["put", "k", "v", "--prev-kv"]).is_ok());
        assert!(TxnRequestLine::try_parse_from(["get", "k", "-w", "json"]).is_err());
        assert!(TxnRequestLine::try_parse_from(["foo", "k"]).is_err());
    }

    #[test]
    fn grammar_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
        TxnRequestLine::command().debug_assert();
        WatchLine::command().debug_assert();
    }

    #[test]
    fn watch_keeps_words_after_the_separator() {
        let cli = parse(&["watch", "k", "--rev=3", "--", "echo", "-n", "--prefix"]).unwrap();
        let Some(Command::Watch(w)) = cli.command else {
            panic!("not watch")
        };
        assert_eq!(w.rev.as_deref(), Some("3"));
        assert_eq!(w.prefix, None);
        assert_eq!(w.args, vec!["k", "echo", "-n", "--prefix"]);
    }

    #[test]
    fn coordination_commands_parse() {
        let cli = parse(&["lease", "keep-alive", "--once", "1f"]).unwrap();
        let Some(Command::Lease(l)) = cli.command else {
            panic!("not lease")
        };
        let Some(LeaseCommand::KeepAlive(k)) = l.command else {
            panic!("not keep-alive")
        };
        assert_eq!((k.once.as_deref(), k.args.len()), (Some("true"), 1));
        let cli = parse(&["lock", "--ttl", "5", "name", "--", "sh", "-c", "exit 3"]).unwrap();
        let Some(Command::Lock(l)) = cli.command else {
            panic!("not lock")
        };
        assert_eq!(l.ttl.as_deref(), Some("5"));
        assert_eq!(l.args, vec!["name", "sh", "-c", "exit 3"]);
        // Like cobra, flags may follow the command's words unless `--` ends them.
        let e = parse(&["lock", "name", "sh", "-c", "x"]).unwrap_err();
        assert_eq!(
            describe_parse_error(&e),
            "unknown shorthand flag: 'c' in -c"
        );
        let cli = parse(&["elect", "-l", "e"]).unwrap();
        assert!(matches!(
            cli.command,
            Some(Command::Elect(ElectArgs {
                listen: Some(_),
                ..
            }))
        ));
    }
}
