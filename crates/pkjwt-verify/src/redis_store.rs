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

/// TLS settings for a `rediss://` URL beyond the defaults (the operating system's trust store,
/// no client certificate).
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct RedisTls {
    /// PEM certificate(s) of the CA that issued the server's certificate, trusted instead of
    /// the operating system's store (a private CA).
    pub root_ca_pem: Option<Vec<u8>>,
    /// PEM client certificate and private key, for servers that require mutual TLS
    /// (`tls-auth-clients yes`). The key is zeroized when this is dropped.
    pub client_identity: Option<(Vec<u8>, zeroize::Zeroizing<Vec<u8>>)>,
}

impl fmt::Debug for RedisTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisTls")
            .field("root_ca_pem", &self.root_ca_pem.as_ref().map(|c| c.len()))
            .field("client_identity", &self.client_identity.is_some())
            .finish()
    }
}

impl RedisTls {
    /// Trusts the CA certificate(s) in `pem` for the server's certificate.
    pub fn root_ca(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_ca_pem = Some(pem.into());
        self
    }

    /// Presents a client certificate (PEM) and its private key (PEM) to the server.
    pub fn client_identity(mut self, cert_pem: impl Into<Vec<u8>>, key_pem: Vec<u8>) -> Self {
        self.client_identity = Some((cert_pem.into(), zeroize::Zeroizing::new(key_pem)));
        self
    }
}

impl RedisReplayStore {
    /// Connects to `url`: `redis://host:port/db`, or `rediss://host:port/db` for TLS with the
    /// operating system's trust store (use [`connect_tls`](Self::connect_tls) for a private CA
    /// or a client certificate). Keys are `<prefix><client id length>:<client id>:<jti>`; use one
    /// prefix per authorization server. Each operation has `timeout` to complete (connect and
    /// response), 2 s is a sensible value.
    pub async fn connect(
        url: &str,
        prefix: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, ReplayStoreError> {
        let url_redacted = redact(url);
        let client = redis::Client::open(url)
            .map_err(|e| ReplayStoreError(format!("invalid Redis URL {url_redacted}: {e}")))?;
        Self::with_client(client, url_redacted, prefix.into(), timeout).await
    }

    /// Connects to a `rediss://` URL with the TLS settings in `tls`.
    pub async fn connect_tls(
        url: &str,
        tls: &RedisTls,
        prefix: impl Into<String>,
        timeout: Duration,
    ) -> Result<Self, ReplayStoreError> {
        let url_redacted = redact(url);
        if !url.starts_with("rediss://") {
            return Err(ReplayStoreError(format!(
                "TLS settings were given for {url_redacted}: expected a rediss:// URL"
            )));
        }
        let certs = redis::TlsCertificates {
            client_tls: tls
                .client_identity
                .as_ref()
                .map(|(cert, key)| redis::ClientTlsConfig {
                    client_cert: cert.clone(),
                    client_key: key.to_vec(),
                }),
            root_cert: tls.root_ca_pem.clone(),
        };
        let client = redis::Client::build_with_tls(url, certs).map_err(|e| {
            ReplayStoreError(format!(
                "Redis at {url_redacted}: the TLS settings are not usable: {e}"
            ))
        })?;
        Self::with_client(client, url_redacted, prefix.into(), timeout).await
    }

    async fn with_client(
        client: redis::Client,
        url_redacted: String,
        prefix: String,
        timeout: Duration,
    ) -> Result<Self, ReplayStoreError> {
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
            prefix,
            timeout,
            url_redacted,
        })
    }
}

/// The key's time to live in milliseconds. The verifier accepts a token through the whole second
/// `expires_at` (`now <= exp + leeway`, in whole seconds) while the clock's `now` is truncated:
/// a key set at `now + 0.9 s` with `expires_at - now` seconds to live would vanish at
/// `expires_at + 0.9 s`, before that second is over. One second of padding keeps the key until
/// strictly after the last accepting second. At least 1 s, saturating.
pub(crate) fn ttl_ms(expires_at: i64, now: i64) -> i64 {
    expires_at
        .saturating_sub(now)
        .saturating_add(1)
        .clamp(1, i64::MAX / 1000)
        * 1000
}

#[async_trait]
impl ReplayStore for RedisReplayStore {
    async fn insert_if_absent(
        &self,
        key: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<bool, ReplayStoreError> {
        let ttl_ms = ttl_ms(expires_at, now);
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

#[cfg(test)]
mod tests {
    use super::ttl_ms;

    #[test]
    fn ttl_outlives_the_last_accepting_second() {
        // The token is accepted through the whole second exp + leeway (= expires_at) while `now`
        // is a truncated clock: set at now + 0.9 s, the key must outlive expires_at + 1 s. The
        // old computation (expires_at - now seconds) let it vanish at expires_at + 0.9 s.
        assert_eq!(ttl_ms(1_005, 1_004), 2_000);
        assert_eq!(ttl_ms(1_065, 1_000), 66_000);
        // First use at exactly exp + leeway: still lives past the end of that second.
        assert_eq!(ttl_ms(1_005, 1_005), 1_000);
        // Past expiry (not reached through the verifier) still a positive TTL.
        assert_eq!(ttl_ms(900, 1_000), 1_000);
        // No overflow.
        assert_eq!(ttl_ms(i64::MAX, i64::MIN), (i64::MAX / 1000) * 1000);
        assert_eq!(ttl_ms(i64::MIN, i64::MAX), 1_000);
    }
}
