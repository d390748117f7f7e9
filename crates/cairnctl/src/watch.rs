//! `watch`: etcdctl's argument rules (the `--` exec command, `ETCDCTL_WATCH_KEY` and
//! `ETCDCTL_WATCH_RANGE_END`, interactive `watch ...` lines), a watch stream that behaves like
//! clientv3's (resumes after transport errors, hides "created" responses, ends on cancel), and
//! `printWatchCh`'s per-response printing and command execution.

use crate::cli::{WatchArgs, WatchLine};
use crate::commands::{client_config, dial, emit, emit_err, os_bytes};
use crate::exit::{EXIT_INTERRUPTED, Exit, status_message};
use crate::flags::{EnvScope, Globals};
use crate::gofmt;
use crate::output::Printer;
use crate::txn;
use bytes::Bytes;
use cairn_client::{Client, prefix_end};
use cairn_proto::etcdserverpb::{
    ResponseHeader, WatchCreateRequest, WatchProgressRequest, WatchRequest,
    watch_request::RequestUnion,
};
use cairn_proto::mvccpb::Event;
use clap::Parser as _;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt as _;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnboundedReceiverStream;

const ERR_BAD_ARGS_NUM: &str = "bad number of arguments";
const ERR_CONFLICT_ENV: &str = "bad number of arguments (found conflicting environment key)";
const ERR_SEPARATOR: &str = "bad number of arguments (found separator --, but no commands)";
const ERR_INTERACTIVE_WATCH: &str = "args[0] must be 'watch' for interactive calls";
const ERR_PREFIX_RANGE: &str = "`range_end` and `--prefix` are mutually exclusive";

/// How long to wait before reopening a watch stream that broke (clientv3 retries about as often).
const RETRY_DELAY: Duration = Duration::from_millis(500);

/// clientv3's `WatchResponse`: what etcdctl prints for each response it receives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WatchResp {
    pub header: ResponseHeader,
    pub events: Vec<Event>,
    /// Go's nil slice: only a response clientv3 makes up itself (a closed stream) has no events
    /// slice at all, which JSON shows as `null` instead of `[]`.
    pub events_nil: bool,
    pub compact_revision: i64,
    pub canceled: bool,
    pub created: bool,
    /// The error that closed the stream, as clientv3 reports it.
    pub close_err: Option<String>,
}

impl WatchResp {
    /// clientv3's `IsProgressNotify`.
    pub fn is_progress_notify(&self) -> bool {
        self.events.is_empty()
            && !self.canceled
            && !self.created
            && self.compact_revision == 0
            && self.header.revision != 0
    }

    /// clientv3's `Err`: why the watch ended, if it did.
    pub fn err(&self) -> Option<String> {
        if let Some(e) = &self.close_err {
            return Some(e.clone());
        }
        if self.compact_revision != 0 {
            return Some("etcdserver: mvcc: required revision has been compacted".into());
        }
        if self.canceled {
            return Some("etcdserver: mvcc: required revision is a future revision".into());
        }
        None
    }
}

/// The watch flags of one request: the command line's, or one interactive line's.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WatchOpts {
    pub interactive: bool,
    pub prefix: bool,
    pub rev: i64,
    pub prev_kv: bool,
    pub progress_notify: bool,
}

impl WatchOpts {
    pub fn from_cli(a: &WatchArgs) -> Result<WatchOpts, String> {
        Ok(WatchOpts {
            interactive: crate::flags::flag_bool(&a.interactive, "interactive")?,
            prefix: crate::flags::flag_bool(&a.prefix, "prefix")?,
            rev: crate::flags::flag_int(&a.rev, "rev")?,
            prev_kv: crate::flags::flag_bool(&a.prev_kv, "prev-kv")?,
            progress_notify: crate::flags::flag_bool(&a.progress_notify, "progress-notify")?,
        })
    }
}

/// A watch to start and the command to run for each of its events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedWatch {
    pub args: Vec<Vec<u8>>,
    pub exec: Vec<Vec<u8>>,
}

