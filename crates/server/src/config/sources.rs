//! Where settings come from, read as etcd reads them: the command line in Go's flag syntax,
//! `ETCD_*` variables for flags the command line left alone, or a YAML file that replaces both.
//! Every value is checked by its etcd flag's kind before Cairn's own parsing sees it, so the
//! three sources accept and refuse the same things.

use super::etcd_flags::{self, EtcdFlag, Handling, Kind};
use super::{Config, ConfigError};
use clap::{CommandFactory, FromArgMatches};

/// Where a setting came from, for error messages and notes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    CommandLine,
    Env(String),
    File(String),
}

#[derive(Debug, Clone)]
struct Setting {
    name: String,
    /// `None` for a boolean flag given bare.
    value: Option<String>,
    source: Source,
}

/// What a flag name stands for.
#[derive(Debug, Clone, Copy)]
enum Known {
    Etcd(&'static EtcdFlag),
    /// A flag of Cairn's without an etcd counterpart (`--version`, `--config-file`).
    Cairn {
        boolean: bool,
    },
    Help,
}

impl Known {
    fn is_boolean(self) -> bool {
        match self {
            Known::Etcd(f) => f.kind.is_boolean(),
            Known::Cairn { boolean } => boolean,
            Known::Help => true,
        }
    }
}

fn lookup(name: &str) -> Option<Known> {
    if matches!(name, "h" | "help") {
        return Some(Known::Help);
    }
    if let Some(f) = etcd_flags::find(name) {
        return Some(Known::Etcd(f));
    }
    Config::command()
        .get_arguments()
        .find(|a| a.get_long() == Some(name))
        .map(|a| Known::Cairn {
            boolean: !a.get_action().takes_values(),
        })
}

fn invalid(message: String) -> ConfigError {
    ConfigError::Invalid(message)
}

/// The command line as Go's flag package reads it: one or two dashes, `-x=v` or `-x v`, boolean
/// flags bare or with `=`; the first word that is not a flag is an error, as in etcd.
fn command_line(args: &[String]) -> Result<Vec<Setting>, ConfigError> {
    let mut settings = Vec::new();
    let mut rest = args.iter();
    while let Some(word) = rest.next() {
        if word == "--" {
            if let Some(extra) = rest.next() {
                return Err(invalid(format!("'{extra}' is not a valid flag")));
            }
            break;
        }
        let Some(body) = word.strip_prefix('-').filter(|b| !b.is_empty()) else {
            return Err(invalid(format!("'{word}' is not a valid flag")));
        };
        let body = body.strip_prefix('-').unwrap_or(body);
        if body.is_empty() || body.starts_with('-') || body.starts_with('=') {
            return Err(invalid(format!("bad flag syntax: {word}")));
        }
        let (name, inline) = match body.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (body, None),
        };
        let known = lookup(name)
            .ok_or_else(|| invalid(format!("flag provided but not defined: -{name}")))?;
        let value = match (inline, known.is_boolean()) {
            (Some(v), _) => Some(v),
            (None, true) => None,
            (None, false) => Some(
                rest.next()
                    .cloned()
                    .ok_or_else(|| invalid(format!("flag needs an argument: -{name}")))?,
            ),
        };
        settings.push(Setting {
            name: name.to_string(),
            value,
            source: Source::CommandLine,
        });
    }
    Ok(settings)
}

/// `ETCD_<FLAG>` for every flag the command line did not set (etcd's `SetFlagsFromEnv`).
fn environment(
    env: &[(String, String)],
    given: &[Setting],
    notes: &mut Vec<String>,
) -> Result<Vec<Setting>, ConfigError> {
    let mut settings = Vec::new();
    for (var, value) in env {
        let Some(suffix) = var.strip_prefix("ETCD_") else {
            continue;
        };
        if var == "ETCD_CONFIG_FILE" {
            continue;
        }
        if var == "ETCD_VERSION" {
            notes.push(format!(
                "cannot set special environment variable {var}={value}; ignoring it"
            ));
            continue;
        }
        let name = suffix.to_lowercase().replace('_', "-");
        match lookup(&name) {
            None | Some(Known::Help) => {
                notes.push(format!("unrecognized environment variable {var}={value}"));
            }
            Some(_) if value.is_empty() => {}
            Some(_) => {
                if given.iter().any(|s| s.name == name) {
                    return Err(invalid(format!(
                        "conflicting environment variable {var:?} is shadowed by corresponding command-line flag (either unset environment variable or disable flag)"
                    )));
                }
                notes.push(format!(
                    "recognized and used environment variable {var}={value}"
                ));
                settings.push(Setting {
                    name,
                    value: Some(value.clone()),
                    source: Source::Env(var.clone()),
                });
            }
        }
    }
    Ok(settings)
}

/// Keys of etcd's YAML file Cairn reads besides etcd's own: the CRL files, which etcd's file
/// cannot set.
const EXTRA_YAML_KEYS: &[(&str, &str)] = &[
    ("client-transport-security.crl-file", "client-crl-file"),
    ("peer-transport-security.crl-file", "peer-crl-file"),
];

