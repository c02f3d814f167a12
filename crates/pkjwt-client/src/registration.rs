//! Dynamic client registration (RFC 7591) and its management protocol (RFC 7592): register a
//! `private_key_jwt` client with `jwks_uri` or an inline `jwks`, optionally with a software
//! statement (RFC 7591 §2.3) or as a signed request (`application/jwt`); then read, update (PUT
//! of the full metadata) and delete it with the registration access token.
//!
//! Secrets (initial access token, registration access token) live in [`Secret`]s and in
//! [`Registration`], whose `Debug` hides them; no error message carries them.

use std::fmt;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use pkjwt_core::private_file::{
    Exposure, Overwrite, PrivateFileError, read_private_text, write_private,
};
use pkjwt_core::{Algorithm, JwkSet, Signer, escape_controls, jws, thumbprint};
use serde_json::{Map, Value, json};
use url::Url;
use zeroize::Zeroizing;

use crate::client::Secret;
use crate::http::{Http, HttpOptions, read_limited};
use crate::metadata::{ServerMetadata, discover};
use crate::{ClientError, OAuthError};

/// Members of a registration response that the server issues and a client never sends back in
/// an RFC 7592 update (§2.2: "MUST NOT include").
const SERVER_ISSUED: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_id_issued_at",
    "client_secret_expires_at",
];

/// Where the server finds the client's public keys.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub enum ClientKeys {
    /// A URL serving the JWK set (for example `pkjwt serve`).
    JwksUri(String),
    /// The JWK set itself, sent in the registration (`jwks`).
    Jwks(JwkSet),
}

/// The client metadata pkjwt registers for a `private_key_jwt` client (RFC 7591 §2).
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct ClientMetadata {
    /// `jwks_uri` or `jwks`.
    pub keys: ClientKeys,
    /// `token_endpoint_auth_signing_alg`: the one algorithm the server accepts from the client.
    pub alg: Algorithm,
    /// `grant_types`. Default `["client_credentials"]`.
    pub grant_types: Vec<String>,
    /// `scope` (space-separated), when set.
    pub scope: Option<String>,
    /// `client_name`, when set.
    pub client_name: Option<String>,
    /// Further metadata members (`software_id`, `contacts`, …); they cannot replace the members
    /// above.
    pub extra: Map<String, Value>,
}

impl ClientMetadata {
    /// Metadata for a client_credentials client whose keys are `keys`, signing with `alg`.
    pub fn new(keys: ClientKeys, alg: Algorithm) -> Self {
        ClientMetadata {
            keys,
            alg,
            grant_types: vec!["client_credentials".into()],
            scope: None,
            client_name: None,
            extra: Map::new(),
        }
    }

    /// The JSON object sent to the server. `response_types` and `redirect_uris` are empty: a
    /// client_credentials client has no front channel (without them servers default to `code`
    /// and demand a redirect URI).
    pub fn to_json(&self) -> Map<String, Value> {
        let mut m = self.extra.clone();
        m.insert(
            "token_endpoint_auth_method".into(),
            "private_key_jwt".into(),
        );
        m.insert(
            "token_endpoint_auth_signing_alg".into(),
            self.alg.name().into(),
        );
        m.insert("grant_types".into(), json!(self.grant_types));
        m.insert("response_types".into(), json!([]));
        m.insert("redirect_uris".into(), json!([]));
        match &self.keys {
            ClientKeys::JwksUri(u) => {
                m.remove("jwks");
                m.insert("jwks_uri".into(), u.clone().into());
            }
            ClientKeys::Jwks(set) => {
                m.remove("jwks_uri");
                // Invariant: a JwkSet is strings and JSON values; it always serializes.
                m.insert(
                    "jwks".into(),
                    serde_json::to_value(set).unwrap_or(Value::Null),
                );
            }
        }
        if let Some(s) = &self.scope {
            m.insert("scope".into(), s.clone().into());
        }
        if let Some(n) = &self.client_name {
            m.insert("client_name".into(), n.clone().into());
        }
        m
    }
}