/// etcdctl drops the watch arguments from the first word equal to the command's first word
/// (scanning from the end), so `watch k -- echo echo` watches [k, "echo").
fn truncate_at_exec(watch_args: &mut Vec<Vec<u8>>, first_exec: &[u8]) {
    let end = watch_args
        .iter()
        .rposition(|a| a == first_exec)
        .unwrap_or(0);
    watch_args.truncate(end);
}

fn with_env_key(env_key: &[u8], env_range: &[u8], args: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    if env_key.is_empty() {
        return args;
    }
    let mut out = vec![env_key.to_vec()];
    if !env_range.is_empty() {
        out.push(env_range.to_vec());
    }
    out.extend(args);
    out
}

/// etcdctl's `parseWatchArgs` for the command line. `os_args` is the whole argv (etcdctl looks
/// for `--` in it, as cobra drops that word from `command_args`).
pub fn parse_command_line(
    os_args: &[Vec<u8>],
    command_args: &[Vec<u8>],
    env_key: &[u8],
    env_range: &[u8],
) -> Result<ParsedWatch, String> {
    let raw: &[Vec<u8>] = match os_args.iter().position(|a| a == b"watch") {
        Some(i) => &os_args[i + 1..],
        None => os_args,
    };
    let exec_idx = raw.iter().position(|a| a == b"--");
    if let Some(i) = exec_idx
        && i + 1 == raw.len()
    {
        return Err(ERR_SEPARATOR.into());
    }
    if exec_idx.is_none() && raw.is_empty() && env_key.is_empty() {
        return Err(ERR_BAD_ARGS_NUM.into());
    }
    if let Some(ei) = exec_idx
        && !env_key.is_empty()
    {
        // A watch argument before `--` would be a second key besides the environment's.
        let mut ridx = raw.len() as isize - 1;
        for w in command_args.iter().rev() {
            if ridx >= 0 && raw.get(ridx as usize) == Some(w) {
                ridx -= 1;
                continue;
            }
            if ridx == ei as isize {
                return Err(ERR_CONFLICT_ENV.into());
            }
        }
    }
    if exec_idx.is_none() && !command_args.is_empty() && !env_key.is_empty() {
        return Err(ERR_CONFLICT_ENV.into());
    }
    let exec: Vec<Vec<u8>> = exec_idx.map(|i| raw[i + 1..].to_vec()).unwrap_or_default();
    let mut args = with_env_key(env_key, env_range, command_args.to_vec());
    if let Some(first) = exec.first() {
        truncate_at_exec(&mut args, first);
    }
    Ok(ParsedWatch { args, exec })
}

/// The watch flags of an interactive line (pflag over the watch command's own flags only).
fn parse_line_flags(words: &[Vec<u8>]) -> Result<(WatchOpts, Vec<Vec<u8>>), String> {
    let os: Vec<OsString> = words.iter().cloned().map(OsString::from_vec).collect();
    // The watch command's flag set has no help flag of its own (cobra adds it only when it
    // runs a command), so pflag answers a help request with this error.
    if words
        .iter()
        .take_while(|w| w.as_slice() != b"--")
        .any(|w| w.as_slice() == b"-h" || w.as_slice() == b"--help")
    {
        return Err("pflag: help requested".into());
    }
    let line = WatchLine::try_parse_from(os).map_err(|e| crate::cli::describe_parse_error(&e))?;
    let opts = WatchOpts::from_cli(&line.watch)?;
    Ok((opts, os_bytes(&line.watch.args)))
}

