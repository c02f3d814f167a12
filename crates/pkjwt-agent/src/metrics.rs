//! Counters and the signer latency histogram, rendered in the Prometheus text format
//! (version 0.0.4). Plain atomics: the agent's hot path (a cached token) adds two relaxed
//! increments.

use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use pkjwt::{Algorithm, PublicKey, Signature, Signer};

/// Upper bounds (seconds) of the signer latency buckets: a file key signs in microseconds, an
/// HSM in milliseconds, a KMS call in tens to hundreds of milliseconds.
const BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0,
];

/// Counters of one profile.
#[derive(Debug, Default)]
pub(crate) struct ProfileMetrics {
    pub(crate) served: AtomicU64,
    pub(crate) hits: AtomicU64,
    pub(crate) hits_refresh_due: AtomicU64,
    pub(crate) unavailable: AtomicU64,
    pub(crate) signer: Histogram,
    pub(crate) signer_errors: AtomicU64,
    pub(crate) signer_errors_by_kind:
        std::sync::Mutex<std::collections::BTreeMap<&'static str, u64>>,
    pub(crate) assertions: AtomicU64,
    pub(crate) assertions_refused: AtomicU64,
    // The counts of token caches this profile had before a reload replaced them, so that the
    // rendered counters never go down.
    retired: std::sync::Mutex<pkjwt_client::CacheStats>,
}

impl ProfileMetrics {
    /// Adds a replaced cache's counts to the profile's totals.
    pub(crate) fn retire(&self, stats: pkjwt_client::CacheStats) {
        let mut r = self.retired.lock().unwrap_or_else(|p| p.into_inner());
        r.fetches += stats.fetches;
        for (k, n) in stats.fetch_errors {
            *r.fetch_errors.entry(k).or_insert(0) += n;
        }
    }

    /// The current cache's counts plus the retired ones.
    pub(crate) fn totals(&self, current: pkjwt_client::CacheStats) -> pkjwt_client::CacheStats {
        let mut t = self
            .retired
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        t.fetches += current.fetches;
        for (k, n) in current.fetch_errors {
            *t.fetch_errors.entry(k).or_insert(0) += n;
        }
        t
    }
}

/// A latency histogram (non-cumulative counts per bucket; rendered cumulative).
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    counts: [AtomicU64; BUCKETS.len() + 1],
    sum_micros: AtomicU64,
}

impl Histogram {
    pub(crate) fn observe(&self, d: Duration) {
        let s = d.as_secs_f64();
        let i = BUCKETS
            .iter()
            .position(|b| s <= *b)
            .unwrap_or(BUCKETS.len());
        self.counts[i].fetch_add(1, Ordering::Relaxed);
        let micros = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.sum_micros.fetch_add(micros, Ordering::Relaxed);
    }
}

/// Agent-wide counters.
#[derive(Debug, Default)]
pub(crate) struct AgentMetrics {
    pub(crate) refused_peer: AtomicU64,
    pub(crate) unknown_profile: AtomicU64,
    pub(crate) reloads_ok: AtomicU64,
    pub(crate) reloads_failed: AtomicU64,
}

/// Times every signature of the wrapped signer into a profile's histogram.
#[derive(Debug)]
pub(crate) struct TimedSigner {
    pub(crate) inner: Arc<dyn Signer>,
    pub(crate) metrics: Arc<ProfileMetrics>,
}

#[async_trait]
impl Signer for TimedSigner {
    fn algorithm(&self) -> Algorithm {
        self.inner.algorithm()
    }
    fn public_key(&self) -> &PublicKey {
        self.inner.public_key()
    }
    async fn sign(&self, message: &[u8]) -> pkjwt::Result<Signature> {
        let start = Instant::now();
        let r = self.inner.sign(message).await;
        self.metrics.signer.observe(start.elapsed());
        if let Err(e) = &r {
            self.metrics.signer_errors.fetch_add(1, Ordering::Relaxed);
            let mut by_kind = self
                .metrics
                .signer_errors_by_kind
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            *by_kind.entry(e.kind()).or_insert(0) += 1;
        }
        r
    }
    fn certificate_chain(&self) -> &[Vec<u8>] {
        self.inner.certificate_chain()
    }
}

