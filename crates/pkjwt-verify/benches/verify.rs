//! Verifications per second against the bare signature-verify rate of the same machine, in the
//! same run, for ES256, PS256 and EdDSA.
//!
//! Criterion measures each operation; then a plain interleaved loop (3 rounds of ~0.5 s each,
//! medians) prints `full/bare` ratios, because only ratios taken in one run are comparable on a
//! shared machine (see `performance-baselines.md`). "bare" is aws-lc-rs
//! `UnparsedPublicKey::verify` (parses the key on every call, as a naive verifier does);
//! "parsed" is `ParsedPublicKey::verify_sig`, which the verifier uses.
#![allow(missing_docs, clippy::unwrap_used, clippy::type_complexity)]

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, KeyPair, RsaKeyPair};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use criterion::Criterion;
use pkjwt_core::{Algorithm, FixedClock, Jwk, JwkSet, PublicKey};
use pkjwt_verify::{
    AssertionVerifier, KeySet, MemoryReplayStore, ReplayStore, ReplayStoreError, VerifyPolicy,
};

const NOW: i64 = 1_800_000_000;

/// Accepts every jti: isolates the verifier's own cost from the replay store's.
#[derive(Debug)]
struct NoReplay;

#[async_trait]
impl ReplayStore for NoReplay {
    async fn insert_if_absent(&self, _: &str, _: i64, _: i64) -> Result<bool, ReplayStoreError> {
        Ok(true)
    }
}

struct Fixture {
    name: &'static str,
    token: String,
    signing_input: String,
    signature: Vec<u8>,
    key_bytes: Vec<u8>,
    bare_alg: &'static dyn sig::VerificationAlgorithm,
    keys: Arc<KeySet>,
}

fn fixture(alg: Algorithm) -> Fixture {
    let rng = SystemRandom::new();
    let (public, key_bytes, bare_alg, sign): (
        PublicKey,
        Vec<u8>,
        &'static dyn sig::VerificationAlgorithm,
        Box<dyn Fn(&[u8]) -> Vec<u8>>,
    ) = match alg {
        Algorithm::ES256 => {
            let k = EcdsaKeyPair::generate(&sig::ECDSA_P256_SHA256_FIXED_SIGNING).unwrap();
            let pb = k.public_key().as_ref().to_vec();
            let public = PublicKey::ec_from_point(pkjwt_core::Curve::P256, &pb).unwrap();
            let rng = rng.clone();
            (
                public,
                pb,
                &sig::ECDSA_P256_SHA256_FIXED,
                Box::new(move |m| k.sign(&rng, m).unwrap().as_ref().to_vec()),
            )
        }
        Algorithm::PS256 => {
            let k = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
            let pb = k.public_key().as_ref().to_vec();
            let public = PublicKey::from_pkcs1_der(&pb).unwrap();
            let rng = rng.clone();
            (
                public,
                pb,
                &sig::RSA_PSS_2048_8192_SHA256,
                Box::new(move |m| {
                    let mut out = vec![0; k.public_modulus_len()];
                    k.sign(&sig::RSA_PSS_SHA256, &rng, m, &mut out).unwrap();
                    out
                }),
            )
        }
        _ => {
            let k = Ed25519KeyPair::generate().unwrap();
            let pb = k.public_key().as_ref().to_vec();
            let public = PublicKey::ed25519(&pb).unwrap();
            (
                public,
                pb,
                &sig::ED25519,
                Box::new(move |m| k.sign(m).as_ref().to_vec()),
            )
        }
    };
    let header = format!(r#"{{"alg":"{alg}","kid":"k1","typ":"client-authentication+jwt"}}"#);
    let claims = format!(
        r#"{{"iss":"client-1","sub":"client-1","aud":"https://as.example.com","iat":{NOW},"nbf":{NOW},"exp":{},"jti":"bench-jti-0123456789"}}"#,
        NOW + 60
    );
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(header),
        URL_SAFE_NO_PAD.encode(claims)
    );
    let signature = sign(signing_input.as_bytes());
    let token = format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(&signature));
    let jwks = JwkSet::new(vec![Jwk::for_signing(&public, alg).with_kid("k1")]).unwrap();
    Fixture {
        name: alg.name(),
        token,
        signing_input,
        signature,
        key_bytes,
        bare_alg,
        keys: Arc::new(KeySet::from_jwks(&jwks).unwrap()),
    }
}

