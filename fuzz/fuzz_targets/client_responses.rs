//! What pkjwt-client and pkjwt-jwks read from outside: authorization-server metadata, token
//! responses and RFC 6749 error bodies, registration responses, and the rotation state file.
//!
//! The first input byte picks the mode (modulo 6):
//!
//! 0. `ServerMetadata` (serde, as discovery reads it): `check_private_key_jwt` / `check_grant`
//!    accept exactly what the lists allow; `discovery_urls` of its issuer keep scheme, host and
//!    port and put the well-known segment where OpenID Connect Discovery and RFC 8414 say.
//! 1. A registration response object: `Registration::from_json` accepts exactly a non-empty
//!    string `client_id`; its `Debug` does not depend on the registration access token or
//!    client secret; `metadata()` drops the server-issued members; `save` then `load` gives it
//!    back; `load` of the raw bytes agrees with `from_json`.
//! 2. A rotation state file (`RotationState::load`): what loads is version 1 with unique,
//!    non-empty kids that are published before they sign, equals the plain serde parse, survives
//!    `save` + `load`; the signing key is published and in phase `Signing`; `begin` and `prune`
//!    keep it loadable; every published JWK is a valid public JWK (no private members).
//! 3–5. HTTP responses served from a loopback server in this process to the real client code,
//!    since the token-response, error-body and registration-response parsers are private
//!    (`parse_success`, `parse_error`, `registration_from`, `bearer_error`). Input: mode, a
//!    selector byte, a status byte (index into `STATUSES`), then `Date` NUL `Retry-After` NUL
//!    `WWW-Authenticate` NUL body (missing or empty headers are left out; CR and LF are removed).
//!    3. `TokenClient::request` (no retries; selector bit 0: the JWT-bearer grant instead of
//!       client_credentials, bit 1: with a scope): a 200 is accepted exactly
//!       when the body is an object with a non-empty string `access_token`, and the response
//!       mirrors the body; other statuses give the RFC 6749 error when the body has one; the
//!       response's `Debug` does not depend on the tokens; no error text quotes the
//!       `access_token` or `refresh_token` of the body; no error text (its `Display` or the
//!       printed chain) carries a raw control character or bidirectional override from the
//!       body or headers (issue 12, item 6).
//!    4. `RegistrationClient::register`: accepted only for 200/201 with a `client_id`, the
//!       registration mirroring the body; refusals carry the body's (or `WWW-Authenticate`'s)
//!       error; no error text quotes the `registration_access_token` or `client_secret`, or
//!       carries a raw control character (issue 12, item 6).
//!    5. Discovery (`RegistrationClient::discover`, which reads metadata with the same code as
//!       `TokenClient::discover`), with `$ISSUER` in the body replaced by the loopback issuer:
//!       accepted metadata names exactly that issuer, has http(s) endpoints, and takes
//!       `private_key_jwt` with the key's algorithm.

#![no_main]

#[path = "common/scratch.rs"]
mod scratch;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use pkjwt_client::{
    ClientConfig, ClientError, HttpOptions, RegisterOptions, Registration, RegistrationClient,
    RetryPolicy, Secret, ServerMetadata, TokenClient, TokenRequest, discovery_urls,
};
use pkjwt_core::{
    ALL_ALGORITHMS, Algorithm, FixedClock, GenerateOptions, Jwk, JwkSet, display_chain,
};
use pkjwt_file::generate_in_memory;
use pkjwt_jwks::{Phase, RotationState, RotationTiming, STATE_VERSION};
use serde_json::{Map, Value};

const NOW: i64 = 1_800_000_000;
/// Statuses the loopback server answers with (no 1xx: they are not final responses).
const STATUSES: [u16; 12] = [200, 201, 204, 302, 400, 401, 403, 404, 429, 500, 502, 503];
const SERVER_ISSUED: [&str; 4] = [
    "registration_access_token",
    "registration_client_uri",
    "client_id_issued_at",
    "client_secret_expires_at",
];

// ---------------------------------------------------------------------------------------------
// Fixture: scratch files, the loopback server, the clients.

struct Fixture {
    rt: tokio::runtime::Runtime,
    dir: PathBuf,
    /// What the loopback server answers with, whole (status line, headers, body).
    response: Arc<Mutex<Vec<u8>>>,
    issuer: String,
    token: TokenClient,
    registration: RegistrationClient,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let dir = scratch::dir("pkjwt-fuzz-client-");

