//! Typed flag values, converted from the raw command line the way pflag converts them, and the
//! `ETCDCTL_*` environment handling of etcd's `pkg/flags`.

use crate::cli::{CompactionArgs, DelArgs, GetArgs, GlobalArgs, PutArgs};
use crate::exit::Exit;
use crate::gofmt::{self, GoDuration};
use std::collections::BTreeSet;
use std::fmt::Write as _;

/// pflag's error for a value it cannot convert.
fn invalid(value: &str, flag: &str, err: String) -> String {
    format!(
        "invalid argument {} for {} flag: {err}",
        gofmt::quote_str(value),
        gofmt::quote_str(&format!("--{flag}"))
    )
}

fn to_bool(raw: &Option<String>, flag: &str, default: bool) -> Result<bool, String> {
    match raw {
        None => Ok(default),
        Some(v) => gofmt::parse_bool(v).map_err(|e| invalid(v, flag, e)),
    }
}

fn to_int(raw: &Option<String>, flag: &str) -> Result<i64, String> {
    match raw {
        None => Ok(0),
        Some(v) => gofmt::parse_int(v, 0).map_err(|e| invalid(v, flag, e)),
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Str,
    StrSlice,
    Bool,
    Duration,
    Uint,
    /// Accepted from the environment and ignored (etcdctl's `discardValue`).
    Discard,
}

/// The global flags in pflag's (lexicographic) order, with their types and defaults.
const GLOBAL_FLAGS: &[(&str, Kind, &str)] = &[
    ("cacert", Kind::Str, ""),
    ("cert", Kind::Str, ""),
    ("command-timeout", Kind::Duration, "5s"),
    ("debug", Kind::Bool, "false"),
    ("dial-timeout", Kind::Duration, "2s"),
    ("discovery-srv", Kind::Str, ""),
    ("discovery-srv-name", Kind::Str, ""),
    ("endpoints", Kind::StrSlice, "127.0.0.1:2379"),
    ("hex", Kind::Bool, "false"),
    ("insecure-discovery", Kind::Bool, "true"),
    ("insecure-skip-tls-verify", Kind::Bool, "false"),
    ("insecure-transport", Kind::Bool, "true"),
    ("keepalive-time", Kind::Duration, "2s"),
    ("keepalive-timeout", Kind::Duration, "6s"),
    ("key", Kind::Str, ""),
    ("max-recv-bytes", Kind::Uint, "0"),
    ("max-request-bytes", Kind::Uint, "0"),
    ("password", Kind::Str, ""),
    ("user", Kind::Str, ""),
    ("write-out", Kind::Str, "simple"),
];

/// etcdctl's `endpoint` subcommands also take `--cluster` from the environment.
const CLUSTER_FLAG: (&str, Kind, &str) = ("cluster", Kind::Bool, "false");

/// `watch` registers these so that `ETCDCTL_WATCH_KEY` and `ETCDCTL_WATCH_RANGE_END` (which it
/// reads itself) are not reported as unrecognized.
const WATCH_FLAGS: [(&str, Kind, &str); 2] = [
    ("watch-key", Kind::Discard, ""),
    ("watch-range-end", Kind::Discard, ""),
];

/// The flags besides the global ones that a command exposes to `ETCDCTL_*` variables.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EnvScope {
    Global,
    Endpoint,
    Watch,
}

impl EnvScope {
    fn extra(self) -> &'static [(&'static str, Kind, &'static str)] {
        match self {
            EnvScope::Global => &[],
            EnvScope::Endpoint => std::slice::from_ref(&CLUSTER_FLAG),
            EnvScope::Watch => &WATCH_FLAGS,
        }
    }
}

/// etcdctl unsets `ETCDCTL_API` before looking at the environment, so it is never reported.
const SILENT_ENV: &[&str] = &["ETCDCTL_API"];

/// The global options after command-line conversion (and, once [`Globals::apply_env`] ran,
/// the environment).
#[derive(Debug, Clone)]
pub struct Globals {
    pub endpoints: Vec<String>,
    pub dial_timeout: GoDuration,
    pub command_timeout: GoDuration,
    pub keepalive_time: GoDuration,
    pub keepalive_timeout: GoDuration,
    pub write_out: String,
    pub hex: bool,
    pub debug: bool,
    pub insecure_transport: bool,
    pub insecure_skip_tls_verify: bool,
    pub insecure_discovery: bool,
    pub discovery_srv: String,
    pub discovery_srv_name: String,
    pub cert: String,
    pub key: String,
    pub cacert: String,
    pub user: String,
    pub password: String,
    pub max_request_bytes: u64,
    pub max_recv_bytes: u64,
    /// `endpoint --cluster`; only meaningful for the endpoint subcommands.
    pub cluster: bool,
    /// Flags given explicitly (pflag's `Changed`), by name.
    pub changed: BTreeSet<&'static str>,
}

