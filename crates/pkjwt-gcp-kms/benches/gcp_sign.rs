//! Overhead of the Cloud KMS backend: a full client assertion through [`GcpKmsSigner`] versus a
//! bare REST `asymmetricSign` (precomputed digest and CRC32C, a ready access token, an HTTP
//! client configured as the backend's, the same key), against the local Cloud KMS double, in
//! the same run.
//!
//! As the AWS KMS bench: criterion's per-iteration times; an interleaved A/B loop (alternating
//! short batches, median and quartiles of the per-round ratios), which cancels slow drift of a shared machine; and
//! the backend's CPU work without the network (assertion assembly, hash, DER to `r || s`, with a
//! signer that replays a real signature), which is the overhead by construction.
//!
//! Run: `cargo bench -p pkjwt-gcp-kms --bench gcp_sign` (needs `.venv`, infra/ci/setup.sh).

#![allow(missing_docs)]

#[path = "../tests/common/mod.rs"]
mod common;

use pkjwt_conformance::bench::{Replay, interleaved, per_call_us};

use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, HashAlg, Signer, b64};
use pkjwt_gcp_kms::GcpKmsSigner;

/// The local work GcpKmsSigner does besides the HTTP call: hash, CRC32C of the digest and of
/// the signature, the request JSON (Cloud KMS returns DER, the `Signer` contract's form).
fn gcp_local(message: &[u8], der: &[u8]) -> pkjwt_core::Result<Vec<u8>> {
    let digest = HashAlg::Sha256.digest(message);
    std::hint::black_box(pkjwt_gcp_kms::crc32c(&digest));
    std::hint::black_box(pkjwt_gcp_kms::crc32c(der));
    std::hint::black_box(
        serde_json::json!({"digest": {"sha256": b64::encode_std(&digest)}}).to_string(),
    );
    Ok(der.to_vec())
}

struct Setup {
    replay: ClientAssertion,
    assertion: ClientAssertion,
    http: reqwest::Client,
    url: String,
    token: String,
    body: String,
}

async fn setup(d: &common::Double) -> Setup {
    let name = common::create_key(d, "bench", "EC_SIGN_P256_SHA256", serde_json::json!({}));
    let signer = GcpKmsSigner::open(&common::uri(d, &name), None, &common::options(d))
        .await
        .expect("open");
    let der = signer
        .sign(b"sample.input")
        .await
        .expect("sample")
        .into_vec();
    let replay = ClientAssertion::new(
        Arc::new(Replay {
            public_key: signer.public_key().clone(),
            algorithm: Algorithm::ES256,
            signature: der,
            local: gcp_local,
        }),
        AssertionOptions::new("bench-client", "https://as.example.com"),
    )
    .expect("options");
    let signer: Arc<dyn Signer> = Arc::new(signer);
    let assertion = ClientAssertion::new(
        signer,
        AssertionOptions::new("bench-client", "https://as.example.com"),
    )
    .expect("options");
    // A signing input of the size a real assertion has.
    let sample = assertion.sign().await.expect("sign");
    let input = sample.rsplit_once('.').map(|(a, _)| a).unwrap_or(&sample);
    let digest = HashAlg::Sha256.digest(input.as_bytes());
    let body = serde_json::json!({
        "digest": {"sha256": b64::encode_std(&digest)},
        "digestCrc32c": pkjwt_gcp_kms::crc32c(&digest).to_string(),
    })
    .to_string();
    let token =
        common::control(d, "POST", "/_pkjwt/token", Some(serde_json::json!({})))["access_token"]
            .as_str()
            .expect("token")
            .to_owned();
    Setup {
        replay,
        assertion,
        // Configured as the backend's own client (no redirects, connect timeout, user agent),
        // so that the comparison is of pkjwt's work, not of HTTP client settings.
        http: reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(3))
            .user_agent("pkjwt/bench")
            .build()
            .expect("client"),
        url: format!("{}/v1/{name}:asymmetricSign", d.endpoint()),
        token,
        body,
    }
}

/// The least a caller of the REST API does per signature: POST (with a per-request timeout, as
/// any production caller sets), read the JSON answer, decode the signature.
async fn bare_sign(s: &Setup) {
    let resp = s
        .http
        .post(&s.url)
        .bearer_auth(&s.token)
        .header("content-type", "application/json")
        .body(s.body.clone())
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .expect("bare asymmetricSign");
    assert!(resp.status().is_success());
    let v: serde_json::Value =
        serde_json::from_slice(&resp.bytes().await.expect("body")).expect("JSON");
    let sig =
        b64::decode_std("signature", v["signature"].as_str().expect("signature")).expect("base64");
    std::hint::black_box(sig.len());
}

async fn backend_assertion(s: &Setup) {
    std::hint::black_box(s.assertion.sign().await.expect("assertion"));
}

/// The backend's CPU work per assertion, without the network; microseconds.
fn local_work(rt: &tokio::runtime::Runtime, s: &Setup) -> f64 {
    per_call_us(rt, 1000, 20_000, || async {
        s.replay.sign().await.expect("replay")
    })
}

fn main() {
    let Some(d) = common::double() else {
        eprintln!("Cloud KMS double unavailable: nothing measured");
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt.block_on(setup(d));
    let mut c = Criterion::default()
        .sample_size(60)
        .measurement_time(Duration::from_secs(8))
        .configure_from_args();
    c.bench_function("bare REST asymmetricSign", |b| {
        b.to_async(&rt).iter(|| bare_sign(&s))
    });
    c.bench_function("backend assertion (GcpKmsSigner)", |b| {
        b.to_async(&rt).iter(|| backend_assertion(&s))
    });
    c.final_summary();
    // Many short rounds: a Python endpoint on a loaded 2-core machine stalls for milliseconds at
    // a time, and a stall inside one long batch skews that round's ratio.
    let r = interleaved(&rt, 300, 10, 50, || bare_sign(&s), || backend_assertion(&s));
    println!(
        "{}",
        r.overhead_line("bare REST asymmetricSign", 300, 10, 5.0)
    );
    let bare = r.a_us;
    let local = local_work(&rt, &s);
    println!(
        "backend CPU work per assertion without the network: {local:.2} µs ({:.3} % of the bare round trip)",
        local / bare * 100.0
    );
}
