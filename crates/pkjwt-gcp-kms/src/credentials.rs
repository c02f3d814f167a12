//! Access tokens for Cloud KMS: Application Default Credentials without Google's SDK.
//!
//! Sources, in ADC order (docs/gcp-kms.md, "Credentials"):
//!
//! 1. the JSON file `GOOGLE_APPLICATION_CREDENTIALS` names, of one of three types:
//!    * `service_account`: a JWT-bearer grant (RFC 7523) signed RS256 with the file's key, sent
//!      to the file's `token_uri`;
//!    * `external_account` (workload identity federation): the subject token from the file's
//!      `credential_source` (a file or a URL), exchanged at `token_url` (RFC 8693), then, when
//!      `service_account_impersonation_url` is set, exchanged for a service account's token;
//!    * `authorized_user` (gcloud's user credentials): a refresh-token grant at `token_uri`;
//! 2. gcloud's `application_default_credentials.json` (same types);
//! 3. the metadata server (`GCE_METADATA_HOST`, else `metadata.google.internal`).
//!
//! Token and exchange URLs must be `https://` hosts under `googleapis.com`, or loopback (a test
//! endpoint): a credentials file is not allowed to send a signed grant anywhere else. Tokens are
//! cached until a minute before they expire, and fetched once for concurrent callers.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pkjwt_core::private_file::{Exposure, PrivateFileError, read_private_text};
use pkjwt_core::wipe::WipedJson;
use pkjwt_core::{Algorithm, Signer, b64};
use pkjwt_file::FileSigner;
use serde_json::Value;
use tokio::sync::Mutex;
use zeroize::Zeroizing;

use crate::GcpKmsError;
use crate::options::Credentials;

/// The OAuth scope Cloud KMS accepts.
pub const SCOPE: &str = "https://www.googleapis.com/auth/cloud-platform";
const METADATA_HOST: &str = "metadata.google.internal";
/// A token is refreshed this long before it expires.
const EARLY: Duration = Duration::from_secs(60);

/// A source of access tokens, with its cache.
pub(crate) struct TokenSource {
    kind: Kind,
    /// Where the credentials came from, for messages (never their content).
    pub(crate) origin: String,
    http: reqwest::Client,
    cache: Mutex<Option<(Zeroizing<String>, Instant)>>,
}

enum Kind {
    ServiceAccount {
        email: String,
        key_id: String,
        signer: Box<FileSigner>,
        token_uri: String,
    },
    AuthorizedUser {
        client_id: String,
        client_secret: Zeroizing<String>,
        refresh_token: Zeroizing<String>,
        token_uri: String,
    },
    ExternalAccount {
        audience: String,
        subject_token_type: String,
        token_url: String,
        source: SubjectSource,
        impersonation_url: Option<String>,
    },
    Metadata {
        host: String,
    },
    Static(Zeroizing<String>),
}

enum SubjectSource {
    File {
        path: PathBuf,
        json_field: Option<String>,
    },
    Url {
        url: String,
        headers: Vec<(String, String)>,
        json_field: Option<String>,
    },
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Only where the credentials came from.
        f.debug_struct("TokenSource")
            .field("origin", &self.origin)
            .finish_non_exhaustive()
    }
}

fn cred_err(origin: &str, detail: impl Into<String>) -> GcpKmsError {
    GcpKmsError::Credentials {
        source_name: origin.to_owned(),
        detail: detail.into(),
    }
}

/// `https://…googleapis.com/…`, or http(s) to a loopback host.
pub(crate) fn check_token_url(origin: &str, field: &str, url: &str) -> Result<(), GcpKmsError> {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']').map_or(v6, |(h, _)| h)
    } else {
        authority.split_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    let google = scheme == "https"
        && (host == "googleapis.com" || host.to_ascii_lowercase().ends_with(".googleapis.com"));
    if (loopback && (scheme == "http" || scheme == "https")) || google {
        Ok(())
    } else {
        Err(cred_err(
            origin,
            format!(
                "{field} \"{url}\" is not an https:// URL under googleapis.com (nor a loopback \
                 test endpoint); refusing to send credentials there"
            ),
        ))
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn str_field<'a>(v: &'a Value, origin: &str, name: &str) -> Result<&'a str, GcpKmsError> {
    v.get(name)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| cred_err(origin, format!("the file has no \"{name}\" string")))
}

