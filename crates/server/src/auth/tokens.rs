//! etcd's simple tokens (`--auth-token simple`): an opaque `<16 random letters>.<log index>`
//! assigned when an Authenticate entry is applied, so every member knows it. A token lives
//! `--auth-token-ttl` seconds after its last use on this member, and is dropped when its user is
//! deleted or changes password and when auth is disabled. They are not persisted: after a
//! restart clients authenticate again (they do so on "invalid auth token"), as with etcd.

use parking_lot::RwLock;
use ring::rand::{SecureRandom, SystemRandom};
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

const PREFIX_LEN: usize = 16;

struct Entry {
    user: String,
    /// Milliseconds since `SimpleTokens::epoch` at the last use.
    last_used_ms: AtomicU64,
}

pub struct SimpleTokens {
    ttl: Duration,
    epoch: Instant,
    tokens: RwLock<HashMap<String, Arc<Entry>>>,
}

impl SimpleTokens {
    pub fn new(ttl: Duration) -> SimpleTokens {
        SimpleTokens {
            ttl,
            epoch: Instant::now(),
            tokens: RwLock::new(HashMap::new()),
        }
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The random half of a token, made by the member that takes the Authenticate request.
    pub fn prefix() -> Result<String, ring::error::Unspecified> {
        let mut bytes = [0u8; PREFIX_LEN];
        SystemRandom::new().fill(&mut bytes)?;
        // 52 letters; the slight bias of `% 52` is irrelevant for a name that only needs to
        // be unpredictable.
        Ok(bytes
            .iter()
            .map(|b| {
                let i = b % 52;
                char::from(if i < 26 { b'a' + i } else { b'A' + i - 26 })
            })
            .collect())
    }

    /// The log index a simple token was made at (the part after its last `.`).
    pub fn index_of(token: &str) -> Option<u64> {
        token.rsplit_once('.').and_then(|(_, i)| i.parse().ok())
    }

    /// Records the token of an applied Authenticate entry.
    pub fn assign(&self, prefix: &str, index: u64, user: &str) -> String {
        let token = format!("{prefix}.{index}");
        let now = self.now_ms();
        let mut tokens = self.tokens.write();
        // Expired tokens are swept here, where the map is locked for writing anyway.
        let ttl_ms = u64::try_from(self.ttl.as_millis()).unwrap_or(u64::MAX);
        tokens.retain(|_, e| now.saturating_sub(e.last_used_ms.load(Ordering::Relaxed)) < ttl_ms);
        tokens.insert(
            token.clone(),
            Arc::new(Entry {
                user: user.to_string(),
                last_used_ms: AtomicU64::new(now),
            }),
        );
        token
    }

    /// The user a live token stands for; using it starts its TTL again.
    pub fn user(&self, token: &str) -> Option<String> {
        let now = self.now_ms();
        let tokens = self.tokens.read();
        let entry = tokens.get(token)?;
        let last = entry.last_used_ms.load(Ordering::Relaxed);
        if Duration::from_millis(now.saturating_sub(last)) >= self.ttl {
            return None;
        }
        entry.last_used_ms.store(now, Ordering::Relaxed);
        Some(entry.user.clone())
    }

    pub fn drop_user(&self, user: &str) {
        self.tokens.write().retain(|_, e| e.user != user);
    }

    pub fn clear(&self) {
        self.tokens.write().clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_expire_unless_used_and_go_with_their_user() {
        let t = SimpleTokens::new(Duration::from_millis(200));
        let p = SimpleTokens::prefix().unwrap();
        assert_eq!(p.len(), 16);
        assert!(p.chars().all(|c| c.is_ascii_alphabetic()));
        let token = t.assign(&p, 7, "alice");
        assert_eq!(token, format!("{p}.7"));
        assert_eq!(t.user(&token).as_deref(), Some("alice"));
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(100));
            assert_eq!(t.user(&token).as_deref(), Some("alice"), "use renews");
        }
        std::thread::sleep(Duration::from_millis(250));
        assert_eq!(t.user(&token), None, "expired");
        let bob = t.assign(&p, 8, "bob");
        t.drop_user("bob");
        assert_eq!(t.user(&bob), None);
        assert_eq!(t.user("nonsense"), None);
    }
}
