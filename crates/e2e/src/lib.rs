//! Process-level test harness: starts real `cairn` members on loopback ports, kills and restarts
//! them, and runs real `etcdctl` and `cairnctl` against them.
//!
//! Owns: building the binaries under test, port allocation, process lifetimes, and small helpers
//! for running command-line clients. Must not: reach into the server's internals; everything goes
//! through processes, files on disk and the public wire API.

mod bg;
pub mod certs;
pub mod h2raw;
pub mod linearizability;
pub mod migration;
pub mod workload;

pub use bg::Bg;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

static BUILD: Once = Once::new();
static PORTS: Mutex<u16> = Mutex::new(0);

/// Directory holding the binaries of the profile the tests were built with.
fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    // target/<profile>/deps/<test-binary>
    exe.parent()
        .and_then(Path::parent)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Builds `cairn`, `cairnctl` and `cairnutl` once per test process, so tests never run a stale binary.
///
/// The build covers the whole workspace with all targets, the same unit set as `cargo test
/// --workspace`: with fewer packages cargo unifies dependency features differently, so every
/// library would be compiled a second time (doubling the target directory, which once filled a CI
/// machine's disk mid-run) and the binaries relinked under the running tests.
pub fn ensure_built() {
    BUILD.call_once(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.args(["build", "-q", "--workspace", "--all-targets"]);
        if bin_dir().ends_with("release") {
            cmd.arg("--release");
        }
        let status = cmd.status().expect("run cargo build");
        assert!(status.success(), "building the workspace's binaries failed");
    });
}

pub fn cairn_bin() -> PathBuf {
    ensure_built();
    bin_dir().join("cairn")
}

pub fn cairnctl_bin() -> PathBuf {
    ensure_built();
    bin_dir().join("cairnctl")
}

pub fn cairnutl_bin() -> PathBuf {
    ensure_built();
    bin_dir().join("cairnutl")
}

/// The first port of the kernel's ephemeral range: ports below it are never handed out to
/// outgoing connections, so a port picked there cannot be taken between check and use by a
/// client socket.
fn ephemeral_start() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(32768)
}

/// A free loopback port below the ephemeral range. Ports are handed out from a per-process
/// range offset by the pid so that test binaries running side by side rarely collide; each is
/// checked by binding it.
pub fn free_port() -> u16 {
    const FIRST: u16 = 10000;
    let end = ephemeral_start().max(FIRST + 1000);
    let span = end - FIRST;
    let mut next = PORTS.lock().unwrap_or_else(|e| e.into_inner());
    if *next == 0 {
        *next = FIRST + (std::process::id() % u32::from(span / 20)) as u16 * 20;
    }
    loop {
        *next += 1;
        if *next >= end {
            *next = FIRST;
        }
        if TcpListener::bind(("127.0.0.1", *next)).is_ok() {
            return *next;
        }
    }
}

/// The path of real etcdctl; tests that compare against etcd fail loudly without it.
pub fn etcdctl_bin() -> PathBuf {
    for p in ["/usr/bin/etcdctl", "/usr/local/bin/etcdctl"] {
        if Path::new(p).exists() {
            return PathBuf::from(p);
        }
    }
    panic!(
        "etcdctl not found: install Debian's etcd-client (`apt-get install etcd-client`); .ci/run does this"
    );
}

/// One `cairn` process with its own data dir and ports.
pub struct Member {
    pub name: String,
    /// `--initial-cluster`; None: this member alone.
    pub initial_cluster: Option<String>,
    pub data_dir: PathBuf,
    pub client_port: u16,
    pub peer_port: u16,
    pub extra: Vec<String>,
    /// Environment variables for the process (failpoints, `ETCD_*`).
    pub env: Vec<(String, String)>,
    /// `https` when the member serves clients over TLS (its `extra` flags carry the files).
    pub scheme: &'static str,
    /// `https` when members talk TLS to each other.
    pub peer_scheme: &'static str,
    /// More URLs to listen on for clients besides [`Member::url`] (e.g. plaintext beside TLS).
    pub extra_client_urls: Vec<String>,
    /// What etcdctl needs to reach it (`--cacert`, `--cert`, `--key`), for the readiness check.
    pub client_args: Vec<String>,
    child: Option<Child>,
    pub log: PathBuf,
}

