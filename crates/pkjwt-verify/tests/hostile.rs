//! The hostile-input matrix: every case is refused with its own `Rejection` kind and a message
//! naming the header member or claim and the values. Plus the positive side: assertions from
//! pkjwt-core's `ClientAssertion` (over an aws-lc-rs test signer) and from an independent
//! library (`jsonwebtoken`, RustCrypto backend) verify, for every algorithm.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, FixedClock};
use pkjwt_verify::{AssertionVerifier, KeySet, TypPolicy, VerifyPolicy};
use serde_json::{Value, json};

struct Keys {
    a: TestSigner,
    b: TestSigner,
    p384: TestSigner,
    rsa: TestSigner,
    ed: TestSigner,
    set: Arc<KeySet>,
    jwks: pkjwt_core::JwkSet,
}

fn keys() -> Keys {
    let a = TestSigner::new(Algorithm::ES256);
    let b = TestSigner::new(Algorithm::ES256);
    let p384 = TestSigner::new(Algorithm::ES384);
    let rsa = TestSigner::new(Algorithm::PS256);
    let ed = TestSigner::new(Algorithm::EdDSA);
    // The RSA key is also registered a second time restricted to RS256 by its JWK `alg`.
    let mut rs_only = rsa.jwk("rsa-rs256");
    rs_only.alg = Some("RS256".into());
    let jwks = jwks(vec![
        a.jwk("a"),
        b.jwk("b"),
        p384.jwk("p384"),
        rsa.jwk("rsa"),
        rs_only,
        ed.jwk("ed"),
    ]);
    let set = keyset(&jwks);
    Keys {
        a,
        b,
        p384,
        rsa,
        ed,
        set,
        jwks,
    }
}

fn verifier(policy: VerifyPolicy) -> AssertionVerifier {
    AssertionVerifier::new(AS, policy)
        .unwrap()
        .with_clock(Arc::new(FixedClock::new(NOW)))
}

fn pol(f: impl FnOnce(&mut VerifyPolicy)) -> VerifyPolicy {
    let mut p = VerifyPolicy::default();
    f(&mut p);
    p
}

fn with(mut base: Value, k: &str, v: Value) -> Value {
    base[k] = v;
    base
}

fn without(mut base: Value, k: &str) -> Value {
    base.as_object_mut().unwrap().remove(k);
    base
}

/// Flips a bit in the last byte of the decoded signature and re-encodes it canonically.
fn tamper_signature(jwt: &str, f: impl FnOnce(&mut Vec<u8>)) -> String {
    let (input, s) = jwt.rsplit_once('.').unwrap();
    let mut sig = pkjwt_core::b64::decode("sig", s).unwrap();
    f(&mut sig);
    format!("{input}.{}", b64(sig))
}

struct Case {
    name: &'static str,
    token: String,
    kind: &'static str,
    mentions: Vec<&'static str>,
    policy: VerifyPolicy,
}

