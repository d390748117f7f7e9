//! systemd's readiness protocol: a `Type=notify` unit waits for `READY=1` on `$NOTIFY_SOCKET`
//! before it counts the member as started (and before units ordered after it start).

use std::os::unix::net::UnixDatagram;

/// Tells systemd the member is ready, if it runs under a unit that asked; false if it does not.
pub(crate) fn notify_ready() -> std::io::Result<bool> {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(false);
    };
    let socket = UnixDatagram::unbound()?;
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    if let Some(name) = bytes.strip_prefix(b"@") {
        send_abstract(&socket, name)?;
    } else {
        socket.send_to(b"READY=1", &path)?;
    }
    Ok(true)
}

/// Waits until the member serves (it has published itself through the log, as etcd waits
/// for), then notifies systemd.
pub(crate) async fn notify_when_ready(server: std::sync::Arc<crate::etcd::EtcdServer>) {
    while !server.is_published() {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    match notify_ready() {
        Ok(true) => tracing::info!("notified systemd that the member is ready"),
        Ok(false) => {}
        Err(e) => tracing::warn!(error = %e, "could not notify systemd of readiness"),
    }
}

/// An abstract socket (systemd's default): no file behind it.
#[cfg(target_os = "linux")]
fn send_abstract(socket: &UnixDatagram, name: &[u8]) -> std::io::Result<()> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(b"READY=1", &addr).map(|_| ())
}

#[cfg(not(target_os = "linux"))]
fn send_abstract(_: &UnixDatagram, _: &[u8]) -> std::io::Result<()> {
    Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "abstract sockets exist only on Linux",
    ))
}
