//! Every flag of etcd 3.4, 3.5, 3.6 and 3.7's server, with its type and what Cairn does with
//! it: a [`Config`](super::Config) field, another name of one, or accepted and checked as etcd
//! checks it while Cairn does something else (docs/flags.md is this table for readers; a test
//! keeps the two equal). The kinds drive the parsing of values from the command line, `ETCD_*`
//! variables and the YAML file alike.

/// How a flag's value is written and checked (Go's flag package and etcd's own flag types).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `--x`, `--x=true|false` and Go's other boolean spellings (1, t, T, TRUE, True, 0, f, …).
    Bool,
    /// Go's unsigned integer, in any base Go accepts (`0x10`, `0o20`, `1_000`).
    Uint,
    /// As [`Kind::Uint`], at most 32 bits.
    Uint32,
    /// Go's signed integer.
    Int,
    /// Go's duration (`1m30s`); in YAML integer nanoseconds.
    Duration,
    /// Comma-separated URLs.
    Urls,
    /// Comma-separated URLs, or `*` (`--cors`).
    UrlsOrStar,
    /// Any text.
    Text,
    /// Comma-separated words; in YAML a list.
    List,
    /// One of these words.
    Choice(&'static [&'static str]),
    /// Comma-separated words, each one of these.
    ChoiceList(&'static [&'static str]),
    /// `Name=bool,…` of etcd's feature gates.
    FeatureGates,
    /// etcd 0.4/2.x flags etcd still accepts, with any value, and ignores with a warning.
    Legacy,
}

