//! The Cloud KMS REST client: one authenticated JSON call with bounded retries, and the
//! translation of its failures into [`GcpKmsError`].

use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::Value;

use crate::credentials::TokenSource;
use crate::error::{Operation, parse_status};
use crate::{GcpKmsError, GcpKmsOptions};

/// What a response check found wrong.
pub(crate) enum CheckFail {
    /// A CRC32C check failed: the answer (or the request) was corrupted; retried.
    Integrity(String),
    /// Anything else: not retried.
    Fatal(GcpKmsError),
}

/// A Cloud KMS client for one endpoint and one credentials source.
#[derive(Clone)]
pub(crate) struct KmsClient {
    http: reqwest::Client,
    pub(crate) endpoint: String,
    tokens: Arc<TokenSource>,
    max_attempts: u32,
    initial_backoff: Duration,
    max_backoff: Duration,
    attempt_timeout: Duration,
}

impl std::fmt::Debug for KmsClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KmsClient")
            .field("endpoint", &self.endpoint)
            .field("credentials", &self.tokens.origin)
            .finish_non_exhaustive()
    }
}

/// `https://`, or `http://` to a loopback host (a local test endpoint).
fn check_endpoint(endpoint: &str) -> Result<(), GcpKmsError> {
    if endpoint.starts_with("https://") && endpoint.len() > "https://".len() {
        return Ok(());
    }
    if endpoint.starts_with("http://") {
        // The token-URL rule accepts http only for loopback hosts.
        if crate::credentials::check_token_url("", "", endpoint).is_ok() {
            return Ok(());
        }
    }
    Err(GcpKmsError::Credentials {
        source_name: "the Cloud KMS endpoint".into(),
        detail: format!(
            "endpoint \"{endpoint}\" must be an https:// URL (or http:// to 127.0.0.1, [::1] or \
             localhost); an access token is never sent in clear text elsewhere"
        ),
    })
}

impl KmsClient {
    /// A client for `endpoint` (the URI's, else the options'), with the options' credentials.
    pub(crate) fn new(
        endpoint: Option<&str>,
        options: &GcpKmsOptions,
    ) -> Result<Self, GcpKmsError> {
        let endpoint = endpoint
            .unwrap_or(&options.endpoint)
            .trim_end_matches('/')
            .to_owned();
        check_endpoint(&endpoint)?;
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(options.connect_timeout)
            .user_agent(concat!("pkjwt/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GcpKmsError::Credentials {
                source_name: "the HTTP client".into(),
                detail: format!("cannot build it: {e}"),
            })?;
        let tokens = Arc::new(TokenSource::new(&options.credentials, http.clone())?);
        Ok(KmsClient {
            http,
            endpoint,
            tokens,
            max_attempts: options.max_attempts.max(1),
            initial_backoff: options.initial_backoff,
            max_backoff: options.max_backoff.max(options.initial_backoff),
            attempt_timeout: options.attempt_timeout,
        })
    }