/// How a registration request is sent besides the metadata.
#[derive(Clone, Default)]
#[non_exhaustive]
pub struct RegisterOptions {
    /// The initial access token (RFC 7591 §3), sent as `Authorization: Bearer`.
    pub initial_access_token: Option<Secret>,
    /// A software statement (RFC 7591 §2.3), sent as the `software_statement` member.
    pub software_statement: Option<String>,
    /// A signed request: the metadata as the claims of a JWT (with `iss`, `aud` = the issuer,
    /// `iat`, `exp`, `jti`) sent as an `application/jwt` body, for servers that require it.
    pub signed_request: Option<SignedRequest>,
}

impl fmt::Debug for RegisterOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RegisterOptions")
            .field("initial_access_token", &self.initial_access_token)
            .field(
                "software_statement",
                &self.software_statement.as_ref().map(|s| s.len()),
            )
            .field("signed_request", &self.signed_request)
            .finish()
    }
}

/// The key and issuer of a signed registration request.
#[derive(Clone)]
#[non_exhaustive]
pub struct SignedRequest {
    /// The signing key.
    pub signer: std::sync::Arc<dyn Signer>,
    /// `iss` of the request (UK Open Banking: the software_id).
    pub issuer: String,
    /// Seconds until `exp`. Default 300.
    pub lifetime_secs: u64,
}

impl SignedRequest {
    /// A signed request by `signer` with `iss` = `issuer`, valid for 5 minutes.
    pub fn new(signer: std::sync::Arc<dyn Signer>, issuer: impl Into<String>) -> Self {
        SignedRequest {
            signer,
            issuer: issuer.into(),
            lifetime_secs: 300,
        }
    }
}

impl fmt::Debug for SignedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SignedRequest")
            .field("kid", &thumbprint(self.signer.public_key()))
            .field("issuer", &self.issuer)
            .field("lifetime_secs", &self.lifetime_secs)
            .finish()
    }
}

/// A registration response (RFC 7591 §3.2.1), kept whole: RFC 7592 updates send its metadata
/// back. `Debug` hides the registration access token and any client secret.
#[derive(Clone, PartialEq)]
pub struct Registration {
    response: Map<String, Value>,
}

impl fmt::Debug for Registration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registration")
            .field("client_id", &self.client_id())
            .field("registration_client_uri", &self.registration_client_uri())
            .field(
                "registration_access_token",
                &self.registration_access_token().map(|_| "<hidden>"),
            )
            .finish_non_exhaustive()
    }
}

impl Drop for Registration {
    /// The response holds the registration access token (and any client secret): wiped.
    fn drop(&mut self) {
        pkjwt_core::wipe::wipe_json_map(&mut self.response);
    }
}

impl Registration {
    /// Wraps a response object; it must hold a string `client_id`.
    pub fn from_json(response: Map<String, Value>) -> Result<Self, String> {
        match response.get("client_id") {
            Some(Value::String(s)) if !s.is_empty() => Ok(Registration { response }),
            Some(_) => Err("client_id must be a non-empty string".into()),
            None => Err("the response has no client_id".into()),
        }
    }

    /// `client_id`.
    pub fn client_id(&self) -> &str {
        // Invariant: from_json checked that client_id is a string.
        self.response
            .get("client_id")
            .and_then(Value::as_str)
            .unwrap_or_default()
    }

    /// `registration_client_uri` (RFC 7592), when the server offers management.
    pub fn registration_client_uri(&self) -> Option<&str> {
        self.response
            .get("registration_client_uri")
            .and_then(Value::as_str)
    }

    /// `registration_access_token` (RFC 7592). A secret: never print it.
    pub fn registration_access_token(&self) -> Option<&str> {
        self.response
            .get("registration_access_token")
            .and_then(Value::as_str)
    }

    /// The whole response.
    pub fn response(&self) -> &Map<String, Value> {
        &self.response
    }

    /// The client metadata to PUT back in an RFC 7592 update: the response without the members
    /// the server issues (§2.2), with `client_id` kept.
    pub fn metadata(&self) -> Map<String, Value> {
        let mut m = self.response.clone();
        for k in SERVER_ISSUED {
            m.remove(k);
        }
        m
    }

    /// The metadata that can be shown: [`Registration::metadata`] without `client_secret`
    /// (servers issue one alongside `private_key_jwt` when, for example, an HMAC ID-token
    /// algorithm is registered), and whether one was left out.
    pub fn printable(&self) -> (Map<String, Value>, bool) {
        let mut m = self.metadata();
        let had_secret = match m.remove("client_secret") {
            Some(mut v) => {
                pkjwt_core::wipe::wipe_json(&mut v);
                true
            }
            None => false,
        };
        (m, had_secret)
    }

