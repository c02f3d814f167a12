//! RFC 9068 access-token validation against an authorization server found through discovery
//! (a local HTTP server), and the axum layer that protects routes with it.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use axum::routing::get;
use common::http::{Answer, Server};
use common::*;
use pkjwt_core::{Algorithm, FixedClock};
use pkjwt_verify::layer::AccessTokenLayer;
use pkjwt_verify::{
    AccessTokenClaims, AccessTokenPolicy, AccessTokenValidator, DiscoveryError, FetchPolicy,
};
use serde_json::{Value, json};
use tower::ServiceExt;

const API: &str = "https://api.example.com";

struct As {
    server: Server,
    key: TestSigner,
}

impl As {
    async fn start() -> As {
        let server = Server::start().await;
        let key = TestSigner::new(Algorithm::ES256);
        server.set(
            "/.well-known/openid-configuration",
            Answer::ok(
                json!({"issuer": server.base, "jwks_uri": server.url("/jwks"), "token_endpoint": server.url("/token")})
                    .to_string(),
            ),
        );
        server.set("/jwks", Answer::ok(jwks(vec![key.jwk("as-1")]).to_json()));
        As { server, key }
    }

    fn issuer(&self) -> String {
        self.server.base.clone()
    }

    fn claims(&self) -> Value {
        json!({
            "iss": self.issuer(), "aud": API, "sub": "client-1", "client_id": "client-1",
            "iat": NOW, "exp": NOW + 600, "jti": "at-1", "scope": "openid accounts:read",
        })
    }

    fn token(&self, claims: &Value) -> String {
        craft(
            &self.key,
            &json!({"alg": "ES256", "kid": "as-1", "typ": "at+jwt"}),
            claims,
        )
    }

    async fn validator(&self) -> AccessTokenValidator {
        AccessTokenValidator::discover(
            &self.issuer(),
            API,
            AccessTokenPolicy::default(),
            FetchPolicy::default(),
        )
        .await
        .unwrap()
        .with_clock(Arc::new(FixedClock::new(NOW)))
    }
}

fn set(mut v: Value, k: &str, x: Value) -> Value {
    v[k] = x;
    v
}

fn unset(mut v: Value, k: &str) -> Value {
    v.as_object_mut().unwrap().remove(k);
    v
}

#[tokio::test]
async fn valid_access_token_via_discovery() {
    let a = As::start().await;
    let v = a.validator().await;
    let c = v.validate(&a.token(&a.claims())).await.unwrap();
    assert_eq!(c.client_id, "client-1");
    assert_eq!(c.subject, "client-1");
    assert!(c.has_scope("accounts:read") && !c.has_scope("accounts"));
    // aud may be an array for access tokens (RFC 9068 §3).
    let t = a.token(&set(a.claims(), "aud", json!(["https://other", API])));
    v.validate(&t).await.unwrap();
    v.validate_with_scopes(&a.token(&a.claims()), &["openid", "accounts:read"])
        .await
        .unwrap();
}

#[tokio::test]
async fn access_token_rejections_name_the_claim() {
    let a = As::start().await;
    let v = a.validator().await;
    let other = TestSigner::new(Algorithm::ES256);
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "typ JWT (an ID token or plain JWT)",
            craft(
                &a.key,
                &json!({"alg": "ES256", "kid": "as-1", "typ": "JWT"}),
                &a.claims(),
            ),
            "wrong_typ",
            "at+jwt",
        ),
        (
            "a client assertion presented as an access token",
            craft(&a.key, &header("ES256", "as-1"), &a.claims()),
            "wrong_typ",
            "client-authentication+jwt",
        ),
        (
            "no typ",
            craft(&a.key, &json!({"alg": "ES256", "kid": "as-1"}), &a.claims()),
            "missing_typ",
            "at+jwt",
        ),
        (
            "wrong issuer",
            a.token(&set(a.claims(), "iss", json!("https://evil"))),
            "issuer_mismatch",
            "https://evil",
        ),
        (
            "wrong audience",
            a.token(&set(a.claims(), "aud", json!("https://api.other"))),
            "audience_mismatch",
            "https://api.other",
        ),
        (
            "expired",
            a.token(&set(a.claims(), "exp", json!(NOW - 60))),
            "expired",
            "\"exp\"",
        ),
        (
            "no iat",
            a.token(&unset(a.claims(), "iat")),
            "missing_claim",
            "\"iat\"",
        ),
        (
            "no client_id",
            a.token(&unset(a.claims(), "client_id")),
            "missing_claim",
            "\"client_id\"",
        ),
        (
            "no sub",
            a.token(&unset(a.claims(), "sub")),
            "missing_claim",
            "\"sub\"",
        ),
        (
            "scope not a string",
            a.token(&set(a.claims(), "scope", json!(["a"]))),
            "claim_type",
            "\"scope\"",
        ),
        (
            "signed by a key the server does not publish",
            craft(
                &other,
                &json!({"alg": "ES256", "kid": "as-2", "typ": "at+jwt"}),
                &a.claims(),
            ),
            "unknown_kid",
            "as-2",
        ),
        (
            "forged with the server's kid",
            craft(
                &other,
                &json!({"alg": "ES256", "kid": "as-1", "typ": "at+jwt"}),
                &a.claims(),
            ),
            "bad_signature",
            "as-1",
        ),
    ];
    for (name, token, kind, mention) in cases {
        let e = v.validate(&token).await.unwrap_err();
        assert_eq!(e.kind(), kind, "{name}: {e}");
        assert!(
            e.to_string().contains(mention),
            "{name}: {e} lacks {mention}"
        );
    }
    let e = v
        .validate_with_scopes(&a.token(&a.claims()), &["accounts:write"])
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "insufficient_scope");
    assert!(e.to_string().contains("accounts:write"), "{e}");
    // explain shows every check.
    let r = v
        .explain(&a.token(&unset(a.claims(), "client_id")), &[])
        .await;
    assert_eq!(r.rejection().unwrap().kind(), "missing_claim");
    assert!(r.to_string().contains("✓ signature"), "{r}");
}