impl Default for Globals {
    fn default() -> Globals {
        let mut g = Globals {
            endpoints: vec![],
            dial_timeout: 0,
            command_timeout: 0,
            keepalive_time: 0,
            keepalive_timeout: 0,
            write_out: String::new(),
            hex: false,
            debug: false,
            insecure_transport: false,
            insecure_skip_tls_verify: false,
            insecure_discovery: false,
            discovery_srv: String::new(),
            discovery_srv_name: String::new(),
            cert: String::new(),
            key: String::new(),
            cacert: String::new(),
            user: String::new(),
            password: String::new(),
            max_request_bytes: 0,
            max_recv_bytes: 0,
            cluster: false,
            changed: BTreeSet::new(),
        };
        for &(name, _, default) in GLOBAL_FLAGS.iter().chain([&CLUSTER_FLAG]) {
            // Defaults are valid by construction.
            let _ = g.set(name, default);
        }
        g
    }
}

impl Globals {
    /// Converts the command line's global flags; an unconvertible value is a usage error (exit 1).
    pub fn from_cli(args: &GlobalArgs, cluster: &Option<String>) -> Result<Globals, Exit> {
        let mut g = Globals::default();
        if !args.endpoints.is_empty() {
            g.endpoints = args.endpoints.clone();
            g.changed.insert("endpoints");
        }
        let given: [(&'static str, &Option<String>); 20] = [
            ("cacert", &args.cacert),
            ("cert", &args.cert),
            ("command-timeout", &args.command_timeout),
            ("debug", &args.debug),
            ("dial-timeout", &args.dial_timeout),
            ("discovery-srv", &args.discovery_srv),
            ("discovery-srv-name", &args.discovery_srv_name),
            ("hex", &args.hex),
            ("insecure-discovery", &args.insecure_discovery),
            ("insecure-skip-tls-verify", &args.insecure_skip_tls_verify),
            ("insecure-transport", &args.insecure_transport),
            ("keepalive-time", &args.keepalive_time),
            ("keepalive-timeout", &args.keepalive_timeout),
            ("key", &args.key),
            ("max-recv-bytes", &args.max_recv_bytes),
            ("max-request-bytes", &args.max_request_bytes),
            ("password", &args.password),
            ("user", &args.user),
            ("write-out", &args.write_out),
            ("cluster", cluster),
        ];
        for (name, raw) in given {
            if let Some(v) = raw {
                g.set(name, v)
                    .map_err(|e| Exit::error(invalid(v, name, e)))?;
                g.changed.insert(name);
            }
        }
        Ok(g)
    }

    fn kind(name: &str) -> Option<Kind> {
        GLOBAL_FLAGS
            .iter()
            .chain([&CLUSTER_FLAG])
            .chain(WATCH_FLAGS.iter())
            .find(|(n, _, _)| *n == name)
            .map(|&(_, k, _)| k)
    }

    /// pflag's `Set`: converts `value` for the flag `name`.
    fn set(&mut self, name: &str, value: &str) -> Result<(), String> {
        let kind = Self::kind(name).ok_or_else(|| format!("no such flag -{name}"))?;
        match kind {
            Kind::Discard => {}
            Kind::Duration => {
                let d = gofmt::parse_duration(value)?;
                match name {
                    "command-timeout" => self.command_timeout = d,
                    "dial-timeout" => self.dial_timeout = d,
                    "keepalive-time" => self.keepalive_time = d,
                    _ => self.keepalive_timeout = d,
                }
            }
            Kind::Bool => {
                let b = gofmt::parse_bool(value)?;
                match name {
                    "debug" => self.debug = b,
                    "hex" => self.hex = b,
                    "insecure-discovery" => self.insecure_discovery = b,
                    "insecure-skip-tls-verify" => self.insecure_skip_tls_verify = b,
                    "insecure-transport" => self.insecure_transport = b,
                    _ => self.cluster = b,
                }
            }
            Kind::Uint => {
                let n = gofmt::parse_uint(value, 0)?;
                match name {
                    "max-recv-bytes" => self.max_recv_bytes = n,
                    _ => self.max_request_bytes = n,
                }
            }
            Kind::StrSlice => {
                self.endpoints = value.split(',').map(str::to_string).collect();
            }
            Kind::Str => {
                let v = value.to_string();
                match name {
                    "cacert" => self.cacert = v,
                    "cert" => self.cert = v,
                    "discovery-srv" => self.discovery_srv = v,
                    "discovery-srv-name" => self.discovery_srv_name = v,
                    "key" => self.key = v,
                    "password" => self.password = v,
                    "user" => self.user = v,
                    _ => self.write_out = v,
                }
            }
        }
        Ok(())
    }

    /// pflag's `Value.String()` of a flag, as `--debug` prints it.
    fn value_string(&self, name: &str) -> String {
        match name {
            "cacert" => self.cacert.clone(),
            "cert" => self.cert.clone(),
            "command-timeout" => gofmt::format_duration(self.command_timeout),
            "debug" => self.debug.to_string(),
            "dial-timeout" => gofmt::format_duration(self.dial_timeout),
            "discovery-srv" => self.discovery_srv.clone(),
            "discovery-srv-name" => self.discovery_srv_name.clone(),
            "endpoints" => format!("[{}]", self.endpoints.join(",")),
            "hex" => self.hex.to_string(),
            "insecure-discovery" => self.insecure_discovery.to_string(),
            "insecure-skip-tls-verify" => self.insecure_skip_tls_verify.to_string(),
            "insecure-transport" => self.insecure_transport.to_string(),
            "keepalive-time" => gofmt::format_duration(self.keepalive_time),
            "keepalive-timeout" => gofmt::format_duration(self.keepalive_timeout),
            "key" => self.key.clone(),
            "max-recv-bytes" => self.max_recv_bytes.to_string(),
            "max-request-bytes" => self.max_request_bytes.to_string(),
            "password" => self.password.clone(),
            "user" => self.user.clone(),
            "write-out" => self.write_out.clone(),
            "cluster" => self.cluster.to_string(),
            _ => String::new(),
        }
    }

    fn flag_names(scope: EnvScope) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = GLOBAL_FLAGS
            .iter()
            .chain(scope.extra())
            .map(|&(n, _, _)| n)
            .collect();
        // pflag visits flags in lexicographic order.
        names.sort_unstable();
        names
    }

