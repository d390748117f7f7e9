//! Maintenance commands: `snapshot save`, `defrag [--cluster]` and `alarm list|disarm`, with
//! etcdctl 3.4's argument checks, messages, output formats and exit codes.
//!
//! `snapshot save` does more than etcdctl: it shows the download's progress on stderr
//! ([`Progress`]); besides etcdctl's check (a size that leaves room for a SHA-256 after whole
//! pages) it checks the stream's framing and the SHA-256 itself ([`StreamCheck`]) before the
//! file takes its name, so a cut or damaged stream never becomes a file at the target path; and
//! SIGINT or SIGTERM removes the partial file (etcdctl leaves it behind).
//!
//! `snapshot status|restore` and `defrag --data-dir` are `crate::offline`'s.

use crate::cli::{DefragArgs, RestArgs};
use crate::commands::{
    client_config, dial, emit, emit_err, has_credentials, is_login_failure, target_endpoints, timed,
};
use crate::exit::{EXIT_ERROR, EXIT_INTERRUPTED, Exit, status_message};
use crate::flags::{EnvScope, Globals};
use crate::gofmt;
use bytes::Bytes;
use cairn_client::Client;
use cairn_cliout::progress::Progress;
use cairn_proto::cairnpb::DefragmentProgressRequest;
use cairn_proto::etcdserverpb::{
    AlarmRequest, AlarmResponse, AlarmType, DefragmentRequest, DowngradeRequest, SnapshotRequest,
    alarm_request::AlarmAction, downgrade_request::DowngradeAction,
};
use std::ffi::OsString;
use std::io::IsTerminal as _;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tokio::io::AsyncWriteExt as _;
use tokio::runtime::Runtime;

fn rpc_error(s: tonic::Status) -> Exit {
    Exit::error(status_message(&s))
}

/// `snapshot save <filename>`: streams one member's backend into `<filename>.part`, checks it,
/// syncs it and renames it to `<filename>`. Every failure after the argument and flag checks
/// ends with exit code 5, as etcdctl's; a signal with 128 plus its number, as a shell reports a
/// process it killed.
pub fn snapshot_save(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    let [arg] = a.args.as_slice() else {
        return Err(Exit::bad_args("snapshot save expects one argument"));
    };
    let target = PathBuf::from(arg);
    client_config(g, EnvScope::Global)?;
    if g.endpoints.len() != 1 {
        return Err(Exit::new(
            EXIT_INTERRUPTED,
            format!(
                "snapshot must be requested to one selected node, not multiple {}",
                gofmt::string_slice(&g.endpoints)
            ),
        ));
    }
    let part = part_path(&target);
    // A snapshot can take long: etcdctl sets no deadline unless one is asked for (the flag or
    // its variable).
    let deadline = g
        .changed
        .contains("command-timeout")
        .then_some(g.command_timeout);
    let mut progress = Progress::new("Downloading snapshot", std::io::stderr().is_terminal());
    let mut created = false;
    let interrupted_save = |e: Exit| Exit {
        code: EXIT_INTERRUPTED,
        message: e.message,
    };
    let outcome = rt.block_on(async {
        let fetched = async {
            let download = download(g, &part, &mut created, &mut progress);
            let file = match deadline {
                Some(t) => timed(t, download).await?,
                None => download.await?,
            };
            // As etcdctl's, the deadline covers the stream, not the sync.
            sync(file, &part).await
        };
        tokio::select! {
            done = fetched => done.map_err(interrupted_save)?,
            signo = interrupted() => return Err(Exit::silent(128 + signo)),
        }
        // From here on nothing interrupts the save (signals are still caught, and ignored): a
        // rename cut short could put the file in place while the save reports a failure.
        finish(&part, &target).await.map_err(interrupted_save)
    });
    if let Some(end) = progress.finish() {
        emit_err(end.as_bytes());
    }
    match outcome {
        Ok(()) => {
            emit(format!("Snapshot saved at {}\n", target.display()).as_bytes());
            Ok(())
        }
        Err(e) => {
            // Only a file this run made is removed: a login that failed before it leaves
            // whatever was there before.
            if created {
                let _ = std::fs::remove_file(&part);
            }
            Err(e)
        }
    }
}

