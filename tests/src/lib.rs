//! # The pkjwt backend conformance suite
//!
//! One suite that every `Signer` backend passes (design.md): the algorithm fits the key, the
//! public key round-trips through JWK and SPKI, the signature honours the `Signer` contract, and
//! assertions verify with implementations pkjwt does not sign with — RustCrypto's ECDSA, RSA and
//! Ed25519 crates, and the `jsonwebtoken` JOSE library — alone and under concurrency.
//!
//! Backend crates use it as a dev-dependency:
//!
//! ```no_run
//! # async fn t(signer: std::sync::Arc<dyn pkjwt_core::Signer>) {
//! pkjwt_conformance::check_signer(signer).await;
//! # }
//! ```

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed check.

pub mod bench;
pub mod double;
pub mod oidc_provider;

use std::sync::Arc;

use pkjwt_core::{
    Algorithm, AssertionOptions, ClientAssertion, Family, Jwk, PublicKey, Signer, b64,
    ecdsa_der_to_fixed,
};
use serde_json::Value;

/// Issuer used as the audience of conformance assertions.
pub const ISSUER: &str = "https://as.conformance.example";
/// Client id used in conformance assertions.
pub const CLIENT_ID: &str = "conformance-client";

/// Verifies a compact JWS signed by `key` with implementations independent of pkjwt's signing
/// code, and returns its claims. Checks the header's `alg` against `expected_alg`.
pub fn verify_independently(
    jwt: &str,
    key: &PublicKey,
    expected_alg: Algorithm,
) -> Result<Value, String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("expected 3 parts, got {}", parts.len()));
    }
    let header: Value =
        serde_json::from_slice(&b64::decode("header", parts[0]).map_err(|e| e.to_string())?)
            .map_err(|e| format!("header: {e}"))?;
    if header["alg"] != expected_alg.name() {
        return Err(format!("header alg {} != {expected_alg}", header["alg"]));
    }
    let sig = b64::decode("signature", parts[2]).map_err(|e| e.to_string())?;
    let input = format!("{}.{}", parts[0], parts[1]);
    verify_raw(expected_alg, key, input.as_bytes(), &sig)?;
    serde_json::from_slice(&b64::decode("payload", parts[1]).map_err(|e| e.to_string())?)
        .map_err(|e| format!("payload: {e}"))
}

/// Verifies a JWS-encoded signature (ECDSA `r||s`, RSA, Ed25519) over `msg` with RustCrypto.
pub fn verify_raw(alg: Algorithm, key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), String> {
    use ecdsa_verify::*;
    match (alg, key) {
        (Algorithm::ES256, PublicKey::Ec { .. }) => p256_verify(key, msg, sig),
        (Algorithm::ES384, PublicKey::Ec { .. }) => p384_verify(key, msg, sig),
        (Algorithm::ES512, PublicKey::Ec { .. }) => p521_verify(key, msg, sig),
        (Algorithm::ES256K, PublicKey::Ec { .. }) => k256_verify(key, msg, sig),
        (_, PublicKey::Rsa { n, e }) => rsa_verify(alg, n, e, msg, sig),
        (Algorithm::EdDSA, PublicKey::Ed25519(x)) => {
            use ed25519_dalek::Verifier;
            let vk = ed25519_dalek::VerifyingKey::from_bytes(x).map_err(|e| e.to_string())?;
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|e| e.to_string())?;
            vk.verify_strict(msg, &s).map_err(|e| e.to_string())?;
            vk.verify(msg, &s).map_err(|e| e.to_string())
        }
        (a, k) => Err(format!("{a} does not fit {}", k.describe())),
    }
}

mod ecdsa_verify {
    use pkjwt_core::PublicKey;

    fn point(key: &PublicKey) -> Vec<u8> {
        key.ec_point().unwrap_or_default()
    }

