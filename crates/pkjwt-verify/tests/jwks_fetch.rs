//! Client JWKS fetching against a local HTTP server: Cache-Control with floor and ceiling,
//! rate-limited refetch on unknown kids, size and time limits, duplicate kids, status codes,
//! HTTPS-only outside loopback, stale keys during an outage, and end-to-end verification.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::http::{Answer, Server};
use common::*;
use pkjwt_core::{Algorithm, FixedClock};
use pkjwt_verify::{AssertionVerifier, FetchPolicy, JwksError, RemoteJwks, VerifyPolicy};

fn cc(body: String, cache_control: &str) -> Answer {
    let mut a = Answer::ok(body);
    a.cache_control = Some(cache_control.into());
    a
}

fn remote(server: &Server, clock: &Arc<FixedClock>, policy: FetchPolicy) -> RemoteJwks {
    RemoteJwks::new(&server.url("/jwks"), policy)
        .unwrap()
        .with_clock(clock.clone())
}

#[tokio::test]
async fn cache_control_is_honoured_within_floor_and_ceiling() {
    let s = Server::start().await;
    let a = TestSigner::new(Algorithm::ES256);
    let body = jwks(vec![a.jwk("k1")]).to_json();
    let clock = Arc::new(FixedClock::new(NOW));

    // max-age inside the bounds: kept exactly that long.
    s.set("/jwks", cc(body.clone(), "public, max-age=120"));
    let r = remote(&s, &clock, FetchPolicy::default());
    r.keys(None).await.unwrap();
    clock.set(NOW + 119);
    r.keys(None).await.unwrap();
    assert_eq!(r.fetch_count(), 1);
    clock.set(NOW + 120);
    r.keys(None).await.unwrap();
    assert_eq!(r.fetch_count(), 2);

    // max-age below the floor (and no-store): raised to the 60 s floor.
    for header in ["max-age=5", "no-store"] {
        clock.set(NOW);
        s.set("/jwks", cc(body.clone(), header));
        let r = remote(&s, &clock, FetchPolicy::default());
        r.keys(None).await.unwrap();
        clock.set(NOW + 59);
        r.keys(None).await.unwrap();
        assert_eq!(r.fetch_count(), 1, "{header}");
        clock.set(NOW + 60);
        r.keys(None).await.unwrap();
        assert_eq!(r.fetch_count(), 2, "{header}");
    }

    // max-age above the ceiling: cut to it.
    clock.set(NOW);
    s.set("/jwks", cc(body.clone(), "max-age=31536000"));
    let mut p = FetchPolicy::default();
    p.max_cache_secs = 3600;
    let r = remote(&s, &clock, p);
    r.keys(None).await.unwrap();
    clock.set(NOW + 3599);
    r.keys(None).await.unwrap();
    assert_eq!(r.fetch_count(), 1);
    clock.set(NOW + 3600);
    r.keys(None).await.unwrap();
    assert_eq!(r.fetch_count(), 2);

    // No Cache-Control: the default (300 s).
    clock.set(NOW);
    s.set("/jwks", Answer::ok(body));
    let r = remote(&s, &clock, FetchPolicy::default());
    r.keys(None).await.unwrap();
    clock.set(NOW + 299);
    r.keys(None).await.unwrap();
    assert_eq!(r.fetch_count(), 1);
    clock.set(NOW + 300);
    r.keys(None).await.unwrap();
    assert_eq!(r.fetch_count(), 2);
}

