//! `pkjwt rotate`: drives the key-rotation choreography in a state file that `pkjwt serve`
//! publishes from: `init` (first key), `begin` (publish the next key now, sign with it after the
//! pre-publication time, retire the old one after the overlap), `status`, `prune`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pkjwt::{Algorithm, Clock, Jwk, KeyUri, OpenOptions, SystemClock};
use pkjwt_jwks::{MIN_SERVER_JWKS_CACHE_SECS, RotationState, RotationTiming};

type CmdResult = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>;

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    s.parse::<Algorithm>().map_err(|e| e.to_string())
}

#[derive(Args)]
pub(crate) struct RotateArgs {
    /// The rotation state file (created by `init`).
    #[arg(long, env = "PKJWT_STATE", value_name = "FILE")]
    state: PathBuf,
    #[command(subcommand)]
    action: Action,
}

#[derive(Args)]
struct NewKey {
    /// The key: file:PATH, pkcs11:… (use pin-source, never pin-value: the URI is stored).
    #[arg(long, value_name = "URI")]
    key: String,
    /// Create the key in its backend first (file, PKCS#11); otherwise it must exist.
    #[arg(long)]
    generate: bool,
    /// Algorithm (default ES256 when generating; otherwise derived from the key).
    #[arg(long, value_parser = parse_alg)]
    alg: Option<Algorithm>,
    /// Accept private key files that group or others can read.
    #[arg(long, env = "PKJWT_ALLOW_INSECURE_KEY_PERMISSIONS")]
    allow_insecure_key_permissions: bool,
}

#[derive(Subcommand)]
enum Action {
    /// Start a state with its first key, published and signing at once.
    Init(NewKey),
    /// Publish the next key now; it signs after --prepublish seconds; the current keys retire
    /// --overlap seconds after that.
    Begin {
        #[command(flatten)]
        key: NewKey,
        /// Seconds between publishing and signing; must exceed every server's JWKS cache time.
        #[arg(long, default_value_t = 7200)]
        prepublish: u64,
        /// Seconds the previous key stays published after the switch.
        #[arg(long, default_value_t = 3600)]
        overlap: u64,
        /// The longest JWKS cache time among the servers (and `pkjwt serve --max-age`);
        /// --prepublish must exceed it. oidc-provider: 60.
        #[arg(long, default_value_t = MIN_SERVER_JWKS_CACHE_SECS)]
        server_cache: u64,
    },
    /// Print every key with its phase as JSON.
    Status,
    /// Forget retired keys.
    Prune,
}

async fn open_new(k: &NewKey) -> Result<(String, Jwk), Box<dyn std::error::Error + Send + Sync>> {
    let uri = KeyUri::parse(&k.key)?;
    if let KeyUri::Pkcs11(p) = &uri
        && p.has_pin_value()
    {
        // The state file keeps the URI in its printable form, where a PIN is `<redacted>`: a
        // later run would log in with that text and lock the token's PIN.
        return Err(
            "a rotation state cannot keep a PIN: give the key with pin-source=env:NAME \
                    or file:PATH instead of pin-value"
                .into(),
        );
    }
    let mut o = OpenOptions::default().alg(k.alg);
    o.file = o
        .file
        .allow_insecure_permissions(k.allow_insecure_key_permissions);
    let signer = if k.generate {
        pkjwt::generate(&uri, k.alg.unwrap_or(Algorithm::ES256), &o).await?
    } else {
        pkjwt::open_uri(&uri, &o).await?
    };
    // The stored URI is the printable form: it never carries a PIN value.
    Ok((
        uri.to_string(),
        Jwk::for_signing(signer.public_key(), signer.algorithm()),
    ))
}

pub(crate) async fn run(a: RotateArgs) -> CmdResult {
    let now = SystemClock.now();
    match a.action {
        Action::Init(k) => {
            if a.state.exists() {
                return Err(format!(
                    "{} exists; use `pkjwt rotate begin` to add the next key",
                    a.state.display()
                )
                .into());
            }
            let (uri, jwk) = open_new(&k).await?;
            let mut st = RotationState::new();
            st.init(&uri, jwk, now)?;
            st.save(&a.state)?;
        }
        Action::Begin {
            key,
            prepublish,
            overlap,
            server_cache,
        } => {
            if prepublish <= server_cache {
                return Err(format!(
                    "--prepublish {prepublish} s is not longer than the servers' JWKS cache \
                     ({server_cache} s): a server would still hold the old key set when the new \
                     key starts signing and reject it; choose more than {server_cache} s"
                )
                .into());
            }
            let mut st = RotationState::load(&a.state)?;
            let (uri, jwk) = open_new(&key).await?;
            st.begin(&uri, jwk, now, RotationTiming::new(prepublish, overlap))?;
            st.save(&a.state)?;
        }
        Action::Status => {}
        Action::Prune => {
            let mut st = RotationState::load(&a.state)?;
            let n = st.prune(now);
            st.save(&a.state)?;
            eprintln!("pkjwt: forgot {n} retired keys");
        }
    }
    let st = RotationState::load(&a.state)?;
    let signing = st.signing(now).map(|k| k.kid().to_owned());
    let keys: Vec<_> = st
        .keys
        .iter()
        .map(|k| {
            serde_json::json!({
                "kid": k.kid(),
                "uri": k.uri,
                "phase": k.phase(now, signing.as_deref()),
                "published_at": k.published_at,
                "active_from": k.active_from,
                "retire_at": k.retire_at,
            })
        })
        .collect();
    let out = serde_json::json!({ "now": now, "signing_kid": signing, "keys": keys });
    crate::token::print(&serde_json::to_string_pretty(&out)?)?;
    Ok(ExitCode::SUCCESS)
}