impl TokenSource {
    /// Resolves `credentials` (ADC walks its chain here, without any network call).
    pub(crate) fn new(
        credentials: &Credentials,
        http: reqwest::Client,
    ) -> Result<Self, GcpKmsError> {
        let (kind, origin) = match credentials {
            Credentials::AccessToken(t) => (
                Kind::Static(t.clone()),
                "a caller-provided access token".to_owned(),
            ),
            Credentials::File(path) => {
                let origin = format!("credentials file {}", path.display());
                (from_file(path, &origin)?, origin)
            }
            Credentials::MetadataServer => metadata(),
            Credentials::ApplicationDefault => adc()?,
        };
        Ok(TokenSource {
            kind,
            origin,
            http,
            cache: Mutex::new(None),
        })
    }

    /// A valid access token, fetched when none is cached or the cached one nears its expiry.
    pub(crate) async fn token(&self) -> Result<Zeroizing<String>, GcpKmsError> {
        if let Kind::Static(t) = &self.kind {
            return Ok(t.clone());
        }
        // Held across the fetch: concurrent callers wait for one fetch instead of each making one.
        let mut cache = self.cache.lock().await;
        if let Some((token, expires)) = cache.as_ref()
            && Instant::now() + EARLY < *expires
        {
            return Ok(token.clone());
        }
        let (token, lifetime) = self.fetch().await?;
        *cache = Some((token.clone(), Instant::now() + lifetime));
        Ok(token)
    }

    /// Forgets the cached token (the service refused it).
    pub(crate) async fn invalidate(&self) {
        *self.cache.lock().await = None;
    }

    async fn fetch(&self) -> Result<(Zeroizing<String>, Duration), GcpKmsError> {
        let origin = &self.origin;
        match &self.kind {
            Kind::Static(t) => Ok((t.clone(), Duration::from_secs(3600))),
            Kind::ServiceAccount {
                email,
                key_id,
                signer,
                token_uri,
            } => {
                let iat = now_secs();
                let header = serde_json::json!({"alg": "RS256", "typ": "JWT", "kid": key_id});
                let claims = serde_json::json!({
                    "iss": email, "scope": SCOPE, "aud": token_uri,
                    "iat": iat, "exp": iat + 3600,
                });
                let input = format!(
                    "{}.{}",
                    b64::encode(header.to_string()),
                    b64::encode(claims.to_string())
                );
                let sig = signer
                    .sign(input.as_bytes())
                    .await
                    .map_err(|e| cred_err(origin, format!("cannot sign the token grant: {e}")))?;
                let assertion = Zeroizing::new(format!("{input}.{}", b64::encode(sig.as_bytes())));
                let form = [
                    ("grant_type", "urn:ietf:params:oauth:grant-type:jwt-bearer"),
                    ("assertion", assertion.as_str()),
                ];
                self.oauth(token_uri, &form).await
            }
            Kind::AuthorizedUser {
                client_id,
                client_secret,
                refresh_token,
                token_uri,
            } => {
                let form = [
                    ("grant_type", "refresh_token"),
                    ("client_id", client_id.as_str()),
                    ("client_secret", client_secret.as_str()),
                    ("refresh_token", refresh_token.as_str()),
                ];
                self.oauth(token_uri, &form).await
            }
            Kind::ExternalAccount {
                audience,
                subject_token_type,
                token_url,
                source,
                impersonation_url,
            } => {
                let subject = self.subject_token(source).await?;
                let form = [
                    (
                        "grant_type",
                        "urn:ietf:params:oauth:grant-type:token-exchange",
                    ),
                    ("audience", audience.as_str()),
                    ("scope", SCOPE),
                    (
                        "requested_token_type",
                        "urn:ietf:params:oauth:token-type:access_token",
                    ),
                    ("subject_token_type", subject_token_type.as_str()),
                    ("subject_token", subject.as_str()),
                ];
                let (federated, lifetime) = self.oauth(token_url, &form).await?;
                let Some(url) = impersonation_url else {
                    return Ok((federated, lifetime));
                };
                self.impersonate(url, &federated).await
            }
            Kind::Metadata { host } => {
                let url = format!(
                    "http://{host}/computeMetadata/v1/instance/service-accounts/default/token"
                );
                let resp = self
                    .http
                    .get(&url)
                    .header("Metadata-Flavor", "Google")
                    .timeout(Duration::from_secs(5))
                    .send()
                    .await
                    .map_err(|e| cred_err(origin, format!(
                        "no credentials: GOOGLE_APPLICATION_CREDENTIALS is not set, gcloud has no \
                         application default credentials, and the metadata server at {host} did \
                         not answer ({e}); set GOOGLE_APPLICATION_CREDENTIALS to a service \
                         account key or workload identity configuration file"
                    )))?;
                self.token_answer(&url, resp).await
            }
        }
    }

