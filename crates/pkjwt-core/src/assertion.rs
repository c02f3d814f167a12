//! RFC 7523 §3 client assertions (`private_key_jwt`, OIDC Core §9, FAPI 2.0, rfc7523bis).
//!
//! The header is fixed per signer and settings, so it is encoded once in
//! [`ClientAssertion::new`]; each [`ClientAssertion::sign`] builds the claims with a fresh `jti`,
//! signs, and assembles the compact JWT.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use serde_json::{Map, Value};

use crate::jti::{JTI_BYTES, jti_bytes};
use crate::{Error, Result, Signer, b64, jwk, jws};

/// `typ` registered for client assertions by draft-ietf-oauth-rfc7523bis.
pub const TYP_CLIENT_AUTHENTICATION: &str = "client-authentication+jwt";
/// Default assertion lifetime in seconds (Keycloak's limit; FAPI 2.0 sets none).
pub const DEFAULT_LIFETIME_SECS: u64 = 60;
/// Default upper bound on the lifetime: servers reject longer ones (Keycloak 60 s by default,
/// Singpass 2 min, Corppass 10 min). Raise it with [`AssertionOptions::max_lifetime_secs`] only
/// for a server known to accept more.
pub const DEFAULT_MAX_LIFETIME_SECS: u64 = 600;

/// Claims a caller may not set through `extra_claims`: pkjwt owns them.
const REGISTERED: [&str; 7] = ["iss", "sub", "aud", "exp", "iat", "nbf", "jti"];
/// Header members pkjwt sets itself.
const HEADER_OWNED: [&str; 6] = ["alg", "kid", "typ", "x5t#S256", "x5t", "x5c"];

/// Source of the current time, injectable for tests.
pub trait Clock: fmt::Debug + Send + Sync {
    /// Seconds since the Unix epoch.
    fn now(&self) -> i64;
}

/// The system clock.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> i64 {
        match SystemTime::now().duration_since(UNIX_EPOCH) {
            Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
            // A clock before 1970 is broken; negative time keeps the arithmetic honest.
            Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
        }
    }
}

/// A clock that stands still until moved (tests).
#[derive(Debug, Default)]
pub struct FixedClock(AtomicI64);

impl FixedClock {
    /// A clock showing `now`.
    pub fn new(now: i64) -> Self {
        FixedClock(AtomicI64::new(now))
    }
    /// Moves the clock.
    pub fn set(&self, now: i64) {
        self.0.store(now, Ordering::SeqCst)
    }
}

impl Clock for FixedClock {
    fn now(&self) -> i64 {
        self.0.load(Ordering::SeqCst)
    }
}

/// The `aud` claim.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Audience {
    /// A single string: the issuer identifier by default (FAPI 2.0, rfc7523bis), or a token
    /// endpoint URL for servers that still want one.
    One(String),
    /// An array, for the servers that take one. rfc7523bis forbids it for client
    /// authentication; prefer [`Audience::One`].
    Many(Vec<String>),
}

impl Audience {
    fn validate(&self) -> Result<()> {
        let check = |a: &str| {
            if a.trim().is_empty() {
                Err(Error::Assertion("audience is empty".into()))
            } else if a.trim() != a {
                Err(Error::Assertion(format!(
                    "audience {a:?} has surrounding whitespace; servers compare aud exactly"
                )))
            } else {
                Ok(())
            }
        };
        match self {
            Audience::One(a) => check(a),
            Audience::Many(v) => {
                if v.is_empty() {
                    return Err(Error::Assertion("audience list is empty".into()));
                }
                for (i, a) in v.iter().enumerate() {
                    check(a)?;
                    if v[..i].contains(a) {
                        return Err(Error::Assertion(format!("audience {a:?} is listed twice")));
                    }
                }
                Ok(())
            }
        }
    }
}

impl Serialize for Audience {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Audience::One(a) => s.serialize_str(a),
            Audience::Many(v) => v.serialize(s),
        }
    }
}

impl From<&str> for Audience {
    fn from(s: &str) -> Self {
        Audience::One(s.to_string())
    }
}