    /// etcd's `flags.SetPflagsFromEnv` over the global flags (plus the command's own, see
    /// [`EnvScope`]): a non-empty `ETCDCTL_<FLAG>` sets a flag not given on the command line (a value
    /// that does not convert is ignored, as etcdctl ignores that error); then every `ETCDCTL_*`
    /// variable is checked. Returns what to log: warnings for unknown `ETCDCTL_*` variables and,
    /// last, a fatal note when a variable shadows a flag given on the command line.
    pub fn apply_env(&mut self, env: &[(String, String)], scope: EnvScope) -> Vec<EnvNote> {
        let names = Self::flag_names(scope);
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut already_set: BTreeSet<String> = BTreeSet::new();
        for name in &names {
            let key = env_key(name);
            if self.changed.contains(name) {
                already_set.insert(key);
                continue;
            }
            let Some((_, val)) = env.iter().find(|(k, _)| *k == key) else {
                continue;
            };
            if val.is_empty() {
                continue;
            }
            used.insert(key);
            if self.set(name, val).is_ok() {
                self.changed.insert(name);
            }
        }
        let mut notes = vec![];
        for (k, v) in env {
            if used.contains(k) || SILENT_ENV.contains(&k.as_str()) {
                continue;
            }
            if already_set.contains(k) {
                notes.push(EnvNote {
                    fatal: true,
                    text: format!(
                        "conflicting environment variable {} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)",
                        gofmt::quote_str(k)
                    ),
                });
                break;
            }
            if k.starts_with("ETCDCTL_") {
                notes.push(EnvNote {
                    fatal: false,
                    text: format!("unrecognized environment variable {k}={v}"),
                });
            }
        }
        notes
    }

    /// What `--debug` prints: every flag as its environment variable.
    pub fn debug_dump(&self, scope: EnvScope) -> String {
        let mut out = String::new();
        for name in Self::flag_names(scope) {
            let _ = writeln!(out, "{}={}", env_key(name), self.value_string(name));
        }
        out
    }
}

/// A log line from the environment check; a fatal one ends etcdctl.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvNote {
    pub fatal: bool,
    pub text: String,
}

/// etcd's `flags.FlagToEnv`: `--dial-timeout` is `ETCDCTL_DIAL_TIMEOUT`.
pub fn env_key(flag: &str) -> String {
    format!("ETCDCTL_{}", flag.to_uppercase().replace('-', "_"))
}

