//! The PKCS#11 backend against a real SoftHSM2 token: conformance per algorithm with an
//! independent verifier, a key made by `pkcs11-tool`, concurrency, faults and recovery.
//!
//! Every test runs in a process of its own with a token directory of its own (see
//! `common::isolated`).

#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::{Env, isolated, rt, verify_jws};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, AttributeType, ObjectClass};
use cryptoki::session::UserType;
use cryptoki::types::AuthPin;
// Errors are read as a person sees them: the message and its causes (`display_chain`), since a
// wrapping error's own message leaves its cause to `source()`.
use pkjwt_core::{
    Algorithm, AssertionOptions, ClientAssertion, GenerateOptions, Signer, display_chain,
    thumbprint,
};
use pkjwt_pkcs11::{Pkcs11Error, Pkcs11Options, Pkcs11Signer, generate};

/// A second handle on the module, as another library in the same process would have it.
fn other_handle() -> Pkcs11 {
    let ctx = Pkcs11::new(common::module()).unwrap();
    // The backend initialized the module already; CKR_CRYPTOKI_ALREADY_INITIALIZED is expected.
    let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
    ctx
}

fn test_slot(ctx: &Pkcs11) -> cryptoki::slot::Slot {
    ctx.get_slots_with_token()
        .unwrap()
        .into_iter()
        .find(|s| {
            ctx.get_token_info(*s)
                .is_ok_and(|i| i.label().trim_end() == common::TOKEN)
        })
        .expect("test token present")
}

fn opts() -> Pkcs11Options {
    Pkcs11Options::default()
}

async fn assert_signs(signer: Arc<Pkcs11Signer>, n: usize) {
    let alg = signer.algorithm();
    let key = signer.public_key().clone();
    let assertion = ClientAssertion::new(
        signer.clone(),
        AssertionOptions::new("client-1", "https://as.example.com"),
    )
    .unwrap();
    for _ in 0..n {
        let jwt = assertion.sign().await.unwrap();
        let claims = verify_jws(&jwt, &key, alg);
        assert_eq!(claims["iss"], "client-1");
        assert_eq!(claims["aud"], "https://as.example.com");
    }
}

/// Generates a key for `alg` on the token, opens it, checks its attributes, signs with it and
/// verifies independently; then checks that a duplicate label or id is refused.
fn conformance(env: &Env, alg: Algorithm, label: &str, id: &str) {
    rt().block_on(async {
        let uri = env.uri(&format!("object={label};id={id}"));
        let generated = generate(&uri, alg, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let signer = Pkcs11Signer::open(&uri, Some(alg), &opts()).await.unwrap();
        assert_eq!(signer.algorithm(), alg);
        assert_eq!(
            signer.public_key(),
            &generated,
            "public key read back = generated"
        );
        assert!(signer.warnings().is_empty());
        assert_eq!(signer.key_label(), Some(label));
        let debug = format!("{signer:?}");
        assert!(!debug.contains(common::USER_PIN), "{debug}");

        // The Signer contract: ECDSA comes back DER, and the JWS carries r||s.
        let sig = signer.sign(b"contract").await.unwrap();
        if let Some(curve) = alg.curve() {
            let fixed = pkjwt_core::ecdsa_der_to_fixed(sig.as_bytes(), curve).unwrap();
            common::verify_raw(b"contract", &fixed, &generated, alg);
        } else {
            common::verify_raw(b"contract", sig.as_bytes(), &generated, alg);
        }
        let signer = Arc::new(signer);
        assert_signs(signer.clone(), 25).await;
        // The JWK thumbprint (kid) is stable across opens.
        let again = Pkcs11Signer::open(&env.uri(&format!("object={label}")), Some(alg), &opts())
            .await
            .unwrap();
        assert_eq!(thumbprint(again.public_key()), thumbprint(&generated));

        // Duplicate label, duplicate id: both refused, and the first key is untouched.
        let e = generate(
            &env.uri(&format!("object={label}")),
            alg,
            &GenerateOptions::default(),
            &opts(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Pkcs11Error::DuplicateKey { .. }), "{e}");
        let e = generate(
            &env.uri(&format!("object={label}-other;id={id}")),
            alg,
            &GenerateOptions::default(),
            &opts(),
        )
        .await
        .unwrap_err();
        assert!(matches!(e, Pkcs11Error::DuplicateKey { .. }), "{e}");
        assert!(e.to_string().contains(label), "{e}");
    });
    // The private key's attributes, read through a second handle.
    let ctx = other_handle();
    let session = ctx.open_ro_session(test_slot(&ctx)).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(common::USER_PIN)));
    let keys = session
        .find_objects(&[
            Attribute::Class(ObjectClass::PRIVATE_KEY),
            Attribute::Label(label.as_bytes().to_vec()),
        ])
        .unwrap();
    assert_eq!(keys.len(), 1);
    let attrs = session
        .get_attributes(
            keys[0],
            &[
                AttributeType::Token,
                AttributeType::Sensitive,
                AttributeType::Extractable,
                AttributeType::Sign,
                AttributeType::Decrypt,
                AttributeType::Unwrap,
                AttributeType::Derive,
            ],
        )
        .unwrap();
    for a in attrs {
        match a {
            Attribute::Token(v) | Attribute::Sensitive(v) | Attribute::Sign(v) => {
                assert!(v, "{a:?}")
            }
            Attribute::Extractable(v)
            | Attribute::Decrypt(v)
            | Attribute::Unwrap(v)
            | Attribute::Derive(v) => assert!(!v, "{a:?}"),
            _ => {}
        }
    }
}

macro_rules! softhsm_test {
    ($name:ident, |$env:ident| $body:expr) => {
        #[test]
        fn $name() {
            isolated(stringify!($name), |_| {}, |$env: &Env| $body);
        }
    };
}

softhsm_test!(conformance_es256, |env| conformance(
    env,
    Algorithm::ES256,
    "p256",
    "%01"
));
softhsm_test!(conformance_es384, |env| conformance(
    env,
    Algorithm::ES384,
    "p384",
    "%02"
));
softhsm_test!(conformance_es512, |env| conformance(
    env,
    Algorithm::ES512,
    "p521",
    "%03"
));
softhsm_test!(conformance_rs256, |env| conformance(
    env,
    Algorithm::RS256,
    "rsa-rs",
    "%04"
));
softhsm_test!(conformance_ps256, |env| conformance(
    env,
    Algorithm::PS256,
    "rsa-ps",
    "%05"
));
softhsm_test!(conformance_eddsa, |env| conformance(
    env,
    Algorithm::EdDSA,
    "ed25519",
    "%06"
));

