//! Running each command: argument checks, client configuration, the RPCs and printing, in the
//! order etcdctl does them (so the same mistakes fail the same way, with the same exit code).

use crate::auth::{self, Credentials};
use crate::check;
use crate::cli::{
    AlarmCommand, AuthCommand, CheckCommand, Cli, Command, CompactionArgs, DelArgs,
    DowngradeCommand, EndpointCommand, GetArgs, LeaseCommand, MemberCommand, PutArgs, RoleCommand,
    SnapshotCommand, TxnArgs, UserCommand,
};
use crate::elect_lock;
use crate::exit::{EXIT_BAD_CONNECTION, Exit, status_message};
use crate::flags::{self, DelOpts, EnvScope, GetOpts, Globals, PutOpts};
use crate::gofmt::{self, to_std};
use crate::kvops;
use crate::lease;
use crate::maintenance;
use crate::membership;
use crate::mirror;
use crate::offline;
use crate::output::{EpHealth, EpStatus, Format, Printer};
use crate::txn;
use crate::watch;
use cairn_client::AuthChannel;
use cairn_client::Client;
use cairn_proto::etcdserverpb::downgrade_request::DowngradeAction;
use cairn_proto::etcdserverpb::{
    CompactionRequest, MemberListRequest, RangeRequest, StatusRequest, kv_client::KvClient,
};
use clap::{CommandFactory as _, Parser as _};
use std::ffi::OsString;
use std::future::Future;
use std::io::{Read as _, Write as _};
use std::time::{Duration, Instant};
use tokio::runtime::Runtime;

