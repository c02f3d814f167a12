//! JWS signature algorithms (RFC 7518 §3, RFC 8037, RFC 8812) and the curves and hashes behind
//! them.

use std::fmt;
use std::str::FromStr;

use crate::Error;

/// A JWS signature algorithm that pkjwt can produce.
///
/// MAC algorithms (`HS*`) and `none` are deliberately absent: a `private_key_jwt` client never
/// uses them (RFC 8725 §3.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Algorithm {
    /// ECDSA with P-256 and SHA-256.
    ES256,
    /// ECDSA with P-384 and SHA-384.
    ES384,
    /// ECDSA with P-521 and SHA-512.
    ES512,
    /// ECDSA with secp256k1 and SHA-256 (RFC 8812).
    ES256K,
    /// RSASSA-PSS with SHA-256, MGF1-SHA-256 and a 32-byte salt.
    PS256,
    /// RSASSA-PSS with SHA-384, MGF1-SHA-384 and a 48-byte salt.
    PS384,
    /// RSASSA-PSS with SHA-512, MGF1-SHA-512 and a 64-byte salt.
    PS512,
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    RS256,
    /// RSASSA-PKCS1-v1_5 with SHA-384.
    RS384,
    /// RSASSA-PKCS1-v1_5 with SHA-512.
    RS512,
    /// EdDSA with Ed25519 (RFC 8037); signs the message itself, no pre-hash.
    EdDSA,
}

/// Every algorithm, in a stable order (used for help texts and tests).
pub const ALL_ALGORITHMS: [Algorithm; 11] = [
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::ES512,
    Algorithm::ES256K,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::EdDSA,
];

/// The hash function an algorithm applies to the signing input.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum HashAlg {
    /// SHA-256.
    Sha256,
    /// SHA-384.
    Sha384,
    /// SHA-512.
    Sha512,
}

impl HashAlg {
    /// Output length in bytes.
    #[allow(clippy::len_without_is_empty)] // a digest length, never empty
    pub fn len(self) -> usize {
        match self {
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// Hashes `data`. Backends that sign a digest (PKCS#11 `CKM_ECDSA`, KMS `DIGEST`) use this so
    /// that every backend hashes the same way.
    pub fn digest(self, data: &[u8]) -> Vec<u8> {
        use sha2::Digest;
        match self {
            HashAlg::Sha256 => sha2::Sha256::digest(data).to_vec(),
            HashAlg::Sha384 => sha2::Sha384::digest(data).to_vec(),
            HashAlg::Sha512 => sha2::Sha512::digest(data).to_vec(),
        }
    }
}

/// Elliptic curves used with ECDSA.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Curve {
    /// NIST P-256 (secp256r1).
    P256,
    /// NIST P-384 (secp384r1).
    P384,
    /// NIST P-521 (secp521r1).
    P521,
    /// secp256k1.
    Secp256k1,
}

impl Curve {
    /// Field size in bytes: the width of each of `x`, `y`, `r` and `s`.
    pub fn field_len(self) -> usize {
        match self {
            Curve::P256 | Curve::Secp256k1 => 32,
            Curve::P384 => 48,
            Curve::P521 => 66,
        }
    }

    /// The JWK `crv` name (RFC 7518 §6.2.1.1, RFC 8812 §3.1).
    pub fn jwk_name(self) -> &'static str {
        match self {
            Curve::P256 => "P-256",
            Curve::P384 => "P-384",
            Curve::P521 => "P-521",
            Curve::Secp256k1 => "secp256k1",
        }
    }

    /// Looks up a JWK `crv` name.
    pub fn from_jwk_name(name: &str) -> Option<Curve> {
        match name {
            "P-256" => Some(Curve::P256),
            "P-384" => Some(Curve::P384),
            "P-521" => Some(Curve::P521),
            "secp256k1" => Some(Curve::Secp256k1),
            _ => None,
        }
    }

    /// The ECDSA algorithm that belongs to this curve (JWS binds curve and hash together).
    pub fn algorithm(self) -> Algorithm {
        match self {
            Curve::P256 => Algorithm::ES256,
            Curve::P384 => Algorithm::ES384,
            Curve::P521 => Algorithm::ES512,
            Curve::Secp256k1 => Algorithm::ES256K,
        }
    }

    /// DER encoding of the curve's object identifier (contents only, without tag and length).
    pub fn oid(self) -> &'static [u8] {
        match self {
            // 1.2.840.10045.3.1.7
            Curve::P256 => &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07],
            // 1.3.132.0.34
            Curve::P384 => &[0x2b, 0x81, 0x04, 0x00, 0x22],
            // 1.3.132.0.35
            Curve::P521 => &[0x2b, 0x81, 0x04, 0x00, 0x23],
            // 1.3.132.0.10
            Curve::Secp256k1 => &[0x2b, 0x81, 0x04, 0x00, 0x0a],
        }
    }

    /// Looks a curve up by the contents of its OID.
    pub fn from_oid(oid: &[u8]) -> Option<Curve> {
        [Curve::P256, Curve::P384, Curve::P521, Curve::Secp256k1]
            .into_iter()
            .find(|c| c.oid() == oid)
    }
}

