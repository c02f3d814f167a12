//! A client's JWKS host failing or slow (issue 12, item 5), against a real HTTP server on
//! 127.0.0.1: a stale set keeps serving within its grace period without waiting for the refetch,
//! a failing host gets at most one request per backoff window however many tokens arrive, past
//! the grace the error names the URL and the last failure, and once the host is back (and the
//! backoff has passed) the new set is used.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::http::{Answer, Server};
use common::*;
use pkjwt_core::{Algorithm, FixedClock};
use pkjwt_verify::{AssertionVerifier, FetchPolicy, RemoteJwks, VerifyPolicy};

fn cc(body: String, cache_control: &str) -> Answer {
    let mut a = Answer::ok(body);
    a.cache_control = Some(cache_control.into());
    a
}

fn status(code: u16) -> Answer {
    let mut a = Answer::ok("down");
    a.status = code;
    a
}

/// A token signed by `signer` under `kid`, valid at `t`.
fn token_at(signer: &TestSigner, kid: &str, jti: &str, t: i64) -> String {
    let mut c = claims(jti);
    c["iat"] = t.into();
    c["nbf"] = t.into();
    c["exp"] = (t + 60).into();
    craft(signer, &header("ES256", kid), &c)
}

/// Waits until no refetch is in flight (a background refetch started by a caller that was
/// answered from the stale set).
async fn settle(r: &RemoteJwks) {
    let start = Instant::now();
    while r.fetch_in_flight() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "a refetch never finished"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

struct Setup {
    server: Server,
    clock: Arc<FixedClock>,
    remote: Arc<RemoteJwks>,
    verifier: Arc<AssertionVerifier>,
    signer: Arc<TestSigner>,
}

/// A set with key "k" fetched at NOW, fresh for 60 s (so stale from NOW + 60, and within the
/// default grace until NOW + 60 + 3600).
async fn setup() -> Setup {
    let server = Server::start().await;
    let signer = Arc::new(TestSigner::new(Algorithm::ES256));
    server.set(
        "/jwks",
        cc(jwks(vec![signer.jwk("k")]).to_json(), "max-age=60"),
    );
    let clock = Arc::new(FixedClock::new(NOW));
    let remote = Arc::new(
        RemoteJwks::new(&server.url("/jwks"), FetchPolicy::default())
            .unwrap()
            .with_clock(clock.clone()),
    );
    remote.keys(None).await.unwrap();
    assert_eq!(server.hits(), 1);
    let verifier = Arc::new(
        AssertionVerifier::new(AS, VerifyPolicy::default())
            .unwrap()
            .with_clock(clock.clone()),
    );
    Setup {
        server,
        clock,
        remote,
        verifier,
        signer,
    }
}

/// `n` verifications of tokens under "k" at once; all must be accepted.
async fn burst(s: &Setup, n: usize, tag: &str) {
    let t = pkjwt_core::Clock::now(s.clock.as_ref());
    let mut tasks = Vec::new();
    for i in 0..n {
        let tok = token_at(&s.signer, "k", &format!("{tag}-{i}"), t);
        let (r, v) = (s.remote.clone(), s.verifier.clone());
        tasks.push(tokio::spawn(async move {
            v.verify(&tok, CLIENT, r.as_ref()).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_host_gets_one_request_per_backoff_window_and_the_stale_set_serves() {
    let s = setup().await;
    s.server.set("/jwks", status(500));

    // Stale, within the grace: 32 verifications at once all pass with the stale key, and the
    // failing host sees one refetch, not 32.
    s.clock.set(NOW + 61);
    burst(&s, 32, "a").await;
    settle(&s.remote).await;
    assert_eq!(s.server.hits(), 2, "one refetch for 32 stale verifications");
    assert_eq!(s.remote.fetch_count(), 2);

    // Inside the first backoff window (10 s after the failure): no request at all.
    s.clock.set(NOW + 70);
    burst(&s, 32, "b").await;
    settle(&s.remote).await;
    assert_eq!(s.server.hits(), 2, "no refetch inside the backoff window");

    // The window has passed: exactly one more request, which fails again.
    s.clock.set(NOW + 71);
    burst(&s, 32, "c").await;
    settle(&s.remote).await;
    assert_eq!(s.server.hits(), 3);

    // The backoff doubles: nothing for 20 s after the second failure, then one request.
    s.clock.set(NOW + 90);
    burst(&s, 8, "d").await;
    settle(&s.remote).await;
    assert_eq!(s.server.hits(), 3, "second window is 20 s");
    s.clock.set(NOW + 91);
    burst(&s, 8, "e").await;
    settle(&s.remote).await;
    assert_eq!(s.server.hits(), 4);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callers_with_a_stale_set_do_not_wait_for_a_slow_refetch() {
    let s = setup().await;
    let delay = Duration::from_secs(3);
    let next = TestSigner::new(Algorithm::ES256);
    let mut slow = cc(
        jwks(vec![s.signer.jwk("k"), next.jwk("k2")]).to_json(),
        "max-age=60",
    );
    slow.delay = delay;
    s.server.set("/jwks", slow);
    s.clock.set(NOW + 61);

    let tokens: Vec<String> = (0..16)
        .map(|i| token_at(&s.signer, "k", &format!("slow-{i}"), NOW + 61))
        .collect();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for tok in tokens {
        let (r, v) = (s.remote.clone(), s.verifier.clone());
        tasks.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let res = v.verify(&tok, CLIENT, r.as_ref()).await;
            (res, t0.elapsed())
        }));
    }
    let mut slowest = Duration::ZERO;
    for t in tasks {
        let (res, took) = t.await.unwrap();
        res.unwrap();
        slowest = slowest.max(took);
    }
    let all_answered = started.elapsed();
    // Every caller was answered from the stale set while the refetch was still running: far
    // sooner than the server's delay, and before the refetch ended.
    assert!(
        slowest < delay / 3 && all_answered < delay / 3,
        "stale callers waited for the refetch: slowest {slowest:?}, all {all_answered:?}, \
         server delay {delay:?}"
    );
    assert!(
        s.remote.fetch_in_flight(),
        "the refetch should still be running"
    );
    settle(&s.remote).await;
    assert!(started.elapsed() >= delay, "{:?}", started.elapsed());
    assert_eq!(s.server.hits(), 2, "one refetch for 16 callers");
    // The refetched set is in use.
    let keys = s.remote.keys(Some("k2")).await.unwrap();
    assert!(keys.find("k2").is_some());
    assert_eq!(s.server.hits(), 2);
}

#[tokio::test]
async fn past_the_grace_the_error_names_the_url_and_the_last_failure() {
    let s = setup().await;
    s.server.set("/jwks", status(503));
    let url = s.server.url("/jwks");

    // The last second of the grace (default 3600 s past expiry at NOW + 60): still served.
    s.clock.set(NOW + 60 + 3599);
    burst(&s, 1, "in-grace").await;
    settle(&s.remote).await;
    assert_eq!(s.server.hits(), 2);

    // Past the grace, inside the backoff: an error at once, naming the URL and the failure;
    // no request.
    s.clock.set(NOW + 60 + 3600);
    let e = s.remote.keys(Some("k")).await.unwrap_err().to_string();
    assert!(
        e.contains(&url) && e.contains("HTTP 503") && e.contains("3600"),
        "{e}"
    );
    assert_eq!(s.server.hits(), 2);
    let tok = token_at(&s.signer, "k", "past", NOW + 60 + 3600);
    let r = s
        .verifier
        .verify(&tok, CLIENT, s.remote.as_ref())
        .await
        .unwrap_err();
    assert_eq!(r.kind(), "key_set_unavailable");
    assert!(
        r.to_string().contains(&url) && r.to_string().contains("HTTP 503"),
        "{r}"
    );

    // After the backoff: one more attempt, which the caller waits for (there is nothing
    // usable to serve), and the same kind of error.
    s.clock.set(NOW + 60 + 3600 + 10);
    let e = s.remote.keys(Some("k")).await.unwrap_err().to_string();
    assert!(e.contains(&url) && e.contains("HTTP 503"), "{e}");
    assert_eq!(s.server.hits(), 3);
}

#[tokio::test]
async fn once_the_host_is_back_after_the_backoff_the_new_set_is_used() {
    let s = setup().await;
    s.server.set("/jwks", status(500));
    s.clock.set(NOW + 61);
    burst(&s, 4, "fail").await;
    settle(&s.remote).await;
    assert_eq!(s.server.hits(), 2);

    // The host is back, with the key rotated ("k" withdrawn, "k2" published). Inside the
    // backoff nothing is fetched: the stale set still verifies "k" and does not know "k2".
    let next = TestSigner::new(Algorithm::ES256);
    s.server.set(
        "/jwks",
        cc(jwks(vec![next.jwk("k2")]).to_json(), "max-age=60"),
    );
    s.clock.set(NOW + 65);
    burst(&s, 4, "backoff").await;
    let e = s
        .verifier
        .verify(
            &token_at(&next, "k2", "early", NOW + 65),
            CLIENT,
            s.remote.as_ref(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "unknown_kid", "{e}");
    settle(&s.remote).await;
    assert_eq!(s.server.hits(), 2, "no request inside the backoff window");

    // Backoff over: the unknown kid refetches (the caller waits for it) and the new set is used.
    s.clock.set(NOW + 71);
    s.verifier
        .verify(
            &token_at(&next, "k2", "late", NOW + 71),
            CLIENT,
            s.remote.as_ref(),
        )
        .await
        .unwrap();
    assert_eq!(s.server.hits(), 3);
    let e = s
        .verifier
        .verify(
            &token_at(&s.signer, "k", "withdrawn", NOW + 71),
            CLIENT,
            s.remote.as_ref(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "unknown_kid", "{e}");
    // Fresh again: no further request.
    s.clock.set(NOW + 100);
    s.verifier
        .verify(
            &token_at(&next, "k2", "later", NOW + 100),
            CLIENT,
            s.remote.as_ref(),
        )
        .await
        .unwrap();
    assert_eq!(s.server.hits(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_unknown_kid_refetches_share_one_request() {
    let s = setup().await;
    let next = TestSigner::new(Algorithm::ES256);
    let mut rotated = cc(
        jwks(vec![s.signer.jwk("k"), next.jwk("k2")]).to_json(),
        "max-age=60",
    );
    rotated.delay = Duration::from_millis(500);
    s.server.set("/jwks", rotated);
    s.clock.set(NOW + 10);
    let next = Arc::new(next);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let tok = token_at(&next, "k2", &format!("rot-{i}"), NOW + 10);
        let (r, v) = (s.remote.clone(), s.verifier.clone());
        tasks.push(tokio::spawn(async move {
            v.verify(&tok, CLIENT, r.as_ref()).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.server.hits(), 2, "16 unknown-kid callers, one refetch");
}