    /// Calls `{endpoint}/v1/{path}` and passes a 200 answer's JSON to `check`, retrying
    /// throttling, unavailability, transport failures and failed integrity checks up to
    /// `max_attempts` times with exponential backoff; a refused token is fetched anew once.
    pub(crate) async fn call<T>(
        &self,
        operation: Operation,
        resource: &str,
        method: Method,
        path: &str,
        body: Option<&Value>,
        check: impl Fn(&Value) -> Result<T, CheckFail>,
    ) -> Result<T, GcpKmsError> {
        let url = format!("{}/v1/{path}", self.endpoint);
        let mut fresh_token_tried = false;
        let mut last: Option<GcpKmsError> = None;
        let mut attempt = 0;
        while attempt < self.max_attempts {
            attempt += 1;
            if attempt > 1 {
                tokio::time::sleep(self.backoff(attempt - 1)).await;
            }
            let token = self.tokens.token().await?;
            let mut req = self
                .http
                .request(method.clone(), &url)
                .bearer_auth(token.as_str())
                .timeout(self.attempt_timeout);
            if let Some(b) = body {
                req = req
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(b.to_string());
            }
            let resp = match req.send().await {
                Ok(r) => r,
                Err(e) => {
                    tracing::debug!(%operation, resource, attempt, error = %e, "Cloud KMS call failed");
                    last =
                        Some(self.unavailable(operation, resource, attempt, transport_message(&e)));
                    continue;
                }
            };
            let status = resp.status();
            let bytes = match resp.bytes().await {
                Ok(b) => b,
                Err(e) => {
                    last =
                        Some(self.unavailable(operation, resource, attempt, transport_message(&e)));
                    continue;
                }
            };
            if status.is_success() {
                let v: Value =
                    serde_json::from_slice(&bytes).map_err(|e| GcpKmsError::InvalidResponse {
                        operation,
                        resource: resource.to_owned(),
                        reason: format!("the body is not JSON: {e}"),
                    })?;
                match check(&v) {
                    Ok(t) => return Ok(t),
                    Err(CheckFail::Fatal(e)) => return Err(e),
                    Err(CheckFail::Integrity(detail)) => {
                        tracing::warn!(%operation, resource, attempt, detail, "Cloud KMS integrity check failed; retrying");
                        last = Some(GcpKmsError::Integrity {
                            operation,
                            resource: resource.to_owned(),
                            attempts: attempt,
                            detail,
                        });
                        continue;
                    }
                }
            }
            let st = parse_status(&bytes);
            let resource_s = resource.to_owned();
            let code = status.as_u16();
            let err = match (code, st.status.as_str()) {
                (401, _) | (_, "UNAUTHENTICATED") => {
                    self.tokens.invalidate().await;
                    if !fresh_token_tried {
                        // One more try with a new token (it may have been revoked or expired
                        // early); this try does not count against the attempts.
                        fresh_token_tried = true;
                        attempt -= 1;
                        continue;
                    }
                    return Err(GcpKmsError::Unauthenticated {
                        operation,
                        resource: resource_s,
                        message: st.message,
                    });
                }
                (429, _) | (_, "RESOURCE_EXHAUSTED") => {
                    last = Some(GcpKmsError::Throttled {
                        operation,
                        resource: resource_s,
                        attempts: attempt,
                        message: st.message,
                    });
                    continue;
                }
                (500 | 503 | 504, _) | (_, "UNAVAILABLE" | "DEADLINE_EXCEEDED" | "INTERNAL") => {
                    last = Some(self.unavailable(
                        operation,
                        resource,
                        attempt,
                        format!("HTTP {code} {}: {}", st.status, st.message),
                    ));
                    continue;
                }
                (_, "NOT_FOUND") | (404, "-") => GcpKmsError::NotFound {
                    operation,
                    resource: resource_s,
                    endpoint: self.endpoint.clone(),
                    message: st.message,
                },
                (_, "PERMISSION_DENIED") | (403, "-") => GcpKmsError::PermissionDenied {
                    operation,
                    resource: resource_s,
                    message: st.message,
                },
                (_, "FAILED_PRECONDITION") => GcpKmsError::VersionNotEnabled {
                    operation,
                    resource: resource_s,
                    message: st.message,
                },
                (_, "INVALID_ARGUMENT") => GcpKmsError::InvalidArgument {
                    operation,
                    resource: resource_s,
                    message: st.message,
                },
                _ => GcpKmsError::Api {
                    operation,
                    resource: resource_s,
                    http_status: code,
                    status: st.status,
                    message: st.message,
                },
            };
            return Err(err);
        }
        Err(last.unwrap_or_else(|| {
            self.unavailable(operation, resource, attempt, "no attempt was made".into())
        }))
    }

    fn unavailable(
        &self,
        operation: Operation,
        resource: &str,
        attempts: u32,
        message: String,
    ) -> GcpKmsError {
        GcpKmsError::Unavailable {
            operation,
            resource: resource.to_owned(),
            endpoint: self.endpoint.clone(),
            attempts,
            message,
        }
    }

    /// Full-jitter exponential backoff before retry `n` (1-based).
    fn backoff(&self, n: u32) -> Duration {
        let cap = self
            .initial_backoff
            .saturating_mul(1u32 << n.saturating_sub(1).min(16))
            .min(self.max_backoff);
        // Jitter spreads retries of many clients throttled at once; without randomness (the OS
        // refused it) the full backoff is used, which is still bounded.
        match getrandom::u32() {
            Ok(r) => cap.mul_f64(f64::from(r) / f64::from(u32::MAX)),
            Err(_) => cap,
        }
    }
}

/// A transport error's chain, without the URL's query (there is none) or any header.
fn transport_message(e: &reqwest::Error) -> String {
    let mut msg = if e.is_timeout() {
        "timed out".to_owned()
    } else if e.is_connect() {
        "connection failed".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        msg.push_str(": ");
        msg.push_str(&s.to_string());
        source = s.source();
    }
    msg
}
