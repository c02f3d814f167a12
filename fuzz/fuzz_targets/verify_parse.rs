//! Fuzzes the verifier's parsing and checking of untrusted tokens, and JWKS parsing.
//!
//! Invariants held: nothing panics; `verify` and `explain` agree on the first rejection (they
//! share one engine, and this keeps it that way); a token is never accepted, since the fuzzer
//! cannot forge a signature for the fixed keys; `KeySet::from_json` never panics.
#![no_main]

use std::sync::{Arc, OnceLock};

use libfuzzer_sys::fuzz_target;
use pkjwt_core::FixedClock;
use pkjwt_verify::{AssertionVerifier, KeySet, VerifyPolicy};

const NOW: i64 = 1_800_000_000;

/// Public keys only (the P-256 and Ed25519 base points, an arbitrary 2048-bit odd modulus):
/// nobody holds private keys for them, so no fuzz input can carry a valid signature.
const JWKS: &str = r#"{"keys":[
 {"kty":"EC","crv":"P-256","kid":"ec","x":"axfR8uEsQkf4vOblY6RA8ncDfYEt6zOg9KE5RdiYwpY","y":"T-NC4v4af5uO5-tKfA-eFivOM1drMV7Oy7ZAaDe_UfU"},
 {"kty":"OKP","crv":"Ed25519","kid":"ed","x":"WGZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmZmY"},
 {"kty":"RSA","kid":"rsa","e":"AQAB","n":"xcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxcXFxQ"}
]}"#;

struct Fixture {
    rt: tokio::runtime::Runtime,
    verifier: AssertionVerifier,
    keys: Arc<KeySet>,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| Fixture {
        rt: tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime"),
        verifier: AssertionVerifier::new("https://as.example.com", VerifyPolicy::default())
            .expect("default policy is valid")
            .with_clock(Arc::new(FixedClock::new(NOW))),
        keys: Arc::new(KeySet::from_json(JWKS).expect("fixed JWKS is valid")),
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let report = f.verifier.explain(text, "client-1", &f.keys);
    let _ = report.to_string();
    let verified = f.rt.block_on(f.verifier.verify(text, "client-1", &f.keys));
    match verified {
        Ok(ok) => panic!("accepted a token no one could have signed: {ok:?}"),
        Err(e) => {
            assert!(!report.accepted());
            assert_eq!(report.rejection(), Some(&e), "verify and explain disagree");
            let _ = e.to_string();
        }
    }
    let _ = KeySet::from_json(text);
});
