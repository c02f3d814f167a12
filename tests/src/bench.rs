//! Same-run A/B timing for the backends' benches (`kms_sign`, `gcp_sign`, `kv_sign`): a bare
//! client call against pkjwt's whole assertion through the backend, in alternating batches, so
//! that the load of a shared machine lands on both sides alike; and the backend's own CPU work
//! without the network ([`Replay`], [`per_call_us`]), which is its overhead by construction.

use std::future::Future;
use std::time::{Duration, Instant};

/// The median of `v` (the upper one for an even count); NaN for an empty one.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// What [`interleaved`] measured.
#[derive(Clone, Copy, Debug)]
pub struct AbResult {
    /// Median time of one `a` call, µs.
    pub a_us: f64,
    /// Median time of one `b` call, µs.
    pub b_us: f64,
    /// Median over rounds of the per-round ratio `b / a`.
    pub ratio: f64,
    /// First quartile of the per-round ratios.
    pub q1: f64,
    /// Third quartile of the per-round ratios (q1–q3: how far one round can be trusted here).
    pub q3: f64,
}

/// `warmup` calls of each, then `rounds` rounds of one batch of `batch` calls of each, the order
/// alternating from round to round.
pub fn interleaved<A, FA, B, FB>(
    rt: &tokio::runtime::Runtime,
    rounds: usize,
    batch: usize,
    warmup: usize,
    mut a: A,
    mut b: B,
) -> AbResult
where
    A: FnMut() -> FA,
    FA: Future<Output = ()>,
    B: FnMut() -> FB,
    FB: Future<Output = ()>,
{
    let mut ratios = Vec::with_capacity(rounds);
    let (mut a_all, mut b_all) = (Vec::new(), Vec::new());
    rt.block_on(async {
        for _ in 0..warmup {
            a().await;
            b().await;
        }
        for round in 0..rounds {
            let mut t = [Duration::ZERO; 2];
            for which in [round % 2, 1 - round % 2] {
                let start = Instant::now();
                for _ in 0..batch {
                    if which == 0 {
                        a().await;
                    } else {
                        b().await;
                    }
                }
                t[which] = start.elapsed();
            }
            let per = |d: Duration| d.as_secs_f64() * 1e6 / batch.max(1) as f64;
            a_all.push(per(t[0]));
            b_all.push(per(t[1]));
            ratios.push(t[1].as_secs_f64() / t[0].as_secs_f64());
        }
    });
    let mut sorted = ratios.clone();
    sorted.sort_by(|x, y| x.total_cmp(y));
    let quartile = |q: usize| {
        sorted
            .get(sorted.len() * q / 4)
            .copied()
            .unwrap_or(f64::NAN)
    };
    AbResult {
        a_us: median(a_all),
        b_us: median(b_all),
        ratio: median(ratios),
        q1: quartile(1),
        q3: quartile(3),
    }
}

impl AbResult {
    /// One line: both medians and the overhead of `b` over `a` with its quartiles, against
    /// `goal_pct`.
    pub fn overhead_line(&self, bare: &str, rounds: usize, batch: usize, goal_pct: f64) -> String {
        let pct = |r: f64| (r - 1.0) * 100.0;
        format!(
            "interleaved A/B ({rounds} rounds of {batch}): {bare} median {:.0} µs, backend \
             assertion median {:.0} µs, overhead (median of per-round ratios) {:+.1} % \
             (quartiles {:+.1} % … {:+.1} %; goal ≤ {goal_pct} %)",
            self.a_us,
            self.b_us,
            pct(self.ratio),
            pct(self.q1),
            pct(self.q3),
        )
    }
}

/// Microseconds per call of `f` over `n` calls, after `warmup` calls.
pub fn per_call_us<F, Fut, T>(rt: &tokio::runtime::Runtime, warmup: u32, n: u32, mut f: F) -> f64
where
    F: FnMut() -> Fut,
    Fut: Future<Output = T>,
{
    rt.block_on(async {
        for _ in 0..warmup {
            std::hint::black_box(f().await);
        }
        let start = Instant::now();
        for _ in 0..n {
            std::hint::black_box(f().await);
        }
        start.elapsed().as_secs_f64() * 1e6 / f64::from(n.max(1))
    })
}

/// A signer that answers with one real signature of a backend after doing the CPU work that
/// backend does around its request (`local`: given the message and the stored signature, it
/// returns the signature in the `Signer` contract's form): the assertion pipeline minus the
/// network.
#[derive(Debug)]
pub struct Replay {
    /// The backend key's public key.
    pub public_key: pkjwt_core::PublicKey,
    /// Its algorithm.
    pub algorithm: pkjwt_core::Algorithm,
    /// A signature the backend made, as it returned it.
    pub signature: Vec<u8>,
    /// The backend's local work for one signature.
    pub local: fn(&[u8], &[u8]) -> pkjwt_core::Result<Vec<u8>>,
}

#[async_trait::async_trait]
impl pkjwt_core::Signer for Replay {
    fn algorithm(&self) -> pkjwt_core::Algorithm {
        self.algorithm
    }
    fn public_key(&self) -> &pkjwt_core::PublicKey {
        &self.public_key
    }
    async fn sign(&self, message: &[u8]) -> pkjwt_core::Result<pkjwt_core::Signature> {
        (self.local)(message, &self.signature).map(pkjwt_core::Signature::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medians_and_the_ratio_of_two_known_costs() {
        assert_eq!(median(vec![3.0, 1.0, 2.0]), 2.0);
        assert!(median(Vec::new()).is_nan());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let r = interleaved(
            &rt,
            6,
            3,
            1,
            || tokio::time::sleep(Duration::from_millis(2)),
            || tokio::time::sleep(Duration::from_millis(6)),
        );
        // Sleeps only ever overrun: b costs about three times a, never less than a.
        assert!(r.a_us >= 2_000.0 && r.b_us >= 6_000.0, "{r:?}");
        assert!(r.ratio > 1.5 && r.q1 <= r.ratio && r.ratio <= r.q3, "{r:?}");
        let line = r.overhead_line("bare", 6, 3, 5.0);
        assert!(
            line.contains("6 rounds of 3") && line.contains("goal ≤ 5 %"),
            "{line}"
        );
        // Two sleeps of 1 ms: at least 1000 µs each.
        let us = per_call_us(&rt, 1, 2, || tokio::time::sleep(Duration::from_millis(1)));
        assert!(us >= 1_000.0, "{us}");
    }
}
