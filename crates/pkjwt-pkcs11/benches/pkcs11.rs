//! Assertions per second through the PKCS#11 backend (1 and 2 concurrent workers) against a bare
//! `cryptoki` `C_Sign` loop on the same SoftHSM2 token (1 and 2 threads, one session each), in
//! the same run, with the ratios printed at the end. The bare loop is the ceiling: it signs a
//! precomputed digest and builds no JWT.
//!
//! Run: `cargo bench -p pkjwt-pkcs11 --bench pkcs11` (criterion options after `--`, e.g.
//! `-- --measurement-time 3`). Algorithms: `PKJWT_BENCH_ALGS=ES256,RS256` (default ES256,RS256).
//! Like the tests, the benchmark re-runs itself with a private token directory.

#![allow(missing_docs, clippy::unwrap_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::process::Command;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, HashAlg};
use pkjwt_pkcs11::{Pkcs11Options, Pkcs11Signer, generate};

const CHILD: &str = "PKJWT_BENCH_CHILD_DIR";

/// Total (operations, time) per configuration, across every criterion call.
fn totals() -> &'static Mutex<BTreeMap<String, (u64, Duration)>> {
    static T: OnceLock<Mutex<BTreeMap<String, (u64, Duration)>>> = OnceLock::new();
    T.get_or_init(|| Mutex::new(BTreeMap::new()))
}

fn record(name: &str, n: u64, d: Duration) {
    let mut t = totals().lock().unwrap();
    let e = t.entry(name.to_string()).or_default();
    e.0 += n;
    e.1 += d;
}

fn rate(name: &str) -> f64 {
    let t = totals().lock().unwrap();
    t.get(name)
        .map(|(n, d)| *n as f64 / d.as_secs_f64())
        .unwrap_or(0.0)
}

fn main() {
    let Some(dir) = std::env::var_os(CHILD) else {
        if !common::have("SoftHSM2", common::module().is_file()) {
            return;
        }
        let dir = common::make_token_dir("bench");
        let status = Command::new(std::env::current_exe().unwrap())
            .args(std::env::args_os().skip(1))
            .env(CHILD, &dir)
            .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
            .status()
            .unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        std::process::exit(status.code().unwrap_or(1));
    };
    let env = common::Env { dir: dir.into() };
    let algs: Vec<Algorithm> = std::env::var("PKJWT_BENCH_ALGS")
        .unwrap_or_else(|_| "ES256,RS256".into())
        .split(',')
        .map(|a| a.trim().parse().unwrap())
        .collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    for alg in &algs {
        let label = format!("bench-{}", alg.name().to_lowercase());
        let uri = env.uri(&format!("object={label}"));
        rt.block_on(generate(&uri, *alg, &Pkcs11Options::default()))
            .unwrap();
        let signer = Arc::new(
            rt.block_on(Pkcs11Signer::open(
                &uri,
                Some(*alg),
                &Pkcs11Options::default().pool_size(2),
            ))
            .unwrap(),
        );
        let assertion = Arc::new(
            ClientAssertion::new(
                signer.clone(),
                AssertionOptions::new("bench-client", "https://as.example.com"),
            )
            .unwrap(),
        );

        // The bare loop: a second handle on the same (already initialized, logged-in) module.
        let ctx = Pkcs11::new(common::module()).unwrap();
        let _ = ctx.initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK));
        let slot = ctx
            .get_slots_with_token()
            .unwrap()
            .into_iter()
            .find(|s| ctx.get_token_info(*s).unwrap().label().trim_end() == common::TOKEN)
            .unwrap();
        let input = bare_input(*alg);
        // One session per bare thread, opened once, as a hand-written loop would.
        let bare: Vec<Mutex<(cryptoki::session::Session, cryptoki::object::ObjectHandle)>> = (0..2)
            .map(|_| {
                let session = ctx.open_ro_session(slot).unwrap();
                let key = session
                    .find_objects(&[
                        Attribute::Class(ObjectClass::PRIVATE_KEY),
                        Attribute::Label(label.as_bytes().to_vec()),
                    ])
                    .unwrap()[0];
                Mutex::new((session, key))
            })
            .collect();

        let mut g = c.benchmark_group(alg.name());
        g.throughput(Throughput::Elements(1));
        for workers in [1usize, 2] {
            let name = format!("{} backend, {workers} worker(s)", alg.name());
            g.bench_function(format!("backend/{workers}"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    rt.block_on(async {
                        let mut joins = Vec::new();
                        for w in 0..workers as u64 {
                            let a = assertion.clone();
                            let n = iters / workers as u64 + u64::from(w < iters % workers as u64);
                            joins.push(tokio::spawn(async move {
                                for _ in 0..n {
                                    std::hint::black_box(a.sign().await.unwrap());
                                }
                            }));
                        }
                        for j in joins {
                            j.await.unwrap();
                        }
                    });
                    let d = start.elapsed();
                    record(&name, iters, d);
                    d
                })
            });
            let name = format!("{} bare C_Sign, {workers} thread(s)", alg.name());
            g.bench_function(format!("bare/{workers}"), |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    std::thread::scope(|s| {
                        for w in 0..workers as u64 {
                            let n = iters / workers as u64 + u64::from(w < iters % workers as u64);
                            let (input, slot, alg) = (&input, &bare[w as usize], *alg);
                            s.spawn(move || {
                                let guard = slot.lock().unwrap();
                                let (session, key) = (&guard.0, guard.1);
                                let mech = bare_mechanism(alg);
                                for _ in 0..n {
                                    std::hint::black_box(session.sign(&mech, key, input).unwrap());
                                }
                            });
                        }
                    });
                    let d = start.elapsed();
                    record(&name, iters, d);
                    d
                })
            });
        }
        g.finish();
    }

    println!("\n== PKCS#11 (SoftHSM2) assertions/s vs bare C_Sign/s, same run ==");
    println!("| alg | workers | backend assertions/s | bare C_Sign/s | ratio |");
    println!("| --- | --- | --- | --- | --- |");
    for alg in &algs {
        for w in [1, 2] {
            let be = rate(&format!("{} backend, {w} worker(s)", alg.name()));
            let bare = rate(&format!("{} bare C_Sign, {w} thread(s)", alg.name()));
            println!(
                "| {} | {w} | {be:.0} | {bare:.0} | {:.2}x |",
                alg.name(),
                if bare > 0.0 { be / bare } else { 0.0 }
            );
        }
    }
}

/// What the bare loop hands to `C_Sign`: a precomputed digest for CKM_ECDSA, else the message.
fn bare_input(alg: Algorithm) -> Vec<u8> {
    match alg {
        Algorithm::ES256 => HashAlg::Sha256.digest(b"bench"),
        _ => b"bench".to_vec(),
    }
}

/// The mechanism the backend picks on SoftHSM2 for `alg`.
fn bare_mechanism(alg: Algorithm) -> Mechanism<'static> {
    match alg {
        Algorithm::ES256 => Mechanism::Ecdsa,
        Algorithm::RS256 => Mechanism::Sha256RsaPkcs,
        Algorithm::EdDSA => Mechanism::Eddsa(cryptoki::mechanism::eddsa::EddsaParams::new(
            cryptoki::mechanism::eddsa::EddsaSignatureScheme::Pure,
        )),
        other => panic!("no bare loop for {other}"),
    }
}