#[tokio::test]
async fn unknown_kid_refetches_at_most_every_n_seconds() {
    let s = Server::start().await;
    let old = TestSigner::new(Algorithm::ES256);
    let new = TestSigner::new(Algorithm::ES256);
    s.set(
        "/jwks",
        cc(jwks(vec![old.jwk("old")]).to_json(), "max-age=3600"),
    );
    let clock = Arc::new(FixedClock::new(NOW));
    let r = Arc::new(remote(&s, &clock, FetchPolicy::default()));
    let v = AssertionVerifier::new(AS, VerifyPolicy::default())
        .unwrap()
        .with_clock(clock.clone());

    let t_old = craft(&old, &header("ES256", "old"), &claims("1"));
    v.verify(&t_old, CLIENT, r.as_ref()).await.unwrap();
    assert_eq!(r.fetch_count(), 1);

    // The client rotates: the new key is published, the cache still has the old set.
    s.set(
        "/jwks",
        cc(
            jwks(vec![old.jwk("old"), new.jwk("new")]).to_json(),
            "max-age=3600",
        ),
    );
    let t_new = |j: &str| craft(&new, &header("ES256", "new"), &claims(j));
    // 5 s after the last fetch: no refetch yet, the kid is unknown.
    clock.set(NOW + 5);
    let e = v.verify(&t_new("2"), CLIENT, r.as_ref()).await.unwrap_err();
    assert_eq!(e.kind(), "unknown_kid", "{e}");
    assert_eq!(r.fetch_count(), 1);
    // 10 s after: one refetch, and the new key verifies.
    clock.set(NOW + 10);
    v.verify(&t_new("3"), CLIENT, r.as_ref()).await.unwrap();
    assert_eq!(r.fetch_count(), 2);
    // Garbage kids cannot make the verifier hammer the client's server.
    for i in 0..20 {
        clock.set(NOW + 11 + i / 4);
        let t = craft(
            &new,
            &header("ES256", &format!("junk{i}")),
            &claims(&format!("j{i}")),
        );
        assert_eq!(
            v.verify(&t, CLIENT, r.as_ref()).await.unwrap_err().kind(),
            "unknown_kid"
        );
    }
    assert_eq!(
        r.fetch_count(),
        2,
        "at most one fetch per 10 s for unknown kids"
    );
    clock.set(NOW + 20);
    let t = craft(&new, &header("ES256", "junk-late"), &claims("late"));
    let _ = v.verify(&t, CLIENT, r.as_ref()).await;
    assert_eq!(r.fetch_count(), 3);
    assert_eq!(s.hits(), 3);
}

#[tokio::test]
async fn limits_and_bad_answers_are_errors_naming_the_url() {
    let s = Server::start().await;
    let a = TestSigner::new(Algorithm::ES256);
    let clock = Arc::new(FixedClock::new(NOW));

    // Oversized body.
    let mut p = FetchPolicy::default();
    p.max_bytes = 1024;
    let big = jwks((0..10).map(|i| a.jwk(&format!("k{i}"))).collect()).to_json();
    assert!(big.len() > 1024);
    s.set("/jwks", Answer::ok(big));
    let e = remote(&s, &clock, p).keys(None).await.unwrap_err();
    assert!(matches!(e, JwksError::TooLarge { max: 1024, .. }), "{e}");

    // Too slow.
    let mut slow = Answer::ok(jwks(vec![a.jwk("k")]).to_json());
    slow.delay = Duration::from_secs(3);
    s.set("/jwks", slow);
    let mut p = FetchPolicy::default();
    p.timeout = Duration::from_millis(300);
    let started = std::time::Instant::now();
    let e = remote(&s, &clock, p).keys(None).await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(2));
    assert!(
        matches!(e, JwksError::Http { .. }) && e.to_string().contains("within"),
        "{e}"
    );

    // Duplicate kids.
    let dup = format!(
        r#"{{"keys":[{},{}]}}"#,
        a.jwk("same").to_json(),
        TestSigner::new(Algorithm::ES256).jwk("same").to_json()
    );
    s.set("/jwks", Answer::ok(dup));
    let e = remote(&s, &clock, FetchPolicy::default())
        .keys(None)
        .await
        .unwrap_err();
    assert!(
        matches!(e, JwksError::Invalid { .. }) && e.to_string().contains("duplicate kid \"same\""),
        "{e}"
    );

    // Duplicate JSON members, private keys, garbage.
    for (body, want) in [
        (r#"{"keys":[],"keys":[]}"#.to_string(), "duplicate member"),
        (
            r#"{"keys":[{"kty":"EC","crv":"P-256","x":"AA","y":"AA","d":"AA"}]}"#.to_string(),
            "private key",
        ),
        ("<html>".to_string(), "not valid JSON"),
    ] {
        s.set("/jwks", Answer::ok(body));
        let e = remote(&s, &clock, FetchPolicy::default())
            .keys(None)
            .await
            .unwrap_err();
        assert!(e.to_string().contains(want), "{e} (wanted {want})");
    }

    // Status codes, and redirects are not followed.
    let mut a500 = Answer::ok("oops");
    a500.status = 500;
    s.set("/jwks", a500);
    let e = remote(&s, &clock, FetchPolicy::default())
        .keys(None)
        .await
        .unwrap_err();
    assert!(matches!(e, JwksError::Status { status: 500, .. }), "{e}");
    let mut redirect = Answer::ok("");
    redirect.status = 302;
    redirect.location = Some("http://127.0.0.1:1/evil".into());
    s.set("/jwks", redirect);
    let e = remote(&s, &clock, FetchPolicy::default())
        .keys(None)
        .await
        .unwrap_err();
    assert!(matches!(e, JwksError::Status { status: 302, .. }), "{e}");

    // HTTPS outside loopback; nothing is fetched.
    let e = RemoteJwks::new("http://jwks.example.com/jwks", FetchPolicy::default()).unwrap_err();
    assert!(matches!(e, JwksError::InsecureUrl { .. }), "{e}");
    assert!(e.to_string().contains("http://jwks.example.com/jwks"));
}

