//! The public and admin routers over a rotation state file, with a clock the test moves:
//! what `/jwks` publishes in each phase, its headers, `/healthz`, and a "restart" (a second
//! service reading the same file) mid-rotation.

#![allow(clippy::unwrap_used)] // test code: a failed unwrap is a failed test.

use std::sync::Arc;

use axum::body::{Body, to_bytes};
use axum::http::{Request, StatusCode};
use pkjwt_core::{Algorithm, FixedClock, Jwk, JwkSet};
use pkjwt_jwks::{JwksService, RotationState, RotationTiming, ServeOptions, check_admin_addr};
use tower::ServiceExt;

fn key(dir: &std::path::Path, name: &str) -> (String, Jwk) {
    let uri = format!("file:{}", dir.join(name).display());
    let f = pkjwt_core::KeyUri::parse(&uri).unwrap();
    let s = match f {
        pkjwt_core::KeyUri::File(f) => {
            pkjwt_file::generate(&f, Algorithm::ES256, &Default::default()).unwrap()
        }
        _ => unreachable!(),
    };
    use pkjwt_core::Signer;
    (uri, Jwk::for_signing(s.public_key(), Algorithm::ES256))
}

async fn get(svc: &JwksService, path: &str) -> (StatusCode, Option<String>, String) {
    let r = svc
        .router()
        .oneshot(Request::get(path).body(Body::empty()).unwrap())
        .await
        .unwrap();
    let cc = r
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_owned());
    let status = r.status();
    let body = to_bytes(r.into_body(), 1 << 20).await.unwrap();
    (status, cc, String::from_utf8(body.to_vec()).unwrap())
}

fn kids(body: &str) -> Vec<String> {
    JwkSet::from_json(body)
        .unwrap()
        .keys()
        .iter()
        .map(|k| k.kid.clone().unwrap())
        .collect()
}

