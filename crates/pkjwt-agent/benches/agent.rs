//! The agent's two promises, measured side by side in one run:
//!
//! 1. **A cached token costs about a bare HTTP round trip.** Cached `GET /token` over the
//!    agent's Unix socket against a minimal axum handler on another Unix socket of the same
//!    process that answers a body of the same bytes (the agent's own answer, copied) with the
//!    same headers: the difference is what the agent adds (peer check, query, cache lookup,
//!    JSON). Each with one keep-alive connection and with a new connection per request. The
//!    four loops take turns in short rounds and the medians are compared, so that a noisy shared
//!    machine moves both sides alike. Goal: agent ≥ 0.8× bare.
//! 2. **Signatures per host do not grow with the number of processes.** N client processes
//!    (this binary re-run, N = 1, 4, 16) call the agent in a loop for some seconds with a short
//!    token lifetime; the signatures counted (the agent's signer histogram, checked against the
//!    grants oidc-provider logged) are scaled to per hour. Beside it, what the agent replaces:
//!    the same N processes each embedding pkjwt-client with its own `TokenCache` (same refresh
//!    settings) and the same key, counted by the grants at oidc-provider. Goal: constant in N.
//!
//! `cargo bench -p pkjwt-agent --no-default-features --bench agent [-- --rounds R --seconds S
//! --sig-seconds D --ttl T --ns 1,4,16 --pause-ms P]`
//!
//! Needs oidc-provider (`infra/ci/setup.sh`); a file key, so no HSM or KMS latency enters the
//! figures (the agent's signer count is the same whatever the backend).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use axum::Router;
use axum::http::header;
use axum::routing::get;
use pkjwt::{Algorithm, Jwk, KeyUri, OpenOptions};
use pkjwt_agent::client;
use pkjwt_agent::{Agent, AgentConfig, AgentHandle};
use pkjwt_client::{CacheOptions, ClientConfig, TokenCache, TokenClient, TokenRequest};
use pkjwt_conformance::oidc_provider::{OidcProvider, client_metadata};
use pkjwt_jwks::{JwksService, ServeOptions};
use serde_json::json;

const CLIENT: &str = "bench-agent";
const SCOPE: &str = "accounts:read";
const API: &str = "https://api.example.com";
const T: Duration = Duration::from_secs(30);
const REFRESH_FRACTION: f64 = 0.75;
const JITTER: f64 = 0.05;

const ROLE_ENV: &str = "PKJWT_AGENT_BENCH_ROLE";
const SOCKET_ENV: &str = "PKJWT_AGENT_BENCH_SOCKET";
const ISSUER_ENV: &str = "PKJWT_AGENT_BENCH_ISSUER";
const KEY_ENV: &str = "PKJWT_AGENT_BENCH_KEY";
const SECONDS_ENV: &str = "PKJWT_AGENT_BENCH_SECONDS";
const PAUSE_ENV: &str = "PKJWT_AGENT_BENCH_PAUSE_MS";

struct Args {
    rounds: usize,
    seconds: f64,
    sig_seconds: f64,
    ttl: u64,
    ns: Vec<usize>,
    pause_ms: u64,
}

impl Args {
    fn parse() -> Args {
        let mut a = Args {
            rounds: 9,
            seconds: 0.5,
            sig_seconds: 15.0,
            ttl: 3,
            ns: vec![1, 4, 16],
            pause_ms: 5,
        };
        let mut it = std::env::args().skip(1);
        while let Some(k) = it.next() {
            let mut v = || it.next().unwrap_or_else(|| panic!("{k} needs a value"));
            match k.as_str() {
                "--rounds" => a.rounds = v().parse().unwrap(),
                "--seconds" => a.seconds = v().parse().unwrap(),
                "--sig-seconds" => a.sig_seconds = v().parse().unwrap(),
                "--ttl" => a.ttl = v().parse().unwrap(),
                "--ns" => a.ns = v().split(',').map(|n| n.parse().unwrap()).collect(),
                "--pause-ms" => a.pause_ms = v().parse().unwrap(),
                // cargo bench passes --bench; other libtest flags mean nothing here.
                _ => {}
            }
        }
        a
    }
}

