//! The next key of a rotation in KMS, and the rule that guards aliases.
//!
//! A key URI that names an alias (`key-id=alias/NAME`) asks for a key under that name. For the
//! first key the alias is created with it ([`generate`] refuses an alias that exists). For the
//! next key of a rotation the alias usually exists already, pointing at the key that signs now;
//! it must then not move yet (the old key keeps signing until the new one is published), so the
//! new key is created without an alias and the alias moves later ([`point_alias`]). An alias that
//! points at any *other* key belongs to someone else: taking it over would silently redirect
//! whoever signs through it, so it is refused ([`AwsKmsError::AliasTakeover`]).
//!
//! [`point_alias`]: crate::point_alias

use pkjwt_core::{Algorithm, AwsKmsUri, GenerateOptions, KeyUri};

use crate::{
    AwsKmsError, AwsKmsOptions, AwsKmsSigner, alias_name, alias_target, create_key, generate,
    same_key,
};

/// Creates a key for `alg` in KMS for a rotation and opens it.
///
/// `signing` is the key that signs now (any backend's URI), or `None` for the first key. With
/// `None`, or when `uri` names no alias or an alias that does not exist yet, this is
/// [`generate`] (key and alias) followed by [`AwsKmsSigner::open`]. When `uri`'s alias exists and
/// points at the signing key, the new key is made without an alias ([`create_key`]); the caller
/// records the alias and moves it when the key starts signing. When the alias points at any
/// other key, nothing is created: [`AwsKmsError::AliasTakeover`].
///
/// IAM permissions: those of [`generate`] and [`create_key`], and `kms:DescribeKey` on the alias.
pub async fn create_rotation_key(
    uri: &AwsKmsUri,
    alg: Algorithm,
    signing: Option<&KeyUri>,
    options: &GenerateOptions,
    kms: &AwsKmsOptions,
) -> Result<AwsKmsSigner, AwsKmsError> {
    let alias = alias_name(&uri.key_id);
    let target = match (&alias, signing) {
        (Some(a), Some(_)) => alias_target(uri, a, kms).await?,
        _ => None,
    };
    match (alias, target, signing) {
        (Some(alias), Some(target), Some(signing)) => {
            if !may_keep_alias(&target, signing) {
                return Err(AwsKmsError::AliasTakeover {
                    alias,
                    target,
                    signing: signing.to_string(),
                });
            }
            create_key(uri, alg, options, kms).await
        }
        _ => {
            generate(uri, alg, options, kms).await?;
            AwsKmsSigner::open(uri, Some(alg), kms).await
        }
    }
}

/// True when an alias that points at `target` is the signing key's own, so that the next key may
/// take it over later: the signing key is a KMS key and `target` is that key (by id or ARN).
fn may_keep_alias(target: &str, signing: &KeyUri) -> bool {
    match signing {
        KeyUri::AwsKms(k) => same_key(target, &k.key_id),
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_signing_keys_alias_is_kept() {
        let arn = "arn:aws:kms:eu-west-1:111122223333:key/1234abcd";
        let by_arn = KeyUri::parse(&format!("awskms:key-id={arn};region=eu-west-1")).unwrap();
        let by_id = KeyUri::parse("awskms:key-id=1234abcd;region=eu-west-1").unwrap();
        let other = KeyUri::parse("awskms:key-id=9999;region=eu-west-1").unwrap();
        let file = KeyUri::parse("file:/keys/1234abcd.pem").unwrap();
        assert!(may_keep_alias(arn, &by_arn));
        assert!(may_keep_alias(arn, &by_id));
        assert!(may_keep_alias("1234abcd", &by_arn));
        assert!(!may_keep_alias(arn, &other));
        // A key outside KMS never owns a KMS alias.
        assert!(!may_keep_alias(arn, &file));
    }

    #[tokio::test]
    async fn a_key_id_without_alias_needs_no_lookup() {
        // No alias in the URI: straight to generate, which refuses a key id (nothing is sent).
        let KeyUri::AwsKms(uri) =
            KeyUri::parse("awskms:key-id=1234abcd;region=eu-west-1;endpoint=http://127.0.0.1:9")
                .unwrap()
        else {
            panic!("not a KMS URI")
        };
        let signing = KeyUri::parse("awskms:key-id=9999;region=eu-west-1").unwrap();
        let e = create_rotation_key(
            &uri,
            Algorithm::ES256,
            Some(&signing),
            &GenerateOptions::default(),
            &AwsKmsOptions::default(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, AwsKmsError::KeygenNeedsAlias { .. }), "{e}");
    }
}
