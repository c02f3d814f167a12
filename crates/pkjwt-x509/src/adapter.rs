//! The bridge between `x509-cert`'s builder and pkjwt's async `Signer`.
//!
//! The builder wants a signer that is `Keypair + DynSignatureAlgorithmIdentifier`; it only asks
//! it for the public key and the signature AlgorithmIdentifier when it builds the to-be-signed
//! bytes. The signature itself is made by our async `Signer` between `finalize()` and
//! `assemble()`, so no async code is ever blocked on.

use der::Decode;
use der::asn1::Any;
use pkjwt_core::{Algorithm, PublicKey};
use spki::{
    AlgorithmIdentifierOwned, DynSignatureAlgorithmIdentifier, EncodePublicKey, ObjectIdentifier,
};

use crate::X509Error;

pub(crate) struct Adapter {
    alg_id: AlgorithmIdentifierOwned,
    spki_der: Vec<u8>,
}

#[derive(Clone)]
pub(crate) struct VerifyingKey(Vec<u8>);

impl EncodePublicKey for VerifyingKey {
    fn to_public_key_der(&self) -> spki::Result<der::Document> {
        der::Document::try_from(self.0.as_slice()).map_err(spki::Error::from)
    }
}

impl signature::Keypair for Adapter {
    type VerifyingKey = VerifyingKey;
    fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey(self.spki_der.clone())
    }
}

impl DynSignatureAlgorithmIdentifier for Adapter {
    fn signature_algorithm_identifier(&self) -> spki::Result<AlgorithmIdentifierOwned> {
        Ok(self.alg_id.clone())
    }
}

impl Adapter {
    pub(crate) fn new(key: &PublicKey, alg: Algorithm) -> Result<Self, X509Error> {
        key.resolve_algorithm(Some(alg)).map_err(X509Error::Key)?;
        Ok(Adapter {
            alg_id: signature_algorithm(alg)?,
            spki_der: key.to_spki_der(),
        })
    }
}

// Evaluated at compile time: a malformed literal fails the build, never a signature.
const ECDSA_WITH_SHA256: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.2");
const ECDSA_WITH_SHA384: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.3");
const ECDSA_WITH_SHA512: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.10045.4.3.4");
const SHA256_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.11");
const SHA384_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.12");
const SHA512_WITH_RSA: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.13");
const RSASSA_PSS: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.10");
const ED25519: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.3.101.112");

/// The X.509 signature AlgorithmIdentifier for a JWS algorithm (RFC 5758 ECDSA, RFC 4055 RSA
/// and PSS, RFC 8410 Ed25519).
fn signature_algorithm(alg: Algorithm) -> Result<AlgorithmIdentifierOwned, X509Error> {
    let null = || Some(Any::null());
    let (o, parameters) = match alg {
        // ECDSA: parameters absent (RFC 5758 §3.2). ES256K uses ecdsa-with-SHA256 too.
        Algorithm::ES256 | Algorithm::ES256K => (ECDSA_WITH_SHA256, None),
        Algorithm::ES384 => (ECDSA_WITH_SHA384, None),
        Algorithm::ES512 => (ECDSA_WITH_SHA512, None),
        // PKCS#1 v1.5: parameters NULL (RFC 4055 §5).
        Algorithm::RS256 => (SHA256_WITH_RSA, null()),
        Algorithm::RS384 => (SHA384_WITH_RSA, null()),
        Algorithm::RS512 => (SHA512_WITH_RSA, null()),
        Algorithm::PS256 => (RSASSA_PSS, Some(pss_params(1, 32)?)),
        Algorithm::PS384 => (RSASSA_PSS, Some(pss_params(2, 48)?)),
        Algorithm::PS512 => (RSASSA_PSS, Some(pss_params(3, 64)?)),
        // Ed25519: parameters absent (RFC 8410 §3).
        Algorithm::EdDSA => (ED25519, None),
        other => {
            return Err(X509Error::Build(format!(
                "no X.509 signature algorithm for {other}"
            )));
        }
    };
    Ok(AlgorithmIdentifierOwned { oid: o, parameters })
}

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    // Every structure here is far below 128 bytes.
    debug_assert!(body.len() < 0x80);
    out.push(body.len() as u8);
    out.extend_from_slice(body);
    out
}

/// RSASSA-PSS-params (RFC 4055 §3.1) with SHA-2 hash `n` (1 = SHA-256, 2 = SHA-384, 3 =
/// SHA-512), MGF1 with the same hash, and a salt as long as the hash, as RFC 7518 §3.5 requires.
fn pss_params(n: u8, salt: u8) -> Result<Any, X509Error> {
    // id-sha256/384/512: 2.16.840.1.101.3.4.2.{1,2,3}, with NULL parameters (RFC 4055 §2.1).
    let hash_oid = [0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, n];
    let hash_alg = tlv(0x30, &[tlv(0x06, &hash_oid), vec![0x05, 0x00]].concat());
    // id-mgf1: 1.2.840.113549.1.1.8
    let mgf1_oid = [0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x08];
    let mgf = tlv(0x30, &[tlv(0x06, &mgf1_oid), hash_alg.clone()].concat());
    let body = [
        tlv(0xa0, &hash_alg),
        tlv(0xa1, &mgf),
        tlv(0xa2, &tlv(0x02, &[salt])),
    ]
    .concat();
    Any::from_der(&tlv(0x30, &body)).map_err(|e| X509Error::Build(format!("PSS parameters: {e}")))
}