    pub(crate) fn p256_verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), String> {
        use p256::ecdsa::signature::Verifier;
        let vk =
            p256::ecdsa::VerifyingKey::from_sec1_bytes(&point(key)).map_err(|e| e.to_string())?;
        let s = p256::ecdsa::Signature::from_slice(sig).map_err(|e| e.to_string())?;
        vk.verify(msg, &s).map_err(|e| e.to_string())
    }

    pub(crate) fn p384_verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), String> {
        use p384::ecdsa::signature::Verifier;
        let vk =
            p384::ecdsa::VerifyingKey::from_sec1_bytes(&point(key)).map_err(|e| e.to_string())?;
        let s = p384::ecdsa::Signature::from_slice(sig).map_err(|e| e.to_string())?;
        vk.verify(msg, &s).map_err(|e| e.to_string())
    }

    pub(crate) fn p521_verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), String> {
        use p521::ecdsa::signature::Verifier;
        let vk =
            p521::ecdsa::VerifyingKey::from_sec1_bytes(&point(key)).map_err(|e| e.to_string())?;
        let s = p521::ecdsa::Signature::from_slice(sig).map_err(|e| e.to_string())?;
        vk.verify(msg, &s).map_err(|e| e.to_string())
    }

    pub(crate) fn k256_verify(key: &PublicKey, msg: &[u8], sig: &[u8]) -> Result<(), String> {
        use k256::ecdsa::signature::Verifier;
        let vk =
            k256::ecdsa::VerifyingKey::from_sec1_bytes(&point(key)).map_err(|e| e.to_string())?;
        let s = k256::ecdsa::Signature::from_slice(sig).map_err(|e| e.to_string())?;
        // pkjwt sends low-S for ES256K (libsecp256k1 verifiers require it).
        if s.normalize_s().is_some() {
            return Err("ES256K signature is not low-S".into());
        }
        vk.verify(msg, &s).map_err(|e| e.to_string())
    }
}

fn rsa_verify(alg: Algorithm, n: &[u8], e: &[u8], msg: &[u8], sig: &[u8]) -> Result<(), String> {
    use rsa::signature::Verifier;
    use rsa::{BigUint, RsaPublicKey};
    let pk = RsaPublicKey::new(BigUint::from_bytes_be(n), BigUint::from_bytes_be(e))
        .map_err(|e| e.to_string())?;
    macro_rules! pss {
        ($h:ty, $salt:expr) => {{
            // Salt length = hash length, as RFC 7518 §3.5 requires.
            let vk = rsa::pss::VerifyingKey::<$h>::new_with_salt_len(pk, $salt);
            let s = rsa::pss::Signature::try_from(sig).map_err(|e| e.to_string())?;
            vk.verify(msg, &s).map_err(|e| e.to_string())
        }};
    }
    macro_rules! pkcs1 {
        ($h:ty) => {{
            let vk = rsa::pkcs1v15::VerifyingKey::<$h>::new(pk);
            let s = rsa::pkcs1v15::Signature::try_from(sig).map_err(|e| e.to_string())?;
            vk.verify(msg, &s).map_err(|e| e.to_string())
        }};
    }
    match alg {
        Algorithm::PS256 => pss!(sha2::Sha256, 32),
        Algorithm::PS384 => pss!(sha2::Sha384, 48),
        Algorithm::PS512 => pss!(sha2::Sha512, 64),
        Algorithm::RS256 => pkcs1!(sha2::Sha256),
        Algorithm::RS384 => pkcs1!(sha2::Sha384),
        Algorithm::RS512 => pkcs1!(sha2::Sha512),
        other => Err(format!("{other} is not an RSA algorithm")),
    }
}