/// `put`'s options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PutOpts {
    pub lease: String,
    pub prev_kv: bool,
    pub ignore_value: bool,
    pub ignore_lease: bool,
}

impl PutOpts {
    pub fn from_cli(a: &PutArgs) -> Result<PutOpts, String> {
        Ok(PutOpts {
            lease: a.lease.clone().unwrap_or_else(|| "0".to_string()),
            prev_kv: to_bool(&a.prev_kv, "prev-kv", false)?,
            ignore_value: to_bool(&a.ignore_value, "ignore-value", false)?,
            ignore_lease: to_bool(&a.ignore_lease, "ignore-lease", false)?,
        })
    }
}

/// `get`'s options.
#[derive(Debug, Clone, PartialEq)]
pub struct GetOpts {
    pub consistency: String,
    pub order: String,
    pub sort_by: String,
    pub limit: i64,
    pub prefix: bool,
    pub from_key: bool,
    pub rev: i64,
    pub keys_only: bool,
    pub count_only: bool,
    pub print_value_only: bool,
    pub min_mod_rev: i64,
    pub max_mod_rev: i64,
    pub min_create_rev: i64,
    pub max_create_rev: i64,
}

impl Default for GetOpts {
    fn default() -> GetOpts {
        GetOpts {
            consistency: "l".to_string(),
            order: String::new(),
            sort_by: String::new(),
            limit: 0,
            prefix: false,
            from_key: false,
            rev: 0,
            keys_only: false,
            count_only: false,
            print_value_only: false,
            min_mod_rev: 0,
            max_mod_rev: 0,
            min_create_rev: 0,
            max_create_rev: 0,
        }
    }
}

impl GetOpts {
    pub fn from_cli(a: &GetArgs) -> Result<GetOpts, String> {
        Ok(GetOpts {
            consistency: a.consistency.clone().unwrap_or_else(|| "l".to_string()),
            order: a.order.clone().unwrap_or_default(),
            sort_by: a.sort_by.clone().unwrap_or_default(),
            limit: to_int(&a.limit, "limit")?,
            prefix: to_bool(&a.prefix, "prefix", false)?,
            from_key: to_bool(&a.from_key, "from-key", false)?,
            rev: to_int(&a.rev, "rev")?,
            keys_only: to_bool(&a.keys_only, "keys-only", false)?,
            count_only: to_bool(&a.count_only, "count-only", false)?,
            print_value_only: to_bool(&a.print_value_only, "print-value-only", false)?,
            min_mod_rev: to_int(&a.min_mod_rev, "min-mod-rev")?,
            max_mod_rev: to_int(&a.max_mod_rev, "max-mod-rev")?,
            min_create_rev: to_int(&a.min_create_rev, "min-create-rev")?,
            max_create_rev: to_int(&a.max_create_rev, "max-create-rev")?,
        })
    }
}

/// `del`'s options.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DelOpts {
    pub prefix: bool,
    pub prev_kv: bool,
    pub from_key: bool,
    pub range: bool,
}

impl DelOpts {
    pub fn from_cli(a: &DelArgs) -> Result<DelOpts, String> {
        Ok(DelOpts {
            prefix: to_bool(&a.prefix, "prefix", false)?,
            prev_kv: to_bool(&a.prev_kv, "prev-kv", false)?,
            from_key: to_bool(&a.from_key, "from-key", false)?,
            range: to_bool(&a.range, "range", false)?,
        })
    }
}

pub fn compaction_physical(a: &CompactionArgs) -> Result<bool, String> {
    to_bool(&a.physical, "physical", false)
}

pub fn flag_bool(raw: &Option<String>, flag: &str) -> Result<bool, String> {
    to_bool(raw, flag, false)
}

/// A boolean flag that defaults to true (`--interactive`).
pub fn flag_bool_true(raw: &Option<String>, flag: &str) -> Result<bool, String> {
    to_bool(raw, flag, true)
}