        let response = Arc::new(Mutex::new(Vec::new()));
        let listener = TcpListener::bind("127.0.0.1:0").expect("loopback listener");
        let addr = listener.local_addr().expect("address");
        let shared = response.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                let r = shared.clone();
                std::thread::spawn(move || serve(conn, &r));
            }
        });
        let issuer = format!("http://{addr}");

        let (signer, _pkcs8) = generate_in_memory(Algorithm::EdDSA, &GenerateOptions::default())
            .expect("Ed25519 key generation");
        let mut http = HttpOptions::default();
        http.timeout = Duration::from_secs(3);
        http.connect_timeout = Duration::from_secs(2);
        let mut config = ClientConfig::new("fuzz-client", issuer.clone())
            .retry(RetryPolicy::attempts(1))
            .http(http.clone());
        config.clock = Arc::new(FixedClock::new(NOW));
        let token = TokenClient::with_metadata(
            Arc::new(signer),
            config,
            ServerMetadata::manual(issuer.clone(), format!("{issuer}/token")),
        )
        .expect("token client");
        let registration = RegistrationClient::new(&http).expect("registration client");
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        Fixture {
            rt,
            dir,
            response,
            issuer,
            token,
            registration,
        }
    })
}

/// One connection of the loopback server: reads each request (headers, then a
/// `Content-Length` body) and answers with the current response.
fn serve(mut s: TcpStream, response: &Mutex<Vec<u8>>) {
    let _ = s.set_nodelay(true);
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let len: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0);
        while buf.len() < end + len {
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        buf.drain(..end + len);
        let answer = response.lock().expect("lock").clone();
        if s.write_all(&answer).is_err() {
            return;
        }
    }
}

/// A canned HTTP response.
struct Canned<'a> {
    status: u16,
    date: Option<&'a [u8]>,
    retry_after: Option<&'a [u8]>,
    www_authenticate: Option<&'a [u8]>,
    body: Vec<u8>,
}

impl<'a> Canned<'a> {
    /// `selector status date NUL retry-after NUL www-authenticate NUL body`.
    fn parse(data: &'a [u8]) -> Option<(u8, Canned<'a>)> {
        let (&selector, rest) = data.split_first()?;
        let (&status, rest) = rest.split_first()?;
        let status = STATUSES[usize::from(status) % STATUSES.len()];
        let mut parts = rest.splitn(4, |b| *b == 0);
        let mut header = || parts.next().filter(|p| !p.is_empty());
        let (date, retry_after, www_authenticate) = (header(), header(), header());
        let body = parts.next().unwrap_or_default().to_vec();
        Some((
            selector,
            Canned {
                status,
                date,
                retry_after,
                www_authenticate,
                body,
            },
        ))
    }

    fn install(&self, f: &Fixture) {
        // 204 and 304 responses have no body (RFC 9110 §6.4.1); sending one would desynchronize
        // the connection.
        let body: &[u8] = if self.status == 204 { b"" } else { &self.body };
        let mut r = format!(
            "HTTP/1.1 {} Fuzz\r\nContent-Type: application/json\r\nContent-Length: {}\r\n",
            self.status,
            body.len()
        )
        .into_bytes();
        for (name, value) in [
            ("Date", self.date),
            ("Retry-After", self.retry_after),
            ("WWW-Authenticate", self.www_authenticate),
        ] {
            if let Some(v) = value {
                r.extend_from_slice(name.as_bytes());
                r.extend_from_slice(b": ");
                r.extend(v.iter().copied().filter(|b| *b != b'\r' && *b != b'\n'));
                r.extend_from_slice(b"\r\n");
            }
        }
        r.extend_from_slice(b"\r\n");
        r.extend_from_slice(body);
        *f.response.lock().expect("lock") = r;
    }

    fn body(&self) -> &[u8] {
        if self.status == 204 { b"" } else { &self.body }
    }

    fn json_object(&self) -> Option<Map<String, Value>> {
        serde_json::from_slice(self.body()).ok()
    }
}