/// Verifies with the `jsonwebtoken` crate (rust_crypto backend), a JOSE implementation
/// independent of pkjwt, checking `iss` and `aud` too. Returns `None` for algorithms that crate
/// does not implement (ES512, ES256K).
pub fn verify_with_jsonwebtoken(
    jwt: &str,
    key: &PublicKey,
    alg: Algorithm,
    issuer: &str,
    audience: &str,
) -> Option<Result<Value, String>> {
    use jsonwebtoken::{Algorithm as A, DecodingKey, Validation};
    let ja = match alg {
        Algorithm::ES256 => A::ES256,
        Algorithm::ES384 => A::ES384,
        Algorithm::PS256 => A::PS256,
        Algorithm::PS384 => A::PS384,
        Algorithm::PS512 => A::PS512,
        Algorithm::RS256 => A::RS256,
        Algorithm::RS384 => A::RS384,
        Algorithm::RS512 => A::RS512,
        Algorithm::EdDSA => A::EdDSA,
        _ => return None,
    };
    let jwk = Jwk::from_public_key(key);
    let dk = match key {
        PublicKey::Ec { .. } => {
            DecodingKey::from_ec_components(jwk.x.as_deref()?, jwk.y.as_deref()?)
        }
        PublicKey::Rsa { .. } => {
            DecodingKey::from_rsa_components(jwk.n.as_deref()?, jwk.e.as_deref()?)
        }
        PublicKey::Ed25519(_) => DecodingKey::from_ed_components(jwk.x.as_deref()?),
        _ => return None,
    };
    let dk = match dk {
        Ok(k) => k,
        Err(e) => return Some(Err(e.to_string())),
    };
    let mut v = Validation::new(ja);
    v.set_audience(&[audience]);
    v.set_issuer(&[issuer]);
    v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
    Some(
        jsonwebtoken::decode::<Value>(jwt, &dk, &v)
            .map(|d| d.claims)
            .map_err(|e| e.to_string()),
    )
}

