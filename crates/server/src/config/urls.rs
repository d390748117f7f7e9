//! URL lists as etcd's `--*-urls` flags take them.

use super::ConfigError;
use std::net::{SocketAddr, ToSocketAddrs};

/// The socket addresses a `--listen-*-urls` list names, each with whether it is `https://`,
/// without repeats.
pub(super) fn listen_addrs(
    flag: &'static str,
    urls: &str,
) -> Result<Vec<(SocketAddr, bool)>, ConfigError> {
    let mut out = Vec::new();
    for u in split_list(urls) {
        let tls = is_tls_url(&u);
        for a in parse_url(flag, &u)? {
            if !out.iter().any(|(seen, _)| *seen == a) {
                out.push((a, tls));
            }
        }
    }
    Ok(out)
}

pub fn split_list(s: &str) -> Vec<String> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(str::to_string)
        .collect()
}

/// Whether a URL names TLS (`https://`).
pub fn is_tls_url(url: &str) -> bool {
    url.trim().starts_with("https://")
}

/// Parses `http://host:port` (or `https://`) into socket addresses (a name such as `localhost` may give several).
pub fn parse_url(flag: &'static str, url: &str) -> Result<Vec<SocketAddr>, ConfigError> {
    let bad = |reason: &str| ConfigError::BadUrl {
        flag,
        url: url.to_string(),
        reason: reason.to_string(),
    };
    let rest = if let Some(r) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    {
        r
    } else {
        return Err(bad("URL scheme must be http or https"));
    };
    let hostport = rest.trim_end_matches('/');
    if hostport.contains('/') {
        return Err(bad("URL must not have a path"));
    }
    let (host, port) = hostport
        .rsplit_once(':')
        .ok_or_else(|| bad("missing port"))?;
    let port: u16 = port.parse().map_err(|_| bad("invalid port"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let addrs: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|e| bad(&format!("cannot resolve host: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(bad("host resolves to no address"));
    }
    // `localhost` resolving to both families would bind twice; etcd binds the first.
    Ok(if host == "localhost" {
        addrs
            .into_iter()
            .filter(SocketAddr::is_ipv4)
            .take(1)
            .collect()
    } else {
        addrs
    })
}
