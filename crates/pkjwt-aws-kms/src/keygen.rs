//! [`generate`]: `pkjwt keygen` for AWS KMS — a new asymmetric signing key and its alias, for
//! users without Terraform (`infra/terraform/aws-kms/` is the declarative way).

use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::types::KeyUsageType;
use pkjwt_core::{Algorithm, AwsKmsUri, PublicKey};

use crate::error::{CallContext, Operation, classify};
use crate::options::client_for;
use crate::spec::key_spec_for;
use crate::{AwsKmsError, AwsKmsOptions, AwsKmsSigner};

/// Description set on keys pkjwt creates.
pub const KEY_DESCRIPTION: &str = "pkjwt private_key_jwt client-authentication key";

/// The alias name (`alias/NAME`) in a key id that is an alias name or alias ARN.
fn alias_name(key_id: &str) -> Option<String> {
    if key_id.starts_with("alias/") && key_id.len() > "alias/".len() {
        return Some(key_id.to_owned());
    }
    if key_id.starts_with("arn:")
        && let Some((_, name)) = key_id.split_once(":alias/")
        && !name.is_empty()
    {
        return Some(format!("alias/{name}"));
    }
    None
}

/// Creates a KMS key for `alg` (`KeyUsage = SIGN_VERIFY`; key spec ECC_NIST_P256/P384/P521,
/// ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, or RSA_2048/3072/4096 for *256/*384/*512) and names
/// it with the alias in `uri` (`key-id=alias/NAME` or an alias ARN), then returns its public key.
///
/// An alias that already names a key is refused (nothing is created). If the alias cannot be
/// created after the key was, the new key is scheduled for deletion (7 days) so that no
/// unnamed key is left behind, and the error says so.
///
/// IAM permissions: `kms:DescribeKey`, `kms:CreateKey`, `kms:CreateAlias` (on the key and the
/// alias), `kms:GetPublicKey`, and `kms:ScheduleKeyDeletion` for the clean-up path.
pub async fn generate(
    uri: &AwsKmsUri,
    alg: Algorithm,
    options: &AwsKmsOptions,
) -> Result<PublicKey, AwsKmsError> {
    let alias = alias_name(&uri.key_id).ok_or_else(|| AwsKmsError::KeygenNeedsAlias {
        key: uri.key_id.clone(),
    })?;
    let Some(key_spec) = key_spec_for(alg) else {
        return Err(AwsKmsError::UnsupportedKeySpec {
            key: alias,
            key_spec: format!("(none for algorithm {alg})"),
        });
    };
    let (client, endpoint) = client_for(uri, options).await?;
    let max_attempts = options.max_attempts;
    let ctx = |operation| CallContext {
        operation,
        key: "",
        endpoint: &endpoint,
        max_attempts,
    };

    // Refuse to take over an alias. AccessDenied on DescribeKey is not fatal: CreateAlias will
    // refuse an existing alias anyway (AlreadyExistsException), only after the key exists.
    match client.describe_key().key_id(&alias).send().await {
        Ok(out) => {
            let target = out
                .key_metadata()
                .map(|m| m.arn().unwrap_or(m.key_id()).to_owned())
                .unwrap_or_default();
            return Err(AwsKmsError::AliasExists { alias, target });
        }
        Err(e) => match classify(
            &CallContext {
                key: &alias,
                ..ctx(Operation::DescribeKey)
            },
            e,
        ) {
            AwsKmsError::NotFound { .. } | AwsKmsError::AccessDenied { .. } => {}
            other => return Err(other),
        },
    }

    let created = client
        .create_key()
        .key_spec(key_spec)
        .key_usage(KeyUsageType::SignVerify)
        .description(KEY_DESCRIPTION)
        .send()
        .await
        .map_err(|e| {
            classify(
                &CallContext {
                    key: &alias,
                    ..ctx(Operation::CreateKey)
                },
                e,
            )
        })?;
    let Some(meta) = created.key_metadata() else {
        return Err(AwsKmsError::InvalidResponse {
            operation: Operation::CreateKey,
            key: alias,
            reason: "no KeyMetadata in the answer".into(),
            request_id: created.request_id().map(str::to_owned),
        });
    };
    let key_id = meta.key_id().to_owned();
    let key_arn = meta.arn().unwrap_or(&key_id).to_owned();
    tracing::info!(key = %key_arn, alias = %alias, request_id = created.request_id().unwrap_or("-"), "created KMS key");

    if let Err(e) = client
        .create_alias()
        .alias_name(&alias)
        .target_key_id(&key_id)
        .send()
        .await
    {
        let err = classify(
            &CallContext {
                key: &alias,
                ..ctx(Operation::CreateAlias)
            },
            e,
        );
        let cleanup = client
            .schedule_key_deletion()
            .key_id(&key_id)
            .pending_window_in_days(7)
            .send()
            .await;
        let cleanup = match cleanup {
            Ok(_) => "the new key was scheduled for deletion in 7 days (aws kms \
                      cancel-key-deletion recovers it)"
                .to_owned(),
            Err(_) => format!(
                "the new key could not be scheduled for deletion; delete it with \
                 aws kms schedule-key-deletion --key-id {key_id}"
            ),
        };
        return Err(AwsKmsError::AliasNotCreated {
            alias,
            key: key_arn,
            cause: Box::new(err),
            cleanup,
        });
    }

    // Read the key back the way a signer will, with every check a signer makes.
    let signer = AwsKmsSigner::from_client(client, endpoint.clone(), &key_arn, Some(alg)).await?;
    Ok(pkjwt_core::Signer::public_key(&signer).clone())
}

#[cfg(test)]
mod tests {
    use super::alias_name;

    #[test]
    fn alias_names() {
        assert_eq!(
            alias_name("alias/payments").as_deref(),
            Some("alias/payments")
        );
        assert_eq!(
            alias_name("arn:aws:kms:eu-west-1:111122223333:alias/payments").as_deref(),
            Some("alias/payments")
        );
        assert_eq!(alias_name("alias/"), None);
        assert_eq!(alias_name("1234abcd-12ab-34cd-56ef-1234567890ab"), None);
        assert_eq!(
            alias_name("arn:aws:kms:eu-west-1:111122223333:key/1234"),
            None
        );
    }
}
