//! [`RedisReplayStore`]: single-use `jti`s shared by every replica of an authorization server.
//!
//! Each first use is one atomic `SET key 1 NX PX <ms>`: Redis answers `OK` to exactly one of any
//! number of concurrent writers and nil to the rest, and forgets the key when the assertion (plus
//! leeway) has expired. Any failure to get that answer (connection refused, timeout, an error
//! reply) is returned as an error, which the verifier turns into a refusal: an outage fails
//! closed.

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::replay::{ReplayStore, ReplayStoreError};

/// A replay store in Redis (feature `redis`).
#[derive(Clone)]
pub struct RedisReplayStore {
    conn: ConnectionManager,
    prefix: String,
    timeout: Duration,
    url_redacted: String,
}

impl fmt::Debug for RedisReplayStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisReplayStore")
            .field("url", &self.url_redacted)
            .field("prefix", &self.prefix)
            .field("timeout", &self.timeout)
            .finish()
    }
}

/// The URL without a password, for messages.
fn redact(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("***"));
            u.to_string()
        }
        Ok(u) => u.to_string(),
        Err(_) => "(unparsable URL)".into(),
    }
}

impl RedisReplayStore {
    /// Connects to `url` (`redis://host:port/db`, `rediss://` for TLS is not built in). Keys are
    /// `<prefix><client id length>:<client id>:<jti>`; use one prefix per authorization server.
    /// Each operation has `timeout` to complete (connect and response), 2 s is a sensible value.
    pub async fn connect(
        url: &str,
        prefix: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, ReplayStoreError> {
        let url_redacted = redact(url);
        let client = redis::Client::open(url)
            .map_err(|e| ReplayStoreError(format!("invalid Redis URL {url_redacted}: {e}")))?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(timeout))
            .set_response_timeout(Some(timeout))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let conn = tokio::time::timeout(
            timeout.saturating_mul(3),
            ConnectionManager::new_with_config(client, config),
        )
        .await
        .map_err(|_| ReplayStoreError(format!("Redis at {url_redacted}: connect timed out")))?
        .map_err(|e| ReplayStoreError(format!("Redis at {url_redacted}: {e}")))?;
        Ok(RedisReplayStore {
            conn,
            prefix: prefix.into(),
            timeout,
            url_redacted,
        })
    }
}

#[async_trait]
impl ReplayStore for RedisReplayStore {
    async fn insert_if_absent(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayStoreError> {
        let ttl_ms = expires_at.saturating_sub(now).clamp(1, i64::MAX / 1000) * 1000;
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("SET");
        cmd.arg(format!("{}{key}", self.prefix))
            .arg(1)
            .arg("NX")
            .arg("PX")
            .arg(ttl_ms);
        let reply: Option<String> = tokio::time::timeout(self.timeout, cmd.query_async(&mut conn))
            .await
            .map_err(|_| {
                ReplayStoreError(format!(
                    "Redis at {} did not answer within {:?}",
                    self.url_redacted, self.timeout
                ))
            })?
            .map_err(|e| ReplayStoreError(format!("Redis at {}: {e}", self.url_redacted)))?;
        match reply.as_deref() {
            Some("OK") => Ok(true),
            None => Ok(false),
            Some(other) => Err(ReplayStoreError(format!(
                "Redis at {} answered SET NX with {other:?}",
                self.url_redacted
            ))),
        }
    }
}
