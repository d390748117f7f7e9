//! `cairnutl`: etcdutl's offline commands for Cairn — `snapshot status`, `snapshot restore`,
//! `defrag`, `hashkv`, `migrate` and `backup` — on snapshot files and the data dirs of stopped members, with
//! etcdutl's flags, outputs and exit codes.
//!
//! Owns: the command line (the snapshot commands themselves are the library's, which cairnctl
//! shares). Must not: know how a data dir or a snapshot file is laid out; that is
//! `cairn_server::offline`'s.

use cairn_server::offline::{self, RestoreOptions};
use cairnutl::output::{self, Format, log_info};
use cairnutl::snapshot;
use cairnutl::{EXIT_BAD_ARGS, EXIT_BAD_FEATURE, EXIT_ERROR, Failure};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(
    name = "cairnutl",
    about = "An administrative command line tool for Cairn (etcdutl-compatible)"
)]
struct Cli {
    /// Output format: simple, table, json or fields.
    #[arg(
        short = 'w',
        long = "write-out",
        default_value = "simple",
        global = true
    )]
    write_out: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Manages snapshot files.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Defragments the backend of a data dir no member is running on.
    Defrag {
        #[arg(long)]
        data_dir: PathBuf,
    },
    /// Prints the KV history hash of a backend file (a stopped member's member/snap/db).
    Hashkv {
        file: PathBuf,
        /// Revision to hash up to (0: the latest).
        #[arg(long, default_value_t = 0)]
        rev: i64,
    },
    /// [legacy] offline backup of a stopped member's data dir, for a new cluster started on it
    /// with --force-new-cluster.
    Backup {
        /// Path to the etcd data dir
        #[arg(long, required = true)]
        data_dir: PathBuf,
        /// Path to the etcd wal dir
        #[arg(long)]
        wal_dir: Option<PathBuf>,
        /// Path to the backup dir
        #[arg(long, required = true)]
        backup_dir: PathBuf,
        /// Path to the backup wal dir
        #[arg(long)]
        backup_wal_dir: Option<PathBuf>,
        /// Backup v3 backend data. Included by default.
        #[arg(
            long,
            default_value = "true",
            num_args = 0..=1,
            default_missing_value = "true",
            require_equals = true
        )]
        with_v3: String,
    },
    /// Migrates the storage version of a data dir no member is running on.
    Migrate {
        /// Path to the etcd data dir
        #[arg(long, required = true)]
        data_dir: PathBuf,
        /// Target etcd version to migrate contents of data dir. Minimal value 3.5. Format "X.Y"
        /// for example 3.6.
        #[arg(long, required = true)]
        target_version: String,
        /// Ignore migration failure and forcefully override storage version. Not recommended.
        #[arg(long)]
        force: bool,
    },
    /// Prints the version of cairnutl.
    Version,
}

#[derive(Subcommand, Debug)]
enum SnapshotCommand {
    /// Prints a snapshot file's hash, revision, total keys and total size.
    Status { file: PathBuf },
    /// Restores a snapshot file into a new member's data dir.
    Restore {
        file: PathBuf,
        /// Path to the output data directory (default: <name>.etcd).
        #[arg(long, default_value = "")]
        data_dir: PathBuf,
        /// Path to the WAL directory (default: inside the data directory).
        #[arg(long)]
        wal_dir: Option<PathBuf>,
        /// Initial cluster configuration for the restored cluster.
        #[arg(long, default_value = "default=http://localhost:2380")]
        initial_cluster: String,
        /// Initial cluster token for the restored cluster.
        #[arg(long, default_value = "etcd-cluster")]
        initial_cluster_token: String,
        /// This member's peer URLs, as they appear in --initial-cluster.
        #[arg(long, default_value = "http://localhost:2380")]
        initial_advertise_peer_urls: String,
        /// Name of this member.
        #[arg(long, default_value = "default")]
        name: String,
        /// Ignore the snapshot's integrity hash (required for a db file copied from a data dir).
        #[arg(long)]
        skip_hash_check: bool,
        /// How much to increase the latest revision after the restore.
        #[arg(long, default_value_t = 0)]
        bump_revision: u64,
        /// Mark the latest revision after the restore as compacted (required with
        /// --bump-revision > 0, refused otherwise).
        #[arg(long)]
        mark_compacted: bool,
    },
}

fn fail(code: u8, message: impl std::fmt::Display) -> ExitCode {
    eprintln!("Error: {message}");
    ExitCode::from(code)
}

