//! Why a token was refused: one variant per reason, each message naming the header member or
//! claim at fault and the values involved.
//!
//! The variants are deliberately fine-grained. A server log line such as "signature verification
//! failed" sends a client developer hunting; "ES256 signature is 72 bytes and looks like DER;
//! RFC 7518 §3.4 requires the 64-byte r||s form" tells them what to fix. [`Rejection::kind`]
//! gives a stable machine-readable name for metrics and tests.

use std::fmt;

/// The part of a compact JWS a problem was found in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Part {
    /// The protected header (first segment).
    Header,
    /// The payload / claims set (second segment).
    Payload,
    /// The signature (third segment).
    Signature,
}

impl fmt::Display for Part {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Part::Header => "header",
            Part::Payload => "payload",
            Part::Signature => "signature",
        })
    }
}

/// A token refused by [`crate::AssertionVerifier`] or [`crate::AccessTokenValidator`].
///
/// Every variant is a distinct failure; the `Display` text names the header member or claim and
/// the values seen and expected. Times are seconds since the Unix epoch.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Rejection {
    /// The token is longer than the policy allows (checked before any parsing).
    #[error("token is {len} bytes, more than the {max}-byte limit")]
    TooLarge {
        /// Length of the token.
        len: usize,
        /// The configured limit.
        max: usize,
    },
    /// Not a compact JWS of three dot-separated segments (a JWE has five).
    #[error("token has {segments} dot-separated segments; a compact JWS has exactly 3")]
    NotCompactJws {
        /// Number of segments found.
        segments: usize,
    },
    /// A segment is not canonical unpadded base64url (RFC 7515 §2).
    #[error("{part} is not canonical unpadded base64url: {reason}")]
    NonCanonicalBase64 {
        /// The segment.
        part: Part,
        /// What the decoder objected to.
        reason: String,
    },
    /// Header or payload is not a JSON object.
    #[error("{part} is not a JSON object: {reason}")]
    InvalidJson {
        /// The segment.
        part: Part,
        /// The parser's message.
        reason: String,
    },
    /// Header or payload repeats a member name (RFC 7515 §5.2 / RFC 7519 §4: ambiguous).
    #[error("{part} has the member \"{member}\" twice; duplicate names make a token ambiguous")]
    DuplicateMember {
        /// The segment.
        part: Part,
        /// The repeated member.
        member: String,
    },
    /// No `alg` header.
    #[error("header \"alg\" is missing")]
    MissingAlg,
    /// `alg: none` (an unsecured JWS, RFC 7519 §6): never accepted.
    #[error("header \"alg\" is \"{alg}\": unsecured tokens are never accepted")]
    AlgNone {
        /// The value as sent (`none`, `None`, …).
        alg: String,
    },
    /// A MAC algorithm (`HS256`…): with a public key as the secret this is the classic key
    /// confusion attack (RFC 8725 §2.1); never accepted.
    #[error(
        "header \"alg\" is \"{alg}\", a MAC algorithm; private_key_jwt needs an asymmetric signature (RFC 8725 §3.1)"
    )]
    MacAlgorithm {
        /// The value as sent.
        alg: String,
    },
    /// An `alg` value pkjwt does not know.
    #[error("header \"alg\" is \"{alg}\", which is not a known JWS signature algorithm")]
    UnknownAlgorithm {
        /// The value as sent.
        alg: String,
    },
    /// A known algorithm that the policy does not allow.
    #[error("header \"alg\" is \"{alg}\", which the policy does not allow (allowed: {allowed})")]
    AlgorithmNotAllowed {
        /// The algorithm.
        alg: String,
        /// The allow-list, comma separated.
        allowed: String,
    },
    /// The header's `alg` cannot be produced by the selected key (wrong key type or curve), or
    /// the key's JWK `alg` names another algorithm.
    #[error("header \"alg\" is \"{alg}\" but key {kid} is {key}; {reason}")]
    AlgorithmKeyMismatch {
        /// The algorithm in the header.
        alg: String,
        /// The key's kid (or "(no kid)").
        kid: String,
        /// Description of the key ("an EC P-256 key").
        key: String,
        /// Why they do not fit.
        reason: String,
    },
    /// `typ` is required by policy and absent.
    #[error("header \"typ\" is missing; the policy requires \"{expected}\"")]
    MissingTyp {
        /// The required value.
        expected: String,
    },
    /// `typ` has a value the policy does not accept (for example an access token, `at+jwt`,
    /// presented as a client assertion).
    #[error("header \"typ\" is \"{found}\"; expected {expected}")]
    WrongTyp {
        /// The value as sent.
        found: String,
        /// The accepted values.
        expected: String,
    },
    /// `crit` lists extensions this verifier does not understand (RFC 7515 §4.1.11).
    #[error("header \"crit\" lists {names:?}, which this verifier does not understand")]
    CritNotUnderstood {
        /// The names not understood.
        names: Vec<String>,
    },
    /// `crit` is present but malformed (not a non-empty array of strings naming present
    /// members, or naming a registered header).
    #[error("header \"crit\" is malformed: {reason}")]
    InvalidCrit {
        /// What is wrong.
        reason: String,
    },
    /// A header that asks the verifier to fetch or trust a key from the token itself (`jwk`,
    /// `jku`, `x5u`): keys come from the client's registration, never from the token.
    #[error(
        "header \"{member}\" is not accepted: keys come from the client's registered JWKS, not from the token"
    )]
    ForbiddenHeader {
        /// The header member.
        member: String,
    },
    /// A header member has the wrong JSON type.
    #[error("header \"{member}\" must be {expected}, found {found}")]
    HeaderType {
        /// The member.
        member: String,
        /// The expected type.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// The policy requires a `kid` header and there is none.
    #[error("header \"kid\" is missing and the policy requires one")]
    MissingKid,
    /// The `kid` is not in the client's key set (even after a refetch, where one was allowed).
    #[error("header \"kid\" is \"{kid}\", which is not in the key set (known kids: {known})")]
    UnknownKid {
        /// The kid as sent.
        kid: String,
        /// The kids in the set, comma separated.
        known: String,
    },
    /// No key in the set can verify this algorithm (no `kid` was sent, or the set is empty).
    #[error("no key in the key set can verify \"{alg}\" (keys: {keys})")]
    NoUsableKey {
        /// The algorithm.
        alg: String,
        /// Descriptions of the keys in the set.
        keys: String,
    },
    /// The client's key set could not be obtained (fetch failed, invalid JWKS).
    #[error("key set unavailable: {reason}")]
    KeySetUnavailable {
        /// Why.
        reason: String,
    },
    /// An ECDSA signature that is a DER `ECDSA-Sig-Value` instead of `r || s` (RFC 7518 §3.4):
    /// the most common bug of KMS/HSM-backed clients.
    #[error(
        "{alg} signature is {len} bytes of DER (ECDSA-Sig-Value); a JWS carries the {expected}-byte r||s form (RFC 7518 §3.4)"
    )]
    DerSignature {
        /// The algorithm.
        alg: String,
        /// The length found.
        len: usize,
        /// The required length.
        expected: usize,
    },
    /// A signature of the wrong length (truncated, padded, a naive DER conversion with a
    /// 33-byte coordinate, or an RSA signature not as long as the modulus).
    #[error("{alg} signature is {len} bytes; key {kid} needs exactly {expected}")]
    SignatureLength {
        /// The algorithm.
        alg: String,
        /// The key's kid.
        kid: String,
        /// The length found.
        len: usize,
        /// The required length.
        expected: usize,
    },
    /// The signature does not verify with the selected key(s).
    #[error("{alg} signature does not verify with key {kid}")]
    BadSignature {
        /// The algorithm.
        alg: String,
        /// The kid tried (or "any of N keys").
        kid: String,
    },
    /// A required claim is absent.
    #[error("claim \"{claim}\" is missing")]
    MissingClaim {
        /// The claim.
        claim: &'static str,
    },
    /// A claim has the wrong JSON type or an unusable value.
    #[error("claim \"{claim}\" must be {expected}, found {found}")]
    ClaimType {
        /// The claim.
        claim: &'static str,
        /// The expected type.
        expected: &'static str,
        /// What was found.
        found: String,
    },
    /// `iss` differs from the expected value (the client id for an assertion, the authorization
    /// server's issuer for an access token).
    #[error("claim \"iss\" is {found:?}; expected {expected:?}")]
    IssuerMismatch {
        /// The value in the token.
        found: String,
        /// The expected value.
        expected: String,
    },
    /// `sub` differs from the client id (RFC 7523 §3: iss = sub = client_id).
    #[error("claim \"sub\" is {found:?}; a client assertion needs sub = client_id = {expected:?}")]
    SubjectMismatch {
        /// The value in the token.
        found: String,
        /// The client id.
        expected: String,
    },
    /// The token request's `client_id` parameter differs from the assertion's `sub` (RFC 7523
    /// §3: when sent, it must identify the same client).
    #[error("form parameter client_id is {form:?} but the assertion's claim \"sub\" is {sub:?}")]
    ClientIdMismatch {
        /// The `client_id` form parameter.
        form: String,
        /// The assertion's `sub`.
        sub: String,
    },
    /// `aud` does not name this server.
    #[error("claim \"aud\" is {found}; expected {expected}")]
    AudienceMismatch {
        /// The value in the token, as JSON.
        found: String,
        /// What is accepted.
        expected: String,
    },
    /// `aud` is an array where the policy requires a single string (FAPI 2.0, rfc7523bis).
    #[error(
        "claim \"aud\" is an array {found}; the policy requires a single string ({expected:?})"
    )]
    AudienceArray {
        /// The array, as JSON.
        found: String,
        /// The expected audience.
        expected: String,
    },
    /// `exp` is in the past (beyond the leeway).
    #[error(
        "claim \"exp\" is {exp}, {ago} s before now ({now}; leeway {leeway} s): the token has expired"
    )]
    Expired {
        /// The exp claim.
        exp: i64,
        /// The verifier's clock.
        now: i64,
        /// Seconds since expiry.
        ago: i64,
        /// The leeway.
        leeway: u64,
    },
    /// `exp` lies further ahead than the maximum lifetime allows.
    #[error(
        "claim \"exp\" is {exp}, {ahead} s after now ({now}); at most {max} s ahead is accepted"
    )]
    ExpiresTooFarAhead {
        /// The exp claim.
        exp: i64,
        /// The verifier's clock.
        now: i64,
        /// Seconds ahead.
        ahead: i64,
        /// The limit.
        max: u64,
    },
    /// `exp − iat` exceeds the maximum lifetime, or is not positive.
    #[error("lifetime exp − iat = {lifetime} s ({exp} − {iat}); the policy allows 1..={max} s")]
    LifetimeTooLong {
        /// The exp claim.
        exp: i64,
        /// The iat claim.
        iat: i64,
        /// exp − iat.
        lifetime: i64,
        /// The limit.
        max: u64,
    },
    /// `iat` is further in the future than the tolerance.
    #[error(
        "claim \"iat\" is {iat}, {ahead} s in the future (now {now}); at most {max} s is tolerated"
    )]
    IssuedInFuture {
        /// The iat claim.
        iat: i64,
        /// The verifier's clock.
        now: i64,
        /// Seconds ahead.
        ahead: i64,
        /// The tolerance.
        max: u64,
    },
    /// `nbf` is further in the future than the tolerance.
    #[error(
        "claim \"nbf\" is {nbf}, {ahead} s in the future (now {now}); at most {max} s is tolerated"
    )]
    NotYetValid {
        /// The nbf claim.
        nbf: i64,
        /// The verifier's clock.
        now: i64,
        /// Seconds ahead.
        ahead: i64,
        /// The tolerance.
        max: u64,
    },
    /// `iat` is older than the policy's maximum age (access tokens only, when configured).
    #[error("claim \"iat\" is {iat}, {age} s ago; at most {max} s is accepted")]
    IssuedTooLongAgo {
        /// The iat claim.
        iat: i64,
        /// Age in seconds.
        age: i64,
        /// The limit.
        max: u64,
    },
    /// `jti` is empty, too long, or otherwise unusable as a replay key.
    #[error("claim \"jti\" is unusable: {reason}")]
    InvalidJti {
        /// Why.
        reason: String,
    },
    /// The `jti` was already used by this client within its lifetime.
    #[error("claim \"jti\" {jti:?} was already used by client {client_id:?}: token reuse detected")]
    Replayed {
        /// The jti.
        jti: String,
        /// The client.
        client_id: String,
    },
    /// The replay store could not answer; the verifier fails closed.
    #[error("replay store unavailable, refusing the token (fail closed): {reason}")]
    ReplayStoreUnavailable {
        /// Why.
        reason: String,
    },
    /// The verifier itself is misconfigured (only [`crate::explain`] reports this, as a failed
    /// check, instead of returning an error).
    #[error("verifier policy is invalid: {reason}")]
    InvalidPolicy {
        /// What is wrong with the policy.
        reason: String,
    },
    /// An access token lacks a scope the route requires.
    #[error("claim \"scope\" is {granted:?}; this resource requires {required:?}")]
    InsufficientScope {
        /// Scopes granted (the claim's value).
        granted: String,
        /// The scopes required, space separated.
        required: String,
    },
}

