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

use pkjwt_conformance::bench::interleaved;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::{KeySpec, KeyUsageType, MessageType, SigningAlgorithmSpec};
use criterion::Criterion;
use pkjwt_aws_kms::AwsKmsSigner;
use pkjwt_core::{AssertionOptions, ClientAssertion, HashAlg, Signer};

/// Returns a fixed, real KMS signature: the assertion pipeline minus the network.
#[derive(Debug)]
struct Replay {
    public_key: pkjwt_core::PublicKey,
    der: Vec<u8>,
}

#[async_trait::async_trait]
impl Signer for Replay {
    fn algorithm(&self) -> pkjwt_core::Algorithm {
        pkjwt_core::Algorithm::ES256
    }
    fn public_key(&self) -> &pkjwt_core::PublicKey {
        &self.public_key
    }
    async fn sign(&self, message: &[u8]) -> pkjwt_core::Result<pkjwt_core::Signature> {
        // The local work AwsKmsSigner does besides the SDK call: hash the signing input.
        std::hint::black_box(HashAlg::Sha256.digest(message));
        Ok(pkjwt_core::Signature::new(self.der.clone()))
    }
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
            der,
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

/// The backend's CPU work per assertion, without the network; returns microseconds.
fn local_work(rt: &tokio::runtime::Runtime, s: &Setup) -> f64 {
    const N: u32 = 20_000;
    rt.block_on(async {
        for _ in 0..1000 {
            std::hint::black_box(s.replay.sign().await.expect("replay"));
        }
        let start = Instant::now();
        for _ in 0..N {
            std::hint::black_box(s.replay.sign().await.expect("replay"));
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(N)
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
    println!(
        "interleaved A/B (60 rounds x 40 calls each): bare SDK Sign median {:.0} us, \
         backend assertion median {:.0} us, overhead (median of per-round ratios) {:+.1}% \
         (goal <= 5%)",
        r.a_us,
        r.b_us,
        (r.ratio - 1.0) * 100.0
    );
    let bare_us = r.a_us;
    let local_us = local_work(&rt, &s);
    println!(
        "backend CPU work per assertion without the network (hash + JSON + base64 + jti + DER to \
         r||s): {local_us:.2} us = {:.3}% of a bare Sign round trip ({bare_us:.0} us)",
        local_us / bare_us * 100.0
    );
    c.final_summary();
}
