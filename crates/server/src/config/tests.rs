use super::*;

#[test]
fn defaults_like_etcd() {
    let c = Config::default();
    assert_eq!(c.name, "default");
    assert_eq!(c.data_dir(), PathBuf::from("default.etcd"));
    assert_eq!(c.wal_dir(), PathBuf::from("default.etcd/member/wal"));
    assert_eq!(c.max_request_bytes, 1_572_864);
    assert_eq!(c.max_txn_ops, 128);
    assert_eq!(c.snapshot_count, 10_000);
    c.validate().unwrap();
    assert_eq!(
        c.client_listen_addrs().unwrap(),
        vec![("127.0.0.1:2379".parse().unwrap(), false)]
    );
}

#[test]
fn yaml_client_transport_security_sets_the_tls_flags() {
    let c = Config::from_yaml(
        "listen-client-urls: https://127.0.0.1:2379\nclient-transport-security:\n  cert-file: /c.pem\n  key-file: /k.pem\n  client-cert-auth: true\n  trusted-ca-file: /ca.pem\n",
    )
    .unwrap();
    assert_eq!(
        (
            c.cert_file.as_str(),
            c.key_file.as_str(),
            c.trusted_ca_file.as_str()
        ),
        ("/c.pem", "/k.pem", "/ca.pem")
    );
    assert!(c.client_cert_auth && c.client_tls());
    assert_eq!(
        c.client_listen_addrs().unwrap(),
        vec![("127.0.0.1:2379".parse().unwrap(), true)]
    );
    let plain = Config::from_yaml("listen-client-urls: https://127.0.0.1:2379\n").unwrap();
    let err = plain.validate().unwrap_err().to_string();
    assert!(
        err.contains("TLS key/cert (--cert-file, --key-file) must be provided"),
        "{err}"
    );
}

#[test]
fn yaml_uses_flag_names_and_rejects_unknown_keys() {
    let c = Config::from_yaml(
        "name: m1\ndata-dir: /tmp/x\nsnapshot-count: 5\nlisten-client-urls: http://127.0.0.1:4000\ninitial-cluster: m1=http://localhost:2380\n",
    )
    .unwrap();
    assert_eq!(c.name, "m1");
    assert_eq!(c.snapshot_count, 5);
    assert_eq!(c.heartbeat_interval, 100);
    c.validate().unwrap();
    // etcd's reader ignores keys it does not know, so must Cairn's; it says so at start.
    let c = Config::from_yaml("no-such-key: 1\n").unwrap();
    assert!(
        c.startup_notes.iter().any(|n| n.contains("no-such-key")),
        "{:?}",
        c.startup_notes
    );
    assert!(Config::from_yaml("snapshot-count: many\n").is_err());
    assert!(Config::from_yaml("client-transport-security: [1]\n").is_ok());
}

#[test]
fn go_durations() {
    let d = |s: &str| s.parse::<GoDuration>().map(|d| d.0);
    assert_eq!(d("10m"), Ok(Duration::from_secs(600)));
    assert_eq!(d("1h2m3.5s"), Ok(Duration::from_secs_f64(3723.5)));
    assert_eq!(d("500ms"), Ok(Duration::from_millis(500)));
    assert_eq!(d("5000000000"), Ok(Duration::from_secs(5)));
    assert!(d("5x").is_err());
    assert!(d("").is_err());
    assert!(d("99999999999999999999h").is_err());
    assert!(d("99999999999999999999").is_err());
    assert!(d("1e400s").is_err());
    assert_eq!(d("2562047h"), Ok(Duration::from_secs(2_562_047 * 3600)));
    assert!(d("2562048h").is_err());
    let c = Config::from_yaml("watch-progress-notify-interval: 5000000000\n").unwrap();
    assert_eq!(c.watch_progress_notify_interval.0, Duration::from_secs(5));
}

#[test]
fn auto_compaction_from_yaml_and_flags() {
    use crate::compactor::AutoCompaction;
    let c = Config::from_yaml("auto-compaction-mode: revision\nauto-compaction-retention: 1000\n")
        .unwrap();
    assert_eq!(
        c.auto_compaction().ok(),
        Some(AutoCompaction::Revision(1000))
    );
    let c = Config::from_yaml("auto-compaction-retention: \"30m\"\n").unwrap();
    assert_eq!(
        c.auto_compaction().ok(),
        Some(AutoCompaction::Periodic(Duration::from_secs(1800)))
    );
    let c = Config::parse_from(["cairn", "--auto-compaction-retention", "2"]);
    assert_eq!(
        c.auto_compaction().ok(),
        Some(AutoCompaction::Periodic(Duration::from_secs(7200)))
    );
    assert_eq!(
        Config::default().auto_compaction().ok(),
        Some(AutoCompaction::Off)
    );
    let bad = Config::parse_from(["cairn", "--auto-compaction-mode", "daily"]);
    assert!(bad.validate().is_err());
}