/// What Cairn does with a flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handling {
    /// A field of `Config` holds it and Cairn does what etcd does with it.
    Config,
    /// Another name of the flag named here (etcd renamed it between versions).
    Renamed(&'static str),
    /// Accepted and checked; its value changes nothing because Cairn does what is said here.
    NoEffect(&'static str),
    /// Accepted while it asks for nothing (its default, or empty); any other value is refused
    /// at start, for the reason said here.
    DefaultOnly(&'static str),
    /// An etcd 0.4/2.x flag: accepted and ignored with etcd's warning.
    Legacy,
}

/// One etcd server flag.
#[derive(Debug, Clone, Copy)]
pub struct EtcdFlag {
    /// Without dashes.
    pub name: &'static str,
    pub kind: Kind,
    /// As `etcd --help` shows it.
    pub default: &'static str,
    /// The etcd versions that accept it.
    pub versions: &'static str,
    /// Its key in etcd's YAML file (dots for nesting), or empty if the file cannot set it.
    pub yaml: &'static str,
    pub handling: Handling,
}

/// etcd's feature gates (3.6 and 3.7), for `--feature-gates`.
pub const FEATURE_GATES: &[&str] = &[
    "AllAlpha",
    "AllBeta",
    "CompactHashCheck",
    "FastLeaseKeepAlive",
    "InitialCorruptCheck",
    "LeaseCheckpoint",
    "LeaseCheckpointPersist",
    "SetMemberLocalAddr",
    "StopGRPCServiceOnDefrag",
    "TxnModeWriteWithSharedBuffer",
];

/// The flag named `name`, if etcd has one.
pub fn find(name: &str) -> Option<&'static EtcdFlag> {
    ETCD_FLAGS.iter().find(|f| f.name == name)
}

/// Every etcd server flag but `--help`, `--version` and `--config-file` (which Config holds).
pub const ETCD_FLAGS: &[EtcdFlag] = &[
    EtcdFlag {
        name: "name",
        kind: Kind::Text,
        default: "'default'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "name",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "data-dir",
        kind: Kind::Text,
        default: "'${name}.etcd'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "data-dir",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "wal-dir",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "wal-dir",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "snapshot-count",
        kind: Kind::Uint,
        default: "3.4,3.5: '100000' | 3.6,3.7: '10000'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "snapshot-count",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "heartbeat-interval",
        kind: Kind::Uint,
        default: "'100'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "heartbeat-interval",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "election-timeout",
        kind: Kind::Uint,
        default: "'1000'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "election-timeout",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "initial-election-tick-advance",
        kind: Kind::Bool,
        default: "'true'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "initial-election-tick-advance",
        handling: Handling::NoEffect(
            "A new member waits one randomized election timeout before campaigning; there is no tick advance to turn off.",
        ),
    },
    EtcdFlag {
        name: "listen-peer-urls",
        kind: Kind::Urls,
        default: "'http://localhost:2380'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "listen-peer-urls",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "listen-client-urls",
        kind: Kind::Urls,
        default: "'http://localhost:2379'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "listen-client-urls",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "listen-client-http-urls",
        kind: Kind::Urls,
        default: "''",
        versions: "3.5 3.6 3.7",
        yaml: "listen-client-http-urls",
        handling: Handling::NoEffect(
            "Cairn serves gRPC and HTTP (gateway, health, metrics) together on --listen-client-urls; no separate HTTP-only listener is opened.",
        ),
    },
    EtcdFlag {
        name: "listen-metrics-urls",
        kind: Kind::Urls,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "listen-metrics-urls",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "max-snapshots",
        kind: Kind::Uint,
        default: "'5'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "max-snapshots",
        handling: Handling::NoEffect(
            "Cairn keeps one Raft snapshot, replaced as the log is compacted.",
        ),
    },
    EtcdFlag {
        name: "max-wals",
        kind: Kind::Uint,
        default: "'5'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "max-wals",
        handling: Handling::NoEffect("WAL segments are removed as soon as a snapshot covers them."),
    },
    EtcdFlag {
        name: "quota-backend-bytes",
        kind: Kind::Int,
        default: "'0'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "quota-backend-bytes",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "backend-batch-interval",
        kind: Kind::Duration,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "backend-batch-interval",
        handling: Handling::NoEffect(
            "The backend is written back in batches on Cairn's own schedule (see docs/ARCHITECTURE.md); the WAL makes every write durable first.",
        ),
    },
    EtcdFlag {
        name: "backend-batch-limit",
        kind: Kind::Int,
        default: "'0'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "backend-batch-limit",
        handling: Handling::NoEffect("As --backend-batch-interval."),
    },
    EtcdFlag {
        name: "backend-bbolt-freelist-type",
        kind: Kind::Text,
        default: "'map'",
        versions: "3.5 3.6 3.7",
        yaml: "backend-bbolt-freelist-type",
        handling: Handling::NoEffect("The backend is redb, which has no bbolt freelist."),
    },
    EtcdFlag {
        name: "experimental-backend-bbolt-freelist-type",
        kind: Kind::Text,
        default: "'array'",
        versions: "3.4",
        yaml: "experimental-backend-bbolt-freelist-type",
        handling: Handling::NoEffect("The backend is redb, which has no bbolt freelist."),
    },
    EtcdFlag {
        name: "max-txn-ops",
        kind: Kind::Uint,
        default: "'128'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "max-txn-ops",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "max-request-bytes",
        kind: Kind::Uint,
        default: "'1572864'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "max-request-bytes",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "max-concurrent-streams",
        kind: Kind::Uint32,
        default: "'math.MaxUint32'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "max-concurrent-streams",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "grpc-keepalive-min-time",
        kind: Kind::Duration,
        default: "'5s'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "grpc-keepalive-min-time",
        handling: Handling::NoEffect("Client keep-alive pings are accepted at any rate."),
    },
    EtcdFlag {
        name: "grpc-keepalive-interval",
        kind: Kind::Duration,
        default: "'2h'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "grpc-keepalive-interval",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "grpc-keepalive-timeout",
        kind: Kind::Duration,
        default: "'20s'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "grpc-keepalive-timeout",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "socket-reuse-port",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.5 3.6 3.7",
        yaml: "socket-options.reuse-port",
        handling: Handling::NoEffect("Listeners are opened without SO_REUSEPORT."),
    },
    EtcdFlag {
        name: "socket-reuse-address",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.5 3.6 3.7",
        yaml: "socket-options.reuse-address",
        handling: Handling::NoEffect(
            "Listeners are opened with SO_REUSEADDR always (the platform default for servers).",
        ),
    },
    EtcdFlag {
        name: "raft-read-timeout",
        kind: Kind::Duration,
        default: "'5s'",
        versions: "3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "raft-write-timeout",
        kind: Kind::Duration,
        default: "'5s'",
        versions: "3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "initial-advertise-peer-urls",
        kind: Kind::Urls,
        default: "'http://localhost:2380'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "initial-advertise-peer-urls",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "initial-cluster",
        kind: Kind::Text,
        default: "'default=http://localhost:2380'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "initial-cluster",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "initial-cluster-state",
        kind: Kind::Choice(&["new", "existing"]),
        default: "'new'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "initial-cluster-state",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "initial-cluster-token",
        kind: Kind::Text,
        default: "'etcd-cluster'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "initial-cluster-token",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "advertise-client-urls",
        kind: Kind::Urls,
        default: "'http://localhost:2379'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "advertise-client-urls",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "discovery",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6",
        yaml: "discovery",
        handling: Handling::DefaultOnly(
            "Discovery bootstrap is not supported: bootstrap with --initial-cluster.",
        ),
    },
    EtcdFlag {
        name: "discovery-fallback",
        kind: Kind::Choice(&["exit", "proxy"]),
        default: "3.4,3.5: 'proxy' | 3.6,3.7: 'exit'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "discovery-fallback",
        handling: Handling::NoEffect("Only used with discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-proxy",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6",
        yaml: "discovery-proxy",
        handling: Handling::DefaultOnly(
            "Discovery bootstrap is not supported: bootstrap with --initial-cluster.",
        ),
    },
    EtcdFlag {
        name: "discovery-srv",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "discovery-srv",
        handling: Handling::DefaultOnly(
            "DNS SRV discovery is not supported: bootstrap with --initial-cluster.",
        ),
    },
    EtcdFlag {
        name: "discovery-srv-name",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "discovery-srv-name",
        handling: Handling::NoEffect(
            "Only used with --discovery-srv, which Cairn does not support.",
        ),
    },
    EtcdFlag {
        name: "discovery-token",
        kind: Kind::Text,
        default: "''",
        versions: "3.6 3.7",
        yaml: "discovery-config.token",
        handling: Handling::DefaultOnly(
            "v3 discovery is not supported: bootstrap with --initial-cluster.",
        ),
    },
    EtcdFlag {
        name: "discovery-endpoints",
        kind: Kind::List,
        default: "''",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.endpoints",
        handling: Handling::DefaultOnly(
            "v3 discovery is not supported: bootstrap with --initial-cluster.",
        ),
    },
    EtcdFlag {
        name: "discovery-dial-timeout",
        kind: Kind::Duration,
        default: "'2s'",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.dial-timeout",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-request-timeout",
        kind: Kind::Duration,
        default: "'5s'",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.request-timeout",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-keepalive-time",
        kind: Kind::Duration,
        default: "'2s'",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.keepalive-time",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-keepalive-timeout",
        kind: Kind::Duration,
        default: "'6s'",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.keepalive-timeout",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-insecure-transport",
        kind: Kind::Bool,
        default: "'true'",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.secure.insecure-transport",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-insecure-skip-tls-verify",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.secure.insecure-skip-tls-verify",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-cert",
        kind: Kind::Text,
        default: "''",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.secure.cert",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-key",
        kind: Kind::Text,
        default: "''",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.secure.key",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-cacert",
        kind: Kind::Text,
        default: "''",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.secure.cacert",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-user",
        kind: Kind::Text,
        default: "''",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.auth.username",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "discovery-password",
        kind: Kind::Text,
        default: "''",
        versions: "3.6 3.7",
        yaml: "discovery-config.client.auth.password",
        handling: Handling::NoEffect("Only used with v3 discovery, which Cairn does not support."),
    },
    EtcdFlag {
        name: "strict-reconfig-check",
        kind: Kind::Bool,
        default: "'true'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "strict-reconfig-check",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "pre-vote",
        kind: Kind::Bool,
        default: "3.4: 'false' | 3.5,3.6,3.7: 'true'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "pre-vote",
        handling: Handling::NoEffect(
            "PreVote is always on (etcd's default since 3.5); --pre-vote=false is logged and ignored.",
        ),
    },
    EtcdFlag {
        name: "auto-compaction-retention",
        kind: Kind::Text,
        default: "'0'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "auto-compaction-retention",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "auto-compaction-mode",
        kind: Kind::Text,
        default: "'periodic'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "auto-compaction-mode",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "enable-v2",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5",
        yaml: "enable-v2",
        handling: Handling::NoEffect(
            "The v2 API is not served (removed from etcd in 3.6); v2 requests get 404.",
        ),
    },
    EtcdFlag {
        name: "experimental-enable-v2v3",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5",
        yaml: "experimental-enable-v2v3",
        handling: Handling::NoEffect("The v2 API is not served."),
    },
    EtcdFlag {
        name: "v2-deprecation",
        kind: Kind::ChoiceList(&[
            "not-yet",
            "write-only",
            "write-only-skip-check",
            "write-only-drop-data",
            "gone",
        ]),
        default: "3.5: 'not-yet' | 3.6,3.7: 'write-only'",
        versions: "3.5 3.6 3.7",
        yaml: "v2-deprecation",
        handling: Handling::NoEffect(
            "There is no v2 store: Cairn is at 'gone' whatever the value.",
        ),
    },
    EtcdFlag {
        name: "proxy-failure-wait",
        kind: Kind::Uint,
        default: "5000",
        versions: "3.4 3.5",
        yaml: "proxy-failure-wait",
        handling: Handling::NoEffect("Only used by the v2 proxy, which Cairn does not support."),
    },
    EtcdFlag {
        name: "proxy-refresh-interval",
        kind: Kind::Uint,
        default: "30000",
        versions: "3.4 3.5",
        yaml: "proxy-refresh-interval",
        handling: Handling::NoEffect("Only used by the v2 proxy."),
    },
    EtcdFlag {
        name: "proxy-dial-timeout",
        kind: Kind::Uint,
        default: "1000",
        versions: "3.4 3.5",
        yaml: "proxy-dial-timeout",
        handling: Handling::NoEffect("Only used by the v2 proxy."),
    },
    EtcdFlag {
        name: "proxy-write-timeout",
        kind: Kind::Uint,
        default: "5000",
        versions: "3.4 3.5",
        yaml: "proxy-write-timeout",
        handling: Handling::NoEffect("Only used by the v2 proxy."),
    },
    EtcdFlag {
        name: "proxy-read-timeout",
        kind: Kind::Uint,
        default: "0",
        versions: "3.4 3.5",
        yaml: "proxy-read-timeout",
        handling: Handling::NoEffect("Only used by the v2 proxy."),
    },
    EtcdFlag {
        name: "proxy",
        kind: Kind::Choice(&["off", "readonly", "on"]),
        default: "'off'",
        versions: "3.4 3.5",
        yaml: "proxy",
        handling: Handling::DefaultOnly(
            "The v2 proxy mode is not supported (removed from etcd in 3.6).",
        ),
    },
    EtcdFlag {
        name: "cert-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "client-transport-security.cert-file",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "key-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "client-transport-security.key-file",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "client-cert-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.5 3.6 3.7",
        yaml: "client-transport-security.client-cert-file",
        handling: Handling::NoEffect(
            "Cairn makes no client connections on the client side (no gRPC gateway loopback dial): nothing to present it on.",
        ),
    },
    EtcdFlag {
        name: "client-key-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.5 3.6 3.7",
        yaml: "client-transport-security.client-key-file",
        handling: Handling::NoEffect("As --client-cert-file."),
    },
    EtcdFlag {
        name: "client-cert-auth",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "client-transport-security.client-cert-auth",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "client-crl-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "client-cert-allowed-hostname",
        kind: Kind::List,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "client-transport-security.allowed-hostname",
        handling: Handling::DefaultOnly(
            "Not supported yet; refused rather than ignored, since ignoring it would let in clients the operator meant to keep out.",
        ),
    },
    EtcdFlag {
        name: "trusted-ca-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "client-transport-security.trusted-ca-file",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "auto-tls",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "client-transport-security.auto-tls",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "peer-cert-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "peer-transport-security.cert-file",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "peer-key-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "peer-transport-security.key-file",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "peer-client-cert-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.5 3.6 3.7",
        yaml: "peer-transport-security.client-cert-file",
        handling: Handling::NoEffect(
            "Members present --peer-cert-file when they dial each other; use a certificate valid for both server and client authentication.",
        ),
    },
    EtcdFlag {
        name: "peer-client-key-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.5 3.6 3.7",
        yaml: "peer-transport-security.client-key-file",
        handling: Handling::NoEffect("As --peer-client-cert-file."),
    },
    EtcdFlag {
        name: "peer-client-cert-auth",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "peer-transport-security.client-cert-auth",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "peer-trusted-ca-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "peer-transport-security.trusted-ca-file",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "peer-auto-tls",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "peer-transport-security.auto-tls",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "peer-crl-file",
        kind: Kind::Text,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "peer-cert-allowed-cn",
        kind: Kind::List,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "peer-transport-security.allowed-cn",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "peer-cert-allowed-hostname",
        kind: Kind::List,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "peer-transport-security.allowed-hostname",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "self-signed-cert-validity",
        kind: Kind::Uint,
        default: "'1'",
        versions: "3.5 3.6 3.7",
        yaml: "self-signed-cert-validity",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "cipher-suites",
        kind: Kind::List,
        default: "''",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "cipher-suites",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "tls-min-version",
        kind: Kind::Text,
        default: "'TLS1.2'",
        versions: "3.5 3.6 3.7",
        yaml: "tls-min-version",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "tls-max-version",
        kind: Kind::Text,
        default: "''",
        versions: "3.5 3.6 3.7",
        yaml: "tls-max-version",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "experimental-peer-skip-client-san-verification",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5 3.6",
        yaml: "experimental-peer-skip-client-san-verification",
        handling: Handling::NoEffect(
            "Peer client certificates are verified against --peer-trusted-ca-file without a SAN check, which is what this flag asks for.",
        ),
    },
    EtcdFlag {
        name: "peer-skip-client-san-verification",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.6 3.7",
        yaml: "peer-transport-security.skip-client-san-verification",
        handling: Handling::NoEffect("As --experimental-peer-skip-client-san-verification."),
    },
    EtcdFlag {
        name: "cors",
        kind: Kind::UrlsOrStar,
        default: "'*'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "cors",
        handling: Handling::NoEffect(
            "No CORS headers are sent: browsers on other origins are refused, whatever the list.",
        ),
    },
    EtcdFlag {
        name: "host-whitelist",
        kind: Kind::List,
        default: "'*'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "host-whitelist",
        handling: Handling::DefaultOnly(
            "Not supported yet; refused rather than ignored, since it protects against DNS rebinding.",
        ),
    },
    EtcdFlag {
        name: "auth-token",
        kind: Kind::Text,
        default: "'simple'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "auth-token",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "bcrypt-cost",
        kind: Kind::Uint,
        default: "10",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "bcrypt-cost",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "auth-token-ttl",
        kind: Kind::Uint,
        default: "300",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "auth-token-ttl",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "enable-pprof",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "enable-pprof",
        handling: Handling::NoEffect("There is no Go runtime to profile; use perf on the process."),
    },
    EtcdFlag {
        name: "metrics",
        kind: Kind::Text,
        default: "'basic'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "metrics",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "logger",
        kind: Kind::Text,
        default: "3.4: 'capnslog' | 3.5,3.6,3.7: 'zap'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "logger",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "log-outputs",
        kind: Kind::List,
        default: "'default'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "log-outputs",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "log-output",
        kind: Kind::List,
        default: "[hidden] default",
        versions: "3.4",
        yaml: "log-output",
        handling: Handling::Renamed("log-outputs"),
    },
    EtcdFlag {
        name: "log-level",
        kind: Kind::Text,
        default: "'info'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "log-level",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "log-format",
        kind: Kind::Choice(&["json", "console"]),
        default: "'json'",
        versions: "3.6 3.7",
        yaml: "log-format",
        handling: Handling::NoEffect(
            "Logs are zap JSON lines (or capnslog text with --logger=capnslog).",
        ),
    },
    EtcdFlag {
        name: "debug",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4",
        yaml: "debug",
        handling: Handling::NoEffect("Same as --log-level=debug (etcd 3.4)."),
    },
    EtcdFlag {
        name: "log-package-levels",
        kind: Kind::Text,
        default: "''",
        versions: "3.4",
        yaml: "log-package-levels",
        handling: Handling::NoEffect(
            "capnslog's per-package levels do not apply: one --log-level for everything.",
        ),
    },
    EtcdFlag {
        name: "enable-log-rotation",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.5 3.6 3.7",
        yaml: "enable-log-rotation",
        handling: Handling::NoEffect(
            "Log files are not rotated by Cairn; use logrotate with copytruncate or the journal.",
        ),
    },
    EtcdFlag {
        name: "log-rotation-config-json",
        kind: Kind::Text,
        default: "'{\"maxsize\": 100, \"maxage\": 0, \"maxbackups\": 0, \"localtime\": false, \"compress\": false}'",
        versions: "3.5 3.6 3.7",
        yaml: "log-rotation-config-json",
        handling: Handling::NoEffect("As --enable-log-rotation."),
    },
    EtcdFlag {
        name: "disable-log-sampling",
        kind: Kind::Bool,
        default: "[not in 3.4-3.7 help] false",
        versions: "3.8",
        yaml: "disable-log-sampling",
        handling: Handling::NoEffect("Cairn does not sample logs."),
    },
    EtcdFlag {
        name: "warning-unary-request-duration",
        kind: Kind::Duration,
        default: "'300ms'",
        versions: "3.6 3.7",
        yaml: "warning-unary-request-duration",
        handling: Handling::NoEffect(
            "Slow requests show in the gRPC handling-time histogram (--metrics=extensive) rather than in warnings.",
        ),
    },
    EtcdFlag {
        name: "experimental-warning-unary-request-duration",
        kind: Kind::Duration,
        default: "'300ms'",
        versions: "3.6",
        yaml: "experimental-warning-unary-request-duration",
        handling: Handling::NoEffect("As --warning-unary-request-duration."),
    },
    EtcdFlag {
        name: "experimental-enable-distributed-tracing",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.5 3.6",
        yaml: "experimental-enable-distributed-tracing",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "experimental-distributed-tracing-address",
        kind: Kind::Text,
        default: "'localhost:4317'",
        versions: "3.5 3.6",
        yaml: "experimental-distributed-tracing-address",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "experimental-distributed-tracing-service-name",
        kind: Kind::Text,
        default: "'etcd'",
        versions: "3.5 3.6",
        yaml: "experimental-distributed-tracing-service-name",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "experimental-distributed-tracing-instance-id",
        kind: Kind::Text,
        default: "''",
        versions: "3.5 3.6",
        yaml: "experimental-distributed-tracing-instance-id",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "experimental-distributed-tracing-sampling-rate",
        kind: Kind::Int,
        default: "'0'",
        versions: "3.5 3.6",
        yaml: "experimental-distributed-tracing-sampling-rate",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "enable-distributed-tracing",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.6 3.7",
        yaml: "enable-distributed-tracing",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "distributed-tracing-address",
        kind: Kind::Text,
        default: "'localhost:4317'",
        versions: "3.6 3.7",
        yaml: "distributed-tracing-address",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "distributed-tracing-service-name",
        kind: Kind::Text,
        default: "'etcd'",
        versions: "3.6 3.7",
        yaml: "distributed-tracing-service-name",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "distributed-tracing-instance-id",
        kind: Kind::Text,
        default: "''",
        versions: "3.6 3.7",
        yaml: "distributed-tracing-instance-id",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "distributed-tracing-sampling-rate",
        kind: Kind::Int,
        default: "'0'",
        versions: "3.6 3.7",
        yaml: "distributed-tracing-sampling-rate",
        handling: Handling::NoEffect("No OpenTelemetry tracing."),
    },
    EtcdFlag {
        name: "enable-grpc-gateway",
        kind: Kind::Bool,
        default: "3.4: [hidden] true | 3.5,3.6,3.7: (help shows no default; flag default true)",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "enable-grpc-gateway",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "experimental-initial-corrupt-check",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5 3.6",
        yaml: "experimental-initial-corrupt-check",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "experimental-corrupt-check-time",
        kind: Kind::Duration,
        default: "'0s'",
        versions: "3.4 3.5 3.6",
        yaml: "experimental-corrupt-check-time",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "corrupt-check-time",
        kind: Kind::Duration,
        default: "'0s'",
        versions: "3.6 3.7",
        yaml: "corrupt-check-time",
        handling: Handling::Renamed("experimental-corrupt-check-time"),
    },
    EtcdFlag {
        name: "experimental-compact-hash-check-enabled",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.5 3.6",
        yaml: "experimental-compact-hash-check-enabled",
        handling: Handling::NoEffect(
            "Members' hashes are compared by --experimental-corrupt-check-time's periodic check, which covers what the compaction hash check finds.",
        ),
    },
    EtcdFlag {
        name: "experimental-compact-hash-check-time",
        kind: Kind::Duration,
        default: "'1m'",
        versions: "3.5 3.6",
        yaml: "experimental-compact-hash-check-time",
        handling: Handling::NoEffect("As --experimental-compact-hash-check-enabled."),
    },
    EtcdFlag {
        name: "compact-hash-check-time",
        kind: Kind::Duration,
        default: "'1m'",
        versions: "3.6 3.7",
        yaml: "compact-hash-check-time",
        handling: Handling::NoEffect("As --experimental-compact-hash-check-enabled."),
    },
    EtcdFlag {
        name: "experimental-enable-lease-checkpoint",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5 3.6",
        yaml: "experimental-enable-lease-checkpoint",
        handling: Handling::NoEffect(
            "Always on: remaining TTLs travel through the log, so a new leader never restarts a lease's full TTL.",
        ),
    },
    EtcdFlag {
        name: "experimental-enable-lease-checkpoint-persist",
        kind: Kind::Bool,
        default: "3.4: [hidden] false | 3.5,3.6: 'false'",
        versions: "3.4 3.5 3.6",
        yaml: "experimental-enable-lease-checkpoint-persist",
        handling: Handling::NoEffect("Always on, as --experimental-enable-lease-checkpoint."),
    },
    EtcdFlag {
        name: "experimental-compaction-batch-limit",
        kind: Kind::Int,
        default: "1000",
        versions: "3.4 3.5 3.6",
        yaml: "experimental-compaction-batch-limit",
        handling: Handling::NoEffect(
            "Compaction deletes in batches sized by Cairn, off the write path.",
        ),
    },
    EtcdFlag {
        name: "compaction-batch-limit",
        kind: Kind::Int,
        default: "1000",
        versions: "3.6 3.7",
        yaml: "compaction-batch-limit",
        handling: Handling::NoEffect("As --experimental-compaction-batch-limit."),
    },
    EtcdFlag {
        name: "experimental-compaction-sleep-interval",
        kind: Kind::Duration,
        default: "3.5: '10ms' | 3.6: (no default shown)",
        versions: "3.5 3.6",
        yaml: "experimental-compaction-sleep-interval",
        handling: Handling::NoEffect("As --experimental-compaction-batch-limit."),
    },
    EtcdFlag {
        name: "compaction-sleep-interval",
        kind: Kind::Duration,
        default: "(no default shown)",
        versions: "3.6 3.7",
        yaml: "compaction-sleep-interval",
        handling: Handling::NoEffect("As --experimental-compaction-batch-limit."),
    },
    EtcdFlag {
        name: "experimental-watch-progress-notify-interval",
        kind: Kind::Duration,
        default: "'10m'",
        versions: "3.4 3.5 3.6",
        yaml: "experimental-watch-progress-notify-interval",
        handling: Handling::Renamed("watch-progress-notify-interval"),
    },
    EtcdFlag {
        name: "watch-progress-notify-interval",
        kind: Kind::Duration,
        default: "'10m'",
        versions: "3.6 3.7",
        yaml: "watch-progress-notify-interval",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "experimental-downgrade-check-time",
        kind: Kind::Duration,
        default: "(no default shown; flag default 5s)",
        versions: "3.5 3.6",
        yaml: "experimental-downgrade-check-time",
        handling: Handling::NoEffect(
            "Cairn members never run an older binary, so a downgrade never completes by itself: it lasts until `downgrade cancel`.",
        ),
    },
    EtcdFlag {
        name: "downgrade-check-time",
        kind: Kind::Duration,
        default: "(no default shown; flag default 5s)",
        versions: "3.6 3.7",
        yaml: "downgrade-check-time",
        handling: Handling::NoEffect(
            "Cairn members never run an older binary, so a downgrade never completes by itself: it lasts until `downgrade cancel`.",
        ),
    },
    EtcdFlag {
        name: "experimental-warning-apply-duration",
        kind: Kind::Duration,
        default: "'100ms'",
        versions: "3.4 3.5 3.6",
        yaml: "experimental-warning-apply-duration",
        handling: Handling::NoEffect(
            "Slow applies are counted in etcd_server_slow_apply_total at etcd's default 100 ms.",
        ),
    },
    EtcdFlag {
        name: "warning-apply-duration",
        kind: Kind::Duration,
        default: "'100ms'",
        versions: "3.6 3.7",
        yaml: "warning-apply-duration",
        handling: Handling::NoEffect("As --experimental-warning-apply-duration."),
    },
    EtcdFlag {
        name: "experimental-memory-mlock",
        kind: Kind::Bool,
        default: "(no default shown)",
        versions: "3.5 3.6",
        yaml: "experimental-memory-mlock",
        handling: Handling::NoEffect("Memory is not locked."),
    },
    EtcdFlag {
        name: "memory-mlock",
        kind: Kind::Bool,
        default: "(no default shown; false)",
        versions: "3.6 3.7",
        yaml: "memory-mlock",
        handling: Handling::NoEffect("Memory is not locked."),
    },
    EtcdFlag {
        name: "experimental-txn-mode-write-with-shared-buffer",
        kind: Kind::Bool,
        default: "'true'",
        versions: "3.5 3.6",
        yaml: "experimental-txn-mode-write-with-shared-buffer",
        handling: Handling::NoEffect(
            "Read-write transactions always read their own writes from one buffer.",
        ),
    },
    EtcdFlag {
        name: "experimental-bootstrap-defrag-threshold-megabytes",
        kind: Kind::Uint,
        default: "(no default shown; 0)",
        versions: "3.5 3.6",
        yaml: "experimental-bootstrap-defrag-threshold-megabytes",
        handling: Handling::NoEffect(
            "Defragmentation runs online without blocking (Maintenance.Defragment, cairnutl defrag); none at start.",
        ),
    },
    EtcdFlag {
        name: "bootstrap-defrag-threshold-megabytes",
        kind: Kind::Uint,
        default: "(no default shown; 0)",
        versions: "3.6 3.7",
        yaml: "bootstrap-defrag-threshold-megabytes",
        handling: Handling::NoEffect("As --experimental-bootstrap-defrag-threshold-megabytes."),
    },
    EtcdFlag {
        name: "experimental-stop-grpc-service-on-defrag",
        kind: Kind::Bool,
        default: "(no default shown; false)",
        versions: "3.5 3.6",
        yaml: "experimental-stop-grpc-service-on-defrag",
        handling: Handling::NoEffect(
            "Defragmentation never blocks requests, so the member keeps serving.",
        ),
    },
    EtcdFlag {
        name: "experimental-snapshot-catchup-entries",
        kind: Kind::Uint,
        default: "[hidden in 3.5] 5000 | 3.6: (no default shown)",
        versions: "3.5 3.6",
        yaml: "experimental-snapshot-catch-up-entries",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "snapshot-catchup-entries",
        kind: Kind::Uint,
        default: "(no default shown; 5000)",
        versions: "3.6 3.7",
        yaml: "snapshot-catchup-entries",
        handling: Handling::Renamed("experimental-snapshot-catchup-entries"),
    },
    EtcdFlag {
        name: "max-learners",
        kind: Kind::Int,
        default: "'1'",
        versions: "3.6 3.7",
        yaml: "max-learners",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "experimental-max-learners",
        kind: Kind::Int,
        default: "[hidden] 1",
        versions: "3.6-rc",
        yaml: "",
        handling: Handling::Renamed("max-learners"),
    },
    EtcdFlag {
        name: "unsafe-no-fsync",
        kind: Kind::Bool,
        default: "3.4: [hidden] false | 3.5,3.6,3.7: 'false'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "unsafe-no-fsync",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "force-new-cluster",
        kind: Kind::Bool,
        default: "'false'",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "force-new-cluster",
        handling: Handling::Config,
    },
    EtcdFlag {
        name: "feature-gates",
        kind: Kind::FeatureGates,
        default: "''",
        versions: "3.6 3.7",
        yaml: "feature-gates",
        handling: Handling::NoEffect(
            "InitialCorruptCheck=true turns the start-up corruption check on; the other gates are checked and have no effect (their features are always on or not needed, see the flags of the same names).",
        ),
    },
    EtcdFlag {
        name: "cluster-active-size",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "cluster-remove-delay",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "cluster-sync-interval",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "config",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "force",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "max-result-buffer",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "max-retry-attempts",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "peer-heartbeat-interval",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "peer-election-timeout",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "retry-interval",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "snapshot",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "v",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "vv",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "test.coverprofile",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
    EtcdFlag {
        name: "test.outputdir",
        kind: Kind::Legacy,
        default: "[hidden]",
        versions: "3.4 3.5 3.6 3.7",
        yaml: "",
        handling: Handling::Legacy,
    },
];

impl Kind {
    /// Checks a value as etcd's flag of this kind parses it and gives it back in the form
    /// Cairn's own parsing takes (booleans as `true`/`false`, integers in decimal).
    pub fn check(self, value: &str) -> Result<String, String> {
        use super::values::{go_bool, go_int, go_uint};
        match self {
            Kind::Bool | Kind::Legacy => match go_bool(value) {
                Ok(b) => Ok(b.to_string()),
                // etcd ignores a legacy flag whatever its value.
                Err(_) if self == Kind::Legacy => Ok(value.to_string()),
                Err(e) => Err(e),
            },
            Kind::Uint => go_uint(value, 64).map(|n| n.to_string()),
            Kind::Uint32 => go_uint(value, 32).map(|n| n.to_string()),
            Kind::Int => go_int(value).map(|n| n.to_string()),
            Kind::Duration => {
                // Go's time.ParseDuration: a bare number is refused, but for 0.
                if value != "0" && value.bytes().all(|b| b.is_ascii_digit()) && !value.is_empty() {
                    return Err(format!("time: missing unit in duration {value:?}"));
                }
                value
                    .parse::<super::GoDuration>()
                    .map(|d| d.to_string())
                    .map_err(|e| format!("time: {e}"))
            }
            Kind::Urls => check_urls(value, false),
            Kind::UrlsOrStar => check_urls(value, true),
            Kind::Text | Kind::List => Ok(value.to_string()),
            Kind::Choice(allowed) => {
                if allowed.contains(&value) {
                    Ok(value.to_string())
                } else {
                    Err("invalid value".into())
                }
            }
            Kind::ChoiceList(allowed) => {
                for item in value.split(',') {
                    if !allowed.contains(&item) {
                        return Err(format!("invalid value {item:?}"));
                    }
                }
                Ok(value.to_string())
            }
            Kind::FeatureGates => feature_gates(value).map(|_| value.to_string()),
        }
    }

    /// Whether the flag takes no value unless given with `=` (Go's boolean flags).
    pub fn is_boolean(self) -> bool {
        matches!(self, Kind::Bool | Kind::Legacy)
    }
}

/// `Name=bool,…` as etcd's `--feature-gates` takes it.
pub fn feature_gates(value: &str) -> Result<Vec<(&str, bool)>, String> {
    let mut gates = Vec::new();
    for item in value.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let Some((name, on)) = item.split_once('=') else {
            return Err(format!("missing bool value for {item}"));
        };
        let name = name.trim();
        if !FEATURE_GATES.contains(&name) {
            return Err(format!("unrecognized feature gate: {name}"));
        }
        let on = super::values::go_bool(on.trim())
            .map_err(|e| format!("invalid value of {name}={on}, err: {e}"))?;
        gates.push((name, on));
    }
    Ok(gates)
}

/// A comma-separated URL list as etcd's `types.NewURLs` checks it (syntax only: binding and
/// name resolution are checked where Cairn uses the URLs).
fn check_urls(value: &str, star: bool) -> Result<String, String> {
    for u in value.split(',').filter(|u| !u.is_empty()) {
        if star && u == "*" {
            continue;
        }
        let Some((scheme, rest)) = u.split_once("://") else {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {u}"
            ));
        };
        if !matches!(scheme, "http" | "https" | "unix" | "unixs") {
            return Err(format!(
                "URL scheme must be http, https, unix, or unixs: {u}"
            ));
        }
        if matches!(scheme, "http" | "https") {
            let host_port = rest.trim_end_matches('/');
            if host_port.contains('/') {
                return Err(format!("URL must not contain a path: {u}"));
            }
            if !host_port.contains(':') {
                return Err(format!(
                    "URL address does not have the form \"host:port\": {u}"
                ));
            }
        }
    }
    Ok(value.to_string())
}

