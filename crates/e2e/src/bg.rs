//! Long-running client processes whose output a test reads line by line as it arrives, so a
//! test waits for what it expects instead of sleeping.

use crate::{cairnctl_bin, etcdctl_bin};
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A long-running client whose stdout arrives line by line.
pub struct Bg {
    child: Child,
    lines: Receiver<String>,
    stderr: Arc<Mutex<String>>,
}

impl Bg {
    pub fn spawn(cmd: Command) -> Bg {
        Bg::spawn_fed(cmd, None)
    }

    /// As [`Bg::spawn`], with `input` on the process's stdin (then closed).
    pub fn spawn_fed(mut cmd: Command, input: Option<&str>) -> Bg {
        let stdin = if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        };
        let mut child = cmd
            .stdin(stdin)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn client");
        if let (Some(mut pipe), Some(input)) = (child.stdin.take(), input) {
            use std::io::Write as _;
            let _ = pipe.write_all(input.as_bytes());
        }
        let (tx, lines) = channel();
        let out = child.stdout.take().expect("stdout");
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { return };
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut err = child.stderr.take().expect("stderr");
        let sink = stderr.clone();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            sink.lock().unwrap_or_else(|e| e.into_inner()).push_str(&s);
        });
        Bg {
            child,
            lines,
            stderr,
        }
    }

    pub fn cairnctl(ep: &str, args: &[&str]) -> Bg {
        let mut cmd = Command::new(cairnctl_bin());
        cmd.args(["--endpoints", ep]).args(args);
        Bg::spawn(cmd)
    }

    pub fn etcdctl(ep: &str, args: &[&str]) -> Bg {
        let mut cmd = Command::new(etcdctl_bin());
        cmd.env("ETCDCTL_API", "3")
            .args(["--endpoints", ep])
            .args(args);
        Bg::spawn(cmd)
    }

    /// The next `n` lines, failing the test if they take longer than `timeout`.
    pub fn lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        let mut got = Vec::new();
        while got.len() < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) => got.push(l),
                Err(RecvTimeoutError::Timeout) | Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "wanted {n} lines, got {got:?}; stderr: {}",
                        self.stderr_text()
                    )
                }
            }
        }
        got
    }

    /// Every line until none arrives for `quiet` (at least one is awaited, up to 10 s).
    pub fn drain(&self, quiet: Duration) -> Vec<String> {
        let mut got = self.lines(1, Duration::from_secs(10));
        while let Ok(l) = self.lines.recv_timeout(quiet) {
            got.push(l);
        }
        got
    }

    /// The lines still to come from a process that exited.
    pub fn rest(&self) -> Vec<String> {
        let mut got = Vec::new();
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(5)) {
            got.push(l);
        }
        got
    }

    /// Whether a line arrives within `wait`.
    pub fn quiet_for(&self, wait: Duration) -> bool {
        matches!(
            self.lines.recv_timeout(wait),
            Err(RecvTimeoutError::Timeout)
        )
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) on our own child's pid; it has not been reaped yet.
        unsafe {
            libc::kill(self.child.id() as i32, sig);
        }
    }

    /// Waits for the process to exit on its own and returns its exit code.
    pub fn exit_code(&mut self, timeout: Duration) -> i32 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "client did not exit; stderr: {}",
                self.stderr_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stderr_text(&self) -> String {
        self.stderr
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

impl Drop for Bg {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