#[tokio::test]
async fn discovery_checks_the_issuer_and_falls_back_to_rfc8414() {
    let a = As::start().await;
    // Metadata claiming another issuer (here: a trailing slash) is refused.
    a.server.set(
        "/.well-known/openid-configuration",
        Answer::ok(
            json!({"issuer": format!("{}/", a.issuer()), "jwks_uri": a.server.url("/jwks")})
                .to_string(),
        ),
    );
    let e = AccessTokenValidator::discover(
        &a.issuer(),
        API,
        AccessTokenPolicy::default(),
        FetchPolicy::default(),
    )
    .await
    .unwrap_err();
    assert!(matches!(e, DiscoveryError::IssuerMismatch { .. }), "{e}");

    // Only RFC 8414 metadata: found there.
    let s = Server::start().await;
    s.set(
        "/.well-known/oauth-authorization-server",
        Answer::ok(json!({"issuer": s.base, "jwks_uri": a.server.url("/jwks")}).to_string()),
    );
    let v = AccessTokenValidator::discover(
        &s.base,
        API,
        AccessTokenPolicy::default(),
        FetchPolicy::default(),
    )
    .await
    .unwrap()
    .with_clock(Arc::new(FixedClock::new(NOW)));
    let claims = set(a.claims(), "iss", json!(s.base));
    v.validate(&a.token(&claims)).await.unwrap();

    // jwks_uri over plain http to a non-loopback host is refused.
    s.set(
        "/.well-known/oauth-authorization-server",
        Answer::ok(json!({"issuer": s.base, "jwks_uri": "http://as.example.com/jwks"}).to_string()),
    );
    let e = AccessTokenValidator::discover(
        &s.base,
        API,
        AccessTokenPolicy::default(),
        FetchPolicy::default(),
    )
    .await
    .unwrap_err();
    // The JWKS error is the source of `discovery`: the chain shows it.
    let e = pkjwt_core::display_chain(&e);
    assert!(e.contains("http://as.example.com/jwks"), "{e}");
}

async fn balance(claims: AccessTokenClaims) -> String {
    format!("hello {}", claims.client_id)
}

#[tokio::test]
async fn axum_layer_protects_routes() {
    let a = As::start().await;
    let v = Arc::new(a.validator().await);
    let app = Router::new()
        .route("/balance", get(balance))
        .layer(AccessTokenLayer::new(v.clone()).require_scopes(["accounts:read"]));
    let call = |auth: Option<String>| {
        let app = app.clone();
        async move {
            let mut req = Request::builder().uri("/balance");
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
            let status = resp.status();
            let www = resp
                .headers()
                .get("www-authenticate")
                .map(|h| h.to_str().unwrap().to_string());
            let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
                .await
                .unwrap();
            (status, www, String::from_utf8(body.to_vec()).unwrap())
        }
    };

    // No token: the bare challenge of RFC 6750 §3.1, no error code.
    let (s, www, _) = call(None).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some("Bearer"));

    let (s, www, _) = call(Some(format!("Basic {}", a.token(&a.claims())))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(www.as_deref(), Some("Bearer"));

    // A malformed header: 400 invalid_request.
    for bad in ["Bearer", "Bearer   ", "Bearer a b"] {
        let (s, www, _) = call(Some(bad.to_owned())).await;
        assert_eq!(s, StatusCode::BAD_REQUEST, "{bad:?}");
        assert!(www.unwrap().contains("error=\"invalid_request\""));
    }

    let expired = a.token(&set(a.claims(), "exp", json!(NOW - 60)));
    let (s, www, body) = call(Some(format!("Bearer {expired}"))).await;
    assert_eq!(s, StatusCode::UNAUTHORIZED);
    assert_eq!(
        www.as_deref(),
        Some("Bearer error=\"invalid_token\", error_description=\"the access token is expired\"")
    );
    assert!(body.contains("\"error\":\"invalid_token\""), "{body}");

    // Refusals that used to name internals (known kids, expected audience, JWKS URL) and
    // values from the token: the response carries only the generic class.
    let jwks_url = a.server.url("/jwks");
    let unknown_kid = craft(
        &a.key,
        &json!({"alg": "ES256", "kid": "attacker\"kid", "typ": "at+jwt"}),
        &a.claims(),
    );
    let wrong_aud = a.token(&set(a.claims(), "aud", json!("https://evil.example/\"x")));
    for token in [unknown_kid, wrong_aud] {
        let (s, www, body) = call(Some(format!("Bearer {token}"))).await;
        assert_eq!(s, StatusCode::UNAUTHORIZED);
        let www = www.unwrap();
        assert_eq!(
            www,
            "Bearer error=\"invalid_token\", error_description=\"the access token is invalid\""
        );
        for leak in [API, jwks_url.as_str(), "evil.example", "attacker", "as-1"] {
            assert!(
                !www.contains(leak) && !body.contains(leak),
                "{leak:?}: {www} / {body}"
            );
        }
    }

    let narrow = a.token(&set(a.claims(), "scope", json!("openid")));
    let (s, www, body) = call(Some(format!("Bearer {narrow}"))).await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert!(www.unwrap().contains("insufficient_scope"));
    assert!(
        !body.contains("accounts:read") && !body.contains("openid"),
        "{body}"
    );

    let (s, _, body) = call(Some(format!("bearer {}", a.token(&a.claims())))).await;
    assert_eq!(s, StatusCode::OK, "{body}");
    assert_eq!(body, "hello client-1");
}
