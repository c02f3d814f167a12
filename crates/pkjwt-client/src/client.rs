//! The token client: token requests authenticated with `private_key_jwt`, a fresh assertion for
//! every attempt, bounded and jittered retries, RFC 6749 §5.2 errors, and clock-skew learning.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pkjwt_core::wipe::WipedJson;
use pkjwt_core::{AssertionOptions, Audience, ClientAssertion, KeyId, Signer};
use serde_json::{Map, Value};
use zeroize::Zeroizing;

use crate::http::{Http, HttpOptions, read_limited};
use crate::metadata::{ServerMetadata, discover};
use crate::profile::{AudienceMode, Profile};
use crate::{ClientError, OAuthError};

/// `client_assertion_type` for JWT client authentication (RFC 7523 §2.2).
pub const CLIENT_ASSERTION_TYPE: &str = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";
/// `grant_type` of the JWT-bearer authorization grant (RFC 7523 §2.1).
pub const GRANT_JWT_BEARER: &str = "urn:ietf:params:oauth:grant-type:jwt-bearer";

/// Form fields the client sets itself; [`TokenRequest::param`] refuses them.
const RESERVED: [&str; 8] = [
    "grant_type",
    "client_assertion_type",
    "client_assertion",
    "client_id",
    "assertion",
    "scope",
    "resource",
    "audience",
];

/// Largest forward clock correction, in seconds: a server `Date` ahead of the local clock by
/// more than this is never applied. Servers reject an assertion whose `iat` is more than 60 s
/// in the future (FAPI 2.0; the verifier-side `max_future`), so a larger forward shift could
/// only serve a forged `Date` (a proxy or an impostor) to obtain pre-signed assertions valid
/// later at the real server.
pub const MAX_FORWARD_SKEW_SECS: u64 = 60;

/// When and how often to retry a token request.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    /// Requests sent at most, the first included. Default 3; 1 disables retries.
    pub max_attempts: u32,
    /// Delay before the first retry, doubled for each further one (then jittered down to half).
    /// Default 200 ms.
    pub base_delay: Duration,
    /// Largest delay between attempts without `Retry-After`. Default 5 s.
    pub max_delay: Duration,
    /// Largest `Retry-After` honoured; a server asking for more gets an error instead of a hang.
    /// Default 30 s.
    pub max_retry_after: Duration,
}

impl RetryPolicy {
    /// The default policy with at most `n` requests (1 = no retries).
    pub fn attempts(n: u32) -> Self {
        RetryPolicy {
            max_attempts: n,
            ..RetryPolicy::default()
        }
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 3,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

/// Everything the client needs besides the key.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ClientConfig {
    /// The client_id (becomes the assertion's `iss` and `sub`).
    pub client_id: String,
    /// The issuer identifier, exactly as the server's metadata states it.
    pub issuer: String,
    /// The server profile. Default `standard`.
    pub profile: Profile,
    /// HTTP limits.
    pub http: HttpOptions,
    /// Retry policy.
    pub retry: RetryPolicy,
    /// Header `kid`. Default: the RFC 7638 thumbprint.
    pub kid: KeyId,
    /// Header `x5t#S256`, for servers that identify the key by certificate (Entra ID).
    pub x5t_s256: Option<String>,
    /// Header `x5t` (base64url SHA-1 of the certificate), only for servers that ask for it.
    pub x5t: Option<String>,
    /// Skew between the server's `Date` and the local clock above which the client corrects
    /// `iat`/`nbf`/`exp`. Default 5 s; `None` turns skew correction off.
    pub skew_threshold_secs: Option<u64>,
    /// Largest skew the client corrects (default 300 s). A `Date` further away is ignored with a
    /// warning; forward corrections are further limited to [`MAX_FORWARD_SKEW_SECS`].
    pub max_skew_secs: u64,
    /// Check the metadata for `private_key_jwt` and the algorithm (default true).
    pub check_metadata: bool,
    /// Time source for assertions (tests).
    pub clock: Arc<dyn pkjwt_core::Clock>,
}

impl ClientConfig {
    /// Defaults for `client_id` at the server `issuer`.
    pub fn new(client_id: impl Into<String>, issuer: impl Into<String>) -> Self {
        ClientConfig {
            client_id: client_id.into(),
            issuer: issuer.into(),
            profile: Profile::standard(),
            http: HttpOptions::default(),
            retry: RetryPolicy::default(),
            kid: KeyId::Thumbprint,
            x5t_s256: None,
            x5t: None,
            skew_threshold_secs: Some(5),
            max_skew_secs: 300,
            check_metadata: true,
            clock: Arc::new(pkjwt_core::SystemClock),
        }
    }