/// How the header's `kid` is chosen.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub enum KeyId {
    /// RFC 7638 thumbprint of the signer's public key (the default: a new key gets a new kid by
    /// construction).
    #[default]
    Thumbprint,
    /// A given kid, for keys registered under a name.
    Given(String),
    /// No `kid` header (servers then try every key of the client).
    Omit,
}

/// Settings for client assertions. Build with [`AssertionOptions::new`] and adjust fields.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct AssertionOptions {
    /// `iss` and, unless [`subject`](Self::subject) is set, `sub`.
    pub client_id: String,
    /// `sub` when it differs from the client id: only for the RFC 7523 §2.1 authorization grant,
    /// where it names the user the client acts for. Must be `None` for client authentication.
    pub subject: Option<String>,
    /// `aud`.
    pub audience: Audience,
    /// Header `typ`; `None` omits it. Default `client-authentication+jwt`.
    pub typ: Option<String>,
    /// Seconds from `iat` to `exp`. Default 60.
    pub lifetime_secs: u64,
    /// Refuse lifetimes above this. Default 600.
    pub max_lifetime_secs: u64,
    /// Header `kid`.
    pub kid: KeyId,
    /// Header `x5t#S256` (base64url SHA-256 of the DER certificate).
    pub x5t_s256: Option<String>,
    /// Header `x5t` (base64url SHA-1 of the DER certificate), only for servers that ask for it.
    pub x5t: Option<String>,
    /// Header `x5c` (standard base64 DER chain, leaf first).
    pub x5c: Option<Vec<String>>,
    /// Extra claims; the registered ones (`iss`, `sub`, `aud`, `exp`, `iat`, `nbf`, `jti`) are
    /// refused here because pkjwt sets them.
    pub extra_claims: Map<String, Value>,
    /// Include `nbf` (default true; equals `iat`).
    pub include_nbf: bool,
    /// Time source.
    pub clock: Arc<dyn Clock>,
    /// Seconds added to the clock (learned skew); can be changed later with
    /// [`ClientAssertion::set_clock_offset`].
    pub clock_offset_secs: i64,
}

impl AssertionOptions {
    /// Default settings for `client_id` and audience `aud` (the issuer identifier, as a string).
    pub fn new(client_id: impl Into<String>, audience: impl Into<Audience>) -> Self {
        AssertionOptions {
            client_id: client_id.into(),
            subject: None,
            audience: audience.into(),
            typ: Some(TYP_CLIENT_AUTHENTICATION.into()),
            lifetime_secs: DEFAULT_LIFETIME_SECS,
            max_lifetime_secs: DEFAULT_MAX_LIFETIME_SECS,
            kid: KeyId::Thumbprint,
            x5t_s256: None,
            x5t: None,
            x5c: None,
            extra_claims: Map::new(),
            include_nbf: true,
            clock: Arc::new(SystemClock),
            clock_offset_secs: 0,
        }
    }

    fn validate(&self) -> Result<()> {
        if self.client_id.is_empty() {
            return Err(Error::Assertion("client_id is empty".into()));
        }
        if let Some(s) = &self.subject
            && s.is_empty()
        {
            return Err(Error::Assertion("subject is empty".into()));
        }
        self.audience.validate()?;
        if self.lifetime_secs == 0 {
            return Err(Error::Assertion(
                "lifetime must be at least 1 second".into(),
            ));
        }
        if self.lifetime_secs > self.max_lifetime_secs {
            return Err(Error::Assertion(format!(
                "lifetime of {}s exceeds the maximum of {}s; authorization servers reject long-lived \
                 assertions (Keycloak 60 s, Singpass 120 s, Corppass 600 s); raise the maximum only \
                 for a server known to accept it",
                self.lifetime_secs, self.max_lifetime_secs
            )));
        }
        if let Some(typ) = &self.typ
            && typ.is_empty()
        {
            return Err(Error::Assertion(
                "typ is empty; omit it instead of sending an empty value".into(),
            ));
        }
        if let Some(k) = REGISTERED
            .iter()
            .find(|k| self.extra_claims.contains_key(**k))
        {
            return Err(Error::Assertion(format!(
                "extra claim \"{k}\" is set by pkjwt itself and cannot be overridden"
            )));
        }
        Ok(())
    }
}

