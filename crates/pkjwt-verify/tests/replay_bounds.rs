//! Replay-store boundaries through the verifier: the last second in which a token is accepted
//! (`now == exp + leeway`) and the per-client bound of the in-memory store.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;

use common::*;
use pkjwt_core::{Algorithm, FixedClock};
use pkjwt_verify::{AssertionVerifier, MemoryReplayStore, VerifyPolicy};

#[tokio::test]
async fn replay_refused_at_exactly_exp_plus_leeway() {
    let signer = TestSigner::new(Algorithm::ES256);
    let set = keyset(&jwks(vec![signer.jwk("a")]));
    let policy = VerifyPolicy::default();
    let last = NOW + 60 + i64::try_from(policy.expiry_leeway_secs).unwrap();
    let v = AssertionVerifier::new(AS, policy)
        .unwrap()
        .with_clock(Arc::new(FixedClock::new(last)));
    let t = craft(&signer, &header("ES256", "a"), &claims("edge"));
    v.verify(&t, CLIENT, &set).await.unwrap();
    for _ in 0..3 {
        let e = v.verify(&t, CLIENT, &set).await.unwrap_err();
        assert_eq!(e.kind(), "replayed", "{e}");
    }
}

#[tokio::test]
async fn one_client_filling_its_quota_does_not_lock_out_another() {
    let signer = TestSigner::new(Algorithm::ES256);
    let set = keyset(&jwks(vec![signer.jwk("a")]));
    let store = Arc::new(MemoryReplayStore::new(100).with_per_client_capacity(2));
    let v = AssertionVerifier::new(AS, VerifyPolicy::default())
        .unwrap()
        .with_clock(Arc::new(FixedClock::new(NOW)))
        .with_replay_store(store);
    let for_client = |client: &str, jti: &str| {
        let mut c = claims(jti);
        c["iss"] = client.into();
        c["sub"] = client.into();
        craft(&signer, &header("ES256", "a"), &c)
    };
    for j in ["1", "2"] {
        v.verify(&for_client("client-a", j), "client-a", &set)
            .await
            .unwrap();
    }
    let e = v
        .verify(&for_client("client-a", "3"), "client-a", &set)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), "replay_store_unavailable", "{e}");
    assert!(
        e.to_string().contains("per-client limit of 2") && e.to_string().contains("client-a"),
        "{e}"
    );
    v.verify(&for_client("client-b", "1"), "client-b", &set)
        .await
        .unwrap();
}