#[tokio::test]
async fn last_good_set_serves_through_an_outage_within_the_stale_grace() {
    let s = Server::start().await;
    let a = TestSigner::new(Algorithm::ES256);
    s.set("/jwks", cc(jwks(vec![a.jwk("k")]).to_json(), "max-age=60"));
    let clock = Arc::new(FixedClock::new(NOW));
    let mut p = FetchPolicy::default();
    p.stale_grace_secs = 600;
    let r = remote(&s, &clock, p);
    r.keys(None).await.unwrap();
    let mut down = Answer::ok("");
    down.status = 503;
    s.set("/jwks", down);
    // Expired at NOW + 60; within the 600 s grace the last good set serves.
    clock.set(NOW + 300);
    assert!(r.keys(None).await.unwrap().find("k").is_some());
    assert_eq!(r.fetch_count(), 2, "a refetch was attempted");
    while r.fetch_in_flight() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Grace over (NOW + 60 + 600): refetched once more, then an error carrying the failure.
    clock.set(NOW + 660);
    let e = r.keys(None).await.unwrap_err();
    assert_eq!(r.fetch_count(), 3);
    match &e {
        JwksError::Stale {
            expired_secs: 600,
            grace_secs: 600,
            last_failure,
            ..
        } => assert!(
            matches!(**last_failure, JwksError::Status { status: 503, .. }),
            "{e}"
        ),
        other => panic!("expected Stale, got {other:?}"),
    }
}

