//! Server text inside Cloud KMS errors reaches logs and terminals escaped (issue 12, item 6):
//! an answer naming another version, or an algorithm, with CR/LF and ANSI escapes cannot forge
//! or recolour a line in a caller's log. The whole space of answers is in the
//! `cloud_responses` fuzz target; these are the cases written out.

use pkjwt_core::{Algorithm, Curve, PublicKey};
use pkjwt_gcp_kms::fuzzing::{public_key_answer, sign_answer};

const NAME: &str = "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1";
const FORGED: &str = "x\r\n\u{1b}[32m✓ signed\u{202e}";

fn assert_escaped(e: &str) {
    assert!(
        !e.chars().any(|c| c.is_control() || c == '\u{202e}'),
        "raw control character in {e:?}"
    );
    assert!(e.contains("\\u{1b}[32m"), "{e}");
}

#[test]
fn names_and_algorithms_from_the_answer_are_escaped() {
    let p256 = PublicKey::ec(
        Curve::P256,
        &[
            0x6b, 0x17, 0xd1, 0xf2, 0xe1, 0x2c, 0x42, 0x47, 0xf8, 0xbc, 0xe6, 0xe5, 0x63, 0xa4,
            0x40, 0xf2, 0x77, 0x03, 0x7d, 0x81, 0x2d, 0xeb, 0x33, 0xa0, 0xf4, 0xa1, 0x39, 0x45,
            0xd8, 0x98, 0xc2, 0x96,
        ],
        &[
            0x4f, 0xe3, 0x42, 0xe2, 0xfe, 0x1a, 0x7f, 0x9b, 0x8e, 0xe7, 0xeb, 0x4a, 0x7c, 0x0f,
            0x9e, 0x16, 0x2b, 0xce, 0x33, 0x57, 0x6b, 0x31, 0x5e, 0xce, 0xcb, 0xb6, 0x40, 0x68,
            0x37, 0xbf, 0x51, 0xf5,
        ],
    )
    .unwrap();
    let body = serde_json::json!({
        "name": format!("{NAME}{FORGED}"),
        "signature": "",
        "signatureCrc32c": "0",
        "verifiedDigestCrc32c": true,
    });
    let e = sign_answer(body.to_string().as_bytes(), NAME, &p256, Algorithm::ES256).unwrap_err();
    assert!(e.contains("it was signed by"), "{e}");
    assert_escaped(&e);

    // An algorithm name pkjwt does not know: refused naming it, escaped.
    let pem = "-----BEGIN PUBLIC KEY-----\n-----END PUBLIC KEY-----\n";
    let body = serde_json::json!({
        "name": NAME,
        "pem": pem,
        "pemCrc32c": pkjwt_gcp_kms::crc32c(pem.as_bytes()).to_string(),
        "algorithm": format!("EC_SIGN_NEW{FORGED}"),
    });
    let e = public_key_answer(body.to_string().as_bytes(), NAME, None).unwrap_err();
    assert!(e.contains("which has no JWS algorithm"), "{e}");
    assert_escaped(&e);
}
