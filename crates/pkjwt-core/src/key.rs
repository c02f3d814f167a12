//! Public keys: the one representation every backend hands to the JWK, JWS and X.509 code.

use std::fmt;

use crate::der::{self, Reader};
use crate::{Algorithm, Curve, Error, Family, Result};

/// Smallest RSA modulus pkjwt accepts, in bits (FAPI 2.0 §5.4, NIST SP 800-131A).
pub const MIN_RSA_BITS: usize = 2048;
/// Largest RSA modulus pkjwt accepts, in bits (beyond this, signing is impractically slow and
/// several servers refuse the key).
pub const MAX_RSA_BITS: usize = 8192;

/// OID 1.2.840.113549.1.1.1 (rsaEncryption).
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];
/// OID 1.2.840.10045.2.1 (id-ecPublicKey).
const OID_EC: &[u8] = &[0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01];
/// OID 1.3.101.112 (id-Ed25519).
const OID_ED25519: &[u8] = &[0x2b, 0x65, 0x70];

/// A public key of one of the kinds pkjwt signs with.
///
/// Constructors validate sizes (fixed-length EC coordinates, RSA ≥ 2048 bits, 32-byte Ed25519),
/// so a `PublicKey` in hand is always usable for a JWK.
#[derive(Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PublicKey {
    /// An elliptic-curve point, coordinates big-endian and exactly `curve.field_len()` bytes.
    Ec {
        /// The curve.
        curve: Curve,
        /// Affine x.
        x: Vec<u8>,
        /// Affine y.
        y: Vec<u8>,
    },
    /// An RSA public key, both numbers big-endian without leading zeros.
    Rsa {
        /// Modulus.
        n: Vec<u8>,
        /// Public exponent.
        e: Vec<u8>,
    },
    /// An Ed25519 public key.
    Ed25519([u8; 32]),
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.describe())
    }
}

impl PublicKey {
    /// Builds an EC key from affine coordinates, left-padding short coordinates and refusing
    /// ones wider than the field.
    pub fn ec(curve: Curve, x: &[u8], y: &[u8]) -> Result<Self> {
        let field = curve.field_len();
        let pad = |name: &str, v: &[u8]| -> Result<Vec<u8>> {
            let v = der::strip_leading_zeros(v);
            if v.len() > field {
                return Err(Error::UnsupportedKey(format!(
                    "EC {curve} coordinate {name} is {} bytes, more than the {field}-byte field",
                    v.len()
                )));
            }
            let mut out = vec![0u8; field];
            out[field - v.len()..].copy_from_slice(v);
            Ok(out)
        };
        Ok(PublicKey::Ec {
            curve,
            x: pad("x", x)?,
            y: pad("y", y)?,
        })
    }

    /// Builds an EC key from an uncompressed SEC 1 point (`04 || x || y`).
    pub fn ec_from_point(curve: Curve, point: &[u8]) -> Result<Self> {
        let field = curve.field_len();
        match point.split_first() {
            Some((4, xy)) if xy.len() == 2 * field => {
                let (x, y) = xy.split_at(field);
                Ok(PublicKey::Ec {
                    curve,
                    x: x.to_vec(),
                    y: y.to_vec(),
                })
            }
            Some((2 | 3, _)) => Err(Error::UnsupportedKey(format!(
                "compressed {curve} point; an uncompressed point (04||x||y) is needed"
            ))),
            _ => Err(Error::UnsupportedKey(format!(
                "EC {curve} point must be 04||x||y of {} bytes, got {} bytes",
                1 + 2 * field,
                point.len()
            ))),
        }
    }

    /// Builds an RSA key from big-endian modulus and exponent; refuses moduli outside
    /// 2048..=8192 bits and even or tiny exponents.
    pub fn rsa(n: &[u8], e: &[u8]) -> Result<Self> {
        let n = der::strip_leading_zeros(n);
        let e = der::strip_leading_zeros(e);
        let bits = bit_len(n);
        if bits < MIN_RSA_BITS {
            return Err(Error::UnsupportedKey(format!(
                "RSA key of {bits} bits; at least {MIN_RSA_BITS} bits are required"
            )));
        }
        if bits > MAX_RSA_BITS {
            return Err(Error::UnsupportedKey(format!(
                "RSA key of {bits} bits; at most {MAX_RSA_BITS} bits are supported"
            )));
        }
        if e.is_empty() || e.len() > 8 || e[e.len() - 1] & 1 == 0 || (e.len() == 1 && e[0] < 3) {
            return Err(Error::UnsupportedKey(
                "RSA public exponent must be odd, at least 3 and at most 64 bits".into(),
            ));
        }
        Ok(PublicKey::Rsa {
            n: n.to_vec(),
            e: e.to_vec(),
        })
    }