softhsm_test!(rsa_key_signs_every_rsa_algorithm, |env| rt().block_on(
    async {
        let uri = env.uri("object=rsa;id=%07");
        generate(&uri, Algorithm::PS256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        for alg in [
            Algorithm::RS256,
            Algorithm::RS384,
            Algorithm::RS512,
            Algorithm::PS256,
            Algorithm::PS384,
            Algorithm::PS512,
        ] {
            let signer = Pkcs11Signer::open(&uri, Some(alg), &opts()).await.unwrap();
            assert!(signer.mechanism().starts_with("CKM_SHA"), "{alg}");
            assert_signs(Arc::new(signer), 3).await;
        }
        // Hashing on the host: CKM_RSA_PKCS over a DigestInfo, CKM_RSA_PKCS_PSS over the digest.
        for (alg, mech) in [
            (Algorithm::RS256, "CKM_RSA_PKCS"),
            (Algorithm::RS384, "CKM_RSA_PKCS"),
            (Algorithm::RS512, "CKM_RSA_PKCS"),
            (Algorithm::PS256, "CKM_RSA_PKCS_PSS"),
            (Algorithm::PS384, "CKM_RSA_PKCS_PSS"),
            (Algorithm::PS512, "CKM_RSA_PKCS_PSS"),
        ] {
            let signer = Pkcs11Signer::open(&uri, Some(alg), &opts().local_hashing(true))
                .await
                .unwrap();
            assert_eq!(signer.mechanism(), mech, "{alg}");
            assert_signs(Arc::new(signer), 3).await;
        }
        // The default for RSA is PS256 (FAPI 2.0); an EC algorithm is refused with the list.
        let signer = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap();
        assert_eq!(signer.algorithm(), Algorithm::PS256);
        let e = Pkcs11Signer::open(&uri, Some(Algorithm::ES256), &opts())
            .await
            .unwrap_err();
        assert!(matches!(e, Pkcs11Error::Algorithm { .. }), "{e}");
        assert!(display_chain(&e).contains("PS256"), "{e}");
    }
));

/// A key made by OpenSC's pkcs11-tool (not by pkjwt) is found by id alone and signs.
#[test]
fn pkcs11_tool_key() {
    if !common::have_pkcs11_tool() {
        return;
    }
    isolated(
        "pkcs11_tool_key",
        |env| {
            let module = common::module();
            for (key_type, label, id) in [
                ("EC:prime256v1", "tool-p256", "42"),
                ("rsa:2048", "tool-rsa", "43"),
                // pkcs11-tool writes CKA_EC_PARAMS as the PrintableString "edwards25519".
                ("EC:edwards25519", "tool-ed25519", "44"),
            ] {
                let out = common::with_pins(
                    &env.dir,
                    "pkcs11-tool",
                    &[
                        "--module",
                        module.to_str().unwrap(),
                        "--token-label",
                        common::TOKEN,
                        "--login",
                        "--keypairgen",
                        "--key-type",
                        key_type,
                        "--label",
                        label,
                        "--id",
                        id,
                        "--usage-sign",
                    ],
                );
                assert!(
                    out.status.success(),
                    "pkcs11-tool: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        },
        |env| {
            rt().block_on(async {
                let signer = Pkcs11Signer::open(&env.uri("id=%42"), None, &opts())
                    .await
                    .unwrap();
                assert_eq!(signer.algorithm(), Algorithm::ES256);
                assert_eq!(signer.key_label(), Some("tool-p256"));
                assert_signs(Arc::new(signer), 10).await;
                let signer = Pkcs11Signer::open(
                    &env.uri("object=tool-rsa;type=private"),
                    Some(Algorithm::RS256),
                    &opts(),
                )
                .await
                .unwrap();
                assert_signs(Arc::new(signer), 3).await;
                let signer = Pkcs11Signer::open(&env.uri("object=tool-ed25519"), None, &opts())
                    .await
                    .unwrap();
                assert_eq!(signer.algorithm(), Algorithm::EdDSA);
                assert_signs(Arc::new(signer), 3).await;
            })
        },
    );
}

softhsm_test!(concurrent_signers_share_the_pool, |env| rt().block_on(
    async {
        let uri = env.uri("object=busy");
        generate(&uri, Algorithm::ES256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let uri2 = env.uri("object=busy-ed");
        generate(
            &uri2,
            Algorithm::EdDSA,
            &GenerateOptions::default(),
            &opts(),
        )
        .await
        .unwrap();
        let signer = Arc::new(
            Pkcs11Signer::open(&uri, None, &opts().pool_size(4))
                .await
                .unwrap(),
        );
        // A second signer on the same token, default pool size: one login serves both.
        let signer2 = Arc::new(Pkcs11Signer::open(&uri2, None, &opts()).await.unwrap());
        let cpus = std::thread::available_parallelism().unwrap().get();
        assert_eq!(signer2.pool_size(), cpus);
        let mut assertions = Vec::new();
        for s in [signer.clone(), signer2.clone()] {
            let key = s.public_key().clone();
            let alg = s.algorithm();
            let a = Arc::new(
                ClientAssertion::new(
                    s,
                    AssertionOptions::new("client-c", "https://as.example.com"),
                )
                .unwrap(),
            );
            assertions.push((a, key, alg));
        }
        const TASKS: usize = 32;
        const EACH: usize = 100;
        let mut joins = Vec::new();
        for t in 0..TASKS {
            // Three of every four tasks use the ES256 signer, the rest the EdDSA one.
            let (a, key, alg) = assertions[usize::from(t % 4 == 3)].clone();
            joins.push(tokio::spawn(async move {
                let mut out = Vec::with_capacity(EACH);
                for _ in 0..EACH {
                    out.push(a.sign().await.unwrap());
                }
                (out, key, alg)
            }));
        }
        let mut jtis = std::collections::HashSet::new();
        for j in joins {
            let (jwts, key, alg) = j.await.unwrap();
            for jwt in jwts {
                let claims = verify_jws(&jwt, &key, alg);
                assert!(jtis.insert(claims["jti"].as_str().unwrap().to_string()));
            }
        }
        assert_eq!(jtis.len(), TASKS * EACH);
        let (s1, s2) = (signer.stats(), signer2.stats());
        assert_eq!(s1.signatures + s2.signatures, (TASKS * EACH) as u64);
        assert_eq!(s1.signatures, (TASKS / 4 * 3 * EACH) as u64);
        assert_eq!(s1.recoveries + s2.recoveries, 0);
        assert!(
            s1.sessions_opened > 1 && s1.sessions_opened <= 4,
            "pool used 2..=4 sessions: {s1:?}"
        );
        assert!(s2.sessions_opened as usize <= cpus, "{s2:?}");
    }
));

softhsm_test!(fault_wrong_pin, |env| rt().block_on(async {
    let bad = env.dir.join("bad-pin");
    std::fs::write(&bad, "0000-wrong\n").unwrap();
    std::fs::set_permissions(
        &bad,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let uri = common::parse(&format!(
        "pkcs11:token={};object=k?module-path={}&pin-source=file:{}",
        common::TOKEN,
        common::module().display(),
        bad.display()
    ));
    let e = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap_err();
    assert!(matches!(e, Pkcs11Error::PinIncorrect { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("PIN is incorrect") && !msg.contains("0000-wrong"),
        "{msg}"
    );
}));

softhsm_test!(fault_missing_token, |env| rt().block_on(async {
    let uri = common::parse(
        &env.uri_string("object=k")
            .replace("token=pkjwt-test", "token=nope"),
    );
    let e = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap_err();
    assert!(matches!(e, Pkcs11Error::TokenNotFound { .. }), "{e}");
    let msg = e.to_string();
    assert!(
        msg.contains("\"nope\"") && msg.contains("\"pkjwt-test\""),
        "{msg}"
    );
    // A padded label in the URI still matches: labels compare without padding.
    generate(
        &env.uri("object=k"),
        Algorithm::ES256,
        &GenerateOptions::default(),
        &opts(),
    )
    .await
    .unwrap();
    let padded = env
        .uri_string("object=k")
        .replace("token=pkjwt-test", "token=pkjwt-test%20%20%20");
    Pkcs11Signer::open(&common::parse(&padded), None, &opts())
        .await
        .unwrap();
}));

softhsm_test!(fault_missing_object_lists_what_is_there, |env| rt()
    .block_on(async {
        generate(
            &env.uri("object=present;id=%aa%bb"),
            Algorithm::ES256,
            &GenerateOptions::default(),
            &opts(),
        )
        .await
        .unwrap();
        let e = Pkcs11Signer::open(&env.uri("object=absent"), None, &opts())
            .await
            .unwrap_err();
        assert!(matches!(e, Pkcs11Error::ObjectNotFound { .. }), "{e}");
        let msg = e.to_string();
        assert!(
            msg.contains("\"absent\"")
                && msg.contains("\"present\"")
                && msg.contains("aabb")
                && msg.contains("EC"),
            "{msg}"
        );
        assert!(!msg.contains(common::USER_PIN));
    }));

softhsm_test!(fault_ambiguous_object, |env| rt().block_on(async {
    // Two keys under one label, as another tool may create them (pkjwt refuses to).
    let ctx = other_handle();
    let session = ctx.open_rw_session(test_slot(&ctx)).unwrap();
    session
        .login(UserType::User, Some(&AuthPin::from(common::USER_PIN)))
        .unwrap();
    for id in [[0xd1u8], [0xd2]] {
        session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::EcParams(vec![
                        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                    ]),
                    Attribute::Label(b"dup".to_vec()),
                    Attribute::Id(id.to_vec()),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sign(true),
                    Attribute::Label(b"dup".to_vec()),
                    Attribute::Id(id.to_vec()),
                ],
            )
            .unwrap();
    }
    let e = Pkcs11Signer::open(&env.uri("object=dup"), None, &opts())
        .await
        .unwrap_err();
    assert!(
        matches!(e, Pkcs11Error::AmbiguousObject { count: 2, .. }),
        "{e}"
    );
    let msg = e.to_string();
    assert!(msg.contains("d1") && msg.contains("d2"), "{msg}");
    // Adding the id picks one.
    let s = Pkcs11Signer::open(&env.uri("object=dup;id=%d2"), None, &opts())
        .await
        .unwrap();
    assert_signs(Arc::new(s), 2).await;
    // And generate refuses the label.
    let e = generate(
        &env.uri("object=dup"),
        Algorithm::ES256,
        &GenerateOptions::default(),
        &opts(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, Pkcs11Error::DuplicateKey { .. }), "{e}");
}));

softhsm_test!(fault_unreadable_pin_file, |env| rt().block_on(async {
    for bad in [env.dir.join("no-such-pin-file"), env.dir.join("tokens")] {
        let uri = common::parse(&format!(
            "pkcs11:token={};object=k?module-path={}&pin-source=file:{}",
            common::TOKEN,
            common::module().display(),
            bad.display()
        ));
        let e = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap_err();
        assert!(matches!(e, Pkcs11Error::PinSource { .. }), "{e}");
        assert!(
            display_chain(&e).contains(&bad.display().to_string()),
            "{e}"
        );
    }
    let uri = common::parse(&format!(
        "pkcs11:token={};object=k?module-path={}&pin-source=env:PKJWT_TEST_SURELY_UNSET_PIN",
        common::TOKEN,
        common::module().display(),
    ));
    let e = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap_err();
    assert!(
        display_chain(&e).contains("env:PKJWT_TEST_SURELY_UNSET_PIN"),
        "{e}"
    );
}));

softhsm_test!(fault_no_pin_when_login_required, |env| rt().block_on(
    async {
        let uri = common::parse(&format!(
            "pkcs11:token={};object=k?module-path={}",
            common::TOKEN,
            common::module().display()
        ));
        let e = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap_err();
        assert!(matches!(e, Pkcs11Error::PinRequired { .. }), "{e}");
        let _ = env;
    }
));

softhsm_test!(fault_bad_modules, |env| rt().block_on(async {
    let with_module = |m: &str| {
        common::parse(&format!(
            "pkcs11:token={};object=k?module-path={m}&pin-source=file:{}",
            common::TOKEN,
            env.pin_file().display()
        ))
    };
    let e = Pkcs11Signer::open(&with_module("/nonexistent/libpkcs11.so"), None, &opts())
        .await
        .unwrap_err();
    assert!(matches!(e, Pkcs11Error::ModuleNotFound { .. }), "{e}");
    let text = env.dir.join("not-a-module.so");
    std::fs::write(&text, "plain text").unwrap();
    let e = Pkcs11Signer::open(&with_module(text.to_str().unwrap()), None, &opts())
        .await
        .unwrap_err();
    assert!(matches!(e, Pkcs11Error::NotAModule { .. }), "{e}");
    // A real shared library that is not a PKCS#11 module.
    let libm = [
        "/lib/x86_64-linux-gnu/libm.so.6",
        "/lib/aarch64-linux-gnu/libm.so.6",
        "/usr/lib64/libm.so.6",
    ]
    .into_iter()
    .find(|p| std::path::Path::new(p).is_file());
    if let Some(libm) = libm {
        let e = Pkcs11Signer::open(&with_module(libm), None, &opts())
            .await
            .unwrap_err();
        assert!(matches!(e, Pkcs11Error::NotAModule { .. }), "{e}");
        assert!(e.to_string().contains("C_GetFunctionList"), "{e}");
    }
    // The allow-list refuses even the real module when it is not listed.
    let real = with_module(common::module().to_str().unwrap());
    let e = Pkcs11Signer::open(&real, None, &opts().allowed_modules(vec![text.clone()]))
        .await
        .unwrap_err();
    assert!(matches!(e, Pkcs11Error::ModuleNotAllowed { .. }), "{e}");
}));

softhsm_test!(fault_key_without_sign_permission, |env| rt().block_on(
    async {
        let ctx = other_handle();
        let session = ctx.open_rw_session(test_slot(&ctx)).unwrap();
        session
            .login(UserType::User, Some(&AuthPin::from(common::USER_PIN)))
            .unwrap();
        session
            .generate_key_pair(
                &Mechanism::EccKeyPairGen,
                &[
                    Attribute::Token(true),
                    Attribute::EcParams(vec![
                        0x06, 0x08, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07,
                    ]),
                    Attribute::Label(b"nosign".to_vec()),
                    Attribute::Id(vec![0x0e]),
                ],
                &[
                    Attribute::Token(true),
                    Attribute::Private(true),
                    Attribute::Sign(false),
                    Attribute::Derive(true),
                    Attribute::Label(b"nosign".to_vec()),
                    Attribute::Id(vec![0x0e]),
                ],
            )
            .unwrap();
        let e = Pkcs11Signer::open(&env.uri("object=nosign"), None, &opts())
            .await
            .unwrap_err();
        assert!(matches!(e, Pkcs11Error::KeyCannotSign { .. }), "{e}");
        assert!(e.to_string().contains("CKA_SIGN=false"), "{e}");
    }
));

softhsm_test!(pin_from_an_environment_variable_logs_in, |env| rt()
    .block_on(async {
        generate(
            &env.uri("object=pe"),
            Algorithm::ES256,
            &GenerateOptions::default(),
            &opts(),
        )
        .await
        .unwrap();
        let uri = common::parse(&format!(
            "pkcs11:token={};object=pe?module-path={}&pin-source=env:{}",
            common::TOKEN,
            common::module().display(),
            common::PIN_ENV
        ));
        let signer = Arc::new(Pkcs11Signer::open(&uri, None, &opts()).await.unwrap());
        assert!(signer.warnings().is_empty(), "{:?}", signer.warnings());
        assert_signs(signer, 2).await;
    }));

softhsm_test!(pin_value_is_accepted_with_a_warning, |env| rt().block_on(
    async {
        generate(
            &env.uri("object=pv"),
            Algorithm::ES256,
            &GenerateOptions::default(),
            &opts(),
        )
        .await
        .unwrap();
        let uri = common::parse(&format!(
            "pkcs11:token={};object=pv?module-path={}&pin-value={}",
            common::TOKEN,
            common::module().display(),
            common::USER_PIN
        ));
        let signer = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap();
        assert_eq!(signer.warnings().len(), 1);
        assert!(signer.warnings()[0].contains("pin-source"));
        for text in [format!("{signer:?}"), signer.warnings().join(" ")] {
            assert!(!text.contains(common::USER_PIN), "{text}");
        }
        // Errors from such a URI do not print the PIN either.
        let uri = common::parse(&format!(
            "pkcs11:token={};object=missing?module-path={}&pin-value={}",
            common::TOKEN,
            common::module().display(),
            common::USER_PIN
        ));
        let e = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap_err();
        assert!(!format!("{e} {e:?}").contains(common::USER_PIN), "{e}");
    }
));

softhsm_test!(recovers_after_logout_by_another_handle, |env| rt()
    .block_on(async {
        let uri = env.uri("object=resilient");
        generate(&uri, Algorithm::ES256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let signer = Arc::new(Pkcs11Signer::open(&uri, None, &opts()).await.unwrap());
        assert_signs(signer.clone(), 3).await;
        assert_eq!(signer.stats().recoveries, 0);
        // Another part of the process logs the application out of the token: every session loses
        // its login and the private key's handle dies with it.
        let ctx = other_handle();
        let session = ctx.open_ro_session(test_slot(&ctx)).unwrap();
        session.logout().unwrap();
        assert_signs(signer.clone(), 3).await;
        assert_eq!(signer.stats().recoveries, 1, "{:?}", signer.stats());
        drop(session);
        assert_signs(signer.clone(), 3).await;
        assert_eq!(signer.stats().recoveries, 1);
    }));

softhsm_test!(recovers_after_module_finalized_and_reinitialized, |env| rt(
)
.block_on(async {
    let uri = env.uri("object=resilient2");
    generate(&uri, Algorithm::EdDSA, &GenerateOptions::default(), &opts())
        .await
        .unwrap();
    let signer = Arc::new(Pkcs11Signer::open(&uri, None, &opts()).await.unwrap());
    assert_signs(signer.clone(), 3).await;
    // Another handle finalizes and re-initializes the module: every session handle of the
    // process dies (harsher than C_CloseAllSessions, tested below) and the login
    // is gone. Nothing is signing at this moment.
    let ctx = other_handle();
    ctx.finalize().unwrap();
    let ctx = other_handle();
    assert_signs(signer.clone(), 5).await;
    assert!(signer.stats().recoveries >= 1, "{:?}", signer.stats());
    drop(ctx);
}));

softhsm_test!(recovers_after_c_close_all_sessions, |env| {
    // cryptoki 0.12 has no C_CloseAllSessions, so a second binding (the `pkcs11` crate) plays
    // "another library in this process". It refuses every call unless its own C_Initialize
    // succeeded, so it initializes the module first (NULL arguments: its argument-passing path
    // is unsound) and the backend then accepts CKR_CRYPTOKI_ALREADY_INITIALIZED. With NULL
    // arguments SoftHSM2 may skip its own locking, so this test signs from one task at a time.
    let mut other = pkcs11::Ctx::new(common::module()).unwrap();
    other.initialize(None).unwrap();
    let slot = other
        .get_slot_list(true)
        .unwrap()
        .into_iter()
        .find(|s| {
            other
                .get_token_info(*s)
                .is_ok_and(|i| String::from(i.label).trim_end() == common::TOKEN)
        })
        .unwrap();
    rt().block_on(async {
        let uri = env.uri("object=resilient3");
        generate(&uri, Algorithm::ES384, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let signer = Arc::new(Pkcs11Signer::open(&uri, None, &opts()).await.unwrap());
        assert_signs(signer.clone(), 3).await;
        assert_eq!(signer.stats().recoveries, 0);
        other.close_all_sessions(slot).unwrap();
        assert_signs(signer.clone(), 3).await;
        assert_eq!(signer.stats().recoveries, 1, "{:?}", signer.stats());
        // Twice in a row works too.
        other.close_all_sessions(slot).unwrap();
        assert_signs(signer.clone(), 3).await;
        assert_eq!(signer.stats().recoveries, 2, "{:?}", signer.stats());
    });
    // Its Drop would C_Finalize the module underneath everything else in this process.
    std::mem::forget(other);
});

softhsm_test!(key_deleted_underneath_gives_a_clear_error, |env| rt()
    .block_on(async {
        let uri = env.uri("object=doomed");
        generate(&uri, Algorithm::ES256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let signer = Pkcs11Signer::open(&uri, None, &opts().max_attempts(2))
            .await
            .unwrap();
        // Delete the key underneath: sessions are fine, but the key is gone for good.
        let ctx = other_handle();
        let session = ctx.open_rw_session(test_slot(&ctx)).unwrap();
        let _ = session.login(UserType::User, Some(&AuthPin::from(common::USER_PIN)));
        for h in session
            .find_objects(&[Attribute::Label(b"doomed".to_vec())])
            .unwrap()
        {
            session.destroy_object(h).unwrap();
        }
        let e = signer.sign(b"x").await.unwrap_err();
        let msg = display_chain(&e);
        assert!(
            msg.contains("doomed") && (msg.contains("no private key") || msg.contains("attempts")),
            "{msg}"
        );
    }));

// Signing works from every kind of thread a caller may be on: a multi-thread runtime's worker
// (`block_in_place`, four tasks queueing for one session), its `block_on` thread, a blocking-pool
// thread, a current-thread runtime (`spawn_blocking`), and a thread with no runtime at all.
softhsm_test!(signs_from_every_kind_of_thread, |env| {
    let uri = env.uri("object=threads");
    let signer = rt().block_on(async {
        generate(&uri, Algorithm::ES256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        Arc::new(
            Pkcs11Signer::open(&uri, None, &opts().pool_size(1))
                .await
                .unwrap(),
        )
    });
    // Multi-thread runtime: from block_on, from spawned tasks, from spawn_blocking — each
    // signature made in place on the calling thread.
    let mt = rt();
    mt.block_on(assert_signs(signer.clone(), 2));
    let tasks: Vec<_> = (0..4)
        .map(|_| mt.spawn(assert_signs(signer.clone(), 5)))
        .collect();
    mt.block_on(async {
        for t in tasks {
            t.await.unwrap();
        }
    });
    let s = signer.clone();
    let h = mt.handle().clone();
    mt.block_on(async move {
        tokio::task::spawn_blocking(move || h.block_on(assert_signs(s, 2)))
            .await
            .unwrap()
    });
    assert_eq!(signer.stats().signed_in_place, 2 + 20 + 2);
    // Current-thread runtime: the blocking pool carries the call.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(assert_signs(signer.clone(), 3));
    assert_eq!(
        signer.stats().signed_in_place,
        24,
        "not in place on a current-thread runtime"
    );
    // No runtime: the call is made inline (a minimal executor polls the future).
    let s = signer.clone();
    std::thread::spawn(move || block_on_without_runtime(assert_signs(s, 2)))
        .join()
        .unwrap();
    assert_eq!(signer.stats().signatures, 2 + 20 + 2 + 3 + 2);
    // No runtime at all: inline, not counted as in place.
    assert_eq!(signer.stats().signed_in_place, 24);
});

/// Polls a future to completion on the current thread, outside any runtime.
fn block_on_without_runtime<F: std::future::Future>(f: F) -> F::Output {
    use std::task::{Context, Poll, Wake, Waker};
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut f = std::pin::pin!(f);
    loop {
        match f.as_mut().poll(&mut cx) {
            Poll::Ready(v) => return v,
            Poll::Pending => std::thread::park(),
        }
    }
}

/// `infra/softhsm/setup.sh` makes a token whose five keys all open and sign.
#[test]
fn setup_script_keys_sign() {
    if !common::have_pkcs11_tool() {
        return;
    }
    isolated(
        "setup_script_keys_sign",
        |env| {
            let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../infra/softhsm/setup.sh");
            let out = std::process::Command::new("bash")
                .arg(script)
                .arg(env.dir.join("script"))
                .arg(common::TOKEN)
                .env("PKJWT_SOFTHSM_PIN", common::USER_PIN)
                .env("PKJWT_SOFTHSM_MODULE", common::module())
                .env("PKJWT_SOFTHSM_KEYGEN", "pkcs11-tool")
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "setup.sh: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(stdout.contains("export SOFTHSM2_CONF="), "{stdout}");
            // The child process uses the script's token directory.
            std::fs::copy(
                env.dir.join("script/softhsm2.conf"),
                env.dir.join("softhsm2.conf"),
            )
            .unwrap();
        },
        |env| {
            rt().block_on(async {
                for (label, alg) in [
                    ("p256", Algorithm::ES256),
                    ("p384", Algorithm::ES384),
                    ("p521", Algorithm::ES512),
                    ("rsa2048", Algorithm::PS256),
                    ("ed25519", Algorithm::EdDSA),
                ] {
                    let signer =
                        Pkcs11Signer::open(&env.uri(&format!("object={label}")), None, &opts())
                            .await
                            .unwrap();
                    assert_eq!(signer.algorithm(), alg, "{label}");
                    assert_signs(Arc::new(signer), 2).await;
                }
            })
        },
    );
}

/// The public key comes from a certificate with the key's id when there is no public-key
/// object (a key imported together with its certificate, as CAs and HSM vendors deliver them),
/// and from the private key's own attributes for RSA; without either, the error says what to
/// import.
#[test]
fn public_key_from_certificate_or_private_attributes() {
    if !common::have_pkcs11_tool()
        || !common::have(
            "openssl",
            std::process::Command::new("openssl")
                .arg("version")
                .output()
                .is_ok(),
        )
    {
        return;
    }
    isolated(
        "public_key_from_certificate_or_private_attributes",
        |env| {
            let run = |cmd: &str, args: &[&str]| {
                let out = std::process::Command::new(cmd)
                    .env("SOFTHSM2_CONF", env.dir.join("softhsm2.conf"))
                    .current_dir(&env.dir)
                    .args(args)
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{cmd} {args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            };
            // A P-256 key and a self-signed certificate for it, imported without a public key.
            run(
                "openssl",
                &[
                    "ecparam",
                    "-name",
                    "prime256v1",
                    "-genkey",
                    "-noout",
                    "-out",
                    "k.pem",
                ],
            );
            run(
                "openssl",
                &[
                    "pkcs8", "-topk8", "-nocrypt", "-in", "k.pem", "-outform", "DER", "-out",
                    "k.der",
                ],
            );
            run(
                "openssl",
                &[
                    "req",
                    "-new",
                    "-x509",
                    "-key",
                    "k.pem",
                    "-subj",
                    "/CN=imported",
                    "-days",
                    "1",
                    "-outform",
                    "DER",
                    "-out",
                    "c.der",
                ],
            );
            run(
                "openssl",
                &[
                    "pkey", "-in", "k.pem", "-pubout", "-outform", "DER", "-out", "pub.der",
                ],
            );
            let module = common::module();
            let m = module.to_str().unwrap();
            for (file, ty) in [("k.der", "privkey"), ("c.der", "cert")] {
                let path = env.dir.join(file);
                let out = common::with_pins(
                    &env.dir,
                    "pkcs11-tool",
                    &[
                        "--module",
                        m,
                        "--token-label",
                        common::TOKEN,
                        "--login",
                        "--write-object",
                        path.to_str().unwrap(),
                        "--type",
                        ty,
                        "--id",
                        "50",
                        "--label",
                        "imported",
                        "--usage-sign",
                    ],
                );
                assert!(
                    out.status.success(),
                    "pkcs11-tool --write-object {file}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        },
        |env| {
            rt().block_on(async {
                {
                    // The import made no public-key object: only the certificate can tell.
                    let ctx = other_handle();
                    let session = ctx.open_ro_session(test_slot(&ctx)).unwrap();
                    let _ = session.login(UserType::User, Some(&AuthPin::from(common::USER_PIN)));
                    let pubs = session
                        .find_objects(&[
                            Attribute::Class(ObjectClass::PUBLIC_KEY),
                            Attribute::Id(vec![0x50]),
                        ])
                        .unwrap();
                    assert!(pubs.is_empty());
                }
                let spki = std::fs::read(env.dir.join("pub.der")).unwrap();
                let expected = pkjwt_core::PublicKey::from_spki_der(&spki).unwrap();
                let signer = Pkcs11Signer::open(&env.uri("id=%50"), None, &opts())
                    .await
                    .unwrap();
                assert_eq!(
                    signer.public_key(),
                    &expected,
                    "public key from the certificate"
                );
                assert_signs(Arc::new(signer), 3).await;

                // RSA: without the public-key object, modulus and exponent of the private key.
                let uri = env.uri("object=rsa-nopub;id=%51");
                let generated =
                    generate(&uri, Algorithm::RS256, &GenerateOptions::default(), &opts())
                        .await
                        .unwrap();
                // EC: without the public-key object, nothing to read the point from.
                generate(
                    &env.uri("object=ec-nopub;id=%52"),
                    Algorithm::ES256,
                    &GenerateOptions::default(),
                    &opts(),
                )
                .await
                .unwrap();
                let ctx = other_handle();
                let session = ctx.open_rw_session(test_slot(&ctx)).unwrap();
                let _ = session.login(UserType::User, Some(&AuthPin::from(common::USER_PIN)));
                for id in [0x51u8, 0x52] {
                    for h in session
                        .find_objects(&[
                            Attribute::Class(ObjectClass::PUBLIC_KEY),
                            Attribute::Id(vec![id]),
                        ])
                        .unwrap()
                    {
                        session.destroy_object(h).unwrap();
                    }
                }
                let signer = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap();
                assert_eq!(signer.public_key(), &generated);
                assert_signs(Arc::new(signer), 2).await;
                let e = Pkcs11Signer::open(&env.uri("object=ec-nopub"), None, &opts())
                    .await
                    .unwrap_err();
                assert!(matches!(e, Pkcs11Error::PublicKeyNotFound { .. }), "{e}");
                assert!(e.to_string().contains("id=%52"), "{e}");
                // The inventory in a not-found error lists the certificate too.
                let e = Pkcs11Signer::open(&env.uri("object=nothing-here"), None, &opts())
                    .await
                    .unwrap_err();
                let msg = e.to_string();
                assert!(msg.contains("certificate \"imported\" (id 50)"), "{msg}");
                assert!(msg.contains("private key \"imported\" (id 50) EC"), "{msg}");
                // A URI naming the certificate or public key is not a signing key.
                for ty in ["cert", "public"] {
                    let e =
                        Pkcs11Signer::open(&env.uri(&format!("id=%50;type={ty}")), None, &opts())
                            .await
                            .unwrap_err();
                    assert!(matches!(e, Pkcs11Error::NotPrivateKey { .. }), "{e}");
                }
            })
        },
    );
}

softhsm_test!(
    token_selected_by_serial_manufacturer_model_slot_or_module_name,
    |env| rt().block_on(async {
        generate(
            &env.uri("object=sel"),
            Algorithm::ES256,
            &GenerateOptions::default(),
            &opts(),
        )
        .await
        .unwrap();
        let ctx = other_handle();
        let slot = test_slot(&ctx);
        let info = ctx.get_token_info(slot).unwrap();
        let enc = |s: &str| s.trim_end().replace(' ', "%20");
        let q = format!(
            "?module-path={}&pin-source=file:{}",
            common::module().display(),
            env.pin_file().display()
        );
        for path in [
            format!("serial={};object=sel", enc(info.serial_number())),
            format!(
                "manufacturer={};model={};object=sel",
                enc(info.manufacturer_id()),
                enc(info.model())
            ),
            format!("slot-id={};object=sel", slot.id()),
        ] {
            let uri = common::parse(&format!("pkcs11:{path}{q}"));
            let s = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap();
            assert_eq!(s.token_label(), common::TOKEN, "{path}");
        }
        let uri = common::parse(&format!("pkcs11:serial=0000;object=sel{q}"));
        let e = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap_err();
        assert!(matches!(e, Pkcs11Error::TokenNotFound { .. }), "{e}");
        assert!(
            e.to_string().contains(info.serial_number().trim_end()),
            "{e}"
        );
        // module-name= finds the module in the usual directories.
        if common::module() == std::path::Path::new("/usr/lib/softhsm/libsofthsm2.so") {
            let uri = common::parse(&format!(
                "pkcs11:token={};object=sel?module-name=libsofthsm2&pin-source=file:{}",
                common::TOKEN,
                env.pin_file().display()
            ));
            let s = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap();
            assert_signs(Arc::new(s), 1).await;
        }
    })
);

/// A broken SoftHSM2 configuration fails C_Initialize, and the error says where to look.
#[test]
fn fault_softhsm_misconfigured() {
    isolated(
        "fault_softhsm_misconfigured",
        |env| {
            std::fs::write(
                env.dir.join("softhsm2.conf"),
                "directories.tokendir = /nonexistent/pkjwt-tokens\nobjectstore.backend = file\n",
            )
            .unwrap();
        },
        |env| {
            rt().block_on(async {
                let e = Pkcs11Signer::open(&env.uri("object=k"), None, &opts())
                    .await
                    .unwrap_err();
                assert!(matches!(e, Pkcs11Error::ModuleInit { .. }), "{e}");
                assert!(e.to_string().contains("SOFTHSM2_CONF"), "{e}");
            })
        },
    );
}

softhsm_test!(retries_are_bounded_and_the_error_says_why, |env| rt()
    .block_on(async {
        let uri = env.uri("object=bounded");
        generate(&uri, Algorithm::ES256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        // One attempt only: the failure that triggers a rebuild is reported, not retried.
        let signer = Pkcs11Signer::open(&uri, None, &opts().max_attempts(1))
            .await
            .unwrap();
        assert_signs(
            Arc::new(Pkcs11Signer::open(&uri, None, &opts()).await.unwrap()),
            1,
        )
        .await;
        let ctx = other_handle();
        let session = ctx.open_ro_session(test_slot(&ctx)).unwrap();
        session.logout().unwrap();
        let e = signer.sign(b"x").await.unwrap_err();
        let msg = display_chain(&e);
        assert!(
            msg.contains("after 1 attempt(s)")
                && msg.contains("returned CKR_OBJECT_HANDLE_INVALID")
                && msg.contains("\"bounded\""),
            "{msg}"
        );
        // The pool was rebuilt while failing: the next signature works.
        signer.sign(b"x").await.unwrap();
        assert_eq!(signer.stats().recoveries, 1);
        drop(session);
    }));

/// Writes `pin` to a fresh owner-only PIN file in the test's directory.
fn pin_file(env: &Env, name: &str, pin: &str) -> std::path::PathBuf {
    let p = env.dir.join(name);
    std::fs::write(&p, format!("{pin}\n")).unwrap();
    std::fs::set_permissions(
        &p,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    p
}

// Issue 12, item 8: the user PIN is changed on the token while a busy service has signers open
// with the old PIN cached, and the login is lost. Every signature used to call C_Login with the
// old PIN again (a token that counts failures locks the user PIN after a few). Now the first
// refusal stops every signer that read its PIN before it: at most one C_Login with the old PIN,
// whatever the number of signatures and signers; a signer opened with the new PIN works.
softhsm_test!(changed_pin_is_tried_once, |env| rt().block_on(async {
    const NEW_PIN: &str = "9999-rotated";
    let uri = env.uri("object=rotated");
    let uri2 = env.uri("object=rotated-2");
    generate(&uri, Algorithm::ES256, &GenerateOptions::default(), &opts())
        .await
        .unwrap();
    generate(
        &uri2,
        Algorithm::ES256,
        &GenerateOptions::default(),
        &opts(),
    )
    .await
    .unwrap();
    let signer = Arc::new(
        Pkcs11Signer::open(&uri, None, &opts().pool_size(3))
            .await
            .unwrap(),
    );
    // Another signer on the same token and PIN: it shares the token's login state.
    let signer2 = Arc::new(Pkcs11Signer::open(&uri2, None, &opts()).await.unwrap());
    assert_signs(signer.clone(), 3).await;
    assert_signs(signer2.clone(), 1).await;
    let (logins1, logins2) = (signer.stats().logins, signer2.stats().logins);
    let signed = signer.stats().signatures;

    // Someone changes the user PIN (C_SetPIN in a logged-in R/W session), then the
    // application loses its login (C_Logout from another part of the process).
    let ctx = other_handle();
    let slot = test_slot(&ctx);
    let session = ctx.open_rw_session(slot).unwrap();
    let _ = session.login(UserType::User, Some(&AuthPin::from(common::USER_PIN)));
    session
        .set_pin(&AuthPin::from(common::USER_PIN), &AuthPin::from(NEW_PIN))
        .unwrap();
    session.logout().unwrap();
    drop(session);
    assert!(!ctx.get_token_info(slot).unwrap().user_pin_count_low());

    // A busy service: concurrent tasks on both signers keep signing.
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = if i % 2 == 0 {
            signer.clone()
        } else {
            signer2.clone()
        };
        tasks.push(tokio::spawn(async move {
            let mut errors = Vec::new();
            for _ in 0..10 {
                errors.push(s.sign(b"payload").await.unwrap_err());
            }
            errors
        }));
    }
    let mut errors = Vec::new();
    for t in tasks {
        errors.extend(t.await.unwrap());
    }
    let tried = (signer.stats().logins - logins1) + (signer2.stats().logins - logins2);
    // Exactly once: the token saw the old PIN (checked below), and never again.
    assert_eq!(
        tried,
        1,
        "C_Login with the old PIN was called {tried} times for {} signatures",
        errors.len()
    );
    // The token did see the old PIN once (SoftHSM raises CKF_USER_PIN_COUNT_LOW after a
    // failed C_Login), and it is not locked.
    let info = ctx.get_token_info(slot).unwrap();
    assert!(info.user_pin_count_low(), "the old PIN was never presented");
    assert!(!info.user_pin_locked());
    assert_eq!(signer.stats().signatures, signed);
    for e in &errors {
        let msg = format!("{} {e:?}", display_chain(e));
        assert!(
            !msg.contains(common::USER_PIN) && !msg.contains(NEW_PIN),
            "{msg}"
        );
    }
    let last = display_chain(errors.last().unwrap());
    eprintln!("first error: {}\nlast error: {last}", errors[0]);
    assert!(
        last.contains("refused the PIN")
            && last.contains("will not try it again")
            && last.contains("pkjwt-test"),
        "{last}"
    );

    // Still nothing tried later, from either signer, and not even a session opened: a
    // stopped signer fails before any PKCS#11 call.
    for s in [&signer, &signer2] {
        let before = s.stats();
        for _ in 0..5 {
            let e = display_chain(&s.sign(b"later").await.unwrap_err());
            assert!(e.contains("will not try it again"), "{e}");
        }
        assert_eq!(s.stats().logins, before.logins);
        assert_eq!(s.stats().sessions_opened, before.sessions_opened);
        assert_eq!(s.stats().recoveries, before.recoveries);
    }

    // Reconfigured: a signer opened with the new PIN logs in and signs; the old signers
    // stay stopped (their PIN is the refused one).
    let fixed = common::parse(&env.uri_string("object=rotated").replace(
        &env.pin_file().display().to_string(),
        &pin_file(env, "new-pin", NEW_PIN).display().to_string(),
    ));
    let reopened = Arc::new(Pkcs11Signer::open(&fixed, None, &opts()).await.unwrap());
    assert_eq!(reopened.stats().logins, 1);
    assert_signs(reopened.clone(), 2).await;
    assert!(signer.sign(b"x").await.is_err());
    assert!(
        !ctx.get_token_info(slot).unwrap().user_pin_count_low(),
        "a good login clears the low-count flag"
    );
}));

// A wrong PIN given at open is tried once by that open; opening again with the same PIN source
// is a new configuration and may try (the operator asked for it), but a signer never retries.
softhsm_test!(wrong_pin_at_open_is_tried_once_per_open, |env| rt()
    .block_on(async {
        let uri = env.uri("object=once");
        generate(&uri, Algorithm::ES256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let signer = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap();
        let ctx = other_handle();
        let session = ctx.open_ro_session(test_slot(&ctx)).unwrap();
        session.logout().unwrap();
        drop(session);
        let bad = common::parse(&env.uri_string("object=once").replace(
            &env.pin_file().display().to_string(),
            &pin_file(env, "bad-pin", "0000-wrong").display().to_string(),
        ));
        let e = Pkcs11Signer::open(&bad, None, &opts()).await.unwrap_err();
        assert!(matches!(e, Pkcs11Error::PinIncorrect { .. }), "{e}");
        // The first signer read its (right) PIN before that refusal: it is stopped too, without
        // a C_Login, because pkjwt cannot tell which cached PIN is still good.
        let before = signer.stats().logins;
        let e = display_chain(&signer.sign(b"x").await.unwrap_err());
        assert!(e.contains("will not try it again"), "{e}");
        assert_eq!(signer.stats().logins, before);
        // Reopened with the right PIN source: works.
        let again = Pkcs11Signer::open(&uri, None, &opts()).await.unwrap();
        assert_signs(Arc::new(again), 1).await;
    }));

/// The thumbprint of the key a fresh open of `uri` announces.
async fn announced(uri: &pkjwt_core::Pkcs11Uri) -> String {
    thumbprint(
        Pkcs11Signer::open(uri, None, &opts())
            .await
            .unwrap()
            .public_key(),
    )
}

// Issue 12, item 8: after recovery the key is found again by label and id. A different key
// under the same label and id (deleted and regenerated by someone else) must not sign: the
// signer announced another public key.
softhsm_test!(swapped_key_is_refused_after_recovery, |env| rt().block_on(
    async {
        let uri = env.uri("object=swapped;id=%0b");
        generate(&uri, Algorithm::ES256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let signer = Arc::new(Pkcs11Signer::open(&uri, None, &opts()).await.unwrap());
        assert_signs(signer.clone(), 2).await;
        let old = thumbprint(signer.public_key());

        let ctx = other_handle();
        let session = ctx.open_rw_session(test_slot(&ctx)).unwrap();
        let _ = session.login(UserType::User, Some(&AuthPin::from(common::USER_PIN)));
        for h in session
            .find_objects(&[Attribute::Label(b"swapped".to_vec())])
            .unwrap()
        {
            session.destroy_object(h).unwrap();
        }
        generate(&uri, Algorithm::ES256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let new = announced(&uri).await;
        assert_ne!(old, new);
        // And the login is lost, so recovery logs in again too.
        session.logout().unwrap();
        drop(session);

        let signed = signer.stats().signatures;
        for _ in 0..3 {
            let e = signer.sign(b"payload").await.unwrap_err();
            let msg = display_chain(&e);
            eprintln!("{msg}");
            assert!(
                msg.contains(&old)
                    && msg.contains(&new)
                    && msg.contains("object=swapped")
                    && msg.contains("refus"),
                "{msg}"
            );
            assert!(!format!("{e:?}").contains(common::USER_PIN));
        }
        assert_eq!(signer.stats().signatures, signed, "no signature made");
        // The public key the signer announces has not changed.
        assert_eq!(thumbprint(signer.public_key()), old);
    }
));

// The same for RSA, with only the private key replaced: the public-key object (same id) still
// holds the announced key, but the private key's own modulus gives it away.
softhsm_test!(swapped_private_key_alone_is_refused, |env| rt().block_on(
    async {
        let uri = env.uri("object=rsa-swap;id=%0c");
        generate(&uri, Algorithm::RS256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let signer = Arc::new(
            Pkcs11Signer::open(&uri, Some(Algorithm::RS256), &opts())
                .await
                .unwrap(),
        );
        assert_signs(signer.clone(), 1).await;
        let old = thumbprint(signer.public_key());
        // A second RSA key, made under another name, then renamed to the first one's label and
        // id after the first private key is deleted; its public-key object is deleted.
        let tmp = env.uri("object=rsa-intruder;id=%0d");
        generate(&tmp, Algorithm::RS256, &GenerateOptions::default(), &opts())
            .await
            .unwrap();
        let new = announced(&tmp).await;
        let ctx = other_handle();
        let session = ctx.open_rw_session(test_slot(&ctx)).unwrap();
        let _ = session.login(UserType::User, Some(&AuthPin::from(common::USER_PIN)));
        let find = |label: &[u8], class| {
            session
                .find_objects(&[Attribute::Class(class), Attribute::Label(label.to_vec())])
                .unwrap()
        };
        for h in find(b"rsa-swap", ObjectClass::PRIVATE_KEY) {
            session.destroy_object(h).unwrap();
        }
        for h in find(b"rsa-intruder", ObjectClass::PUBLIC_KEY) {
            session.destroy_object(h).unwrap();
        }
        for h in find(b"rsa-intruder", ObjectClass::PRIVATE_KEY) {
            session
                .update_attributes(
                    h,
                    &[
                        Attribute::Label(b"rsa-swap".to_vec()),
                        Attribute::Id(vec![0x0c]),
                    ],
                )
                .unwrap();
        }
        drop(session);
        let e = display_chain(&signer.sign(b"payload").await.unwrap_err());
        assert!(
            e.contains(&old) && e.contains(&new) && e.contains("object=rsa-swap"),
            "{e}"
        );
        assert_eq!(signer.stats().signatures, 1);
    }
));