fn done(result: Result<(), Failure>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => fail(f.code, f.message),
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(EXIT_BAD_ARGS)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let format = match Format::parse(&cli.write_out) {
        Ok(f) => f,
        Err(e) => return fail(EXIT_BAD_FEATURE, e),
    };
    match cli.command {
        Command::Snapshot(SnapshotCommand::Status { file }) => {
            done(snapshot::status(&file, format).map(|text| print!("{text}")))
        }
        Command::Snapshot(SnapshotCommand::Restore {
            file,
            data_dir,
            wal_dir,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            name,
            skip_hash_check,
            bump_revision,
            mark_compacted,
        }) => done(snapshot::restore(&RestoreOptions {
            snapshot: file,
            name,
            data_dir,
            wal_dir,
            initial_cluster,
            initial_cluster_token,
            initial_advertise_peer_urls,
            skip_hash_check,
            bump_revision,
            mark_compacted,
        })),
        Command::Defrag { data_dir } => match cairnutl::defrag::run(&data_dir) {
            Ok((before, after)) => {
                log_info(
                    "defragmented",
                    &[
                        ("size-before", before.to_string()),
                        ("size-after", after.to_string()),
                    ],
                );
                println!("Finished defragmenting etcd data[{}]", data_dir.display());
                ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "Failed to defragment etcd data[{}] ({e})",
                    data_dir.display()
                );
                ExitCode::from(EXIT_ERROR)
            }
        },
        Command::Hashkv { file, rev } => match offline::hash_kv(&file, rev) {
            Ok((hash, hash_revision, compact_revision)) => {
                print!(
                    "{}",
                    output::hashkv(format, hash, hash_revision, compact_revision)
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(EXIT_ERROR, e),
        },
        Command::Backup {
            data_dir,
            wal_dir,
            backup_dir,
            backup_wal_dir,
            with_v3,
        } => {
            match with_v3.as_str() {
                "true" | "1" | "t" | "T" | "TRUE" | "True" => {}
                "false" | "0" | "f" | "F" | "FALSE" | "False" => {
                    return fail(
                        EXIT_BAD_ARGS,
                        "--with-v3=false backs up etcd's v2 store only, which Cairn does not have",
                    );
                }
                other => {
                    return fail(
                        EXIT_BAD_ARGS,
                        format!(
                            "invalid argument {other:?} for \"--with-v3\" flag: strconv.ParseBool: parsing {other:?}: invalid syntax"
                        ),
                    );
                }
            }
            let opts = offline::BackupOptions {
                data_dir,
                wal_dir,
                backup_dir,
                backup_wal_dir,
            };
            match offline::backup(&opts) {
                Ok(()) => {
                    log_info(
                        "backed up the data dir; start a member on the copy with --force-new-cluster",
                        &[("backup-dir", opts.backup_dir.display().to_string())],
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => fail(EXIT_ERROR, e),
            }
        }
        Command::Migrate {
            data_dir,
            target_version,
            force,
        } => migrate(&data_dir, &target_version, force),
        Command::Version => {
            println!("cairnutl version: {}", cairn_server::ETCD_VERSION);
            let api: Vec<&str> = cairn_server::ETCD_VERSION.split('.').take(2).collect();
            println!("API version: {}", api.join("."));
            ExitCode::SUCCESS
        }
    }
}

/// `migrate`, with etcdutl 3.6's checks of the target and its log lines.
fn migrate(data_dir: &std::path::Path, target: &str, force: bool) -> ExitCode {
    if target.matches('.').count() != 1 {
        return fail(
            EXIT_BAD_ARGS,
            format!("wrong target version format, expected \"X.Y\", got {target:?}"),
        );
    }
    let parsed = target.split_once('.').and_then(|(major, minor)| {
        let number = |n: &str| {
            let plain = !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit());
            (plain && (n == "0" || !n.starts_with('0'))).then(|| n.parse::<u64>().ok())?
        };
        Some((number(major)?, number(minor)?))
    });
    let Some((major, minor)) = parsed else {
        return fail(
            EXIT_BAD_ARGS,
            format!("failed to parse target version: {target}.0 is not a valid version"),
        );
    };
    if (major, minor) < (3, 5) {
        return fail(
            EXIT_BAD_ARGS,
            format!("target version \"{major}.{minor}\" not supported. Minimal \"3.5\""),
        );
    }
    let first = offline::migrate(data_dir, major, minor, false);
    let outcome = match first {
        Err(offline::OfflineError::Unsupported(_)) if force => {
            if let Err(e) = &first {
                log_info(
                    "normal migrate failed, trying with force",
                    &[("error", e.to_string())],
                );
            }
            offline::migrate(data_dir, major, minor, true)
        }
        other => other,
    };
    match outcome {
        Ok(offline::Migrated::UpToDate(v)) => {
            log_info("storage version up-to-date", &[("storage-version", v)]);
            ExitCode::SUCCESS
        }
        Ok(offline::Migrated::Updated(v)) => {
            log_info("updated storage version", &[("new-storage-version", v)]);
            ExitCode::SUCCESS
        }
        Ok(offline::Migrated::Forced(v)) => {
            log_info("forcefully set storage version", &[("storage-version", v)]);
            ExitCode::SUCCESS
        }
        Err(e) => fail(EXIT_ERROR, e),
    }
}