fn part_path(target: &Path) -> PathBuf {
    let mut name = OsString::from(target.as_os_str());
    name.push(".part");
    PathBuf::from(name)
}

/// Resolves with the signal's number at SIGINT or SIGTERM, so that an interrupted save removes
/// its partial file (etcdctl leaves it behind); never resolves when signals cannot be caught.
async fn interrupted() -> i32 {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut int), Ok(mut term)) = (
        signal(SignalKind::interrupt()),
        signal(SignalKind::terminate()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = int.recv() => 2,
        _ = term.recv() => 15,
    }
}

/// Go's `*PathError` text: `<op> <path>: <errno>`.
fn path_error(op: &str, path: &Path, e: &std::io::Error) -> String {
    format!("{op} {}: {}", path.display(), gofmt::errno_text(e))
}

/// Connects, streams the snapshot into `part` and checks what came; returns the file, written
/// but not yet synced.
async fn download(
    g: &Globals,
    part: &Path,
    created: &mut bool,
    progress: &mut Progress,
) -> Result<tokio::fs::File, Exit> {
    // etcdctl's client logs in before the file is opened, but otherwise connects only when the
    // stream is asked for: an unusable path fails at once even when no member answers.
    let mut client: Option<Client> = None;
    if has_credentials() {
        client = Some(dial(&g.endpoints, g.dial_timeout).await?);
    }
    let mut options = tokio::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true).mode(0o600);
    let mut file = options.open(part).await.map_err(|e| {
        Exit::error(format!(
            "could not open {} ({})",
            part.display(),
            path_error("open", part, &e)
        ))
    })?;
    *created = true;
    let client = match client {
        Some(c) => c,
        None => dial(&g.endpoints, g.dial_timeout).await?,
    };
    let mut stream = client
        .maintenance()
        .snapshot(SnapshotRequest {})
        .await
        .map_err(rpc_error)?
        .into_inner();
    let mut check = StreamCheck::new();
    let mut written = 0u64;
    while let Some(msg) = stream.message().await.map_err(rpc_error)? {
        file.write_all(&msg.blob)
            .await
            .map_err(|e| Exit::error(path_error("write", part, &e)))?;
        written += msg.blob.len() as u64;
        if let Some((received, total)) = check.push(msg.blob, msg.remaining_bytes)
            && let Some(text) = progress.update(received, total, Instant::now())
        {
            emit_err(text.as_bytes());
        }
    }
    // etcdctl's own check, by size only: backends are whole pages, so a trailer makes the file
    // 32 bytes past a multiple of 512.
    if written % 512 != 32 {
        return Err(Exit::error(format!(
            "sha256 checksum not found [bytes: {written}]"
        )));
    }
    check.finish().map_err(Exit::error)?;
    Ok(file)
}

async fn sync(mut file: tokio::fs::File, part: &Path) -> Result<(), Exit> {
    let synced = async {
        file.flush().await?;
        file.sync_all().await
    };
    synced
        .await
        .map_err(|e| Exit::error(path_error("sync", part, &e)))
}

/// Gives the synced file its name, durably.
async fn finish(part: &Path, target: &Path) -> Result<(), Exit> {
    rename(part, target).await.map_err(|e| {
        Exit::error(format!(
            "could not rename {} to {} ({e})",
            part.display(),
            target.display(),
        ))
    })?;
    // The file is complete and in place by now, so a directory that cannot be synced is not
    // worth failing the save for (the failure would claim there is no file).
    let dir = match target.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    if let Ok(d) = tokio::fs::File::open(dir).await {
        let _ = d.sync_all().await;
    }
    Ok(())
}

