//! `pkjwt rotate`: drives the key-rotation choreography in a state file that `pkjwt serve`
//! publishes from: `init` (first key), `begin` (publish the next key now, sign with it after the
//! pre-publication time, retire the old one after the overlap), `apply` (move an AWS KMS alias
//! to the key that signs now: the alias swap), `status`, `prune`.
//!
//! AWS KMS keys are stored by key ARN, so every entry keeps reaching its own key whatever an
//! alias points to; the alias the key URI names (or `--swap-alias`) is recorded with the entry
//! and moved to it by `apply` once it signs.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use pkjwt::{Algorithm, Clock, Jwk, KeyUri, SystemClock};
use pkjwt_jwks::{MIN_SERVER_JWKS_CACHE_SECS, RotationState, RotationTiming};

use crate::args::{BoxError, CmdResult, open_options};
use crate::output::print;

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
    /// Algorithm (default ES256 when generating; otherwise derived from the key). Pinned in the
    /// published JWK's alg; without it an RSA key's JWK carries none (RS256 and PS256 verify).
    #[arg(long)]
    alg: Option<Algorithm>,
    /// Accept private key files that group or others can read.
    #[arg(long, env = "PKJWT_ALLOW_INSECURE_KEY_PERMISSIONS")]
    allow_insecure_key_permissions: bool,
    /// AWS KMS: the alias (alias/NAME) to point at this key once it signs (`pkjwt rotate
    /// apply`). Default: the alias the key URI names. With --generate and a URI alias that
    /// already names the current key, the new key is created without an alias and the alias
    /// moves to it at the switch.
    #[arg(long, value_name = "ALIAS")]
    swap_alias: Option<String>,
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
        /// A registration file saved by `pkjwt register`: when it registers an inline jwks,
        /// update it (RFC 7592) to the keys published now, so the server knows the next key
        /// before it signs.
        #[arg(long, value_name = "FILE")]
        registration: Option<PathBuf>,
    },
    /// Point the recorded AWS KMS alias at the key that signs now (idempotent; run it after the
    /// pre-publication time, e.g. from a timer).
    Apply,
    /// Print every key with its phase as JSON.
    Status,
    /// Forget retired keys.
    Prune {
        /// A registration file saved by `pkjwt register`: when it registers an inline jwks,
        /// update it (RFC 7592) to the keys still published (the retired ones leave).
        #[arg(long, value_name = "FILE")]
        registration: Option<PathBuf>,
    },
}

/// A key ready to enter the state: its stored URI, public JWK and alias to keep pointed at it.
struct NewEntry {
    uri: String,
    jwk: Jwk,
    alias: Option<String>,
}

/// `current`: the URI of the key that signs now, when `k` is the next key of a rotation.
async fn open_new(k: &NewKey, current: Option<&str>) -> Result<NewEntry, BoxError> {
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
    let o = open_options(k.alg, k.allow_insecure_key_permissions)?;
    #[cfg(feature = "aws-kms")]
    if let KeyUri::AwsKms(kms) = &uri {
        return open_kms(k, kms, &o, current).await;
    }
    let _ = current; // only AWS KMS keys look at the current key (alias swap)
    if k.swap_alias.is_some() {
        return Err("--swap-alias applies to AWS KMS keys only (awskms:…)".into());
    }
    #[cfg(feature = "azure-kv")]
    if let KeyUri::AzureKv(az) = &uri {
        return open_azure(k, az, &o).await;
    }
    let signer = if k.generate {
        pkjwt::generate(&uri, k.alg.unwrap_or(Algorithm::ES256), &o).await?
    } else {
        pkjwt::open_uri(&uri, &o).await?
    };
    // The stored URI is the printable form: it never carries a PIN value.
    Ok(NewEntry {
        uri: uri.to_string(),
        jwk: Jwk::for_publication(signer.public_key(), k.alg)?,
        alias: None,
    })
}

