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

use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput};
use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::object::{Attribute, ObjectClass};
use pkjwt_core::{Algorithm, AssertionOptions, ClientAssertion, GenerateOptions, HashAlg};
use pkjwt_pkcs11::{Pkcs11Options, Pkcs11Signer, generate};

const CHILD: &str = "PKJWT_BENCH_CHILD_DIR";

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
    // The application's runtime: 2 worker threads by default (one per core here);
    // PKJWT_BENCH_RT_WORKERS changes it.
    let rt_workers: usize = std::env::var("PKJWT_BENCH_RT_WORKERS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(2);
    println!("Tokio runtime: multi-thread, {rt_workers} worker thread(s)");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(rt_workers)
        .enable_all()
        .build()
        .unwrap();
    let mut c = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();

    let rounds: usize = std::env::var("PKJWT_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(15);
    let mut rows = Vec::new();
    for alg in &algs {
        let label = format!("bench-{}", alg.name().to_lowercase());
        let uri = env.uri(&format!("object={label}"));
        rt.block_on(generate(
            &uri,
            *alg,
            &GenerateOptions::default(),
            &Pkcs11Options::default(),
        ))
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
        // Two long-lived bare threads, each with its own session opened once (as a hand-written
        // loop would have them), fed with "sign n times" jobs.
        let bare_workers: Vec<BareWorker> = (0..2)
            .map(|_| BareWorker::start(&ctx, slot, &label, *alg))
            .collect();

        let backend = |workers: usize, iters: u64| -> Duration {
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
            start.elapsed()
        };
        let bare_loop = |workers: usize, iters: u64| -> Duration {
            let start = Instant::now();
            for (w, bw) in bare_workers.iter().take(workers).enumerate() {
                let w = w as u64;
                bw.jobs
                    .send(iters / workers as u64 + u64::from(w < iters % workers as u64))
                    .unwrap();
            }
            for bw in bare_workers.iter().take(workers) {
                bw.done.recv().unwrap();
            }
            start.elapsed()
        };

        let mut g = c.benchmark_group(alg.name());
        g.throughput(Throughput::Elements(1));
        for workers in [1usize, 2] {
            g.bench_function(format!("backend/{workers}"), |b| {
                b.iter_custom(|iters| backend(workers, iters))
            });
            g.bench_function(format!("bare/{workers}"), |b| {
                b.iter_custom(|iters| bare_loop(workers, iters))
            });
        }
        g.finish();

        // Ratios from interleaved rounds: the machine is shared and its speed drifts by tens of
        // percent within seconds, so each round measures backend and bare back to back and the
        // median of the per-round ratios is reported.
        // Each call runs `chunk` signatures from freshly spawned tasks; the first signatures of a
        // call pay for spawning them and for the workers' first scheduler hand-off (about a
        // millisecond with two workers), so a call lasts about 100 ms, as steady signing would
        // (PKJWT_BENCH_CHUNK_MS changes it; 10 shows the burst cost).
        let chunk_ms: u64 = std::env::var("PKJWT_BENCH_CHUNK_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let per_op = bare_loop(1, 200).as_secs_f64() / 200.0;
        let chunk = ((chunk_ms as f64 / 1000.0 / per_op) as u64).clamp(20, 100_000);
        // (operations per wall-clock second, operations per CPU-second of this process). The
        // second is immune to other processes taking the CPUs away, which on a shared 2-core
        // machine swings wall-clock figures by tens of percent.
        let rate_for = |f: &dyn Fn(usize, u64) -> Duration, workers: usize| {
            let (mut n, mut d) = (0u64, Duration::ZERO);
            let cpu0 = cpu_time();
            while d < Duration::from_millis(300.max(chunk_ms)) {
                d += f(workers, chunk);
                n += chunk;
            }
            let cpu = cpu_time().saturating_sub(cpu0).as_secs_f64().max(0.01);
            (n as f64 / d.as_secs_f64(), n as f64 / cpu)
        };
        for workers in [1usize, 2] {
            let mut be_rates = Vec::new();
            let mut bare_rates = Vec::new();
            let mut ratios = Vec::new();
            let mut cpu_ratios = Vec::new();
            for round in 0..rounds {
                // Alternate which goes first, so that neither always gets the warmer cache.
                let (be, ba) = if round % 2 == 0 {
                    let be = rate_for(&backend, workers);
                    (be, rate_for(&bare_loop, workers))
                } else {
                    let ba = rate_for(&bare_loop, workers);
                    (rate_for(&backend, workers), ba)
                };
                be_rates.push(be.0);
                bare_rates.push(ba.0);
                ratios.push(be.0 / ba.0);
                cpu_ratios.push(be.1 / ba.1);
            }
            rows.push((
                alg.name(),
                workers,
                median(be_rates),
                median(bare_rates),
                median(ratios),
                median(cpu_ratios),
            ));
        }
    }

    println!(
        "\n== PKCS#11 (SoftHSM2): assertions/s through the backend vs bare C_Sign/s, same run =="
    );
    println!(
        "(medians of {rounds} interleaved rounds; ratios are medians of per-round ratios; \
         CPU ratio = (assertions per CPU-second) / (C_Sign per CPU-second), whole process)"
    );
    println!(
        "| alg | workers/threads | backend assertions/s | bare C_Sign/s | wall ratio | CPU ratio |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (alg, w, be, bare, ratio, cpu_ratio) in rows {
        println!("| {alg} | {w} | {be:.0} | {bare:.0} | {ratio:.2}x | {cpu_ratio:.2}x |");
    }
}

/// User + system CPU time of this process so far, from `/proc/self/stat` (clock ticks, assumed
/// 100 per second as on every Linux this runs on); zero elsewhere.
fn cpu_time() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    // Fields after the parenthesized command name: state is field 3, utime 14, stime 15.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0);
    Duration::from_millis((ticks(11) + ticks(12)) * 10)
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    if v.is_empty() {
        return 0.0;
    }
    v[v.len() / 2]
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

/// A thread with its own session that signs `n` times per job.
struct BareWorker {
    jobs: std::sync::mpsc::Sender<u64>,
    done: std::sync::mpsc::Receiver<()>,
}

impl BareWorker {
    fn start(ctx: &Pkcs11, slot: cryptoki::slot::Slot, label: &str, alg: Algorithm) -> Self {
        let (jobs, job_rx) = std::sync::mpsc::channel::<u64>();
        let (done_tx, done) = std::sync::mpsc::channel();
        let session = ctx.open_ro_session(slot).unwrap();
        let key = session
            .find_objects(&[
                Attribute::Class(ObjectClass::PRIVATE_KEY),
                Attribute::Label(label.as_bytes().to_vec()),
            ])
            .unwrap()[0];
        std::thread::spawn(move || {
            let mech = bare_mechanism(alg);
            let input = bare_input(alg);
            while let Ok(n) = job_rx.recv() {
                for _ in 0..n {
                    std::hint::black_box(session.sign(&mech, key, &input).unwrap());
                }
                if done_tx.send(()).is_err() {
                    break;
                }
            }
        });
        BareWorker { jobs, done }
    }
}