/// etcdctl's `parseWatchArgs` for an interactive line, already split into words (the first
/// being "watch"). Returns the watch, its command and the line's own flags.
pub fn parse_interactive_line(
    words: &[Vec<u8>],
    env_key: &[u8],
    env_range: &[u8],
) -> Result<(ParsedWatch, WatchOpts), String> {
    let Some((first, rest)) = words.split_first() else {
        return Err(ERR_INTERACTIVE_WATCH.into());
    };
    if first.as_slice() != b"watch" {
        return Err(ERR_INTERACTIVE_WATCH.into());
    }
    let sep = rest.iter().position(|a| a == b"--");
    if let Some(i) = sep
        && i + 1 == rest.len()
    {
        return Err(ERR_SEPARATOR.into());
    }
    let (opts, positional) = parse_line_flags(rest)?;
    if sep.is_none() && env_key.is_empty() && positional.is_empty() {
        return Err(ERR_BAD_ARGS_NUM.into());
    }
    if sep.is_none() && !positional.is_empty() && !env_key.is_empty() {
        return Err(ERR_CONFLICT_ENV.into());
    }
    let exec: Vec<Vec<u8>> = sep.map(|i| rest[i + 1..].to_vec()).unwrap_or_default();
    let mut args = with_env_key(env_key, env_range, positional);
    if let Some(first) = exec.first() {
        truncate_at_exec(&mut args, first);
    }
    Ok((ParsedWatch { args, exec }, opts))
}

/// etcdctl's `getWatchChan`: the create request for `args` (only a second argument counts as
/// the range end; later ones are ignored, as in etcdctl).
pub fn create_request(args: &[Vec<u8>], o: &WatchOpts) -> Result<WatchCreateRequest, String> {
    let Some(first) = args.first() else {
        return Err(ERR_BAD_ARGS_NUM.into());
    };
    let mut key = first.clone();
    let mut end = Vec::new();
    if args.len() == 2 {
        if o.prefix {
            return Err(ERR_PREFIX_RANGE.into());
        }
        end = args[1].clone();
    }
    if o.prefix {
        if key.is_empty() {
            key = vec![0];
            end = vec![0];
        } else {
            end = prefix_end(&key);
        }
    }
    Ok(WatchCreateRequest {
        key: Bytes::from(key),
        range_end: Bytes::from(end),
        start_revision: o.rev,
        progress_notify: o.progress_notify,
        prev_kv: o.prev_kv,
        ..Default::default()
    })
}

/// A running watch. Responses arrive on `rx`, which closes when the watch ends; a message on
/// `progress` asks the server for a progress notification (clientv3's `RequestProgress`);
/// dropping the handle cancels the watch.
pub struct WatchHandle {
    pub rx: UnboundedReceiver<WatchResp>,
    progress: UnboundedSender<()>,
    task: JoinHandle<()>,
}

impl WatchHandle {
    /// `require_leader` sends etcd's `hasleader` metadata, as etcdctl's watch command does.
    pub fn start(client: &Client, req: WatchCreateRequest, require_leader: bool) -> WatchHandle {
        let (tx, rx) = unbounded_channel();
        let (progress, progress_rx) = unbounded_channel();
        let task = tokio::spawn(run_stream(
            client.clone(),
            req,
            require_leader,
            tx,
            progress_rx,
        ));
        WatchHandle { rx, progress, task }
    }
}