#[tokio::test]
async fn load_jwks_from_file_and_url() {
    let s = Server::start().await;
    let a = TestSigner::new(Algorithm::EdDSA);
    let set = jwks(vec![a.jwk("ed")]);
    s.set("/jwks.json", Answer::ok(set.to_json()));
    let from_url = pkjwt_verify::load_jwks(&s.url("/jwks.json")).await.unwrap();
    assert_eq!(from_url, set);

    let dir = std::env::temp_dir().join(format!("pkjwt-verify-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("jwks.json");
    std::fs::write(&path, set.to_json_pretty()).unwrap();
    let p = path.to_str().unwrap();
    assert_eq!(pkjwt_verify::load_jwks(p).await.unwrap(), set);
    assert_eq!(
        pkjwt_verify::load_jwks(&format!("file:{p}")).await.unwrap(),
        set
    );
    let e = pkjwt_verify::load_jwks("/nonexistent/jwks.json")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/nonexistent/jwks.json"), "{e}");
    let e = pkjwt_verify::load_jwks("http://example.com/jwks")
        .await
        .unwrap_err();
    assert!(matches!(e, JwksError::InsecureUrl { .. }), "{e}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn concurrent_verifications_share_one_fetch() {
    let s = Server::start().await;
    let a = TestSigner::new(Algorithm::ES256);
    s.set("/jwks", cc(jwks(vec![a.jwk("k")]).to_json(), "max-age=600"));
    let r = Arc::new(RemoteJwks::new(&s.url("/jwks"), FetchPolicy::default()).unwrap());
    let v = Arc::new(AssertionVerifier::new(AS, VerifyPolicy::default()).unwrap());
    let now = pkjwt_core::Clock::now(&pkjwt_core::SystemClock);
    let mut tasks = Vec::new();
    for i in 0..16 {
        let mut c = claims(&format!("c{i}"));
        c["iat"] = now.into();
        c["nbf"] = now.into();
        c["exp"] = (now + 60).into();
        let t = craft(&a, &header("ES256", "k"), &c);
        let (r, v) = (r.clone(), v.clone());
        tasks.push(tokio::spawn(async move {
            v.verify(&t, CLIENT, r.as_ref()).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(s.hits(), 1);
}

#[tokio::test]
async fn an_unreachable_key_set_is_a_specific_rejection() {
    let s = Server::start().await;
    let mut a500 = Answer::ok("");
    a500.status = 500;
    s.set("/jwks", a500);
    let r = RemoteJwks::new(&s.url("/jwks"), FetchPolicy::default()).unwrap();
    let a = TestSigner::new(Algorithm::ES256);
    let v = AssertionVerifier::new(AS, VerifyPolicy::default())
        .unwrap()
        .with_clock(Arc::new(FixedClock::new(NOW)));
    let e = v
        .verify(&craft(&a, &header("ES256", "k"), &claims("x")), CLIENT, &r)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "key_set_unavailable");
    assert!(
        e.to_string().contains("HTTP 500") && e.to_string().contains("/jwks"),
        "{e}"
    );
}

/// A raw HTTP/1.1 server that answers every connection with `head` and then writes `chunks`
/// (each chunk-encoded) with `pause` between them: for bodies without Content-Length and for
/// bodies that trickle.
async fn raw_server(chunks: Vec<String>, pause: Duration) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = listener.accept().await {
            let chunks = chunks.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = sock.read(&mut buf).await;
                let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n";
                if sock.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                for c in chunks {
                    let frame = format!("{:x}\r\n{c}\r\n", c.len());
                    if sock.write_all(frame.as_bytes()).await.is_err() {
                        return;
                    }
                    tokio::time::sleep(pause).await;
                }
                let _ = sock.write_all(b"0\r\n\r\n").await;
            });
        }
    });
    url
}

#[tokio::test]
async fn size_and_time_limits_hold_without_content_length() {
    let a = TestSigner::new(Algorithm::ES256);
    let body = jwks((0..10).map(|i| a.jwk(&format!("k{i}"))).collect()).to_json();
    let chunks: Vec<String> = body
        .as_bytes()
        .chunks(100)
        .map(|c| String::from_utf8(c.to_vec()).unwrap())
        .collect();

    // Chunked and under the limit: accepted.
    let url = raw_server(chunks.clone(), Duration::ZERO).await;
    let r = RemoteJwks::new(&url, FetchPolicy::default()).unwrap();
    assert_eq!(r.keys(None).await.unwrap().keys().len(), 10);

    // Chunked and over the limit: refused while streaming.
    let mut p = FetchPolicy::default();
    p.max_bytes = 1024;
    let e = RemoteJwks::new(&url, p)
        .unwrap()
        .keys(None)
        .await
        .unwrap_err();
    assert!(matches!(e, JwksError::TooLarge { max: 1024, .. }), "{e}");

    // Headers at once, body trickling: the time limit covers the whole response.
    let url = raw_server(chunks, Duration::from_millis(200)).await;
    let mut p = FetchPolicy::default();
    p.timeout = Duration::from_millis(500);
    let started = std::time::Instant::now();
    let e = RemoteJwks::new(&url, p)
        .unwrap()
        .keys(None)
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(e, JwksError::Http { .. }), "{e}");
}