fn verifier() -> AssertionVerifier {
    AssertionVerifier::new("https://as.example.com", VerifyPolicy::default())
        .unwrap()
        .with_clock(Arc::new(FixedClock::new(NOW)))
        .with_replay_store(Arc::new(NoReplay))
}

fn bare(f: &Fixture) {
    sig::UnparsedPublicKey::new(f.bare_alg, &f.key_bytes)
        .verify(f.signing_input.as_bytes(), &f.signature)
        .unwrap();
}

fn criterion_benches(c: &mut Criterion, fixtures: &[Fixture], rt: &tokio::runtime::Runtime) {
    let v = verifier();
    for f in fixtures {
        let mut g = c.benchmark_group(f.name);
        g.bench_function("bare UnparsedPublicKey::verify", |b| {
            b.iter(|| bare(black_box(f)))
        });
        let parsed = sig::ParsedPublicKey::new(f.bare_alg, &f.key_bytes).unwrap();
        g.bench_function("parsed ParsedPublicKey::verify_sig", |b| {
            b.iter(|| {
                parsed
                    .verify_sig(f.signing_input.as_bytes(), black_box(&f.signature))
                    .unwrap()
            })
        });
        g.bench_function("AssertionVerifier::verify", |b| {
            b.iter(|| {
                rt.block_on(v.verify(black_box(&f.token), "client-1", &f.keys))
                    .unwrap()
            })
        });
        g.finish();
    }
    let store = MemoryReplayStore::new(10_000_000).with_per_client_capacity(10_000_000);
    let mut i = 0u64;
    c.bench_function("MemoryReplayStore::insert_if_absent (fresh keys)", |b| {
        b.iter(|| {
            i += 1;
            rt.block_on(store.insert_if_absent(&format!("9:client-1:{i}"), NOW + 60, NOW))
                .unwrap()
        })
    });
}

/// Operations per second of `op` run for about `dur`.
fn rate(dur: Duration, mut op: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..32 {
            op();
        }
        n += 32;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn ratios(fixtures: &[Fixture], rt: &tokio::runtime::Runtime) {
    let v = verifier();
    println!("\nsame-run rates (medians of 3 interleaved rounds of 0.5 s), one core:");
    println!(
        "| alg | bare verify/s | parsed-key verify/s | AssertionVerifier::verify/s | full/bare | full/parsed |"
    );
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for f in fixtures {
        let parsed = sig::ParsedPublicKey::new(f.bare_alg, &f.key_bytes).unwrap();
        let (mut b, mut p, mut full) = (Vec::new(), Vec::new(), Vec::new());
        for _ in 0..3 {
            b.push(rate(Duration::from_millis(500), || bare(f)));
            p.push(rate(Duration::from_millis(500), || {
                parsed
                    .verify_sig(f.signing_input.as_bytes(), &f.signature)
                    .unwrap()
            }));
            full.push(rate(Duration::from_millis(500), || {
                rt.block_on(v.verify(&f.token, "client-1", &f.keys))
                    .unwrap();
            }));
        }
        let (b, p, full) = (median(b), median(p), median(full));
        println!(
            "| {} | {b:.0} | {p:.0} | {full:.0} | {:.2} | {:.2} |",
            f.name,
            full / b,
            full / p
        );
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let fixtures: Vec<Fixture> = [Algorithm::ES256, Algorithm::PS256, Algorithm::EdDSA]
        .into_iter()
        .map(fixture)
        .collect();
    let mut c = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    criterion_benches(&mut c, &fixtures, &rt);
    c.final_summary();
    ratios(&fixtures, &rt);
}