impl Drop for WatchHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Errors after which clientv3 reopens the stream instead of giving up (its `isHaltErr`, plus
/// the transport failures tonic reports as Unknown).
fn retryable(s: &tonic::Status) -> bool {
    use tonic::Code;
    match s.code() {
        Code::Unavailable | Code::Internal => true,
        Code::Unknown => !s.message().starts_with("etcdserver: "),
        _ => false,
    }
}

fn closed_by(err: String) -> WatchResp {
    WatchResp {
        canceled: true,
        close_err: Some(err),
        events_nil: true,
        ..Default::default()
    }
}

/// One watch on its own gRPC stream, reopened from the next unseen revision whenever the stream
/// breaks, until the server cancels it or the receiver goes away.
async fn run_stream(
    client: Client,
    req: WatchCreateRequest,
    require_leader: bool,
    tx: UnboundedSender<WatchResp>,
    mut progress_rx: UnboundedReceiver<()>,
) {
    let mut next_rev = req.start_revision;
    let mut progress_open = true;
    loop {
        let (req_tx, req_rx) = unbounded_channel();
        let create = WatchCreateRequest {
            start_revision: next_rev,
            ..req.clone()
        };
        let _ = req_tx.send(WatchRequest {
            request_union: Some(RequestUnion::CreateRequest(create)),
        });
        let mut request = tonic::Request::new(UnboundedReceiverStream::new(req_rx));
        if require_leader {
            request.metadata_mut().insert(
                "hasleader",
                tonic::metadata::MetadataValue::from_static("true"),
            );
        }
        let mut stream = match client.watch().watch(request).await {
            Ok(r) => r.into_inner(),
            Err(s) if retryable(&s) => {
                tokio::time::sleep(RETRY_DELAY).await;
                continue;
            }
            Err(s) => {
                let _ = tx.send(closed_by(status_message(&s)));
                return;
            }
        };
        // Events of a fragmented response, until its last part arrives.
        let mut fragments: Vec<Event> = Vec::new();
        loop {
            let msg = tokio::select! {
                msg = stream.message() => msg,
                p = progress_rx.recv(), if progress_open => {
                    match p {
                        Some(()) => {
                            let _ = req_tx.send(WatchRequest {
                                request_union: Some(RequestUnion::ProgressRequest(
                                    WatchProgressRequest {},
                                )),
                            });
                        }
                        None => progress_open = false,
                    }
                    continue;
                }
                _ = tx.closed() => return,
            };
            let mut r = match msg {
                Ok(Some(r)) => r,
                Ok(None) => {
                    let _ = tx.send(closed_by("EOF".into()));
                    return;
                }
                Err(s) if retryable(&s) => break,
                Err(s) => {
                    let _ = tx.send(closed_by(status_message(&s)));
                    return;
                }
            };
            if r.fragment {
                fragments.append(&mut r.events);
                continue;
            }
            if !fragments.is_empty() {
                fragments.append(&mut r.events);
                r.events = std::mem::take(&mut fragments);
            }
            let header = r.header.unwrap_or_default();
            if r.created {
                // clientv3 keeps "created" to itself (a refused create included: the watch then
                // just never delivers anything, as with etcdctl).
                if next_rev == 0 {
                    next_rev = header.revision + 1;
                }
                continue;
            }
            if r.canceled && r.compact_revision == 0 {
                // clientv3 closes the channel without delivering the cancellation.
                return;
            }
            next_rev = match r.events.last() {
                Some(ev) => ev.kv.as_ref().map(|kv| kv.mod_revision).unwrap_or(0) + 1,
                None => header.revision + 1,
            };
            let compacted = r.compact_revision != 0;
            let delivered = WatchResp {
                header,
                events: r.events,
                events_nil: false,
                compact_revision: r.compact_revision,
                canceled: r.canceled,
                created: false,
                close_err: None,
            };
            if tx.send(delivered).is_err() || compacted {
                return;
            }
        }
        tokio::time::sleep(RETRY_DELAY).await;
    }
}

/// Go's `exec.Cmd` error text for a command that could not start.
pub fn go_spawn_error(program: &[u8], e: &std::io::Error) -> String {
    let name = String::from_utf8_lossy(program);
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => "no such file or directory".to_string(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        _ => e.to_string(),
    };
    if !program.contains(&b'/') && e.kind() == std::io::ErrorKind::NotFound {
        return format!(
            "exec: {}: executable file not found in $PATH",
            gofmt::quote_str(&name)
        );
    }
    format!("fork/exec {name}: {reason}")
}

/// Go's `*exec.ExitError` text for a command that ran and failed; `None` for success.
pub fn go_exit_error(status: std::process::ExitStatus) -> Option<String> {
    use std::os::unix::process::ExitStatusExt as _;
    if status.success() {
        return None;
    }
    if let Some(code) = status.code() {
        return Some(format!("exit status {code}"));
    }
    let sig = status.signal().unwrap_or(0);
    let name = match sig {
        1 => "hangup".to_string(),
        2 => "interrupt".to_string(),
        3 => "quit".to_string(),
        6 => "aborted".to_string(),
        9 => "killed".to_string(),
        11 => "segmentation fault".to_string(),
        13 => "broken pipe".to_string(),
        15 => "terminated".to_string(),
        n => format!("signal {n}"),
    };
    Some(format!("signal: {name}"))
}

/// The environment etcdctl gives a watch's command for one event.
pub fn exec_env(resp: &WatchResp, ev: &Event) -> Vec<(String, String)> {
    let kv = ev.kv.clone().unwrap_or_default();
    let kind = match ev.r#type {
        0 => "PUT".to_string(),
        1 => "DELETE".to_string(),
        n => n.to_string(),
    };
    vec![
        (
            "ETCD_WATCH_REVISION".into(),
            resp.header.revision.to_string(),
        ),
        ("ETCD_WATCH_EVENT_TYPE".into(), gofmt::quote_str(&kind)),
        ("ETCD_WATCH_KEY".into(), gofmt::quote(&kv.key)),
        ("ETCD_WATCH_VALUE".into(), gofmt::quote(&kv.value)),
    ]
}

