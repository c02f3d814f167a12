//! The map between KMS key specs / signing algorithms and JWS algorithms.
//!
//! Sources: KMS developer guide "Asymmetric key specs" and the `Sign` API reference
//! (`SigningAlgorithm`, `MessageType`).

use aws_sdk_kms::types::{KeySpec, MessageType, SigningAlgorithmSpec};
use pkjwt_core::{Algorithm, Curve, PublicKey, RsaSizes};

/// How one JWS algorithm is asked of KMS.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct KmsAlgorithm {
    /// `SigningAlgorithm` in the `Sign` request.
    pub spec: SigningAlgorithmSpec,
    /// `MessageType`: `DIGEST` (hashed here, fixed size, no 4 KB limit) for ECDSA and RSA,
    /// `RAW` for Ed25519, which the API requires for `ED25519_SHA_512`.
    pub message_type: MessageType,
}

/// The KMS signing algorithm for a JWS algorithm.
pub(crate) fn kms_algorithm(alg: Algorithm) -> Option<KmsAlgorithm> {
    use SigningAlgorithmSpec as S;
    let (spec, message_type) = match alg {
        Algorithm::ES256 | Algorithm::ES256K => (S::EcdsaSha256, MessageType::Digest),
        Algorithm::ES384 => (S::EcdsaSha384, MessageType::Digest),
        Algorithm::ES512 => (S::EcdsaSha512, MessageType::Digest),
        Algorithm::PS256 => (S::RsassaPssSha256, MessageType::Digest),
        Algorithm::PS384 => (S::RsassaPssSha384, MessageType::Digest),
        Algorithm::PS512 => (S::RsassaPssSha512, MessageType::Digest),
        Algorithm::RS256 => (S::RsassaPkcs1V15Sha256, MessageType::Digest),
        Algorithm::RS384 => (S::RsassaPkcs1V15Sha384, MessageType::Digest),
        Algorithm::RS512 => (S::RsassaPkcs1V15Sha512, MessageType::Digest),
        Algorithm::EdDSA => (S::Ed25519Sha512, MessageType::Raw),
        _ => return None,
    };
    Some(KmsAlgorithm { spec, message_type })
}

/// The JWS algorithms a key spec can produce (in pkjwt's preference order), or `None` for a
/// spec pkjwt cannot use.
pub(crate) fn algorithms_for_spec(spec: &str) -> Option<Vec<Algorithm>> {
    use Algorithm::*;
    Some(match spec {
        "ECC_NIST_P256" => vec![ES256],
        "ECC_NIST_P384" => vec![ES384],
        "ECC_NIST_P521" => vec![ES512],
        "ECC_SECG_P256K1" => vec![ES256K],
        "RSA_2048" | "RSA_3072" | "RSA_4096" => vec![PS256, PS384, PS512, RS256, RS384, RS512],
        "ECC_NIST_EDWARDS25519" => vec![EdDSA],
        _ => return None,
    })
}

/// True when the public key KMS returned is the kind the key spec announces.
pub(crate) fn spec_matches_key(spec: &str, key: &PublicKey) -> bool {
    match (spec, key) {
        ("ECC_NIST_P256", PublicKey::Ec { curve, .. }) => *curve == Curve::P256,
        ("ECC_NIST_P384", PublicKey::Ec { curve, .. }) => *curve == Curve::P384,
        ("ECC_NIST_P521", PublicKey::Ec { curve, .. }) => *curve == Curve::P521,
        ("ECC_SECG_P256K1", PublicKey::Ec { curve, .. }) => *curve == Curve::Secp256k1,
        ("RSA_2048", PublicKey::Rsa { .. }) => key.bits() == 2048,
        ("RSA_3072", PublicKey::Rsa { .. }) => key.bits() == 3072,
        ("RSA_4096", PublicKey::Rsa { .. }) => key.bits() == 4096,
        ("ECC_NIST_EDWARDS25519", PublicKey::Ed25519(_)) => true,
        _ => false,
    }
}

/// The key spec of a public key, for answers that name none (moto omits `KeySpec`).
pub(crate) fn spec_of_key(key: &PublicKey) -> Option<&'static str> {
    Some(match key {
        PublicKey::Ec { curve, .. } => match curve {
            Curve::P256 => "ECC_NIST_P256",
            Curve::P384 => "ECC_NIST_P384",
            Curve::P521 => "ECC_NIST_P521",
            Curve::Secp256k1 => "ECC_SECG_P256K1",
            _ => return None,
        },
        PublicKey::Rsa { .. } => match key.bits() {
            2048 => "RSA_2048",
            3072 => "RSA_3072",
            4096 => "RSA_4096",
            _ => return None,
        },
        PublicKey::Ed25519(_) => "ECC_NIST_EDWARDS25519",
        _ => return None,
    })
}