/// Go's `os.Rename`, whose error for an existing directory at the new name is "file exists"
/// (Linux would say "is a directory").
async fn rename(from: &Path, to: &Path) -> Result<(), String> {
    let link_error =
        |reason: String| format!("rename {} {}: {reason}", from.display(), to.display());
    if tokio::fs::symlink_metadata(to)
        .await
        .is_ok_and(|m| m.is_dir())
    {
        return Err(link_error("file exists".to_string()));
    }
    tokio::fs::rename(from, to)
        .await
        .map_err(|e| link_error(gofmt::errno_text(&e)))
}

/// Checks a snapshot stream's framing as it arrives: the backend's bytes, each message saying
/// how many are still to come, then one message holding the SHA-256 of all of them. Which
/// message is the last is only known when the stream ends, so the digest runs one message
/// behind.
pub struct StreamCheck {
    digest: ring::digest::Context,
    /// The latest message's blob and `remaining_bytes`.
    pending: Option<(Bytes, u64)>,
    /// `remaining_bytes` of the message before `pending`.
    data_remaining: Option<u64>,
    /// Bytes of data received so far (the trailer not counted).
    received: u64,
}

impl Default for StreamCheck {
    fn default() -> StreamCheck {
        StreamCheck::new()
    }
}

impl StreamCheck {
    pub fn new() -> StreamCheck {
        StreamCheck {
            digest: ring::digest::Context::new(&ring::digest::SHA256),
            pending: None,
            data_remaining: None,
            received: 0,
        }
    }

    /// Takes one message; while data is arriving, returns the bytes of data received and their
    /// total so far.
    pub fn push(&mut self, blob: Bytes, remaining: u64) -> Option<(u64, u64)> {
        let data_done = self.pending.as_ref().is_some_and(|(_, r)| *r == 0);
        if let Some((earlier, its_remaining)) = self.pending.take() {
            self.digest.update(&earlier);
            self.data_remaining = Some(its_remaining);
        }
        let len = blob.len() as u64;
        self.pending = Some((blob, remaining));
        if data_done {
            return None;
        }
        self.received += len;
        Some((self.received, self.received.saturating_add(remaining)))
    }