#[test]
fn bad_values_are_rejected() {
    let c = Config {
        listen_client_urls: "localhost:2379".into(),
        ..Default::default()
    };
    assert!(c.validate().is_err());
    let c = Config {
        election_timeout: 200,
        ..Default::default()
    };
    assert!(c.validate().is_err());
    let c = Config {
        initial_cluster: "other=http://localhost:2380".into(),
        ..Default::default()
    };
    assert!(c.validate().is_err());
    let c = Config {
        initial_cluster_state: "old".into(),
        ..Default::default()
    };
    assert!(c.validate().is_err());
    let c = Config {
        heartbeat_interval: u64::MAX,
        ..Default::default()
    };
    assert!(c.validate().is_err());
}

#[test]
fn max_request_bytes_fits_a_log_entry() {
    let limit = u32::try_from(cairn_raft::MAX_PROPOSAL_BYTES).unwrap();
    let at = Config {
        max_request_bytes: limit,
        ..Default::default()
    };
    at.validate().unwrap();
    let over = Config {
        max_request_bytes: limit + 1,
        ..Default::default()
    };
    assert!(over.validate().is_err());
}

#[test]
fn a_repeated_flag_keeps_its_last_value_as_go_does() {
    let c = Config::try_parse_from([
        "cairn",
        "--name",
        "a",
        "--client-cert-auth",
        "--name",
        "b",
        "--client-cert-auth",
    ])
    .unwrap();
    assert_eq!(c.name, "b");
    assert!(c.client_cert_auth);
}

mod flags {
    use super::super::etcd_flags::{ETCD_FLAGS, EtcdFlag, Handling, Kind};
    use super::super::sources;
    use super::*;
    use clap::CommandFactory;

    fn load(args: &[&str], env: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        sources::load(&args, &env)
    }

    /// The settings as they end up, without the notes (which name the source).
    fn outcome(c: &Config) -> String {
        let mut c = c.clone();
        c.startup_notes.clear();
        format!("{c:?}")
    }

    /// A value of the flag's kind that differs from etcd's default (or, for flags Cairn takes
    /// only at their default, that default).
    fn sample(f: &EtcdFlag) -> (String, serde_yaml::Value) {
        use serde_yaml::Value;
        if let Handling::DefaultOnly(_) = f.handling {
            let v = if f.name == "proxy" { "off" } else { "" };
            return (v.into(), Value::String(v.into()));
        }
        match f.kind {
            Kind::Bool | Kind::Legacy => {
                // etcd's default is true for some (in some versions): the other value then.
                let on = !f.default.contains("true") || f.default.contains("false");
                (on.to_string(), Value::Bool(on))
            }
            Kind::Uint | Kind::Uint32 | Kind::Int => ("7".into(), Value::Number(7.into())),
            Kind::Duration => ("7s".into(), Value::Number(7_000_000_000u64.into())),
            Kind::Urls => (
                "http://127.0.0.1:7,http://127.0.0.1:8".into(),
                Value::String("http://127.0.0.1:7,http://127.0.0.1:8".into()),
            ),
            Kind::UrlsOrStar => ("http://a.example:7".into(), "http://a.example:7".into()),
            Kind::Text => ("x".into(), "x".into()),
            Kind::List => ("a,b".into(), Value::Sequence(vec!["a".into(), "b".into()])),
            Kind::Choice(c) | Kind::ChoiceList(c) => {
                let last = c.last().copied().unwrap_or_default();
                (last.into(), last.into())
            }
            Kind::FeatureGates => (
                "InitialCorruptCheck=true".into(),
                "InitialCorruptCheck=true".into(),
            ),
        }
    }

    /// `a.b.c: v` as nested YAML.
    fn nested_yaml(key: &str, value: serde_yaml::Value) -> String {
        let mut v = value;
        for part in key.rsplit('.') {
            let mut m = serde_yaml::Mapping::new();
            m.insert(part.into(), v);
            v = serde_yaml::Value::Mapping(m);
        }
        serde_yaml::to_string(&v).unwrap()
    }

