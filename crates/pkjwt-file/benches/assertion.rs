//! Assertion creation per algorithm, side by side with the bare signing rate of the same crypto
//! library on the same key, with other JWT libraries doing the same job, all in the same run, and
//! with `openssl speed` when openssl is installed.
//!
//! `cargo bench -p pkjwt-file --bench assertion [-- --seconds S] [--rounds N] [--algs ES256,EdDSA]`
//!
//! "bare" is aws-lc-rs signing the signing input of one real assertion with the same key (no
//! JSON, no base64, no jti); "assertions" is `ClientAssertion::sign()` end to end; "JWT work" is
//! `ClientAssertion::sign()` with a signer that returns a stored signature: the time pkjwt adds
//! around the signature.
//!
//! The machine is shared and noisy, so the loops of one algorithm are interleaved in short rounds
//! and the medians compared: a ratio taken in one run is meaningful even when absolute numbers
//! swing. Rates count the CPU time of the bench thread (on Unix), so that time the scheduler
//! gives to other processes does not land on whichever loop happened to be running. One core:
//! each loop runs on the calling thread.
//!
//! The peers (dev-dependencies only) sign the same claims with the same key:
//! - `jsonwebtoken` 12 `encode()` with its aws-lc-rs backend (ES256, RS256, EdDSA): the same
//!   crypto library as pkjwt, so the difference is the JWT work around the signature (it parses
//!   the key on every call, by its design);
//! - a hand-built ES256 assertion on RustCrypto `p256` 0.14 (`serde_json` + `base64` + the
//!   deterministic ECDSA signature, key parsed once): what a pure-Rust stack costs.
//!
//! Every loop makes a full assertion: header `alg`/`kid`/`typ`, claims `iss`, `sub`, `aud`, `iat`,
//! `nbf`, `exp` and a fresh 128-bit `jti` from the operating system.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::signature::{self as sig, EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, PublicKey, Signature, Signer, b64};
use pkjwt_file::FileSigner;
use serde::Serialize;

const CLIENT_ID: &str = "bench-client";
const AUDIENCE: &str = "https://as.example.com";
const TYP: &str = "client-authentication+jwt";

/// Polls a future that completes without waiting (the file signer never yields).
fn now<F: std::future::Future>(f: F) -> F::Output {
    let mut f = std::pin::pin!(f);
    let mut cx = Context::from_waker(Waker::noop());
    match f.as_mut().poll(&mut cx) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("file signer yielded"),
    }
}

/// CPU time this thread has used: unlike wall time, it does not grow while other processes run
/// (on a shared 2-core machine they take most of the wall time).
#[cfg(unix)]
fn thread_cpu() -> Option<Duration> {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ThreadCPUTime);
    Some(Duration::new(t.tv_sec as u64, t.tv_nsec as u32))
}

#[cfg(not(unix))]
fn thread_cpu() -> Option<Duration> {
    None
}

/// Operations per second of `f` over about `dur` of wall time: per CPU-second of this thread
/// where the platform tells it, else per wall-second.
fn rate(f: &mut dyn FnMut(), dur: Duration) -> f64 {
    // Warm up, then count whole operations in `dur`.
    for _ in 0..10 {
        f();
    }
    let start = Instant::now();
    let cpu_start = thread_cpu();
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..16 {
            f();
        }
        n += 16;
    }
    let elapsed = match (cpu_start, thread_cpu()) {
        (Some(a), Some(b)) => b - a,
        _ => start.elapsed(),
    };
    n as f64 / elapsed.as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// The claims every peer signs: the members and order pkjwt sends.
#[derive(Serialize)]
struct PeerClaims<'a> {
    iss: &'a str,
    sub: &'a str,
    aud: &'a str,
    iat: i64,
    nbf: i64,
    exp: i64,
    jti: String,
}

impl PeerClaims<'static> {
    /// Fresh claims: current time, 128 random bits from the OS as `jti` (as pkjwt does).
    fn fresh() -> Self {
        let iat = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        let mut jti = [0u8; 16];
        getrandom::fill(&mut jti).unwrap();
        PeerClaims {
            iss: CLIENT_ID,
            sub: CLIENT_ID,
            aud: AUDIENCE,
            iat,
            nbf: iat,
            exp: iat + 60,
            jti: b64::encode(jti),
        }
    }
}

/// The header the p256 peer signs, in pkjwt's member order.
#[derive(Serialize)]
struct PeerHeader<'a> {
    alg: &'a str,
    kid: &'a str,
    typ: &'a str,
}

/// A signer that hands back one stored signature of the real key: the loop then measures only
/// what pkjwt does around the signature (claims, jti, base64url, DER → `r||s`).
#[derive(Debug)]
struct Stored {
    alg: Algorithm,
    key: PublicKey,
    sig: Signature,
}