impl Member {
    /// Starts a single-member cluster in `data_dir` and waits until it serves.
    pub fn start(data_dir: &Path, extra: &[&str]) -> Member {
        let mut m = Member::unstarted("m1", data_dir, extra);
        m.launch();
        m
    }

    /// A member with its own ports that is not started yet (to add it to a running cluster
    /// first, then start it with [`Member::launch`]).
    pub fn unstarted(name: &str, data_dir: &Path, extra: &[&str]) -> Member {
        Member {
            name: name.to_string(),
            initial_cluster: None,
            data_dir: data_dir.to_path_buf(),
            client_port: free_port(),
            peer_port: free_port(),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            env: Vec::new(),
            scheme: "http",
            peer_scheme: "http",
            extra_client_urls: Vec::new(),
            client_args: Vec::new(),
            child: None,
            log: data_dir.with_extension("log"),
        }
    }

    /// Starts the process and waits until it serves.
    pub fn launch(&mut self) {
        self.spawn();
        self.wait_ready();
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }

    pub fn url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.scheme, self.client_port)
    }

    /// The command line that starts this member (without spawning it).
    pub fn peer_url(&self) -> String {
        format!("{}://127.0.0.1:{}", self.peer_scheme, self.peer_port)
    }

    pub fn command(&self) -> Command {
        let peer = self.peer_url();
        let initial_cluster = self
            .initial_cluster
            .clone()
            .unwrap_or_else(|| format!("{}={peer}", self.name));
        let mut cmd = Command::new(cairn_bin());
        cmd.arg("--name")
            .arg(&self.name)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .arg("--listen-client-urls")
            .arg(
                std::iter::once(self.url())
                    .chain(self.extra_client_urls.iter().cloned())
                    .collect::<Vec<_>>()
                    .join(","),
            )
            .arg("--advertise-client-urls")
            .arg(self.url())
            .arg("--listen-peer-urls")
            .arg(&peer)
            .arg("--initial-advertise-peer-urls")
            .arg(&peer)
            .arg("--initial-cluster")
            .arg(initial_cluster)
            .args(&self.extra)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        cmd
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open member log");
        let err = log.try_clone().expect("clone log handle");
        let child = self
            .command()
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(err))
            .spawn()
            .expect("spawn cairn");
        self.child = Some(child);
    }

    /// Waits until `/health` answers healthy (a linearizable read through Raft).
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                panic!(
                    "cairn exited early with {status}; log:\n{}",
                    self.log_text()
                );
            }
            let healthy = if self.scheme == "https" {
                let mut args = self.client_args.clone();
                args.extend(["endpoint".into(), "health".into()]);
                let args: Vec<&str> = args.iter().map(String::as_str).collect();
                etcdctl(&self.url(), &args, None).code == 0
            } else {
                http_get(self.client_port, "/health").is_some_and(|b| b.contains("\"true\""))
            };
            if healthy {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("cairn did not become healthy; log:\n{}", self.log_text());
    }

    /// The member's log, with each JSON line (etcd's zap format, the default) rendered as
    /// `level msg key=value …` so that tests can look for messages and values as written.
    pub fn log_text(&self) -> String {
        let raw = std::fs::read_to_string(&self.log).unwrap_or_default();
        raw.lines()
            .map(render_log_line)
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The member's log as written.
    pub fn raw_log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown hooks, no flushes.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self) {
        self.restart_unready();
        self.wait_ready();
    }

    /// Whether the process is running.
    pub fn is_running(&mut self) -> bool {
        self.child
            .as_mut()
            .is_some_and(|c| matches!(c.try_wait(), Ok(None)))
    }

    /// SIGKILL and start again without waiting for the member to serve.
    pub fn restart_unready(&mut self) {
        self.kill9();
        self.spawn();
    }

    /// Starts the member and waits for it to exit on its own (for start-up failures).
    pub fn run_to_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        self.kill9();
        self.spawn();
        self.run_to_exit_of_current(timeout)
    }

    /// Waits for the running process to exit on its own.
    pub fn run_to_exit_of_current(
        &mut self,
        timeout: Duration,
    ) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut()
                && let Ok(Some(s)) = c.try_wait()
            {
                self.child = None;
                return Some(s);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }
}