    /// Sets the profile.
    pub fn profile(mut self, p: Profile) -> Self {
        self.profile = p;
        self
    }

    /// Sets the retry policy.
    pub fn retry(mut self, r: RetryPolicy) -> Self {
        self.retry = r;
        self
    }

    /// Sets the HTTP options.
    pub fn http(mut self, h: HttpOptions) -> Self {
        self.http = h;
        self
    }

    /// Sets the largest clock skew the client corrects, in seconds.
    pub fn max_skew_secs(mut self, secs: u64) -> Self {
        self.max_skew_secs = secs;
        self
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Grant {
    ClientCredentials,
    JwtBearer { subject: String },
}

/// One kind of token request: the grant and its parameters. Each [`TokenClient::request`] with
/// it signs a new assertion.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TokenRequest {
    grant: Grant,
    scope: Option<String>,
    resources: Vec<String>,
    audience: Option<String>,
    extra: Vec<(String, String)>,
}

impl TokenRequest {
    /// The `client_credentials` grant (RFC 6749 §4.4).
    pub fn client_credentials() -> Self {
        TokenRequest {
            grant: Grant::ClientCredentials,
            scope: None,
            resources: Vec::new(),
            audience: None,
            extra: Vec::new(),
        }
    }

    /// The RFC 7523 §2.1 JWT-bearer authorization grant: a JWT signed by the client's key with
    /// `sub` = the user the client acts for; the client also authenticates with
    /// `private_key_jwt`.
    pub fn jwt_bearer(subject: impl Into<String>) -> Self {
        TokenRequest {
            grant: Grant::JwtBearer {
                subject: subject.into(),
            },
            ..TokenRequest::client_credentials()
        }
    }

    /// `scope` (space-separated).
    pub fn scope(mut self, scope: impl Into<String>) -> Self {
        self.scope = Some(scope.into());
        self
    }

    /// Adds a `resource` (RFC 8707); may be repeated.
    pub fn resource(mut self, resource: impl Into<String>) -> Self {
        self.resources.push(resource.into());
        self
    }

    /// `audience` (used by Auth0, Okta and token-exchange style servers).
    pub fn audience(mut self, audience: impl Into<String>) -> Self {
        self.audience = Some(audience.into());
        self
    }

    /// An extra form parameter. Parameters the client sets itself are refused.
    pub fn param(
        mut self,
        name: impl Into<String>,
        value: impl Into<String>,
    ) -> Result<Self, ClientError> {
        let name = name.into();
        if RESERVED.contains(&name.as_str()) {
            return Err(ClientError::Config(format!(
                "parameter {name:?} is set by the client itself; use the matching TokenRequest \
                 method"
            )));
        }
        self.extra.push((name, value.into()));
        Ok(self)
    }

    fn grant_type(&self) -> &'static str {
        match self.grant {
            Grant::ClientCredentials => "client_credentials",
            Grant::JwtBearer { .. } => GRANT_JWT_BEARER,
        }
    }
}

/// A secret token value. `Debug` and `Display` never show it, and its memory is wiped when it
/// is dropped.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    /// Wraps a secret value (an initial access token, a registration access token…).
    pub fn new(value: impl Into<String>) -> Self {
        Secret(Zeroizing::new(value.into()))
    }

    /// The value, for the `Authorization` header.
    pub fn secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({} bytes)", self.0.len())
    }
}