/// Runs `exec` once for `ev`, as etcdctl does: output goes to ours, a failure ends etcdctl.
async fn run_exec(exec: &[Vec<u8>], resp: &WatchResp, ev: &Event) -> Result<(), Exit> {
    let Some((program, args)) = exec.split_first() else {
        return Ok(());
    };
    let mut cmd = tokio::process::Command::new(OsString::from_vec(program.clone()));
    cmd.args(args.iter().cloned().map(OsString::from_vec))
        .envs(exec_env(resp, ev))
        .stdin(std::process::Stdio::null());
    let failure = match cmd.status().await {
        Ok(status) => go_exit_error(status),
        Err(e) => Some(go_spawn_error(program, &e)),
    };
    match failure {
        None => Ok(()),
        Some(err) => {
            let shown: Vec<String> = exec.iter().map(|a| gofmt::quote(a.as_slice())).collect();
            emit_err(format!("command [{}] error ({err})\n", shown.join(" ")).as_bytes());
            Err(Exit::silent(1))
        }
    }
}

/// etcdctl's `printWatchCh`: prints every response of the watch until it ends.
async fn print_watch(
    watch: &mut WatchHandle,
    printer: Printer,
    exec: &[Vec<u8>],
) -> Result<(), Exit> {
    while let Some(resp) = watch.rx.recv().await {
        if resp.canceled {
            let err = resp.err().unwrap_or_default();
            emit_err(format!("watch was canceled ({err})\n").as_bytes());
        }
        if resp.is_progress_notify() {
            emit(format!("progress notify: {}\n", resp.header.revision).as_bytes());
        }
        emit(&printer.watch(&resp)?);
        if !exec.is_empty() {
            for ev in &resp.events {
                run_exec(exec, &resp, ev).await?;
            }
        }
    }
    Ok(())
}

fn env_bytes(name: &str) -> Vec<u8> {
    std::env::var_os(name)
        .map(|v| v.into_vec())
        .unwrap_or_default()
}

/// `watch [options] [key or prefix] [range_end] [--] [exec-command arg1 arg2 ...]`.
pub fn watch(rt: &Runtime, g: &mut Globals, a: &WatchArgs) -> Result<(), Exit> {
    let opts = WatchOpts::from_cli(a).map_err(Exit::error)?;
    let env_key = env_bytes("ETCDCTL_WATCH_KEY");
    let env_range = env_bytes("ETCDCTL_WATCH_RANGE_END");
    if env_key.is_empty() && !env_range.is_empty() {
        return Err(Exit::bad_args(format!(
            "ETCDCTL_WATCH_KEY is empty but got ETCDCTL_WATCH_RANGE_END={}",
            gofmt::quote(&env_range)
        )));
    }
    if opts.interactive {
        let printer = client_config(g, EnvScope::Watch)?;
        return rt.block_on(interactive(g, printer, &env_key, &env_range));
    }
    let os_args: Vec<Vec<u8>> = std::env::args_os().map(|a| a.into_vec()).collect();
    let parsed = parse_command_line(&os_args, &os_bytes(&a.args), &env_key, &env_range)
        .map_err(Exit::bad_args)?;
    let printer = client_config(g, EnvScope::Watch)?;
    let req = create_request(&parsed.args, &opts).map_err(Exit::bad_args)?;
    rt.block_on(async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        let mut w = WatchHandle::start(&client, req, true);
        print_watch(&mut w, printer, &parsed.exec).await
    })?;
    Err(Exit::new(
        EXIT_INTERRUPTED,
        "watch is canceled by the server",
    ))
}