    async fn oauth(
        &self,
        url: &str,
        form: &[(&str, &str)],
    ) -> Result<(Zeroizing<String>, Duration), GcpKmsError> {
        let resp = self
            .http
            .post(url)
            .form(form)
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| {
                cred_err(
                    &self.origin,
                    format!("token endpoint {url} did not answer: {e}"),
                )
            })?;
        self.token_answer(url, resp).await
    }

    /// Reads `{"access_token", "expires_in"}`, or says why the endpoint refused.
    async fn token_answer(
        &self,
        url: &str,
        resp: reqwest::Response,
    ) -> Result<(Zeroizing<String>, Duration), GcpKmsError> {
        let status = resp.status();
        let body = Zeroizing::new(resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default());
        // Wiped on drop: a successful answer holds the access token.
        let parsed = WipedJson(serde_json::from_slice(&body).unwrap_or(Value::Null));
        let v = &parsed.0;
        if !status.is_success() {
            // OAuth errors: {"error": "invalid_grant", "error_description": "…"}; STS and the
            // metadata server may answer a google.rpc.Status or plain text instead.
            let reason = match (v.get("error"), v.get("error_description")) {
                (Some(Value::String(e)), Some(Value::String(d))) => format!("{e}: {d}"),
                (Some(Value::String(e)), _) => e.clone(),
                _ => crate::error::parse_status(&body).message,
            };
            return Err(cred_err(
                &self.origin,
                format!(
                    "token endpoint {url} refused the credentials (HTTP {}): {}",
                    status.as_u16(),
                    pkjwt_core::escape_controls(&reason)
                ),
            ));
        }
        let token = v
            .get("access_token")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                cred_err(
                    &self.origin,
                    format!("token endpoint {url} answered without an access_token"),
                )
            })?;
        let secs = v.get("expires_in").and_then(Value::as_u64).unwrap_or(3600);
        Ok((Zeroizing::new(token.to_owned()), Duration::from_secs(secs)))
    }

    async fn subject_token(
        &self,
        source: &SubjectSource,
    ) -> Result<Zeroizing<String>, GcpKmsError> {
        let (raw, field) = match source {
            SubjectSource::File { path, json_field } => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    cred_err(
                        &self.origin,
                        format!("cannot read the subject token file {}: {e}", path.display()),
                    )
                })?;
                (Zeroizing::new(text), json_field)
            }
            SubjectSource::Url {
                url,
                headers,
                json_field,
            } => {
                let mut req = self.http.get(url).timeout(Duration::from_secs(5));
                for (k, v) in headers {
                    req = req.header(k, v);
                }
                let resp = req.send().await.map_err(|e| {
                    cred_err(
                        &self.origin,
                        format!("the subject token URL {url} did not answer: {e}"),
                    )
                })?;
                if !resp.status().is_success() {
                    return Err(cred_err(
                        &self.origin,
                        format!(
                            "the subject token URL {url} answered HTTP {}",
                            resp.status().as_u16()
                        ),
                    ));
                }
                let text = resp.text().await.map_err(|e| {
                    cred_err(&self.origin, format!("the subject token URL {url}: {e}"))
                })?;
                (Zeroizing::new(text), json_field)
            }
        };
        let token = match field {
            None => raw.trim().to_owned(),
            Some(f) => serde_json::from_str::<Value>(&raw)
                .ok()
                .map(WipedJson)
                .and_then(|v| v.0.get(f).and_then(Value::as_str).map(str::to_owned))
                .ok_or_else(|| {
                    cred_err(
                        &self.origin,
                        format!("the subject token is not JSON with a \"{f}\" string"),
                    )
                })?,
        };
        if token.is_empty() {
            return Err(cred_err(&self.origin, "the subject token is empty"));
        }
        Ok(Zeroizing::new(token))
    }

    async fn impersonate(
        &self,
        url: &str,
        federated: &str,
    ) -> Result<(Zeroizing<String>, Duration), GcpKmsError> {
        let resp = self
            .http
            .post(url)
            .bearer_auth(federated)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(serde_json::json!({"scope": [SCOPE], "lifetime": "3600s"}).to_string())
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .map_err(|e| {
                cred_err(
                    &self.origin,
                    format!("service account impersonation at {url} did not answer: {e}"),
                )
            })?;
        let status = resp.status();
        let body = Zeroizing::new(resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default());
        if !status.is_success() {
            return Err(cred_err(
                &self.origin,
                format!(
                    "service account impersonation at {url} was refused (HTTP {}): {}; the federated \
                 identity needs roles/iam.workloadIdentityUser on the service account",
                    status.as_u16(),
                    crate::error::parse_status(&body).message
                ),
            ));
        }
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let token = v
            .get("accessToken")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                cred_err(
                    &self.origin,
                    format!(
                        "service account impersonation at {url} answered without an accessToken"
                    ),
                )
            })?;
        // expireTime is RFC 3339; a fixed hour (what was asked for) avoids a date parser, and the
        // early refresh covers the difference.
        Ok((Zeroizing::new(token.to_owned()), Duration::from_secs(3600)))
    }
}