fn main() {
    match std::env::var(ROLE_ENV).as_deref() {
        Ok("agent-caller") => return caller(CallerKind::Agent),
        Ok("own-cache") => return caller(CallerKind::OwnCache),
        _ => {}
    }
    let args = Args::parse();
    // Two workers for the servers (the agent and the bare handler): the machine's cores.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(run(args));
}

fn temp_dir() -> PathBuf {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    let d = std::env::temp_dir().join(format!("pab-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

struct Setup {
    _op: OidcProvider,
    issuer: String,
    agent: AgentHandle,
}

/// oidc-provider with the client and token lifetime `ttl`, and an agent for it on `socket`.
async fn setup(key: &str, jwks: &str, ttl: u64, socket: &Path) -> Setup {
    let op = OidcProvider::start(&json!({
        "clients": [client_metadata(CLIENT, jwks, "ES256", SCOPE)],
        "resources": { API: { "scope": SCOPE } },
        "accessTokenTTL": ttl,
    }))
    .expect("oidc-provider (infra/ci/setup.sh)");
    let text = format!(
        "[agent]\nsocket = {:?}\nrefresh_fraction = {REFRESH_FRACTION}\njitter = {JITTER}\n\n\
         [profile.api]\nkey = {key:?}\nissuer = {:?}\nclient_id = {CLIENT:?}\nscope = {SCOPE:?}\n\
         resources = [{API:?}]\n",
        socket.display().to_string(),
        op.issuer,
    );
    let agent = Agent::start(AgentConfig::parse(&text, "bench.toml").unwrap())
        .await
        .unwrap();
    Setup {
        issuer: op.issuer.clone(),
        _op: op,
        agent,
    }
}

async fn run(args: Args) {
    let dir = temp_dir();
    let key = format!("file:{}", dir.join("client.pem").display());
    let signer = pkjwt::generate(
        &KeyUri::parse(&key).unwrap(),
        Algorithm::ES256,
        &OpenOptions::default(),
    )
    .await
    .unwrap();
    let svc = JwksService::new(
        vec![Jwk::for_signing(signer.public_key(), Algorithm::ES256)],
        None,
        ServeOptions::default(),
    )
    .unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let jwks = format!("http://{}/jwks", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, svc.router()).await.unwrap() });

    print_machine();
    round_trips(&args, &dir, &key, &jwks).await;
    signatures(&args, &dir, &key, &jwks).await;
    let _ = std::fs::remove_dir_all(&dir);
}

fn print_machine() {
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let cpus = std::thread::available_parallelism().map_or(0, |n| n.get());
    println!(
        "pkjwt agent bench — {cpus} CPUs, load average {}",
        load.split(' ').take(3).collect::<Vec<_>>().join(" ")
    );
}

// ---------------------------------------------------------------------------------------------
// 1. Cached GET /token against a bare round trip

const REQUEST: &[u8] = b"GET /token?profile=api HTTP/1.1\r\nHost: localhost\r\n\r\n";
const REQUEST_CLOSE: &[u8] =
    b"GET /token?profile=api HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n";

/// Reads one HTTP/1.1 answer with a Content-Length from a keep-alive connection; its body's
/// length. `buf` carries bytes across calls (there are none left over: one request at a time).
fn read_answer(s: &mut UnixStream, buf: &mut Vec<u8>) -> usize {
    buf.clear();
    let mut chunk = [0u8; 4096];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "connection closed mid-answer");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = std::str::from_utf8(&buf[..end]).unwrap();
            assert!(head.starts_with("HTTP/1.1 200"), "{head}");
            let len: usize = head
                .lines()
                .find_map(|l| {
                    let (k, v) = l.split_once(':')?;
                    k.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .expect("Content-Length");
            while buf.len() < end + 4 + len {
                let n = s.read(&mut chunk).unwrap();
                assert!(n > 0, "connection closed mid-body");
                buf.extend_from_slice(&chunk[..n]);
            }
            return len;
        }
    }
}