/// Issue 12, item 6: what reaches a terminal or a log carries no control character, no
/// bidirectional override and no line separator from the server's text. `Display` of the error
/// itself is what a library caller logs; `display_chain` is what the CLI prints.
fn assert_terminal_safe(e: &ClientError) {
    for text in [e.to_string(), display_chain(e)] {
        if let Some(c) = text.chars().find(|&c| {
            c.is_control()
                || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
        }) {
            panic!("raw {c:?} reaches a terminal: {text:?}");
        }
    }
}

fn err_text(e: &ClientError) -> String {
    format!("{e}\n{e:?}\n{}", display_chain(e))
}

/// A different string of the same length in characters.
fn other_secret(s: &str) -> String {
    s.chars()
        .map(|c| if c == 'Q' { 'Z' } else { 'Q' })
        .collect()
}

/// The body with the string member `member` replaced by a same-length different value.
fn body_with_replaced(body: &Map<String, Value>, member: &str) -> Vec<u8> {
    let mut m = body.clone();
    if let Some(Value::String(s)) = m.get(member) {
        let o = other_secret(s);
        m.insert(member.into(), Value::String(o));
    }
    serde_json::to_vec(&m).expect("a map serializes")
}

/// Secrets of the body (string members `members`, 8 bytes or more) that appear in `text`.
fn quoted_secrets<'b>(
    body: Option<&'b Map<String, Value>>,
    members: &[&'static str],
    text: &str,
) -> Vec<(&'static str, &'b str)> {
    let Some(body) = body else { return Vec::new() };
    members
        .iter()
        .filter_map(|m| Some((*m, body.get(*m)?.as_str()?)))
        .filter(|(_, s)| s.len() >= 8 && text.contains(s))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// Mode 0: server metadata.

fn metadata(data: &[u8]) {
    let Ok(m) = serde_json::from_slice::<ServerMetadata>(data) else {
        return;
    };
    for alg in ALL_ALGORITHMS {
        let methods_ok = m
            .token_endpoint_auth_methods_supported
            .as_ref()
            .is_some_and(|l| l.iter().any(|x| x == "private_key_jwt"));
        let alg_ok = m
            .token_endpoint_auth_signing_alg_values_supported
            .as_ref()
            .is_none_or(|l| l.iter().any(|x| x == alg.name()));
        match m.check_private_key_jwt(alg) {
            Ok(()) => assert!(methods_ok && alg_ok, "accepted {alg} for {m:?}"),
            Err(e) => {
                assert!(!(methods_ok && alg_ok), "refused {alg}: {e}");
                assert!(!e.to_string().is_empty());
            }
        }
    }
    for grant in [
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer",
    ] {
        let listed = m
            .grant_types_supported
            .as_ref()
            .is_none_or(|g| g.iter().any(|x| x == grant));
        assert_eq!(m.check_grant(grant).is_ok(), listed, "{grant}");
    }
    match discovery_urls(&m.issuer) {
        Ok([oidc, oauth]) => {
            let base = url::Url::parse(&m.issuer).expect("an issuer discovery accepts is a URL");
            assert!(base.query().is_none() && base.fragment().is_none());
            if matches!(base.scheme(), "http" | "https") {
                for u in [&oidc, &oauth] {
                    assert_eq!(u.scheme(), base.scheme(), "{u} vs {}", m.issuer);
                    assert_eq!(u.host_str(), base.host_str(), "{u} vs {}", m.issuer);
                    assert_eq!(u.port_or_known_default(), base.port_or_known_default());
                    assert!(u.query().is_none() && u.fragment().is_none(), "{u}");
                }
                let path = base.path().trim_end_matches('/');
                assert_eq!(
                    oidc.path(),
                    format!("{path}/.well-known/openid-configuration"),
                    "{}",
                    m.issuer
                );
                assert_eq!(
                    oauth.path(),
                    format!("/.well-known/oauth-authorization-server{path}"),
                    "{}",
                    m.issuer
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

// ---------------------------------------------------------------------------------------------
// Mode 1: registration response objects.

fn registration(f: &Fixture, data: &[u8]) {
    let path = f.dir.join("registration.json");
    scratch::write_private(&path, data);
    let loaded = Registration::load(&path);
    let Ok(map) = serde_json::from_slice::<Map<String, Value>>(data) else {
        assert!(
            loaded.is_err(),
            "loaded a registration that is not a JSON object"
        );
        return;
    };
    let valid = matches!(map.get("client_id"), Some(Value::String(s)) if !s.is_empty());
    let reg = match Registration::from_json(map.clone()) {
        Ok(r) => r,
        Err(e) => {
            assert!(!valid, "refused a registration with a client_id: {e}");
            assert!(!e.is_empty());
            assert!(loaded.is_err());
            return;
        }
    };
    assert!(valid, "accepted a registration without a client_id");
    assert_eq!(loaded.expect("load agrees with from_json"), reg);
    assert_eq!(reg.response(), &map);
    assert_eq!(
        Some(reg.client_id()),
        map.get("client_id").and_then(Value::as_str)
    );
    assert_eq!(
        reg.registration_access_token(),
        map.get("registration_access_token").and_then(Value::as_str)
    );
    let meta = reg.metadata();
    for k in SERVER_ISSUED {
        assert!(!meta.contains_key(k), "metadata() kept {k}");
    }
    assert_eq!(meta.get("client_id"), map.get("client_id"));

    // Debug does not depend on the secrets.
    let mut other = map.clone();
    for k in ["registration_access_token", "client_secret"] {
        if let Some(Value::String(s)) = other.get(k) {
            let o = other_secret(s);
            other.insert(k.into(), Value::String(o));
        }
    }
    let other = Registration::from_json(other).expect("same client_id");
    assert_eq!(
        format!("{reg:?}"),
        format!("{other:?}"),
        "Debug shows a secret"
    );

    let saved = f.dir.join("registration-saved.json");
    reg.save(&saved, true).expect("save");
    assert_eq!(
        Registration::load(&saved).expect("load what was saved"),
        reg
    );
}

// ---------------------------------------------------------------------------------------------
// Mode 2: rotation state files.

fn rotation(f: &Fixture, data: &[u8]) {
    let path = f.dir.join("state.json");
    scratch::write_private(&path, data);
    let state = match RotationState::load(&path) {
        Ok(s) => s,
        Err(e) => {
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    assert_eq!(
        serde_json::from_slice::<RotationState>(data).expect("serde agrees"),
        state
    );
    check_state(&state);

    let saved = f.dir.join("state-saved.json");
    state.save(&saved).expect("save");
    assert_eq!(
        RotationState::load(&saved).expect("load what was saved"),
        state
    );

    let mut next = state.clone();
    let jwk = Jwk::from_json(
        r#"{"kty":"OKP","crv":"Ed25519","kid":"fuzz-next","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
    )
    .expect("fixed JWK");
    if next
        .begin("file:next.pem", jwk, NOW, RotationTiming::new(120, 60))
        .is_ok()
    {
        let added = next.keys.last().expect("begin added a key");
        assert_eq!(added.published_at, NOW);
        assert_eq!(added.active_from, NOW + 120);
        for k in next
            .keys
            .iter()
            .filter(|k| k.is_published(NOW) && k.kid() != "fuzz-next")
        {
            assert!(k.retire_at.is_some_and(|r| r <= NOW + 180), "{k:?}");
        }
        check_state(&next);
        next.save(&saved).expect("save");
        assert_eq!(
            RotationState::load(&saved).expect("reload after begin"),
            next
        );
    }
    let mut pruned = state.clone();
    let gone = pruned.prune(NOW);
    assert_eq!(gone + pruned.keys.len(), state.keys.len());
    assert!(
        pruned
            .keys
            .iter()
            .all(|k| k.retire_at.is_none_or(|r| NOW < r))
    );
}

fn check_state(state: &RotationState) {
    assert_eq!(state.version, STATE_VERSION);
    for (i, k) in state.keys.iter().enumerate() {
        assert!(!k.kid().is_empty());
        assert!(
            state.keys[..i].iter().all(|o| o.kid() != k.kid()),
            "kid twice"
        );
        assert!(k.active_from >= k.published_at);
    }
    let signing = state.signing(NOW);
    if let Some(s) = signing {
        assert!(s.is_published(NOW) && s.active_from <= NOW);
        assert_eq!(s.phase(NOW, Some(s.kid())), Phase::Signing);
    }
    let published: Vec<Jwk> = state.published(NOW).map(|k| k.jwk.clone()).collect();
    for jwk in &published {
        // What the JWKS service publishes must be what a JWKS parser accepts: a valid public
        // key, without private members.
        if let Err(e) = Jwk::from_json(&jwk.to_json()) {
            panic!("the state publishes a JWK that is not a valid public JWK ({e}): {jwk:?}");
        }
    }
    // The JWKS service's set (kids are unique, so this succeeds).
    JwkSet::new(published).expect("published keys form a JWKS");
}

// ---------------------------------------------------------------------------------------------
// Mode 3: token endpoint responses.

fn token_request(selector: u8) -> TokenRequest {
    let r = if selector & 1 == 0 {
        TokenRequest::client_credentials()
    } else {
        TokenRequest::jwt_bearer("fuzz-subject")
    };
    if selector & 2 == 0 {
        r
    } else {
        r.scope("read fuzz")
    }
}

fn token_response(f: &Fixture, selector: u8, c: &Canned<'_>) {
    c.install(f);
    f.token.assertion().set_clock_offset(0);
    let request = token_request(selector);
    let result = f.rt.block_on(f.token.request(&request));
    let body = c.json_object();
    match result {
        Ok(resp) => {
            assert_eq!(
                c.status, 200,
                "accepted a token response with status {}",
                c.status
            );
            let body = body.expect("accepted body is a JSON object");
            let token = body.get("access_token").and_then(Value::as_str);
            assert!(token.is_some_and(|t| !t.is_empty()));
            assert_eq!(Some(resp.access_token.secret()), token);
            assert_eq!(resp.to_json(), Value::Object(body.clone()));
            let token_type = body
                .get("token_type")
                .and_then(Value::as_str)
                .unwrap_or("Bearer");
            assert_eq!(resp.token_type, token_type);
            assert_eq!(
                resp.scope.as_deref(),
                body.get("scope").and_then(Value::as_str)
            );
            assert_eq!(
                resp.refresh_token.as_ref().map(Secret::secret),
                body.get("refresh_token").and_then(Value::as_str)
            );
            match body.get("expires_in") {
                None | Some(Value::Null) => assert_eq!(resp.expires_in, None),
                Some(Value::Number(n)) => assert_eq!(resp.expires_in, n.as_u64()),
                Some(Value::String(s)) => assert_eq!(resp.expires_in, s.parse().ok()),
                Some(v) => panic!("accepted expires_in {v}"),
            }
            // Debug does not depend on the tokens.
            let mut other = resp.clone();
            other.access_token = Secret::new(other_secret(resp.access_token.secret()));
            other.refresh_token = resp
                .refresh_token
                .as_ref()
                .map(|t| Secret::new(other_secret(t.secret())));
            assert_eq!(
                format!("{resp:?}"),
                format!("{other:?}"),
                "Debug shows a token"
            );
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_terminal_safe(&e);
            if let Some(s) = e.status() {
                assert_eq!(s, c.status);
                let error = body.as_ref().and_then(|b| b.get("error")?.as_str());
                if c.status != 200 {
                    match (error, e.oauth()) {
                        (Some(want), Some(got)) => {
                            assert_eq!(got.error, want);
                            assert_eq!(got.status, c.status);
                            assert_eq!(
                                got.error_description.as_deref(),
                                body.as_ref()
                                    .and_then(|b| b.get("error_description")?.as_str())
                            );
                        }
                        (None, None) => {}
                        (want, got) => panic!("body error {want:?}, client error {got:?}"),
                    }
                }
            }
            let text = err_text(&e);
            for (member, secret) in
                quoted_secrets(body.as_ref(), &["access_token", "refresh_token"], &text)
            {
                // Quoted through another member that happens to hold the same text? Ask again
                // with only this member changed.
                let replaced = body_with_replaced(body.as_ref().expect("body"), member);
                let again = Canned {
                    body: replaced,
                    date: c.date,
                    retry_after: c.retry_after,
                    www_authenticate: c.www_authenticate,
                    status: c.status,
                };
                again.install(f);
                f.token.assertion().set_clock_offset(0);
                let text2 = match f.rt.block_on(f.token.request(&request)) {
                    Ok(r) => format!("{r:?}"),
                    Err(e) => err_text(&e),
                };
                assert!(
                    text2.contains(secret),
                    "the error quotes the {member}: {text}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mode 4: registration endpoint responses.

fn registration_response(f: &Fixture, c: &Canned<'_>) {
    c.install(f);
    let endpoint = format!("{}/register", f.issuer);
    let mut request = Map::new();
    request.insert(
        "token_endpoint_auth_method".into(),
        "private_key_jwt".into(),
    );
    let options = RegisterOptions::default();
    let result = f.rt.block_on(
        f.registration
            .register(&endpoint, &f.issuer, &request, &options),
    );
    let body_value: Option<Value> = if c.body().is_empty() {
        None
    } else {
        serde_json::from_slice(c.body()).ok()
    };
    let body = c.json_object();
    match result {
        Ok(reg) => {
            assert!(
                matches!(c.status, 200 | 201),
                "accepted status {}",
                c.status
            );
            let body = body.expect("accepted body is an object");
            assert_eq!(reg.response(), &body);
            assert!(!reg.client_id().is_empty());
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            assert_terminal_safe(&e);
            if let Some(s) = e.status() {
                assert_eq!(s, c.status);
                if !matches!(c.status, 200 | 201) {
                    let body_error = body_value
                        .as_ref()
                        .and_then(|v| v.get("error"))
                        .and_then(Value::as_str);
                    if let Some(want) = body_error {
                        match &e {
                            ClientError::Registration { error, .. } => {
                                assert_eq!(error.error, want);
                                assert_eq!(error.status, c.status);
                            }
                            other => panic!("body error {want:?}, client error {other:?}"),
                        }
                    }
                }
            }
            let text = err_text(&e);
            for (member, secret) in quoted_secrets(
                body.as_ref(),
                &["registration_access_token", "client_secret"],
                &text,
            ) {
                let again = Canned {
                    body: body_with_replaced(body.as_ref().expect("body"), member),
                    date: c.date,
                    retry_after: c.retry_after,
                    www_authenticate: c.www_authenticate,
                    status: c.status,
                };
                again.install(f);
                let text2 = match f.rt.block_on(
                    f.registration
                        .register(&endpoint, &f.issuer, &request, &options),
                ) {
                    Ok(r) => format!("{r:?}"),
                    Err(e) => err_text(&e),
                };
                assert!(
                    text2.contains(secret),
                    "the error quotes the {member}: {text}"
                );
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Mode 5: discovery.

fn discovery(f: &Fixture, c: &mut Canned<'_>) {
    // The fuzzer cannot know the port: `$ISSUER` stands for the loopback issuer.
    let text = String::from_utf8_lossy(&c.body).into_owned();
    if text.contains("$ISSUER") {
        c.body = text.replace("$ISSUER", &f.issuer).into_bytes();
    }
    c.install(f);
    // `TokenClient::discover` runs the same metadata reading (`metadata::discover`) but builds a
    // new HTTP client, root certificates and all, on every call (~16 ms here): the registration
    // client, built once, reaches the same parser. The checks `TokenClient` adds on the parsed
    // metadata are mode 0's.
    match f
        .rt
        .block_on(f.registration.discover(&f.issuer, Algorithm::EdDSA))
    {
        Ok(m) => {
            assert_eq!(m.issuer, f.issuer, "accepted metadata of another issuer");
            let t = url::Url::parse(&m.token_endpoint).expect("token endpoint is a URL");
            assert!(matches!(t.scheme(), "https" | "http"), "token endpoint {t}");
            let r = m
                .registration_endpoint
                .as_deref()
                .expect("registration endpoint");
            let r = url::Url::parse(r).expect("registration endpoint is a URL");
            assert!(
                matches!(r.scheme(), "https" | "http"),
                "registration endpoint {r}"
            );
            m.check_private_key_jwt(Algorithm::EdDSA)
                .expect("a discovered server takes private_key_jwt with EdDSA");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let f = fixture();
    match mode % 6 {
        0 => metadata(rest),
        1 => registration(f, rest),
        2 => rotation(f, rest),
        m => {
            let Some((selector, mut canned)) = Canned::parse(rest) else {
                return;
            };
            match m {
                3 => token_response(f, selector, &canned),
                4 => registration_response(f, &canned),
                _ => discovery(f, &mut canned),
            }
        }
    }
});
