//! The Key Vault REST calls this backend makes (API version [`API_VERSION`]): challenge-based
//! authentication, bounded retries that honour `Retry-After`, and the mapping of error bodies
//! (`{"error":{"code":…,"message":…,"innererror":{"code":…}}}`) to [`AzureKvError`].
//!
//! Authentication follows the Key Vault challenge protocol: the first request goes out without a
//! token and without its body (nothing is sent unprotected before the vault has said who it is);
//! the vault answers 401 with `WWW-Authenticate: Bearer authorization="…", resource="…"` (or
//! `scope="…"`); the resource must be the Key Vault / Managed HSM resource of the vault's own
//! domain, and only then is a token requested for it and the request sent with its body.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use azure_core::credentials::TokenCredential;
use pkjwt_core::uri::AZURE_KV_DOMAINS;
use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::error::{AzureKvError, Operation};

/// The REST API version of every call.
pub const API_VERSION: &str = "7.5";

/// Longest service message kept in an error.
const MAX_MESSAGE: usize = 400;

/// One vault, its client and credential.
pub(crate) struct Vault {
    pub http: reqwest::Client,
    /// `https://HOST[:PORT]`.
    pub base: String,
    pub credential: Arc<dyn TokenCredential>,
    pub loopback: bool,
    pub managed_hsm: bool,
    pub max_attempts: u32,
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    pub max_retry_after: Duration,
    /// The token scope learnt from the vault's challenge.
    scope: Mutex<Option<String>>,
}

/// One REST call.
pub(crate) struct Call<'a> {
    pub operation: Operation,
    /// The key (or certificate) identifier, for messages.
    pub key: &'a str,
    pub method: Method,
    /// Path below the vault, starting with `/`.
    pub path: String,
    pub body: Option<Value>,
    /// Safe to repeat after an answer that may have been processed (5xx, timeout).
    pub idempotent: bool,
}

#[allow(clippy::too_many_arguments)]
impl Vault {
    pub(crate) fn new(
        http: reqwest::Client,
        base: String,
        credential: Arc<dyn TokenCredential>,
        loopback: bool,
        managed_hsm: bool,
        options: &crate::AzureKvOptions,
    ) -> Self {
        Vault {
            http,
            base,
            credential,
            loopback,
            managed_hsm,
            max_attempts: options.max_attempts.max(1),
            initial_backoff: options.initial_backoff,
            max_backoff: options.max_backoff,
            max_retry_after: options.max_retry_after,
            scope: Mutex::new(None),
        }
    }

    fn current_scope(&self) -> Option<String> {
        // A poisoned lock only means another call panicked while holding a String; the value
        // is still whole.
        match self.scope.lock() {
            Ok(g) => g.clone(),
            Err(p) => p.into_inner().clone(),
        }
    }