#[tokio::test]
async fn rotation_phases_are_served_and_survive_a_restart() {
    let dir = std::env::temp_dir().join(format!("pkjwt-jwks-router-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state_path = dir.join("rotation.json");
    let (uri_a, jwk_a) = key(&dir, "a.pem");
    let (uri_b, jwk_b) = key(&dir, "b.pem");
    let (ka, kb) = (jwk_a.kid.clone().unwrap(), jwk_b.kid.clone().unwrap());

    let clock = Arc::new(FixedClock::new(1_000));
    let opts = || {
        let mut o = ServeOptions::default();
        o.max_age_secs = 30;
        o.clock = clock.clone();
        o
    };
    // No state file yet: nothing published, unhealthy.
    let svc = JwksService::new(vec![], Some(state_path.clone()), opts()).unwrap();
    assert_eq!(
        get(&svc, "/healthz").await.0,
        StatusCode::SERVICE_UNAVAILABLE
    );

    let mut st = RotationState::new();
    st.init(&uri_a, jwk_a, 1_000).unwrap();
    st.save(&state_path).unwrap();
    let (status, cc, body) = get(&svc, "/jwks").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cc.as_deref(), Some("public, max-age=30"));
    assert_eq!(kids(&body), vec![ka.clone()]);
    assert_eq!(get(&svc, "/.well-known/jwks.json").await.2, body);
    assert_eq!(get(&svc, "/healthz").await.0, StatusCode::OK);

    // Rotation begins at 2000: b pre-published for 100 s, a kept 50 s after the switch.
    clock.set(2_000);
    let mut st = RotationState::load(&state_path).unwrap();
    let timing = RotationTiming::new(100, 50);
    st.begin(&uri_b, jwk_b, 2_000, timing).unwrap();
    st.save(&state_path).unwrap();
    assert_eq!(kids(&get(&svc, "/jwks").await.2), [ka.clone(), kb.clone()]);
    assert_eq!(svc.state().signing(2_050).unwrap().kid(), ka);

    // "Restart" mid-rotation: a new service on the same file serves the same thing.
    clock.set(2_050);
    let restarted = JwksService::new(vec![], Some(state_path.clone()), opts()).unwrap();
    assert_eq!(
        kids(&get(&restarted, "/jwks").await.2),
        [ka.clone(), kb.clone()]
    );
    clock.set(2_120);
    assert_eq!(restarted.state().signing(2_120).unwrap().kid(), kb);
    assert_eq!(
        kids(&get(&restarted, "/jwks").await.2),
        [ka.clone(), kb.clone()]
    );
    clock.set(2_150);
    assert_eq!(kids(&get(&restarted, "/jwks").await.2), vec![kb.clone()]);

    // A corrupted file keeps the last good set in service and makes /healthz fail, without
    // telling an unauthenticated caller why (the detail is logged and on the admin /status).
    std::fs::write(&state_path, "{not json").unwrap();
    let (status, _, body) = get(&restarted, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, "unhealthy\n");
    assert!(restarted.status()["state_error"].is_string());
    assert_eq!(kids(&get(&restarted, "/jwks").await.2), [kb]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn admin_listener_is_loopback_only() {
    assert!(check_admin_addr("127.0.0.1:9000".parse().unwrap()).is_ok());
    assert!(check_admin_addr("[::1]:9000".parse().unwrap()).is_ok());
    let e = check_admin_addr("0.0.0.0:9000".parse().unwrap()).unwrap_err();
    assert!(e.to_string().contains("loopback"), "{e}");
}

#[tokio::test]
async fn healthz_does_not_disclose_state_errors() {
    let dir = std::env::temp_dir().join(format!("pkjwt-jwks-healthz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let state_path = dir.join("rotation.json");
    let (uri_a, jwk_a) = key(&dir, "a.pem");
    let mut st = RotationState::new();
    st.init(&uri_a, jwk_a, 0).unwrap();
    st.save(&state_path).unwrap();
    let svc = JwksService::new(vec![], Some(state_path.clone()), ServeOptions::default()).unwrap();
    assert_eq!(get(&svc, "/healthz").await.0, StatusCode::OK);

    // Invalid content naming a key URI and a secret-looking marker.
    let content = r#"{"version":1,"keys":[{"uri":"pkcs11:token=t;object=o?pin-value=SECRET-MARKER","jwk":{"kty":"OKP"}}]}"#;
    std::fs::write(&state_path, content).unwrap();
    let (status, _, body) = get(&svc, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let path = state_path.display().to_string();
    for leak in [
        path.as_str(),
        "rotation.json",
        "SECRET-MARKER",
        "pkcs11:",
        "OKP",
        "version",
    ] {
        assert!(!body.contains(leak), "{leak:?} in {body:?}");
    }

    // Unreadable: a directory where the file should be.
    std::fs::remove_file(&state_path).unwrap();
    std::fs::create_dir(&state_path).unwrap();
    let (status, _, body) = get(&svc, "/healthz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        !body.contains(path.as_str()) && !body.contains("rotation.json"),
        "{body}"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn private_static_keys_are_refused() {
    let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
    let public = Jwk::from_json(&format!(
        r#"{{"kty":"OKP","crv":"Ed25519","x":"{x}","kid":"pub-1"}}"#
    ))
    .unwrap();
    let svc = JwksService::new(vec![public.clone()], None, ServeOptions::default()).unwrap();
    assert_eq!(svc.jwks().unwrap().keys().len(), 1);

    for m in ["d", "p", "q", "dp", "dq", "qi", "oth", "k"] {
        let mut private = public.clone().with_kid("priv-1");
        private
            .other
            .insert(m.to_owned(), serde_json::Value::String(x.to_owned()));
        let e = JwksService::new(vec![private], None, ServeOptions::default()).unwrap_err();
        assert!(
            matches!(&e, pkjwt_jwks::JwksError::NotPublic { kid, .. } if kid == "priv-1"),
            "{e:?}"
        );
        let text = e.to_string();
        assert!(
            text.contains("priv-1") && text.contains(&format!("\"{m}\"")),
            "{text}"
        );
        assert!(!text.contains(x), "{text}");
    }
    // A symmetric key (kty oct with k) is refused as well.
    let mut oct = public.with_kid("oct-1");
    oct.kty = "oct".into();
    oct.other
        .insert("k".into(), serde_json::Value::String(x.to_owned()));
    let e = JwksService::new(vec![oct], None, ServeOptions::default()).unwrap_err();
    assert!(e.to_string().contains("oct-1"), "{e}");
}
