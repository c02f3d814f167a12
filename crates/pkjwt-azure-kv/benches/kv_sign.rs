//! Overhead of the Azure Key Vault backend: a full client assertion through [`AzureKvSigner`]
//! versus a bare REST Sign call (precomputed digest, a token fetched once, a reqwest client),
//! against the local Key Vault double, in the same run.
//!
//! Three measurements: criterion's per-iteration time of each; an interleaved A/B loop
//! (alternating batches, median of the per-round ratios), which cancels the slow drift of a
//! shared machine; and the backend's CPU work without the network (hash, assertion assembly,
//! `r || s` → DER → `r || s`, with a signer that replays a real Key Vault signature).
//!
//! Run: `cargo bench -p pkjwt-azure-kv --bench kv_sign` (needs `.venv`, see infra/ci/setup.sh).

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use pkjwt_conformance::bench::{Replay, interleaved, per_call_us};

use std::sync::Arc;
use std::time::Duration;

use criterion::Criterion;
use pkjwt_azure_kv::AzureKvSigner;
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, Curve, HashAlg, Signer, b64};
use serde_json::json;

/// The backend's local work besides the request: hash, then Key Vault's `r || s` to the DER the
/// `Signer` contract wants.
fn kv_local(message: &[u8], fixed: &[u8]) -> pkjwt_core::Result<Vec<u8>> {
    std::hint::black_box(HashAlg::Sha256.digest(message));
    pkjwt_core::ecdsa_fixed_to_der(fixed, Curve::P256)
}

struct Setup {
    replay: ClientAssertion,
    assertion: ClientAssertion,
    http: reqwest::Client,
    sign_url: String,
    token: String,
    body: String,
}

async fn setup(d: &common::Double) -> Setup {
    let name = common::name("bench");
    common::create(d, &name, json!({"kty": "EC", "crv": "P-256"})).await;
    let signer = AzureKvSigner::open(&common::uri(d, &name), None, &common::options(d))
        .await
        .expect("open");
    let version = signer.pinned_uri().version.clone().expect("pinned");
    let http = reqwest::Client::builder()
        .tls_certs_only(reqwest::Certificate::from_pem_bundle(&d.ca_pem).expect("CA"))
        .build()
        .expect("client");
    // The bare client's token: fetched once, as any client caches it.
    let form = format!(
        "client_id={}&client_secret={}&grant_type=client_credentials&scope=https%3A%2F%2Fvault.azure.net%2F.default",
        common::CLIENT_ID,
        common::CLIENT_SECRET
    );
    let token: serde_json::Value = serde_json::from_str(
        &http
            .post(format!("{}/{}/oauth2/v2.0/token", d.base(), common::TENANT))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(form)
            .send()
            .await
            .expect("token")
            .text()
            .await
            .expect("token body"),
    )
    .expect("token JSON");
    let token = token["access_token"]
        .as_str()
        .expect("access_token")
        .to_owned();
    let public_key = signer.public_key().clone();
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
    let fixed = b64::decode("sig", sample.rsplit('.').next().unwrap()).expect("signature");
    let replay = ClientAssertion::new(
        Arc::new(Replay {
            public_key,
            algorithm: Algorithm::ES256,
            signature: fixed,
            local: kv_local,
        }),
        AssertionOptions::new("bench-client", "https://as.example.com"),
    )
    .expect("options");
    Setup {
        replay,
        assertion,
        http,
        sign_url: format!(
            "{}/keys/{name}/{version}/sign?api-version={}",
            d.base(),
            pkjwt_azure_kv::API_VERSION
        ),
        token,
        body: json!({"alg": "ES256", "value": b64::encode(&digest)}).to_string(),
    }
}

async fn bare_sign(s: &Setup) {
    let resp = s
        .http
        .post(&s.sign_url)
        .bearer_auth(&s.token)
        .header("Content-Type", "application/json")
        .body(s.body.clone())
        .send()
        .await
        .expect("bare Sign");
    assert!(resp.status().is_success());
    let v: serde_json::Value = serde_json::from_str(&resp.text().await.expect("body")).unwrap();
    std::hint::black_box(v["value"].as_str().map(str::len));
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
    let Some(d) = common::double() else { return };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let s = rt.block_on(setup(d));
    let mut c = Criterion::default()
        .configure_from_args()
        .sample_size(50)
        .measurement_time(Duration::from_secs(8));
    {
        let mut g = c.benchmark_group("azure_kv_es256");
        g.bench_function("bare_rest_sign", |b| b.to_async(&rt).iter(|| bare_sign(&s)));
        g.bench_function("backend_assertion", |b| {
            b.to_async(&rt).iter(|| backend_assertion(&s))
        });
        g.finish();
    }
    let r = interleaved(&rt, 60, 40, 50, || bare_sign(&s), || backend_assertion(&s));
    println!("{}", r.overhead_line("bare REST Sign", 60, 40, 5.0));
    let bare_us = r.a_us;
    let local_us = local_work(&rt, &s);
    println!(
        "backend CPU work per assertion without the network (hash + JSON + base64 + jti + r||s to \
         DER and back): {local_us:.2} us = {:.3}% of a bare Sign round trip ({bare_us:.0} us)",
        local_us / bare_us * 100.0
    );
    c.final_summary();
}