    fn set_scope(&self, scope: String) {
        match self.scope.lock() {
            Ok(mut g) => *g = Some(scope),
            Err(p) => *p.into_inner() = Some(scope),
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.initial_backoff
            .saturating_mul(factor)
            .min(self.max_backoff)
    }

    /// Sends `call`, authenticating and retrying as the module documentation says; returns the
    /// JSON body of a 2xx answer.
    pub(crate) async fn call(&self, call: &Call<'_>) -> Result<Value, AzureKvError> {
        let op = call.operation;
        let key = call.key;
        let url = format!("{}{}?api-version={API_VERSION}", self.base, call.path);
        let mut attempt: u32 = 0;
        let mut challenges: u32 = 0;
        loop {
            attempt += 1;
            let scope = self.current_scope();
            let mut req = self.http.request(call.method.clone(), &url);
            let authorized = match &scope {
                Some(scope) => {
                    let token = self
                        .credential
                        .get_token(&[scope.as_str()], None)
                        .await
                        .map_err(|e| AzureKvError::Token {
                            operation: op,
                            key: key.to_owned(),
                            scope: scope.clone(),
                            reason: clip(&e.to_string()),
                        })?;
                    req = req.bearer_auth(token.token.secret());
                    if let Some(body) = &call.body {
                        req = req
                            .header(reqwest::header::CONTENT_TYPE, "application/json")
                            .body(body.to_string());
                    }
                    true
                }
                None => {
                    if call.body.is_some() {
                        // The challenge probe: same method and path, empty body.
                        req = req.header(reqwest::header::CONTENT_LENGTH, "0");
                    }
                    false
                }
            };
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    // A refused connection never reached the vault: safe to retry any call.
                    let retry = e.is_connect() || (call.idempotent && e.is_timeout());
                    if retry && attempt < self.max_attempts {
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                    return Err(AzureKvError::Transport {
                        operation: op,
                        key: key.to_owned(),
                        vault: self.base.clone(),
                        attempts: attempt,
                        reason: clip(&pkjwt_core::display_chain(&e)),
                    });
                }
            };
            let status = resp.status();
            let request_id = resp
                .headers()
                .get("x-ms-request-id")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-")
                .to_owned();
            let retry_after = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let challenge = resp
                .headers()
                .get(reqwest::header::WWW_AUTHENTICATE)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            let text = resp.text().await.unwrap_or_default();
            tracing::trace!(operation = %op, key, status = status.as_u16(), request_id = %request_id, "Key Vault call");

            if status == StatusCode::UNAUTHORIZED {
                let (code, message) = error_fields(&text);
                // A fresh challenge is answered once per call (the first contact, or a token the
                // vault no longer accepts); a second 401 is the vault refusing this identity.
                if challenges >= 1 {
                    return Err(AzureKvError::Unauthorized {
                        operation: op,
                        key: key.to_owned(),
                        code,
                        message,
                    });
                }
                challenges += 1;
                let header = challenge.ok_or_else(|| AzureKvError::Challenge {
                    operation: op,
                    key: key.to_owned(),
                    reason: format!("401 without a WWW-Authenticate header ({code}: {message})"),
                })?;
                let scope =
                    scope_from_challenge(&header, &self.base, self.loopback).map_err(|reason| {
                        AzureKvError::Challenge {
                            operation: op,
                            key: key.to_owned(),
                            reason,
                        }
                    })?;
                self.set_scope(scope);
                // The challenge round trip is not a failed attempt.
                attempt -= 1;
                continue;
            }
            if !authorized {
                // Key Vault always challenges an unauthenticated request; an endpoint that does
                // not is not Key Vault, and the probe carried no body to act on.
                return Err(AzureKvError::InvalidResponse {
                    operation: op,
                    key: key.to_owned(),
                    reason: format!(
                        "HTTP {} to a request without a token; Key Vault answers 401 with an \
                         authentication challenge",
                        status.as_u16()
                    ),
                });
            }
            if status.is_success() {
                return serde_json::from_str(&text).map_err(|e| AzureKvError::InvalidResponse {
                    operation: op,
                    key: key.to_owned(),
                    reason: format!("the body is not JSON: {e}"),
                });
            }
            let retryable = status == StatusCode::TOO_MANY_REQUESTS
                || (call.idempotent && matches!(status.as_u16(), 500 | 502 | 503 | 504));
            if retryable && attempt < self.max_attempts {
                match retry_after {
                    Some(wait) if wait > self.max_retry_after => {}
                    Some(wait) => {
                        tokio::time::sleep(wait).await;
                        continue;
                    }
                    None => {
                        tokio::time::sleep(self.backoff(attempt)).await;
                        continue;
                    }
                }
            }
            let (code, message) = error_fields(&text);
            tracing::debug!(operation = %op, key, status = status.as_u16(), code = %code, request_id = %request_id, "Key Vault call failed");
            return Err(self.classify(op, key, status, code, message, attempt, retry_after));
        }
    }

    fn classify(
        &self,
        operation: Operation,
        key: &str,
        status: StatusCode,
        code: String,
        message: String,
        attempts: u32,
        retry_after: Option<Duration>,
    ) -> AzureKvError {
        let key = key.to_owned();
        match status.as_u16() {
            400 => AzureKvError::BadRequest {
                operation,
                key,
                code,
                message,
            },
            403 if code == "KeyDisabled" => AzureKvError::KeyDisabled {
                operation,
                key,
                message,
            },
            403 => AzureKvError::Forbidden {
                operation,
                key,
                code,
                message,
                permission: operation.permission(self.managed_hsm),
            },
            404 => AzureKvError::NotFound {
                operation,
                key,
                code,
                message,
            },
            429 => AzureKvError::Throttled {
                operation,
                key,
                attempts,
                retry_after,
            },
            other => AzureKvError::Service {
                operation,
                key,
                status: other,
                code,
                message,
                attempts,
            },
        }
    }
}

/// `(code, message)` of a Key Vault error body; the inner error's code when there is one
/// (`Forbidden` / `KeyDisabled`), control characters escaped, the message clipped.
pub(crate) fn error_fields(text: &str) -> (String, String) {
    let v: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    let err = &v["error"];
    let code = err["innererror"]["code"]
        .as_str()
        .or_else(|| err["code"].as_str())
        .unwrap_or("(no error code)");
    let message = err["message"].as_str().map_or_else(
        || {
            if text.is_empty() {
                "(empty body)".to_owned()
            } else {
                format!("(not a Key Vault error body: {})", clip(text))
            }
        },
        clip,
    );
    (clip(code), message)
}

fn clip(text: &str) -> String {
    let escaped = pkjwt_core::escape_controls(text);
    match escaped.char_indices().nth(MAX_MESSAGE) {
        Some((i, _)) => format!("{}…", &escaped[..i]),
        None => escaped.into_owned(),
    }
}

