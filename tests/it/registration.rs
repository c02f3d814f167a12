//! Registration artefacts checked by implementations pkjwt does not sign with: software
//! statements (RFC 7591 §2.3) and signed registration requests (`application/jwt`) verify with
//! the `jsonwebtoken` JOSE library; a signed request reaches a registration endpoint as
//! `application/jwt` and its answer is saved; non-RFC error bodies are named as such.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use pkjwt::{Algorithm, Jwk, JwkSet, KeyUri, OpenOptions, Signer};
use pkjwt_client::{
    ClientError, ClientKeys, ClientMetadata, HttpOptions, RegisterOptions, RegistrationClient,
    Secret, SignedRequest, sign_software_statement,
};
use serde_json::Value;

fn temp_dir(tag: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pkjwt-reg-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

async fn key(dir: &std::path::Path, alg: Algorithm) -> Arc<dyn Signer> {
    let uri = format!("file:{}", dir.join(format!("{alg}.pem")).display());
    pkjwt::generate(&KeyUri::parse(&uri).unwrap(), alg, &OpenOptions::default())
        .await
        .unwrap()
}

/// Verifies `jwt` with jsonwebtoken from the signer's public JWK (parsed by jsonwebtoken itself),
/// requiring `iss`, `exp` and, when given, `aud`.
fn verify(jwt: &str, signer: &dyn Signer, iss: &str, aud: Option<&str>) -> Result<Value, String> {
    use jsonwebtoken::{Algorithm as A, DecodingKey, Validation};
    let jwk_json = Jwk::for_signing(signer.public_key(), signer.algorithm()).to_json();
    let jwk: jsonwebtoken::jwk::Jwk = serde_json::from_str(&jwk_json).map_err(|e| e.to_string())?;
    let dk = DecodingKey::from_jwk(&jwk).map_err(|e| e.to_string())?;
    let alg = match signer.algorithm() {
        Algorithm::ES256 => A::ES256,
        Algorithm::PS256 => A::PS256,
        Algorithm::EdDSA => A::EdDSA,
        other => return Err(format!("no case for {other}")),
    };
    let mut v = Validation::new(alg);
    v.set_issuer(&[iss]);
    match aud {
        Some(a) => {
            v.set_audience(&[a]);
            v.set_required_spec_claims(&["exp", "iss", "aud"]);
        }
        None => {
            v.validate_aud = false;
            v.set_required_spec_claims(&["exp", "iss"]);
        }
    }
    let header = jsonwebtoken::decode_header(jwt).map_err(|e| e.to_string())?;
    if header.kid.as_deref() != jwk.common.key_id.as_deref() {
        return Err(format!(
            "kid {:?} is not the key's {:?}",
            header.kid, jwk.common.key_id
        ));
    }
    jsonwebtoken::decode::<Value>(jwt, &dk, &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

fn metadata(signer: &dyn Signer) -> serde_json::Map<String, Value> {
    let set = JwkSet::new(vec![Jwk::for_signing(
        signer.public_key(),
        signer.algorithm(),
    )])
    .unwrap();
    let mut m = ClientMetadata::new(ClientKeys::Jwks(set), signer.algorithm());
    m.scope = Some("accounts:read".into());
    m.extra.insert("software_id".into(), "sw-42".into());
    m.to_json()
}

#[tokio::test]
async fn software_statement_verifies_with_jsonwebtoken() {
    let dir = temp_dir("ss");
    for alg in [Algorithm::ES256, Algorithm::PS256, Algorithm::EdDSA] {
        let s = key(&dir, alg).await;
        let md = metadata(s.as_ref());
        let jwt = sign_software_statement(s.as_ref(), "https://directory.example", 300, &md)
            .await
            .unwrap();
        let claims = verify(&jwt, s.as_ref(), "https://directory.example", None)
            .unwrap_or_else(|e| panic!("{alg}: jsonwebtoken refused the statement: {e}"));
        assert_eq!(claims["software_id"], "sw-42");
        assert_eq!(claims["token_endpoint_auth_method"], "private_key_jwt");
        assert_eq!(claims["token_endpoint_auth_signing_alg"], alg.name());
        assert_eq!(claims["jwks"], md["jwks"]);
        assert_eq!(claims["scope"], "accounts:read");
        assert!(claims["jti"].as_str().unwrap().len() >= 22);
        let (iat, exp) = (
            claims["iat"].as_i64().unwrap(),
            claims["exp"].as_i64().unwrap(),
        );
        assert_eq!(exp - iat, 300);
        // The check can fail: a flipped signature byte and another issuer are refused.
        let mut bad = jwt.clone().into_bytes();
        let i = bad.len() - 5;
        bad[i] = if bad[i] == b'A' { b'B' } else { b'A' };
        assert!(
            verify(
                &String::from_utf8(bad).unwrap(),
                s.as_ref(),
                "https://directory.example",
                None
            )
            .is_err()
        );
        assert!(verify(&jwt, s.as_ref(), "https://other.example", None).is_err());
    }
    let s = key(&dir, Algorithm::ES384).await;
    let e = sign_software_statement(s.as_ref(), "x", 0, &metadata(s.as_ref())).await;
    assert!(matches!(e, Err(ClientError::Config(_))));
    let _ = std::fs::remove_dir_all(&dir);
}

#[derive(Default)]
struct Seen {
    content_type: String,
    authorization: String,
    body: String,
}

async fn mock(status: StatusCode, answer: &'static str) -> (String, Arc<Mutex<Seen>>) {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let s2 = seen.clone();
    let app = Router::new().route(
        "/reg",
        post(move |headers: HeaderMap, body: String| {
            let s2 = s2.clone();
            async move {
                let h = |n: &str| {
                    headers
                        .get(n)
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned()
                };
                *s2.lock().unwrap() = Seen {
                    content_type: h("content-type"),
                    authorization: h("authorization"),
                    body,
                };
                (status, [("content-type", "application/json")], answer)
            }
        }),
    );
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/reg", l.local_addr().unwrap());
    tokio::spawn(async move {
        let _ = axum::serve(l, app).await;
    });
    (url, seen)
}

#[tokio::test]
async fn signed_request_is_application_jwt_and_verifies() {
    let dir = temp_dir("sr");
    let s = key(&dir, Algorithm::PS256).await;
    let (url, seen) = mock(
        StatusCode::CREATED,
        r#"{"client_id":"c-9","registration_access_token":"rat-secret"}"#,
    )
    .await;
    let client = RegistrationClient::new(&HttpOptions::default()).unwrap();
    let md = metadata(s.as_ref());
    let ss = sign_software_statement(s.as_ref(), "https://directory.example", 300, &md)
        .await
        .unwrap();
    let mut o = RegisterOptions::default();
    o.signed_request = Some(SignedRequest::new(s.clone(), "sw-42"));
    o.software_statement = Some(ss.clone());
    o.initial_access_token = Some(Secret::new("iat-value"));
    let reg = client
        .register(&url, "https://as.example", &md, &o)
        .await
        .unwrap();
    assert_eq!(reg.client_id(), "c-9");
    assert!(!format!("{reg:?}").contains("rat-secret"));
    let seen = seen.lock().unwrap();
    assert_eq!(seen.content_type, "application/jwt");
    assert_eq!(seen.authorization, "Bearer iat-value");
    let claims = verify(&seen.body, s.as_ref(), "sw-42", Some("https://as.example"))
        .unwrap_or_else(|e| panic!("jsonwebtoken refused the signed request: {e}"));
    assert_eq!(claims["software_statement"], ss.as_str());
    assert_eq!(claims["token_endpoint_auth_method"], "private_key_jwt");
    assert_eq!(claims["jwks"], md["jwks"]);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn error_bodies_are_named() {
    let client = RegistrationClient::new(&HttpOptions::default()).unwrap();
    let md = serde_json::Map::new();
    let (url, _) = mock(
        StatusCode::BAD_REQUEST,
        r#"{"error":"invalid_software_statement","error_description":"expired"}"#,
    )
    .await;
    let e = client
        .register(&url, "https://as", &md, &RegisterOptions::default())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(400));
    let t = e.to_string();
    assert!(
        t.contains("HTTP 400: invalid_software_statement (expired)") && t.contains("refused"),
        "{t}"
    );
    let (url, _) = mock(StatusCode::BAD_GATEWAY, "<html>oops</html>").await;
    let t = client
        .register(&url, "https://as", &md, &RegisterOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(t.contains("HTTP 502") && t.contains("RFC 7591"), "{t}");
    let (url, _) = mock(StatusCode::CREATED, r#"{"no_client_id":1}"#).await;
    let t = client
        .register(&url, "https://as", &md, &RegisterOptions::default())
        .await
        .unwrap_err()
        .to_string();
    assert!(t.contains("no client_id"), "{t}");
    // Plain http to a non-loopback host is refused before any request.
    let t = client
        .register(
            "http://example.com/reg",
            "https://as",
            &md,
            &RegisterOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(t.contains("not an https:// URL"), "{t}");
}