impl Rejection {
    /// A stable, machine-readable name for the variant (for logs, metrics and tests).
    pub fn kind(&self) -> &'static str {
        match self {
            Rejection::TooLarge { .. } => "too_large",
            Rejection::NotCompactJws { .. } => "not_compact_jws",
            Rejection::NonCanonicalBase64 { .. } => "non_canonical_base64",
            Rejection::InvalidJson { .. } => "invalid_json",
            Rejection::DuplicateMember { .. } => "duplicate_member",
            Rejection::MissingAlg => "missing_alg",
            Rejection::AlgNone { .. } => "alg_none",
            Rejection::MacAlgorithm { .. } => "mac_algorithm",
            Rejection::UnknownAlgorithm { .. } => "unknown_algorithm",
            Rejection::AlgorithmNotAllowed { .. } => "algorithm_not_allowed",
            Rejection::AlgorithmKeyMismatch { .. } => "algorithm_key_mismatch",
            Rejection::MissingTyp { .. } => "missing_typ",
            Rejection::WrongTyp { .. } => "wrong_typ",
            Rejection::CritNotUnderstood { .. } => "crit_not_understood",
            Rejection::InvalidCrit { .. } => "invalid_crit",
            Rejection::ForbiddenHeader { .. } => "forbidden_header",
            Rejection::HeaderType { .. } => "header_type",
            Rejection::MissingKid => "missing_kid",
            Rejection::UnknownKid { .. } => "unknown_kid",
            Rejection::NoUsableKey { .. } => "no_usable_key",
            Rejection::KeySetUnavailable { .. } => "key_set_unavailable",
            Rejection::DerSignature { .. } => "der_signature",
            Rejection::SignatureLength { .. } => "signature_length",
            Rejection::BadSignature { .. } => "bad_signature",
            Rejection::MissingClaim { .. } => "missing_claim",
            Rejection::ClaimType { .. } => "claim_type",
            Rejection::IssuerMismatch { .. } => "issuer_mismatch",
            Rejection::SubjectMismatch { .. } => "subject_mismatch",
            Rejection::ClientIdMismatch { .. } => "client_id_mismatch",
            Rejection::AudienceMismatch { .. } => "audience_mismatch",
            Rejection::AudienceArray { .. } => "audience_array",
            Rejection::Expired { .. } => "expired",
            Rejection::ExpiresTooFarAhead { .. } => "expires_too_far_ahead",
            Rejection::LifetimeTooLong { .. } => "lifetime_too_long",
            Rejection::IssuedInFuture { .. } => "issued_in_future",
            Rejection::NotYetValid { .. } => "not_yet_valid",
            Rejection::IssuedTooLongAgo { .. } => "issued_too_long_ago",
            Rejection::InvalidJti { .. } => "invalid_jti",
            Rejection::Replayed { .. } => "replayed",
            Rejection::ReplayStoreUnavailable { .. } => "replay_store_unavailable",
            Rejection::InvalidPolicy { .. } => "invalid_policy",
            Rejection::InsufficientScope { .. } => "insufficient_scope",
        }
    }

    /// The header member or claim the rejection is about, if it is about one.
    pub fn subject(&self) -> Option<&str> {
        Some(match self {
            Rejection::MissingAlg
            | Rejection::AlgNone { .. }
            | Rejection::MacAlgorithm { .. }
            | Rejection::UnknownAlgorithm { .. }
            | Rejection::AlgorithmNotAllowed { .. }
            | Rejection::AlgorithmKeyMismatch { .. } => "alg",
            Rejection::MissingTyp { .. } | Rejection::WrongTyp { .. } => "typ",
            Rejection::CritNotUnderstood { .. } | Rejection::InvalidCrit { .. } => "crit",
            Rejection::ForbiddenHeader { member } | Rejection::HeaderType { member, .. } => member,
            Rejection::MissingKid | Rejection::UnknownKid { .. } => "kid",
            Rejection::MissingClaim { claim } | Rejection::ClaimType { claim, .. } => claim,
            Rejection::IssuerMismatch { .. } => "iss",
            Rejection::SubjectMismatch { .. } | Rejection::ClientIdMismatch { .. } => "sub",
            Rejection::AudienceMismatch { .. } | Rejection::AudienceArray { .. } => "aud",
            Rejection::Expired { .. } | Rejection::ExpiresTooFarAhead { .. } => "exp",
            Rejection::LifetimeTooLong { .. } => "exp",
            Rejection::IssuedInFuture { .. } | Rejection::IssuedTooLongAgo { .. } => "iat",
            Rejection::NotYetValid { .. } => "nbf",
            Rejection::InvalidJti { .. }
            | Rejection::Replayed { .. }
            | Rejection::ReplayStoreUnavailable { .. } => "jti",
            Rejection::InsufficientScope { .. } => "scope",
            Rejection::DerSignature { .. }
            | Rejection::SignatureLength { .. }
            | Rejection::BadSignature { .. } => "signature",
            _ => return None,
        })
    }
}