/// A successful token response (RFC 6749 §5.1).
#[derive(Clone)]
#[non_exhaustive]
pub struct TokenResponse {
    /// `access_token`.
    pub access_token: Secret,
    /// `token_type` (`Bearer` when the server left it out).
    pub token_type: String,
    /// `expires_in`, in seconds.
    pub expires_in: Option<u64>,
    /// `scope`, when the server states the granted scope.
    pub scope: Option<String>,
    /// `refresh_token`, if any.
    pub refresh_token: Option<Secret>,
    /// When the response arrived.
    pub received_at: Instant,
    /// The whole response (it holds the tokens too): wiped when dropped.
    raw: WipedJson,
}

impl TokenResponse {
    /// The whole JSON response, secrets included (for `pkjwt token --json`).
    pub fn to_json(&self) -> Value {
        self.raw.0.clone()
    }

    /// When the token expires, by `expires_in`.
    pub fn expires_at(&self) -> Option<Instant> {
        self.expires_in
            .and_then(|s| self.received_at.checked_add(Duration::from_secs(s)))
    }
}

impl fmt::Debug for TokenResponse {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenResponse")
            .field("access_token", &self.access_token)
            .field("token_type", &self.token_type)
            .field("expires_in", &self.expires_in)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// A token client for one client at one authorization server.
pub struct TokenClient {
    http: Http,
    metadata: ServerMetadata,
    config: ClientConfig,
    assertion: ClientAssertion,
    requests: AtomicU64,
}

impl fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenClient")
            .field("client_id", &self.config.client_id)
            .field("issuer", &self.config.issuer)
            .field("token_endpoint", &self.metadata.token_endpoint)
            .field("profile", &self.config.profile.name)
            .field("signer", self.assertion.signer())
            .finish_non_exhaustive()
    }
}

/// What one attempt ended with.
enum Attempt {
    Done(Box<TokenResponse>),
    /// Retry after at least this delay (`None`: the policy's backoff).
    Retry(ClientError, Option<Duration>),
    Fail(ClientError),
}

impl TokenClient {
    /// Discovers the server's metadata (OpenID Connect, then RFC 8414), checks it and the key
    /// against the profile, and prepares the assertion.
    pub async fn discover(
        signer: Arc<dyn Signer>,
        config: ClientConfig,
    ) -> Result<Self, ClientError> {
        config.profile.check_signer(signer.as_ref())?;
        let http = Http::new(&config.http)?;
        http.check_url(&config.issuer)?;
        let metadata = discover(&http, &config.issuer).await?;
        Self::build(signer, config, metadata, http)
    }

    /// A client for a server whose metadata is known (no discovery request).
    pub fn with_metadata(
        signer: Arc<dyn Signer>,
        config: ClientConfig,
        metadata: ServerMetadata,
    ) -> Result<Self, ClientError> {
        config.profile.check_signer(signer.as_ref())?;
        let http = Http::new(&config.http)?;
        http.check_url(&metadata.token_endpoint)?;
        Self::build(signer, config, metadata, http)
    }

    fn build(
        signer: Arc<dyn Signer>,
        config: ClientConfig,
        metadata: ServerMetadata,
        http: Http,
    ) -> Result<Self, ClientError> {
        if config.check_metadata {
            metadata.check_private_key_jwt(signer.algorithm())?;
        }
        if config.profile.require_x5t_s256 && config.x5t_s256.is_none() {
            return Err(ClientError::ThumbprintRequired {
                profile: config.profile.name.clone(),
                what: "certificate thumbprint (x5t#S256) the server registered",
                field: "x5t_s256",
            });
        }
        if config.profile.require_x5t_sha1 && config.x5t.is_none() {
            return Err(ClientError::ThumbprintRequired {
                profile: config.profile.name.clone(),
                what: "SHA-1 certificate thumbprint (x5t)",
                field: "x5t",
            });
        }
        let options = Self::assertion_options(&config, &metadata, None);
        let assertion = ClientAssertion::new(signer, options)?;
        Ok(TokenClient {
            http,
            metadata,
            config,
            assertion,
            requests: AtomicU64::new(0),
        })
    }