    /// Reads a registration saved by [`Registration::save`]. The file holds the registration
    /// access token: it must be this user's (or root's) and readable by nobody else.
    pub fn load(path: &Path) -> Result<Self, ClientError> {
        let text = read_private_text(path, Exposure::Secret).map_err(|e| {
            ClientError::Config(match e {
                PrivateFileError::Io { source, .. } => format!(
                    "cannot read the registration file {}: {source}",
                    path.display()
                ),
                PrivateFileError::Insecure { reason, .. } => format!(
                    "refusing the registration file {} (it holds the registration access \
                     token): {reason}",
                    path.display()
                ),
                other => other.to_string(),
            })
        })?;
        let v: Value = serde_json::from_str(&text).map_err(|e| {
            ClientError::Config(format!(
                "{} is not a registration saved by pkjwt (expected a JSON object): {e}",
                path.display()
            ))
        })?;
        let Value::Object(m) = v else {
            return Err(ClientError::Config(format!(
                "{} is not a registration (expected a JSON object)",
                path.display()
            )));
        };
        Registration::from_json(m)
            .map_err(|r| ClientError::Config(format!("{}: {r}", path.display())))
    }

    /// Writes the whole response, mode 0600 (it holds the registration access token). With
    /// `replace` false an existing file is an error (it may hold the only copy of another
    /// client's token); with `replace` true the file is replaced atomically
    /// (`pkjwt_core::private_file`).
    pub fn save(&self, path: &Path, replace: bool) -> Result<(), ClientError> {
        // Invariant: a Map of JSON values always serializes.
        let mut text =
            Zeroizing::new(serde_json::to_string_pretty(&self.response).unwrap_or_default());
        text.push('\n');
        let overwrite = if replace {
            Overwrite::Replace
        } else {
            Overwrite::Never
        };
        write_private(path, text.as_bytes(), overwrite).map_err(|e| match e {
            PrivateFileError::Exists(_) => ClientError::Config(format!(
                "{} exists; it may hold another registration's access token, so it is not \
                 overwritten (choose another file)",
                path.display()
            )),
            other => ClientError::Config(other.to_string()),
        })
    }
}

/// Registers clients and manages registrations over HTTP.
#[derive(Clone, Debug)]
pub struct RegistrationClient {
    http: Http,
}

impl RegistrationClient {
    /// A client with these HTTP settings.
    pub fn new(http: &HttpOptions) -> Result<Self, ClientError> {
        Ok(RegistrationClient {
            http: Http::new(http)?,
        })
    }

    /// Discovers `issuer`'s metadata and checks that it has a `registration_endpoint` and takes
    /// `private_key_jwt` with `alg`.
    pub async fn discover(
        &self,
        issuer: &str,
        alg: Algorithm,
    ) -> Result<ServerMetadata, ClientError> {
        let meta = discover(&self.http, issuer).await?;
        let Some(ep) = &meta.registration_endpoint else {
            return Err(ClientError::Unsupported {
                what: "dynamic client registration (its metadata has no registration_endpoint)"
                    .into(),
                supported: "registration by its administrators only".into(),
            });
        };
        self.http.check_url(ep)?;
        meta.check_private_key_jwt(alg)?;
        Ok(meta)
    }

    /// Registers a client at `endpoint` (RFC 7591 §3.1). `issuer` is the `aud` of a signed
    /// request.
    pub async fn register(
        &self,
        endpoint: &str,
        issuer: &str,
        metadata: &Map<String, Value>,
        options: &RegisterOptions,
    ) -> Result<Registration, ClientError> {
        let url = self.http.check_url(endpoint)?;
        let mut body = metadata.clone();
        if let Some(ss) = &options.software_statement {
            body.insert("software_statement".into(), ss.clone().into());
        }
        let mut req = self
            .http
            .client
            .post(url.clone())
            .header("accept", "application/json");
        req = match &options.signed_request {
            Some(s) => {
                let jwt = sign_jwt(
                    s.signer.as_ref(),
                    &s.issuer,
                    Some(issuer),
                    s.lifetime_secs,
                    &body,
                )
                .await?;
                req.header("content-type", "application/jwt").body(jwt)
            }
            None => req
                .header("content-type", "application/json")
                .body(Value::Object(body).to_string()),
        };
        if let Some(t) = &options.initial_access_token {
            req = req.bearer_auth(t.secret());
        }
        let (status, v) = self.send(req, endpoint).await?;
        if status != 201 && status != 200 {
            return Err(self.refused(endpoint, status, v, "201 Created"));
        }
        let reg = registration_from(endpoint, status, v)?;
        check_management_origin(&reg, &url, endpoint, status)?;
        Ok(reg)
    }

