//! `elect` and `lock`: etcdctl's commands over the [`crate::concurrency`] recipes, including
//! how they end: on SIGINT/SIGTERM they resign or unlock and exit 0, while still waiting they
//! give up with "context canceled", and a lost session is an error.

use crate::cli::{ElectArgs, LockArgs};
use crate::commands::{client_config, dial, emit, os_bytes};
use crate::concurrency::{DEFAULT_SESSION_TTL, Election, Mutex, Session};
use crate::exit::{EXIT_ERROR, Exit};
use crate::flags::{self, EnvScope, Globals};
use crate::lease::first_keep_alive_timeout;
use crate::output::Printer;
use crate::watch::{go_exit_error, go_spawn_error};
use bytes::Bytes;
use cairn_client::Client;
use cairn_proto::etcdserverpb::{RangeRequest, RangeResponse};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use tokio::runtime::Runtime;
use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::mpsc;

const CANCELED: &str = "context canceled";

/// SIGINT and SIGTERM, caught (so they no longer kill the process) from creation on.
struct Interrupts {
    int: Signal,
    term: Signal,
}

impl Interrupts {
    fn new() -> Result<Interrupts, Exit> {
        let catch =
            |kind| signal(kind).map_err(|e| Exit::error(format!("cannot catch signals: {e}")));
        Ok(Interrupts {
            int: catch(SignalKind::interrupt())?,
            term: catch(SignalKind::terminate())?,
        })
    }

    async fn recv(&mut self) {
        tokio::select! {
            _ = self.int.recv() => {}
            _ = self.term.recv() => {}
        }
    }
}

async fn get(client: &Client, key: Vec<u8>) -> Result<RangeResponse, Exit> {
    client
        .kv()
        .range(RangeRequest {
            key: Bytes::from(key),
            ..Default::default()
        })
        .await
        .map(tonic::Response::into_inner)
        .map_err(|s| Exit::error(crate::exit::status_message(&s)))
}

/// `elect <election-name> [proposal]` and `elect -l <election-name>`.
pub fn elect(rt: &Runtime, g: &mut Globals, a: &ElectArgs) -> Result<(), Exit> {
    let listen = flags::flag_bool(&a.listen, "listen").map_err(Exit::error)?;
    let args = os_bytes(&a.args);
    if args.len() != 1 && args.len() != 2 {
        return Err(Exit::bad_args(
            "elect takes one election name argument and an optional proposal argument",
        ));
    }
    let printer = client_config(g, EnvScope::Global)?;
    let first_timeout = first_keep_alive_timeout(g.dial_timeout);
    match args.as_slice() {
        [name] => {
            if !listen {
                return Err(Exit::bad_args("no proposal argument but -l not set"));
            }
            rt.block_on(async {
                let client = dial(&g.endpoints, g.dial_timeout).await?;
                observe(&client, printer, name, first_timeout).await
            })
        }
        [name, proposal] => {
            if listen {
                return Err(Exit::bad_args("proposal given but -l is set"));
            }
            rt.block_on(async {
                let client = dial(&g.endpoints, g.dial_timeout).await?;
                campaign(&client, printer, name, proposal, first_timeout).await
            })
        }
        _ => Ok(()),
    }
}

async fn observe(
    client: &Client,
    printer: Printer,
    name: &[u8],
    first_timeout: std::time::Duration,
) -> Result<(), Exit> {
    // etcdctl opens a session even to observe.
    let session = Session::new(client, DEFAULT_SESSION_TTL, first_timeout)
        .await
        .map_err(Exit::error)?;
    let election = Election::new(client, name, session.lease);
    let mut interrupts = Interrupts::new()?;
    let (tx, mut rx) = mpsc::channel(1);
    let observer = tokio::spawn(async move { election.observe(tx).await });
    let result = loop {
        tokio::select! {
            _ = interrupts.recv() => break Ok(()),
            resp = rx.recv() => match resp {
                Some(resp) => {
                    if let Err(e) = printer.get(&resp).map(|out| emit(&out)) {
                        break Err(e);
                    }
                }
                None => break Err(Exit::error("elect: observer lost")),
            },
        }
    };
    observer.abort();
    result
}

