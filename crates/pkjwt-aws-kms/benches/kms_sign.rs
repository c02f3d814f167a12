//! Overhead of the AWS KMS backend: a full client assertion through [`AwsKmsSigner`] versus a
//! bare SDK `Sign` call (precomputed digest, same client, same key), against the local KMS double,
//! in the same run.
//!
//! Three measurements: criterion's (per-iteration time of each); an interleaved A/B loop
//! (alternating batches, median of the per-round ratios), which cancels slow drift of a shared,
//! noisy machine; and the backend's own CPU work without the network (local hash + assertion
//! assembly + DER to `r || s`, with a signer that replays a real KMS signature), which is the
//! overhead by construction and is not drowned by the round trip's noise.
//!
//! Run: `cargo bench -p pkjwt-aws-kms --bench kms_sign` (needs `.venv`, see infra/kms/start.sh).

#[path = "../tests/common/mod.rs"]
mod common;

use pkjwt_conformance::bench::{Replay, interleaved, per_call_us};

use std::sync::Arc;
use std::time::Duration;

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use criterion::Criterion;
use pkjwt_aws_kms::AwsKmsSigner;
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, HashAlg, Signer};

/// The local work AwsKmsSigner does besides the SDK call: hash the signing input (KMS returns
/// DER, the form the `Signer` contract wants).
fn kms_local(message: &[u8], der: &[u8]) -> pkjwt_core::Result<Vec<u8>> {
    std::hint::black_box(HashAlg::Sha256.digest(message));
    Ok(der.to_vec())
}

struct Setup {
    replay: ClientAssertion,
    assertion: ClientAssertion,
    client: aws_sdk_kms::Client,
    key_arn: String,
    digest: Vec<u8>,
}

async fn setup(d: &common::Double) -> Setup {
    let (alias, _) =
        common::create_key(d, KeySpec::EccNistP256, KeyUsageType::SignVerify, "bench").await;
    let signer = AwsKmsSigner::open(&common::uri(d, &alias), None, &common::options())
        .await
        .expect("open");
    let client = signer.client().clone();
    let key_arn = signer.key_arn().to_owned();
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
            local: kms_local,
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
    Setup {
        replay,
        assertion,
        client,
        key_arn,
        digest,
    }
}

async fn bare_sign(s: &Setup) {
    let out = s
        .client
        .sign()
        .key_id(&s.key_arn)
        .message(Blob::new(s.digest.clone()))
        .message_type(MessageType::Digest)
        .signing_algorithm(SigningAlgorithmSpec::EcdsaSha256)
        .send()
        .await
        .expect("bare Sign");
    std::hint::black_box(out.signature().map(|b| b.as_ref().len()));
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
        let mut g = c.benchmark_group("kms_es256");
        g.bench_function("bare_sdk_sign", |b| b.to_async(&rt).iter(|| bare_sign(&s)));
        g.bench_function("backend_assertion", |b| {
            b.to_async(&rt).iter(|| backend_assertion(&s))
        });
        g.finish();
    }
    let r = interleaved(&rt, 60, 40, 50, || bare_sign(&s), || backend_assertion(&s));
    println!("{}", r.overhead_line("bare SDK Sign", 60, 40, 5.0));
    let bare_us = r.a_us;
    let local_us = local_work(&rt, &s);
    println!(
        "backend CPU work per assertion without the network (hash + JSON + base64 + jti + DER to \
         r||s): {local_us:.2} us = {:.3}% of a bare Sign round trip ({bare_us:.0} us)",
        local_us / bare_us * 100.0
    );
    c.final_summary();
}