/// Lines of stdin without their newline, read on a thread of their own; the end of the input
/// (a last line without a newline included, as with Go's `ReadString`) is the error "EOF".
fn stdin_lines() -> UnboundedReceiver<Result<Vec<u8>, String>> {
    use std::io::BufRead as _;
    let (tx, rx) = unbounded_channel();
    std::thread::spawn(move || {
        let mut input = std::io::stdin().lock();
        loop {
            let mut buf = Vec::new();
            let line = match input.read_until(b'\n', &mut buf) {
                Ok(_) if buf.last() == Some(&b'\n') => {
                    buf.pop();
                    Ok(buf)
                }
                Ok(_) => Err("EOF".to_string()),
                Err(e) => Err(e.to_string()),
            };
            let last = line.is_err();
            if tx.send(line).is_err() || last {
                return;
            }
        }
    });
    rx
}

/// `watch -i`: one watch per `watch ...` line read from stdin, all printing concurrently;
/// `progress` asks every watch for a progress notification. Ends at the end of the input.
async fn interactive(
    g: &Globals,
    printer: Printer,
    env_key: &[u8],
    env_range: &[u8],
) -> Result<(), Exit> {
    let client = dial(&g.endpoints, g.dial_timeout).await?;
    let mut lines = stdin_lines();
    // A watch whose command fails ends the whole process, as etcdctl's os.Exit does.
    let (fatal_tx, mut fatal_rx) = unbounded_channel::<Exit>();
    let mut progress: Vec<UnboundedSender<()>> = Vec::new();
    loop {
        let read = tokio::select! {
            r = lines.recv() => r.unwrap_or_else(|| Err("EOF".into())),
            Some(e) = fatal_rx.recv() => return Err(e),
        };
        let line = read
            .map_err(|e| Exit::invalid_input(format!("Error reading watch request line: {e}")))?;
        let shown = String::from_utf8_lossy(&line).into_owned();
        let words = txn::argify(&line)?;
        match words.first().map(Vec::as_slice) {
            None => {
                emit_err(
                    format!("Invalid command: {shown} (watch and progress supported)\n").as_bytes(),
                );
            }
            Some(b"watch") => {
                if words.len() < 2 && env_key.is_empty() {
                    emit_err(
                        format!("Invalid command {shown} (command type or key is not provided)\n")
                            .as_bytes(),
                    );
                    continue;
                }
                let (parsed, opts) =
                    parse_interactive_line(&words, env_key, env_range).map_err(Exit::bad_args)?;
                let req = match create_request(&parsed.args, &opts) {
                    Ok(req) => req,
                    Err(e) => {
                        emit_err(format!("Invalid command {shown} ({e})\n").as_bytes());
                        continue;
                    }
                };
                let mut w = WatchHandle::start(&client, req, true);
                progress.push(w.progress.clone());
                let fatal = fatal_tx.clone();
                tokio::spawn(async move {
                    if let Err(e) = print_watch(&mut w, printer, &parsed.exec).await {
                        let _ = fatal.send(e);
                    }
                });
            }
            Some(b"progress") => {
                progress.retain(|p| p.send(()).is_ok());
            }
            Some(_) => {
                emit_err(format!("Invalid command {shown} (only support watch)\n").as_bytes());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cairn_proto::mvccpb::KeyValue;

    fn w(a: &[&str]) -> Vec<Vec<u8>> {
        a.iter().map(|s| s.as_bytes().to_vec()).collect()
    }

    fn parsed(args: &[&str], exec: &[&str]) -> ParsedWatch {
        ParsedWatch {
            args: w(args),
            exec: w(exec),
        }
    }

    #[test]
    fn command_line_exec_and_separators() {
        let os = w(&[
            "cairnctl",
            "--endpoints",
            "x",
            "watch",
            "foo",
            "--",
            "echo",
            "hi",
        ]);
        assert_eq!(
            parse_command_line(&os, &w(&["foo", "echo", "hi"]), b"", b""),
            Ok(parsed(&["foo"], &["echo", "hi"]))
        );
        let os = w(&[
            "cairnctl", "watch", "foo", "bar", "--rev", "1", "--", "echo",
        ]);
        assert_eq!(
            parse_command_line(&os, &w(&["foo", "bar", "echo"]), b"", b""),
            Ok(parsed(&["foo", "bar"], &["echo"]))
        );
        let os = w(&["cairnctl", "watch", "foo", "--"]);
        assert_eq!(
            parse_command_line(&os, &w(&["foo"]), b"", b""),
            Err(ERR_SEPARATOR.to_string())
        );
        let os = w(&["cairnctl", "watch"]);
        assert_eq!(
            parse_command_line(&os, &[], b"", b""),
            Err(ERR_BAD_ARGS_NUM.to_string())
        );
        // etcdctl's own quirk: the last word equal to the command's first one ends the key list.
        let os = w(&["cairnctl", "watch", "k", "--", "echo", "echo"]);
        assert_eq!(
            parse_command_line(&os, &w(&["k", "echo", "echo"]), b"", b""),
            Ok(parsed(&["k", "echo"], &["echo", "echo"]))
        );
    }

    #[test]
    fn command_line_with_environment_key() {
        let os = w(&["cairnctl", "watch", "--rev", "1"]);
        assert_eq!(
            parse_command_line(&os, &[], b"k", b"z"),
            Ok(parsed(&["k", "z"], &[]))
        );
        let os = w(&["cairnctl", "watch", "k2"]);
        assert_eq!(
            parse_command_line(&os, &w(&["k2"]), b"k", b""),
            Err(ERR_CONFLICT_ENV.to_string())
        );
        let os = w(&["cairnctl", "watch", "k2", "--", "echo", "1"]);
        assert_eq!(
            parse_command_line(&os, &w(&["k2", "echo", "1"]), b"k", b""),
            Err(ERR_CONFLICT_ENV.to_string())
        );
        let os = w(&["cairnctl", "watch", "--rev", "1", "--", "echo", "1"]);
        assert_eq!(
            parse_command_line(&os, &w(&["echo", "1"]), b"k", b""),
            Ok(parsed(&["k"], &["echo", "1"]))
        );
    }

    #[test]
    fn interactive_lines() {
        let (p, o) =
            parse_interactive_line(&w(&["watch", "foo", "--rev", "0x10", "--prefix"]), b"", b"")
                .unwrap();
        assert_eq!(p, parsed(&["foo"], &[]));
        assert_eq!(
            o,
            WatchOpts {
                prefix: true,
                rev: 16,
                ..Default::default()
            }
        );
        let (p, o) = parse_interactive_line(
            &w(&["watch", "foo", "--prev-kv", "--", "echo", "-n", "x"]),
            b"",
            b"",
        )
        .unwrap();
        assert_eq!(p, parsed(&["foo"], &["echo", "-n", "x"]));
        assert!(o.prev_kv);
        let err = |line: &[&str]| parse_interactive_line(&w(line), b"", b"").unwrap_err();
        assert_eq!(err(&["watch", "foo", "--"]), ERR_SEPARATOR);
        assert_eq!(err(&["watch", "--rev", "3"]), ERR_BAD_ARGS_NUM);
        assert_eq!(err(&["watch", "foo", "--bogus"]), "unknown flag: --bogus");
        assert_eq!(
            err(&["watch", "foo", "-w", "json"]),
            "unknown shorthand flag: 'w' in -w"
        );
        assert_eq!(
            err(&["watch", "foo", "--rev", "x"]),
            r#"invalid argument "x" for "--rev" flag: strconv.ParseInt: parsing "x": invalid syntax"#
        );
        assert_eq!(err(&["get", "foo"]), ERR_INTERACTIVE_WATCH);
        let (p, _) = parse_interactive_line(&w(&["watch", "--rev", "2"]), b"k", b"").unwrap();
        assert_eq!(p, parsed(&["k"], &[]));
        assert_eq!(
            parse_interactive_line(&w(&["watch", "k2"]), b"k", b"").unwrap_err(),
            ERR_CONFLICT_ENV
        );
    }

    #[test]
    fn create_requests() {
        let o = WatchOpts {
            prefix: true,
            rev: 5,
            prev_kv: true,
            ..Default::default()
        };
        let r = create_request(&w(&["ab"]), &o).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"ab"[..], &b"ac"[..]));
        assert_eq!((r.start_revision, r.prev_kv), (5, true));
        let r = create_request(&w(&[""]), &o).unwrap();
        assert_eq!((&r.key[..], &r.range_end[..]), (&b"\0"[..], &b"\0"[..]));
        assert_eq!(
            create_request(&w(&["a", "b"]), &o).unwrap_err(),
            ERR_PREFIX_RANGE
        );
        let plain = WatchOpts::default();
        let r = create_request(&w(&["a", "b"]), &plain).unwrap();
        assert_eq!(&r.range_end[..], b"b");
        // A third argument does not make a range, as in etcdctl.
        let r = create_request(&w(&["a", "b", "c"]), &plain).unwrap();
        assert!(r.range_end.is_empty());
        assert_eq!(create_request(&[], &plain).unwrap_err(), ERR_BAD_ARGS_NUM);
    }

    #[test]
    fn response_classification() {
        let progress = WatchResp {
            header: ResponseHeader {
                revision: 9,
                ..Default::default()
            },
            ..Default::default()
        };
        assert!(progress.is_progress_notify());
        assert_eq!(progress.err(), None);
        let compacted = WatchResp {
            compact_revision: 50,
            canceled: true,
            ..Default::default()
        };
        assert!(!compacted.is_progress_notify());
        assert_eq!(
            compacted.err().as_deref(),
            Some("etcdserver: mvcc: required revision has been compacted")
        );
        assert_eq!(closed_by("EOF".into()).err().as_deref(), Some("EOF"));
    }

    #[test]
    fn exec_environment_is_go_quoted() {
        let resp = WatchResp {
            header: ResponseHeader {
                revision: 54,
                ..Default::default()
            },
            ..Default::default()
        };
        let ev = Event {
            r#type: 0,
            kv: Some(KeyValue {
                key: Bytes::from_static(b"x1"),
                value: Bytes::from_static(b"a\"b"),
                ..Default::default()
            }),
            prev_kv: None,
        };
        assert_eq!(
            exec_env(&resp, &ev),
            vec![
                ("ETCD_WATCH_REVISION".to_string(), "54".to_string()),
                ("ETCD_WATCH_EVENT_TYPE".to_string(), "\"PUT\"".to_string()),
                ("ETCD_WATCH_KEY".to_string(), "\"x1\"".to_string()),
                ("ETCD_WATCH_VALUE".to_string(), "\"a\\\"b\"".to_string()),
            ]
        );
    }

    #[test]
    fn exec_errors_read_like_go() {
        use std::os::unix::process::ExitStatusExt as _;
        let nf = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(
            go_spawn_error(b"nonexist-cmd", &nf),
            r#"exec: "nonexist-cmd": executable file not found in $PATH"#
        );
        assert_eq!(
            go_spawn_error(b"./x", &nf),
            "fork/exec ./x: no such file or directory"
        );
        assert_eq!(
            go_exit_error(std::process::ExitStatus::from_raw(3 << 8)).as_deref(),
            Some("exit status 3")
        );
        assert_eq!(
            go_exit_error(std::process::ExitStatus::from_raw(9)).as_deref(),
            Some("signal: killed")
        );
        assert_eq!(go_exit_error(std::process::ExitStatus::from_raw(0)), None);
    }
}