/// The token scope a Key Vault challenge asks for, checked against the vault: `scope="S"` or
/// `resource="R"` (→ `R/.default`); the resource must be one of the Key Vault / Managed HSM
/// resources ([`AZURE_KV_DOMAINS`]) and, unless the vault is a loopback test double, the one of
/// the vault's own domain (`VAULT.vault.azure.net` ↔ `https://vault.azure.net`). A token is
/// never requested for anything else.
pub(crate) fn scope_from_challenge(
    header: &str,
    vault: &str,
    loopback: bool,
) -> Result<String, String> {
    let Some(params) = header
        .trim()
        .strip_prefix("Bearer ")
        .or_else(|| header.trim().strip_prefix("bearer "))
    else {
        return Err(format!(
            "WWW-Authenticate is not a Bearer challenge: {}",
            clip(header)
        ));
    };
    let mut scope = None;
    let mut resource = None;
    for part in params.split(',') {
        let Some((k, v)) = part.split_once('=') else {
            continue;
        };
        let v = v.trim().trim_matches('"').to_owned();
        match k.trim().to_ascii_lowercase().as_str() {
            "scope" => scope = Some(v),
            "resource" => resource = Some(v),
            _ => {}
        }
    }
    let scope = match (scope, resource) {
        (Some(s), _) => s,
        (None, Some(r)) => format!("{}/.default", r.trim_end_matches('/')),
        (None, None) => {
            return Err(format!(
                "the challenge names neither scope nor resource: {}",
                clip(header)
            ));
        }
    };
    let resource = scope
        .strip_suffix("/.default")
        .ok_or_else(|| format!("scope \"{}\" does not end in /.default", clip(&scope)))?;
    let Some((suffix, _)) = AZURE_KV_DOMAINS.iter().find(|(_, r)| *r == resource) else {
        return Err(format!(
            "the challenge asks for a token for \"{}\", which is not a Key Vault or Managed HSM \
             resource",
            clip(resource)
        ));
    };
    let host = vault.strip_prefix("https://").unwrap_or(vault);
    if !loopback && !host.ends_with(suffix) {
        return Err(format!(
            "the challenge asks for a token for \"{resource}\", which is not the resource of {vault}"
        ));
    }
    Ok(scope)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_scope_is_the_vaults_own() {
        let vault = "https://v.vault.azure.net";
        let hsm = "https://h.managedhsm.azure.net";
        let ok = [
            (
                r#"Bearer authorization="https://login.microsoftonline.com/t", resource="https://vault.azure.net""#,
                vault,
                "https://vault.azure.net/.default",
            ),
            (
                r#"Bearer authorization="https://login.microsoftonline.com/t", scope="https://managedhsm.azure.net/.default""#,
                hsm,
                "https://managedhsm.azure.net/.default",
            ),
        ];
        for (h, v, want) in ok {
            assert_eq!(scope_from_challenge(h, v, false).unwrap(), want);
        }
        let bad = [
            (r#"Basic realm="x""#, vault, "not a Bearer challenge"),
            (
                r#"Bearer authorization="a""#,
                vault,
                "neither scope nor resource",
            ),
            (
                r#"Bearer resource="https://management.azure.com""#,
                vault,
                "not a Key Vault or Managed HSM resource",
            ),
            (
                r#"Bearer resource="https://managedhsm.azure.net""#,
                vault,
                "not the resource of",
            ),
            (
                r#"Bearer scope="https://vault.azure.net/user_impersonation""#,
                vault,
                "/.default",
            ),
        ];
        for (h, v, want) in bad {
            let e = scope_from_challenge(h, v, false).unwrap_err();
            assert!(e.contains(want), "{h}: {e}");
        }
        // A loopback double may name any Key Vault resource, never another one.
        assert!(
            scope_from_challenge(
                r#"Bearer resource="https://vault.azure.net""#,
                "https://127.0.0.1:1",
                true
            )
            .is_ok()
        );
        assert!(
            scope_from_challenge(
                r#"Bearer resource="https://graph.microsoft.com""#,
                "https://127.0.0.1:1",
                true
            )
            .is_err()
        );
    }

    #[test]
    fn error_bodies_give_code_and_message() {
        let (c, m) = error_fields(
            r#"{"error":{"code":"Forbidden","message":"Operation sign is not allowed on a disabled key.","innererror":{"code":"KeyDisabled"}}}"#,
        );
        assert_eq!(c, "KeyDisabled");
        assert!(m.contains("disabled"));
        let (c, m) = error_fields("<html>\x1b[31m");
        assert_eq!(c, "(no error code)");
        assert!(
            m.contains("not a Key Vault error body") && !m.contains('\x1b'),
            "{m}"
        );
    }
}