/// One profile's view for rendering: its name, counters and the cache's.
pub(crate) struct ProfileView<'a> {
    pub(crate) name: &'a str,
    pub(crate) metrics: &'a ProfileMetrics,
    pub(crate) cache: pkjwt_client::CacheStats,
    pub(crate) ready: bool,
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// The `/metrics` body. Profile names are restricted to `[A-Za-z0-9._-]` at load, so they need
/// no escaping inside label values.
pub(crate) fn render(agent: &AgentMetrics, profiles: &[ProfileView<'_>]) -> String {
    let mut o = String::new();
    let counter = |o: &mut String, name: &str, help: &str, f: &dyn Fn(&ProfileView<'_>) -> u64| {
        header(o, name, "counter", help);
        for p in profiles {
            let _ = writeln!(o, "{name}{{profile=\"{}\"}} {}", p.name, f(p));
        }
    };
    let ld = |a: &AtomicU64| a.load(Ordering::Relaxed);
    counter(
        &mut o,
        "pkjwt_agent_tokens_served_total",
        "Tokens answered to callers.",
        &|p| ld(&p.metrics.served),
    );
    counter(
        &mut o,
        "pkjwt_agent_cache_hits_total",
        "Tokens answered from the cache without waiting (including while a refresh was due).",
        &|p| ld(&p.metrics.hits),
    );
    counter(
        &mut o,
        "pkjwt_agent_cache_hits_refresh_due_total",
        "Cached tokens answered while their refresh was running, backing off or had failed.",
        &|p| ld(&p.metrics.hits_refresh_due),
    );
    counter(
        &mut o,
        "pkjwt_agent_token_fetches_total",
        "Token requests sent to the authorization server (each may retry inside).",
        &|p| p.cache.fetches,
    );
    counter(
        &mut o,
        "pkjwt_agent_assertions_total",
        "Client assertions signed for callers (POST /assertion).",
        &|p| ld(&p.metrics.assertions),
    );
    counter(
        &mut o,
        "pkjwt_agent_assertions_refused_total",
        "POST /assertion requests refused (disabled, audience not allowed, signing failed).",
        &|p| ld(&p.metrics.assertions_refused),
    );
    header(
        &mut o,
        "pkjwt_agent_profile_ready",
        "gauge",
        "1 when the profile's authorization server is discovered, 0 while it is pending.",
    );
    for p in profiles {
        let _ = writeln!(
            o,
            "pkjwt_agent_profile_ready{{profile=\"{}\"}} {}",
            p.name,
            u8::from(p.ready)
        );
    }
    counter(
        &mut o,
        "pkjwt_agent_token_unavailable_total",
        "Callers answered with an error because no valid token existed.",
        &|p| ld(&p.metrics.unavailable),
    );
    counter(
        &mut o,
        "pkjwt_agent_signer_errors_total",
        "Signatures the key's backend refused or failed.",
        &|p| ld(&p.metrics.signer_errors),
    );
    header(
        &mut o,
        "pkjwt_agent_signer_errors_by_kind_total",
        "counter",
        "Failed signatures by kind (throttled, access_denied, unavailable, pin, ...): KMS or HSM \
         throttling shows here while callers keep getting the valid token.",
    );
    for p in profiles {
        let by_kind = p
            .metrics
            .signer_errors_by_kind
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        for (kind, n) in by_kind {
            let _ = writeln!(
                o,
                "pkjwt_agent_signer_errors_by_kind_total{{profile=\"{}\",kind=\"{kind}\"}} {n}",
                p.name
            );
        }
    }
    header(
        &mut o,
        "pkjwt_agent_token_fetch_errors_total",
        "counter",
        "Failed token requests by kind (network, timeout, oauth_<code>, assertion, ...).",
    );
    for p in profiles {
        for (kind, n) in &p.cache.fetch_errors {
            let _ = writeln!(
                o,
                "pkjwt_agent_token_fetch_errors_total{{profile=\"{}\",kind=\"{kind}\"}} {n}",
                p.name
            );
        }
    }
    header(
        &mut o,
        "pkjwt_agent_signer_seconds",
        "histogram",
        "Time the key's backend took per signature.",
    );
    for p in profiles {
        let h = &p.metrics.signer;
        let mut cum = 0u64;
        for (i, b) in BUCKETS.iter().enumerate() {
            cum += ld(&h.counts[i]);
            let _ = writeln!(
                o,
                "pkjwt_agent_signer_seconds_bucket{{profile=\"{}\",le=\"{b}\"}} {cum}",
                p.name
            );
        }
        cum += ld(&h.counts[BUCKETS.len()]);
        let _ = writeln!(
            o,
            "pkjwt_agent_signer_seconds_bucket{{profile=\"{}\",le=\"+Inf\"}} {cum}",
            p.name
        );
        let _ = writeln!(
            o,
            "pkjwt_agent_signer_seconds_sum{{profile=\"{}\"}} {}",
            p.name,
            ld(&h.sum_micros) as f64 / 1e6
        );
        let _ = writeln!(
            o,
            "pkjwt_agent_signer_seconds_count{{profile=\"{}\"}} {cum}",
            p.name
        );
    }
    header(
        &mut o,
        "pkjwt_agent_refused_callers_total",
        "counter",
        "Unix-socket callers refused by the allowed_uids list.",
    );
    let _ = writeln!(
        o,
        "pkjwt_agent_refused_callers_total {}",
        ld(&agent.refused_peer)
    );
    header(
        &mut o,
        "pkjwt_agent_reloads_total",
        "counter",
        "Configuration reloads (SIGHUP, file or rotation-state change) by result.",
    );
    let _ = writeln!(
        o,
        "pkjwt_agent_reloads_total{{result=\"ok\"}} {}\npkjwt_agent_reloads_total{{result=\"error\"}} {}",
        ld(&agent.reloads_ok),
        ld(&agent.reloads_failed)
    );
    header(
        &mut o,
        "pkjwt_agent_unknown_profile_total",
        "counter",
        "Requests naming no configured profile.",
    );
    let _ = writeln!(
        o,
        "pkjwt_agent_unknown_profile_total {}",
        ld(&agent.unknown_profile)
    );
    o
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A backend that always fails with one kind of error.
    #[derive(Debug)]
    struct Failing(PublicKey);

    #[async_trait]
    impl Signer for Failing {
        fn algorithm(&self) -> Algorithm {
            Algorithm::ES256
        }
        fn public_key(&self) -> &PublicKey {
            &self.0
        }
        async fn sign(&self, _: &[u8]) -> pkjwt::Result<Signature> {
            Err(pkjwt::Error::backend_kind(
                "test",
                "throttled",
                std::io::Error::other("rate exceeded"),
            ))
        }
    }

    #[tokio::test]
    async fn signer_errors_are_counted_by_kind_and_timed() {
        let (key, _pkcs8) =
            pkjwt::generate_in_memory(Algorithm::ES256, &pkjwt::GenerateOptions::default())
                .unwrap();
        let metrics = Arc::new(ProfileMetrics::default());
        let timed = TimedSigner {
            inner: Arc::new(Failing(key.public_key().clone())),
            metrics: metrics.clone(),
        };
        for _ in 0..3 {
            assert!(timed.sign(b"x").await.is_err());
        }
        let text = render(
            &AgentMetrics::default(),
            &[ProfileView {
                name: "p",
                metrics: &metrics,
                cache: pkjwt_client::CacheStats::default(),
                ready: true,
            }],
        );
        assert!(
            text.contains(
                "pkjwt_agent_signer_errors_by_kind_total{profile=\"p\",kind=\"throttled\"} 3"
            ),
            "{text}"
        );
        assert!(
            text.contains("pkjwt_agent_signer_errors_total{profile=\"p\"} 3"),
            "{text}"
        );
        assert!(
            text.contains("pkjwt_agent_signer_seconds_count{profile=\"p\"} 3"),
            "{text}"
        );
    }
}