    fn assertion_options(
        config: &ClientConfig,
        metadata: &ServerMetadata,
        subject: Option<&str>,
    ) -> AssertionOptions {
        let aud = match config.profile.audience {
            AudienceMode::Issuer => metadata.issuer.clone(),
            AudienceMode::TokenEndpoint => metadata.token_endpoint.clone(),
        };
        let mut o = AssertionOptions::new(config.client_id.clone(), Audience::One(aud));
        o.typ = config.profile.typ.clone();
        o.lifetime_secs = config.profile.lifetime_secs;
        // The assertion's upper bound stays (600 s by default): a profile or flag asking for
        // more is refused by `ClientAssertion::new` rather than silently allowed.
        o.kid = config.kid.clone();
        o.x5t_s256 = config.x5t_s256.clone();
        o.x5t = config.x5t.clone();
        o.clock = config.clock.clone();
        if let Some(s) = subject {
            // An authorization grant, not client authentication: no client-authentication typ.
            o.subject = Some(s.into());
            o.typ = Some("JWT".into());
        }
        o
    }

    /// The server's metadata.
    pub fn metadata(&self) -> &ServerMetadata {
        &self.metadata
    }

    /// The settings.
    pub fn config(&self) -> &ClientConfig {
        &self.config
    }

    /// The assertion factory (its header shows `alg`, `kid`, `typ`).
    pub fn assertion(&self) -> &ClientAssertion {
        &self.assertion
    }

    /// A client assertion of this client for another audience (`aud` = `audience`), with the
    /// same claim rules as its own: `iss` = `sub` = client_id, the profile's `typ`, lifetime,
    /// `kid` and certificate thumbprints, and the clock offset learned from the server. For
    /// callers that send their own request with it (an MSAL-style assertion callback, an RFC 7523
    /// §2.1 grant); which audiences are acceptable is the caller's policy.
    pub fn assertion_for(&self, audience: &str) -> Result<ClientAssertion, ClientError> {
        let mut o = Self::assertion_options(&self.config, &self.metadata, None);
        o.audience = Audience::One(audience.to_owned());
        o.clock_offset_secs = self.assertion.clock_offset();
        Ok(ClientAssertion::new(self.assertion.signer().clone(), o)?)
    }

    /// HTTP requests sent to the token endpoint so far, retries included.
    pub fn requests_sent(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// The clock offset in seconds learned from the server's `Date` header (0 when in step).
    pub fn clock_offset(&self) -> i64 {
        self.assertion.clock_offset()
    }

    /// Sends `request`, retrying what can succeed on retry, each attempt with a new assertion.
    pub async fn request(&self, request: &TokenRequest) -> Result<TokenResponse, ClientError> {
        if request.grant == Grant::ClientCredentials {
            self.metadata.check_grant("client_credentials")?;
        }
        let grant_assertion = match &request.grant {
            Grant::JwtBearer { subject } => {
                let o = Self::assertion_options(&self.config, &self.metadata, Some(subject));
                Some(ClientAssertion::new(self.assertion.signer().clone(), o)?)
            }
            Grant::ClientCredentials => None,
        };
        let policy = &self.config.retry;
        let max = policy.max_attempts.max(1);
        let mut skew_retry_used = false;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let offset_before = self.assertion.clock_offset();
            let outcome = self.attempt(request, grant_assertion.as_ref()).await;
            match outcome {
                Attempt::Done(r) => return Ok(*r),
                Attempt::Fail(e) => {
                    // A refused assertion while the server's clock told us ours is off: one more
                    // try with the corrected clock can succeed (FAPI 2.0 client clock note).
                    let skew_changed = self.assertion.clock_offset() != offset_before;
                    if skew_changed
                        && !skew_retry_used
                        && e.oauth().is_some_and(|o| o.error == "invalid_client")
                    {
                        skew_retry_used = true;
                        attempt -= 1;
                        continue;
                    }
                    return Err(wrap(e, attempt));
                }
                Attempt::Retry(e, after) => {
                    if attempt >= max {
                        return Err(wrap(e, attempt));
                    }
                    match after {
                        Some(d) if d > policy.max_retry_after => {
                            let e = ClientError::InvalidResponse {
                                url: self.metadata.token_endpoint.clone(),
                                status: e.status().unwrap_or(0),
                                reason: format!(
                                    "the server asks to retry after {d:?}, longer than the {:?} \
                                     this client waits ({e})",
                                    policy.max_retry_after
                                ),
                            };
                            return Err(wrap(e, attempt));
                        }
                        Some(d) => tokio::time::sleep(d.max(jittered(policy, attempt))).await,
                        None => tokio::time::sleep(jittered(policy, attempt)).await,
                    }
                }
            }
        }
    }