/// Requests per second over one keep-alive connection, for about `dur`.
fn keepalive_rate(socket: &Path, dur: Duration, body_len: usize) -> Rate {
    let mut s = UnixStream::connect(socket).unwrap();
    let mut buf = Vec::with_capacity(4096);
    let mut one = |s: &mut UnixStream| {
        s.write_all(REQUEST).unwrap();
        assert_eq!(read_answer(s, &mut buf), body_len);
    };
    for _ in 0..20 {
        one(&mut s);
    }
    let (start, cpu) = (Instant::now(), process_cpu());
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..16 {
            one(&mut s);
        }
        n += 16;
    }
    Rate::since(n, start, cpu)
}

/// Requests per second with a new connection per request (`Connection: close`).
fn new_connection_rate(socket: &Path, dur: Duration, body_len: usize) -> Rate {
    let mut buf = Vec::with_capacity(4096);
    let mut one = || {
        let mut s = UnixStream::connect(socket).unwrap();
        s.write_all(REQUEST_CLOSE).unwrap();
        buf.clear();
        s.read_to_end(&mut buf).unwrap();
        assert!(buf.starts_with(b"HTTP/1.1 200"));
        assert!(buf.len() > body_len);
    };
    for _ in 0..20 {
        one();
    }
    let (start, cpu) = (Instant::now(), process_cpu());
    let mut n = 0u64;
    while start.elapsed() < dur {
        for _ in 0..8 {
            one();
        }
        n += 8;
    }
    Rate::since(n, start, cpu)
}

/// CPU time of this whole process: the client thread and the servers' worker threads. Other
/// processes on the shared machine do not add to it, so it is the steadier measure; wall time
/// is reported too.
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// Requests per wall-second and per CPU-second of this process.
#[derive(Clone, Copy)]
struct Rate {
    wall: f64,
    cpu: f64,
}

impl Rate {
    fn since(n: u64, start: Instant, cpu: Duration) -> Rate {
        Rate {
            wall: n as f64 / start.elapsed().as_secs_f64(),
            cpu: n as f64 / (process_cpu() - cpu).as_secs_f64(),
        }
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

async fn round_trips(args: &Args, dir: &Path, key: &str, jwks: &str) {
    // A long lifetime: every request below is a cache hit.
    let socket = dir.join("a.sock");
    let s = setup(key, jwks, 3600, &socket).await;
    let (agent_socket, bare_socket) = (socket.clone(), dir.join("bare.sock"));
    let answer = {
        let p = agent_socket.clone();
        tokio::task::spawn_blocking(move || client::get(&p, "/token?profile=api", T).unwrap())
            .await
            .unwrap()
    };
    assert_eq!(answer.status, 200);
    let body = Arc::new(answer.body);
    let body_len = body.len();

    // The bare handler: the same bytes and headers, nothing else.
    let bare = Router::new().route(
        "/token",
        get(move || {
            let body = body.clone();
            async move {
                (
                    [
                        (header::CONTENT_TYPE, "application/json"),
                        (header::CACHE_CONTROL, "no-store"),
                    ],
                    body.as_ref().clone(),
                )
            }
        }),
    );
    let listener = tokio::net::UnixListener::bind(&bare_socket).unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, bare).await.unwrap() });

    let (rounds, dur) = (args.rounds, Duration::from_secs_f64(args.seconds));
    // Per round, the agent and the bare loop run back to back, in alternating order (a loop
    // that always ran first or second would carry a bias of the machine's state); the ratio of
    // each adjacent pair is kept, and the median ratio reported with its range.
    let rounds_out = tokio::task::spawn_blocking(move || {
        let mut r: Vec<[Rate; 4]> = Vec::new();
        for i in 0..rounds {
            let ka = |s: &Path| keepalive_rate(s, dur, body_len);
            let (a_ka, b_ka) = if i % 2 == 0 {
                let a = ka(&agent_socket);
                (a, ka(&bare_socket))
            } else {
                let b = ka(&bare_socket);
                (ka(&agent_socket), b)
            };
            let nc = |s: &Path| new_connection_rate(s, dur, body_len);
            let (a_nc, b_nc) = if i % 2 == 1 {
                let a = nc(&agent_socket);
                (a, nc(&bare_socket))
            } else {
                let b = nc(&bare_socket);
                (nc(&agent_socket), b)
            };
            r.push([a_ka, b_ka, a_nc, b_nc]);
        }
        r
    })
    .await
    .unwrap();
    println!(
        "\n1. Cached GET /token over a Unix socket vs a bare axum round trip ({body_len}-byte body), \
         {rounds} rounds of {:.1} s per loop; requests per second of wall time and per second of \
         this process's CPU time (client + servers), µs per request in brackets; medians, and the \
         range of the per-round ratios",
        args.seconds
    );
    println!(
        "{:<34} {:>18} {:>18} {:>8} {:>14}",
        "", "agent", "bare axum", "ratio", "ratio range"
    );
    for (name, i) in [
        ("one keep-alive connection", 0),
        ("new connection per request", 2),
    ] {
        for (clock, pick) in [
            ("wall", (|r: &Rate| r.wall) as fn(&Rate) -> f64),
            ("CPU", |r: &Rate| r.cpu),
        ] {
            let a = median(rounds_out.iter().map(|r| pick(&r[i])).collect());
            let b = median(rounds_out.iter().map(|r| pick(&r[i + 1])).collect());
            let ratios: Vec<f64> = rounds_out
                .iter()
                .map(|r| pick(&r[i]) / pick(&r[i + 1]))
                .collect();
            let lo = ratios.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = ratios.iter().copied().fold(0.0, f64::max);
            println!(
                "{:<34} {:>9.0} ({:>5.1}) {:>9.0} ({:>5.1}) {:>7.2}× {:>6.2}–{:.2}×",
                format!("{name}, {clock}"),
                a,
                1e6 / a,
                b,
                1e6 / b,
                median(ratios),
                lo,
                hi
            );
        }
    }
    server.abort();
    s.agent.shutdown().await.unwrap();
}

