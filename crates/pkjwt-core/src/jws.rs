//! Compact JWS assembly (RFC 7515 §7.1) over any [`Signer`].
//!
//! [`jws_signature`] is the single place where a backend's signature becomes the bytes a JWS
//! carries: DER ECDSA signatures are converted to fixed-width `r || s` here and nowhere else.

use crate::{Algorithm, Error, Family, PublicKey, Result, Signature, Signer, b64, der};

/// Converts a signature that follows the [`Signer`] contract into the JWS signature bytes
/// (RFC 7518 §3): ECDSA DER → `r || s` (low-S for ES256K); RSA checked to be modulus-long; EdDSA checked to be 64
/// bytes.
pub fn jws_signature(alg: Algorithm, key: &PublicKey, sig: &Signature) -> Result<Vec<u8>> {
    let bytes = sig.as_bytes();
    match alg.family() {
        Family::Ecdsa(curve) => {
            let mut fixed =
                der::ecdsa_der_to_fixed(bytes, curve).map_err(|e| Error::BadSignature {
                    alg,
                    reason: format!("expected a DER ECDSA-Sig-Value: {e}"),
                })?;
            der::normalize_low_s(&mut fixed, curve);
            Ok(fixed)
        }
        Family::RsaPss | Family::RsaPkcs1 => {
            let want = match key {
                PublicKey::Rsa { n, .. } => n.len(),
                _ => {
                    return Err(Error::BadSignature {
                        alg,
                        reason: format!("signer's key is {}, not RSA", key.describe()),
                    });
                }
            };
            if bytes.len() != want {
                return Err(Error::BadSignature {
                    alg,
                    reason: format!("RSA signature is {} bytes, the modulus {want}", bytes.len()),
                });
            }
            Ok(bytes.to_vec())
        }
        Family::Ed25519 => {
            if bytes.len() != 64 {
                return Err(Error::BadSignature {
                    alg,
                    reason: format!("Ed25519 signature is {} bytes, expected 64", bytes.len()),
                });
            }
            Ok(bytes.to_vec())
        }
    }
}

/// Signs `BASE64URL(header) . BASE64URL(payload)` with `signer` and returns the compact JWS.
///
/// `header_b64` is already encoded so that callers signing many tokens with one header encode
/// it once.
pub async fn sign_compact(
    signer: &(impl Signer + ?Sized),
    header_b64: &str,
    payload: &[u8],
) -> Result<String> {
    let mut out = String::with_capacity(header_b64.len() + payload.len() * 4 / 3 + 200);
    out.push_str(header_b64);
    out.push('.');
    b64::encode_into(payload, &mut out);
    let sig = signer.sign(out.as_bytes()).await?;
    let raw = jws_signature(signer.algorithm(), signer.public_key(), &sig)?;
    out.push('.');
    b64::encode_into(&raw, &mut out);
    Ok(out)
}

/// Encodes a JOSE header (a JSON object) as base64url.
pub fn encode_header(header: &serde_json::Map<String, serde_json::Value>) -> String {
    // Invariant: a Map of JSON values always serializes.
    b64::encode(serde_json::to_vec(header).unwrap_or_default())
}
