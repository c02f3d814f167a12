//! Cloud KMS `CryptoKeyVersionAlgorithm` values and the JWS algorithms they produce.
//!
//! A Cloud KMS key version has exactly one algorithm, fixed at creation: the padding, the hash
//! and the key size are all in its name. So a version signs with one JWS algorithm only.

use pkjwt_core::{Algorithm, PublicKey};

/// One signing algorithm of Cloud KMS that pkjwt can use.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct GcpAlgorithm {
    /// The API's name (`EC_SIGN_P256_SHA256`).
    pub name: &'static str,
    /// The JWS algorithm it produces.
    pub jws: Algorithm,
    /// The RSA modulus size; `None` for EC and Ed25519.
    pub rsa_bits: Option<usize>,
}

const fn alg(name: &'static str, jws: Algorithm, rsa_bits: Option<usize>) -> GcpAlgorithm {
    GcpAlgorithm {
        name,
        jws,
        rsa_bits,
    }
}

/// Every asymmetric signing algorithm of the API reference that maps onto a JWS algorithm.
/// (`RSA_SIGN_RAW_PKCS1_*` signs caller-padded data, and the post-quantum algorithms have no JWS
/// name: both are refused by name.)
pub(crate) const ALGORITHMS: &[GcpAlgorithm] = &[
    alg("EC_SIGN_P256_SHA256", Algorithm::ES256, None),
    alg("EC_SIGN_P384_SHA384", Algorithm::ES384, None),
    alg("EC_SIGN_SECP256K1_SHA256", Algorithm::ES256K, None),
    alg("EC_SIGN_ED25519", Algorithm::EdDSA, None),
    alg("RSA_SIGN_PSS_2048_SHA256", Algorithm::PS256, Some(2048)),
    alg("RSA_SIGN_PSS_3072_SHA256", Algorithm::PS256, Some(3072)),
    alg("RSA_SIGN_PSS_4096_SHA256", Algorithm::PS256, Some(4096)),
    alg("RSA_SIGN_PSS_4096_SHA512", Algorithm::PS512, Some(4096)),
    alg("RSA_SIGN_PKCS1_2048_SHA256", Algorithm::RS256, Some(2048)),
    alg("RSA_SIGN_PKCS1_3072_SHA256", Algorithm::RS256, Some(3072)),
    alg("RSA_SIGN_PKCS1_4096_SHA256", Algorithm::RS256, Some(4096)),
    alg("RSA_SIGN_PKCS1_4096_SHA512", Algorithm::RS512, Some(4096)),
];

/// RSA sizes Cloud KMS creates for a SHA-256 algorithm.
pub(crate) const RSA_SHA256_SIZES: &[usize] = &[2048, 3072, 4096];
/// RSA sizes Cloud KMS creates for a SHA-512 algorithm.
pub(crate) const RSA_SHA512_SIZES: &[usize] = &[4096];

/// The entry for an API algorithm name.
pub(crate) fn by_name(name: &str) -> Option<GcpAlgorithm> {
    ALGORITHMS.iter().copied().find(|a| a.name == name)
}

/// The algorithm to create for `jws` (and an RSA size already checked against the lists above).
pub(crate) fn for_jws(jws: Algorithm, rsa_bits: Option<usize>) -> Option<GcpAlgorithm> {
    ALGORITHMS
        .iter()
        .copied()
        .find(|a| a.jws == jws && a.rsa_bits == rsa_bits)
}

/// True when the public key is of the kind `a` names (curve, or RSA modulus size).
pub(crate) fn matches_key(a: &GcpAlgorithm, key: &PublicKey) -> bool {
    match (a.jws.curve(), key) {
        (Some(c), PublicKey::Ec { curve, .. }) => *curve == c,
        (None, PublicKey::Rsa { .. }) => a.rsa_bits == Some(key.bits()),
        (None, PublicKey::Ed25519(_)) => a.jws == Algorithm::EdDSA,
        _ => false,
    }
}

/// True for the names of the API's *decryption* and MAC algorithms, whose keys cannot sign.
pub(crate) fn is_not_signing(name: &str) -> bool {
    name.starts_with("RSA_DECRYPT_")
        || name.starts_with("HMAC_")
        || name.starts_with("GOOGLE_SYMMETRIC")
        || name.starts_with("AES_")
        || name.starts_with("EXTERNAL_SYMMETRIC")
        || name.starts_with("ML_KEM")
        || name.starts_with("KEM_")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_algorithm_round_trips() {
        for a in ALGORITHMS {
            assert_eq!(by_name(a.name), Some(*a));
            assert_eq!(for_jws(a.jws, a.rsa_bits), Some(*a), "{}", a.name);
            if let Some(bits) = a.rsa_bits {
                assert!(a.name.contains(&bits.to_string()));
            }
        }
        assert!(
            for_jws(Algorithm::ES512, None).is_none(),
            "no P-521 in Cloud KMS"
        );
        assert!(is_not_signing("RSA_DECRYPT_OAEP_2048_SHA256"));
        assert!(!is_not_signing("EC_SIGN_P256_SHA256"));
    }
}