/// An integer flag (pflag's Int/Int64: base prefixes allowed), 0 when absent.
pub fn flag_int(raw: &Option<String>, flag: &str) -> Result<i64, String> {
    to_int(raw, flag)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults_match_etcdctl() {
        let g = Globals::default();
        assert_eq!(g.endpoints, vec!["127.0.0.1:2379"]);
        assert_eq!(g.dial_timeout, 2_000_000_000);
        assert_eq!(g.command_timeout, 5_000_000_000);
        assert_eq!(g.write_out, "simple");
        assert!(g.insecure_transport && g.insecure_discovery && !g.hex);
    }

    #[test]
    fn bad_values_are_reported_like_pflag() {
        let args = GlobalArgs {
            dial_timeout: Some("abc".into()),
            ..Default::default()
        };
        let e = Globals::from_cli(&args, &None).unwrap_err();
        assert_eq!(
            e.message.as_deref(),
            Some(
                r#"invalid argument "abc" for "--dial-timeout" flag: time: invalid duration "abc""#
            )
        );
        assert_eq!(e.code, 1);
    }

    #[test]
    fn env_fills_unset_flags_and_warns() {
        let mut g = Globals::from_cli(&GlobalArgs::default(), &None).unwrap();
        let notes = g.apply_env(
            &env(&[
                ("ETCDCTL_API", "3"),
                ("ETCDCTL_ENDPOINTS", "a:1,b:2"),
                ("ETCDCTL_WRITE_OUT", "json"),
                ("ETCDCTL_DIAL_TIMEOUT", "abc"),
                ("ETCDCTL_FOO", "bar"),
                ("PATH", "/bin"),
            ]),
            EnvScope::Global,
        );
        assert_eq!(g.endpoints, vec!["a:1", "b:2"]);
        assert_eq!(g.write_out, "json");
        assert_eq!(g.dial_timeout, 2_000_000_000);
        assert_eq!(
            notes,
            vec![EnvNote {
                fatal: false,
                text: "unrecognized environment variable ETCDCTL_FOO=bar".into()
            }]
        );
    }

    #[test]
    fn env_shadowed_by_flag_is_fatal() {
        let args = GlobalArgs {
            endpoints: vec!["x:1".into()],
            ..Default::default()
        };
        let mut g = Globals::from_cli(&args, &None).unwrap();
        let notes = g.apply_env(&env(&[("ETCDCTL_ENDPOINTS", "y:2")]), EnvScope::Global);
        assert!(notes[0].fatal);
        assert!(
            notes[0]
                .text
                .starts_with("conflicting environment variable \"ETCDCTL_ENDPOINTS\"")
        );
    }

    #[test]
    fn cluster_comes_from_env_only_for_endpoint_commands() {
        let mut g = Globals::default();
        let w = g.apply_env(&env(&[("ETCDCTL_CLUSTER", "true")]), EnvScope::Global);
        assert!(!g.cluster);
        assert_eq!(w.len(), 1);
        let w = g.apply_env(&env(&[("ETCDCTL_CLUSTER", "true")]), EnvScope::Endpoint);
        assert!(g.cluster && w.is_empty());
    }

    #[test]
    fn watch_variables_are_known_only_to_watch() {
        let vars = env(&[("ETCDCTL_WATCH_KEY", "k"), ("ETCDCTL_WATCH_RANGE_END", "z")]);
        let mut g = Globals::default();
        assert_eq!(g.apply_env(&vars, EnvScope::Global).len(), 2);
        let mut g = Globals::default();
        assert!(g.apply_env(&vars, EnvScope::Watch).is_empty());
        let dump = g.debug_dump(EnvScope::Watch);
        assert!(dump.contains("ETCDCTL_USER=\nETCDCTL_WATCH_KEY=\nETCDCTL_WATCH_RANGE_END=\nETCDCTL_WRITE_OUT=simple\n"));
    }

    #[test]
    fn debug_dump_lists_flags_in_order() {
        let dump = Globals::default().debug_dump(EnvScope::Global);
        let first: Vec<&str> = dump.lines().take(3).collect();
        assert_eq!(
            first,
            vec![
                "ETCDCTL_CACERT=",
                "ETCDCTL_CERT=",
                "ETCDCTL_COMMAND_TIMEOUT=5s"
            ]
        );
        assert!(dump.contains("ETCDCTL_ENDPOINTS=[127.0.0.1:2379]\n"));
    }

    #[test]
    fn get_flags_convert_like_pflag() {
        let a = GetArgs {
            limit: Some("0x10".into()),
            prefix: Some("true".into()),
            ..Default::default()
        };
        let o = GetOpts::from_cli(&a).unwrap();
        assert_eq!(o.limit, 16);
        assert!(o.prefix);
        let a = GetArgs {
            limit: Some("x".into()),
            ..Default::default()
        };
        assert_eq!(
            GetOpts::from_cli(&a).unwrap_err(),
            r#"invalid argument "x" for "--limit" flag: strconv.ParseInt: parsing "x": invalid syntax"#
        );
    }
}
