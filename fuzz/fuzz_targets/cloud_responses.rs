//! Answers of the cloud key services, as the Google Cloud KMS and Azure Key Vault backends read
//! them (`pkjwt_gcp_kms::fuzzing`, `pkjwt_azure_kv::fuzzing`: the same checks the signers run on
//! each HTTP answer, without a server). The first byte picks the parser, the rest is the body.
//!
//! Invariants held, besides "never panics":
//! - no error text carries a raw control character, bidirectional override or line separator
//!   from the answer (issue 12, item 6: a library caller logs `Display`);
//! - an accepted `getPublicKey` answer gives a key that signs the JWS algorithm it maps to, and
//!   the one requested when one was;
//! - an accepted signature has the algorithm's form: RSA exactly as long as the modulus,
//!   Ed25519 64 bytes, ECDSA DER that converts to the curve's `r || s` (what the JWS assembler
//!   will do with it);
//! - an accepted Key Vault key id is `VAULT/keys/NAME/` plus a 32-hex-digit version;
//! - an accepted certificate holds the key; an accepted challenge scope ends in `/.default`.
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use pkjwt_core::uri::AzureKvUri;
use pkjwt_core::{Algorithm, Curve, KeyUri, PublicKey, ecdsa_der_to_fixed};

const GCP_NAME: &str =
    "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1";
const VAULT: &str = "https://fuzz.vault.azure.net";
const KEY_ID: &str = "https://fuzz.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef";

struct Keys {
    p256: PublicKey,
    rsa: PublicKey,
    uri: AzureKvUri,
}

fn keys() -> &'static Keys {
    static K: OnceLock<Keys> = OnceLock::new();
    K.get_or_init(|| {
        // The P-256 base point, and a 2048-bit odd modulus: public keys only, nothing signs.
        let x = hex("6b17d1f2e12c4247f8bce6e563a440f277037d812deb33a0f4a13945d898c296");
        let y = hex("4fe342e2fe1a7f9b8ee7eb4a7c0f9e162bce33576b315ececbb6406837bf51f5");
        let KeyUri::AzureKv(uri) = KeyUri::parse(&format!("azurekv:{VAULT}/keys/k")).expect("uri")
        else {
            panic!("not an azurekv URI")
        };
        Keys {
            p256: PublicKey::ec(Curve::P256, &x, &y).expect("P-256 base point"),
            rsa: PublicKey::rsa(&[0xc3; 256], &[1, 0, 1]).expect("2048-bit modulus"),
            uri,
        }
    })
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

fn terminal_safe(what: &str, text: &str) {
    if let Some(c) = text.chars().find(|&c| unsafe_char(c)) {
        panic!("{what}: raw {c:?} in {text:?}");
    }
}

fn signature_form(key: &PublicKey, alg: Algorithm, sig: &[u8]) {
    match (key, alg.curve()) {
        (PublicKey::Rsa { .. }, _) => assert_eq!(sig.len(), key.bits().div_ceil(8), "{alg}"),
        (PublicKey::Ed25519(_), _) => assert_eq!(sig.len(), 64),
        (_, Some(curve)) => {
            // The assembler's strict conversion decides; an accepted answer may still be
            // refused there, but never with a panic, and an accepted one has the right width.
            if let Ok(fixed) = ecdsa_der_to_fixed(sig, curve) {
                assert_eq!(fixed.len(), 2 * curve.field_len());
            }
        }
        _ => panic!("{alg} for {}", key.describe()),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, body)) = data.split_first() else {
        return;
    };
    let k = keys();
    match mode % 9 {
        0 | 1 => {
            let requested = (mode % 9 == 1).then_some(Algorithm::ES256);
            match pkjwt_gcp_kms::fuzzing::public_key_answer(body, GCP_NAME, requested) {
                Ok((key, alg)) => {
                    assert!(key.supports(alg), "{alg} for {}", key.describe());
                    if let Some(r) = requested {
                        assert_eq!(alg, r);
                    }
                }
                Err(e) => terminal_safe("getPublicKey", &e),
            }
        }
        2 | 3 => {
            let (key, alg) = if mode % 9 == 2 {
                (&k.p256, Algorithm::ES256)
            } else {
                (&k.rsa, Algorithm::PS256)
            };
            match pkjwt_gcp_kms::fuzzing::sign_answer(body, GCP_NAME, key, alg) {
                Ok(sig) => signature_form(key, alg, &sig),
                Err(e) => terminal_safe("asymmetricSign", &e),
            }
        }
        4 => match pkjwt_azure_kv::fuzzing::key_bundle(body, &k.uri) {
            Ok((key_id, _key)) => {
                let version = key_id
                    .strip_prefix(&format!("{VAULT}/keys/k/"))
                    .unwrap_or_else(|| panic!("key id {key_id:?}"));
                assert!(
                    version.len() == 32 && version.bytes().all(|b| b.is_ascii_hexdigit()),
                    "{key_id:?}"
                );
            }
            Err(e) => terminal_safe("Get Key", &e),
        },
        5 | 6 => {
            let (key, alg) = if mode % 9 == 5 {
                (&k.p256, Algorithm::ES256)
            } else {
                (&k.rsa, Algorithm::RS256)
            };
            match pkjwt_azure_kv::fuzzing::sign_answer(body, KEY_ID, key, alg) {
                Ok(sig) => {
                    signature_form(key, alg, &sig);
                    if let Some(curve) = alg.curve() {
                        // Converted from r || s here: it must convert back.
                        assert!(ecdsa_der_to_fixed(&sig, curve).is_ok());
                    }
                }
                Err(e) => terminal_safe("Sign", &e),
            }
        }
        7 => match pkjwt_azure_kv::fuzzing::certificate_answer(body, KEY_ID, &k.p256) {
            Ok(chain) => {
                assert!(pkjwt_x509::check_matches(&chain[0], &k.p256).is_ok());
            }
            Err(e) => terminal_safe("Get Certificate", &e),
        },
        _ => {
            let text = String::from_utf8_lossy(body);
            match pkjwt_azure_kv::fuzzing::challenge(&text, VAULT) {
                Ok(scope) => assert!(scope.ends_with("/.default"), "{scope:?}"),
                Err(e) => terminal_safe("challenge", &e),
            }
            let (code, message) = pkjwt_azure_kv::fuzzing::error_fields(&text);
            terminal_safe("error code", &code);
            terminal_safe("error message", &message);
            terminal_safe("status", &pkjwt_gcp_kms::fuzzing::error_message(body));
        }
    }
});