/// The claims JSON that is the same in every assertion of one [`ClientAssertion`], encoded once
/// in [`ClientAssertion::new`] so that [`ClientAssertion::sign`] only writes the time and `jti`
/// between its two halves (no intermediate `serde_json::Value`).
///
/// Member order, as sent: `iss`, `sub`, `aud`, `iat`, `nbf` (when enabled), `exp`, `jti`, then
/// the extra claims in insertion order. The bytes are exactly what serde_json writes for a struct
/// with these members (a test holds it to that).
///
/// The head is also kept in base64url, as far as it fills whole 3-byte groups: base64 encodes
/// each group on its own, so that part of every assertion's payload is the same characters.
#[derive(Debug)]
struct ClaimsTemplate {
    /// base64url of the leading whole 3-byte groups of `{"iss":…,"sub":…,"aud":…,"iat":`.
    head_b64: String,
    /// The 0–2 bytes of the head after those groups.
    head_rest: Vec<u8>,
    /// `,"name":value…}`: the extra claims and the closing brace.
    tail: Vec<u8>,
    include_nbf: bool,
}

/// What one assertion adds to the template at most: three `i64`s of up to 20 characters, the
/// member names around them and the 22-character `jti` in quotes.
const CLAIMS_VARIABLE_MAX: usize = 3 * 20 + r#","nbf":,"exp":,"jti":"""#.len() + JTI_B64_LEN;
/// The `jti` in base64url: 22 characters.
const JTI_B64_LEN: usize = b64::encoded_len(JTI_BYTES);

