//! Compact JWS assembly (RFC 7515 §7.1) over any [`Signer`].
//!
//! [`jws_signature`] is the single place where a backend's signature becomes the bytes a JWS
//! carries: DER ECDSA signatures are converted to fixed-width `r || s` here and nowhere else.

use std::borrow::Cow;

use crate::{Algorithm, Error, Family, PublicKey, Result, Signature, Signer, b64, der};

/// Converts a signature that follows the [`Signer`] contract into the JWS signature bytes
/// (RFC 7518 §3): ECDSA DER → `r || s` (low-S for ES256K); RSA checked to be modulus-long; EdDSA checked to be 64
/// bytes.
pub fn jws_signature(alg: Algorithm, key: &PublicKey, sig: &Signature) -> Result<Vec<u8>> {
    checked_signature(alg, key, sig).map(Cow::into_owned)
}

/// [`jws_signature`] without copying the signatures that need no conversion (RSA, EdDSA), for
/// [`sign_input`], which only encodes them.
fn checked_signature<'a>(
    alg: Algorithm,
    key: &PublicKey,
    sig: &'a Signature,
) -> Result<Cow<'a, [u8]>> {
    let bytes = sig.as_bytes();
    match alg.family() {
        Family::Ecdsa(curve) => {
            let mut fixed =
                der::ecdsa_der_to_fixed(bytes, curve).map_err(|e| Error::BadSignature {
                    alg,
                    reason: format!("expected a DER ECDSA-Sig-Value: {e}"),
                })?;
            der::normalize_low_s(&mut fixed, curve);
            Ok(Cow::Owned(fixed))
        }
        Family::RsaPss | Family::RsaPkcs1 => {
            let want = rsa_modulus_len(alg, key)?;
            if bytes.len() != want {
                return Err(Error::BadSignature {
                    alg,
                    reason: format!("RSA signature is {} bytes, the modulus {want}", bytes.len()),
                });
            }
            Ok(Cow::Borrowed(bytes))
        }
        Family::Ed25519 => {
            if bytes.len() != ED25519_SIGNATURE_LEN {
                return Err(Error::BadSignature {
                    alg,
                    reason: format!("Ed25519 signature is {} bytes, expected 64", bytes.len()),
                });
            }
            Ok(Cow::Borrowed(bytes))
        }
    }
}

const ED25519_SIGNATURE_LEN: usize = 64;

fn rsa_modulus_len(alg: Algorithm, key: &PublicKey) -> Result<usize> {
    match key {
        PublicKey::Rsa { n, .. } => Ok(n.len()),
        _ => Err(Error::BadSignature {
            alg,
            reason: format!("signer's key is {}, not RSA", key.describe()),
        }),
    }
}

/// Characters the base64url JWS signature of `alg` with `key` takes, so that callers can size the
/// buffer of a whole compact JWS once. A key that does not fit `alg` counts as a zero-length
/// signature here; signing then fails with the reason.
fn signature_b64_len(alg: Algorithm, key: &PublicKey) -> usize {
    let sig_len = match alg.family() {
        Family::Ecdsa(curve) => 2 * curve.field_len(),
        Family::RsaPss | Family::RsaPkcs1 => rsa_modulus_len(alg, key).unwrap_or(0),
        Family::Ed25519 => ED25519_SIGNATURE_LEN,
    };
    b64::encoded_len(sig_len)
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
    let input_len = header_b64.len() + 1 + b64::encoded_len(payload.len());
    let mut out = with_room_for_signature(signer, input_len);
    out.push_str(header_b64);
    out.push('.');
    b64::encode_into(payload, &mut out);
    sign_input(signer, out).await
}

/// An empty buffer for a compact JWS whose signing input is `input_len` characters long: room
/// for the input, the `.` and the signature, so that the JWS is written with one allocation.
pub(crate) fn with_room_for_signature(signer: &(impl Signer + ?Sized), input_len: usize) -> String {
    String::with_capacity(
        input_len + 1 + signature_b64_len(signer.algorithm(), signer.public_key()),
    )
}

/// Signs the JWS signing input `BASE64URL(header) . BASE64URL(payload)` that `out` holds and
/// appends `.` and the base64url JWS signature: the compact JWS. Every compact JWS pkjwt makes
/// ends here, so the signature always passes through [`jws_signature`]'s checks.
pub(crate) async fn sign_input(signer: &(impl Signer + ?Sized), mut out: String) -> Result<String> {
    let sig = signer.sign(out.as_bytes()).await?;
    let raw = checked_signature(signer.algorithm(), signer.public_key(), &sig)?;
    out.push('.');
    b64::encode_into(&raw, &mut out);
    Ok(out)
}

/// Encodes a JOSE header (a JSON object) as base64url.
pub fn encode_header(header: &serde_json::Map<String, serde_json::Value>) -> String {
    // Invariant: a Map of JSON values always serializes.
    b64::encode(serde_json::to_vec(header).unwrap_or_default())
}