    #[test]
    fn every_etcd_flag_is_taken_from_the_command_line_the_environment_and_yaml() {
        let default = outcome(&load(&[], &[]).unwrap());
        for f in ETCD_FLAGS {
            let (text, yaml) = sample(f);
            let flag = format!("--{}={text}", f.name);
            let from_cli = load(&[&flag], &[]).unwrap_or_else(|e| panic!("{flag}: {e}"));
            let var = format!("ETCD_{}", f.name.to_uppercase().replace('-', "_"));
            let from_env =
                load(&[], &[(&var, &text)]).unwrap_or_else(|e| panic!("{var}={text}: {e}"));
            assert_eq!(outcome(&from_cli), outcome(&from_env), "{flag} vs {var}");
            if !f.yaml.is_empty() {
                let doc = nested_yaml(f.yaml, yaml);
                let from_file = Config::from_yaml(&doc).unwrap_or_else(|e| panic!("{doc}: {e}"));
                assert_eq!(outcome(&from_cli), outcome(&from_file), "{flag} vs {doc}");
            }
            match f.handling {
                Handling::Config => {
                    assert_ne!(outcome(&from_cli), default, "{flag} changed nothing")
                }
                Handling::Renamed(to) => {
                    let direct = format!("--{to}={text}");
                    let direct = load(&[&direct], &[]).unwrap();
                    assert_eq!(outcome(&from_cli), outcome(&direct), "{flag} is --{to}");
                }
                Handling::NoEffect(_) => {
                    assert!(
                        from_cli.etcd_flags.iter().any(|(n, _)| *n == f.name),
                        "{flag} kept"
                    );
                    assert!(
                        from_cli
                            .startup_notes
                            .iter()
                            .any(|n| n.contains("has no effect in Cairn")),
                        "{flag} noted"
                    );
                }
                Handling::DefaultOnly(_) | Handling::Legacy => {}
            }
        }
    }

    #[test]
    fn the_table_and_the_config_agree() {
        let longs: Vec<String> = Config::command()
            .get_arguments()
            .filter_map(|a| a.get_long().map(str::to_string))
            .collect();
        for f in ETCD_FLAGS {
            let held = longs.iter().any(|l| l == f.name);
            assert_eq!(
                held,
                f.handling == Handling::Config,
                "--{}: a Config field exactly when the table says so",
                f.name
            );
            if let Handling::Renamed(to) = f.handling {
                assert!(longs.iter().any(|l| l == to), "--{} renames --{to}", f.name);
            }
        }
        for l in &longs {
            assert!(
                ETCD_FLAGS.iter().any(|f| f.name == l)
                    || ["config-file", "version", "help"].contains(&l.as_str()),
                "--{l} is not an etcd flag"
            );
        }
    }

    #[test]
    fn every_flag_of_etcds_help_is_known() {
        for (version, list) in [
            ("3.4", include_str!("testdata/etcd-3.4.23-help.txt")),
            ("3.5", include_str!("testdata/etcd-3.5-flags.txt")),
            ("3.6", include_str!("testdata/etcd-3.6-flags.txt")),
            ("3.7", include_str!("testdata/etcd-3.7-flags.txt")),
        ] {
            for name in list.lines().filter(|l| !l.is_empty()) {
                if matches!(name, "config-file" | "version") {
                    continue;
                }
                let f = ETCD_FLAGS
                    .iter()
                    .find(|f| f.name == name)
                    .unwrap_or_else(|| panic!("etcd {version}'s --{name} is missing"));
                assert!(f.versions.contains(version), "--{name} in {version}");
            }
        }
    }

