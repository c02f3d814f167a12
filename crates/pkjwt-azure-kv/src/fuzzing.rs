//! Entry points for the `cloud_responses` fuzz target (`fuzz/`): the checks pkjwt applies to
//! Key Vault answers and challenges, callable without a server. Not a stable API.

use pkjwt_core::uri::AzureKvUri;
use pkjwt_core::{Algorithm, PublicKey};
use serde_json::Value;

fn json(body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|e| format!("not JSON: {e}"))
}

/// A Get Key answer body for `uri`, as [`crate::AzureKvSigner::open`] reads it: the pinned key
/// id (`VAULT/keys/NAME/VERSION`) and the public key, or the error's text.
pub fn key_bundle(body: &[u8], uri: &AzureKvUri) -> Result<(String, PublicKey), String> {
    let asked = crate::signer::key_url(uri);
    let b =
        crate::signer::parse_key_bundle(&json(body)?, uri, &asked).map_err(|e| e.to_string())?;
    Ok((b.key_id, b.public_key))
}

/// A Sign answer body for the pinned `key_id` holding `key`, as
/// [`crate::AzureKvSigner::try_sign`] reads it: the signature in the `Signer` contract's form
/// (DER for ECDSA), or the error's text.
pub fn sign_answer(
    body: &[u8],
    key_id: &str,
    key: &PublicKey,
    alg: Algorithm,
) -> Result<Vec<u8>, String> {
    crate::signer::sign_answer(&json(body)?, key_id, "fuzz", key, alg)
        .map(|s| s.into_vec())
        .map_err(|e| e.to_string())
}

/// A Get Certificate answer body for the key `key_id` holding `key`: the chain, or the error's
/// text.
pub fn certificate_answer(
    body: &[u8],
    key_id: &str,
    key: &PublicKey,
) -> Result<Vec<Vec<u8>>, String> {
    crate::signer::certificate_answer(&json(body)?, key_id, "fuzz-certificate", key)
        .map_err(|e| e.to_string())
}

/// The token scope a `WWW-Authenticate` challenge from `vault` asks for, or why it is refused.
pub fn challenge(header: &str, vault: &str) -> Result<String, String> {
    crate::vault::scope_from_challenge(header, vault, false)
}

/// `(code, message)` of an error body, as the errors show them.
pub fn error_fields(body: &str) -> (String, String) {
    crate::vault::error_fields(body)
}