    async fn attempt(&self, request: &TokenRequest, grant: Option<&ClientAssertion>) -> Attempt {
        let url = &self.metadata.token_endpoint;
        let client_assertion = match self.assertion.sign().await {
            Ok(a) => a,
            Err(e) => return Attempt::Fail(e.into()),
        };
        let grant_jwt = match grant {
            Some(g) => match g.sign().await {
                Ok(a) => Some(a),
                Err(e) => return Attempt::Fail(e.into()),
            },
            None => None,
        };
        // Built in one go, with no await in between: the serializer is not `Send`.
        let body = {
            let mut form = url::form_urlencoded::Serializer::new(String::new());
            form.append_pair("grant_type", request.grant_type());
            if let Some(a) = &grant_jwt {
                form.append_pair("assertion", a);
            }
            form.append_pair("client_assertion_type", CLIENT_ASSERTION_TYPE);
            form.append_pair("client_assertion", &client_assertion);
            if self.config.profile.send_client_id {
                form.append_pair("client_id", &self.config.client_id);
            }
            if let Some(s) = &request.scope {
                form.append_pair("scope", s);
            }
            for r in &request.resources {
                form.append_pair("resource", r);
            }
            if let Some(a) = &request.audience {
                form.append_pair("audience", a);
            }
            for (k, v) in &request.extra {
                form.append_pair(k, v);
            }
            form.finish()
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = match self
            .http
            .client
            .post(url)
            .header("content-type", "application/x-www-form-urlencoded")
            .header("accept", "application/json")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => return Attempt::Retry(self.http.error(url, &e), None),
        };
        // Read now, applied only once the response proves to come from the issuer.
        let skew = self.server_skew(resp.headers());
        let status = resp.status().as_u16();
        let retry_after = retry_after(resp.headers());
        let body = match read_limited(resp, &self.http, url).await {
            Ok(b) => b,
            Err(e @ (ClientError::Network { .. } | ClientError::Timeout { .. })) => {
                return Attempt::Retry(e, None);
            }
            Err(e) => return Attempt::Fail(e),
        };
        if status == 200 {
            return match parse_success(&body, url, status) {
                Ok(r) => {
                    if let Some(d) = skew {
                        self.learn_skew(d);
                    }
                    Attempt::Done(Box::new(r))
                }
                Err(e) => Attempt::Fail(e),
            };
        }
        let err = parse_error(&body, url, status);
        // Only an `invalid_client` refusal (400/401) proves the issuer itself answered; 5xx,
        // 429 and other errors may come from a proxy or an impostor and teach nothing.
        if (status == 400 || status == 401)
            && err.oauth().is_some_and(|o| o.error == "invalid_client")
            && let Some(d) = skew
        {
            self.learn_skew(d);
        }
        if status == 429 || (500..=599).contains(&status) {
            Attempt::Retry(err, retry_after)
        } else {
            Attempt::Fail(err)
        }
    }

    /// The server's `Date` minus the local clock, in seconds (`None` without a usable `Date` or
    /// with skew correction off).
    fn server_skew(&self, headers: &reqwest::header::HeaderMap) -> Option<i64> {
        self.config.skew_threshold_secs?;
        let server = headers
            .get("date")
            .and_then(|d| d.to_str().ok())
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .and_then(|d| i64::try_from(d.as_secs()).ok())?;
        Some(server.saturating_sub(self.config.clock.now()))
    }