async fn campaign(
    client: &Client,
    printer: Printer,
    name: &[u8],
    proposal: &[u8],
    first_timeout: std::time::Duration,
) -> Result<(), Exit> {
    let mut session = Session::new(client, DEFAULT_SESSION_TTL, first_timeout)
        .await
        .map_err(Exit::error)?;
    let mut election = Election::new(client, name, session.lease);
    let mut interrupts = Interrupts::new()?;
    let won = tokio::select! {
        r = election.campaign(proposal) => r,
        _ = interrupts.recv() => Err(CANCELED.to_string()),
    };
    if let Err(e) = won {
        // Interrupted while queued: leave the queue, as clientv3 does for a cancelled campaign.
        if e == CANCELED && election.is_candidate() {
            let _ = election.resign().await;
        }
        return Err(Exit::error(e));
    }
    let resp = get(client, election.key()).await?;
    emit(&printer.get(&resp)?);
    tokio::select! {
        _ = interrupts.recv() => {}
        _ = session.done() => return Err(Exit::error("elect: session expired")),
    }
    election.resign().await.map_err(Exit::error)
}

/// `lock [--ttl 10] <lockname> [exec-command arg1 arg2 ...]`.
pub fn lock(rt: &Runtime, g: &mut Globals, a: &LockArgs) -> Result<(), Exit> {
    let ttl = match &a.ttl {
        None => 10,
        Some(_) => flags::flag_int(&a.ttl, "ttl").map_err(Exit::error)?,
    };
    let args = os_bytes(&a.args);
    let Some((name, command)) = args.split_first() else {
        return Err(Exit::bad_args(
            "lock takes a lock name argument and an optional command to execute",
        ));
    };
    let printer = client_config(g, EnvScope::Global)?;
    let first_timeout = first_keep_alive_timeout(g.dial_timeout);
    rt.block_on(async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        lock_until_signal(&client, printer, name, command, ttl, first_timeout).await
    })
}

async fn lock_until_signal(
    client: &Client,
    printer: Printer,
    name: &[u8],
    command: &[Vec<u8>],
    ttl: i64,
    first_timeout: std::time::Duration,
) -> Result<(), Exit> {
    let mut session = Session::new(client, ttl, first_timeout)
        .await
        .map_err(Exit::error)?;
    let mut mutex = Mutex::new(client, name, session.lease);
    let mut interrupts = Interrupts::new()?;
    let locked = tokio::select! {
        r = mutex.lock() => r,
        _ = interrupts.recv() => Err(CANCELED.to_string()),
    };
    if let Err(e) = locked {
        if e == CANCELED && mutex.is_queued() {
            let _ = mutex.unlock().await;
        }
        return Err(Exit::error(e));
    }

    if let Some((program, args)) = command.split_first() {
        // SIGINT/SIGTERM stay caught while the command runs: it finishes, then the lock is
        // released.
        let outcome = run_locked(&mutex, program, args).await;
        let unlocked = mutex.unlock().await;
        return match outcome {
            Err(e) => Err(Exit::new(e.code, e.message)),
            Ok(()) => unlocked.map_err(Exit::error),
        };
    }

    let resp = get(client, mutex.key()).await?;
    if resp.kvs.is_empty() {
        return Err(Exit::error("lock lost on init"));
    }
    emit(&printer.get(&resp)?);
    tokio::select! {
        _ = interrupts.recv() => mutex.unlock().await.map_err(Exit::error),
        _ = session.done() => Err(Exit::error("session expired")),
    }
}

/// Why the locked command failed and the exit code to pass on.
struct Failed {
    message: String,
    code: i32,
}

/// Runs the command with `ETCD_LOCK_KEY` and `ETCD_LOCK_REV` (unless the environment already
/// has them: Go keeps the last of duplicate variables, and etcdctl puts its own first).
async fn run_locked(mutex: &Mutex, program: &[u8], args: &[Vec<u8>]) -> Result<(), Failed> {
    let mut cmd = tokio::process::Command::new(OsString::from_vec(program.to_vec()));
    cmd.args(args.iter().cloned().map(OsString::from_vec));
    let lock_env = [
        ("ETCD_LOCK_KEY", OsString::from_vec(mutex.key())),
        (
            "ETCD_LOCK_REV",
            OsString::from(mutex.header().revision.to_string()),
        ),
    ];
    for (k, v) in lock_env {
        if std::env::var_os(k).is_none() {
            cmd.env(k, v);
        }
    }
    match cmd.status().await {
        Err(e) => Err(Failed {
            message: go_spawn_error(program, &e),
            code: EXIT_ERROR,
        }),
        Ok(status) => match go_exit_error(status) {
            None => Ok(()),
            // etcdctl 3.5 passes on the command's exit code (255 for a signal, Go's -1).
            Some(message) => Err(Failed {
                message,
                code: status.code().unwrap_or(255),
            }),
        },
    }
}