/// The RSA moduli KMS has key specs for (`RSA_2048`, `RSA_3072`, `RSA_4096`).
pub(crate) const RSA_SIZES: RsaSizes<'static> = RsaSizes::OneOf(&[2048, 3072, 4096]);

/// The modulus `keygen` picks for an RSA algorithm when the caller names none: the one that
/// matches the hash strength (2048 for *256, 3072 for *384, 4096 for *512).
pub(crate) fn default_rsa_bits(alg: Algorithm) -> usize {
    match alg {
        Algorithm::PS384 | Algorithm::RS384 => 3072,
        Algorithm::PS512 | Algorithm::RS512 => 4096,
        _ => 2048,
    }
}

/// The key spec `keygen` creates for an algorithm: the curve for ECDSA and EdDSA; for RSA the
/// modulus `rsa_bits` (`None`: [`default_rsa_bits`]). `None` when KMS has no such spec.
pub(crate) fn key_spec_for(alg: Algorithm, rsa_bits: Option<usize>) -> Option<KeySpec> {
    use Algorithm::*;
    Some(match alg {
        ES256 => KeySpec::EccNistP256,
        ES384 => KeySpec::EccNistP384,
        ES512 => KeySpec::EccNistP521,
        ES256K => KeySpec::EccSecgP256K1,
        PS256 | PS384 | PS512 | RS256 | RS384 | RS512 => {
            match rsa_bits.unwrap_or(default_rsa_bits(alg)) {
                2048 => KeySpec::Rsa2048,
                3072 => KeySpec::Rsa3072,
                4096 => KeySpec::Rsa4096,
                _ => return None,
            }
        }
        EdDSA => KeySpec::EccNistEdwards25519,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use pkjwt_core::ALL_ALGORITHMS;

    #[test]
    fn every_algorithm_round_trips_through_its_key_spec() {
        for alg in ALL_ALGORITHMS {
            let spec = key_spec_for(alg, None).expect("every JWS algorithm has a KMS key spec");
            let algs = algorithms_for_spec(spec.as_str()).expect("spec is supported");
            assert!(
                algs.contains(&alg),
                "{alg} not offered by {}",
                spec.as_str()
            );
            let kms = kms_algorithm(alg).expect("every JWS algorithm has a KMS algorithm");
            let expected = if alg == Algorithm::EdDSA {
                MessageType::Raw
            } else {
                MessageType::Digest
            };
            assert_eq!(kms.message_type, expected, "{alg}");
        }
    }

    #[test]
    fn rsa_size_picks_the_spec() {
        assert_eq!(key_spec_for(Algorithm::PS256, None), Some(KeySpec::Rsa2048));
        assert_eq!(key_spec_for(Algorithm::RS384, None), Some(KeySpec::Rsa3072));
        assert_eq!(key_spec_for(Algorithm::PS512, None), Some(KeySpec::Rsa4096));
        assert_eq!(
            key_spec_for(Algorithm::PS256, Some(4096)),
            Some(KeySpec::Rsa4096)
        );
        assert_eq!(
            key_spec_for(Algorithm::RS512, Some(3072)),
            Some(KeySpec::Rsa3072)
        );
        assert_eq!(key_spec_for(Algorithm::PS256, Some(8192)), None);
        for bits in [2048, 3072, 4096] {
            assert!(RSA_SIZES.contains(bits));
        }
    }

    #[test]
    fn unsupported_specs() {
        for spec in ["SYMMETRIC_DEFAULT", "HMAC_256", "SM2", "ML_DSA_65", ""] {
            assert!(algorithms_for_spec(spec).is_none(), "{spec}");
        }
    }

    #[test]
    fn hash_matches_kms_algorithm_name() {
        for alg in ALL_ALGORITHMS {
            let kms = kms_algorithm(alg).expect("mapped");
            if let Some(h) = alg.hash() {
                let bits = h.len() * 8;
                assert!(kms.spec.as_str().ends_with(&format!("SHA_{bits}")), "{alg}");
            } else {
                assert_eq!(kms.spec, SigningAlgorithmSpec::Ed25519Sha512);
            }
        }
    }
}