impl Kind {
    fn describe(self) -> String {
        match self {
            Kind::Bool => "bool".into(),
            Kind::Uint => "uint".into(),
            Kind::Uint32 => "uint32".into(),
            Kind::Int => "int".into(),
            Kind::Duration => "duration".into(),
            Kind::Urls => "URLs".into(),
            Kind::UrlsOrStar => "URLs or `*`".into(),
            Kind::Text => "string".into(),
            Kind::List => "list".into(),
            Kind::Choice(c) => c
                .iter()
                .map(|v| {
                    if v.is_empty() {
                        "`''`".to_string()
                    } else {
                        format!("`{v}`")
                    }
                })
                .collect::<Vec<_>>()
                .join(" \\| "),
            Kind::ChoiceList(c) => format!("list of {}", c.join(", ")),
            Kind::FeatureGates => "`Name=bool,…`".into(),
            Kind::Legacy => "any (ignored)".into(),
        }
    }
}

/// docs/flags.md: the table for readers (a test keeps the file equal to this).
pub fn markdown() -> String {
    let mut out = String::from(
        "# etcd's server flags in Cairn\n\n\
         Generated from `crates/server/src/config/etcd_flags.rs` (the test\n\
         `the_flags_document_is_the_table` fails when the two differ; `CAIRN_BLESS=1` rewrites this file).\n\n\
         Every flag of etcd 3.4, 3.5, 3.6 and 3.7's server is accepted with etcd's syntax and checks, from\n\
         the command line (`--x v`, `--x=v`, `-x v`), from `ETCD_X` variables (used only for flags the\n\
         command line does not set; both set is etcd's error) and from the YAML file of `--config-file`\n\
         (which, as in etcd, replaces the command line and the environment). A flag that changes nothing\n\
         in Cairn is logged once at start with the reason; one Cairn cannot honour without being wrong is\n\
         refused at start unless it asks for nothing. Unknown flags fail with etcd's error. Unknown\n\
         `ETCD_*` variables and unknown YAML keys are logged and ignored, as etcd does.\n\n\
         Versions: 3.4 is etcd 3.4.23's `--help` (checked against the binary); 3.5, 3.6 and 3.7 were read\n\
         from etcd's source (`server/etcdmain/config.go`, `help.go`, `server/embed/config.go`).\n\n\
         | flag | value | etcd | YAML key | in Cairn |\n|---|---|---|---|---|\n",
    );
    for f in ETCD_FLAGS {
        let cairn = match f.handling {
            Handling::Config => "as etcd".to_string(),
            Handling::Renamed(to) => format!("another name of `--{to}`"),
            Handling::NoEffect(why) => format!("accepted, no effect: {why}"),
            Handling::DefaultOnly(why) => {
                format!("accepted only when it asks for nothing (empty or default): {why}")
            }
            Handling::Legacy => "ignored with etcd's warning (an etcd 2 flag)".into(),
        };
        let yaml = if f.yaml.is_empty() {
            "—".to_string()
        } else {
            format!("`{}`", f.yaml)
        };
        out.push_str(&format!(
            "| `--{}` | {} | {} | {yaml} | {} |\n",
            f.name,
            f.kind.describe(),
            f.versions,
            cairn.replace('|', "\\|")
        ));
    }
    out
}