/// The API version `version` reports.
const API_VERSION: &str = "3.6";

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), Exit> {
    let cluster = match &cli.command {
        Some(Command::Endpoint(ep)) => ep.cluster.clone(),
        Some(Command::Defrag(d)) => d.cluster.clone(),
        _ => None,
    };
    let mut g = Globals::from_cli(&cli.global, &cluster)?;
    let Some(command) = cli.command else {
        print_help(&[]);
        return Ok(());
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Exit::error(format!("cannot start the runtime: {e}")))?;
    match command {
        Command::Put(a) => put(&rt, &mut g, &a),
        Command::Get(a) => get(&rt, &mut g, &a),
        Command::Del(a) => del(&rt, &mut g, &a),
        Command::Txn(a) => run_txn(&rt, &mut g, &a),
        Command::Compaction(a) => compaction(&rt, &mut g, &a),
        Command::Endpoint(ep) => match ep.command {
            Some(EndpointCommand::Health(_)) => endpoint_health(&rt, &mut g),
            Some(EndpointCommand::Status(_)) => endpoint_status(&rt, &mut g),
            Some(EndpointCommand::Hashkv(a)) => membership::hashkv(&rt, &mut g, &a),
            // cobra prints a parent command's help for a missing or unknown subcommand.
            Some(EndpointCommand::External(_)) | None => {
                print_help(&["endpoint"]);
                Ok(())
            }
        },
        Command::Member(m) => match m.command {
            Some(MemberCommand::List(_)) => member_list(&rt, &mut g),
            Some(MemberCommand::Add(a)) => membership::add(&rt, &mut g, &a),
            Some(MemberCommand::Remove(a)) => membership::remove(&rt, &mut g, &a),
            Some(MemberCommand::Update(a)) => membership::update(&rt, &mut g, &a),
            Some(MemberCommand::Promote(a)) => membership::promote(&rt, &mut g, &a),
            Some(MemberCommand::External(_)) | None => {
                print_help(&["member"]);
                Ok(())
            }
        },
        Command::Watch(a) => watch::watch(&rt, &mut g, &a),
        Command::MoveLeader(a) => membership::move_leader(&rt, &mut g, &a),
        Command::MakeMirror(a) => mirror::make_mirror(&rt, &mut g, &a),
        Command::Check(c) => match c.command {
            Some(CheckCommand::Perf(a)) => check::perf(&rt, &mut g, &a),
            Some(CheckCommand::Datascale(a)) => check::datascale(&rt, &mut g, &a),
            Some(CheckCommand::External(_)) | None => {
                print_help(&["check"]);
                Ok(())
            }
        },
        Command::Lease(l) => match l.command {
            Some(LeaseCommand::Grant(a)) => lease::grant(&rt, &mut g, &a),
            Some(LeaseCommand::Revoke(a)) => lease::revoke(&rt, &mut g, &a),
            Some(LeaseCommand::Timetolive(a)) => lease::time_to_live(&rt, &mut g, &a),
            Some(LeaseCommand::List(_)) => lease::list(&rt, &mut g),
            Some(LeaseCommand::KeepAlive(a)) => lease::keep_alive_command(&rt, &mut g, &a),
            Some(LeaseCommand::External(_)) | None => {
                print_help(&["lease"]);
                Ok(())
            }
        },
        Command::Auth(x) => match x.command {
            Some(AuthCommand::Enable(a)) => auth::enable(&rt, &mut g, &a),
            Some(AuthCommand::Disable(a)) => auth::disable(&rt, &mut g, &a),
            Some(AuthCommand::Status(a)) => auth::status(&rt, &mut g, &a),
            Some(AuthCommand::External(_)) | None => {
                print_help(&["auth"]);
                Ok(())
            }
        },
        Command::User(u) => match u.command {
            Some(UserCommand::Add(a)) => auth::user_add(&rt, &mut g, &a),
            Some(UserCommand::Delete(a)) => auth::user_delete(&rt, &mut g, &a),
            Some(UserCommand::Get(a)) => auth::user_get(&rt, &mut g, &a),
            Some(UserCommand::List(a)) => auth::user_list(&rt, &mut g, &a),
            Some(UserCommand::Passwd(a)) => auth::user_passwd(&rt, &mut g, &a),
            Some(UserCommand::GrantRole(a)) => auth::user_grant_role(&rt, &mut g, &a),
            Some(UserCommand::RevokeRole(a)) => auth::user_revoke_role(&rt, &mut g, &a),
            Some(UserCommand::External(_)) | None => {
                print_help(&["user"]);
                Ok(())
            }
        },
        Command::Role(r) => match r.command {
            Some(RoleCommand::Add(a)) => auth::role_add(&rt, &mut g, &a),
            Some(RoleCommand::Delete(a)) => auth::role_delete(&rt, &mut g, &a),
            Some(RoleCommand::Get(a)) => auth::role_get(&rt, &mut g, &a),
            Some(RoleCommand::List(a)) => auth::role_list(&rt, &mut g, &a),
            Some(RoleCommand::GrantPermission(a)) => auth::role_grant_permission(&rt, &mut g, &a),
            Some(RoleCommand::RevokePermission(a)) => auth::role_revoke_permission(&rt, &mut g, &a),
            Some(RoleCommand::External(_)) | None => {
                print_help(&["role"]);
                Ok(())
            }
        },
        Command::Snapshot(x) => match x.command {
            Some(SnapshotCommand::Save(a)) => maintenance::snapshot_save(&rt, &mut g, &a),
            Some(SnapshotCommand::Status(a)) => offline::snapshot_status(&g, &a),
            Some(SnapshotCommand::Restore(a)) => offline::snapshot_restore(&a),
            Some(SnapshotCommand::External(_)) | None => {
                print_help(&["snapshot"]);
                Ok(())
            }
        },
        Command::Defrag(a) => maintenance::defrag(&rt, &mut g, &a),
        Command::Downgrade(x) => match x.command {
            Some(DowngradeCommand::Validate(a)) => {
                maintenance::downgrade(&rt, &mut g, DowngradeAction::Validate, &a)
            }
            Some(DowngradeCommand::Enable(a)) => {
                maintenance::downgrade(&rt, &mut g, DowngradeAction::Enable, &a)
            }
            Some(DowngradeCommand::Cancel(a)) => {
                maintenance::downgrade(&rt, &mut g, DowngradeAction::Cancel, &a)
            }
            Some(DowngradeCommand::External(_)) | None => {
                print_help(&["downgrade"]);
                Ok(())
            }
        },
        Command::Alarm(x) => match x.command {
            Some(AlarmCommand::List(a)) => maintenance::alarm_list(&rt, &mut g, &a),
            Some(AlarmCommand::Disarm(a)) => maintenance::alarm_disarm(&rt, &mut g, &a),
            Some(AlarmCommand::External(_)) | None => {
                print_help(&["alarm"]);
                Ok(())
            }
        },
        Command::Elect(a) => elect_lock::elect(&rt, &mut g, &a),
        Command::Lock(a) => elect_lock::lock(&rt, &mut g, &a),
        Command::Version(_) => {
            emit(
                format!(
                    "cairnctl version: {}\nAPI version: {API_VERSION}\n",
                    env!("CARGO_PKG_VERSION")
                )
                .as_bytes(),
            );
            Ok(())
        }
        Command::External(args) => {
            let name = args
                .first()
                .map(|a| a.to_string_lossy().into_owned())
                .unwrap_or_default();
            // cobra reports it with a hint, then etcdctl reports the error again.
            let msg = format!(
                "unknown command {} for \"cairnctl\"",
                gofmt::quote_str(&name)
            );
            emit_err(format!("Error: {msg}\nRun 'cairnctl --help' for usage.\n").as_bytes());
            Err(Exit::error(msg))
        }
    }
}