    /// Builds an Ed25519 key.
    pub fn ed25519(x: &[u8]) -> Result<Self> {
        let arr: [u8; 32] = x.try_into().map_err(|_| {
            Error::UnsupportedKey(format!(
                "Ed25519 public key must be 32 bytes, got {}",
                x.len()
            ))
        })?;
        Ok(PublicKey::Ed25519(arr))
    }

    /// A short description for messages, e.g. "an EC P-256 key" or "an RSA-2048 key".
    pub fn describe(&self) -> String {
        match self {
            PublicKey::Ec { curve, .. } => format!("an EC {curve} key"),
            PublicKey::Rsa { n, .. } => format!("an RSA-{} key", bit_len(n)),
            PublicKey::Ed25519(_) => "an Ed25519 key".into(),
        }
    }

    /// RSA modulus size in bits, or the curve size for EC/OKP keys.
    pub fn bits(&self) -> usize {
        match self {
            PublicKey::Ec { curve, .. } => match curve {
                Curve::P256 | Curve::Secp256k1 => 256,
                Curve::P384 => 384,
                Curve::P521 => 521,
            },
            PublicKey::Rsa { n, .. } => bit_len(n),
            PublicKey::Ed25519(_) => 256,
        }
    }

    /// The algorithm used when none is asked for: the curve's ECDSA algorithm, PS256 for RSA
    /// (PSS is what FAPI 2.0 allows), EdDSA for Ed25519.
    pub fn default_algorithm(&self) -> Algorithm {
        match self {
            PublicKey::Ec { curve, .. } => curve.algorithm(),
            PublicKey::Rsa { .. } => Algorithm::PS256,
            PublicKey::Ed25519(_) => Algorithm::EdDSA,
        }
    }

