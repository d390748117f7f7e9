//! The cluster version and downgrades, as etcd 3.6 and 3.7 have them.
//!
//! Every Cairn member runs the same code and reports one etcd version (`crate::ETCD_VERSION`), so
//! the cluster version is that one unless a downgrade is enabled: then, as in etcd 3.6 and
//! later, the cluster runs at the target version
//! (one minor lower) until the downgrade is canceled, and reports it as its cluster and storage
//! version (`/version`, Status, `etcd_cluster_version`). Cairn's storage format is the same at
//! either version, so nothing on disk changes. etcd ends a downgrade by itself once every member
//! runs the older binary; a Cairn member never does, so a downgrade lasts until it is canceled.
//!
//! The downgrade state changes only by applying `InternalRequest.downgrade` and is kept in the
//! backend's meta table, in etcd's JSON (`{"target-version":"3.5.0","enabled":true}`), so a
//! restart or a snapshot carries it. The storage version is kept there too (`storageVersion`,
//! as etcd 3.6 keeps it): it follows the cluster version, and a member that finds another one
//! at start (`cairnutl migrate` wrote it while the member was stopped) moves it to the cluster
//! version, as etcd's storage version monitor does.

use crate::errors::ServerError;
use cairn_mvcc::{Applier, Store};
use cairn_proto::cairnpb::DowngradeInfoSet;
use cairn_proto::etcdserverpb::DowngradeInfo;
use parking_lot::RwLock;
use tonic::Status;

const DOWNGRADE_KEY: &str = "downgrade";
/// The storage version, "3.7.0" (etcd 3.6's `meta` bucket key of the same name).
pub const STORAGE_VERSION_KEY: &str = "storageVersion";

/// etcd's words for a refused downgrade request.
pub(crate) mod msg {
    pub const WRONG_FORMAT: &str = "etcdserver: wrong downgrade target version format";
    pub const INVALID_TARGET: &str = "etcdserver: invalid downgrade target version";
    pub const IN_PROGRESS: &str = "etcdserver: cluster has a downgrade job in progress";
    pub const NONE_IN_FLIGHT: &str = "etcdserver: no inflight downgrade job";
}

/// A cluster version: etcd compares only major and minor.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Version {
    pub major: u64,
    pub minor: u64,
}

impl Version {
    /// The version this build reports.
    pub fn server() -> Version {
        let mut parts = crate::ETCD_VERSION
            .split('.')
            .map(|p| p.parse().unwrap_or(0));
        Version {
            major: parts.next().unwrap_or(0),
            minor: parts.next().unwrap_or(0),
        }
    }

    /// As etcd parses a downgrade target: a semantic version, or one missing its patch
    /// ("3.5"); the patch and any pre-release are dropped.
    pub(crate) fn parse_target(text: &str) -> Result<Version, Status> {
        let parsed = semver_major_minor(text).or_else(|| semver_major_minor(&format!("{text}.0")));
        parsed.ok_or_else(|| Status::invalid_argument(msg::WRONG_FORMAT))
    }

    /// The only version a cluster at this version may be downgraded to.
    pub(crate) fn allowed_downgrade(self) -> Option<Version> {
        self.minor.checked_sub(1).map(|minor| Version {
            major: self.major,
            minor,
        })
    }

    /// "3.5.0": how the log and `/version` write it.
    pub fn full(self) -> String {
        format!("{}.{}.0", self.major, self.minor)
    }

    /// "3.5": how Status's clients and the Downgrade response write it.
    pub fn major_minor(self) -> String {
        format!("{}.{}", self.major, self.minor)
    }

    /// The storage version a backend records, if it records one.
    pub fn stored(store: &Store) -> Result<Option<Version>, ServerError> {
        let Some(raw) = store.meta(STORAGE_VERSION_KEY)? else {
            return Ok(None);
        };
        let text = String::from_utf8_lossy(&raw);
        semver_major_minor(&text)
            .map(Some)
            .ok_or_else(|| ServerError::Internal(format!("stored storage version {text:?}")))
    }
}

/// Major and minor of a strict semantic version (`MAJOR.MINOR.PATCH[-pre][+build]`, numbers
/// without leading zeros), as Go's semver package accepts it.
fn semver_major_minor(text: &str) -> Option<Version> {
    let core = text.split(['-', '+']).next()?;
    let rest = &text[core.len()..];
    if rest.starts_with('-') || rest.starts_with('+') {
        let tail = &rest[1..];
        if tail.is_empty()
            || !tail
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-' || c == '+')
        {
            return None;
        }
    }
    let numbers: Vec<&str> = core.split('.').collect();
    if numbers.len() != 3 {
        return None;
    }
    let mut parsed = [0u64; 3];
    for (slot, n) in parsed.iter_mut().zip(&numbers) {
        let leading_zero = n.len() > 1 && n.starts_with('0');
        if n.is_empty() || leading_zero || !n.chars().all(|c| c.is_ascii_digit()) {
            return None;
        }
        *slot = n.parse().ok()?;
    }
    Some(Version {
        major: parsed[0],
        minor: parsed[1],
    })
}

/// The downgrade in effect, if any, as the log describes it, and the storage version.
pub(crate) struct Versions {
    target: RwLock<Option<Version>>,
    storage: RwLock<Version>,
}