    /// Corrects the assertion clock by `diff` (server minus local, seconds) when it exceeds the
    /// threshold and stays within the caps; a `diff` beyond a cap leaves the clock unchanged.
    fn learn_skew(&self, diff: i64) {
        let Some(threshold) = self.config.skew_threshold_secs else {
            return;
        };
        let cap = if diff > 0 {
            self.config.max_skew_secs.min(MAX_FORWARD_SKEW_SECS)
        } else {
            self.config.max_skew_secs
        };
        if diff.unsigned_abs() > cap {
            tracing::warn!(
                offset_secs = diff,
                server = %self.metadata.issuer,
                "the authorization server's Date is {}s {} the local clock, beyond the {cap}s \
                 this client corrects; it is ignored (assertions keep the local time)",
                diff.unsigned_abs(),
                if diff > 0 { "ahead of" } else { "behind" }
            );
            return;
        }
        let wanted = if diff.unsigned_abs() > threshold {
            diff
        } else {
            0
        };
        let current = self.assertion.clock_offset();
        // `Date` has one-second resolution: ignore changes of a second.
        if (wanted - current).abs() > 1 || (wanted == 0 && current != 0) {
            self.assertion.set_clock_offset(wanted);
            if wanted != 0 {
                tracing::warn!(
                    offset_secs = wanted,
                    server = %self.metadata.issuer,
                    "the local clock is {}s {} the authorization server's; assertions use the \
                     server's time (iat/nbf/exp shifted by {wanted}s)",
                    wanted.abs(),
                    if wanted > 0 { "behind" } else { "ahead of" }
                );
            }
        }
    }
}

fn wrap(e: ClientError, attempts: u32) -> ClientError {
    if attempts > 1 {
        ClientError::RetriesExhausted {
            attempts,
            last: Box::new(e),
        }
    } else {
        e
    }
}

/// Exponential backoff with jitter: a delay between half and all of `base · 2^(attempt-1)`,
/// capped at `max_delay`.
fn jittered(p: &RetryPolicy, attempt: u32) -> Duration {
    let exp = p
        .base_delay
        .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
    let full = exp.min(p.max_delay);
    let mut b = [0u8; 2];
    // Without OS randomness the jitter is simply absent; the delay stays bounded either way.
    let r = if getrandom::fill(&mut b).is_ok() {
        u32::from(u16::from_le_bytes(b))
    } else {
        0
    };
    full / 2 + (full / 2).mul_f64(f64::from(r) / 65_535.0)
}

/// `Retry-After` as delay-seconds or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let v = headers.get("retry-after")?.to_str().ok()?.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

fn parse_success(body: &[u8], url: &str, status: u16) -> Result<TokenResponse, ClientError> {
    let invalid = |reason: String| ClientError::InvalidResponse {
        url: url.into(),
        status,
        reason,
    };
    // The body holds the token: errors describe its shape, never quote it.
    let parsed: Map<String, Value> = serde_json::from_slice(body).map_err(|e| {
        invalid(format!(
            "expected a JSON object (RFC 6749 §5.1), got {} bytes that do not parse: {e}",
            body.len()
        ))
    })?;
    // Wiped on every path out of here, the error paths included.
    let raw = WipedJson(Value::Object(parsed));
    let empty = Map::new();
    let fields = raw.0.as_object().unwrap_or(&empty);
    let access_token = match fields.get("access_token") {
        Some(Value::String(s)) if !s.is_empty() => Secret::new(s.clone()),
        Some(_) => return Err(invalid("access_token is not a non-empty string".into())),
        None => {
            let members: Vec<&str> = fields.keys().map(String::as_str).collect();
            return Err(invalid(format!(
                "no access_token in the response (members: {})",
                members.join(", ")
            )));
        }
    };
    let token_type = match fields.get("token_type") {
        Some(Value::String(s)) => s.clone(),
        _ => "Bearer".into(),
    };
    // Some servers send expires_in as a string.
    let expires_in = match fields.get("expires_in") {
        None | Some(Value::Null) => None,
        Some(Value::Number(n)) => Some(
            n.as_u64()
                .ok_or_else(|| invalid(format!("expires_in {n} is not a whole number")))?,
        ),
        Some(Value::String(s)) => Some(
            s.parse::<u64>()
                .map_err(|_| invalid(format!("expires_in {s:?} is not a whole number")))?,
        ),
        Some(_) => return Err(invalid("expires_in is not a number".into())),
    };
    let scope = fields
        .get("scope")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let refresh_token = fields
        .get("refresh_token")
        .and_then(Value::as_str)
        .map(Secret::new);
    Ok(TokenResponse {
        access_token,
        token_type,
        expires_in,
        scope,
        refresh_token,
        received_at: Instant::now(),
        raw,
    })
}