// ---------------------------------------------------------------------------------------------
// 2. Signatures per hour with N client processes

#[derive(Clone, Copy)]
enum CallerKind {
    Agent,
    OwnCache,
}

/// A client process: sets up, prints READY, waits for GO on stdin, then calls in a loop for
/// the given seconds; prints `CALLS n FETCHES f` (fetches: its own token requests, own-cache
/// only).
fn caller(kind: CallerKind) {
    let env = |k: &str| std::env::var(k).unwrap();
    let dur = Duration::from_secs_f64(env(SECONDS_ENV).parse().unwrap());
    let pause = Duration::from_millis(env(PAUSE_ENV).parse().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let wait_go = || {
        println!("READY");
        std::io::stdout().flush().unwrap();
        let mut line = String::new();
        std::io::stdin().read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "GO");
    };
    let (mut calls, mut fetches) = (0u64, 0u64);
    match kind {
        CallerKind::Agent => {
            let socket = PathBuf::from(env(SOCKET_ENV));
            wait_go();
            let start = Instant::now();
            while start.elapsed() < dur {
                client::token(&socket, "api", T).unwrap();
                calls += 1;
                std::thread::sleep(pause);
            }
        }
        CallerKind::OwnCache => rt.block_on(async {
            // What the agent replaces: this process signs its own assertions with the same key
            // and keeps its own cache with the agent's refresh settings.
            let signer = pkjwt::open(&env(KEY_ENV), &OpenOptions::default())
                .await
                .unwrap();
            let client = TokenClient::discover(signer, ClientConfig::new(CLIENT, env(ISSUER_ENV)))
                .await
                .unwrap();
            let mut o = CacheOptions::default();
            o.refresh_fraction = Some(REFRESH_FRACTION);
            o.jitter = JITTER;
            let req = TokenRequest::client_credentials()
                .scope(SCOPE)
                .resource(API);
            let cache = Arc::new(TokenCache::with_options(client, req, o));
            wait_go();
            let start = Instant::now();
            while start.elapsed() < dur {
                cache.serve().await.unwrap();
                calls += 1;
                tokio::time::sleep(pause).await;
            }
            fetches = cache.stats().fetches;
        }),
    }
    println!("CALLS {calls} FETCHES {fetches}");
}

fn spawn_callers(
    n: usize,
    kind: &str,
    envs: &[(&str, String)],
) -> Vec<(Child, BufReader<std::process::ChildStdout>)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let mut c = Command::new(std::env::current_exe().unwrap());
        c.env(ROLE_ENV, kind)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit());
        for (k, v) in envs {
            c.env(k, v);
        }
        let mut c = c.spawn().unwrap();
        let mut r = BufReader::new(c.stdout.take().unwrap());
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        assert_eq!(line.trim(), "READY", "caller did not get ready");
        out.push((c, r));
    }
    out
}

