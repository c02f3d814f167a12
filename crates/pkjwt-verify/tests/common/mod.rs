//! Test helpers: a `Signer` over aws-lc-rs (pkjwt's file backend is written elsewhere, so the
//! tests carry their own), key sets, a raw token crafter for hostile inputs, and an independent
//! signer (`jsonwebtoken` with its RustCrypto backend).
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::Arc;

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use pkjwt_core::{Algorithm, Jwk, JwkSet, PublicKey, Signature, Signer};
use serde_json::Value;

pub const AS: &str = "https://as.example.com";
pub const CLIENT: &str = "client-1";
pub const NOW: i64 = 1_800_000_000;

enum Inner {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair),
    Ed(Ed25519KeyPair),
}

/// A private key in memory that follows pkjwt's `Signer` contract (ECDSA as DER).
pub struct TestSigner {
    alg: Algorithm,
    public: PublicKey,
    inner: Inner,
    pkcs8: Vec<u8>,
}

impl std::fmt::Debug for TestSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TestSigner({}, {:?})", self.alg, self.public)
    }
}

impl TestSigner {
    pub fn new(alg: Algorithm) -> Self {
        use aws_lc_rs::encoding::AsDer;
        let ec = |s: &'static sig::EcdsaSigningAlgorithm, curve| {
            let k = EcdsaKeyPair::generate(s).unwrap();
            let public = PublicKey::ec_from_point(curve, k.public_key().as_ref()).unwrap();
            let pkcs8 = k.to_pkcs8v1().unwrap().as_ref().to_vec();
            (public, Inner::Ec(k), pkcs8)
        };
        let (public, inner, pkcs8) = match alg {
            Algorithm::ES256 => ec(
                &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                pkjwt_core::Curve::P256,
            ),
            Algorithm::ES384 => ec(
                &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                pkjwt_core::Curve::P384,
            ),
            Algorithm::ES512 => ec(
                &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
                pkjwt_core::Curve::P521,
            ),
            Algorithm::ES256K => ec(
                &sig::ECDSA_P256K1_SHA256_ASN1_SIGNING,
                pkjwt_core::Curve::Secp256k1,
            ),
            Algorithm::EdDSA => {
                let k = Ed25519KeyPair::generate().unwrap();
                let public = PublicKey::ed25519(k.public_key().as_ref()).unwrap();
                let pkcs8 = k.to_pkcs8v1().unwrap().as_ref().to_vec();
                (public, Inner::Ed(k), pkcs8)
            }
            _ => {
                let k = RsaKeyPair::generate(KeySize::Rsa2048).unwrap();
                let public = PublicKey::from_pkcs1_der(k.public_key().as_ref()).unwrap();
                let der: aws_lc_rs::encoding::Pkcs8V1Der<'_> = k.as_der().unwrap();
                let pkcs8 = der.as_ref().to_vec();
                (public, Inner::Rsa(k), pkcs8)
            }
        };
        TestSigner {
            alg,
            public,
            inner,
            pkcs8,
        }
    }

    /// The same key, claiming another algorithm (for alg/key mismatch cases).
    pub fn jwk(&self, kid: &str) -> Jwk {
        Jwk::for_signing(&self.public, self.alg).with_kid(kid)
    }

    /// Signs bytes; ECDSA as DER (the Signer contract).
    pub fn sign_bytes(&self, alg: Algorithm, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match &self.inner {
            Inner::Ec(k) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
            Inner::Ed(k) => k.sign(msg).as_ref().to_vec(),
            Inner::Rsa(k) => {
                let enc: &'static dyn sig::RsaEncoding = match alg {
                    Algorithm::PS256 => &sig::RSA_PSS_SHA256,
                    Algorithm::PS384 => &sig::RSA_PSS_SHA384,
                    Algorithm::PS512 => &sig::RSA_PSS_SHA512,
                    Algorithm::RS384 => &sig::RSA_PKCS1_SHA384,
                    Algorithm::RS512 => &sig::RSA_PKCS1_SHA512,
                    _ => &sig::RSA_PKCS1_SHA256,
                };
                let mut out = vec![0u8; k.public_modulus_len()];
                k.sign(enc, &rng, msg, &mut out).unwrap();
                out
            }
        }
    }

    /// PKCS#1 DER of an RSA key, PKCS#8 otherwise (what jsonwebtoken wants).
    pub fn independent_key(&self) -> jsonwebtoken::EncodingKey {
        match &self.inner {
            Inner::Ec(_) => jsonwebtoken::EncodingKey::from_ec_der(&self.pkcs8),
            Inner::Ed(_) => jsonwebtoken::EncodingKey::from_ed_der(&self.pkcs8),
            Inner::Rsa(_) => {
                use rsa::pkcs1::EncodeRsaPrivateKey;
                use rsa::pkcs8::DecodePrivateKey;
                let k = rsa::RsaPrivateKey::from_pkcs8_der(&self.pkcs8).unwrap();
                jsonwebtoken::EncodingKey::from_rsa_der(k.to_pkcs1_der().unwrap().as_bytes())
            }
        }
    }
}

#[async_trait]
impl Signer for TestSigner {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
    fn public_key(&self) -> &PublicKey {
        &self.public
    }
    async fn sign(&self, message: &[u8]) -> pkjwt_core::Result<Signature> {
        Ok(Signature::new(self.sign_bytes(self.alg, message)))
    }
}

