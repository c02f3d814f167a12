//! Certificate reading in pkjwt-x509: `read_certificates` (PEM with any number of blocks, or one
//! DER certificate), `certificate_public_key`, `check_matches` and the `x5c` / `x5t#S256` / `x5t`
//! encodings, on untrusted certificate files.
//!
//! Invariants held, besides "never panics":
//! - `read_certificates` returns at least one certificate, and for DER input exactly the input;
//! - the certificates it returns print as PEM (one block each, concatenated) that reads back to
//!   the same list;
//! - `x5c_entry` is standard base64 of the DER, `x5t#S256` / `x5t` are base64url of 32 / 20
//!   bytes, and the PEM helper wraps the same bytes;
//! - a certificate whose key parses matches that key (`check_matches` Ok), refuses a different
//!   key with `KeyMismatch`, and its key round-trips through SPKI DER;
//! - `certificate_public_key` on any input (not just what `read_certificates` accepts) never
//!   panics, and every error has a message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkjwt_core::{PublicKey, b64, pem as core_pem};
use pkjwt_x509::{
    X509Error, certificate_public_key, check_matches, pem, read_certificates, x5c_entry, x5t_s256,
    x5t_sha1,
};

/// Two keys no certificate can carry both of: whichever the certificate has, one differs.
fn other_keys() -> [PublicKey; 2] {
    [
        PublicKey::ed25519(&[0x58; 32]).expect("Ed25519 key"),
        PublicKey::ed25519(&[0x66; 32]).expect("Ed25519 key"),
    ]
}

fn check_certificate(cert: &[u8]) {
    assert_eq!(
        b64::decode_std("x5c", &x5c_entry(cert)).expect("x5c entry decodes"),
        cert
    );
    assert_eq!(
        b64::decode("x5t#S256", &x5t_s256(cert))
            .expect("b64url")
            .len(),
        32
    );
    assert_eq!(
        b64::decode("x5t", &x5t_sha1(cert)).expect("b64url").len(),
        20
    );
    let text = pem("CERTIFICATE", cert);
    let blocks = core_pem::decode_all(&text).expect("own PEM decodes");
    assert_eq!(blocks.len(), 1);
    assert_eq!(blocks[0].der, cert);

    match certificate_public_key(cert) {
        Ok(key) => {
            check_matches(cert, &key).expect("a certificate matches its own key");
            let other = other_keys()
                .into_iter()
                .find(|k| *k != key)
                .expect("one of two distinct keys differs");
            match check_matches(cert, &other) {
                Err(X509Error::KeyMismatch { .. }) => {}
                r => panic!("check_matches with a different key gave {r:?}"),
            }
            assert_eq!(
                PublicKey::from_spki_der(&key.to_spki_der()).expect("SPKI round trip"),
                key
            );
        }
        Err(e) => {
            assert!(!e.to_string().is_empty());
            // Whatever refuses to give the key also refuses the match check.
            assert!(check_matches(cert, &other_keys()[0]).is_err());
        }
    }
}

fuzz_target!(|data: &[u8]| {
    match read_certificates(data) {
        Ok(certs) => {
            assert!(!certs.is_empty(), "Ok with no certificate");
            if data.first() == Some(&0x30) {
                assert_eq!(certs, vec![data.to_vec()], "DER input is returned as is");
            }
            for c in &certs {
                check_certificate(c);
            }
            let text: String = certs.iter().map(|c| pem("CERTIFICATE", c)).collect();
            assert_eq!(
                read_certificates(text.as_bytes()).expect("printed chain reads back"),
                certs
            );
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    match certificate_public_key(data) {
        Ok(key) => {
            check_matches(data, &key).expect("a certificate matches its own key");
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
});