fn print_help(path: &[&str]) {
    // Parsing "<path> --help" yields the help text with the full usage line.
    let argv = std::iter::once("cairnctl")
        .chain(path.iter().copied())
        .chain(std::iter::once("--help"));
    match Cli::try_parse_from(argv) {
        Err(e) => emit(e.render().to_string().as_bytes()),
        Ok(_) => emit(Cli::command().render_help().to_string().as_bytes()),
    }
}

pub(crate) fn emit(bytes: &[u8]) {
    // A closed stdout (e.g. `| head`) is not an error worth reporting.
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(bytes);
    let _ = out.flush();
}

pub(crate) fn emit_err(bytes: &[u8]) {
    let mut err = std::io::stderr().lock();
    let _ = err.write_all(bytes);
    let _ = err.flush();
}

pub(crate) fn os_bytes(args: &[OsString]) -> Vec<Vec<u8>> {
    args.iter().map(|a| a.as_encoded_bytes().to_vec()).collect()
}

fn read_stdin() -> Vec<u8> {
    let mut buf = Vec::new();
    // Unreadable stdin counts as empty, as etcdctl's argOrStdin treats a read error.
    if std::io::stdin().read_to_end(&mut buf).is_err() {
        buf.clear();
    }
    buf
}

/// What etcdctl does before dialing (`clientConfigFromCmd`): environment variables, `--debug`,
/// TLS sanity, the credentials (asking for the password when `--user` has none) and the output
/// format. DNS discovery is refused here rather than silently ignored.
pub(crate) fn client_config(g: &mut Globals, scope: EnvScope) -> Result<Printer, Exit> {
    let env: Vec<(String, String)> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    for note in g.apply_env(&env, scope) {
        let level = if note.fatal { 'C' } else { 'W' };
        let ts = gofmt::capnslog_timestamp(std::time::SystemTime::now());
        emit_err(format!("{ts} {level} | pkg/flags: {}\n", note.text).as_bytes());
        if note.fatal {
            return Err(Exit::silent(1));
        }
    }
    if g.debug {
        emit_err(g.debug_dump(scope).as_bytes());
    }
    for (flag, value) in [("cert", &g.cert), ("key", &g.key), ("cacert", &g.cacert)] {
        if value.is_empty() && g.changed.contains(flag) {
            return Err(Exit::bad_args(format!(
                "empty string is passed to --{flag} option"
            )));
        }
    }
    if CREDENTIALS.get().is_none() {
        let _ = CREDENTIALS.set(auth::credentials(&g.user, &g.password)?);
    }
    let format = Format::parse(&g.write_out)
        .ok_or_else(|| Exit::bad_feature("unsupported output format"))?;
    let _ = CLIENT_TLS.set(client_tls(g)?);
    if !g.discovery_srv.is_empty() {
        return Err(Exit::error(
            "DNS discovery is not supported by cairnctl yet (--discovery-srv cannot be used)",
        ));
    }
    Ok(Printer::new(format, g.hex))
}