    /// Every algorithm this key can produce.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        crate::ALL_ALGORITHMS
            .into_iter()
            .filter(|a| self.supports(*a))
            .collect()
    }

    /// True when the key can sign with `alg`.
    pub fn supports(&self, alg: Algorithm) -> bool {
        match (self, alg.family()) {
            (PublicKey::Ec { curve, .. }, Family::Ecdsa(c)) => *curve == c,
            (PublicKey::Rsa { .. }, Family::RsaPss | Family::RsaPkcs1) => true,
            (PublicKey::Ed25519(_), Family::Ed25519) => true,
            _ => false,
        }
    }

    /// Resolves the algorithm to use: the requested one if the key can produce it (an error
    /// naming what it can do otherwise), or the key's default.
    pub fn resolve_algorithm(&self, requested: Option<Algorithm>) -> Result<Algorithm> {
        match requested {
            None => Ok(self.default_algorithm()),
            Some(a) if self.supports(a) => Ok(a),
            Some(a) => Err(Error::AlgorithmMismatch {
                requested: a.to_string(),
                key: self.describe(),
                supported: self
                    .algorithms()
                    .iter()
                    .map(|a| a.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            }),
        }
    }

    /// Parses a DER `SubjectPublicKeyInfo` (what KMS `GetPublicKey`, X.509 and `openssl pkey
    /// -pubout` produce).
    pub fn from_spki_der(spki: &[u8]) -> Result<Self> {
        let mut outer = Reader::new("SubjectPublicKeyInfo", spki);
        let mut seq = outer.sequence("SubjectPublicKeyInfo")?;
        outer.finish("SubjectPublicKeyInfo")?;
        let mut alg = seq.sequence("AlgorithmIdentifier")?;
        let oid = alg.read(der::TAG_OID, "algorithm OID")?;
        let bits = seq.read(der::TAG_BIT_STRING, "subjectPublicKey BIT STRING")?;
        seq.finish("subjectPublicKey")?;
        let key = match bits.split_first() {
            Some((0, key)) => key,
            _ => {
                return Err(Error::der(
                    "SubjectPublicKeyInfo",
                    "subjectPublicKey BIT STRING must have 0 unused bits",
                ));
            }
        };
        if oid == OID_EC {
            let curve_oid = alg.read(der::TAG_OID, "named curve OID")?;
            alg.finish("named curve")?;
            let curve = Curve::from_oid(curve_oid).ok_or_else(|| {
                Error::UnsupportedKey(format!(
                    "EC curve with OID {}; supported: P-256, P-384, P-521, secp256k1",
                    oid_to_string(curve_oid)
                ))
            })?;
            PublicKey::ec_from_point(curve, key)
        } else if oid == OID_RSA {
            if !alg.is_empty() {
                // DER NULL is exactly 05 00: content would be another encoding of the same key.
                if !alg.read(der::TAG_NULL, "NULL parameters")?.is_empty() {
                    return Err(Error::UnsupportedKey(
                        "RSA AlgorithmIdentifier: NULL parameters with content (DER NULL is 05 00)"
                            .into(),
                    ));
                }
                alg.finish("RSA parameters")?;
            }
            PublicKey::from_pkcs1_der(key)
        } else if oid == OID_ED25519 {
            alg.finish("Ed25519 AlgorithmIdentifier (parameters must be absent)")?;
            PublicKey::ed25519(key)
        } else {
            Err(Error::UnsupportedKey(format!(
                "public key algorithm OID {}; supported: EC (P-256, P-384, P-521, secp256k1), RSA, Ed25519",
                oid_to_string(oid)
            )))
        }
    }

    /// Parses a DER `RSAPublicKey` (PKCS#1).
    pub fn from_pkcs1_der(der_bytes: &[u8]) -> Result<Self> {
        let mut outer = Reader::new("RSAPublicKey", der_bytes);
        let mut seq = outer.sequence("RSAPublicKey")?;
        outer.finish("RSAPublicKey")?;
        let n = seq.unsigned_integer("modulus")?;
        let e = seq.unsigned_integer("publicExponent")?;
        seq.finish("publicExponent")?;
        PublicKey::rsa(n, e)
    }

    /// Encodes the key as a DER `SubjectPublicKeyInfo`.
    pub fn to_spki_der(&self) -> Vec<u8> {
        let mut alg = Vec::new();
        let mut key = vec![0u8]; // unused-bits byte of the BIT STRING
        match self {
            PublicKey::Ec { curve, x, y } => {
                der::push_tlv(&mut alg, der::TAG_OID, OID_EC);
                der::push_tlv(&mut alg, der::TAG_OID, curve.oid());
                key.push(4);
                key.extend_from_slice(x);
                key.extend_from_slice(y);
            }
            PublicKey::Rsa { n, e } => {
                der::push_tlv(&mut alg, der::TAG_OID, OID_RSA);
                der::push_tlv(&mut alg, der::TAG_NULL, &[]);
                let mut body = Vec::new();
                der::push_unsigned_integer(&mut body, n);
                der::push_unsigned_integer(&mut body, e);
                der::push_tlv(&mut key, der::TAG_SEQUENCE, &body);
            }
            PublicKey::Ed25519(x) => {
                der::push_tlv(&mut alg, der::TAG_OID, OID_ED25519);
                key.extend_from_slice(x);
            }
        }
        let mut body = Vec::new();
        der::push_tlv(&mut body, der::TAG_SEQUENCE, &alg);
        der::push_tlv(&mut body, der::TAG_BIT_STRING, &key);
        let mut out = Vec::new();
        der::push_tlv(&mut out, der::TAG_SEQUENCE, &body);
        out
    }

    /// Encodes the key as a PEM `PUBLIC KEY` block (what `openssl pkey -pubout` prints).
    pub fn to_spki_pem(&self) -> String {
        crate::pem::encode("PUBLIC KEY", &self.to_spki_der())
    }

    /// The uncompressed SEC 1 point (`04 || x || y`) of an EC key.
    pub fn ec_point(&self) -> Option<Vec<u8>> {
        match self {
            PublicKey::Ec { x, y, .. } => {
                let mut p = Vec::with_capacity(1 + x.len() + y.len());
                p.push(4);
                p.extend_from_slice(x);
                p.extend_from_slice(y);
                Some(p)
            }
            _ => None,
        }
    }
}