fn parse_error(body: &[u8], url: &str, status: u16) -> ClientError {
    let parsed: Option<Map<String, Value>> = serde_json::from_slice(body).ok();
    match parsed.as_ref().and_then(|m| m.get("error")?.as_str()) {
        Some(error) => {
            let text = |k: &str| {
                parsed
                    .as_ref()
                    .and_then(|m| m.get(k)?.as_str())
                    .map(str::to_owned)
            };
            ClientError::OAuth(OAuthError {
                status,
                error: error.to_owned(),
                error_description: text("error_description"),
                error_uri: text("error_uri"),
            })
        }
        None => {
            // Not an RFC 6749 error: show the start of the body (an error page, not a token).
            let snippet: String = String::from_utf8_lossy(body).chars().take(200).collect();
            ClientError::InvalidResponse {
                url: url.into(),
                status,
                reason: format!(
                    "expected an RFC 6749 §5.2 JSON error, got {} bytes: {snippet:?}",
                    body.len()
                ),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_parsing_is_strict_about_access_token_and_never_quotes_it() {
        let r = parse_success(
            br#"{"access_token":"s3cret","token_type":"Bearer","expires_in":"300","scope":"a b"}"#,
            "u",
            200,
        )
        .unwrap();
        assert_eq!(r.access_token.secret(), "s3cret");
        assert_eq!(r.expires_in, Some(300));
        assert!(!format!("{r:?}").contains("s3cret"));
        let e = parse_success(br#"{"token_type":"Bearer"}"#, "u", 200)
            .unwrap_err()
            .to_string();
        assert!(e.contains("no access_token"), "{e}");
        let e = parse_success(br#"{"access_token":"s3cret""#, "u", 200)
            .unwrap_err()
            .to_string();
        assert!(e.contains("do not parse") && !e.contains("s3cret"), "{e}");
    }

    #[test]
    fn errors_follow_rfc6749() {
        let e = parse_error(
            br#"{"error":"invalid_client","error_description":"client authentication failed","error_uri":"https://x"}"#,
            "u",
            401,
        );
        let o = e.oauth().unwrap();
        assert_eq!((o.status, o.error.as_str()), (401, "invalid_client"));
        assert_eq!(o.error_uri.as_deref(), Some("https://x"));
        let e = parse_error(b"<html>bad gateway</html>", "u", 502);
        assert_eq!(e.status(), Some(502));
        assert!(e.to_string().contains("bad gateway"));
    }

    #[test]
    fn reserved_parameters_are_refused() {
        assert!(
            TokenRequest::client_credentials()
                .param("client_assertion", "x")
                .is_err()
        );
        assert!(
            TokenRequest::client_credentials()
                .param("requested_token_use", "on_behalf_of")
                .is_ok()
        );
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let p = RetryPolicy::default();
        for attempt in 1..40 {
            let d = jittered(&p, attempt);
            assert!(d <= p.max_delay, "{d:?}");
            let full = p
                .base_delay
                .saturating_mul(1u32 << (attempt - 1).min(16))
                .min(p.max_delay);
            assert!(d >= full / 2, "{d:?} < half of {full:?}");
        }
    }

    #[test]
    fn retry_after_seconds_and_dates() {
        let mut h = reqwest::header::HeaderMap::new();
        h.insert("retry-after", "3".parse().unwrap());
        assert_eq!(retry_after(&h), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(20));
        h.insert("retry-after", later.parse().unwrap());
        let d = retry_after(&h).unwrap();
        assert!(
            d > Duration::from_secs(17) && d <= Duration::from_secs(20),
            "{d:?}"
        );
    }
}