/// Runs the whole conformance suite against `signer`. Panics with a description of the first
/// violation.
pub async fn check_signer(signer: Arc<dyn Signer>) {
    let pk = signer.public_key().clone();
    let alg = signer.algorithm();
    let what = format!("{alg} signer over {}", pk.describe());

    // 1. The algorithm fits the key.
    assert!(
        pk.supports(alg),
        "{what}: key cannot produce its own algorithm"
    );

    // 2. Public key round-trips through JWK (kid = thumbprint) and SPKI.
    let jwk = Jwk::for_signing(&pk, alg);
    let parsed = Jwk::from_json(&jwk.to_json()).unwrap_or_else(|e| panic!("{what}: JWK: {e}"));
    assert_eq!(
        parsed.to_public_key().unwrap(),
        pk,
        "{what}: JWK round trip"
    );
    assert_eq!(
        parsed.kid.as_deref(),
        Some(pkjwt_core::thumbprint(&pk).as_str())
    );
    assert_eq!(parsed.alg.as_deref(), Some(alg.name()));
    assert_eq!(
        PublicKey::from_spki_der(&pk.to_spki_der()).unwrap(),
        pk,
        "{what}: SPKI round trip"
    );

    // 3. The signature contract.
    let msg = b"pkjwt conformance message";
    let sig = signer
        .sign(msg)
        .await
        .unwrap_or_else(|e| panic!("{what}: sign: {e}"));
    let jws_sig = match alg.family() {
        Family::Ecdsa(curve) => {
            ecdsa_der_to_fixed(sig.as_bytes(), curve)
                .unwrap_or_else(|e| panic!("{what}: ECDSA signature is not strict DER: {e}"));
            let fixed = pkjwt_core::jws::jws_signature(alg, &pk, &sig)
                .unwrap_or_else(|e| panic!("{what}: JWS signature: {e}"));
            assert_eq!(fixed.len(), 2 * curve.field_len());
            fixed
        }
        Family::RsaPss | Family::RsaPkcs1 => {
            let PublicKey::Rsa { n, .. } = &pk else {
                panic!("{what}: RSA alg, non-RSA key")
            };
            assert_eq!(
                sig.as_bytes().len(),
                n.len(),
                "{what}: RSA signature length"
            );
            sig.as_bytes().to_vec()
        }
        Family::Ed25519 => {
            assert_eq!(sig.as_bytes().len(), 64, "{what}: Ed25519 signature length");
            sig.as_bytes().to_vec()
        }
        #[allow(unreachable_patterns)]
        _ => panic!("{what}: unknown family"),
    };
    verify_raw(alg, &pk, msg, &jws_sig).unwrap_or_else(|e| panic!("{what}: raw signature: {e}"));
    let mut tampered = msg.to_vec();
    tampered[0] ^= 1;
    assert!(
        verify_raw(alg, &pk, &tampered, &jws_sig).is_err(),
        "{what}: the independent verifier accepted a signature over a different message"
    );

    // 4. Client assertions verify independently, with the claims pkjwt promises.
    let assertion = ClientAssertion::new(signer.clone(), AssertionOptions::new(CLIENT_ID, ISSUER))
        .unwrap_or_else(|e| panic!("{what}: assertion setup: {e}"));
    let a = assertion
        .sign()
        .await
        .unwrap_or_else(|e| panic!("{what}: assertion: {e}"));
    let b = assertion.sign().await.unwrap();
    let claims = verify_independently(&a, &pk, alg).unwrap_or_else(|e| panic!("{what}: {e}"));
    let claims_b = verify_independently(&b, &pk, alg).unwrap();
    assert_eq!(claims["iss"], CLIENT_ID);
    assert_eq!(claims["sub"], CLIENT_ID);
    assert_eq!(
        claims["aud"], ISSUER,
        "{what}: aud must be the issuer as a string"
    );
    let iat = claims["iat"].as_i64().unwrap();
    assert_eq!(claims["exp"].as_i64().unwrap() - iat, 60);
    assert_eq!(claims["nbf"].as_i64().unwrap(), iat);
    let jti = claims["jti"].as_str().unwrap();
    assert!(
        b64::decode("jti", jti).unwrap().len() >= 16,
        "{what}: jti under 128 bits"
    );
    assert_ne!(claims["jti"], claims_b["jti"], "{what}: jti reused");
    let header: Value =
        serde_json::from_slice(&b64::decode("h", a.split('.').next().unwrap()).unwrap()).unwrap();
    assert_eq!(header["typ"], "client-authentication+jwt");
    assert_eq!(header["kid"], pkjwt_core::thumbprint(&pk));
    if let Some(r) = verify_with_jsonwebtoken(&a, &pk, alg, CLIENT_ID, ISSUER) {
        r.unwrap_or_else(|e| panic!("{what}: jsonwebtoken refused the assertion: {e}"));
    }
    // A corrupted signature must fail the independent verifier (so the checks above can fail).
    let mut bad = a.clone().into_bytes();
    let i = bad.len() - 3;
    bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
    let bad = String::from_utf8(bad).unwrap();
    assert!(
        verify_independently(&bad, &pk, alg).is_err(),
        "{what}: tampered JWT verified"
    );

    // 5. Concurrency: many signatures at once, every one valid.
    let n = 200;
    let mut tasks = Vec::with_capacity(n);
    for _ in 0..n {
        let assertion_signer = signer.clone();
        tasks.push(tokio::spawn(async move {
            let a =
                ClientAssertion::new(assertion_signer, AssertionOptions::new(CLIENT_ID, ISSUER))?;
            a.sign().await
        }));
    }
    let mut jtis = std::collections::HashSet::new();
    for t in tasks {
        let jwt = t
            .await
            .unwrap()
            .unwrap_or_else(|e| panic!("{what}: concurrent sign: {e}"));
        let c = verify_independently(&jwt, &pk, alg)
            .unwrap_or_else(|e| panic!("{what}: concurrent: {e}"));
        assert!(
            jtis.insert(c["jti"].as_str().unwrap().to_string()),
            "{what}: duplicate jti"
        );
    }
}
