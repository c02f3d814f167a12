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

/// The client id inside a key made by [`replay_key`], or `None` for a key in another format
/// (a store used directly, not through the verifier).
pub(crate) fn client_of_key(key: &str) -> Option<&str> {
    let (len, rest) = key.split_once(':')?;
    if len.is_empty() || !len.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let len: usize = len.parse().ok()?;
    let client = rest.get(..len)?;
    rest.get(len..)?.strip_prefix(':').map(|_| client)
}

/// An in-process replay store: bounded, expiring. Right for a single server process; use the
/// Redis store when several replicas share clients.
///
/// When it is full of unexpired entries it refuses new ones (fail closed) instead of evicting
/// one early, which would reopen a replay window.
///
/// Besides the global bound, each client (the client id in the verifier's replay key, i.e. the
/// assertion's `iss`) may hold at most a per-client number of unexpired entries (by default a
/// sixteenth of the capacity, at least 1; see
/// [`with_per_client_capacity`](Self::with_per_client_capacity)). A client at its bound has its
/// new `jti`s refused (fail closed for that client only) while other clients keep working, so
/// one client cannot lock every other out by filling the store. Keys not made by the verifier
/// (no client id in them) count only against the global bound.
///
/// An entry recorded until `expires_at` is kept through the whole second `expires_at`
/// (inclusive): the verifier still accepts a token at `now == exp + leeway`, so its `jti` must
/// still be known then.
pub struct MemoryReplayStore {
    capacity: usize,
    per_client: usize,
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    by_key: HashMap<String, i64>,
    by_expiry: BTreeMap<(i64, u64), String>,
    /// Unexpired entries per client id (only clients with at least one).
    per_client: HashMap<String, usize>,
    seq: u64,
}

impl fmt::Debug for MemoryReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MemoryReplayStore")
            .field("capacity", &self.capacity)
            .field("per_client_capacity", &self.per_client)
            .field("len", &self.len())
            .finish()
    }
}

impl Default for MemoryReplayStore {
    /// Room for 100,000 live `jti`s, at most 6,250 of them per client.
    fn default() -> Self {
        MemoryReplayStore::new(100_000)
    }
}

impl MemoryReplayStore {
    /// The default per-client bound for a store of `capacity`: `capacity / 16`, at least 1.
    pub const PER_CLIENT_DIVISOR: usize = 16;