#[async_trait::async_trait]
impl Signer for Stored {
    fn algorithm(&self) -> Algorithm {
        self.alg
    }
    fn public_key(&self) -> &PublicKey {
        &self.key
    }
    async fn sign(&self, _message: &[u8]) -> pkjwt_core::Result<Signature> {
        Ok(self.sig.clone())
    }
}

enum Bare {
    Ec(EcdsaKeyPair),
    Rsa(RsaKeyPair, &'static dyn sig::RsaEncoding),
    Ed(Ed25519KeyPair),
}

/// One measured loop.
struct Loop<'a> {
    name: &'static str,
    f: Box<dyn FnMut() + 'a>,
    rates: Vec<f64>,
}

impl<'a> Loop<'a> {
    fn new(name: &'static str, f: impl FnMut() + 'a) -> Self {
        Loop {
            name,
            f: Box::new(f),
            rates: Vec::new(),
        }
    }
}

/// Checks once, outside the timed loops, that a peer's JWT carries the claims pkjwt's does, so a
/// peer that silently did less work cannot look fast.
fn check_peer_jwt(name: &str, jwt: &str, alg: Algorithm, kid: &str) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{name}: not a compact JWS");
    let h: serde_json::Value =
        serde_json::from_slice(&b64::decode("header", parts[0]).unwrap()).unwrap();
    assert_eq!(h["alg"], alg.name(), "{name}: alg");
    assert_eq!(h["kid"], kid, "{name}: kid");
    assert_eq!(h["typ"], TYP, "{name}: typ");
    let c: serde_json::Value =
        serde_json::from_slice(&b64::decode("claims", parts[1]).unwrap()).unwrap();
    for k in ["iss", "sub", "aud", "iat", "nbf", "exp", "jti"] {
        assert!(c.get(k).is_some(), "{name}: claim {k} missing");
    }
    assert!(!parts[2].is_empty(), "{name}: no signature");
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str| {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let secs: f64 = arg("--seconds").and_then(|s| s.parse().ok()).unwrap_or(0.4);
    let rounds: usize = arg("--rounds").and_then(|s| s.parse().ok()).unwrap_or(5);
    let only: Option<Vec<String>> =
        arg("--algs").map(|s| s.split(',').map(|a| a.trim().to_string()).collect());
    let round = Duration::from_secs_f64(secs);
    let rng = SystemRandom::new();
    jsonwebtoken::crypto::aws_lc::DEFAULT_PROVIDER
        .install_default()
        .unwrap();
    let clock = if thread_cpu().is_some() {
        "per CPU-second of the bench thread"
    } else {
        "per wall-clock second"
    };
    println!(
        "pkjwt assertion benchmark: {rounds} interleaved rounds of {secs}s per loop, one core; \
         rates {clock}"
    );
    println!(
        "{:<7} {:>14} {:>16} {:>7} {:>13}",
        "alg", "bare sign/s", "assertions/s", "ratio", "JWT work µs"
    );
    let mut peer_lines = Vec::new();
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::ES256K,
        Algorithm::PS256,
        Algorithm::RS256,
        Algorithm::EdDSA,
    ] {
        if let Some(only) = &only
            && !only.iter().any(|a| a == alg.name())
        {
            continue;
        }
        // One key, used by every loop.
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
        let kid = pkjwt_core::thumbprint(signer.public_key());
        let stored: Arc<dyn Signer> = Arc::new(Stored {
            alg,
            key: signer.public_key().clone(),
            sig: now(signer.sign(b"stored")).unwrap(),
        });
        let assembly =
            ClientAssertion::new(stored, AssertionOptions::new(CLIENT_ID, AUDIENCE)).unwrap();
        let assertion =
            ClientAssertion::new(signer, AssertionOptions::new(CLIENT_ID, AUDIENCE)).unwrap();
        // The bare loop signs a real signing input (header.claims of one assertion): Ed25519
        // hashes the message twice with SHA-512, so a few bytes more can cost a whole block.
        let jwt = now(assertion.sign()).unwrap();
        let msg = jwt.as_bytes()[..jwt.rfind('.').unwrap()].to_vec();
        let mut out = vec![0u8; 512];
        let mut loops = vec![
            Loop::new("bare", || match &bare {
                Bare::Ec(k) => {
                    std::hint::black_box(k.sign(&rng, &msg).unwrap());
                }
                Bare::Rsa(k, enc) => {
                    k.sign(*enc, &rng, &msg, &mut out[..256]).unwrap();
                }
                Bare::Ed(k) => {
                    std::hint::black_box(k.sign(&msg));
                }
            }),
            Loop::new("pkjwt", || {
                std::hint::black_box(now(assertion.sign()).unwrap());
            }),
            Loop::new("pkjwt, stored signature", || {
                std::hint::black_box(now(assembly.sign()).unwrap());
            }),
        ];
        if let Some(jwt_loop) = jsonwebtoken_loop(alg, &pkcs8, &kid) {
            loops.push(jwt_loop);
        }
        if alg == Algorithm::ES256 {
            loops.push(p256_loop(&pkcs8, &kid));
        }
        for _ in 0..rounds {
            for l in &mut loops {
                l.rates.push(rate(&mut l.f, round));
            }
        }
        let medians: Vec<(&str, f64)> = loops
            .iter()
            .map(|l| (l.name, median(l.rates.clone())))
            .collect();
        let (b, f, work) = (medians[0].1, medians[1].1, medians[2].1);
        println!(
            "{:<7} {:>14.0} {:>16.0} {:>6.2}x {:>13.2}",
            alg.name(),
            b,
            f,
            f / b,
            1e6 / work
        );
        for (name, r) in &medians[3..] {
            peer_lines.push(format!(
                "{:<7} {:<30} {:>10.0} {:>10.0} {:>8.2}x {:>9.2}x",
                alg.name(),
                name,
                r,
                f,
                f / r,
                b / r
            ));
        }
    }
    if !peer_lines.is_empty() {
        println!(
            "\npeers, same claims and key, same run (ratio = pkjwt / peer; bare/peer = the \
             most any JWT code around the same aws-lc-rs signature could reach):"
        );
        println!(
            "{:<7} {:<30} {:>10} {:>10} {:>9} {:>10}",
            "alg", "peer", "peer/s", "pkjwt/s", "ratio", "bare/peer"
        );
        for l in peer_lines {
            println!("{l}");
        }
    }
    if only.is_none() {
        openssl_speed();
    }
}

