//! Issue 12, item 13: the registration access token only goes to the origin that issued it. A
//! local registration endpoint answers with a `registration_client_uri` on another origin (a
//! second loopback port, so no traffic leaves the machine): registration, read and update must
//! refuse it, and the other origin must never see a request.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{any, post};
use pkjwt_client::{HttpOptions, RegisterOptions, Registration, RegistrationClient};
use serde_json::{Map, Value, json};

#[derive(Default)]
struct Server {
    /// What `registration_client_uri` the server answers with.
    management_uri: Mutex<String>,
    /// Authorization headers received, by path.
    seen: Mutex<Vec<(String, Option<String>)>>,
}

async fn serve(router: Router) -> String {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, router).await.unwrap() });
    format!("http://{addr}")
}

fn record(s: &Server, path: &str, h: &HeaderMap) {
    s.seen.lock().unwrap().push((
        path.into(),
        h.get("authorization")
            .map(|v| v.to_str().unwrap().to_owned()),
    ));
}

fn answer(s: &Server) -> Value {
    json!({
        "client_id": "c1",
        "registration_access_token": "RAT-SECRET",
        "registration_client_uri": *s.management_uri.lock().unwrap(),
        "token_endpoint_auth_method": "private_key_jwt",
    })
}

async fn start() -> (Arc<Server>, String, Arc<Server>, String) {
    let good = Arc::new(Server::default());
    let good_url = serve(
        Router::new()
            .route(
                "/reg",
                post(|State(s): State<Arc<Server>>, h: HeaderMap| async move {
                    record(&s, "/reg", &h);
                    (StatusCode::CREATED, axum::Json(answer(&s)))
                }),
            )
            .route(
                "/reg/c1",
                any(|State(s): State<Arc<Server>>, h: HeaderMap| async move {
                    record(&s, "/reg/c1", &h);
                    axum::Json(answer(&s))
                }),
            )
            .with_state(good.clone()),
    )
    .await;
    // The other origin: anything it receives is a leak.
    let other = Arc::new(Server::default());
    let other_url = serve(
        Router::new()
            .route(
                "/{*p}",
                any(|State(s): State<Arc<Server>>, h: HeaderMap| async move {
                    record(&s, "other", &h);
                    axum::Json(answer(&s))
                }),
            )
            .with_state(other.clone()),
    )
    .await;
    (good, good_url, other, other_url)
}

fn metadata() -> Map<String, Value> {
    let Value::Object(m) = json!({"token_endpoint_auth_method": "private_key_jwt"}) else {
        unreachable!()
    };
    m
}

#[tokio::test]
async fn registration_client_uri_on_another_origin_is_refused() {
    let (good, good_url, other, other_url) = start().await;
    let client = RegistrationClient::new(&HttpOptions::default()).unwrap();
    let endpoint = format!("{good_url}/reg");

    // Same origin: accepted.
    *good.management_uri.lock().unwrap() = format!("{good_url}/reg/c1");
    let reg = client
        .register(
            &endpoint,
            &good_url,
            &metadata(),
            &RegisterOptions::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        reg.registration_client_uri().unwrap(),
        format!("{good_url}/reg/c1")
    );

    // Another origin (another port of the same host counts): refused at registration, naming
    // both origins and without the token.
    *good.management_uri.lock().unwrap() = format!("{other_url}/steal");
    let e = client
        .register(
            &endpoint,
            &good_url,
            &metadata(),
            &RegisterOptions::default(),
        )
        .await
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not on the origin") && e.contains(&other_url) && e.contains(&good_url),
        "{e}"
    );
    assert!(!e.contains("RAT-SECRET"), "{e}");

    // A read or an update whose answer moves the management URI elsewhere is refused too, so
    // the next call cannot carry the token there.
    let e = client.read(&reg).await.unwrap_err().to_string();
    assert!(e.contains("not on the origin"), "{e}");
    let e = client
        .update(&reg, &reg.metadata())
        .await
        .unwrap_err()
        .to_string();
    assert!(e.contains("not on the origin"), "{e}");

    assert!(
        other.seen.lock().unwrap().is_empty(),
        "the other origin received {:?}",
        other.seen.lock().unwrap()
    );
    // The legitimate server got the token on its own management URI only.
    let seen = good.seen.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|(p, a)| p == "/reg/c1" && a.as_deref() == Some("Bearer RAT-SECRET"))
    );
    let _: Registration = reg;
}
