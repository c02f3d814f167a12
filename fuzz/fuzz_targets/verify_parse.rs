//! Fuzzes the verifier's parsing and checking of untrusted tokens, and JWKS parsing.
//!
//! Invariants held: nothing panics; `verify` and `explain` agree on the first rejection (they
//! share one engine, and this keeps it that way); a token is never accepted, since the fuzzer
//! cannot forge a signature for the fixed keys; `KeySet::from_json` never panics; the report
//! (one line per check) and the rejection carry no raw control character, bidirectional
//! override or line separator from the token, whatever its `kid`, `typ`, `alg` or claims hold
//! (issue 12, item 6: a forged "signature accepted" line).
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

fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let report = f.verifier.explain(text, "client-1", &f.keys);
    let shown = report.to_string();
    // Lines are the report's own; nothing inside a line may start another or restyle it.
    for line in shown.lines() {
        assert!(!line.chars().any(unsafe_char), "report line {line:?}");
    }
    let verified = f.rt.block_on(f.verifier.verify(text, "client-1", &f.keys));
    match verified {
        Ok(ok) => panic!("accepted a token no one could have signed: {ok:?}"),
        Err(e) => {
            assert!(!report.accepted());
            assert_eq!(report.rejection(), Some(&e), "verify and explain disagree");
            let text = e.to_string();
            assert!(!text.chars().any(unsafe_char), "rejection {text:?}");
        }
    }
    let _ = KeySet::from_json(text);
});
