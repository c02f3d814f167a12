//! Server text inside Key Vault errors reaches logs and terminals escaped (issue 12, item 6): a
//! key id, key type or curve with CR/LF and ANSI escapes cannot forge or recolour a line in a
//! caller's log. The whole space of answers is in the `cloud_responses` fuzz target; these are
//! the cases written out.

use pkjwt_azure_kv::fuzzing::{key_bundle, sign_answer};
use pkjwt_core::{Algorithm, KeyUri, PublicKey};

const VAULT: &str = "https://fuzz.vault.azure.net";
const KID: &str = "https://fuzz.vault.azure.net/keys/k/0123456789abcdef0123456789abcdef";
const FORGED: &str = "x\r\n\u{1b}[32m✓ signed\u{202e}";

fn assert_escaped(e: &str) {
    assert!(
        !e.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "raw control character in {e:?}"
    );
    assert!(e.contains("\\u{1b}[32m"), "{e}");
}

#[test]
fn key_ids_types_and_curves_from_the_answer_are_escaped() {
    let KeyUri::AzureKv(uri) = KeyUri::parse(&format!("azurekv:{VAULT}/keys/k")).unwrap() else {
        panic!()
    };
    for (key, want) in [
        (
            serde_json::json!({ "kid": format!("https://other.vault.azure.net/{FORGED}"), "kty": "EC" }),
            "is not a version of",
        ),
        (
            serde_json::json!({ "kid": KID, "kty": format!("oct{FORGED}") }),
            "its kty is",
        ),
        (
            serde_json::json!({ "kid": KID, "kty": "EC", "crv": format!("P-999{FORGED}") }),
            "is not one pkjwt signs with",
        ),
    ] {
        let body = serde_json::json!({ "key": key }).to_string();
        let e = key_bundle(body.as_bytes(), &uri).unwrap_err();
        assert!(e.contains(want), "{e}");
        assert_escaped(&e);
    }
    let rsa = PublicKey::rsa(&[0xc3; 256], &[1, 0, 1]).unwrap();
    let body = serde_json::json!({ "kid": format!("{KID}{FORGED}"), "value": "" }).to_string();
    let e = sign_answer(body.as_bytes(), KID, &rsa, Algorithm::RS256).unwrap_err();
    assert!(e.contains("signed with"), "{e}");
    assert_escaped(&e);
}