/// Azure Key Vault: the entry names the key **with its version** (the one opened, or the one
/// just created), so the state's URI and published JWK stay the same key when a newer version
/// becomes current in the vault.
#[cfg(feature = "azure-kv")]
async fn open_azure(
    k: &NewKey,
    az: &pkjwt::uri::AzureKvUri,
    o: &pkjwt::OpenOptions,
) -> Result<NewEntry, BoxError> {
    use pkjwt::Signer;
    use pkjwt::azure_kv::{AzureKvSigner, generate};
    let signer = if k.generate {
        let alg = k.alg.unwrap_or(Algorithm::ES256);
        let (_, kid) = generate(az, alg, &o.generate, &o.azure_kv).await?;
        let version = kid.rsplit('/').next().unwrap_or_default();
        AzureKvSigner::open(&az.with_version(version), Some(alg), &o.azure_kv).await?
    } else {
        AzureKvSigner::open(az, k.alg, &o.azure_kv).await?
    };
    Ok(NewEntry {
        uri: KeyUri::AzureKv(signer.pinned_uri().clone()).to_string(),
        jwk: Jwk::for_publication(signer.public_key(), k.alg)?,
        alias: None,
    })
}

/// AWS KMS: the entry names the key by ARN; the alias is recorded to be moved at the switch.
#[cfg(feature = "aws-kms")]
async fn open_kms(
    k: &NewKey,
    kms: &pkjwt::AwsKmsUri,
    o: &pkjwt::OpenOptions,
    current: Option<&str>,
) -> Result<NewEntry, BoxError> {
    use pkjwt::Signer;
    use pkjwt::aws_kms::{self, AwsKmsSigner};
    let uri_alias = aws_kms::alias_name(&kms.key_id);
    let alias = match &k.swap_alias {
        Some(a) => {
            check_swap_alias(a)?;
            Some(a.clone())
        }
        None => uri_alias.clone(),
    };
    let opts = &o.aws_kms;
    let signer = if k.generate {
        let alg = k.alg.unwrap_or(Algorithm::ES256);
        // The alias-takeover rule lives in pkjwt-aws-kms (create_rotation_key).
        let signing = current.map(KeyUri::parse).transpose()?;
        aws_kms::create_rotation_key(kms, alg, signing.as_ref(), &o.generate, opts).await?
    } else {
        AwsKmsSigner::open(kms, k.alg, opts).await?
    };
    let mut pinned = kms.clone();
    pinned.key_id = signer.key_arn().to_owned();
    Ok(NewEntry {
        uri: pinned.to_string(),
        jwk: Jwk::for_publication(signer.public_key(), k.alg)?,
        alias,
    })
}

/// `--swap-alias` must name a customer alias: `alias/NAME`, not an AWS managed `alias/aws/…`.
#[cfg(feature = "aws-kms")]
fn check_swap_alias(a: &str) -> Result<(), BoxError> {
    if pkjwt::aws_kms::alias_name(a).as_deref() != Some(a) || a.starts_with("alias/aws/") {
        return Err(pkjwt::aws_kms::AwsKmsError::NotAnAlias { name: a.to_owned() }.into());
    }
    Ok(())
}

/// Updates an inline-`jwks` registration to the keys published at `now`.
async fn sync_registration(
    path: &std::path::Path,
    st: &RotationState,
    now: i64,
) -> Result<(), BoxError> {
    use pkjwt_client::{HttpOptions, KeysUpdate, Registration, RegistrationClient};
    let keys: Vec<Jwk> = st.published(now).map(|k| k.jwk.clone()).collect();
    let n = keys.len();
    let update = async {
        let reg = Registration::load(path)?;
        let client = RegistrationClient::new(&HttpOptions::default())?;
        match client.update_keys(&reg, keys).await? {
            KeysUpdate::Updated(new) => {
                // The answer may carry a new registration access token: it replaces the file.
                new.save(path, true)?;
                Ok::<_, pkjwt_client::ClientError>(true)
            }
            _ => Ok(false),
        }
    };
    match update.await {
        Ok(true) => eprintln!(
            "pkjwt: updated the registration in {}: {n} keys registered",
            path.display()
        ),
        Ok(false) => eprintln!(
            "pkjwt: {} registers a jwks_uri: the server reads the keys from there, nothing to \
             update",
            path.display()
        ),
        Err(e) => {
            return Err(format!(
                "the rotation state is saved, but updating the registration in {} failed: {}; \
                 retry with: pkjwt register --update --registration {} --state STATE",
                path.display(),
                pkjwt::ErrorChain(&e),
                path.display()
            )
            .into());
        }
    }
    Ok(())
}

