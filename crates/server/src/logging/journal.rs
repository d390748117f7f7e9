//! `--log-outputs systemd/journal`: each line goes to journald over its native datagram
//! protocol, with the priority of its level, as etcd's journal writer sends it.

use std::os::unix::net::UnixDatagram;

/// journald's socket; `CAIRN_JOURNAL_SOCKET` points elsewhere (tests stand in for journald).
const SOCKET: &str = "/run/systemd/journal/socket";

pub(crate) struct Journal {
    socket: UnixDatagram,
    path: String,
}

impl Journal {
    pub(crate) fn connect() -> Result<Journal, String> {
        let path = std::env::var("CAIRN_JOURNAL_SOCKET").unwrap_or_else(|_| SOCKET.to_string());
        // Checked now, as etcd does: a unit that asks for the journal where there is none
        // must not start and log nowhere.
        let probe =
            UnixDatagram::unbound().map_err(|e| format!("failed to find systemd journal: {e}"))?;
        probe
            .connect(&path)
            .map_err(|e| format!("failed to find systemd journal at {path}: {e}"))?;
        // Entries are addressed one by one (a connected socket would stay broken after
        // journald restarts), and never block: a full journal loses lines rather than stalling
        // the threads that log, the Raft thread among them.
        let socket = UnixDatagram::unbound()
            .and_then(|s| s.set_nonblocking(true).map(|()| s))
            .map_err(|e| format!("failed to find systemd journal: {e}"))?;
        Ok(Journal { socket, path })
    }

    /// One entry: MESSAGE is the line without its newline.
    pub(crate) fn send(&self, line: &[u8], level: tracing::Level) -> std::io::Result<()> {
        let priority = match level {
            tracing::Level::ERROR => 3,
            tracing::Level::WARN => 4,
            tracing::Level::INFO => 6,
            tracing::Level::DEBUG | tracing::Level::TRACE => 7,
        };
        let message = line.strip_suffix(b"\n").unwrap_or(line);
        let mut entry = Vec::with_capacity(message.len() + 64);
        entry.extend_from_slice(b"PRIORITY=");
        entry.extend_from_slice(priority.to_string().as_bytes());
        entry.extend_from_slice(b"\nSYSLOG_IDENTIFIER=cairn\n");
        if message.contains(&b'\n') {
            // The native protocol's binary form: name, newline, little-endian length, value.
            entry.extend_from_slice(b"MESSAGE\n");
            entry.extend_from_slice(&(message.len() as u64).to_le_bytes());
            entry.extend_from_slice(message);
            entry.push(b'\n');
        } else {
            entry.extend_from_slice(b"MESSAGE=");
            entry.extend_from_slice(message);
            entry.push(b'\n');
        }
        self.socket
            .send_to(&entry, &self.path)
            .map(|_| ())
            .map_err(|e| std::io::Error::new(e.kind(), format!("journal at {}: {e}", self.path)))
    }
}