impl fmt::Display for Curve {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.jwk_name())
    }
}

/// Broad families of algorithms, by key type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Family {
    /// ECDSA over the given curve.
    Ecdsa(Curve),
    /// RSASSA-PSS.
    RsaPss,
    /// RSASSA-PKCS1-v1_5.
    RsaPkcs1,
    /// EdDSA with Ed25519.
    Ed25519,
}

impl Algorithm {
    /// The `alg` name used in JOSE headers and JWKs.
    pub fn name(self) -> &'static str {
        match self {
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::ES512 => "ES512",
            Algorithm::ES256K => "ES256K",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    /// The algorithm family.
    pub fn family(self) -> Family {
        match self {
            Algorithm::ES256 => Family::Ecdsa(Curve::P256),
            Algorithm::ES384 => Family::Ecdsa(Curve::P384),
            Algorithm::ES512 => Family::Ecdsa(Curve::P521),
            Algorithm::ES256K => Family::Ecdsa(Curve::Secp256k1),
            Algorithm::PS256 | Algorithm::PS384 | Algorithm::PS512 => Family::RsaPss,
            Algorithm::RS256 | Algorithm::RS384 | Algorithm::RS512 => Family::RsaPkcs1,
            Algorithm::EdDSA => Family::Ed25519,
        }
    }

    /// The hash applied to the signing input, or `None` for EdDSA, which signs the message.
    pub fn hash(self) -> Option<HashAlg> {
        match self {
            Algorithm::ES256 | Algorithm::ES256K | Algorithm::PS256 | Algorithm::RS256 => {
                Some(HashAlg::Sha256)
            }
            Algorithm::ES384 | Algorithm::PS384 | Algorithm::RS384 => Some(HashAlg::Sha384),
            Algorithm::ES512 | Algorithm::PS512 | Algorithm::RS512 => Some(HashAlg::Sha512),
            Algorithm::EdDSA => None,
        }
    }

    /// For ECDSA, the curve; `None` otherwise.
    pub fn curve(self) -> Option<Curve> {
        match self.family() {
            Family::Ecdsa(c) => Some(c),
            _ => None,
        }
    }

    /// Length of the JWS signature in bytes when it is fixed (ECDSA `r||s`: 64/96/132; Ed25519:
    /// 64). RSA signatures are as long as the modulus.
    pub fn fixed_signature_len(self) -> Option<usize> {
        match self.family() {
            Family::Ecdsa(c) => Some(2 * c.field_len()),
            Family::Ed25519 => Some(64),
            Family::RsaPss | Family::RsaPkcs1 => None,
        }
    }

    /// True for the algorithms FAPI 2.0 Security Profile §5.4 allows (PS256, ES256, EdDSA).
    pub fn is_fapi2(self) -> bool {
        matches!(self, Algorithm::PS256 | Algorithm::ES256 | Algorithm::EdDSA)
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Algorithm {
    type Err = Error;

    /// Parses a JOSE `alg` name. Case matters in JOSE, so `es256` is refused with a hint.
    fn from_str(s: &str) -> Result<Self, Error> {
        if let Some(a) = ALL_ALGORITHMS.iter().find(|a| a.name() == s) {
            return Ok(*a);
        }
        // `Ed25519` is the fully-specified name from draft-ietf-jose-fully-specified-algorithms;
        // we sign it as EdDSA.
        if s == "Ed25519" {
            return Ok(Algorithm::EdDSA);
        }
        if let Some(a) = ALL_ALGORITHMS
            .iter()
            .find(|a| a.name().eq_ignore_ascii_case(s))
        {
            return Err(Error::UnknownAlgorithm(format!(
                "\"{s}\" (JOSE algorithm names are case-sensitive: did you mean {a}?)"
            )));
        }
        Err(Error::UnknownAlgorithm(format!("\"{s}\"")))
    }
}

impl serde::Serialize for Algorithm {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.name())
    }
}

impl<'de> serde::Deserialize<'de> for Algorithm {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for a in ALL_ALGORITHMS {
            assert_eq!(a.name().parse::<Algorithm>().unwrap(), a);
        }
    }

    #[test]
    fn wrong_case_is_refused_with_a_hint() {
        let e = "es256".parse::<Algorithm>().unwrap_err().to_string();
        assert!(e.contains("did you mean ES256"), "{e}");
        assert!("HS256".parse::<Algorithm>().is_err());
        assert!("none".parse::<Algorithm>().is_err());
    }

    #[test]
    fn signature_lengths() {
        assert_eq!(Algorithm::ES256.fixed_signature_len(), Some(64));
        assert_eq!(Algorithm::ES384.fixed_signature_len(), Some(96));
        assert_eq!(Algorithm::ES512.fixed_signature_len(), Some(132));
        assert_eq!(Algorithm::EdDSA.fixed_signature_len(), Some(64));
        assert_eq!(Algorithm::PS256.fixed_signature_len(), None);
    }
}