impl Versions {
    /// The state a member starts with; a storage version other than the cluster version (or
    /// none yet) is moved to it in the backend.
    pub(crate) fn load(store: &Store) -> Result<Versions, ServerError> {
        let versions = Versions {
            target: RwLock::default(),
            storage: RwLock::new(Version::server()),
        };
        versions.reload(store)?;
        let cluster = versions.cluster();
        let stored = Version::stored(store)?;
        if stored != Some(cluster) {
            if let Some(stored) = stored {
                tracing::info!(
                    cluster_version = %cluster.major_minor(),
                    storage_version = %stored.major_minor(),
                    "cluster version differs from storage version."
                );
            }
            let (index, term) = (store.consistent_index(), store.term());
            let mut a = store.begin_apply()?;
            a.put_meta(STORAGE_VERSION_KEY, cluster.full().as_bytes())?;
            a.commit(index, term, true)?;
            if stored.is_some() {
                tracing::info!(
                    new_storage_version = %cluster.full(),
                    "updated storage version"
                );
            }
            *versions.storage.write() = cluster;
        }
        Ok(versions)
    }

    /// Reads the state again (after the backend was replaced by a snapshot).
    pub(crate) fn reload(&self, store: &Store) -> Result<(), ServerError> {
        let target = match store.meta(DOWNGRADE_KEY)? {
            Some(raw) => decode(&raw)?,
            None => None,
        };
        *self.target.write() = target;
        *self.storage.write() = Version::stored(store)?.unwrap_or_else(|| self.cluster());
        Ok(())
    }

    /// The version the cluster runs at: the downgrade target while one is enabled.
    pub(crate) fn cluster(&self) -> Version {
        self.target.read().unwrap_or_else(Version::server)
    }

    /// The storage version the backend records: the cluster version, as etcd 3.6 and later
    /// migrate their schema to it.
    pub(crate) fn storage(&self) -> Version {
        *self.storage.read()
    }

    pub(crate) fn downgrade_info(&self) -> DowngradeInfo {
        match *self.target.read() {
            Some(target) => DowngradeInfo {
                enabled: true,
                target_version: target.full(),
            },
            None => DowngradeInfo::default(),
        }
    }

    pub(crate) fn downgrading(&self) -> bool {
        self.target.read().is_some()
    }

    /// Applies a downgrade enabled or canceled through the log.
    pub(crate) fn apply(
        &self,
        a: &mut Applier<'_>,
        req: &DowngradeInfoSet,
    ) -> Result<(), ServerError> {
        let target = if req.enabled {
            let target = Version::parse_target(&req.ver)
                .map_err(|_| ServerError::Internal(format!("downgrade target {:?}", req.ver)))?;
            Some(target)
        } else {
            None
        };
        a.put_meta(DOWNGRADE_KEY, encode(target).as_bytes())?;
        let before = std::mem::replace(&mut *self.target.write(), target);
        let cluster = self.cluster();
        a.put_meta(STORAGE_VERSION_KEY, cluster.full().as_bytes())?;
        *self.storage.write() = cluster;
        match (before, target) {
            (_, Some(target)) => tracing::info!(
                target_version = %target.full(),
                server_version = crate::ETCD_VERSION,
                "The server is ready to downgrade"
            ),
            (Some(was), None) => tracing::info!(
                target_version = %was.full(),
                cluster_version = %Version::server().full(),
                "the downgrade was canceled"
            ),
            (None, None) => {}
        }
        Ok(())
    }
}

/// etcd's JSON for the downgrade state.
fn encode(target: Option<Version>) -> String {
    let (version, enabled) = match target {
        Some(t) => (t.full(), true),
        None => (String::new(), false),
    };
    // Field order as etcd's struct writes it (the version is digits and dots only).
    format!(r#"{{"target-version":"{version}","enabled":{enabled}}}"#)
}

fn decode(raw: &[u8]) -> Result<Option<Version>, ServerError> {
    let bad = |e: String| ServerError::Internal(format!("stored downgrade state: {e}"));
    let value: serde_json::Value = serde_json::from_slice(raw).map_err(|e| bad(e.to_string()))?;
    if value["enabled"].as_bool() != Some(true) {
        return Ok(None);
    }
    let target = value["target-version"].as_str().unwrap_or_default();
    Version::parse_target(target)
        .map(Some)
        .map_err(|_| bad(format!("target {target:?}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_parse_as_etcd_parses_them() {
        let v = |major, minor| Some(Version { major, minor });
        for (text, want) in [
            ("3.5", v(3, 5)),
            ("3.5.0", v(3, 5)),
            ("3.5.17", v(3, 5)),
            ("3.5.0-alpha.0", v(3, 5)),
            ("3.5.1+build.7", v(3, 5)),
            ("v3.5", None),
            ("3", None),
            ("", None),
            ("abc", None),
            ("3.05", None),
            ("3.5.0.1", None),
            ("3.5-", None),
        ] {
            assert_eq!(Version::parse_target(text).ok(), want, "{text:?}");
        }
        let err = Version::parse_target("x")
            .err()
            .map(|s| s.message().to_string());
        assert_eq!(err.as_deref(), Some(msg::WRONG_FORMAT));
    }

    #[test]
    fn only_one_minor_down_is_allowed_and_the_state_reads_back() {
        let v36 = Version { major: 3, minor: 6 };
        assert_eq!(
            v36.allowed_downgrade(),
            Some(Version { major: 3, minor: 5 })
        );
        assert_eq!(Version { major: 4, minor: 0 }.allowed_downgrade(), None);
        assert_eq!(v36.full(), "3.6.0");
        assert_eq!(v36.major_minor(), "3.6");
        let on = encode(Some(Version { major: 3, minor: 5 }));
        assert_eq!(on, r#"{"target-version":"3.5.0","enabled":true}"#);
        assert_eq!(
            decode(on.as_bytes()).ok().flatten(),
            Some(Version { major: 3, minor: 5 })
        );
        let off = encode(None);
        assert_eq!(decode(off.as_bytes()).ok(), Some(None));
        assert!(decode(b"{").is_err());
    }
}