fn flag_for_yaml_key(key: &str) -> Option<&'static EtcdFlag> {
    if let Some((_, name)) = EXTRA_YAML_KEYS.iter().find(|(k, _)| *k == key) {
        return etcd_flags::find(name);
    }
    etcd_flags::ETCD_FLAGS
        .iter()
        .find(|f| f.yaml == key)
        .or_else(|| {
            // etcd 3.5 and 3.6 spell this key differently from the flag; both are read.
            (key == "experimental-snapshot-catchup-entries")
                .then(|| etcd_flags::find(key))
                .flatten()
        })
}

fn is_yaml_section(key: &str) -> bool {
    let prefix = format!("{key}.");
    etcd_flags::ETCD_FLAGS
        .iter()
        .any(|f| f.yaml.starts_with(&prefix))
}

/// A YAML value as the flag's text: lists joined with commas, durations given as integer
/// nanoseconds (etcd's file format) or as Go durations.
fn yaml_value_text(kind: Kind, value: &serde_yaml::Value) -> Result<Option<String>, String> {
    use serde_yaml::Value;
    let scalar = |v: &Value| -> Result<String, String> {
        match v {
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) if kind == Kind::Duration => Ok(format!("{n}ns")),
            Value::Number(n) => Ok(n.to_string()),
            Value::String(s) => Ok(s.clone()),
            other => Err(format!("expected a value, got {other:?}")),
        }
    };
    match value {
        Value::Null => Ok(None),
        Value::Sequence(items) => items
            .iter()
            .map(scalar)
            .collect::<Result<Vec<_>, _>>()
            .map(|v| Some(v.join(","))),
        v => scalar(v).map(Some),
    }
}

fn yaml_settings(
    prefix: &str,
    map: &serde_yaml::Mapping,
    settings: &mut Vec<Setting>,
    notes: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (k, v) in map {
        let Some(k) = k.as_str() else {
            return Err(invalid(format!("config file: key {k:?} is not a string")));
        };
        let key = format!("{prefix}{k}");
        if let Some(flag) = flag_for_yaml_key(&key) {
            let text = yaml_value_text(flag.kind, v)
                .map_err(|e| invalid(format!("config file: {key}: {e}")))?;
            if let Some(text) = text {
                settings.push(Setting {
                    name: flag.name.to_string(),
                    value: Some(text),
                    source: Source::File(key),
                });
            }
        } else if let (true, serde_yaml::Value::Mapping(inner)) = (is_yaml_section(&key), v) {
            yaml_settings(&format!("{key}."), inner, settings, notes)?;
        } else {
            // etcd's file reader ignores keys it does not know; an etcd file must start Cairn.
            notes.push(format!("unknown key {key:?} in the config file; ignored"));
        }
    }
    Ok(())
}

fn file_settings(text: &str, notes: &mut Vec<String>) -> Result<Vec<Setting>, ConfigError> {
    let doc: serde_yaml::Value =
        serde_yaml::from_str(text).map_err(|e| invalid(format!("config file: {e}")))?;
    let mut settings = Vec::new();
    match doc {
        serde_yaml::Value::Null => {}
        serde_yaml::Value::Mapping(map) => yaml_settings("", &map, &mut settings, notes)?,
        _ => return Err(invalid("config file: expected a mapping of keys".into())),
    }
    Ok(settings)
}

/// What a value of this flag looks like when it asks for nothing.
fn asks_for_nothing(flag: &EtcdFlag, value: &str) -> bool {
    match flag.name {
        "proxy" => value == "off",
        "host-whitelist" => value.is_empty() || value == "*",
        _ => value.is_empty() || value == "false",
    }
}