/// Releases the callers and sums their `CALLS`/`FETCHES`.
fn finish(callers: Vec<(Child, BufReader<std::process::ChildStdout>)>) -> (u64, u64) {
    let mut callers = callers;
    for (c, _) in &mut callers {
        c.stdin.as_mut().unwrap().write_all(b"GO\n").unwrap();
    }
    let (mut calls, mut fetches) = (0, 0);
    for (mut c, mut r) in callers {
        let mut text = String::new();
        r.read_to_string(&mut text).unwrap();
        assert!(c.wait().unwrap().success());
        let f: Vec<&str> = text.split_whitespace().collect();
        calls += f[1].parse::<u64>().unwrap();
        fetches += f[3].parse::<u64>().unwrap();
    }
    (calls, fetches)
}

fn signer_count(socket: &Path) -> u64 {
    let m = String::from_utf8(client::get(socket, "/metrics", T).unwrap().body).unwrap();
    m.lines()
        .find_map(|l| {
            l.strip_prefix("pkjwt_agent_signer_seconds_count{profile=\"api\"}")?
                .trim()
                .parse()
                .ok()
        })
        .unwrap()
}

fn grants(op: &OidcProvider) -> u64 {
    // oidc-provider logs a grant after answering it; give the last line a moment.
    std::thread::sleep(Duration::from_millis(300));
    op.grants(CLIENT) as u64
}

async fn signatures(args: &Args, dir: &Path, key: &str, jwks: &str) {
    let socket = dir.join("s.sock");
    let s = setup(key, jwks, args.ttl, &socket).await;
    let op = &s._op;
    let secs = args.sig_seconds;
    let per_hour = |n: u64| n as f64 * 3600.0 / secs;
    println!(
        "\n2. Signatures per host: token lifetime {} s, refresh at {REFRESH_FRACTION} (jitter \
         {JITTER}), {secs:.0} s per run, callers pause {} ms between calls",
        args.ttl, args.pause_ms
    );
    println!(
        "{:>3} {:>28} {:>28} {:>8}",
        "N", "agent: signatures (/hour)", "own caches: sign. (/hour)", "ratio"
    );
    let common = [
        (SECONDS_ENV, secs.to_string()),
        (PAUSE_ENV, args.pause_ms.to_string()),
    ];
    for &n in &args.ns {
        // With the agent: N processes ask it; the agent signs.
        let mut envs = common.to_vec();
        envs.push((SOCKET_ENV, socket.display().to_string()));
        let (sig0, g0) = (signer_count(&socket), grants(op));
        let callers = spawn_callers(n, "agent-caller", &envs);
        let (calls_a, _) = tokio::task::spawn_blocking(move || finish(callers))
            .await
            .unwrap();
        let (sig_a, g_a) = (signer_count(&socket) - sig0, grants(op) - g0);
        assert_eq!(
            sig_a, g_a,
            "the agent's signatures are the grants the server saw"
        );

        // Without: N processes with their own cache and the key.
        let mut envs = common.to_vec();
        envs.push((ISSUER_ENV, s.issuer.clone()));
        envs.push((KEY_ENV, key.to_owned()));
        let g0 = grants(op);
        let callers = spawn_callers(n, "own-cache", &envs);
        let (calls_o, fetches_o) = tokio::task::spawn_blocking(move || finish(callers))
            .await
            .unwrap();
        let g_o = grants(op) - g0;
        assert_eq!(
            fetches_o, g_o,
            "each process's token requests are grants at the server"
        );
        println!(
            "{n:>3} {:>12} ({:>9.0}/h) {:>12} ({:>9.0}/h) {:>7.1}×   calls: {calls_a} via the \
             agent, {calls_o} own",
            sig_a,
            per_hour(sig_a),
            g_o,
            per_hour(g_o),
            g_o as f64 / sig_a.max(1) as f64
        );
    }
    s.agent.shutdown().await.unwrap();
}