pub fn b64(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Signing input from raw JSON texts (so tests can send duplicate members, odd types, …).
pub fn signing_input(header: &str, claims: &str) -> String {
    format!("{}.{}", b64(header), b64(claims))
}

/// A JWS over raw header/claims texts, signed by `signer` with `alg`; ECDSA converted to r||s
/// (by this test helper, independently of pkjwt-core).
pub fn craft_raw(signer: &TestSigner, alg: Algorithm, header: &str, claims: &str) -> String {
    let input = signing_input(header, claims);
    let mut s = signer.sign_bytes(alg, input.as_bytes());
    if let Some(curve) = alg.curve() {
        s = der_to_fixed(&s, curve.field_len());
    }
    format!("{input}.{}", b64(s))
}

/// Like [`craft_raw`] with JSON values.
pub fn craft(signer: &TestSigner, header: &Value, claims: &Value) -> String {
    let alg: Algorithm = header["alg"].as_str().unwrap().parse().unwrap();
    craft_raw(signer, alg, &header.to_string(), &claims.to_string())
}

/// Minimal DER ECDSA-Sig-Value → r||s for test tokens.
pub fn der_to_fixed(der: &[u8], field: usize) -> Vec<u8> {
    assert_eq!(der[0], 0x30);
    let mut i = if der[1] & 0x80 != 0 {
        2 + (der[1] & 0x7f) as usize
    } else {
        2
    };
    let mut out = Vec::new();
    for _ in 0..2 {
        assert_eq!(der[i], 0x02);
        let len = der[i + 1] as usize;
        let v = &der[i + 2..i + 2 + len];
        let v = &v[v.iter().take_while(|b| **b == 0).count()..];
        let mut padded = vec![0u8; field - v.len()];
        padded.extend_from_slice(v);
        out.extend(padded);
        i += 2 + len;
    }
    out
}

pub fn header(alg: &str, kid: &str) -> Value {
    serde_json::json!({"alg": alg, "kid": kid, "typ": "client-authentication+jwt"})
}

/// Claims valid at [`NOW`] for [`CLIENT`] and [`AS`].
pub fn claims(jti: &str) -> Value {
    serde_json::json!({
        "iss": CLIENT, "sub": CLIENT, "aud": AS,
        "iat": NOW, "nbf": NOW, "exp": NOW + 60, "jti": jti,
    })
}

pub fn jwks(keys: Vec<Jwk>) -> JwkSet {
    JwkSet::new(keys).unwrap()
}

pub fn keyset(set: &JwkSet) -> Arc<pkjwt_verify::KeySet> {
    Arc::new(pkjwt_verify::KeySet::from_jwks(set).unwrap())
}

/// A tiny HTTP server on 127.0.0.1 whose answer the test changes at will.
pub mod http {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::Duration;

    use axum::Router;
    use axum::body::Body;
    use axum::extract::State;
    use axum::http::{Response, StatusCode};
    use axum::routing::get;

    #[derive(Clone, Debug)]
    pub struct Answer {
        pub status: u16,
        pub body: String,
        pub cache_control: Option<String>,
        pub delay: Duration,
        pub location: Option<String>,
    }

    impl Answer {
        pub fn ok(body: impl Into<String>) -> Self {
            Answer {
                status: 200,
                body: body.into(),
                cache_control: None,
                delay: Duration::ZERO,
                location: None,
            }
        }
    }

    #[derive(Default)]
    pub struct Shared {
        pub routes: Mutex<std::collections::HashMap<String, Answer>>,
        pub hits: AtomicUsize,
    }

    pub struct Server {
        pub base: String,
        pub shared: Arc<Shared>,
        task: tokio::task::JoinHandle<()>,
    }

    impl Drop for Server {
        fn drop(&mut self) {
            self.task.abort();
        }
    }

    impl Server {
        pub async fn start() -> Server {
            let shared = Arc::new(Shared::default());
            let app = Router::new()
                .route("/{*path}", get(handle))
                .with_state(shared.clone());
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let task = tokio::spawn(async move {
                axum::serve(listener, app).await.unwrap();
            });
            Server { base, shared, task }
        }

        pub fn set(&self, path: &str, a: Answer) {
            self.shared
                .routes
                .lock()
                .unwrap()
                .insert(path.to_string(), a);
        }

        pub fn url(&self, path: &str) -> String {
            format!("{}{path}", self.base)
        }

        pub fn hits(&self) -> usize {
            self.shared.hits.load(Ordering::SeqCst)
        }
    }

    async fn handle(State(s): State<Arc<Shared>>, uri: axum::http::Uri) -> Response<Body> {
        s.hits.fetch_add(1, Ordering::SeqCst);
        let a = s.routes.lock().unwrap().get(uri.path()).cloned();
        let Some(a) = a else {
            let mut r = Response::new(Body::from("not found"));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return r;
        };
        if !a.delay.is_zero() {
            tokio::time::sleep(a.delay).await;
        }
        let mut r = Response::new(Body::from(a.body));
        *r.status_mut() = StatusCode::from_u16(a.status).unwrap();
        if let Some(cc) = a.cache_control {
            r.headers_mut().insert("cache-control", cc.parse().unwrap());
        }
        if let Some(l) = a.location {
            r.headers_mut().insert("location", l.parse().unwrap());
        }
        r.headers_mut()
            .insert("content-type", "application/json".parse().unwrap());
        r
    }
}