    /// A store holding at most `capacity` unexpired entries, at most `capacity / 16` (at least 1)
    /// of them for any one client.
    pub fn new(capacity: usize) -> Self {
        let capacity = capacity.max(1);
        MemoryReplayStore {
            capacity,
            per_client: (capacity / Self::PER_CLIENT_DIVISOR).max(1),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// Sets the most unexpired entries one client may hold (clamped to 1..=capacity). Size it
    /// to the busiest legitimate client: its assertions per second × (assertion lifetime +
    /// leeway + 1 s).
    pub fn with_per_client_capacity(mut self, per_client: usize) -> Self {
        self.per_client = per_client.clamp(1, self.capacity);
        self
    }

    /// The global bound on unexpired entries.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The bound on unexpired entries of one client.
    pub fn per_client_capacity(&self) -> usize {
        self.per_client
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
    /// Forgets the entries whose last second is over: `expires_at < now`. An entry with
    /// `expires_at == now` stays, because the verifier still accepts its token this second.
    fn purge(&mut self, now: i64) {
        while let Some((&(exp, seq), _)) = self.by_expiry.iter().next() {
            if exp >= now {
                break;
            }
            if let Some(key) = self.by_expiry.remove(&(exp, seq)) {
                // Only remove the key if this expiry entry is the current one for it.
                if self.by_key.get(&key) == Some(&exp) {
                    self.by_key.remove(&key);
                    if let Some(client) = client_of_key(&key) {
                        self.release(client);
                    }
                }
            }
        }
    }

    fn release(&mut self, client: &str) {
        if let Some(n) = self.per_client.get_mut(client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_client.remove(client);
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
        // Inclusive: an entry recorded until `expires_at` still counts during that second.
        if inner.by_key.get(key).is_some_and(|exp| *exp >= now) {
            return Ok(false);
        }
        let client = client_of_key(key);
        if let Some(client) = client {
            let held = inner.per_client.get(client).copied().unwrap_or(0);
            if held >= self.per_client {
                return Err(ReplayStoreError(format!(
                    "in-memory replay store: client {client:?} holds its per-client limit of {} unexpired jtis; refusing its new jti rather than forgetting one early",
                    self.per_client
                )));
            }
        }
        if inner.by_key.len() >= self.capacity {
            return Err(ReplayStoreError(format!(
                "in-memory replay store is full ({} unexpired jtis); refusing rather than forgetting one early",
                self.capacity
            )));
        }
        inner.seq += 1;
        let seq = inner.seq;
        if inner.by_key.insert(key.to_string(), expires_at).is_some() {
            // Unreachable after the purge (every held key is unexpired); keep the count right.
            if let Some(client) = client {
                inner.release(client);
            }
        }
        if let Some(client) = client {
            *inner.per_client.entry(client.to_string()).or_insert(0) += 1;
        }
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
        assert!(s.insert_if_absent("c", 200, 101).await.unwrap());
    }

    #[test]
    fn keys_do_not_collide() {
        assert_ne!(replay_key("a", "b:c"), replay_key("a:b", "c"));
    }

    #[test]
    fn client_is_read_back_from_the_key() {
        assert_eq!(client_of_key(&replay_key("a:b", "c")), Some("a:b"));
        assert_eq!(client_of_key(&replay_key("a", "b:c")), Some("a"));
        assert_eq!(client_of_key(&replay_key("", "j")), Some(""));
        assert_eq!(client_of_key(&replay_key("clïent", "j")), Some("clïent"));
        for k in ["k", "x:y:z", "9:short:j", "3:abcj", ":a:b", "+1:a:b"] {
            assert_eq!(client_of_key(k), None, "{k}");
        }
    }

    /// The verifier accepts a token while `now <= exp + leeway` and records its jti until
    /// `exp + leeway`. At exactly that second a second use must be a replay (the old store
    /// purged the entry and accepted the jti again on every call during that second).
    #[tokio::test]
    async fn replay_refused_at_the_last_accepting_second() {
        let s = MemoryReplayStore::new(10).with_per_client_capacity(10);
        let key = replay_key("c", "j");
        let last = 1_000 + 5; // exp + leeway
        assert!(s.insert_if_absent(&key, last, last).await.unwrap());
        assert!(!s.insert_if_absent(&key, last, last).await.unwrap());
        assert!(!s.insert_if_absent(&key, last, last).await.unwrap());
        // Also when first recorded earlier.
        let key2 = replay_key("c", "j2");
        assert!(s.insert_if_absent(&key2, last, 1_000).await.unwrap());
        assert!(!s.insert_if_absent(&key2, last, last).await.unwrap());
        // Forgotten once that second is over (the token is expired by then).
        assert!(
            s.insert_if_absent(&key2, last + 100, last + 1)
                .await
                .unwrap()
        );
    }

    #[tokio::test]
    async fn one_client_at_its_bound_does_not_lock_out_others() {
        let s = MemoryReplayStore::new(100).with_per_client_capacity(3);
        for j in 0..3 {
            let k = replay_key("a", &j.to_string());
            assert!(s.insert_if_absent(&k, 100, 0).await.unwrap());
        }
        let e = s
            .insert_if_absent(&replay_key("a", "new"), 100, 0)
            .await
            .unwrap_err();
        assert!(
            e.0.contains("per-client limit of 3") && e.0.contains("\"a\""),
            "{e}"
        );
        // A's replays are still recognised, B still works.
        assert!(
            !s.insert_if_absent(&replay_key("a", "0"), 100, 1)
                .await
                .unwrap()
        );
        assert!(
            s.insert_if_absent(&replay_key("b", "0"), 100, 1)
                .await
                .unwrap()
        );
        // A's quota frees up when its entries expire.
        assert!(
            s.insert_if_absent(&replay_key("a", "new"), 200, 101)
                .await
                .unwrap()
        );
        assert_eq!(s.inner.lock().unwrap().per_client.get("a"), Some(&1));
        assert_eq!(s.inner.lock().unwrap().per_client.get("b"), None);
    }

    #[tokio::test]
    async fn global_bound_still_holds_across_clients() {
        let s = MemoryReplayStore::new(4).with_per_client_capacity(2);
        for c in ["a", "b"] {
            for j in ["1", "2"] {
                assert!(s.insert_if_absent(&replay_key(c, j), 100, 0).await.unwrap());
            }
        }
        let e = s
            .insert_if_absent(&replay_key("c", "1"), 100, 0)
            .await
            .unwrap_err();
        assert!(e.0.contains("full"), "{e}");
    }

    #[test]
    fn per_client_default_is_a_sixteenth() {
        assert_eq!(MemoryReplayStore::default().per_client_capacity(), 6_250);
        assert_eq!(MemoryReplayStore::new(2).per_client_capacity(), 1);
        assert_eq!(
            MemoryReplayStore::new(10)
                .with_per_client_capacity(50)
                .per_client_capacity(),
            10
        );
    }
}