/// `jsonwebtoken::encode` with the same key and claims, for the algorithms the issue compares.
fn jsonwebtoken_loop<'a>(alg: Algorithm, pkcs8: &[u8], kid: &str) -> Option<Loop<'a>> {
    use jsonwebtoken::{Algorithm as J, EncodingKey, Header};
    let (j, key) = match alg {
        Algorithm::ES256 => (J::ES256, EncodingKey::from_ec_der(pkcs8)),
        Algorithm::EdDSA => (J::EdDSA, EncodingKey::from_ed_der(pkcs8)),
        Algorithm::RS256 => {
            // jsonwebtoken's aws-lc-rs backend takes PKCS#1 RSAPrivateKey DER.
            let info = pkcs8::PrivateKeyInfo::try_from(pkcs8).unwrap();
            (J::RS256, EncodingKey::from_rsa_der(info.private_key))
        }
        _ => return None,
    };
    let mut header = Header::new(j);
    header.typ = Some(TYP.into());
    header.kid = Some(kid.into());
    let jwt = jsonwebtoken::encode(&header, &PeerClaims::fresh(), &key).unwrap();
    check_peer_jwt("jsonwebtoken", &jwt, alg, kid);
    Some(Loop::new("jsonwebtoken 12 (aws-lc-rs)", move || {
        std::hint::black_box(jsonwebtoken::encode(&header, &PeerClaims::fresh(), &key).unwrap());
    }))
}

/// A hand-built ES256 assertion on RustCrypto `p256`: JSON, base64url, deterministic ECDSA.
fn p256_loop<'a>(pkcs8: &[u8], kid: &str) -> Loop<'a> {
    use p256::ecdsa::signature::Signer as _;
    use p256::pkcs8::DecodePrivateKey;
    let key = p256::ecdsa::SigningKey::from_pkcs8_der(pkcs8).unwrap();
    let owned_kid = kid.to_string();
    let sign = move || -> String {
        let header = PeerHeader {
            alg: "ES256",
            kid: &owned_kid,
            typ: TYP,
        };
        let mut jwt = b64::encode(serde_json::to_vec(&header).unwrap());
        jwt.push('.');
        b64::encode_into(serde_json::to_vec(&PeerClaims::fresh()).unwrap(), &mut jwt);
        let s: p256::ecdsa::Signature = key.sign(jwt.as_bytes());
        jwt.push('.');
        b64::encode_into(s.to_bytes(), &mut jwt);
        jwt
    };
    let jwt = sign();
    check_peer_jwt("p256", &jwt, Algorithm::ES256, kid);
    Loop::new("RustCrypto p256 0.14 (by hand)", move || {
        std::hint::black_box(sign());
    })
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