fn metadata() -> (Kind, String) {
    let host = std::env::var("GCE_METADATA_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| METADATA_HOST.to_owned());
    let origin = format!("the metadata server at {host}");
    (Kind::Metadata { host }, origin)
}

fn adc() -> Result<(Kind, String), GcpKmsError> {
    if let Some(path) = std::env::var_os("GOOGLE_APPLICATION_CREDENTIALS").filter(|p| !p.is_empty())
    {
        let path = PathBuf::from(path);
        let origin = format!("GOOGLE_APPLICATION_CREDENTIALS={}", path.display());
        return Ok((from_file(&path, &origin)?, origin));
    }
    let gcloud_dir = std::env::var_os("CLOUDSDK_CONFIG")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/gcloud")));
    if let Some(dir) = gcloud_dir {
        let path = dir.join("application_default_credentials.json");
        if path.is_file() {
            let origin = format!("gcloud application default credentials {}", path.display());
            return Ok((from_file(&path, &origin)?, origin));
        }
    }
    Ok(metadata())
}

/// Reads a credentials file through pkjwt's private-file rules (owner, mode, directory): every
/// type must not be writable by others (it says where tokens are fetched from); the types that
/// hold a secret (`service_account`: a private key; `authorized_user`: a refresh token) must not
/// be readable by others either, as pkjwt's own key files (0600 or 0400). The parsed JSON is
/// wiped when dropped (it holds the private key or refresh token); what is kept of it is moved
/// into `Zeroizing` values.
fn read_credentials(path: &Path, origin: &str) -> Result<WipedJson, GcpKmsError> {
    let read = |exposure| {
        let text = read_private_text(path, exposure).map_err(|e| {
            cred_err(
                origin,
                match e {
                    PrivateFileError::Io { source, .. } => format!("cannot read it: {source}"),
                    other => other.to_string(),
                },
            )
        })?;
        // serde_json's error names a line and column, never the text.
        serde_json::from_str::<Value>(&text)
            .map(WipedJson)
            .map_err(|e| cred_err(origin, format!("not JSON: {e}")))
    };
    let v = read(Exposure::Trusted)?;
    match v.0.get("type").and_then(Value::as_str) {
        Some("service_account" | "authorized_user") => {
            // Read again under the secret rule; this content is the one used.
            let again = read(Exposure::Secret)?;
            if again.0.get("type") != v.0.get("type") {
                return Err(cred_err(origin, "the file changed while it was read"));
            }
            Ok(again)
        }
        _ => Ok(v),
    }
}

fn from_file(path: &Path, origin: &str) -> Result<Kind, GcpKmsError> {
    let wiped = read_credentials(path, origin)?;
    let v = &wiped.0;
    match v.get("type").and_then(Value::as_str) {
        Some("service_account") => {
            let email = str_field(v, origin, "client_email")?.to_owned();
            let key_id = v
                .get("private_key_id")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let token_uri = v
                .get("token_uri")
                .and_then(Value::as_str)
                .unwrap_or("https://oauth2.googleapis.com/token")
                .to_owned();
            check_token_url(origin, "token_uri", &token_uri)?;
            let pem = Zeroizing::new(str_field(v, origin, "private_key")?.to_owned());
            let signer = FileSigner::from_bytes(pem.as_bytes(), None, Some(Algorithm::RS256))
                .map_err(|e| {
                    cred_err(
                        origin,
                        format!("its private_key is not a usable RSA key: {e}"),
                    )
                })?;
            Ok(Kind::ServiceAccount {
                email,
                key_id,
                signer: Box::new(signer),
                token_uri,
            })
        }
        Some("authorized_user") => {
            let token_uri = v
                .get("token_uri")
                .and_then(Value::as_str)
                .unwrap_or("https://oauth2.googleapis.com/token")
                .to_owned();
            check_token_url(origin, "token_uri", &token_uri)?;
            Ok(Kind::AuthorizedUser {
                client_id: str_field(v, origin, "client_id")?.to_owned(),
                client_secret: Zeroizing::new(str_field(v, origin, "client_secret")?.to_owned()),
                refresh_token: Zeroizing::new(str_field(v, origin, "refresh_token")?.to_owned()),
                token_uri,
            })
        }
        Some("external_account") => {
            let token_url = str_field(v, origin, "token_url")?.to_owned();
            check_token_url(origin, "token_url", &token_url)?;
            let impersonation_url = v
                .get("service_account_impersonation_url")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_owned);
            if let Some(u) = &impersonation_url {
                check_token_url(origin, "service_account_impersonation_url", u)?;
            }
            let cs = v
                .get("credential_source")
                .ok_or_else(|| cred_err(origin, "the file has no \"credential_source\""))?;
            let json_field = match cs.get("format").and_then(|f| f.get("type")).and_then(Value::as_str) {
                None | Some("text") => None,
                Some("json") => Some(
                    cs.get("format")
                        .and_then(|f| f.get("subject_token_field_name"))
                        .and_then(Value::as_str)
                        .ok_or_else(|| cred_err(origin, "credential_source.format of type json needs subject_token_field_name"))?
                        .to_owned(),
                ),
                Some(other) => {
                    return Err(cred_err(origin, format!("credential_source.format.type \"{other}\" is not text or json")));
                }
            };
            let source = if let Some(file) = cs.get("file").and_then(Value::as_str) {
                SubjectSource::File {
                    path: PathBuf::from(file),
                    json_field,
                }
            } else if let Some(url) = cs.get("url").and_then(Value::as_str) {
                let headers = cs
                    .get("headers")
                    .and_then(Value::as_object)
                    .map(|h| {
                        h.iter()
                            .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_owned())))
                            .collect()
                    })
                    .unwrap_or_default();
                SubjectSource::Url {
                    url: url.to_owned(),
                    headers,
                    json_field,
                }
            } else {
                return Err(cred_err(
                    origin,
                    "credential_source has neither \"file\" nor \"url\"; pkjwt does not run \
                     executable-sourced or AWS-sourced credentials (use a file- or URL-sourced \
                     configuration, or the gcloud CLI to mint a token file)",
                ));
            };
            Ok(Kind::ExternalAccount {
                audience: str_field(v, origin, "audience")?.to_owned(),
                subject_token_type: str_field(v, origin, "subject_token_type")?.to_owned(),
                token_url,
                source,
                impersonation_url,
            })
        }
        Some(other) => Err(cred_err(
            origin,
            format!(
                "credentials type \"{other}\" is not supported; expected service_account, \
             external_account or authorized_user"
            ),
        )),
        None => Err(cred_err(
            origin,
            "the file has no \"type\"; expected a Google credentials JSON file",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_urls_are_google_or_loopback() {
        for ok in [
            "https://oauth2.googleapis.com/token",
            "https://sts.googleapis.com/v1/token",
            "http://127.0.0.1:8080/token",
            "http://[::1]:9/t",
            "https://localhost/t",
        ] {
            check_token_url("t", "token_uri", ok).unwrap();
        }
        for bad in [
            "http://oauth2.googleapis.com/token",
            "https://evil.example/token",
            "https://googleapis.com.evil.example/token",
            "https://x@evil.example/token",
            "http://10.0.0.1/token",
            "token",
        ] {
            let e = check_token_url("t", "token_uri", bad)
                .unwrap_err()
                .to_string();
            assert!(e.contains("refusing to send credentials"), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_files_are_named_and_never_echoed() {
        let dir = std::env::temp_dir().join(format!("pkjwt-gcp-cred-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let cases = [
            ("not json {", "not JSON"),
            (r#"{"private_key": "SECRET-KEY"}"#, "has no \"type\""),
            (
                r#"{"type": "service_account", "client_email": "a@b", "private_key": "SECRET-KEY", "token_uri": "https://oauth2.googleapis.com/token"}"#,
                "not a usable RSA key",
            ),
            (
                r#"{"type": "service_account", "client_email": "a@b", "private_key": "SECRET-KEY", "token_uri": "https://evil.example/token"}"#,
                "refusing to send credentials",
            ),
            (
                r#"{"type": "impersonated_service_account"}"#,
                "not supported",
            ),
            (
                r#"{"type": "external_account", "audience": "a", "subject_token_type": "t", "token_url": "https://sts.googleapis.com/v1/token", "credential_source": {"executable": {"command": "x"}}}"#,
                "neither \"file\" nor \"url\"",
            ),
        ];
        for (i, (text, want)) in cases.iter().enumerate() {
            let path = dir.join(format!("{i}.json"));
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600))
                .unwrap();
            let e = match TokenSource::new(&Credentials::File(path.clone()), reqwest::Client::new())
            {
                Ok(_) => panic!("{text}: accepted"),
                Err(e) => e.to_string(),
            };
            assert!(
                e.contains(want) && e.contains(&path.display().to_string()),
                "{text}: {e}"
            );
            assert!(!e.contains("SECRET-KEY"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