    /// Whether the stream was whole: all announced data, then its SHA-256.
    pub fn finish(self) -> Result<(), String> {
        let Some((trailer, remaining)) = self.pending else {
            return Err("the snapshot stream ended before any data arrived".to_string());
        };
        if remaining > 0 {
            return Err(format!(
                "the snapshot stream ended early: {remaining} more bytes were announced"
            ));
        }
        if self.data_remaining != Some(0) {
            return Err("the snapshot stream ended without its SHA-256 trailer".to_string());
        }
        let sum = self.digest.finish();
        if trailer.len() != sum.as_ref().len() {
            return Err(format!(
                "snapshot integrity check failed: the stream's last message holds {} bytes, not a SHA-256",
                trailer.len()
            ));
        }
        if trailer.as_ref() != sum.as_ref() {
            return Err(format!(
                "snapshot integrity check failed: the data's SHA-256 is {}, the stream's trailer says {}",
                hex(sum.as_ref()),
                hex(&trailer)
            ));
        }
        Ok(())
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How often `defrag` asks a Cairn member how far its defragmentation is.
const DEFRAG_POLL: std::time::Duration = std::time::Duration::from_millis(250);

/// `defrag [--cluster]`: each endpoint in turn, a line on stdout per success and on stderr per
/// failure, exit code 1 if any failed.
pub fn defrag(rt: &Runtime, g: &mut Globals, a: &DefragArgs) -> Result<(), Exit> {
    if let Some(dir) = a.data_dir.as_deref().filter(|d| !d.is_empty()) {
        return crate::offline::defrag(dir);
    }
    client_config(g, EnvScope::Global)?;
    let endpoints = target_endpoints(rt, g)?;
    let mut failed = false;
    for ep in endpoints {
        let mut progress = Progress::percent_only("Defragmenting", std::io::stderr().is_terminal());
        let res = rt.block_on(timed(g.command_timeout, async {
            let client = dial(std::slice::from_ref(&ep), g.dial_timeout).await?;
            let mut maintenance = client.maintenance();
            let defrag = maintenance.defragment(DefragmentRequest {});
            tokio::pin!(defrag);
            let mut ask = client.operations();
            // etcd's server says nothing until the end; Cairn's says how far its copy is.
            let mut ask_progress = true;
            let done = loop {
                tokio::select! {
                    done = &mut defrag => break done,
                    () = tokio::time::sleep(DEFRAG_POLL), if ask_progress => {
                        match ask.defragment_progress(DefragmentProgressRequest {}).await {
                            Ok(r) => {
                                let r = r.into_inner();
                                if r.running && r.records_total > 0 {
                                    let line = progress.update(
                                        r.records_copied,
                                        r.records_total,
                                        std::time::Instant::now(),
                                    );
                                    if let Some(line) = line {
                                        emit_err(line.as_bytes());
                                    }
                                }
                            }
                            // Not a Cairn member, or not one that can tell.
                            Err(_) => ask_progress = false,
                        }
                    }
                }
            };
            done.map_err(rpc_error)
        }));
        if let Some(end) = progress.finish() {
            emit_err(end.as_bytes());
        }
        match res {
            Ok(_) => emit(format!("Finished defragmenting etcd member[{ep}]\n").as_bytes()),
            // etcdctl logs in once, before any endpoint is defragmented.
            Err(e) if is_login_failure(&e) => return Err(e),
            Err(e) => {
                failed = true;
                emit_err(
                    format!(
                        "Failed to defragment etcd member[{ep}] ({})\n",
                        e.message.unwrap_or_default()
                    )
                    .as_bytes(),
                );
            }
        }
    }
    if failed {
        return Err(Exit::silent(EXIT_ERROR));
    }
    Ok(())
}

async fn alarm_call(client: &Client, req: AlarmRequest) -> Result<AlarmResponse, Exit> {
    client
        .maintenance()
        .alarm(req)
        .await
        .map(tonic::Response::into_inner)
        .map_err(rpc_error)
}

/// Every active alarm of the cluster (member 0 and no type: all of them).
fn list_request() -> AlarmRequest {
    AlarmRequest {
        action: AlarmAction::Get as i32,
        member_id: 0,
        alarm: AlarmType::None as i32,
    }
}

/// `alarm list`.
pub fn alarm_list(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    if !a.args.is_empty() {
        return Err(Exit::bad_args("alarm list command accepts no arguments"));
    }
    let printer = client_config(g, EnvScope::Global)?;
    let resp = rt.block_on(timed(g.command_timeout, async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        alarm_call(&client, list_request()).await
    }))?;
    emit(&printer.alarm(&resp)?);
    Ok(())
}

/// `alarm disarm`: lists the alarms, deactivates each, and prints what the deactivations
/// answered. Like etcdctl's client, the combined answer has no header.
pub fn alarm_disarm(rt: &Runtime, g: &mut Globals, a: &RestArgs) -> Result<(), Exit> {
    if !a.args.is_empty() {
        return Err(Exit::bad_args("alarm disarm command accepts no arguments"));
    }
    let printer = client_config(g, EnvScope::Global)?;
    let resp = rt.block_on(timed(g.command_timeout, async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        let active = alarm_call(&client, list_request()).await?;
        let mut disarmed = AlarmResponse::default();
        for m in active.alarms {
            let req = AlarmRequest {
                action: AlarmAction::Deactivate as i32,
                member_id: m.member_id,
                alarm: m.alarm,
            };
            disarmed
                .alarms
                .extend(alarm_call(&client, req).await?.alarms);
        }
        Ok(disarmed)
    }))?;
    emit(&printer.alarm(&resp)?);
    Ok(())
}