    /// Reads the registration (RFC 7592 §2.1).
    pub async fn read(&self, reg: &Registration) -> Result<Registration, ClientError> {
        let (uri, token) = management(reg)?;
        let url = self.http.check_url(uri)?;
        let req = self
            .http
            .client
            .get(url.clone())
            .header("accept", "application/json")
            .bearer_auth(token);
        let (status, v) = self.send(req, uri).await?;
        if status != 200 {
            return Err(self.refused(uri, status, v, "200 OK"));
        }
        let new = registration_from(uri, status, v)?;
        check_management_origin(&new, &url, uri, status)?;
        Ok(keep_token(reg, new))
    }

    /// Replaces the registration's metadata (RFC 7592 §2.2: a PUT of the full metadata, with
    /// `client_id`). Returns the new registration; a rotated registration access token is in it,
    /// an unchanged one is carried over. Save it: the old token may no longer work.
    pub async fn update(
        &self,
        reg: &Registration,
        metadata: &Map<String, Value>,
    ) -> Result<Registration, ClientError> {
        let (uri, token) = management(reg)?;
        let url = self.http.check_url(uri)?;
        let mut body = metadata.clone();
        for k in SERVER_ISSUED {
            body.remove(k);
        }
        body.insert("client_id".into(), reg.client_id().into());
        let req = self
            .http
            .client
            .put(url.clone())
            .header("accept", "application/json")
            .header("content-type", "application/json")
            .bearer_auth(token)
            .body(Value::Object(body).to_string());
        let (status, v) = self.send(req, uri).await?;
        if status != 200 {
            return Err(self.refused(uri, status, v, "200 OK"));
        }
        let new = registration_from(uri, status, v)?;
        check_management_origin(&new, &url, uri, status)?;
        let new = keep_token(reg, new);
        if new.client_id() != reg.client_id() {
            return Err(ClientError::InvalidResponse {
                url: uri.into(),
                status,
                reason: format!(
                    "the update answered for client {:?}, expected {:?}",
                    new.client_id(),
                    reg.client_id()
                ),
            });
        }
        Ok(new)
    }

    /// Deletes the registration (RFC 7592 §2.3); the server then refuses the client.
    pub async fn delete(&self, reg: &Registration) -> Result<(), ClientError> {
        let (uri, token) = management(reg)?;
        let url = self.http.check_url(uri)?;
        let req = self.http.client.delete(url).bearer_auth(token);
        let (status, v) = self.send(req, uri).await?;
        if status != 204 && status != 200 {
            return Err(self.refused(uri, status, v, "204 No Content"));
        }
        Ok(())
    }

    async fn send(
        &self,
        req: reqwest::RequestBuilder,
        url: &str,
    ) -> Result<(u16, Option<Value>), ClientError> {
        let resp = req.send().await.map_err(|e| self.http.error(url, &e))?;
        let status = resp.status().as_u16();
        let www = resp
            .headers()
            .get("www-authenticate")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = read_limited(resp, &self.http, url).await?;
        let mut v = if body.is_empty() {
            None
        } else {
            serde_json::from_slice::<Value>(&body).ok()
        };
        // A 401 may carry the RFC 6750 error only in WWW-Authenticate.
        if v.is_none()
            && let Some(w) = www
            && let Some(err) = bearer_error(&w)
        {
            v = Some(json!({ "error": err }));
        }
        Ok((status, v))
    }

