//! Entry points for the `cloud_responses` fuzz target (`fuzz/`): the checks pkjwt applies to
//! Cloud KMS answers, callable without a server. Not a stable API.

use pkjwt_core::{Algorithm, PublicKey};
use serde_json::Value;

use crate::client::CheckFail;
use crate::signer::{check_public_key_answer, check_sign_answer, key_from_answer};

fn text(e: CheckFail) -> String {
    match e {
        CheckFail::Integrity(detail) => format!("integrity: {detail}"),
        CheckFail::Fatal(e) => e.to_string(),
    }
}

/// A `getPublicKey` answer body for version `name`, as [`crate::GcpKmsSigner::open`] reads it:
/// the public key and the JWS algorithm it signs, or the error's text.
pub fn public_key_answer(
    body: &[u8],
    name: &str,
    requested: Option<Algorithm>,
) -> Result<(PublicKey, Algorithm), String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let (pem, alg, _level) = check_public_key_answer(&v, name).map_err(text)?;
    let (spec, key) = key_from_answer(name, &pem, &alg, requested).map_err(|e| e.to_string())?;
    Ok((key, spec.jws))
}

/// An `asymmetricSign` answer body for version `name` holding `key`, as
/// [`crate::GcpKmsSigner::try_sign`] reads it: the signature bytes, or the error's text.
pub fn sign_answer(
    body: &[u8],
    name: &str,
    key: &PublicKey,
    jws: Algorithm,
) -> Result<Vec<u8>, String> {
    let v: Value = serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))?;
    let (field, len) = match key {
        PublicKey::Rsa { .. } => ("verifiedDigestCrc32c", Some(key.bits().div_ceil(8))),
        PublicKey::Ed25519(_) => ("verifiedDataCrc32c", Some(64)),
        _ => ("verifiedDigestCrc32c", None),
    };
    check_sign_answer(&v, name, field, len, jws).map_err(text)
}

/// The message of an error body (`google.rpc.Status`, OAuth error, or text), as the errors
/// show it.
pub fn error_message(body: &[u8]) -> String {
    crate::error::parse_status(body).message
}