/// The TLS configuration every connection of this run uses (none: plaintext). One command runs
/// per process, and its flags are read once, before anything dials.
static CLIENT_TLS: std::sync::OnceLock<Option<std::sync::Arc<rustls::ClientConfig>>> =
    std::sync::OnceLock::new();

/// The client TLS settings of this run (None: plaintext), once [`client_config`] ran.
pub(crate) fn client_tls_config() -> Option<std::sync::Arc<rustls::ClientConfig>> {
    CLIENT_TLS.get().cloned().flatten()
}

/// Who every connection of this run logs in as (none: no login), set with [`CLIENT_TLS`].
static CREDENTIALS: std::sync::OnceLock<Option<Credentials>> = std::sync::OnceLock::new();

/// etcdctl's rules: TLS when a certificate, key or CA is given, when `--insecure-transport=false`,
/// or for `https://` endpoints; `--insecure-skip-tls-verify` counts only in the first two cases
/// (with plain `https://` endpoints etcdctl still verifies against the system's CAs).
fn client_tls(g: &Globals) -> Result<Option<std::sync::Arc<rustls::ClientConfig>>, Exit> {
    let configured = !g.cert.is_empty() || !g.key.is_empty() || !g.cacert.is_empty();
    let explicit = configured || !g.insecure_transport;
    if !explicit && !g.endpoints.iter().any(|e| e.starts_with("https://")) {
        return Ok(None);
    }
    if g.cert.is_empty() != g.key.is_empty() {
        return Err(Exit::bad_args(format!(
            "KeyFile and CertFile must both be present[key: {}, cert: {}]",
            g.key, g.cert
        )));
    }
    let path = |s: &str| (!s.is_empty()).then(|| std::path::PathBuf::from(s));
    let options = cairn_client::TlsOptions {
        ca_file: path(&g.cacert),
        cert_file: path(&g.cert),
        key_file: path(&g.key),
        skip_verify: explicit && g.insecure_skip_tls_verify,
    };
    options.client_config().map(Some).map_err(Exit::error)
}

