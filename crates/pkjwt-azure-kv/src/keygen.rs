//! [`generate`]: `pkjwt keygen` for Azure Key Vault — a new signing key under a name that is
//! not in use yet (`POST /keys/NAME/create`). `infra/terraform/azure-kv/` is the declarative way.

use std::sync::Arc;

use pkjwt_core::uri::AzureKvUri;
use pkjwt_core::{Algorithm, Family, GenerateOptions, PublicKey, RsaSizes};
use reqwest::Method;
use serde_json::json;

use crate::AzureKvOptions;
use crate::error::{AzureKvError, Operation};
use crate::signer::{connect, key_url, parse_key_bundle};
use crate::vault::Call;

/// The RSA sizes Key Vault creates.
pub const RSA_SIZES: &[usize] = &[2048, 3072, 4096];

/// Tag set on keys pkjwt creates.
pub const CREATED_BY_TAG: (&str, &str) = ("created-by", "pkjwt");

fn default_rsa_bits(alg: Algorithm) -> usize {
    match alg {
        Algorithm::PS384 | Algorithm::RS384 => 3072,
        Algorithm::PS512 | Algorithm::RS512 => 4096,
        _ => 2048,
    }
}

/// Creates a key for `alg` named by `uri` (no version: the vault assigns it) and returns its
/// public key and key identifier (`https://VAULT/keys/NAME/VERSION`).
///
/// EC keys get the curve of the algorithm (P-256, P-384, P-521, P-256K); RSA keys
/// [`GenerateOptions::rsa_bits`] of 2048, 3072 or 4096, else the size that matches the hash.
/// `key_ops` are `sign` and `verify` only. The key type is `EC`/`RSA` in a vault, or
/// `EC-HSM`/`RSA-HSM` with [`AzureKvOptions::hsm_keys`] and always in a Managed HSM. EdDSA is
/// refused (Key Vault has no Ed25519 keys), as is an RSA size it cannot make, before any request.
///
/// **A name already in use is refused** (Get Key first): Create Key on an existing name would
/// add a new current version, silently rotating a key other signers may be opening by name.
/// Rotate deliberately (`az keyvault key rotate`, Terraform) instead. The check and the creation
/// are two calls; a key created by someone else in between becomes a new version.
///
/// Permissions: keys/get and keys/create (RBAC role Key Vault Crypto Officer).
pub async fn generate(
    uri: &AzureKvUri,
    alg: Algorithm,
    generate: &GenerateOptions,
    options: &AzureKvOptions,
) -> Result<(PublicKey, String), AzureKvError> {
    let name = key_url(uri);
    let refuse = |reason: String| AzureKvError::Generate {
        key: name.clone(),
        reason,
    };
    if uri.version.is_some() {
        return Err(refuse(
            "a key URI for key creation names no version (the vault assigns it)".into(),
        ));
    }
    let rsa_bits = generate
        .rsa_bits_for(
            alg,
            "Azure Key Vault",
            default_rsa_bits(alg),
            RsaSizes::OneOf(RSA_SIZES),
        )
        .map_err(AzureKvError::GenerateOption)?;
    let hsm = options.hsm_keys || uri.is_managed_hsm();
    let mut body = match (alg.family(), rsa_bits) {
        (Family::Ecdsa(curve), _) => {
            let crv = match curve {
                pkjwt_core::Curve::Secp256k1 => "P-256K",
                other => other.jwk_name(),
            };
            json!({ "kty": if hsm { "EC-HSM" } else { "EC" }, "crv": crv })
        }
        (Family::RsaPss | Family::RsaPkcs1, Some(bits)) => {
            json!({ "kty": if hsm { "RSA-HSM" } else { "RSA" }, "key_size": bits })
        }
        _ => {
            return Err(refuse(format!(
                "Key Vault cannot create a key for {alg} (it offers EC P-256/P-384/P-521/P-256K \
                 and RSA 2048/3072/4096)"
            )));
        }
    };
    body["key_ops"] = json!(["sign", "verify"]);
    body["attributes"] = json!({ "enabled": true });
    body["tags"] = json!({ CREATED_BY_TAG.0: CREATED_BY_TAG.1 });

    let vault = Arc::new(connect(uri, options)?);
    match vault
        .call(&Call {
            operation: Operation::GetKey,
            key: &name,
            method: Method::GET,
            path: format!("/keys/{}", uri.name),
            body: None,
            idempotent: true,
        })
        .await
    {
        Ok(_) => {
            return Err(refuse(
                "a key of this name exists; creating would add a new current version (a silent \
                 rotation). Choose a new name, or rotate deliberately"
                    .into(),
            ));
        }
        Err(AzureKvError::NotFound { .. }) => {}
        Err(e) => return Err(e),
    }
    let answer = vault
        .call(&Call {
            operation: Operation::CreateKey,
            key: &name,
            method: Method::POST,
            path: format!("/keys/{}/create", uri.name),
            body: Some(body),
            idempotent: false,
        })
        .await?;
    let bundle = parse_key_bundle(&answer, uri, &name)?;
    tracing::info!(key = %bundle.key_id, key_type = %bundle.key_type, "created Azure Key Vault key");
    Ok((bundle.public_key, bundle.key_id))
}