fn bit_len(n: &[u8]) -> usize {
    let n = der::strip_leading_zeros(n);
    match n.first() {
        None => 0,
        Some(b) => n.len() * 8 - b.leading_zeros() as usize,
    }
}

/// Dotted form of an OID's contents, for error messages.
pub(crate) fn oid_to_string(oid: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut acc: u64 = 0;
    for (i, b) in oid.iter().enumerate() {
        acc = (acc << 7) | u64::from(b & 0x7f);
        if b & 0x80 == 0 {
            if parts.is_empty() {
                let (a, b) = if acc < 80 {
                    (acc / 40, acc % 40)
                } else {
                    (2, acc - 80)
                };
                parts.push(a.to_string());
                parts.push(b.to_string());
            } else {
                parts.push(acc.to_string());
            }
            acc = 0;
        } else if i == oid.len() - 1 || acc > (u64::MAX >> 7) {
            return format!("(malformed OID {oid:02x?})");
        }
    }
    parts.join(".")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spki_round_trips_for_each_kind() {
        let ec = PublicKey::ec(Curve::P256, &[1; 32], &[2; 32]).unwrap();
        let rsa = PublicKey::rsa(&[0xc5; 256], &[1, 0, 1]).unwrap();
        let ed = PublicKey::ed25519(&[7; 32]).unwrap();
        for k in [ec, rsa, ed] {
            assert_eq!(PublicKey::from_spki_der(&k.to_spki_der()).unwrap(), k);
        }
    }

    #[test]
    fn rsa_null_parameters_must_be_empty() {
        // The SPKI of an RSA key, rebuilt with NULL parameters that carry a byte (05 01 00).
        let rsa = PublicKey::rsa(&[0xc5; 256], &[1, 0, 1]).unwrap();
        let PublicKey::Rsa { n, e } = &rsa else {
            unreachable!()
        };
        let mut alg = Vec::new();
        der::push_tlv(&mut alg, der::TAG_OID, OID_RSA);
        der::push_tlv(&mut alg, der::TAG_NULL, &[0]);
        let mut key = vec![0u8];
        let mut body = Vec::new();
        der::push_unsigned_integer(&mut body, n);
        der::push_unsigned_integer(&mut body, e);
        der::push_tlv(&mut key, der::TAG_SEQUENCE, &body);
        let mut spki_body = Vec::new();
        der::push_tlv(&mut spki_body, der::TAG_SEQUENCE, &alg);
        der::push_tlv(&mut spki_body, der::TAG_BIT_STRING, &key);
        let mut spki = Vec::new();
        der::push_tlv(&mut spki, der::TAG_SEQUENCE, &spki_body);
        let e = PublicKey::from_spki_der(&spki).unwrap_err().to_string();
        assert!(e.contains("NULL parameters with content"), "{e}");
    }

    #[test]
    fn small_rsa_is_refused() {
        let e = PublicKey::rsa(&[0xc5; 128], &[1, 0, 1])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("1024 bits") && e.contains("at least 2048"),
            "{e}"
        );
    }

    #[test]
    fn alg_override_must_fit_the_key() {
        let ec = PublicKey::ec(Curve::P256, &[1; 32], &[2; 32]).unwrap();
        assert_eq!(ec.resolve_algorithm(None).unwrap(), Algorithm::ES256);
        let e = ec
            .resolve_algorithm(Some(Algorithm::ES384))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ES384") && e.contains("P-256") && e.contains("ES256"),
            "{e}"
        );
        let rsa = PublicKey::rsa(&[0xc5; 256], &[1, 0, 1]).unwrap();
        assert_eq!(rsa.resolve_algorithm(None).unwrap(), Algorithm::PS256);
        assert_eq!(
            rsa.resolve_algorithm(Some(Algorithm::RS512)).unwrap(),
            Algorithm::RS512
        );
    }

    #[test]
    fn unknown_curve_oid_is_named() {
        assert_eq!(
            oid_to_string(&[0x2b, 0x81, 0x04, 0x00, 0x21]),
            "1.3.132.0.33"
        );
    }
}