/// A test's random seed: `var` if set (to replay a run), else the clock; printed either way.
pub fn seed_from_env(var: &str) -> u64 {
    let seed = std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    eprintln!("seed {seed} (rerun with {var}={seed})");
    seed
}

/// Gives `members` the `--initial-cluster` naming all of them; returns it.
pub fn share_initial_cluster(members: &mut [Member]) -> String {
    let initial = members
        .iter()
        .map(|m| format!("{}={}", m.name, m.peer_url()))
        .collect::<Vec<_>>()
        .join(",");
    for m in members.iter_mut() {
        m.initial_cluster = Some(initial.clone());
    }
    initial
}

/// Writes `tasks * per_task` keys named `key(task, i)` with `value_len`-byte values from `tasks`
/// concurrent writers on one connection: a store of some size, quickly.
pub fn load_keys(
    endpoint: &str,
    tasks: usize,
    per_task: usize,
    value_len: usize,
    key: fn(usize, usize) -> String,
) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let client = cairn_client::Client::connect_one(endpoint, Duration::from_secs(5))
            .await
            .expect("connect");
        let writers: Vec<_> = (0..tasks)
            .map(|t| {
                let mut kv = client.kv();
                tokio::spawn(async move {
                    for i in 0..per_task {
                        kv.put(cairn_proto::etcdserverpb::PutRequest {
                            key: key(t, i).into_bytes().into(),
                            value: vec![b'x'; value_len].into(),
                            ..Default::default()
                        })
                        .await
                        .expect("put");
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.expect("writer");
        }
    });
}

/// A zap JSON log line as `level msg key=value …`; any other line as it is.
pub fn render_log_line(line: &str) -> String {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_str::<serde_json::Value>(line)
    else {
        return line.to_string();
    };
    let text = |v: &serde_json::Value| match v {
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let mut out = format!(
        "{} {}",
        fields.get("level").map(text).unwrap_or_default(),
        fields.get("msg").map(text).unwrap_or_default()
    );
    for (k, v) in &fields {
        if !matches!(k.as_str(), "level" | "msg" | "ts" | "caller") {
            out.push_str(&format!(" {k}={}", text(v)));
        }
    }
    out
}

/// Several `cairn` members started together from one `--initial-cluster`.
pub struct Cluster {
    pub members: Vec<Member>,
}

/// Starts every member and waits until each serves (members of one cluster need each other to
/// elect a leader, so none is waited for alone).
pub fn launch_all(members: &mut [Member]) {
    for m in members.iter_mut() {
        m.spawn();
    }
    for m in members.iter_mut() {
        m.wait_ready();
    }
}

impl Cluster {
    /// Starts `n` members named m1…mn, each with its own data dir under `dir`, and waits until
    /// every one serves.
    pub fn start(dir: &Path, n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_inner(dir, n, extra, false)
    }

    /// Like [`Cluster::start`], with the partition failpoint armed: see [`Cluster::partition`].
    pub fn start_partitionable(dir: &Path, n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_inner(dir, n, extra, true)
    }

    fn block_file(m: &Member) -> PathBuf {
        m.data_dir.with_extension("block")
    }

    /// Splits the members into `groups` (indexes): members in different groups exchange no
    /// peer traffic; members in no group are cut off from everyone. Clients still reach all.
    pub fn partition(&self, groups: &[&[usize]]) {
        for (i, m) in self.members.iter().enumerate() {
            let mine: &[usize] = groups
                .iter()
                .find(|g| g.contains(&i))
                .copied()
                .unwrap_or(&[]);
            let blocked: Vec<String> = self
                .members
                .iter()
                .enumerate()
                .filter(|(j, _)| *j != i && !mine.contains(j))
                .map(|(_, o)| o.name.clone())
                .collect();
            std::fs::write(Cluster::block_file(m), blocked.join("\n")).expect("write block file");
        }
        // The members re-read their files every 100 ms.
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Ends every partition.
    pub fn heal(&self) {
        for m in &self.members {
            std::fs::write(Cluster::block_file(m), "").expect("write block file");
        }
        std::thread::sleep(Duration::from_millis(300));
    }

    /// Like [`Cluster::start`], with members talking `https` to each other (`extra` carries
    /// the `--peer-*` TLS flags).
    pub fn start_peer_tls(dir: &Path, n: usize, extra: &[&str]) -> Cluster {
        Cluster::start_inner_with(dir, n, extra, false, "https")
    }

    fn start_inner(dir: &Path, n: usize, extra: &[&str], partitionable: bool) -> Cluster {
        Cluster::start_inner_with(dir, n, extra, partitionable, "http")
    }

    fn start_inner_with(
        dir: &Path,
        n: usize,
        extra: &[&str],
        partitionable: bool,
        peer_scheme: &'static str,
    ) -> Cluster {
        let mut members: Vec<Member> = (1..=n)
            .map(|i| {
                let mut m = Member::unstarted(&format!("m{i}"), &dir.join(format!("m{i}")), extra);
                m.peer_scheme = peer_scheme;
                m
            })
            .collect();
        share_initial_cluster(&mut members);
        for m in &mut members {
            if partitionable {
                let file = Cluster::block_file(m);
                std::fs::write(&file, "").expect("write block file");
                m.env.push((
                    "CAIRN_FAILPOINT_PEER_BLOCK_FILE".to_string(),
                    file.display().to_string(),
                ));
            }
            m.spawn();
        }
        for m in &mut members {
            m.wait_ready();
        }
        Cluster { members }
    }

    /// Every member's client endpoint, comma-separated (etcdctl's `--endpoints`).
    pub fn endpoints(&self) -> String {
        self.members
            .iter()
            .map(Member::endpoint)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The index of the member that running members agree is the leader, waiting up to
    /// `timeout` for them to agree.
    pub async fn leader(&mut self, timeout: Duration) -> usize {
        let deadline = Instant::now() + timeout;
        loop {
            let mut seen = std::collections::HashSet::new();
            let mut ids = Vec::new();
            let mut all_answered = true;
            for m in &mut self.members {
                if !m.is_running() {
                    ids.push(None);
                    continue;
                }
                let status = match cairn_client::Client::connect_one(
                    &m.endpoint(),
                    Duration::from_millis(500),
                )
                .await
                {
                    Ok(c) => tokio::time::timeout(Duration::from_secs(1), c.status())
                        .await
                        .ok()
                        .and_then(Result::ok),
                    Err(_) => None,
                };
                match status {
                    Some(s) => {
                        seen.insert(s.leader);
                        ids.push(s.header.map(|h| h.member_id));
                    }
                    None => {
                        all_answered = false;
                        ids.push(None);
                    }
                }
            }
            if all_answered
                && seen.len() == 1
                && let Some(&leader) = seen.iter().next()
                && leader != 0
                && let Some(i) = ids.iter().position(|id| *id == Some(leader))
            {
                return i;
            }
            assert!(
                Instant::now() < deadline,
                "members did not agree on a leader within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// How much of a WAL segment holds records: segments are preallocated, so zeros follow the last
/// record and the file size says nothing.
pub fn wal_written_len(segment: &[u8]) -> usize {
    segment.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1)
}

/// Waits for a child process to exit, failing the test (after killing it) if it takes longer
/// than `timeout`: a client blocked by a server bug must fail the test, not hang it.
pub fn wait_with_timeout(child: &mut Child, timeout: Duration) -> std::process::ExitStatus {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("process {} did not exit within {timeout:?}", child.id());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Resident memory of a process, in bytes (0 if it is gone).
pub fn rss_bytes(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0)
        * 1024
}

/// Connects to a member that may still be starting, retrying for up to 30 s.
pub async fn connect_retrying(endpoint: &str) -> cairn_client::Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match cairn_client::Client::connect(&[endpoint.to_string()], Duration::from_secs(1)).await {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("cannot connect to {endpoint}: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Puts `per_writer` keys `{prefix}/{writer}/{i}` from each of `writers` concurrent tasks over
/// one client, failing the test if any put fails or a writer hangs for 2 minutes.
pub async fn put_concurrently(
    client: &cairn_client::Client,
    prefix: &str,
    writers: usize,
    per_writer: usize,
) {
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (c, prefix) = (client.clone(), prefix.to_string());
        tasks.push(tokio::spawn(async move {
            for i in 0..per_writer {
                c.put(format!("{prefix}/{w}/{i}"), format!("{i}"))
                    .await
                    .unwrap_or_else(|e| panic!("put {prefix}/{w}/{i}: {e}"));
            }
        }));
    }
    for t in tasks {
        tokio::time::timeout(Duration::from_secs(120), t)
            .await
            .expect("a writer hung")
            .expect("a writer failed");
    }
}

/// A minimal HTTP/1.1 GET on loopback; `None` if the server is not answering.
pub fn http_get(port: u16, path: &str) -> Option<String> {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = String::new();
    s.read_to_string(&mut buf).ok()?;
    let (head, body) = buf.split_once("\r\n\r\n")?;
    let chunked = head
        .lines()
        .any(|l| l.eq_ignore_ascii_case("transfer-encoding: chunked"));
    if !chunked {
        return Some(body.to_string());
    }
    // Go's servers send larger bodies in chunks: "<hex size>\r\n<data>\r\n", ending at size 0.
    let mut out = String::new();
    let mut rest = body;
    loop {
        let (size, after) = rest.split_once("\r\n")?;
        let size = usize::from_str_radix(size.trim(), 16).ok()?;
        if size == 0 {
            return Some(out);
        }
        out.push_str(after.get(..size)?);
        rest = after.get(size..)?.strip_prefix("\r\n")?;
    }
}

/// Result of running a command-line client.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

fn run_with_stdin(mut cmd: Command, stdin: Option<&str>) -> Run {
    use std::io::Write;
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn client");
    if let (Some(mut pipe), Some(input)) = (child.stdin.take(), stdin) {
        let _ = pipe.write_all(input.as_bytes());
    }
    child.wait_with_output().expect("client output").into()
}

/// Runs real etcdctl (API v3) against `endpoint`.
pub fn etcdctl(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(etcdctl_bin());
    cmd.env("ETCDCTL_API", "3")
        .arg("--endpoints")
        .arg(endpoint)
        .args(args);
    run_with_stdin(cmd, stdin)
}

/// Runs cairnctl against `endpoint`.
pub fn cairnctl(endpoint: &str, args: &[&str], stdin: Option<&str>) -> Run {
    let mut cmd = Command::new(cairnctl_bin());
    cmd.arg("--endpoints").arg(endpoint).args(args);
    run_with_stdin(cmd, stdin)
}

/// Runs cairnutl (offline: no endpoint).
pub fn cairnutl(args: &[&str]) -> Run {
    let mut cmd = Command::new(cairnutl_bin());
    cmd.args(args);
    run_with_stdin(cmd, None)
}

/// Real etcd (Debian's `etcd-server`), for side-by-side comparisons.
pub struct RealEtcd {
    pub client_port: u16,
    peer: String,
    child: Child,
    _dir: tempfile::TempDir,
}

impl RealEtcd {
    pub fn start() -> RealEtcd {
        RealEtcd::start_with("http", &[], &[])
    }

    /// The server's `--data-dir`.
    pub fn data_dir(&self) -> PathBuf {
        self._dir.path().join("data")
    }

    /// SIGTERM, as an operator stops etcd, and waits for it to exit; the data dir stays until
    /// the value is dropped.
    pub fn stop(&mut self) {
        // SAFETY: a plain kill(2) of our own child, which has not been waited for yet.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }

    /// SIGKILL; the data dir stays until the value is dropped.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// With extra server flags; `scheme` `https` for TLS, `client_args` what etcdctl needs to
    /// reach it then.
    pub fn start_with(scheme: &str, extra: &[&str], client_args: &[&str]) -> RealEtcd {
        RealEtcd::start_on(free_port(), scheme, extra, client_args)
    }

    /// Like [`RealEtcd::start_with`] on a client port chosen beforehand (for flags that name it,
    /// e.g. more `--advertise-client-urls`).
    pub fn start_on(
        client_port: u16,
        scheme: &str,
        extra: &[&str],
        client_args: &[&str],
    ) -> RealEtcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer = format!("http://127.0.0.1:{}", free_port());
        RealEtcd::spawn(dir, &peer, client_port, scheme, extra, client_args, true)
    }

    /// etcd started on a data dir that real `etcdctl snapshot restore` made of `snapshot`.
    pub fn from_snapshot(snapshot: &Path) -> RealEtcd {
        let dir = tempfile::tempdir().expect("tempdir");
        let peer = format!("http://127.0.0.1:{}", free_port());
        let data = dir.path().join("data");
        let restored = etcdctl(
            "127.0.0.1:1",
            &[
                "snapshot",
                "restore",
                snapshot.to_str().expect("a UTF-8 path"),
                "--data-dir",
                data.to_str().expect("a UTF-8 path"),
                "--name",
                "default",
                "--initial-cluster",
                &format!("default={peer}"),
                "--initial-advertise-peer-urls",
                &peer,
            ],
            None,
        );
        assert_eq!(restored.code, 0, "etcdctl snapshot restore: {restored:?}");
        RealEtcd::spawn(dir, &peer, free_port(), "http", &[], &[], true)
    }

    /// Starts etcd; with `wait`, until it is healthy.
    fn spawn(
        dir: tempfile::TempDir,
        peer: &str,
        client_port: u16,
        scheme: &str,
        extra: &[&str],
        client_args: &[&str],
        wait: bool,
    ) -> RealEtcd {
        let bin = ["/usr/bin/etcd", "/usr/local/bin/etcd"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .unwrap_or_else(|| {
                panic!("etcd not found: install Debian's etcd-server; .ci/run does this")
            });
        let client = format!("{scheme}://127.0.0.1:{client_port}");
        let log = std::fs::File::create(dir.path().join("etcd.log")).expect("etcd log");
        let child = Command::new(bin)
            .arg("--data-dir")
            .arg(dir.path().join("data"))
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", peer])
            .args(["--initial-advertise-peer-urls", peer])
            .args(["--initial-cluster", &format!("default={peer}")])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::from(log))
            .spawn()
            .expect("spawn etcd");
        let e = RealEtcd {
            client_port,
            peer: peer.to_string(),
            child,
            _dir: dir,
        };
        if !wait {
            return e;
        }
        e.wait_healthy(scheme, client_args);
        e
    }

    /// Waits until the member answers its health check (with a leader).
    fn wait_healthy(&self, scheme: &str, client_args: &[&str]) {
        let client_port = self.client_port;
        let client = format!("{scheme}://127.0.0.1:{client_port}");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            let healthy = if scheme == "https" {
                let mut args = client_args.to_vec();
                args.extend(["endpoint", "health"]);
                etcdctl(&client, &args, None).code == 0
            } else {
                match http_get(client_port, "/health") {
                    Some(body) if body.contains("\"true\"") => true,
                    // An active alarm (one a restored snapshot carries) makes /health say false
                    // although etcd serves: etcdctl's check is a read.
                    Some(_) => etcdctl(&client, &["endpoint", "health"], None).code == 0,
                    None => false,
                }
            };
            if healthy {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("etcd did not become healthy");
    }

    /// `n` members of one new etcd cluster, named `m0`, `m1`, ..., each healthy.
    pub fn cluster(n: usize) -> Vec<RealEtcd> {
        let peers: Vec<String> = (0..n)
            .map(|_| format!("http://127.0.0.1:{}", free_port()))
            .collect();
        let initial = peers
            .iter()
            .enumerate()
            .map(|(i, p)| format!("m{i}={p}"))
            .collect::<Vec<_>>()
            .join(",");
        let members: Vec<RealEtcd> = peers
            .iter()
            .enumerate()
            .map(|(i, peer)| {
                let dir = tempfile::tempdir().expect("tempdir");
                let name = format!("m{i}");
                RealEtcd::spawn(
                    dir,
                    peer,
                    free_port(),
                    "http",
                    &["--name", &name, "--initial-cluster", &initial],
                    &[],
                    false,
                )
            })
            .collect();
        for m in &members {
            m.wait_healthy("http", &[]);
        }
        members
    }

    /// The member's peer URL.
    pub fn peer_url(&self) -> &str {
        &self.peer
    }

    pub fn endpoint(&self) -> String {
        format!("127.0.0.1:{}", self.client_port)
    }
}

impl Drop for RealEtcd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Replaces the digits after each occurrence of `prefix` with `N`.
fn mask_after(s: &str, prefix: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(i) = rest.find(prefix) {
        out.push_str(&rest[..i + prefix.len()]);
        rest = &rest[i + prefix.len()..];
        let digits = rest.len() - rest.trim_start_matches(|c: char| c.is_ascii_digit()).len();
        if digits > 0 {
            out.push('N');
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

/// Output of a client with what legitimately differs between two servers masked: cluster and
/// member IDs and the Raft term. Of stderr only `Error:` lines are kept (etcdctl's retry logs
/// carry timestamps).
pub fn normalized(run: &Run) -> (i32, String, String) {
    let mut out = run.stdout.clone();
    for p in [
        "\"cluster_id\":",
        "\"member_id\":",
        "\"raft_term\":",
        "\"ClusterID\" : ",
        "\"MemberID\" : ",
        "\"RaftTerm\" : ",
    ] {
        out = mask_after(&out, p);
    }
    let err = run
        .stderr
        .lines()
        .filter(|l| l.starts_with("Error:"))
        .collect::<Vec<_>>()
        .join("\n");
    (run.code, out, err)
}

/// A client command line and its standard input.
pub type Step = (&'static [&'static str], Option<&'static str>);

/// KV commands whose output etcdctl and cairnctl must reproduce exactly, run in this order on a
/// fresh member.
pub const KV_STEPS: &[Step] = &[
    (&["put", "foo", "bar"], None),
    (&["put", "foo2", "bar 2", "-w", "json"], None),
    (&["put", "foo", "bar3", "--prev-kv"], None),
    (&["put", "foo", "bar4", "--prev-kv", "-w", "json"], None),
    (&["put", "foo", "bar5", "-w", "fields"], None),
    (&["put", "foo", "bar6", "--prev-kv", "-w", "fields"], None),
    (&["put", "k1", "v1"], None),
    (&["put", "k2", "v2"], None),
    (&["put", "k3", "a"], None),
    (&["put", "k2", "v2b"], None),
    (&["put", "zz", "last"], None),
    (&["put", "stdin-key"], Some("from stdin")),
    (&["get", "foo"], None),
    (&["get", "foo", "-w", "json"], None),
    (&["get", "foo", "-w", "fields"], None),
    (&["get", "foo", "--prefix"], None),
    (&["get", "foo", "--prefix", "--hex"], None),
    (
        &["get", "k", "--prefix", "--limit", "2", "-w", "json"],
        None,
    ),
    (
        &["get", "k", "--prefix", "--limit", "2", "-w", "fields"],
        None,
    ),
    (&["get", "k", "--prefix", "--sort-by", "VALUE"], None),
    (
        &[
            "get",
            "k",
            "--prefix",
            "--sort-by",
            "MODIFY",
            "--order",
            "DESCEND",
        ],
        None,
    ),
    (
        &[
            "get",
            "k",
            "--prefix",
            "--sort-by",
            "CREATE",
            "--order",
            "ASCEND",
            "-w",
            "json",
        ],
        None,
    ),
    (
        &["get", "k", "--prefix", "--order", "DESCEND", "--limit", "2"],
        None,
    ),
    (
        &[
            "get",
            "k",
            "--prefix",
            "--sort-by",
            "VERSION",
            "--order",
            "DESCEND",
            "--limit",
            "1",
        ],
        None,
    ),
    (&["get", "k1", "k3"], None),
    (&["get", "k2", "--from-key"], None),
    (&["get", "", "--from-key", "--keys-only"], None),
    (&["get", "k", "--prefix", "--keys-only", "-w", "json"], None),
    (&["get", "k", "--prefix", "--print-value-only"], None),
    (&["get", "foo", "--rev", "3"], None),
    (&["get", "foo", "--rev", "3", "-w", "json"], None),
    (&["get", "k", "--prefix", "--consistency", "s"], None),
    (&["get", "nokey", "-w", "json"], None),
    (&["get", "nokey", "-w", "fields"], None),
    (&["get", "nokey"], None),
    (&["get", "foo", "--rev", "1000"], None),
    (&["get", ""], None),
    (&["put", "", "x"], None),
    (&["del", "nothing"], None),
    (&["del", "k", "--prefix", "--prev-kv"], None),
    (&["put", "a", "1"], None),
    (&["put", "b", "2"], None),
    (&["del", "a", "c", "--prev-kv", "-w", "json"], None),
    (&["put", "a", "1"], None),
    (&["del", "a", "-w", "fields", "--prev-kv"], None),
    (&["put", "d1", "x"], None),
    (&["put", "d2", "y"], None),
    (&["del", "d", "--from-key"], None),
    (&["get", "", "--from-key", "-w", "json"], None),
];

/// Txn and compaction commands, run in this order on a fresh member.
pub const TXN_STEPS: &[Step] = &[
    (&["put", "k1", "v1"], None),
    (&["put", "k2", "v2"], None),
    (
        &["txn", "-i"],
        Some("mod(\"k1\") > \"0\"\n\nput k1 \"new v\"\nget k2\n\nput k9 nine\n\n"),
    ),
    (
        &["txn", "-w", "json"],
        Some("value(\"k1\") = \"zzz\"\n\nput k1 \"new v\"\n\nget k2\ndel k9\n\n"),
    ),
    (
        &["txn", "-w", "fields"],
        Some("value(\"k1\") = \"zzz\"\n\nput k1 \"new v\"\n\nget k2\ndel k9\n\n"),
    ),
    (
        &["txn"],
        Some(
            "version(\"k1\") = \"2\"\nvalue(\"k2\") != \"x\"\n\nput k1 \"again\"\ndel k9\nget k1 --prefix\n\n\n",
        ),
    ),
    (
        &["txn"],
        Some("create(\"k1\") < \"100\"\n\ndel k --prefix --prev-kv\n\n\n"),
    ),
    (
        &["txn", "-w", "json"],
        Some("mod(\"nokey\") = \"0\"\n\nput nokey created\nget nokey\n\n\n"),
    ),
    // Two writes of one key in a txn are refused.
    (&["txn"], Some("\nput x 1\nput x 2\n\n\n")),
    // Read-only txns (served without a log entry) answer exactly as etcd's.
    (
        &["txn", "-w", "json"],
        Some("version(\"k1\") > \"0\"\n\nget k1\nget k --prefix --keys-only\n\nget nokey\n\n"),
    ),
    (
        &["txn"],
        Some("value(\"k2\") = \"nope\"\n\nget k1\n\nget k2\nget nokey\n\n"),
    ),
    (
        &["txn", "-w", "fields"],
        Some("\nget k1 --consistency=s\n\n\n"),
    ),
    (&["put", "c", "1"], None),
    (&["put", "c", "2"], None),
    (&["put", "c", "3"], None),
    (&["compaction", "5"], None),
    (&["compaction", "5"], None),
    (&["compaction", "4"], None),
    (&["compaction", "100"], None),
    (&["get", "c", "--rev", "4"], None),
    (&["get", "c", "--rev", "5"], None),
    (&["get", "c", "-w", "json"], None),
    (&["compaction", "7", "--physical"], None),
    (&["get", "c", "--rev", "6"], None),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_ids() {
        assert_eq!(
            mask_after("{\"cluster_id\":123,\"x\":1}", "\"cluster_id\":"),
            "{\"cluster_id\":N,\"x\":1}"
        );
    }
}
