//! An independent JWS verifier for the tests: RustCrypto (`p256`, `p384`, `p521`, `k256`, `rsa`)
//! and `ed25519-dalek`, keyed from the DER SPKI that KMS returned, checking RFC 7518 `r || s`
//! signatures over the JWS signing input. Shares no code with pkjwt.

#![allow(dead_code)]

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Sha256, Sha384, Sha512};

/// Verifies compact JWS `jwt` with the key in `spki`; returns the decoded header and claims.
pub fn verify_jws(
    jwt: &str,
    spki: &[u8],
) -> Result<(serde_json::Value, serde_json::Value), String> {
    let parts: Vec<&str> = jwt.split('.').collect();
    if parts.len() != 3 {
        return Err(format!("{} parts", parts.len()));
    }
    let dec = |s: &str| URL_SAFE_NO_PAD.decode(s).map_err(|e| e.to_string());
    let header: serde_json::Value =
        serde_json::from_slice(&dec(parts[0])?).map_err(|e| e.to_string())?;
    let claims: serde_json::Value =
        serde_json::from_slice(&dec(parts[1])?).map_err(|e| e.to_string())?;
    let sig = dec(parts[2])?;
    let input = format!("{}.{}", parts[0], parts[1]);
    let alg = header["alg"].as_str().ok_or("no alg")?;
    verify_raw(alg, input.as_bytes(), &sig, spki)?;
    Ok((header, claims))
}

/// Verifies a JWS-encoded signature (`r || s` for ECDSA) over `msg`.
pub fn verify_raw(alg: &str, msg: &[u8], sig: &[u8], spki: &[u8]) -> Result<(), String> {
    use signature_traits::*;
    let e = |e: &dyn std::fmt::Display| e.to_string();
    match alg {
        "ES256" => {
            let k = p256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|x| e(&x))?;
            let s = p256::ecdsa::Signature::from_slice(sig).map_err(|x| e(&x))?;
            k.verify(msg, &s).map_err(|x| e(&x))
        }
        "ES384" => {
            let k = p384::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|x| e(&x))?;
            let s = p384::ecdsa::Signature::from_slice(sig).map_err(|x| e(&x))?;
            k.verify(msg, &s).map_err(|x| e(&x))
        }
        "ES512" => {
            let pk = p521::PublicKey::from_public_key_der(spki).map_err(|x| e(&x))?;
            let k = p521::ecdsa::VerifyingKey::from_sec1_bytes(&pk.to_sec1_bytes())
                .map_err(|x| e(&x))?;
            let s = p521::ecdsa::Signature::from_slice(sig).map_err(|x| e(&x))?;
            k.verify(msg, &s).map_err(|x| e(&x))
        }
        "ES256K" => {
            let k = k256::ecdsa::VerifyingKey::from_public_key_der(spki).map_err(|x| e(&x))?;
            let s = k256::ecdsa::Signature::from_slice(sig).map_err(|x| e(&x))?;
            // k256 (like libsecp256k1) only accepts low-S signatures (BIP 62); ECDSA as such,
            // RFC 8812 and KMS allow either S, so the plain ECDSA check normalizes first.
            let s = s.normalize_s().unwrap_or(s);
            k.verify(msg, &s).map_err(|x| e(&x))
        }
        "PS256" | "PS384" | "PS512" | "RS256" | "RS384" | "RS512" => {
            let k = rsa::RsaPublicKey::from_public_key_der(spki).map_err(|x| e(&x))?;
            let r = match alg {
                // rsa 0.9 Pss::new uses salt length = hash length, which JOSE requires.
                "PS256" => k.verify(rsa::Pss::new::<Sha256>(), &sha2_digest::<Sha256>(msg), sig),
                "PS384" => k.verify(rsa::Pss::new::<Sha384>(), &sha2_digest::<Sha384>(msg), sig),
                "PS512" => k.verify(rsa::Pss::new::<Sha512>(), &sha2_digest::<Sha512>(msg), sig),
                "RS256" => k.verify(
                    rsa::Pkcs1v15Sign::new::<Sha256>(),
                    &sha2_digest::<Sha256>(msg),
                    sig,
                ),
                "RS384" => k.verify(
                    rsa::Pkcs1v15Sign::new::<Sha384>(),
                    &sha2_digest::<Sha384>(msg),
                    sig,
                ),
                _ => k.verify(
                    rsa::Pkcs1v15Sign::new::<Sha512>(),
                    &sha2_digest::<Sha512>(msg),
                    sig,
                ),
            };
            r.map_err(|x| e(&x))
        }
        "EdDSA" => {
            let k = ed25519_dalek::VerifyingKey::from_public_key_der(spki).map_err(|x| e(&x))?;
            let s = ed25519_dalek::Signature::from_slice(sig).map_err(|x| e(&x))?;
            k.verify_strict(msg, &s).map_err(|x| e(&x))
        }
        other => Err(format!("verifier does not know {other}")),
    }
}

fn sha2_digest<D: sha2::Digest>(msg: &[u8]) -> Vec<u8> {
    D::digest(msg).to_vec()
}

mod signature_traits {
    pub use p256::ecdsa::signature::Verifier;
    pub use p256::pkcs8::DecodePublicKey;
}