/// Connects to the first endpoint that answers, trying them in turn until the caller's deadline
/// (etcdctl's dial is lazy: an unreachable cluster surfaces as the command's deadline expiring),
/// then logs in when credentials were given. clientv3 logs in while it creates the client,
/// within the dial timeout; a refusal or that timeout ends etcdctl at once with exit code 2
/// (`mustClient`), which [`is_login_failure`] tells callers that report errors their own way.
pub(crate) async fn dial(
    endpoints: &[String],
    dial_timeout: gofmt::GoDuration,
) -> Result<Client, Exit> {
    let per_attempt = if dial_timeout > 0 {
        to_std(dial_timeout)
    } else {
        Duration::from_secs(3600)
    };
    let connect = async {
        loop {
            for ep in endpoints {
                if let Ok(Ok(client)) = tokio::time::timeout(
                    per_attempt,
                    Client::connect_one_with(ep, per_attempt, CLIENT_TLS.get().cloned().flatten()),
                )
                .await
                {
                    return client;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let Some(Some(creds)) = CREDENTIALS.get() else {
        return Ok(connect.await);
    };
    let login = async {
        let mut client = connect.await;
        client
            .authenticate(&creds.user, &creds.password)
            .await
            .map(|()| client)
    };
    match tokio::time::timeout(per_attempt, login).await {
        Ok(Ok(client)) => Ok(client),
        Ok(Err(cairn_client::ClientError::Status(s))) => {
            Err(Exit::new(EXIT_BAD_CONNECTION, status_message(&s)))
        }
        Ok(Err(e)) => Err(Exit::new(EXIT_BAD_CONNECTION, e)),
        Err(_) => Err(Exit::new(EXIT_BAD_CONNECTION, "context deadline exceeded")),
    }
}

/// Whether this run logs in (`--user`), known once [`client_config`] ran.
pub(crate) fn has_credentials() -> bool {
    CREDENTIALS.get().is_some_and(Option::is_some)
}

/// Whether a command failed because its client could not log in (see [`dial`]): such a failure
/// ends the command as it is, however the command reports its other errors.
pub(crate) fn is_login_failure(e: &Exit) -> bool {
    e.code == EXIT_BAD_CONNECTION && has_credentials()
}

/// Bounds a command's network work by `--command-timeout`, failing as Go's context does.
pub(crate) async fn timed<T>(
    timeout: gofmt::GoDuration,
    work: impl Future<Output = Result<T, Exit>>,
) -> Result<T, Exit> {
    tokio::time::timeout(to_std(timeout), work)
        .await
        .unwrap_or_else(|_| Err(Exit::error("context deadline exceeded")))
}

fn rpc_error(s: tonic::Status) -> Exit {
    Exit::error(status_message(&s))
}

fn kv_client(c: &Client, g: &Globals) -> KvClient<AuthChannel> {
    let mut kv = c.kv();
    if g.max_request_bytes > 0 {
        kv = kv
            .max_encoding_message_size(usize::try_from(g.max_request_bytes).unwrap_or(usize::MAX));
    }
    if g.max_recv_bytes > 0 {
        kv = kv.max_decoding_message_size(usize::try_from(g.max_recv_bytes).unwrap_or(usize::MAX));
    }
    kv
}

/// Refuses a request larger than the send limit before sending it, with grpc-go's message
/// (tonic would only report a broken HTTP/2 stream).
fn check_send_size(g: &Globals, request: &impl prost::Message) -> Result<(), Exit> {
    let max = match g.max_request_bytes {
        0 => cairn_client::MAX_SEND_BYTES,
        n => usize::try_from(n).unwrap_or(usize::MAX),
    };
    let len = request.encoded_len();
    if len > max {
        return Err(Exit::error(format!(
            "rpc error: code = ResourceExhausted desc = trying to send message larger than max ({len} vs. {max})"
        )));
    }
    Ok(())
}

/// Runs one KV call against the configured endpoints within the command timeout.
fn kv_call<T, F, Fut>(rt: &Runtime, g: &Globals, call: F) -> Result<T, Exit>
where
    F: FnOnce(KvClient<AuthChannel>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    rt.block_on(timed(g.command_timeout, async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        call(kv_client(&client, g))
            .await
            .map(tonic::Response::into_inner)
            .map_err(rpc_error)
    }))
}

fn put(rt: &Runtime, g: &mut Globals, a: &PutArgs) -> Result<(), Exit> {
    let o = PutOpts::from_cli(a).map_err(Exit::error)?;
    let req = kvops::put_request(&os_bytes(&a.args), &o, read_stdin)?;
    let printer = client_config(g, EnvScope::Global)?;
    check_send_size(g, &req)?;
    let resp = kv_call(rt, g, |mut kv| async move { kv.put(req).await })?;
    emit(&printer.put(&resp)?);
    Ok(())
}

fn get(rt: &Runtime, g: &mut Globals, a: &GetArgs) -> Result<(), Exit> {
    let o = GetOpts::from_cli(a).map_err(Exit::error)?;
    let req = kvops::get_request(&os_bytes(&a.args), &o)?;
    let mut printer = client_config(g, EnvScope::Global)?;
    check_send_size(g, &req)?;
    let resp = kv_call(rt, g, |mut kv| async move { kv.range(req).await })?;
    if o.count_only && printer.format != Format::Fields {
        return Err(Exit::bad_args(
            "--count-only is only for `--write-out=fields`",
        ));
    }
    if o.print_value_only {
        if printer.format != Format::Simple {
            return Err(Exit::bad_args(
                "print-value-only is only for `--write-out=simple`",
            ));
        }
        printer.value_only = true;
    }
    emit(&printer.get(&resp)?);
    Ok(())
}

fn del(rt: &Runtime, g: &mut Globals, a: &DelArgs) -> Result<(), Exit> {
    let o: DelOpts = DelOpts::from_cli(a).map_err(Exit::error)?;
    let req = kvops::del_request(&os_bytes(&a.args), &o)?;
    let printer = client_config(g, EnvScope::Global)?;
    check_send_size(g, &req)?;
    let resp = kv_call(rt, g, |mut kv| async move { kv.delete_range(req).await })?;
    emit(&printer.del(&resp)?);
    Ok(())
}

fn run_txn(rt: &Runtime, g: &mut Globals, a: &TxnArgs) -> Result<(), Exit> {
    let interactive = flags::flag_bool(&a.interactive, "interactive").map_err(Exit::error)?;
    if !a.args.is_empty() {
        return Err(Exit::bad_args("txn command does not accept argument"));
    }
    // etcdctl builds its client (and so checks the environment and output format) before it
    // reads the transaction.
    let printer = client_config(g, EnvScope::Global)?;
    // With credentials that includes logging in, so a refused login comes before any prompt.
    let client = match CREDENTIALS.get() {
        Some(Some(_)) => Some(rt.block_on(timed(g.command_timeout, async {
            dial(&g.endpoints, g.dial_timeout).await
        }))?),
        _ => None,
    };
    let req = {
        let stdin = std::io::stdin();
        let mut input = stdin.lock();
        let mut prompt = std::io::stdout();
        txn::read_txn(&mut input, interactive, &mut prompt)?
    };
    check_send_size(g, &req)?;
    let resp = rt.block_on(timed(g.command_timeout, async {
        let client = match client {
            Some(c) => c,
            None => dial(&g.endpoints, g.dial_timeout).await?,
        };
        kv_client(&client, g)
            .txn(req)
            .await
            .map(tonic::Response::into_inner)
            .map_err(rpc_error)
    }))?;
    emit(&printer.txn(&resp)?);
    Ok(())
}

fn compaction(rt: &Runtime, g: &mut Globals, a: &CompactionArgs) -> Result<(), Exit> {
    let physical = flags::compaction_physical(a).map_err(Exit::error)?;
    if a.args.len() != 1 {
        return Err(Exit::bad_args("compaction command needs 1 argument"));
    }
    let rev = gofmt::parse_int(&a.args[0].to_string_lossy(), 10).map_err(Exit::error)?;
    client_config(g, EnvScope::Global)?;
    let req = CompactionRequest {
        revision: rev,
        physical,
    };
    kv_call(rt, g, |mut kv| async move { kv.compact(req).await })?;
    emit(format!("compacted revision {rev}\n").as_bytes());
    Ok(())
}

fn member_list(rt: &Runtime, g: &mut Globals) -> Result<(), Exit> {
    let printer = client_config(g, EnvScope::Global)?;
    let resp = rt.block_on(timed(g.command_timeout, async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        client
            .cluster()
            .member_list(MemberListRequest::default())
            .await
            .map(tonic::Response::into_inner)
            .map_err(rpc_error)
    }))?;
    emit(&printer.member_list(&resp)?);
    Ok(())
}

/// `--endpoints`, or with `--cluster` every member's client URLs.
pub(crate) fn target_endpoints(rt: &Runtime, g: &Globals) -> Result<Vec<String>, Exit> {
    if !g.cluster {
        return Ok(g.endpoints.clone());
    }
    let resp = rt
        .block_on(timed(g.command_timeout, async {
            let client = dial(&g.endpoints, g.dial_timeout).await?;
            client
                .cluster()
                .member_list(MemberListRequest::default())
                .await
                .map(tonic::Response::into_inner)
                .map_err(rpc_error)
        }))
        .map_err(|e| {
            if is_login_failure(&e) {
                return e;
            }
            Exit::error(format!(
                "failed to fetch endpoints from etcd cluster member list: {}",
                e.message.unwrap_or_default()
            ))
        })?;
    Ok(resp
        .members
        .into_iter()
        .flat_map(|m| m.client_ur_ls)
        .collect())
}

fn endpoint_health(rt: &Runtime, g: &mut Globals) -> Result<(), Exit> {
    let printer = client_config(g, EnvScope::Endpoint)?;
    let endpoints = target_endpoints(rt, g)?;
    let (dial_timeout, command_timeout) = (g.dial_timeout, g.command_timeout);
    let list = rt.block_on(async move {
        let mut checks = tokio::task::JoinSet::new();
        for ep in endpoints {
            checks.spawn(check_health(ep, dial_timeout, command_timeout));
        }
        // Reported in completion order, as etcdctl collects them from its goroutines.
        let mut list = Vec::new();
        while let Some(done) = checks.join_next().await {
            if let Ok(h) = done {
                list.push(h);
            }
        }
        list
    });
    let printed = printer.endpoint_health(&list)?;
    emit(&printed.out);
    emit_err(&printed.err);
    if list.iter().any(|h| !h.health) {
        return Err(Exit::error("unhealthy cluster"));
    }
    Ok(())
}

/// etcdctl 3.4's health check: a linearizable read of "health" succeeds (permission denied
/// counts too: the request still went through consensus). etcdctl 3.5 also fails on active
/// alarms; 3.4 does not look at them (its AlarmList would even add a raft entry per check).
async fn check_health(
    ep: String,
    dial_timeout: gofmt::GoDuration,
    command_timeout: gofmt::GoDuration,
) -> EpHealth {
    let start = Instant::now();
    // A client that cannot log in makes the endpoint unhealthy, with the login's error.
    let read = tokio::time::timeout(to_std(command_timeout), async {
        let client = dial(std::slice::from_ref(&ep), dial_timeout)
            .await
            .map_err(|e| e.message.unwrap_or_default())?;
        match client
            .kv()
            .range(RangeRequest {
                key: "health".into(),
                ..Default::default()
            })
            .await
        {
            Ok(_) => Ok(()),
            Err(s) if s.message() == "etcdserver: permission denied" => Ok(()),
            Err(s) => Err(status_message(&s)),
        }
    })
    .await;
    let took =
        gofmt::format_duration(i64::try_from(start.elapsed().as_nanos()).unwrap_or(i64::MAX));
    let error = match read {
        Err(_) => "context deadline exceeded".to_string(),
        Ok(Ok(())) => String::new(),
        Ok(Err(e)) => e,
    };
    EpHealth {
        ep,
        health: error.is_empty(),
        took,
        error,
    }
}

/// Asks each endpoint in turn with `call`; an endpoint that fails is reported on stderr as
/// etcdctl reports it ("Failed to get the <what> of endpoint …") and the others still answer.
/// Returns the answers and whether any endpoint failed; a client that cannot log in ends the
/// command (etcdctl creates one client for all the endpoints, before asking any).
pub(crate) fn each_endpoint<T, F, Fut>(
    rt: &Runtime,
    g: &Globals,
    endpoints: Vec<String>,
    what: &str,
    call: F,
) -> Result<(Vec<(String, T)>, bool), Exit>
where
    F: Fn(Client) -> Fut,
    Fut: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
{
    let mut list = Vec::new();
    let mut failed = false;
    for ep in endpoints {
        let res = rt.block_on(timed(g.command_timeout, async {
            let client = dial(std::slice::from_ref(&ep), g.dial_timeout).await?;
            call(client)
                .await
                .map(tonic::Response::into_inner)
                .map_err(rpc_error)
        }));
        match res {
            Ok(resp) => list.push((ep, resp)),
            Err(e) if is_login_failure(&e) => return Err(e),
            Err(e) => {
                failed = true;
                emit_err(
                    format!(
                        "Failed to get the {what} of endpoint {ep} ({})\n",
                        e.message.unwrap_or_default()
                    )
                    .as_bytes(),
                );
            }
        }
    }
    Ok((list, failed))
}

fn endpoint_status(rt: &Runtime, g: &mut Globals) -> Result<(), Exit> {
    let printer = client_config(g, EnvScope::Endpoint)?;
    let endpoints = target_endpoints(rt, g)?;
    let (answers, failed) = each_endpoint(rt, g, endpoints, "status", |c| async move {
        c.maintenance().status(StatusRequest {}).await
    })?;
    let list: Vec<EpStatus> = answers
        .into_iter()
        .map(|(ep, resp)| EpStatus { ep, resp })
        .collect();
    emit(&printer.endpoint_status(&list)?);
    if failed {
        return Err(Exit::silent(1));
    }
    Ok(())
}
