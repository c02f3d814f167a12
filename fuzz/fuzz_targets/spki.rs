//! Public-key parsing from DER `SubjectPublicKeyInfo` (what KMS `GetPublicKey`, certificates and
//! `openssl pkey -pubout -outform DER` hand over) and DER `RSAPublicKey` (PKCS#1).
//!
//! Invariants held, besides "never panics":
//! - the reader is strict DER, so an accepted input is exactly what the encoder writes for that
//!   key; the one other accepted form is RSA with the AlgorithmIdentifier's NULL parameters left
//!   out (RFC 4055 §1.2 says they MUST be present, but some encoders omit them);
//! - an accepted key re-encodes (SPKI DER, SPKI PEM, JWK JSON) to forms that parse back to the
//!   same key, with the same RFC 7638 thumbprint;
//! - the key's algorithm helpers agree with each other (`default_algorithm` is one of
//!   `algorithms`, each of which `supports` and `resolve_algorithm` accept);
//! - every error has a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkjwt_core::{Jwk, PublicKey, pem, thumbprint};

/// OID 1.2.840.113549.1.1.1 (rsaEncryption), as DER contents.
const OID_RSA: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

fn tlv(tag: u8, body: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
    let len = body.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | (bytes.len() - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }
    out.extend_from_slice(body);
    out
}

fn uint(magnitude: &[u8]) -> Vec<u8> {
    let m = &magnitude[magnitude.iter().take_while(|b| **b == 0).count()..];
    let mut v = Vec::with_capacity(m.len() + 1);
    if m.first().is_none_or(|b| b & 0x80 != 0) {
        v.push(0);
    }
    v.extend_from_slice(m);
    tlv(0x02, &v)
}

/// `RSAPublicKey` DER of `n`, `e`, written independently of pkjwt-core.
fn pkcs1(n: &[u8], e: &[u8]) -> Vec<u8> {
    tlv(0x30, &[uint(n), uint(e)].concat())
}

/// The SPKI of an RSA key with the AlgorithmIdentifier's parameters absent.
fn rsa_spki_without_null(n: &[u8], e: &[u8]) -> Vec<u8> {
    let alg = tlv(0x30, &tlv(0x06, OID_RSA));
    let bits = tlv(0x03, &[&[0u8][..], &pkcs1(n, e)].concat());
    tlv(0x30, &[alg, bits].concat())
}

fn check_key(key: &PublicKey) {
    let der = key.to_spki_der();
    assert_eq!(
        PublicKey::from_spki_der(&der).expect("the SPKI encoding of a parsed key parses"),
        *key
    );

    let pem_text = key.to_spki_pem();
    let blocks = pem::decode_all(&pem_text).expect("the SPKI PEM of a parsed key decodes");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].label, "PUBLIC KEY");
    assert_eq!(blocks[0].der, der);

    let jwk = Jwk::from_public_key(key);
    let parsed = Jwk::from_json(&jwk.to_json()).expect("the JWK of a parsed key parses");
    assert_eq!(parsed.to_public_key().expect("JWK key"), *key);
    assert_eq!(
        thumbprint(&parsed.to_public_key().expect("key")),
        thumbprint(key)
    );

    let algs = key.algorithms();
    assert!(algs.contains(&key.default_algorithm()), "{key:?}: {algs:?}");
    for a in &algs {
        assert!(key.supports(*a));
        assert_eq!(key.resolve_algorithm(Some(*a)).expect("supported alg"), *a);
    }
    assert_eq!(
        key.resolve_algorithm(None).expect("default"),
        key.default_algorithm()
    );
    assert!(!key.describe().is_empty());
    assert!(key.bits() >= 256);
    match key {
        PublicKey::Ec { curve, x, y } => {
            assert_eq!(x.len(), curve.field_len());
            assert_eq!(y.len(), curve.field_len());
            let point = key.ec_point().expect("EC point");
            assert_eq!(
                PublicKey::ec_from_point(*curve, &point).expect("point"),
                *key
            );
        }
        _ => assert!(key.ec_point().is_none()),
    }
}

fuzz_target!(|data: &[u8]| {
    match PublicKey::from_spki_der(data) {
        Ok(key) => {
            check_key(&key);
            let der = key.to_spki_der();
            if der != data {
                let PublicKey::Rsa { n, e } = &key else {
                    panic!("accepted SPKI is not the DER encoding of {key:?}: {data:02x?}");
                };
                assert_eq!(
                    rsa_spki_without_null(n, e),
                    data,
                    "accepted RSA SPKI is neither the DER encoding nor the one without NULL parameters"
                );
            }
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }

    match PublicKey::from_pkcs1_der(data) {
        Ok(key) => {
            check_key(&key);
            let PublicKey::Rsa { n, e } = &key else {
                panic!("from_pkcs1_der returned {key:?}, not an RSA key");
            };
            assert_eq!(pkcs1(n, e), data, "accepted RSAPublicKey is not DER");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