/// `downgrade validate|enable <TARGET_VERSION>` and `downgrade cancel`, as etcdctl 3.6 (cancel
/// ignores any argument).
pub fn downgrade(
    rt: &Runtime,
    g: &mut Globals,
    action: DowngradeAction,
    a: &RestArgs,
) -> Result<(), Exit> {
    let version = if action == DowngradeAction::Cancel {
        String::new()
    } else {
        match a.args.as_slice() {
            [] => return Err(Exit::bad_args("TARGET_VERSION not provided")),
            [one] if one.is_empty() => return Err(Exit::bad_args("target version not provided")),
            [one] => one.to_string_lossy().into_owned(),
            _ => return Err(Exit::bad_args("too many arguments")),
        }
    };
    let printer = client_config(g, EnvScope::Global)?;
    let resp = rt.block_on(timed(g.command_timeout, async {
        let client = dial(&g.endpoints, g.dial_timeout).await?;
        client
            .maintenance()
            .downgrade(DowngradeRequest {
                action: action as i32,
                version,
            })
            .await
            .map(tonic::Response::into_inner)
            .map_err(rpc_error)
    }))?;
    emit(&printer.downgrade(action, &resp)?);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256(data: &[u8]) -> Bytes {
        Bytes::copy_from_slice(ring::digest::digest(&ring::digest::SHA256, data).as_ref())
    }

    /// Feeds `blobs` (with their `remaining_bytes`) through a check and returns its verdict and
    /// the progress it reported.
    fn run(
        blobs: &[(&[u8], u64)],
        trailer: Option<Bytes>,
    ) -> (Result<(), String>, Vec<(u64, u64)>) {
        let mut check = StreamCheck::new();
        let mut seen = Vec::new();
        for (b, rem) in blobs {
            seen.extend(check.push(Bytes::copy_from_slice(b), *rem));
        }
        if let Some(t) = trailer {
            assert_eq!(check.push(t, 0), None, "the trailer is not data");
        }
        (check.finish(), seen)
    }

    #[test]
    fn whole_streams_pass_and_report_progress() {
        let (verdict, seen) = run(
            &[(b"abcd", 6), (b"efgh", 2), (b"ij", 0)],
            Some(sha256(b"abcdefghij")),
        );
        assert_eq!(verdict, Ok(()));
        assert_eq!(seen, vec![(4, 10), (8, 10), (10, 10)]);
    }

    #[test]
    fn damaged_or_cut_streams_fail() {
        let good = sha256(b"abcdefgh");
        let (verdict, _) = run(&[(b"abcd", 4), (b"efgX", 0)], Some(good.clone()));
        assert!(
            verdict
                .unwrap_err()
                .starts_with("snapshot integrity check failed: the data's SHA-256 is ")
        );
        // Cut in the middle of the data.
        let (verdict, _) = run(&[(b"abcd", 4)], None);
        assert_eq!(
            verdict,
            Err("the snapshot stream ended early: 4 more bytes were announced".to_string())
        );
        // All data, no trailer.
        let (verdict, _) = run(&[(b"abcd", 4), (b"efgh", 0)], None);
        assert_eq!(
            verdict,
            Err("the snapshot stream ended without its SHA-256 trailer".to_string())
        );
        let (verdict, _) = run(&[], None);
        assert_eq!(
            verdict,
            Err("the snapshot stream ended before any data arrived".to_string())
        );
        let (verdict, _) = run(&[(b"abcd", 0)], Some(Bytes::from_static(b"short")));
        assert_eq!(
            verdict,
            Err("snapshot integrity check failed: the stream's last message holds 5 bytes, not a SHA-256".to_string())
        );
        // Anything after the trailer is no trailer.
        let mut check = StreamCheck::new();
        check.push(Bytes::from_static(b"abcd"), 0);
        check.push(sha256(b"abcd"), 0);
        check.push(Bytes::from_static(b"more"), 0);
        assert!(check.finish().is_err());
    }
}
