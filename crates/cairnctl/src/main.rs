//! `cairnctl`: an etcdctl (v3 API) compatible command line client for Cairn and etcd.
//!
//! Owns: etcdctl's command-line surface for `put`, `get`, `del`, `txn`, `compaction`, `watch`,
//! `lease`, `elect`, `lock`, `endpoint health|status|hashkv`, `member`, `move-leader`, `auth`,
//! `user`, `role`, `snapshot save|status|restore`, `defrag`, `alarm list|disarm`, `make-mirror`,
//! `check perf|datascale` and `version`, with
//! `--user`/`--password` logins — flags and
//! `ETCDCTL_*` variables, argument checks, output formats (simple, json, fields, table,
//! protobuf), error messages and exit codes — reproduced so that scripts written for etcdctl 3.4
//! work unchanged.
//!
//! Must not: contain server logic or know Cairn's internals. It is a thin CLI over
//! `cairn-client` and the public etcd v3 wire API, and must work the same against real etcd.
//!
//! Layout: [`cli`] is the grammar, [`flags`] converts flag values (pflag semantics, env),
//! [`kvops`] builds requests, [`txn`] parses `txn` input, [`output`] (with [`json`] and
//! [`table`]) prints, [`commands`] runs it all, with [`watch`], [`lease`] and [`elect_lock`]
//! (over the [`concurrency`] recipes) for the long-running commands, [`auth`] for logins and
//! the user and role commands, [`membership`] for the cluster commands and [`maintenance`] for
//! snapshots (with a progress display and the stream's SHA-256 checked, beyond etcdctl),
//! defragmentation and alarms; [`mirror`] copies a cluster into another and follows it,
//! [`check`] runs etcdctl's write-load and memory checks; [`gofmt`] holds the Go-compatible formatting everything above
//! relies on. [`offline`] answers `snapshot status|restore` as etcdctl 3.5 does (a deprecation
//! note, then cairnutl's code) and `defrag --data-dir` as etcdctl 3.4 does.

mod auth;
mod check;
mod cli;
mod commands;
mod concurrency;
mod elect_lock;
mod exit;
mod flags;
mod json;
mod kvops;
mod lease;
mod maintenance;
mod membership;
mod mirror;
mod offline;
mod output;
mod txn;
mod watch;

use cairn_cliout::{gofmt, table};

use clap::Parser as _;
use clap::error::ErrorKind;
use std::io::Write as _;

fn main() {
    let code = run();
    let _ = std::io::stdout().flush();
    std::process::exit(code);
}

fn run() -> i32 {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let parsed = cli::Cli::try_parse_from(&argv).or_else(|e| match e.kind() {
        ErrorKind::UnknownArgument | ErrorKind::ArgumentConflict => cli::command_path_first(&argv)
            .and_then(|moved| cli::Cli::try_parse_from(moved).ok())
            .ok_or(e),
        _ => Err(e),
    });
    let cli = match parsed {
        Ok(cli) => cli,
        Err(e) => {
            return match e.kind() {
                ErrorKind::DisplayHelp
                | ErrorKind::DisplayVersion
                | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
                    let _ = e.print();
                    0
                }
                // pflag/cobra usage errors exit 1.
                _ => {
                    eprintln!("Error: {}", cli::describe_parse_error(&e));
                    exit::EXIT_ERROR
                }
            };
        }
    };
    match commands::run(cli) {
        Ok(()) => 0,
        Err(exit) => {
            let _ = std::io::stdout().flush();
            if let Some(message) = exit.message {
                eprintln!("Error: {message}");
            }
            exit.code
        }
    }
}