    fn refused(&self, url: &str, status: u16, v: Option<Value>, expected: &str) -> ClientError {
        match v
            .as_ref()
            .and_then(|v| v.get("error"))
            .and_then(Value::as_str)
        {
            Some(e) => ClientError::Registration {
                url: url.into(),
                error: OAuthError {
                    status,
                    error: e.into(),
                    error_description: v
                        .as_ref()
                        .and_then(|v| v.get("error_description"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    error_uri: v
                        .as_ref()
                        .and_then(|v| v.get("error_uri"))
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                },
            },
            None => ClientError::InvalidResponse {
                url: url.into(),
                status,
                reason: format!("expected {expected} or an RFC 7591 §3.2.2 error object"),
            },
        }
    }
}

/// The `error` parameter of a `WWW-Authenticate: Bearer …` header.
fn bearer_error(header: &str) -> Option<String> {
    let i = header.find("error=\"")?;
    let rest = &header[i + 7..];
    Some(rest[..rest.find('"')?].to_owned())
}

fn management(reg: &Registration) -> Result<(&str, &str), ClientError> {
    match (
        reg.registration_client_uri(),
        reg.registration_access_token(),
    ) {
        (Some(u), Some(t)) => Ok((u, t)),
        _ => Err(ClientError::Config(format!(
            "the registration of client {} has no registration_client_uri and \
             registration_access_token: the server did not offer RFC 7592 management",
            reg.client_id()
        ))),
    }
}

/// The registration access token goes wherever `registration_client_uri` points, so a response
/// may only point to the origin (scheme, host, port) of the endpoint that answered it: the
/// registration endpoint found by discovery of the issuer, or the management URI stored after it.
/// Otherwise a compromised or confused response could send the token to a third party
/// (issue 12, item 13).
fn check_management_origin(
    reg: &Registration,
    answered: &Url,
    answered_text: &str,
    status: u16,
) -> Result<(), ClientError> {
    let Some(uri) = reg.registration_client_uri() else {
        return Ok(());
    };
    let invalid = |reason: String| ClientError::InvalidResponse {
        url: answered_text.into(),
        status,
        reason,
    };
    let u = Url::parse(uri).map_err(|e| {
        invalid(format!(
            "registration_client_uri {:?} is not a URL: {e}",
            escape_controls(uri)
        ))
    })?;
    if u.origin() != answered.origin() {
        return Err(invalid(format!(
            "registration_client_uri {} is not on the origin of the endpoint that answered ({}); \
             pkjwt does not send the registration access token to another origin",
            escape_controls(uri),
            answered.origin().ascii_serialization()
        )));
    }
    Ok(())
}

fn keep_token(old: &Registration, mut new: Registration) -> Registration {
    for k in ["registration_access_token", "registration_client_uri"] {
        if !new.response.contains_key(k)
            && let Some(v) = old.response.get(k)
        {
            new.response.insert(k.into(), v.clone());
        }
    }
    new
}

fn registration_from(
    url: &str,
    status: u16,
    v: Option<Value>,
) -> Result<Registration, ClientError> {
    let invalid = |reason: String| ClientError::InvalidResponse {
        url: url.into(),
        status,
        reason,
    };
    match v {
        Some(Value::Object(m)) => Registration::from_json(m).map_err(|r| {
            invalid(format!(
                "expected client information (RFC 7591 §3.2.1): {r}"
            ))
        }),
        _ => Err(invalid(
            "expected a JSON object with the client information (RFC 7591 §3.2.1)".into(),
        )),
    }
}

/// Signs a software statement (RFC 7591 §2.3): a JWT whose claims are `metadata` plus `iss`,
/// `iat`, `exp` (`lifetime_secs` later) and a fresh `jti`; header `typ: JWT` and `kid` = the
/// key's RFC 7638 thumbprint. Any backend key signs it.
pub async fn sign_software_statement(
    signer: &dyn Signer,
    issuer: &str,
    lifetime_secs: u64,
    metadata: &Map<String, Value>,
) -> Result<String, ClientError> {
    sign_jwt(signer, issuer, None, lifetime_secs, metadata).await
}

async fn sign_jwt(
    signer: &dyn Signer,
    issuer: &str,
    aud: Option<&str>,
    lifetime_secs: u64,
    metadata: &Map<String, Value>,
) -> Result<String, ClientError> {
    if lifetime_secs == 0 {
        return Err(ClientError::Config(
            "a signed statement's lifetime must be at least 1 second".into(),
        ));
    }
    let now = i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_err(|_| ClientError::Config("the system clock is before 1970".into()))?
            .as_secs(),
    )
    .unwrap_or(i64::MAX);
    let mut claims = metadata.clone();
    if aud.is_none() {
        // A software statement does not nest another one; a signed request carries it.
        claims.remove("software_statement");
    }
    claims.insert("iss".into(), issuer.into());
    if let Some(a) = aud {
        claims.insert("aud".into(), a.into());
    }
    claims.insert("iat".into(), now.into());
    claims.insert(
        "exp".into(),
        now.saturating_add(i64::try_from(lifetime_secs).unwrap_or(i64::MAX))
            .into(),
    );
    let sign_err = |source| ClientError::Sign {
        what: if aud.is_some() {
            "registration request"
        } else {
            "software statement"
        },
        source,
    };
    claims.insert(
        "jti".into(),
        pkjwt_core::assertion::new_jti().map_err(sign_err)?.into(),
    );
    let mut header = Map::new();
    header.insert("alg".into(), signer.algorithm().name().into());
    header.insert("typ".into(), "JWT".into());
    header.insert("kid".into(), thumbprint(signer.public_key()).into());
    let payload = serde_json::to_vec(&claims)
        .map_err(|e| ClientError::Config(format!("cannot encode the claims: {e}")))?;
    jws::sign_compact(signer, &jws::encode_header(&header), &payload)
        .await
        .map_err(sign_err)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn metadata_json_has_what_private_key_jwt_needs() {
        let mut m = ClientMetadata::new(
            ClientKeys::JwksUri("https://c/jwks".into()),
            Algorithm::ES256,
        );
        m.scope = Some("a b".into());
        m.extra.insert("jwks".into(), json!({}));
        m.extra
            .insert("token_endpoint_auth_method".into(), "none".into());
        let j = m.to_json();
        assert_eq!(j["token_endpoint_auth_method"], "private_key_jwt");
        assert_eq!(j["token_endpoint_auth_signing_alg"], "ES256");
        assert_eq!(j["grant_types"], json!(["client_credentials"]));
        assert_eq!(j["response_types"], json!([]));
        assert_eq!(j["redirect_uris"], json!([]));
        assert_eq!(j["jwks_uri"], "https://c/jwks");
        assert_eq!(j["scope"], "a b");
        assert!(!j.contains_key("jwks"));
    }

    #[test]
    fn registration_hides_its_token_and_strips_issued_members() {
        let r = Registration::from_json(
            json!({"client_id": "c1", "registration_access_token": "SECRET-RAT",
                   "registration_client_uri": "http://127.0.0.1/reg/c1",
                   "client_id_issued_at": 1, "scope": "x"})
            .as_object()
            .unwrap()
            .clone(),
        )
        .unwrap();
        let d = format!("{r:?}");
        assert!(!d.contains("SECRET-RAT"), "{d}");
        assert!(d.contains("c1"));
        let m = r.metadata();
        assert_eq!(m.get("client_id").unwrap(), "c1");
        assert!(!m.contains_key("registration_access_token"));
        assert!(!m.contains_key("client_id_issued_at"));
        assert!(Registration::from_json(Map::new()).is_err());
        assert!(
            Registration::from_json(json!({"client_id": 5}).as_object().unwrap().clone()).is_err()
        );
    }

    #[test]
    fn bearer_error_parameter() {
        assert_eq!(
            bearer_error(r#"Bearer realm="x", error="invalid_token", error_description="y""#)
                .as_deref(),
            Some("invalid_token")
        );
        assert_eq!(bearer_error("Bearer realm=\"x\""), None);
    }

    #[test]
    fn save_is_private_and_never_overwrites_unless_asked() {
        let dir = std::env::temp_dir().join(format!("pkjwt-reg-save-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join("r.json");
        let r = Registration::from_json(json!({"client_id": "c"}).as_object().unwrap().clone())
            .unwrap();
        r.save(&p, false).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        let e = r.save(&p, false).unwrap_err().to_string();
        assert!(e.contains("not overwritten"), "{e}");
        // A stale temporary file with loose permissions is not reused.
        let stale = dir.join(format!("r.json.tmp{}", std::process::id()));
        std::fs::write(&stale, "old").unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&stale, std::fs::Permissions::from_mode(0o644)).unwrap();
        }
        r.save(&p, true).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&p).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
        // The planted name is neither followed nor reused: it is left as it was.
        assert_eq!(std::fs::read_to_string(&stale).unwrap(), "old");
        assert_eq!(Registration::load(&p).unwrap(), r);
        // A registration others can read is refused on load (it holds the access token).
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = Registration::load(&p).unwrap_err().to_string();
            assert!(e.contains("mode is 0644"), "{e}");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}