/// The library's refusal of a key algorithm, with the registration file and the flag that fixes
/// it.
fn alg_hint(path: &std::path::Path, e: pkjwt_client::ClientError) -> BoxError {
    match &e {
        pkjwt_client::ClientError::KeyAlgorithm { registered, .. } => {
            format!("{}: {e} (give --alg {registered})", path.display()).into()
        }
        _ => e.into(),
    }
}

/// `apply`: points the alias recorded with the signing key at that key.
async fn apply(st: &RotationState, now: i64) -> Result<(), BoxError> {
    let Some(key) = st.signing(now) else {
        return Err("no key signs now: nothing to apply".into());
    };
    let Some(alias) = &key.alias else {
        eprintln!("pkjwt: the signing key {} has no alias to move", key.kid());
        return Ok(());
    };
    #[cfg(feature = "aws-kms")]
    if let KeyUri::AwsKms(kms) = KeyUri::parse(&key.uri)? {
        let opts = open_options(None, false)?.aws_kms;
        let before = pkjwt::aws_kms::point_alias(&kms, alias, &kms.key_id, &opts).await?;
        match before {
            Some(b) if pkjwt::aws_kms::same_key(&b, &kms.key_id) => {
                eprintln!("pkjwt: {alias} already points to {}", kms.key_id);
            }
            Some(b) => eprintln!("pkjwt: moved {alias} from {b} to {}", kms.key_id),
            None => eprintln!("pkjwt: created {alias} for {}", kms.key_id),
        }
        return Ok(());
    }
    Err(format!(
        "key {} records alias {alias}, but {} is not an AWS KMS key this build can reach",
        key.kid(),
        key.uri
    )
    .into())
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
            let new = open_new(&k, None).await?;
            let mut st = RotationState::new();
            st.init(&new.uri, new.jwk, now)?;
            if let Some(e) = st.keys.last_mut() {
                e.alias = new.alias;
            }
            st.save(&a.state)?;
        }
        Action::Begin {
            key,
            prepublish,
            overlap,
            server_cache,
            registration,
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
            // Everything that can refuse the rotation is checked before a key is created in a
            // backend, so that a refusal leaves no key behind.
            st.check_can_begin(now)?;
            let current = st.signing(now).map(|k| k.uri.clone());
            if let Some(path) = &registration {
                let planned = key.alg.or(key.generate.then_some(Algorithm::ES256));
                let reg = pkjwt_client::Registration::load(path)?;
                pkjwt_client::check_new_key_alg(&reg, planned).map_err(|e| alg_hint(path, e))?;
            }
            let new = open_new(&key, current.as_deref()).await?;
            if let Some(path) = &registration {
                let reg = pkjwt_client::Registration::load(path)?;
                pkjwt_client::check_new_key(&reg, &new.jwk).map_err(|e| alg_hint(path, e))?;
            }
            st.begin(
                &new.uri,
                new.jwk,
                now,
                RotationTiming::new(prepublish, overlap),
            )?;
            if let Some(e) = st.keys.last_mut() {
                if let Some(alias) = &new.alias {
                    eprintln!(
                        "pkjwt: run `pkjwt rotate apply` at or after {} (Unix time, in {prepublish} s) \
                         to point {alias} at the new key",
                        e.active_from
                    );
                }
                e.alias = new.alias;
            }
            st.save(&a.state)?;
            if let Some(path) = &registration {
                sync_registration(path, &st, now).await?;
            }
        }
        Action::Apply => apply(&RotationState::load(&a.state)?, now).await?,
        Action::Status => {}
        Action::Prune { registration } => {
            let mut st = RotationState::load(&a.state)?;
            let n = st.prune(now);
            st.save(&a.state)?;
            eprintln!("pkjwt: forgot {n} retired keys");
            if let Some(path) = &registration {
                sync_registration(path, &st, now).await?;
            }
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
                "alias": k.alias,
            })
        })
        .collect();
    let out = serde_json::json!({ "now": now, "signing_kid": signing, "keys": keys });
    print(&serde_json::to_string_pretty(&out)?)?;
    Ok(ExitCode::SUCCESS)
}
