//! Assertion creation per algorithm, side by side with the bare signing rate of the same crypto
//! library on the same key in the same run, and with `openssl speed` when openssl is installed.
//!
//! `cargo bench -p pkjwt-file --bench assertion [-- --seconds S]`
//!
//! The machine is shared and noisy, so the two loops are interleaved in short rounds and the
//! medians compared: a ratio taken in one run is meaningful even when absolute numbers swing.
//! One core: each loop runs on the calling thread.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, Signer};
use pkjwt_file::FileSigner;

/// Polls a future that completes without waiting (the file signer never yields).
fn now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("file signer yielded"),
    }
}

fn rate(mut f: impl FnMut(), dur: Duration) -> f64 {
    // Warm up, then count whole operations in `dur`.
    for _ in 0..10 {
        f();
    }
    let start = Instant::now();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    n as f64 / start.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

enum Bare {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn sig::RsaEncoding),
    Ed(Ed25519KeyPair),
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let secs: f64 = args
        .iter()
        .position(|a| a == "--seconds")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0.4);
    let round = Duration::from_secs_f64(secs);
    let rounds = 5;
    let rng = SystemRandom::new();
    println!(
        "pkjwt assertion benchmark: {rounds} interleaved rounds of {secs}s per loop, one core"
    );
    println!(
        "{:<7} {:>14} {:>16} {:>7}",
        "alg", "bare sign/s", "assertions/s", "ratio"
    );
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::ES256K,
        Algorithm::PS256,
        Algorithm::RS256,
        Algorithm::EdDSA,
    ] {
        // One key, used by both loops.
        let (pkcs8, bare) = match alg {
            Algorithm::EdDSA => {
                let doc = Ed25519KeyPair::generate_pkcs8v1(&rng).unwrap();
                let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(doc.as_ref()).unwrap();
                (doc.as_ref().to_vec(), Bare::Ed(kp))
            }
            Algorithm::PS256 | Algorithm::RS256 => {
                let kp = RsaKeyPair::generate(aws_lc_rs::rsa::KeySize::Rsa2048).unwrap();
                let der: aws_lc_rs::encoding::Pkcs8V1Der = kp.as_der().unwrap();
                let enc: &'static dyn sig::RsaEncoding = if alg == Algorithm::PS256 {
                    &sig::RSA_PSS_SHA256
                } else {
                    &sig::RSA_PKCS1_SHA256
                };
                (der.as_ref().to_vec(), Bare::Rsa(kp, enc))
            }
            _ => {
                let a = match alg {
                    Algorithm::ES256 => &sig::ECDSA_P256_SHA256_ASN1_SIGNING,
                    Algorithm::ES384 => &sig::ECDSA_P384_SHA384_ASN1_SIGNING,
                    Algorithm::ES512 => &sig::ECDSA_P521_SHA512_ASN1_SIGNING,
                    _ => &sig::ECDSA_P256K1_SHA256_ASN1_SIGNING,
                };
                let doc = EcdsaKeyPair::generate_pkcs8(a, &rng).unwrap();
                let kp = EcdsaKeyPair::from_pkcs8(a, doc.as_ref()).unwrap();
                (doc.as_ref().to_vec(), Bare::Ec(kp))
            }
        };
        let pem = pkjwt_core::pem::encode("PRIVATE KEY", &pkcs8);
        let signer: Arc<dyn Signer> =
            Arc::new(FileSigner::from_bytes(pem.as_bytes(), None, Some(alg)).unwrap());
        let assertion = ClientAssertion::new(
            signer,
            AssertionOptions::new("bench-client", "https://as.example.com"),
        )
        .unwrap();
        // The bare loop signs a message of the size of a real signing input.
        let msg = vec![b'a'; 330];
        let mut out = vec![0u8; 512];
        let mut bare_rates = Vec::new();
        let mut full_rates = Vec::new();
        for _ in 0..rounds {
            bare_rates.push(rate(
                || match &bare {
                    Bare::Ec(k) => {
                        std::hint::black_box(k.sign(&rng, &msg).unwrap());
                    }
                    Bare::Rsa(k, enc) => {
                        k.sign(*enc, &rng, &msg, &mut out[..256]).unwrap();
                    }
                    Bare::Ed(k) => {
                        std::hint::black_box(k.sign(&msg));
                    }
                },
                round,
            ));
            full_rates.push(rate(
                || {
                    std::hint::black_box(now(assertion.sign()).unwrap());
                },
                round,
            ));
        }
        let (b, f) = (median(bare_rates), median(full_rates));
        println!("{:<7} {:>14.0} {:>16.0} {:>6.2}x", alg.name(), b, f, f / b);
    }
    openssl_speed();
}

/// `openssl speed` for the same operations, in the same run, as the machine's reference.
fn openssl_speed() {
    let Ok(out) = std::process::Command::new("openssl")
        .args([
            "speed",
            "-seconds",
            "1",
            "ecdsap256",
            "ecdsap384",
            "ecdsap521",
            "rsa2048",
            "ed25519",
        ])
        .output()
    else {
        println!("openssl not installed: no reference figures");
        return;
    };
    println!("\nopenssl speed (same run), signs/s:");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let l = line.trim_start();
        if l.starts_with("256 bits ecdsa")
            || l.starts_with("384 bits ecdsa")
            || l.starts_with("521 bits ecdsa")
            || l.starts_with("rsa 2048")
            || l.starts_with("253 bits EdDSA")
        {
            println!("  {l}");
        }
    }
}