fn case(name: &'static str, token: String, kind: &'static str, mentions: &[&'static str]) -> Case {
    Case {
        name,
        token,
        kind,
        mentions: mentions.to_vec(),
        policy: VerifyPolicy::default(),
    }
}

fn hmac_with_public_key_as_secret(k: &Keys) -> String {
    // The classic key-confusion attack: HS256 keyed with the server's copy of the public key.
    let h = json!({"alg": "HS256", "kid": "a", "typ": "JWT"});
    let input = signing_input(&h.to_string(), &claims("hs").to_string());
    let secret = k.a.public_key_pem();
    let key = aws_lc_rs::hmac::Key::new(aws_lc_rs::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = aws_lc_rs::hmac::sign(&key, input.as_bytes());
    format!("{input}.{}", b64(tag.as_ref()))
}

trait Pem {
    fn public_key_pem(&self) -> String;
}
impl Pem for TestSigner {
    fn public_key_pem(&self) -> String {
        use pkjwt_core::Signer;
        self.public_key().to_spki_pem()
    }
}

fn matrix(k: &Keys) -> Vec<Case> {
    let h = |alg: &str, kid: &str| header(alg, kid);
    let ok = |c: Value| craft(&k.a, &h("ES256", "a"), &c);
    let good = ok(claims("good"));
    vec![
        case(
            "alg none",
            format!(
                "{}.",
                signing_input(r#"{"alg":"none","typ":"JWT"}"#, &claims("n").to_string())
            ),
            "alg_none",
            &["\"alg\"", "none"],
        ),
        case(
            "alg None (case variant)",
            format!(
                "{}.",
                signing_input(r#"{"alg":"None"}"#, &claims("n2").to_string())
            ),
            "alg_none",
            &["None"],
        ),
        case(
            "HS256 keyed with the public key",
            hmac_with_public_key_as_secret(k),
            "mac_algorithm",
            &["HS256", "MAC"],
        ),
        case(
            "unknown alg",
            craft_raw(
                &k.a,
                Algorithm::ES256,
                r#"{"alg":"ES999","kid":"a"}"#,
                &claims("u").to_string(),
            ),
            "unknown_algorithm",
            &["ES999"],
        ),
        case(
            "lower-case alg",
            craft_raw(
                &k.a,
                Algorithm::ES256,
                r#"{"alg":"es256","kid":"a"}"#,
                &claims("lc").to_string(),
            ),
            "unknown_algorithm",
            &["es256"],
        ),
        Case {
            policy: VerifyPolicy::fapi2(),
            ..case(
                "RS256 under the FAPI 2.0 allow-list",
                craft(&k.rsa, &h("RS256", "rsa"), &claims("fapi")),
                "algorithm_not_allowed",
                &["RS256", "ES256, PS256, EdDSA"],
            )
        },
        case(
            "alg/key mismatch: PS256 header on an EC key",
            craft_raw(
                &k.a,
                Algorithm::ES256,
                &h("PS256", "a").to_string(),
                &claims("m").to_string(),
            ),
            "algorithm_key_mismatch",
            &["PS256", "\"a\"", "EC P-256"],
        ),
        case(
            "wrong curve: ES384 signature under a P-256 kid",
            craft(&k.p384, &h("ES384", "a"), &claims("wc")),
            "algorithm_key_mismatch",
            &["ES384", "P-256"],
        ),
        case(
            "JWK alg restricts the key to RS256",
            craft(&k.rsa, &h("PS256", "rsa-rs256"), &claims("ra")),
            "algorithm_key_mismatch",
            &["PS256", "RS256"],
        ),
        case(
            "kid swap: signed by key a, header names key b",
            craft(&k.a, &h("ES256", "b"), &claims("swap")),
            "bad_signature",
            &["ES256", "\"b\""],
        ),
        case(
            "unknown kid",
            craft(&k.a, &h("ES256", "zz"), &claims("uk")),
            "unknown_kid",
            &["\"zz\"", "\"a\""],
        ),
        Case {
            policy: pol(|p| {
                p.require_kid = true;
            }),
            ..case(
                "no kid when the policy requires one",
                craft(&k.a, &json!({"alg": "ES256"}), &claims("nk")),
                "missing_kid",
                &["kid"],
            )
        },
        case(
            "DER signature in a JWS",
            {
                let input = signing_input(&h("ES256", "a").to_string(), &claims("der").to_string());
                let der = k.a.sign_bytes(Algorithm::ES256, input.as_bytes());
                format!("{input}.{}", b64(der))
            },
            "der_signature",
            &["DER", "64-byte r||s"],
        ),
        case(
            "truncated ES256 signature",
            tamper_signature(&good, |s| s.truncate(63)),
            "signature_length",
            &["63 bytes", "exactly 64"],
        ),
        case(
            "ES256 signature with a 33-byte r (naive DER conversion)",
            tamper_signature(&good, |s| s.insert(0, 0)),
            "signature_length",
            &["65 bytes"],
        ),
        case(
            "flipped signature bit",
            tamper_signature(&good, |s| {
                let n = s.len() - 1;
                s[n] ^= 1
            }),
            "bad_signature",
            &["does not verify", "\"a\""],
        ),
        case(
            "truncated RSA signature",
            tamper_signature(&craft(&k.rsa, &h("PS256", "rsa"), &claims("rt")), |s| {
                s.pop();
            }),
            "signature_length",
            &["255 bytes", "256"],
        ),
        case(
            "Ed25519 signature from another key",
            craft(
                &TestSigner::new(Algorithm::EdDSA),
                &h("EdDSA", "ed"),
                &claims("ed"),
            ),
            "bad_signature",
            &["EdDSA", "\"ed\""],
        ),
        case(
            "missing exp",
            ok(without(claims("e"), "exp")),
            "missing_claim",
            &["\"exp\""],
        ),
        case(
            "missing jti",
            ok(without(claims("j"), "jti")),
            "missing_claim",
            &["\"jti\""],
        ),
        case(
            "missing iss",
            ok(without(claims("i"), "iss")),
            "missing_claim",
            &["\"iss\""],
        ),
        case(
            "missing aud",
            ok(without(claims("a"), "aud")),
            "missing_claim",
            &["\"aud\""],
        ),
        case(
            "duplicate claim sub",
            craft_raw(
                &k.a,
                Algorithm::ES256,
                &h("ES256", "a").to_string(),
                &format!(
                    r#"{{"iss":"{CLIENT}","sub":"{CLIENT}","sub":"admin","aud":"{AS}","exp":{},"jti":"d"}}"#,
                    NOW + 60
                ),
            ),
            "duplicate_member",
            &["payload", "\"sub\""],
        ),
        case(
            "duplicate header alg",
            craft_raw(
                &k.a,
                Algorithm::ES256,
                r#"{"alg":"none","kid":"a","alg":"ES256"}"#,
                &claims("dh").to_string(),
            ),
            "duplicate_member",
            &["header", "\"alg\""],
        ),
        case(
            "aud = token endpoint when the issuer is required",
            ok(with(claims("te"), "aud", json!(format!("{AS}/token")))),
            "audience_mismatch",
            &["https://as.example.com/token", "\"https://as.example.com\""],
        ),
        case(
            "aud with a trailing slash",
            ok(with(claims("ts"), "aud", json!(format!("{AS}/")))),
            "audience_mismatch",
            &["\"https://as.example.com/\""],
        ),
        case(
            "aud array when a string is required",
            ok(with(claims("arr"), "aud", json!([AS]))),
            "audience_array",
            &["[\"https://as.example.com\"]", "single string"],
        ),
        Case {
            policy: pol(|p| {
                p.allow_audience_array = true;
            }),
            ..case(
                "aud array (allowed) without the issuer",
                ok(with(
                    claims("arr2"),
                    "aud",
                    json!(["https://other", format!("{AS}/token")]),
                )),
                "audience_mismatch",
                &["https://other"],
            )
        },
        case(
            "aud is a number",
            ok(with(claims("an"), "aud", json!(7))),
            "claim_type",
            &["\"aud\"", "7"],
        ),
        case(
            "expired",
            ok(with(
                with(claims("x"), "exp", json!(NOW - 30)),
                "iat",
                json!(NOW - 90),
            )),
            "expired",
            &["\"exp\"", "1799999970", "30 s before"],
        ),
        case(
            "exp a year ahead",
            ok(with(claims("y"), "exp", json!(NOW + 31_536_000))),
            "expires_too_far_ahead",
            &["31536000 s after now", "310 s"],
        ),
        case(
            "lifetime exp − iat too long",
            ok(with(
                with(claims("lt"), "iat", json!(NOW - 250)),
                "exp",
                json!(NOW + 200),
            )),
            "lifetime_too_long",
            &["450 s"],
        ),
        case(
            "iat after exp",
            ok(with(
                with(claims("ia"), "iat", json!(NOW + 5)),
                "exp",
                json!(NOW + 1),
            )),
            "lifetime_too_long",
            &["-4 s"],
        ),
        case(
            "nbf 30 s in the future",
            ok(with(claims("nb"), "nbf", json!(NOW + 30))),
            "not_yet_valid",
            &["\"nbf\"", "30 s in the future", "10 s"],
        ),
        case(
            "iat 11 s in the future",
            ok(with(claims("if"), "iat", json!(NOW + 11))),
            "issued_in_future",
            &["\"iat\"", "11 s in the future"],
        ),
        case(
            "exp is a string",
            ok(with(claims("es"), "exp", json!("tomorrow"))),
            "claim_type",
            &["\"exp\"", "\"tomorrow\""],
        ),
        case(
            "iss differs from the client",
            ok(with(claims("is"), "iss", json!("client-2"))),
            "issuer_mismatch",
            &["\"client-2\"", "\"client-1\""],
        ),
        case(
            "sub differs from iss",
            ok(with(claims("su"), "sub", json!("admin"))),
            "subject_mismatch",
            &["\"admin\"", "client-1"],
        ),
        case(
            "empty jti",
            ok(with(claims("ej"), "jti", json!(""))),
            "invalid_jti",
            &["empty"],
        ),
        case(
            "oversized token",
            ok(with(claims("big"), "pad", json!("x".repeat(9000)))),
            "too_large",
            &["8192"],
        ),
        case(
            "padding in the header (non-canonical base64url)",
            {
                let (hh, rest) = good.split_once('.').unwrap();
                format!("{hh}=.{rest}")
            },
            "non_canonical_base64",
            &["header"],
        ),
        case(
            "non-zero trailing bits in the signature",
            {
                // 64 bytes encode to 86 characters with 4 unused bits; set one of them.
                let (input, s) = good.rsplit_once('.').unwrap();
                let mut c: Vec<char> = s.chars().collect();
                let last = c.len() - 1;
                let alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
                let idx = alphabet.find(c[last]).unwrap();
                c[last] = alphabet.chars().nth(idx ^ 1).unwrap();
                format!("{input}.{}", c.into_iter().collect::<String>())
            },
            "non_canonical_base64",
            &["signature"],
        ),
        case(
            "standard-alphabet base64 in the payload",
            {
                let mut parts: Vec<String> = good.split('.').map(String::from).collect();
                parts[1] = base64::Engine::encode(
                    &base64::engine::general_purpose::STANDARD_NO_PAD,
                    // '?>' encodes with '/' and '+' in the standard alphabet.
                    with(claims("s"), "x", json!("??>>??")).to_string(),
                );
                assert!(parts[1].contains('+') || parts[1].contains('/'));
                parts.join(".")
            },
            "non_canonical_base64",
            &["payload"],
        ),
        case(
            "five segments (a JWE)",
            format!("{good}.x.y"),
            "not_compact_jws",
            &["5"],
        ),
        case(
            "payload is an array",
            craft_raw(
                &k.a,
                Algorithm::ES256,
                &h("ES256", "a").to_string(),
                "[1,2]",
            ),
            "invalid_json",
            &["payload", "array"],
        ),
        case(
            "typ at+jwt (an access token replayed as an assertion)",
            craft(
                &k.a,
                &with(h("ES256", "a"), "typ", json!("at+jwt")),
                &claims("at"),
            ),
            "wrong_typ",
            &["at+jwt", "client-authentication+jwt"],
        ),
        Case {
            policy: pol(|p| {
                p.typ = TypPolicy::explicit();
            }),
            ..case(
                "no typ when explicit typing is required",
                craft(&k.a, &json!({"alg": "ES256", "kid": "a"}), &claims("nt")),
                "missing_typ",
                &["client-authentication+jwt"],
            )
        },
        case(
            "crit with an unknown extension",
            craft(
                &k.a,
                &with(
                    with(h("ES256", "a"), "crit", json!(["exp-ext"])),
                    "exp-ext",
                    json!(1),
                ),
                &claims("cr"),
            ),
            "crit_not_understood",
            &["exp-ext"],
        ),
        case(
            "crit naming a registered header",
            craft(
                &k.a,
                &with(h("ES256", "a"), "crit", json!(["alg"])),
                &claims("cr2"),
            ),
            "invalid_crit",
            &["\"alg\""],
        ),
        case(
            "embedded jwk header",
            craft(
                &k.a,
                &with(
                    h("ES256", "a"),
                    "jwk",
                    serde_json::to_value(k.a.jwk("a")).unwrap(),
                ),
                &claims("jwk"),
            ),
            "forbidden_header",
            &["\"jwk\""],
        ),
        case(
            "jku header",
            craft(
                &k.a,
                &with(h("ES256", "a"), "jku", json!("https://evil/jwks")),
                &claims("jku"),
            ),
            "forbidden_header",
            &["\"jku\""],
        ),
    ]
}

#[tokio::test]
async fn every_hostile_case_is_refused_with_its_own_error() {
    let k = keys();
    let cases = matrix(&k);
    assert!(cases.len() >= 30, "only {} cases", cases.len());
    let mut kinds = std::collections::BTreeSet::new();
    for c in &cases {
        let v = verifier(c.policy.clone());
        let err = match v.verify(&c.token, CLIENT, &k.set).await {
            Ok(ok) => panic!("case {:?} was accepted: {ok:?}", c.name),
            Err(e) => e,
        };
        let msg = err.to_string();
        assert_eq!(err.kind(), c.kind, "case {:?}: got {msg}", c.name);
        for m in &c.mentions {
            assert!(
                msg.contains(m),
                "case {:?}: {msg:?} does not mention {m:?}",
                c.name
            );
        }
        // explain() runs the same checks: its first failure is the same rejection.
        let report = v.explain(&c.token, CLIENT, &k.set);
        assert!(!report.accepted(), "case {:?}", c.name);
        assert_eq!(
            report.rejection(),
            Some(&err),
            "case {:?}\n{report}",
            c.name
        );
        kinds.insert(err.kind());
    }
    eprintln!(
        "{} hostile cases, {} distinct rejection kinds",
        cases.len(),
        kinds.len()
    );
    assert!(kinds.len() >= 25, "distinct kinds: {kinds:?}");
}

#[tokio::test]
async fn the_same_claims_pass_with_a_good_signature() {
    // Guards the matrix against testing a verifier that refuses everything.
    let k = keys();
    let v = verifier(VerifyPolicy::default());
    for (signer, alg, kid) in [
        (&k.a, "ES256", "a"),
        (&k.b, "ES256", "b"),
        (&k.p384, "ES384", "p384"),
        (&k.rsa, "PS256", "rsa"),
        (&k.rsa, "RS256", "rsa-rs256"),
        (&k.ed, "EdDSA", "ed"),
    ] {
        let jti = format!("ok-{alg}-{kid}");
        let t = craft(signer, &header(alg, kid), &claims(&jti));
        let ok = v.verify(&t, CLIENT, &k.set).await.unwrap();
        assert_eq!(ok.client_id, CLIENT);
        assert_eq!(ok.kid.as_deref(), Some(kid));
        assert_eq!(ok.jti, jti);
    }
    // A JWK naming its algorithm with the fully-specified name still fits EdDSA tokens.
    let mut ed_jwk = k.ed.jwk("ed-full");
    ed_jwk.alg = Some("Ed25519".into());
    let ed_set = keyset(&jwks(vec![ed_jwk]));
    let t = craft(&k.ed, &header("EdDSA", "ed-full"), &claims("ed-full"));
    v.verify(&t, CLIENT, &ed_set).await.unwrap();
    // No kid: every fitting key is tried.
    let t = craft(&k.b, &json!({"alg": "ES256"}), &claims("nokid"));
    assert!(v.verify(&t, CLIENT, &k.set).await.is_ok());
    // iat and nbf 10 s ahead are within the tolerance FAPI 2.0 requires.
    let t = craft(
        &k.a,
        &header("ES256", "a"),
        &with(
            with(claims("ahead"), "iat", json!(NOW + 10)),
            "nbf",
            json!(NOW + 10),
        ),
    );
    assert!(v.verify(&t, CLIENT, &k.set).await.is_ok());
    // exp within the leeway.
    let t = craft(
        &k.a,
        &header("ES256", "a"),
        &with(
            with(claims("leeway"), "exp", json!(NOW - 4)),
            "iat",
            json!(NOW - 60),
        ),
    );
    assert!(v.verify(&t, CLIENT, &k.set).await.is_ok());
    // Token endpoint accepted only when configured.
    let p = pol(|p| {
        p.additional_audiences = vec![format!("{AS}/token")];
        p.allow_audience_array = true;
    });
    let v2 = verifier(p);
    for (i, aud) in [json!(format!("{AS}/token")), json!(["x", AS])]
        .into_iter()
        .enumerate()
    {
        let t = craft(
            &k.a,
            &header("ES256", "a"),
            &with(claims(&format!("aud{i}")), "aud", aud),
        );
        assert!(v2.verify(&t, CLIENT, &k.set).await.is_ok());
    }
}

#[tokio::test]
async fn replayed_jti_is_refused_until_it_expires() {
    let k = keys();
    let clock = Arc::new(FixedClock::new(NOW));
    let v = AssertionVerifier::new(AS, VerifyPolicy::default())
        .unwrap()
        .with_clock(clock.clone());
    let t = craft(&k.a, &header("ES256", "a"), &claims("once"));
    v.verify(&t, CLIENT, &k.set).await.unwrap();
    let e = v.verify(&t, CLIENT, &k.set).await.unwrap_err();
    assert_eq!(e.kind(), "replayed");
    assert!(
        e.to_string().contains("\"once\"") && e.to_string().contains("client-1"),
        "{e}"
    );
    // The same jti from another client is that client's own.
    let t2 = craft(
        &k.a,
        &header("ES256", "a"),
        &with(
            with(claims("once"), "iss", json!("client-2")),
            "sub",
            json!("client-2"),
        ),
    );
    v.verify(&t2, "client-2", &k.set).await.unwrap();
    // A token refused for another reason does not use up its jti.
    let bad = tamper_signature(&craft(&k.a, &header("ES256", "a"), &claims("later")), |s| {
        s[0] ^= 1
    });
    assert_eq!(
        v.verify(&bad, CLIENT, &k.set).await.unwrap_err().kind(),
        "bad_signature"
    );
    let good = craft(&k.a, &header("ES256", "a"), &claims("later"));
    v.verify(&good, CLIENT, &k.set).await.unwrap();
    // After exp + leeway the token is expired anyway.
    clock.set(NOW + 66);
    assert_eq!(
        v.verify(&t, CLIENT, &k.set).await.unwrap_err().kind(),
        "expired"
    );
}

async fn pkjwt_assertion(signer: TestSigner, clock_at: i64) -> (String, pkjwt_core::Jwk) {
    let jwk = signer.jwk("ignored");
    let mut opts = AssertionOptions::new(CLIENT, AS);
    opts.clock = Arc::new(FixedClock::new(clock_at));
    let a = ClientAssertion::new(Arc::new(signer), opts).unwrap();
    (a.sign().await.unwrap(), jwk)
}

#[tokio::test]
async fn assertions_from_pkjwt_core_verify_for_every_algorithm() {
    for alg in pkjwt_core::ALL_ALGORITHMS {
        let signer = TestSigner::new(alg);
        // ClientAssertion uses the RFC 7638 thumbprint as kid; register the key under it.
        let kid = pkjwt_core::thumbprint(pkjwt_core::Signer::public_key(&signer));
        let jwk = pkjwt_core::Jwk::for_signing(pkjwt_core::Signer::public_key(&signer), alg);
        let set = keyset(&jwks(vec![jwk]));
        let (jwt, _) = pkjwt_assertion(signer, NOW).await;
        let v = verifier(pol(|p| {
            p.typ = TypPolicy::explicit();
            p.require_iat = true;
            p.require_kid = true;
        }));
        let ok = v
            .verify(&jwt, CLIENT, &set)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}"));
        assert_eq!(ok.alg, alg);
        assert_eq!(ok.kid.as_deref(), Some(kid.as_str()));
        // And a second one from the same factory has a fresh jti.
        assert_eq!(
            v.verify(&jwt, CLIENT, &set).await.unwrap_err().kind(),
            "replayed"
        );
    }
}

#[tokio::test]
async fn assertions_from_an_independent_library_verify() {
    use jsonwebtoken::{Algorithm as J, EncodingKey, Header, encode};
    let cases: Vec<(Algorithm, J)> = vec![
        (Algorithm::ES256, J::ES256),
        (Algorithm::ES384, J::ES384),
        (Algorithm::PS256, J::PS256),
        (Algorithm::PS512, J::PS512),
        (Algorithm::RS256, J::RS256),
        (Algorithm::EdDSA, J::EdDSA),
    ];
    for (alg, jalg) in cases {
        let signer = TestSigner::new(alg);
        let set = keyset(&jwks(vec![Jwk_for(&signer, alg, "k1")]));
        let key: EncodingKey = signer.independent_key();
        let mut h = Header::new(jalg);
        h.kid = Some("k1".into());
        let jwt = encode(&h, &claims(&format!("indep-{alg}")), &key).unwrap();
        let v = verifier(VerifyPolicy::default());
        let ok = v
            .verify(&jwt, CLIENT, &set)
            .await
            .unwrap_or_else(|e| panic!("{alg}: {e}\n{}", v.explain(&jwt, CLIENT, &set)));
        assert_eq!(ok.alg, alg);
        assert_eq!(ok.header["typ"], "JWT");
    }
}

#[allow(non_snake_case)]
fn Jwk_for(s: &TestSigner, alg: Algorithm, kid: &str) -> pkjwt_core::Jwk {
    pkjwt_core::Jwk::for_signing(pkjwt_core::Signer::public_key(s), alg).with_kid(kid)
}

#[tokio::test]
async fn explain_reports_every_check_with_values() {
    let k = keys();
    // Accepted: one ✓ line per check.
    let t = craft(&k.a, &header("ES256", "a"), &claims("ex"));
    let policy = VerifyPolicy::default();
    let fixed = verifier(policy.clone()).explain(&t, CLIENT, &k.set);
    assert!(fixed.accepted(), "{fixed}");
    let text = fixed.to_string();
    for line in [
        "✓ alg",
        "✓ typ",
        "✓ kid",
        "✓ signature",
        "✓ iss",
        "✓ sub",
        "✓ aud",
        "✓ exp",
        "✓ jti",
        "- replay",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(text.ends_with("accepted"), "{text}");

    // The free function (what `pkjwt verify` calls) uses the system clock and a JwkSet.
    let now = pkjwt_core::Clock::now(&pkjwt_core::SystemClock);
    let live = craft(
        &k.a,
        &header("ES256", "a"),
        &json!({"iss": CLIENT, "sub": CLIENT, "aud": AS, "iat": now, "exp": now + 60, "jti": "live"}),
    );
    let r = pkjwt_verify::explain(&live, &k.jwks, CLIENT, AS, &policy);
    assert!(r.accepted(), "{r}");
    let r = pkjwt_verify::explain(&live, &k.jwks, "client-2", AS, &policy);
    assert_eq!(r.rejection().unwrap().kind(), "issuer_mismatch", "{r}");

    // Refused: several problems at once, each on its own line.
    let t = craft(
        &k.a,
        &header("ES256", "b"),
        &with(
            with(claims("ex2"), "aud", json!(format!("{AS}/token"))),
            "sub",
            json!("x"),
        ),
    );
    let r = verifier(policy.clone()).explain(&t, CLIENT, &k.set);
    eprintln!("{r}");
    assert!(!r.accepted());
    let j = r.to_json();
    assert_eq!(j["accepted"], false);
    assert_eq!(j["rejection"]["kind"], "bad_signature");
    assert_eq!(j["rejection"]["subject"], "signature");
    assert_eq!(j["claims"]["sub"], "x");
    assert!(
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "aud" && c["kind"] == "audience_mismatch")
    );
    let kinds: Vec<_> = r.rejections().map(|e| e.kind()).collect();
    assert_eq!(
        kinds,
        ["bad_signature", "subject_mismatch", "audience_mismatch"],
        "{r}"
    );
    let text = r.to_string();
    assert!(
        text.contains("✗ signature") && text.contains("✗ aud") && text.contains("✗ sub"),
        "{text}"
    );
    assert!(text.contains("https://as.example.com/token"), "{text}");
    assert!(
        text.lines()
            .last()
            .unwrap()
            .starts_with("refused (bad_signature)"),
        "{text}"
    );

    // A bad policy is a failed check, not a panic.
    let bad = pol(|p| {
        p.max_future_secs = 0;
    });
    let r = pkjwt_verify::explain(&t, &k.jwks, CLIENT, AS, &bad);
    assert_eq!(r.rejection().unwrap().kind(), "invalid_policy");
}

#[tokio::test]
async fn garbage_never_panics() {
    let k = keys();
    let v = verifier(VerifyPolicy::default());
    for t in [
        "",
        ".",
        "..",
        "...",
        "a.b.c",
        "e30.e30.",
        "e30.e30.AA",
        "\u{0}.\u{0}.\u{0}",
        "eyJhbGciOiJFUzI1NiJ9.eyJleHAiOjF9.",
        "eyJhbGciOjF9.e30.AA",
        "W10.e30.AA",
        "bnVsbA.e30.AA",
        // Multi-byte characters where the verifier looks at prefixes of alg and typ.
        &format!(
            "{}.e30.AA",
            b64(r#"{"alg":"€S256","typ":"applicatio€n/jwt"}"#)
        ),
        &format!("{}.e30.AA", b64(r#"{"alg":"ES256","typ":"€€€€€€€€€€"}"#)),
    ] {
        let e = v.verify(t, CLIENT, &k.set).await.unwrap_err();
        let _ = v.explain(t, CLIENT, &k.set).to_string();
        assert!(!e.to_string().is_empty());
    }
}

#[tokio::test]
async fn claimed_client_id_picks_the_keys_and_checks_the_form_parameter() {
    let k = keys();
    let v = verifier(VerifyPolicy::default());
    let t = craft(&k.a, &header("ES256", "a"), &claims("cc"));
    assert_eq!(v.claimed_client_id(&t, None).unwrap(), CLIENT);
    assert_eq!(v.claimed_client_id(&t, Some(CLIENT)).unwrap(), CLIENT);
    let e = v.claimed_client_id(&t, Some("client-2")).unwrap_err();
    assert_eq!(e.kind(), "client_id_mismatch");
    assert!(
        e.to_string().contains("\"client-2\"") && e.to_string().contains("\"client-1\""),
        "{e}"
    );
    let no_sub = craft(&k.a, &header("ES256", "a"), &without(claims("cc2"), "sub"));
    assert_eq!(
        v.claimed_client_id(&no_sub, None).unwrap_err().kind(),
        "missing_claim"
    );
    assert_eq!(
        v.claimed_client_id("x.y", None).unwrap_err().kind(),
        "not_compact_jws"
    );
    // Nothing was verified or recorded: the token still verifies once.
    v.verify(&t, CLIENT, &k.set).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_verifications_of_one_token_accept_it_once() {
    let k = keys();
    let v = Arc::new(verifier(VerifyPolicy::default()));
    let t = Arc::new(craft(&k.a, &header("ES256", "a"), &claims("race")));
    let tasks: Vec<_> = (0..32)
        .map(|_| {
            let (v, t, set) = (v.clone(), t.clone(), k.set.clone());
            tokio::spawn(async move { v.verify(&t, CLIENT, &set).await })
        })
        .collect();
    let mut ok = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(_) => ok += 1,
            Err(e) => assert_eq!(e.kind(), "replayed", "{e}"),
        }
    }
    assert_eq!(ok, 1);
}

/// Issue 12, item 6: a `kid` (and `typ`, `alg`) with CR/LF and ANSI escapes once forged a green
/// "✓ signature accepted" line in `pkjwt verify` output. Every line of the report and the
/// rejection's own text are free of control characters, and the report keeps one line per check.
#[tokio::test]
async fn control_characters_in_the_header_cannot_forge_report_lines() {
    let k = keys();
    let forged = "a\r\n\u{1b}[32m✓ signature  accepted\u{1b}[0m";
    let cases = [
        craft(&k.a, &header("ES256", forged), &claims("ansi-kid")),
        craft(
            &k.a,
            &with(header("ES256", "a"), "typ", json!(forged)),
            &claims("ansi-typ"),
        ),
        craft_raw(
            &k.a,
            Algorithm::ES256,
            &header(forged, "a").to_string(),
            &claims("ansi-alg").to_string(),
        ),
    ];
    for token in &cases {
        let v = verifier(VerifyPolicy::default());
        let report = v.explain(token, CLIENT, &k.set);
        assert!(!report.accepted());
        let shown = report.to_string();
        assert!(
            !shown.chars().any(|c| c.is_control() && c != '\n'),
            "{shown:?}"
        );
        // One line per check plus the verdict: no line was injected.
        let checks = report.to_json()["checks"].as_array().unwrap().len();
        assert_eq!(shown.lines().count(), checks + 1, "{shown}");
        // The forged text stays inside the line of the check that refused it.
        assert!(
            shown
                .lines()
                .filter(|l| l.contains("signature  accepted"))
                .all(|l| l.starts_with('✗') || l.starts_with("refused")),
            "{shown}"
        );
        let err = v.verify(token, CLIENT, &k.set).await.unwrap_err();
        let line = pkjwt_core::escape_controls(&err.to_string()).into_owned();
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
}