/// Issue 12, item 13: a server fetching client-registered `jwks_uri`s must not be a way into
/// its own network. Only the URL is vetted here: a refusal happens before any connection, and
/// no traffic goes to these addresses.
#[tokio::test]
async fn non_public_addresses_are_refused_before_any_connection() {
    for (url, addr) in [
        ("https://10.0.0.1/jwks", "10.0.0.1"),
        ("https://172.16.5.4/jwks", "172.16.5.4"),
        ("https://192.168.1.10:8443/jwks", "192.168.1.10"),
        ("https://100.64.0.1/jwks", "100.64.0.1"),
        (
            "https://169.254.169.254/latest/meta-data/",
            "169.254.169.254",
        ),
        ("https://0.0.0.0/jwks", "0.0.0.0"),
        ("https://255.255.255.255/jwks", "255.255.255.255"),
        ("https://224.0.0.1/jwks", "224.0.0.1"),
        ("https://192.0.2.1/jwks", "192.0.2.1"),
        ("https://[fe80::1]/jwks", "fe80::1"),
        ("https://[fd00:ec2::254]/jwks", "fd00:ec2::254"),
        ("https://[::]/jwks", "::"),
        ("https://[::ffff:10.0.0.1]/jwks", "::ffff:10.0.0.1"),
        (
            "https://[::ffff:a9fe:a9fe]/latest/meta-data/",
            "::ffff:169.254.169.254",
        ),
        // Other spellings the URL parser normalises to the same addresses.
        ("https://0xa9.0xfe.0xa9.0xfe/", "169.254.169.254"),
        ("https://2852039166/", "169.254.169.254"),
        ("https://10.1/jwks", "10.0.0.1"),
    ] {
        let e = RemoteJwks::new(url, FetchPolicy::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(addr) && e.contains("allow_private_addresses"),
            "{url}: {e}"
        );
        let e = pkjwt_verify::load_jwks(url).await.unwrap_err().to_string();
        assert!(
            e.contains(addr) && e.contains("allow_private_addresses"),
            "{url}: {e}"
        );
        // The option lets the URL through (nothing is fetched: RemoteJwks is lazy).
        let mut p = FetchPolicy::default();
        p.allow_private_addresses = true;
        assert!(RemoteJwks::new(url, p).is_ok(), "{url}");
    }

    // Access-token validation's discovery follows the same rule.
    let e = pkjwt_verify::AccessTokenValidator::discover(
        "https://10.20.30.40",
        "https://api.example.com",
        pkjwt_verify::AccessTokenPolicy::default(),
        FetchPolicy::default(),
    )
    .await
    .unwrap_err();
    // The JWKS error is the source of `discovery`: the chain shows it.
    let e = pkjwt_core::display_chain(&e);
    assert!(
        e.contains("10.20.30.40") && e.contains("allow_private_addresses"),
        "{e}"
    );

    // Loopback follows allow_loopback_http (true by default: the local server works), for
    // https as well as http.
    let s = Server::start().await;
    let a = TestSigner::new(Algorithm::ES256);
    s.set("/jwks", Answer::ok(jwks(vec![a.jwk("k")]).to_json()));
    let r = RemoteJwks::new(&s.url("/jwks"), FetchPolicy::default()).unwrap();
    assert!(r.keys(Some("k")).await.unwrap().find("k").is_some());
    let mut no_loopback = FetchPolicy::default();
    no_loopback.allow_loopback_http = false;
    for url in [
        "https://127.0.0.1/jwks",
        "https://[::1]/jwks",
        "https://[::ffff:127.0.0.1]/jwks",
    ] {
        let e = RemoteJwks::new(url, no_loopback.clone())
            .unwrap_err()
            .to_string();
        assert!(e.contains("allow_loopback_http"), "{url}: {e}");
    }
}
