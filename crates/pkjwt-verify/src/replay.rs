//! Single-use `jti`s: the [`ReplayStore`] trait and the bounded in-memory store
//! ([`MemoryReplayStore`]). The Redis store for several replicas is in the `redis_store` module
//! (feature `redis`).
//!
//! A store answers one question atomically: "record this key until this time, unless it is
//! already recorded". It fails closed: when it cannot answer (full, unreachable), the verifier
//! refuses the token rather than risk accepting a replay.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::Mutex;

use async_trait::async_trait;

/// Why a replay store could not answer. The verifier turns it into
/// [`crate::Rejection::ReplayStoreUnavailable`] and refuses the token.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ReplayStoreError(pub String);

/// Remembers used `jti`s until they expire.
#[async_trait]
pub trait ReplayStore: fmt::Debug + Send + Sync {
    /// Atomically records `key` as used until `expires_at` (seconds since the epoch) unless it
    /// is already recorded and not yet expired. Returns `Ok(true)` on first use, `Ok(false)`
    /// for a replay. `now` is the verifier's clock, so tests can move time.
    async fn insert_if_absent(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayStoreError>;
}

/// The replay key of a client's `jti`: length-prefixed so that no (client, jti) pair can collide
/// with another (`a` + `b:c` vs `a:b` + `c`).
pub(crate) fn replay_key(client_id: &str, jti: &str) -> String {
    format!("{}:{client_id}:{jti}", client_id.len())
}

/// An in-process replay store: bounded, expiring. Right for a single server process; use the
/// Redis store when several replicas share clients.
///
/// When it is full of unexpired entries it refuses new ones (fail closed) instead of evicting
/// one early, which would reopen a replay window.
pub struct MemoryReplayStore {
    capacity: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<String, i64>,
    by_expiry: BTreeMap<(i64, u64), String>,
    seq: u64,
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &self.capacity)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for MemoryReplayStore {
    /// Room for 100,000 live `jti`s.
    fn default() -> Self {
        MemoryReplayStore::new(100_000)
    }
}

impl MemoryReplayStore {
    /// A store holding at most `capacity` unexpired entries.
    pub fn new(capacity: usize) -> Self {
        MemoryReplayStore {
            capacity: capacity.max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Number of entries held (expired ones may linger until the next insert).
    pub fn len(&self) -> usize {
        self.inner.lock().map(|i| i.by_key.len()).unwrap_or(0)
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn purge(&mut self, now: i64) {
        while let Some((&(exp, seq), _)) = self.by_expiry.iter().next() {
            if exp > now {
                break;
            }
            if let Some(key) = self.by_expiry.remove(&(exp, seq)) {
                // Only remove the key if this expiry entry is the current one for it.
                if self.by_key.get(&key) == Some(&exp) {
                    self.by_key.remove(&key);
                }
            }
        }
    }
}

#[async_trait]
impl ReplayStore for MemoryReplayStore {
    async fn insert_if_absent(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayStoreError> {
        let mut inner = self
            .inner
            .lock()
            .map_err(|_| ReplayStoreError("in-memory replay store lock poisoned".into()))?;
        inner.purge(now);
        if inner.by_key.get(key).is_some_and(|exp| *exp > now) {
            return Ok(false);
        }
        if inner.by_key.len() >= self.capacity {
            return Err(ReplayStoreError(format!(
                "in-memory replay store is full ({} unexpired jtis); refusing rather than forgetting one early",
                self.capacity
            )));
        }
        inner.seq += 1;
        let seq = inner.seq;
        inner.by_key.insert(key.to_string(), expires_at);
        inner.by_expiry.insert((expires_at, seq), key.to_string());
        Ok(true)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn first_use_then_replay_then_expiry() {
        let s = MemoryReplayStore::new(10);
        assert!(s.insert_if_absent("k", 100, 50).await.unwrap());
        assert!(!s.insert_if_absent("k", 100, 60).await.unwrap());
        // After expiry the key is forgotten (the token itself is expired by then).
        assert!(s.insert_if_absent("k", 200, 101).await.unwrap());
        assert_eq!(s.len(), 1);
    }

    #[tokio::test]
    async fn full_store_fails_closed_until_entries_expire() {
        let s = MemoryReplayStore::new(2);
        assert!(s.insert_if_absent("a", 100, 0).await.unwrap());
        assert!(s.insert_if_absent("b", 100, 0).await.unwrap());
        let e = s.insert_if_absent("c", 100, 0).await.unwrap_err();
        assert!(e.0.contains("full"), "{e}");
        // A replay is still recognised when full.
        assert!(!s.insert_if_absent("a", 100, 1).await.unwrap());
        assert!(s.insert_if_absent("c", 200, 100).await.unwrap());
    }

    #[test]
    fn keys_do_not_collide() {
        assert_ne!(replay_key("a", "b:c"), replay_key("a:b", "c"));
    }
}