impl ClaimsTemplate {
    fn new(options: &AssertionOptions) -> Result<Self> {
        let mut head = Vec::with_capacity(64 + options.client_id.len() * 2);
        head.extend_from_slice(br#"{"iss":"#);
        write_json(&mut head, &options.client_id)?;
        head.extend_from_slice(br#","sub":"#);
        write_json(
            &mut head,
            options.subject.as_deref().unwrap_or(&options.client_id),
        )?;
        head.extend_from_slice(br#","aud":"#);
        write_json(&mut head, &options.audience)?;
        head.extend_from_slice(br#","iat":"#);
        let mut tail = Vec::new();
        for (name, value) in &options.extra_claims {
            tail.push(b',');
            write_json(&mut tail, name)?;
            tail.push(b':');
            write_json(&mut tail, value)?;
        }
        tail.push(b'}');
        let whole_groups = head.len() / 3 * 3;
        Ok(ClaimsTemplate {
            head_b64: b64::encode(&head[..whole_groups]),
            head_rest: head[whole_groups..].to_vec(),
            tail,
            include_nbf: options.include_nbf,
        })
    }

    /// The largest number of characters [`write_b64`](Self::write_b64) appends.
    fn max_b64_len(&self) -> usize {
        self.head_b64.len()
            + b64::encoded_len(self.head_rest.len() + CLAIMS_VARIABLE_MAX + self.tail.len())
    }

    /// Appends base64url of the claims of one assertion issued at `iat`, valid until `exp`,
    /// with `jti`.
    fn write_b64(&self, iat: i64, exp: i64, jti: &[u8; JTI_BYTES], out: &mut String) -> Result<()> {
        let mut rest =
            Vec::with_capacity(self.head_rest.len() + CLAIMS_VARIABLE_MAX + self.tail.len());
        rest.extend_from_slice(&self.head_rest);
        write_json(&mut rest, &iat)?;
        if self.include_nbf {
            rest.extend_from_slice(br#","nbf":"#);
            write_json(&mut rest, &iat)?;
        }
        rest.extend_from_slice(br#","exp":"#);
        write_json(&mut rest, &exp)?;
        rest.extend_from_slice(br#","jti":""#);
        b64::encode_into_vec(jti, &mut rest);
        rest.push(b'"');
        rest.extend_from_slice(&self.tail);
        out.push_str(&self.head_b64);
        b64::encode_into(&rest, out);
        Ok(())
    }
}

/// Appends the JSON of `value` to `out`, as serde_json writes it.
fn write_json<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) -> Result<()> {
    serde_json::to_writer(out, value)
        .map_err(|e| Error::Assertion(format!("cannot encode claims: {e}")))
}

/// A client-assertion factory bound to one signer.
pub struct ClientAssertion {
    signer: Arc<dyn Signer>,
    options: AssertionOptions,
    header: Map<String, Value>,
    header_b64: String,
    claims: ClaimsTemplate,
    offset: AtomicI64,
}

impl fmt::Debug for ClientAssertion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientAssertion")
            .field("signer", &self.signer)
            .field("client_id", &self.options.client_id)
            .field("audience", &self.options.audience)
            .finish_non_exhaustive()
    }
}

/// One signed assertion with the values that went into it.
#[derive(Clone, Debug)]
pub struct SignedAssertion {
    /// The compact JWT.
    pub jwt: String,
    /// The header, as sent.
    pub header: Map<String, Value>,
    /// The claims, as sent.
    pub claims: Value,
}

impl ClientAssertion {
    /// Validates `options` against `signer` and prepares the header.
    pub fn new(signer: Arc<dyn Signer>, options: AssertionOptions) -> Result<Self> {
        options.validate()?;
        let alg = signer.algorithm();
        // A signer that violates its own contract would produce JWTs no server accepts.
        signer.public_key().resolve_algorithm(Some(alg))?;
        let mut header = Map::new();
        header.insert("alg".into(), Value::String(alg.name().into()));
        match &options.kid {
            KeyId::Thumbprint => {
                header.insert("kid".into(), jwk::thumbprint(signer.public_key()).into());
            }
            KeyId::Given(k) if k.is_empty() => {
                return Err(Error::Assertion("kid is empty".into()));
            }
            KeyId::Given(k) => {
                header.insert("kid".into(), k.clone().into());
            }
            KeyId::Omit => {}
        }
        if let Some(typ) = &options.typ {
            header.insert("typ".into(), typ.clone().into());
        }
        if let Some(t) = &options.x5t_s256 {
            b64::decode("x5t#S256", t).and_then(|d| {
                if d.len() == 32 {
                    Ok(())
                } else {
                    Err(Error::Assertion(format!(
                        "x5t#S256 must be a 32-byte SHA-256 digest, got {} bytes",
                        d.len()
                    )))
                }
            })?;
            header.insert("x5t#S256".into(), t.clone().into());
        }
        if let Some(t) = &options.x5t {
            header.insert("x5t".into(), t.clone().into());
        }
        if let Some(chain) = &options.x5c {
            if chain.is_empty() {
                return Err(Error::Assertion("x5c is an empty chain".into()));
            }
            header.insert(
                "x5c".into(),
                Value::Array(chain.iter().cloned().map(Value::String).collect()),
            );
        }
        debug_assert!(header.keys().all(|k| HEADER_OWNED.contains(&k.as_str())));
        let header_b64 = jws::encode_header(&header);
        let claims = ClaimsTemplate::new(&options)?;
        let offset = AtomicI64::new(options.clock_offset_secs);
        Ok(ClientAssertion {
            signer,
            options,
            header,
            header_b64,
            claims,
            offset,
        })
    }

    /// The signer.
    pub fn signer(&self) -> &Arc<dyn Signer> {
        &self.signer
    }

    /// The settings.
    pub fn options(&self) -> &AssertionOptions {
        &self.options
    }

    /// The header every assertion carries.
    pub fn header(&self) -> &Map<String, Value> {
        &self.header
    }

    /// Sets the clock offset in seconds (learned from a server's `Date` header).
    pub fn set_clock_offset(&self, secs: i64) {
        self.offset.store(secs, Ordering::Relaxed);
    }

    /// The clock offset in seconds.
    pub fn clock_offset(&self) -> i64 {
        self.offset.load(Ordering::Relaxed)
    }

    /// The time the next assertion will carry as `iat`.
    pub fn now(&self) -> i64 {
        self.options
            .clock
            .now()
            .saturating_add(self.offset.load(Ordering::Relaxed))
    }

    /// Signs a fresh assertion (new `jti`, current time) and returns the compact JWT.
    pub async fn sign(&self) -> Result<String> {
        self.sign_inner().await
    }

    /// Like [`sign`](Self::sign), also returning header and claims.
    pub async fn sign_detailed(&self) -> Result<SignedAssertion> {
        let jwt = self.sign_inner().await?;
        // The claims as signed: decoded from the JWT itself.
        let payload = jwt
            .split('.')
            .nth(1)
            .ok_or_else(|| Error::Assertion("signed assertion has no payload".into()))
            .and_then(|p| b64::decode("claims", p))?;
        let claims = serde_json::from_slice(&payload)
            .map_err(|e| Error::Assertion(format!("cannot decode claims: {e}")))?;
        Ok(SignedAssertion {
            jwt,
            header: self.header.clone(),
            claims,
        })
    }

    async fn sign_inner(&self) -> Result<String> {
        let jti = jti_bytes()?;
        let iat = self.now();
        // lifetime ≤ max_lifetime was checked in `new`; saturate rather than wrap regardless.
        let lifetime = i64::try_from(self.options.lifetime_secs).unwrap_or(i64::MAX);
        let signer = self.signer.as_ref();
        // One buffer, sized once: header, claims and then the signature are written into it.
        let mut out = jws::with_room_for_signature(
            signer,
            self.header_b64.len() + 1 + self.claims.max_b64_len(),
        );
        out.push_str(&self.header_b64);
        out.push('.');
        self.claims
            .write_b64(iat, iat.saturating_add(lifetime), &jti, &mut out)?;
        jws::sign_input(signer, out).await
    }
}

/// A fresh `jti`: 128 random bits from the operating system, base64url (22 characters). The bits
/// come from a per-thread pool that a `fork()`ed child never shares with its parent (see the
/// `jti` module of this crate: `MADV_WIPEONFORK` on Linux, else one `getrandom` call each).
pub fn new_jti() -> Result<String> {
    Ok(b64::encode(jti_bytes()?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Algorithm, Curve, PublicKey, Signature};

    /// A signer that returns a fixed, well-formed DER ECDSA signature: enough to check the claims
    /// and header pkjwt builds (signatures themselves are checked in the conformance suite).
    #[derive(Debug)]
    struct FakeSigner(PublicKey);

    #[async_trait::async_trait]
    impl Signer for FakeSigner {
        fn algorithm(&self) -> Algorithm {
            Algorithm::ES256
        }
        fn public_key(&self) -> &PublicKey {
            &self.0
        }
        async fn sign(&self, _message: &[u8]) -> Result<Signature> {
            Ok(Signature::new(vec![
                0x30, 0x06, 0x02, 0x01, 0x01, 0x02, 0x01, 0x02,
            ]))
        }
    }

    fn signer() -> Arc<dyn Signer> {
        Arc::new(FakeSigner(
            PublicKey::ec(Curve::P256, &[1; 32], &[2; 32]).unwrap(),
        ))
    }

    fn decode(jwt: &str, i: usize) -> Value {
        serde_json::from_slice(&b64::decode("part", jwt.split('.').nth(i).unwrap()).unwrap())
            .unwrap()
    }

    #[tokio::test]
    async fn claims_follow_the_injected_clock_and_offset() {
        let clock = Arc::new(FixedClock::new(1_000_000));
        let mut o = AssertionOptions::new("client-1", "https://issuer.example");
        o.clock = clock.clone();
        o.extra_claims.insert("scope".into(), "payments".into());
        let a = ClientAssertion::new(signer(), o).unwrap();
        let jwt = a.sign().await.unwrap();
        let c = decode(&jwt, 1);
        assert_eq!(c["iss"], "client-1");
        assert_eq!(c["sub"], "client-1");
        assert_eq!(c["aud"], "https://issuer.example");
        assert_eq!(
            (c["iat"].as_i64(), c["nbf"].as_i64(), c["exp"].as_i64()),
            (Some(1_000_000), Some(1_000_000), Some(1_000_060))
        );
        assert_eq!(c["scope"], "payments");
        let h = decode(&jwt, 0);
        assert_eq!(h["typ"], TYP_CLIENT_AUTHENTICATION);
        assert_eq!(h["kid"], jwk::thumbprint(a.signer().public_key()));
        // The signature was converted from DER to 64-byte r||s.
        assert_eq!(
            b64::decode("sig", jwt.split('.').nth(2).unwrap())
                .unwrap()
                .len(),
            64
        );
        // Skew learned at run time moves iat/nbf/exp; the clock moving does too.
        a.set_clock_offset(-30);
        clock.set(1_000_100);
        let c2 = decode(&a.sign().await.unwrap(), 1);
        assert_eq!(c2["iat"].as_i64(), Some(1_000_070));
        assert_eq!(c2["exp"].as_i64(), Some(1_000_130));
        assert_ne!(c["jti"], c2["jti"], "a fresh jti every time");
    }

    #[tokio::test]
    async fn header_and_audience_options() {
        let mut o = AssertionOptions::new(
            "c",
            Audience::Many(vec!["https://a".into(), "https://a/token".into()]),
        );
        o.typ = None;
        o.kid = KeyId::Given("k-1".into());
        o.include_nbf = false;
        o.subject = Some("user-42".into());
        let jwt = ClientAssertion::new(signer(), o)
            .unwrap()
            .sign()
            .await
            .unwrap();
        let h = decode(&jwt, 0);
        assert_eq!(h, serde_json::json!({"alg": "ES256", "kid": "k-1"}));
        let c = decode(&jwt, 1);
        assert_eq!(
            c["aud"],
            serde_json::json!(["https://a", "https://a/token"])
        );
        assert_eq!(c["sub"], "user-42");
        assert!(c.get("nbf").is_none());
    }

    /// The claims as pkjwt wrote them before the template (a serde struct with a flattened
    /// map): the template must produce exactly these bytes.
    #[derive(Serialize)]
    struct SerdeClaims<'a> {
        iss: &'a str,
        sub: &'a str,
        aud: &'a Audience,
        iat: i64,
        #[serde(skip_serializing_if = "Option::is_none")]
        nbf: Option<i64>,
        exp: i64,
        jti: &'a str,
        #[serde(flatten)]
        extra: &'a Map<String, Value>,
    }

    #[test]
    fn claims_template_writes_the_bytes_serde_writes() {
        let mut cases = Vec::new();
        cases.push(AssertionOptions::new("client-1", "https://issuer.example"));
        let mut o = AssertionOptions::new(
            "c \"quoted\" \\ \u{7f} \u{1} é 🦀 </script>",
            Audience::Many(vec!["https://a".into(), "https://a/\"token\"".into()]),
        );
        o.subject = Some("user-42\n".into());
        o.include_nbf = false;
        o.extra_claims.insert("scope".into(), "payments".into());
        o.extra_claims.insert(
            "nested".into(),
            serde_json::json!({"b": [1, 2.5, null, true], "a": "x"}),
        );
        o.extra_claims.insert("\u{2028}".into(), (-7).into());
        cases.push(o);
        let mut o = AssertionOptions::new("c", "https://a");
        o.extra_claims.insert("z".into(), Value::Null);
        o.extra_claims.insert("a".into(), u64::MAX.into());
        cases.push(o);
        for o in cases {
            let template = ClaimsTemplate::new(&o).unwrap();
            for (iat, exp) in [
                (1_700_000_000, 1_700_000_060),
                (0, 1),
                (-5, i64::MAX),
                (i64::MIN, i64::MIN + 60),
            ] {
                let jti = [0xfb; JTI_BYTES];
                let jti_b64 = b64::encode(jti);
                let want = serde_json::to_vec(&SerdeClaims {
                    iss: &o.client_id,
                    sub: o.subject.as_deref().unwrap_or(&o.client_id),
                    aud: &o.audience,
                    iat,
                    nbf: o.include_nbf.then_some(iat),
                    exp,
                    jti: &jti_b64,
                    extra: &o.extra_claims,
                })
                .unwrap();
                let mut got = "prefix.".to_string();
                template.write_b64(iat, exp, &jti, &mut got).unwrap();
                let got = got.strip_prefix("prefix.").unwrap();
                assert_eq!(
                    String::from_utf8(b64::decode("claims", got).unwrap()).unwrap(),
                    String::from_utf8(want.clone()).unwrap()
                );
                assert_eq!(got, b64::encode(&want), "one base64url spelling");
                assert!(
                    got.len() <= template.max_b64_len(),
                    "the buffer was sized for the largest claims"
                );
            }
        }
    }

    #[tokio::test]
    async fn signed_claims_and_header_keep_their_member_order() {
        let clock = Arc::new(FixedClock::new(1_000_000));
        let mut o = AssertionOptions::new("client-1", "https://issuer.example");
        o.clock = clock;
        o.kid = KeyId::Given("k-1".into());
        o.extra_claims.insert("scope".into(), "payments".into());
        let a = ClientAssertion::new(signer(), o).unwrap();
        let jwt = a.sign().await.unwrap();
        let part = |i: usize| {
            String::from_utf8(b64::decode("part", jwt.split('.').nth(i).unwrap()).unwrap()).unwrap()
        };
        assert_eq!(
            part(0),
            r#"{"alg":"ES256","kid":"k-1","typ":"client-authentication+jwt"}"#
        );
        let claims = part(1);
        let jti = decode(&jwt, 1)["jti"].as_str().unwrap().to_string();
        assert_eq!(b64::decode("jti", &jti).unwrap().len(), 16, "128-bit jti");
        assert_eq!(
            claims,
            format!(
                r#"{{"iss":"client-1","sub":"client-1","aud":"https://issuer.example","iat":1000000,"nbf":1000000,"exp":1000060,"jti":"{jti}","scope":"payments"}}"#
            )
        );
        let detailed = a.sign_detailed().await.unwrap();
        assert_eq!(
            serde_json::to_string(&detailed.claims).unwrap(),
            String::from_utf8(
                b64::decode("claims", detailed.jwt.split('.').nth(1).unwrap()).unwrap()
            )
            .unwrap(),
            "sign_detailed reports the claims that were signed"
        );
    }

    type Change = Box<dyn Fn(&mut AssertionOptions)>;

    #[test]
    fn bad_settings_are_refused() {
        let cases: Vec<(Change, &str)> = vec![
            (
                Box::new(|o| o.lifetime_secs = 601),
                "exceeds the maximum of 600s",
            ),
            (Box::new(|o| o.lifetime_secs = 0), "at least 1 second"),
            (Box::new(|o| o.client_id.clear()), "client_id is empty"),
            (
                Box::new(|o| o.audience = Audience::One(" https://a".into())),
                "whitespace",
            ),
            (
                Box::new(|o| o.audience = Audience::Many(vec![])),
                "list is empty",
            ),
            (
                Box::new(|o| o.audience = Audience::Many(vec!["a".into(), "a".into()])),
                "listed twice",
            ),
            (Box::new(|o| o.typ = Some(String::new())), "typ is empty"),
            (
                Box::new(|o| {
                    o.extra_claims.insert("exp".into(), 1.into());
                }),
                "\"exp\" is set by pkjwt",
            ),
            (
                Box::new(|o| o.kid = KeyId::Given(String::new())),
                "kid is empty",
            ),
            (Box::new(|o| o.x5t_s256 = Some("AAAA".into())), "32-byte"),
            (Box::new(|o| o.x5c = Some(vec![])), "empty chain"),
        ];
        for (change, want) in cases {
            let mut o = AssertionOptions::new("c", "https://a");
            change(&mut o);
            let e = ClientAssertion::new(signer(), o).unwrap_err().to_string();
            assert!(e.contains(want), "{e} (wanted {want:?})");
        }
        let mut o = AssertionOptions::new("c", "https://a");
        o.lifetime_secs = 3600;
        o.max_lifetime_secs = 3600;
        assert!(
            ClientAssertion::new(signer(), o).is_ok(),
            "a raised maximum is honoured"
        );
    }
}