    #[test]
    fn go_syntax_and_etcds_errors() {
        let c = load(
            &[
                "-name",
                "a",
                "-force-new-cluster",
                "--heartbeat-interval=0x10",
            ],
            &[],
        )
        .unwrap();
        assert_eq!(c.name, "a");
        assert!(c.force_new_cluster);
        assert_eq!(c.heartbeat_interval, 16);
        let c = load(&["--client-cert-auth=T", "--auto-tls=0"], &[]).unwrap();
        assert!(c.client_cert_auth && !c.auto_tls);
        let err = |args: &[&str], env: &[(&str, &str)]| load(args, env).unwrap_err().to_string();
        assert_eq!(
            err(&["--bogus"], &[]),
            "flag provided but not defined: -bogus"
        );
        assert_eq!(err(&["--name"], &[]), "flag needs an argument: -name");
        assert_eq!(err(&["stray"], &[]), "'stray' is not a valid flag");
        assert_eq!(err(&["---name=x"], &[]), "bad flag syntax: ---name=x");
        assert_eq!(
            err(&["--snapshot-count=abc"], &[]),
            "invalid value \"abc\" for flag -snapshot-count: parse error"
        );
        assert_eq!(
            err(&["--heartbeat-interval=-1"], &[]),
            "invalid value \"-1\" for flag -heartbeat-interval: parse error"
        );
        assert_eq!(
            err(&["--enable-pprof=maybe"], &[]),
            "invalid value \"maybe\" for flag -enable-pprof: parse error"
        );
        assert_eq!(
            err(&["--initial-cluster-state=old"], &[]),
            "invalid value \"old\" for flag -initial-cluster-state: invalid value"
        );
        assert!(
            err(&["--cors=foo"], &[]).contains("URL scheme must be http, https, unix, or unixs")
        );
        assert_eq!(
            err(&[], &[("ETCD_SNAPSHOT_COUNT", "abc")]),
            "invalid value \"abc\" for ETCD_SNAPSHOT_COUNT: parse error"
        );
        assert!(
            err(&["--name=a"], &[("ETCD_NAME", "b")])
                .starts_with("conflicting environment variable \"ETCD_NAME\"")
        );
        assert_eq!(
            err(
                &[
                    "--experimental-corrupt-check-time=1s",
                    "--corrupt-check-time=2s"
                ],
                &[]
            ),
            "cannot set --experimental-corrupt-check-time and --corrupt-check-time at the same time, please use --corrupt-check-time only"
        );
        assert!(
            err(&["--feature-gates=Nope=true"], &[]).contains("unrecognized feature gate: Nope")
        );
        assert!(err(&["--discovery-srv=example.com"], &[]).contains("not supported by Cairn"));
        assert!(err(&["--proxy=on"], &[]).contains("not supported by Cairn"));
        // Unknown variables are only noted (etcd's own tests set ETCD_UNSUPPORTED_ARCH).
        let c = load(&[], &[("ETCD_UNSUPPORTED_ARCH", "amd64")]).unwrap();
        assert!(
            c.startup_notes.iter().any(
                |n| n.contains("unrecognized environment variable ETCD_UNSUPPORTED_ARCH=amd64")
            )
        );
        let c = load(
            &["--feature-gates=InitialCorruptCheck=true,AllBeta=false"],
            &[],
        )
        .unwrap();
        assert!(c.experimental_initial_corrupt_check);
        let c = load(&["--debug"], &[]).unwrap();
        assert_eq!(c.log_level, "debug");
        let c = load(&["--peer-heartbeat-interval", "--log-output=stderr"], &[]).unwrap();
        assert_eq!(c.log_outputs, "stderr");
        assert!(
            c.startup_notes.iter().any(
                |n| n == "flag \"-peer-heartbeat-interval\" is no longer supported - ignoring."
            )
        );
    }

    #[test]
    fn a_config_file_replaces_the_command_line_and_the_environment() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("etcd.yml");
        std::fs::write(
            &file,
            "name: from-file\nexperimental-corrupt-check-time: 60000000000\n",
        )
        .unwrap();
        let path = file.display().to_string();
        let c = load(
            &["--config-file", &path, "--name=cli"],
            &[("ETCD_SNAPSHOT_COUNT", "3")],
        )
        .unwrap();
        assert_eq!(c.name, "from-file");
        assert_eq!(c.snapshot_count, 10_000);
        assert_eq!(c.experimental_corrupt_check_time.0, Duration::from_secs(60));
        let c = load(&[], &[("ETCD_CONFIG_FILE", &path)]).unwrap();
        assert_eq!(c.name, "from-file");
        // The command line is still checked.
        assert!(load(&["--config-file", &path, "--bogus"], &[]).is_err());
    }

    /// docs/flags.md is the table for readers; `CAIRN_BLESS=1` rewrites it.
    #[test]
    fn the_flags_document_is_the_table() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/flags.md");
        let rendered = super::super::etcd_flags::markdown();
        if std::env::var_os("CAIRN_BLESS").is_some() {
            std::fs::write(&path, &rendered).unwrap();
        }
        let on_disk = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            on_disk == rendered,
            "docs/flags.md is stale: run the test with CAIRN_BLESS=1"
        );
    }
}
