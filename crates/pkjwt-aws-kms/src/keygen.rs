//! [`generate`]: `pkjwt keygen` for AWS KMS — a new asymmetric signing key and its alias, for
//! users without Terraform (`infra/terraform/aws-kms/` is the declarative way); and the pieces
//! of a rotation by alias swap: [`create_key`] (a new key, no alias yet), [`alias_target`] and
//! [`point_alias`].

use aws_sdk_kms::Client;
use aws_sdk_kms::operation::RequestId;
use aws_sdk_kms::types::KeyUsageType;
use pkjwt_core::{Algorithm, AwsKmsUri, GenerateOptions, PublicKey};

use crate::error::{CallContext, Operation, classify};
use crate::options::client_for;
use crate::spec::{RSA_SIZES, default_rsa_bits, key_spec_for};
use crate::{AwsKmsError, AwsKmsOptions, AwsKmsSigner};

/// Description set on keys pkjwt creates.
pub const KEY_DESCRIPTION: &str = "pkjwt private_key_jwt client-authentication key";

/// The alias name (`alias/NAME`) in a key id that is an alias name or alias ARN; `None` for a
/// key id or key ARN.
pub fn alias_name(key_id: &str) -> Option<String> {
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

/// True when `a` and `b` name the same KMS key, each given as a key id or a key ARN.
pub fn same_key(a: &str, b: &str) -> bool {
    let id = |k: &str| k.rsplit('/').next().unwrap_or(k).to_owned();
    id(a) == id(b)
}

/// Creates a KMS key for `alg` (`KeyUsage = SIGN_VERIFY`; key spec ECC_NIST_P256/P384/P521,
/// ECC_SECG_P256K1, ECC_NIST_EDWARDS25519, or RSA_2048/3072/4096: [`GenerateOptions::rsa_bits`],
/// else the size that matches the hash of *256/*384/*512) and names it with the alias in `uri`
/// (`key-id=alias/NAME` or an alias ARN), then returns its public key.
///
/// An RSA size for an algorithm that is not RSA, or one KMS has no key spec for, is refused
/// ([`AwsKmsError::GenerateOption`]) before any request is sent.
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
    generate: &GenerateOptions,
    options: &AwsKmsOptions,
) -> Result<PublicKey, AwsKmsError> {
    let alias = alias_name(&uri.key_id).ok_or_else(|| AwsKmsError::KeygenNeedsAlias {
        key: uri.key_id.clone(),
    })?;
    let key_spec = spec_for(&alias, alg, generate)?;
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

    let Created {
        key_id,
        key_arn,
        request_id,
    } = create_raw(&client, key_spec, &alias, &endpoint, max_attempts).await?;
    tracing::info!(
        key = %key_arn,
        alias = %alias,
        request_id = request_id.as_deref().unwrap_or("-"),
        "created KMS key"
    );

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
        let cleanup = schedule_deletion(&client, &key_id).await;
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

/// A key `CreateKey` made.
struct Created {
    key_id: String,
    key_arn: String,
    /// The AWS request id of the `CreateKey` answer, for the caller's trace event.
    request_id: Option<String>,
}

/// The key spec for `alg` and the caller's options, checked before any request is sent.
fn spec_for(
    key: &str,
    alg: Algorithm,
    generate: &GenerateOptions,
) -> Result<aws_sdk_kms::types::KeySpec, AwsKmsError> {
    let rsa_bits = generate
        .rsa_bits_for(alg, "AWS KMS", default_rsa_bits(alg), RSA_SIZES)
        .map_err(|source| AwsKmsError::GenerateOption {
            key: key.to_owned(),
            source,
        })?;
    key_spec_for(alg, rsa_bits).ok_or_else(|| AwsKmsError::UnsupportedKeySpec {
        key: key.to_owned(),
        key_spec: format!("(none for algorithm {alg})"),
    })
}

/// `CreateKey` for a signing key of `key_spec`. `name` only appears in messages.
async fn create_raw(
    client: &Client,
    key_spec: aws_sdk_kms::types::KeySpec,
    name: &str,
    endpoint: &str,
    max_attempts: u32,
) -> Result<Created, AwsKmsError> {
    let ctx = CallContext {
        operation: Operation::CreateKey,
        key: name,
        endpoint,
        max_attempts,
    };
    let created = client
        .create_key()
        .key_spec(key_spec)
        .key_usage(KeyUsageType::SignVerify)
        .description(KEY_DESCRIPTION)
        .send()
        .await
        .map_err(|e| classify(&ctx, e))?;
    let Some(meta) = created.key_metadata() else {
        return Err(AwsKmsError::InvalidResponse {
            operation: Operation::CreateKey,
            key: name.to_owned(),
            reason: "no KeyMetadata in the answer".into(),
            request_id: created.request_id().map(str::to_owned),
        });
    };
    let key_id = meta.key_id().to_owned();
    let key_arn = meta.arn().unwrap_or(&key_id).to_owned();
    let request_id = created.request_id().map(str::to_owned);
    tracing::debug!(key = %key_arn, request_id = request_id.as_deref().unwrap_or("-"), "CreateKey");
    Ok(Created {
        key_id,
        key_arn,
        request_id,
    })
}

/// Creates a KMS signing key for `alg` without an alias — the next key of a rotation, whose
/// alias is moved to it later with [`point_alias`] — and opens it. `uri` supplies the region,
/// profile and endpoint (its key id only names the request in messages).
///
/// The key spec follows `generate` as in [`generate`].
///
/// IAM permissions: `kms:CreateKey`, `kms:GetPublicKey`.
pub async fn create_key(
    uri: &AwsKmsUri,
    alg: Algorithm,
    generate: &GenerateOptions,
    options: &AwsKmsOptions,
) -> Result<AwsKmsSigner, AwsKmsError> {
    let key_spec = spec_for(&uri.key_id, alg, generate)?;
    let (client, endpoint) = client_for(uri, options).await?;
    let Created {
        key_arn,
        request_id,
        ..
    } = create_raw(
        &client,
        key_spec,
        &uri.key_id,
        &endpoint,
        options.max_attempts,
    )
    .await?;
    tracing::info!(
        key = %key_arn,
        request_id = request_id.as_deref().unwrap_or("-"),
        "created KMS key (no alias yet)"
    );
    match AwsKmsSigner::from_client(client.clone(), endpoint, &key_arn, Some(alg)).await {
        Ok(signer) => Ok(signer),
        Err(e) => Err(AwsKmsError::CreatedKeyNotUsable {
            cleanup: schedule_deletion(&client, &key_arn).await,
            key: key_arn,
            cause: Box::new(e),
        }),
    }
}

/// Schedules a key pkjwt just created, and cannot use, for deletion in 7 days; says what
/// happened, for the error message.
async fn schedule_deletion(client: &Client, key_id: &str) -> String {
    match client
        .schedule_key_deletion()
        .key_id(key_id)
        .pending_window_in_days(7)
        .send()
        .await
    {
        Ok(_) => "the new key was scheduled for deletion in 7 days (aws kms cancel-key-deletion \
                  recovers it)"
            .to_owned(),
        Err(_) => format!(
            "the new key could not be scheduled for deletion; delete it with aws kms \
             schedule-key-deletion --key-id {key_id}"
        ),
    }
}

/// The key ARN `alias` (`alias/NAME`) points to now, or `None` when no such alias exists.
/// `uri` supplies the region, profile and endpoint.
///
/// IAM permission: `kms:DescribeKey`.
pub async fn alias_target(
    uri: &AwsKmsUri,
    alias: &str,
    options: &AwsKmsOptions,
) -> Result<Option<String>, AwsKmsError> {
    let (client, endpoint) = client_for(uri, options).await?;
    describe_alias(&client, alias, &endpoint, options.max_attempts).await
}

async fn describe_alias(
    client: &Client,
    alias: &str,
    endpoint: &str,
    max_attempts: u32,
) -> Result<Option<String>, AwsKmsError> {
    match client.describe_key().key_id(alias).send().await {
        Ok(out) => Ok(out
            .key_metadata()
            .map(|m| m.arn().unwrap_or(m.key_id()).to_owned())),
        Err(e) => match classify(
            &CallContext {
                operation: Operation::DescribeKey,
                key: alias,
                endpoint,
                max_attempts,
            },
            e,
        ) {
            AwsKmsError::NotFound { .. } => Ok(None),
            other => Err(other),
        },
    }
}

/// Points `alias` (`alias/NAME`) at `key_id` (key id or ARN): `UpdateAlias` when the alias
/// exists, `CreateAlias` when it does not. Returns the key ARN it pointed to before (`None`:
/// created). Nothing is sent when it already points there. `uri` supplies the region, profile
/// and endpoint.
///
/// IAM permissions: `kms:DescribeKey`, and `kms:UpdateAlias` (on the alias and on both keys) or
/// `kms:CreateAlias`.
pub async fn point_alias(
    uri: &AwsKmsUri,
    alias: &str,
    key_id: &str,
    options: &AwsKmsOptions,
) -> Result<Option<String>, AwsKmsError> {
    if alias_name(alias).as_deref() != Some(alias) || alias.starts_with("alias/aws/") {
        return Err(AwsKmsError::NotAnAlias {
            name: alias.to_owned(),
        });
    }
    let (client, endpoint) = client_for(uri, options).await?;
    let before = describe_alias(&client, alias, &endpoint, options.max_attempts).await?;
    if before.as_deref().is_some_and(|b| same_key(b, key_id)) {
        return Ok(before);
    }
    let ctx = |operation| CallContext {
        operation,
        key: alias,
        endpoint: &endpoint,
        max_attempts: options.max_attempts,
    };
    let request_id = if before.is_some() {
        client
            .update_alias()
            .alias_name(alias)
            .target_key_id(key_id)
            .send()
            .await
            .map_err(|e| classify(&ctx(Operation::UpdateAlias), e))?
            .request_id()
            .map(str::to_owned)
    } else {
        client
            .create_alias()
            .alias_name(alias)
            .target_key_id(key_id)
            .send()
            .await
            .map_err(|e| classify(&ctx(Operation::CreateAlias), e))?
            .request_id()
            .map(str::to_owned)
    };
    tracing::info!(
        alias,
        key = key_id,
        previous = before.as_deref().unwrap_or("-"),
        request_id = request_id.as_deref().unwrap_or("-"),
        "alias moved"
    );
    Ok(before)
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

    #[test]
    fn key_ids_and_arns_compare_by_key() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd-12ab";
        assert!(super::same_key(arn, "1234abcd-12ab"));
        assert!(super::same_key("1234abcd-12ab", arn));
        assert!(!super::same_key(
            arn,
            "arn:aws:kms:eu-west-1:111122223333:key/9999"
        ));
    }

    #[tokio::test]
    async fn only_customer_aliases_move() {
        let pkjwt_core::KeyUri::AwsKms(uri) = pkjwt_core::KeyUri::parse(
            "awskms:key-id=alias/x;region=eu-west-1;endpoint=http://127.0.0.1:9",
        )
        .unwrap() else {
            panic!("not a KMS URI")
        };
        let opts = crate::AwsKmsOptions::default();
        for bad in [
            "payments",
            "alias/",
            "alias/aws/lambda",
            "arn:aws:kms:eu-west-1:1:key/k",
        ] {
            let e = super::point_alias(&uri, bad, "k", &opts).await.unwrap_err();
            assert!(
                matches!(&e, crate::AwsKmsError::NotAnAlias { name } if name == bad),
                "{bad}: {e}"
            );
        }
    }
}
