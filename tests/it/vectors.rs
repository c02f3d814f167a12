//! Published test vectors (provenance in `tests/vectors/README.md`):
//! RFC 7515 A.3 (ES256) and A.4 (ES512), RFC 7638 §3.1 (thumbprint), RFC 8037 A.1–A.5
//! (Ed25519 key, thumbprint, and a deterministic signature).

#![allow(clippy::unwrap_used)]

use pkjwt_conformance::verify_raw;
use pkjwt_core::{
    Algorithm, Curve, Jwk, PublicKey, Signer, b64, ecdsa_der_to_fixed, ecdsa_fixed_to_der,
};
use pkjwt_file::FileSigner;

const A3_JWK: &str = r#"{"kty":"EC","crv":"P-256",
 "x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU",
 "y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0",
 "d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#;
const A3_INPUT: &str = "eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ";
const A3_SIG: &str =
    "DtEhU3ljbEg8L38VWAfUAqOyKAM6-Xx-F4GawxaepmXFCgfTjDxw5djxLa8ISlSApmWQxfKTUJqPP3-Kg6NU1Q";

const A4_JWK: &str = r#"{"kty":"EC","crv":"P-521",
 "x":"AekpBQ8ST8a8VcfVOTNl353vSrDCLLJXmPk06wTjxrrjcBpXp5EOnYG_NjFZ6OvLFV1jSfS9tsz4qUxcWceqwQGk",
 "y":"ADSmRA43Z1DSNx_RvcLI87cdL07l6jQyyBXMoxVg_l2Th-x3S1WDhjDly79ajL4Kkd0AZMaZmh9ubmf63e3kyMj2",
 "d":"AY5pb7A0UFiB3RELSD64fTLOSV_jazdF7fLYyuTw8lOfRhWg6Y6rUrPAxerEzgdRhajnu0ferB0d53vM9mE15j2C"}"#;
const A4_INPUT: &str = "eyJhbGciOiJFUzUxMiJ9.UGF5bG9hZA";
const A4_SIG: &str = "AdwMgeerwtHoh-l192l60hp9wAHZFVJbLfD_UxMi70cwnZOYaRI1bKPWROc-mZZqwqT2SI-KGDKB34XO0aw_7XdtAG8GaSwFKdCAPZgoXD2YBJZCPEX3xKpRwcdOO8KpEHwJjyqOgzDO7iKvU8vcnwNrmxYbSW9ERBXukOXolLzeO_Jn";

fn public_of(private_jwk: &str) -> PublicKey {
    let mut v: serde_json::Value = serde_json::from_str(private_jwk).unwrap();
    v.as_object_mut().unwrap().remove("d");
    Jwk::from_json(&v.to_string())
        .unwrap()
        .to_public_key()
        .unwrap()
}

/// The RFC's signature verifies with aws-lc-rs (the library the verifier side uses) after our
/// fixed → DER → fixed round trip, and our signer, loaded from the RFC's private JWK, produces
/// signatures the independent verifier accepts.
async fn check_ecdsa_vector(jwk: &str, input: &str, sig_b64: &str, alg: Algorithm, curve: Curve) {
    let public = public_of(jwk);
    let sig = b64::decode("sig", sig_b64).unwrap();
    assert_eq!(sig.len(), 2 * curve.field_len());
    // The RFC signature itself verifies with the independent verifier.
    verify_raw(alg, &public, input.as_bytes(), &sig).unwrap();
    // Our converter round-trips it exactly.
    let der = ecdsa_fixed_to_der(&sig, curve).unwrap();
    assert_eq!(ecdsa_der_to_fixed(&der, curve).unwrap(), sig);
    // aws-lc-rs verifies the DER form over the same input.
    let lc_alg: &aws_lc_rs::signature::EcdsaVerificationAlgorithm = match curve {
        Curve::P256 => &aws_lc_rs::signature::ECDSA_P256_SHA256_ASN1,
        Curve::P521 => &aws_lc_rs::signature::ECDSA_P521_SHA512_ASN1,
        _ => unreachable!(),
    };
    aws_lc_rs::signature::UnparsedPublicKey::new(lc_alg, public.ec_point().unwrap())
        .verify(input.as_bytes(), &der)
        .unwrap();
    // Our signer from the RFC's private key: same public key, and its signatures verify.
    let signer = FileSigner::from_bytes(jwk.as_bytes(), None, None).unwrap();
    assert_eq!(signer.public_key(), &public);
    assert_eq!(signer.algorithm(), alg);
    let ours = signer.sign(input.as_bytes()).await.unwrap();
    let fixed = pkjwt_core::jws::jws_signature(alg, &public, &ours).unwrap();
    verify_raw(alg, &public, input.as_bytes(), &fixed).unwrap();
}

#[tokio::test]
async fn rfc7515_a3_es256() {
    check_ecdsa_vector(A3_JWK, A3_INPUT, A3_SIG, Algorithm::ES256, Curve::P256).await;
}

#[tokio::test]
async fn rfc7515_a4_es512() {
    check_ecdsa_vector(A4_JWK, A4_INPUT, A4_SIG, Algorithm::ES512, Curve::P521).await;
}

#[test]
fn rfc7638_thumbprint() {
    let jwk = Jwk::from_json(
        r#"{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}"#,
    )
    .unwrap();
    let key = jwk.to_public_key().unwrap();
    assert_eq!(
        pkjwt_core::thumbprint(&key),
        "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs"
    );
}

const RFC8037_D: &str = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
const RFC8037_X: &str = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";

#[tokio::test]
async fn rfc8037_ed25519() {
    let private = format!(r#"{{"kty":"OKP","crv":"Ed25519","d":"{RFC8037_D}","x":"{RFC8037_X}"}}"#);
    let signer = FileSigner::from_bytes(private.as_bytes(), None, None).unwrap();
    // A.2: the public key derived from d equals x.
    let PublicKey::Ed25519(x) = signer.public_key() else {
        panic!("not Ed25519")
    };
    assert_eq!(b64::encode(x), RFC8037_X);
    assert_eq!(signer.algorithm(), Algorithm::EdDSA);
    // A.3: thumbprint.
    assert_eq!(
        pkjwt_core::thumbprint(signer.public_key()),
        "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
    );
    // A.4: Ed25519 is deterministic, so our JWS must be the RFC's byte for byte.
    let input = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc";
    let sig = signer.sign(input.as_bytes()).await.unwrap();
    assert_eq!(
        b64::encode(sig.as_bytes()),
        "hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg"
    );
    // A.5: it verifies independently.
    verify_raw(
        Algorithm::EdDSA,
        signer.public_key(),
        input.as_bytes(),
        sig.as_bytes(),
    )
    .unwrap();
}