/// Checks every setting by its flag's kind, resolves renamed flags, hands Cairn's own to clap
/// and keeps the rest, then applies what the kept ones mean.
fn resolve(settings: Vec<Setting>, mut notes: Vec<String>) -> Result<Config, ConfigError> {
    let mut args = vec!["cairn".to_string()];
    let mut kept: Vec<(&'static str, String)> = Vec::new();
    let mut named: Vec<(String, String)> = Vec::new();
    for s in settings {
        let known = lookup(&s.name)
            .ok_or_else(|| invalid(format!("flag provided but not defined: -{}", s.name)))?;
        let flag = match known {
            Known::Help => {
                // clap prints the help and exits, as Go's flag package does.
                let _ = Config::command().get_matches_from(["cairn", "--help"]);
                continue;
            }
            Known::Cairn { .. } => {
                args.push(match &s.value {
                    Some(v) => format!("--{}={v}", s.name),
                    None => format!("--{}", s.name),
                });
                continue;
            }
            Known::Etcd(flag) => flag,
        };
        let raw = s.value.clone().unwrap_or_else(|| "true".into());
        let value = flag.kind.check(&raw).map_err(|reason| match &s.source {
            Source::CommandLine => invalid(format!(
                "invalid value {raw:?} for flag -{}: {reason}",
                s.name
            )),
            Source::Env(var) => invalid(format!("invalid value {raw:?} for {var}: {reason}")),
            Source::File(key) => invalid(format!(
                "config file: invalid value {raw:?} for {key}: {reason}"
            )),
        })?;
        let (name, flag) = match flag.handling {
            Handling::Renamed(to) => {
                let target = etcd_flags::find(to)
                    .ok_or_else(|| invalid(format!("--{} names no flag {to}", flag.name)))?;
                (to, target)
            }
            _ => (flag.name, flag),
        };
        if let Some((other, _)) = named.iter().find(|(n, from)| n == name && from != &s.name) {
            let (old, new) = if other.starts_with("experimental-") || other == "log-output" {
                (other.clone(), s.name.clone())
            } else {
                (s.name.clone(), other.clone())
            };
            return Err(invalid(format!(
                "cannot set --{old} and --{new} at the same time, please use --{new} only"
            )));
        }
        named.push((name.to_string(), s.name.clone()));
        match flag.handling {
            Handling::Config | Handling::Renamed(_) => args.push(format!("--{name}={value}")),
            Handling::DefaultOnly(why) => {
                if !asks_for_nothing(flag, &value) {
                    return Err(invalid(format!(
                        "--{name}={value} is not supported by Cairn: {why}"
                    )));
                }
            }
            Handling::NoEffect(why) => {
                notes.push(format!("--{name}={value} has no effect in Cairn: {why}"));
                kept.push((flag.name, value));
            }
            Handling::Legacy => {
                notes.push(format!(
                    "flag \"-{name}\" is no longer supported - ignoring."
                ));
            }
        }
    }
    let matches = Config::command()
        .try_get_matches_from(&args)
        .map_err(|e| invalid(e.to_string().trim().to_string()))?;
    let mut config = Config::from_arg_matches(&matches)
        .map_err(|e| invalid(e.to_string().trim().to_string()))?;
    let explicit = |name: &str| named.iter().any(|(n, _)| n == name);
    for (name, value) in &kept {
        match *name {
            "debug" if value == "true" && !explicit("log-level") => {
                config.log_level = "debug".into();
            }
            "feature-gates" => {
                for (gate, on) in etcd_flags::feature_gates(value).map_err(invalid)? {
                    if gate == "InitialCorruptCheck" {
                        if explicit("experimental-initial-corrupt-check") {
                            return Err(invalid(format!(
                                "cannot specify both flags: --experimental-initial-corrupt-check={} and --feature-gates=InitialCorruptCheck={on} at the same time, please just use --feature-gates=InitialCorruptCheck={on}",
                                config.experimental_initial_corrupt_check
                            )));
                        }
                        config.experimental_initial_corrupt_check = on;
                    }
                }
            }
            _ => {}
        }
    }
    // Values etcd replaces with its default, saying so, rather than refusing.
    if config.snapshot_count == 0 {
        config.snapshot_count = Config::default().snapshot_count;
        notes.push(format!(
            "set snapshot count to default {}",
            config.snapshot_count
        ));
    }
    if !(4..=31).contains(&config.bcrypt_cost) {
        notes.push(format!(
            "use default bcrypt cost 10 instead of the invalid given cost {}",
            config.bcrypt_cost
        ));
        config.bcrypt_cost = 10;
    }
    config.etcd_flags = kept;
    config.startup_notes = notes;
    Ok(config)
}

/// The configuration from `args` (without the program name) and the environment.
pub(super) fn load(args: &[String], env: &[(String, String)]) -> Result<Config, ConfigError> {
    let given = command_line(args)?;
    let file = given
        .iter()
        .rev()
        .find(|s| s.name == "config-file")
        .and_then(|s| s.value.clone())
        .or_else(|| {
            env.iter()
                .find(|(k, v)| k == "ETCD_CONFIG_FILE" && !v.is_empty())
                .map(|(_, v)| v.clone())
        });
    if let Some(path) = file {
        // As etcd: the file replaces the command line and the environment; only `--help` and
        // `--version` still count.
        let path = std::path::PathBuf::from(path);
        let text = std::fs::read_to_string(&path).map_err(|e| ConfigError::ConfigFile {
            path: path.clone(),
            reason: e.to_string(),
        })?;
        let mut notes = vec![format!(
            "loaded server configuration from {}; other configuration command line flags and environment variables are ignored",
            path.display()
        )];
        let mut settings: Vec<Setting> = given
            .into_iter()
            .filter(|s| matches!(s.name.as_str(), "h" | "help" | "version"))
            .collect();
        settings.extend(file_settings(&text, &mut notes)?);
        let mut config = resolve(settings, notes)?;
        config.config_file = Some(path);
        return Ok(config);
    }
    let mut notes = Vec::new();
    let mut settings = environment(env, &given, &mut notes)?;
    settings.splice(0..0, given);
    resolve(settings, notes)
}

/// The configuration from YAML text alone.
pub(super) fn from_yaml(text: &str) -> Result<Config, ConfigError> {
    let mut notes = Vec::new();
    let settings = file_settings(text, &mut notes)?;
    resolve(settings, notes)
}
