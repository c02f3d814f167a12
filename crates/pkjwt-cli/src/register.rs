//! `pkjwt register`: dynamic client registration (RFC 7591) of a `private_key_jwt` client, and
//! RFC 7592 management of the registration (`--read`, `--update`, `--delete`).
//!
//! The registration response, which holds the registration access token, goes to a file created
//! with mode 0600 (`--out`, default `registration.json`); stdout gets the `client_id` alone.
//! Tokens come from `env:NAME` or `file:PATH` sources, never from the command line, and are
//! never printed.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use pkjwt::{Algorithm, Clock, Jwk, JwkSet, SecretSource, Signer, SystemClock};
use pkjwt_client::{
    ClientKeys, ClientMetadata, HttpOptions, RegisterOptions, Registration, RegistrationClient,
    Secret, SignedRequest, sign_software_statement,
};
use serde_json::{Map, Value};

use crate::args::{BoxError, CmdResult, KeysArgs, open_key};
use crate::output::print;

#[derive(Args)]
#[command(mut_arg("key", |a| a.help(
    "A key whose public JWK goes into the inline jwks (RFC 7638 kid); repeat for several (the \
     current and the next key). With --jwks-uri only the first key's algorithm is used",
)))]
pub(crate) struct RegisterArgs {
    /// The issuer identifier; its metadata names the registration_endpoint.
    #[arg(long, env = "PKJWT_ISSUER", value_name = "URL", required_unless_present_any = ["read", "update", "delete"])]
    issuer: Option<String>,
    #[command(flatten)]
    keys: KeysArgs,
    /// Take the keys from a rotation state file (`pkjwt rotate`): every key published now.
    #[arg(long, env = "PKJWT_STATE", value_name = "FILE", conflicts_with = "key")]
    state: Option<PathBuf>,
    /// Register this jwks_uri (for example `pkjwt serve`'s) instead of an inline jwks.
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// token_endpoint_auth_signing_alg (default: the first key's algorithm).
    #[arg(long, env = "PKJWT_ALG")]
    alg: Option<Algorithm>,
    /// Scope the client may ask for (space-separated).
    #[arg(long, env = "PKJWT_SCOPE")]
    scope: Option<String>,
    /// Grant types; repeat for several.
    #[arg(
        long = "grant-type",
        value_name = "GRANT",
        default_value = "client_credentials"
    )]
    grant_types: Vec<String>,
    /// client_name.
    #[arg(long)]
    client_name: Option<String>,
    /// Extra metadata member NAME=VALUE (VALUE parsed as JSON when it is JSON); repeatable.
    #[arg(long = "metadata", value_name = "NAME=VALUE")]
    metadata: Vec<String>,
    /// Where the initial access token is: env:NAME or file:PATH.
    // Parsed after clap: clap's own error for a bad value would print the value, and a value
    // typed here by mistake is often the token itself.
    #[arg(long, env = "PKJWT_INITIAL_ACCESS_TOKEN_SOURCE", value_name = "SOURCE")]
    initial_access_token_source: Option<String>,
    /// Send this software statement (a file holding a JWT, for example one issued by a
    /// directory) as software_statement.
    #[arg(long, value_name = "FILE", conflicts_with = "software_statement_key")]
    software_statement: Option<PathBuf>,
    /// Make a software statement carrying the client metadata, signed by this key, and send it.
    #[arg(long, value_name = "URI", requires = "software_statement_issuer")]
    software_statement_key: Option<String>,
    /// iss of the software statement (the software publisher or directory).
    #[arg(long, value_name = "ISS")]
    software_statement_issuer: Option<String>,
    /// Send the registration as a signed request (application/jwt) signed by this key.
    #[arg(long, value_name = "URI", requires = "request_issuer")]
    signed_request_key: Option<String>,
    /// iss of the signed request (UK Open Banking: the software_id).
    #[arg(long, value_name = "ISS")]
    request_issuer: Option<String>,
    /// Lifetime in seconds of a software statement or signed request made here.
    #[arg(long, default_value_t = 300)]
    statement_lifetime: u64,
    /// File the registration response is saved to (mode 0600; never overwritten).
    #[arg(long, value_name = "FILE", default_value = "registration.json")]
    out: PathBuf,
    /// RFC 7592: print the registration as the server has it now (JSON, without the token).
    #[arg(long, requires = "registration", conflicts_with_all = ["update", "delete"])]
    read: bool,
    /// RFC 7592: replace the registration's metadata; --key/--state replace the inline jwks
    /// (after `pkjwt rotate begin`, pass --state so the server knows the next key), --jwks-uri,
    /// --scope, --alg and --metadata replace those members. FILE is rewritten with the answer.
    #[arg(long, requires = "registration", conflicts_with = "delete")]
    update: bool,
    /// RFC 7592: delete the registration; the server then refuses the client.
    #[arg(long, requires = "registration")]
    delete: bool,
    /// The registration file saved by `pkjwt register` (for --read, --update, --delete).
    #[arg(long, value_name = "FILE")]
    registration: Option<PathBuf>,
    /// Seconds to wait for each HTTP request.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

impl RegisterArgs {
    /// Opens a key named by one of the other key flags (software statement, signed request).
    async fn open(&self, uri: &str) -> Result<Arc<dyn Signer>, BoxError> {
        open_key(uri, &self.keys.options(self.alg)?).await
    }

    /// The public JWKs of --key or --state, if any was given.
    async fn jwks(&self) -> Result<Option<Vec<Jwk>>, BoxError> {
        if let Some(path) = &self.state {
            let st = pkjwt_jwks::RotationState::load(path)?;
            let now = SystemClock.now();
            let keys: Vec<Jwk> = st.published(now).map(|k| k.jwk.clone()).collect();
            if keys.is_empty() {
                return Err(format!("{}: no key is published now", path.display()).into());
            }
            return Ok(Some(keys));
        }
        if self.keys.keys().is_empty() {
            return Ok(None);
        }
        let mut out = Vec::new();
        for s in self.keys.open_all(self.alg).await? {
            // --alg pins the JWKs; without it an RSA key's JWK carries no alg (the
            // registration's token_endpoint_auth_signing_alg still names one).
            out.push(Jwk::for_publication(s.public_key(), self.alg)?);
        }
        Ok(Some(out))
    }

    fn http(&self) -> HttpOptions {
        let mut http = HttpOptions::default();
        http.timeout = Duration::from_secs(self.timeout.max(1));
        http.connect_timeout = http.timeout.min(Duration::from_secs(5));
        http
    }

    fn extra_metadata(&self) -> Result<Map<String, Value>, BoxError> {
        let mut m = Map::new();
        for c in &self.metadata {
            let (name, value) = c.split_once('=').ok_or_else(|| {
                format!(
                    "--metadata {c:?}: expected NAME=VALUE, for example --metadata software_id=abc"
                )
            })?;
            if name.is_empty() {
                return Err(format!("--metadata {c:?}: the member name is empty").into());
            }
            let v = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.into()));
            m.insert(name.into(), v);
        }
        Ok(m)
    }
}

/// The algorithm every key must have: `--alg`, or else the first key's
/// ([`pkjwt_client::check_key_algs`]), with the flags that fix a mismatch.
fn check_algs(keys: &[Jwk], alg: Algorithm) -> Result<(), BoxError> {
    pkjwt_client::check_key_algs(keys, alg)
        .map_err(|e| format!("{e} (give keys of one algorithm, or --alg)").into())
}

/// The first key's algorithm: its JWK's alg, or else (an RSA JWK without one) the key's
/// default, PS256, which is what `token` and `assert` sign with unless given --alg.
fn first_alg(keys: &[Jwk]) -> Option<Algorithm> {
    let k = keys.first()?;
    match k.alg.as_deref() {
        Some(a) => a.parse().ok(),
        None => k.to_public_key().ok().map(|p| p.default_algorithm()),
    }
}

pub(crate) async fn run(a: RegisterArgs) -> CmdResult {
    if a.read || a.update || a.delete {
        return manage(a).await;
    }
    // Invariant: clap requires --issuer unless --read/--update/--delete.
    let issuer = a.issuer.clone().ok_or("--issuer is required")?;
    let keys = a.jwks().await?;
    let alg = match (a.alg, keys.as_deref().and_then(first_alg)) {
        (Some(x), _) | (None, Some(x)) => x,
        (None, None) => {
            return Err(
                "give --key (or --state) so the client's keys and algorithm are known, \
                        or --jwks-uri with --alg"
                    .into(),
            );
        }
    };
    let client_keys = match (&a.jwks_uri, keys) {
        (Some(u), _) => ClientKeys::JwksUri(u.clone()),
        (None, Some(k)) => {
            check_algs(&k, alg)?;
            ClientKeys::Jwks(JwkSet::new(k)?)
        }
        (None, None) => return Err("give --key, --state or --jwks-uri".into()),
    };
    // Refuse early rather than register a client whose token cannot be saved.
    if a.out.exists() {
        return Err(format!(
            "{} exists; it may hold another registration's access token, so it is not \
             overwritten (choose another --out file)",
            a.out.display()
        )
        .into());
    }
    let mut md = ClientMetadata::new(client_keys, alg);
    md.grant_types = a.grant_types.clone();
    md.scope = a.scope.clone();
    md.client_name = a.client_name.clone();
    md.extra = a.extra_metadata()?;
    let metadata = md.to_json();

    let client = RegistrationClient::new(&a.http())?;
    let server = client.discover(&issuer, alg).await?;
    let mut options = RegisterOptions::default();
    if let Some(src) = &a.initial_access_token_source {
        let src = SecretSource::parse(src, false)
            .map_err(|e| format!("--initial-access-token-source: {e}"))?;
        let t = src.read("initial access token")?;
        options.initial_access_token = Some(Secret::new(t.as_str()));
    }
    if let Some(path) = &a.software_statement {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read the software statement {}: {e}", path.display()))?;
        let jwt = text.trim();
        if jwt.split('.').count() != 3 {
            return Err(format!(
                "{} does not hold a compact JWS (expected header.payload.signature)",
                path.display()
            )
            .into());
        }
        options.software_statement = Some(jwt.to_owned());
    }
    if let (Some(uri), Some(iss)) = (&a.software_statement_key, &a.software_statement_issuer) {
        let s = a.open(uri).await?;
        let jwt = sign_software_statement(s.as_ref(), iss, a.statement_lifetime, &metadata).await?;
        options.software_statement = Some(jwt);
    }
    if let (Some(uri), Some(iss)) = (&a.signed_request_key, &a.request_issuer) {
        let mut sr = SignedRequest::new(a.open(uri).await?, iss.clone());
        sr.lifetime_secs = a.statement_lifetime;
        options.signed_request = Some(sr);
    }
    // Invariant: discover() checked that registration_endpoint is present.
    let endpoint = server
        .registration_endpoint
        .as_deref()
        .ok_or("no registration_endpoint")?;
    let reg = client
        .register(endpoint, &issuer, &metadata, &options)
        .await?;
    reg.save(&a.out, false)?;
    if reg.registration_access_token().is_none() {
        eprintln!(
            "pkjwt: note: the server issued no registration access token: the registration cannot \
             be updated or deleted with pkjwt register --update/--delete"
        );
    }
    eprintln!(
        "pkjwt: registered client {} at {endpoint}; registration saved to {} (mode 0600, it \
         holds the registration access token)",
        reg.client_id(),
        a.out.display()
    );
    print(reg.client_id())?;
    Ok(ExitCode::SUCCESS)
}

async fn manage(a: RegisterArgs) -> CmdResult {
    // Invariant: clap requires --registration with --read/--update/--delete.
    let path = a.registration.clone().ok_or("--registration is required")?;
    let reg = Registration::load(&path)?;
    let client = RegistrationClient::new(&a.http())?;
    if a.read {
        let now = client.read(&reg).await?;
        let (shown, had_secret) = now.printable();
        if had_secret {
            eprintln!(
                "pkjwt: the server holds a client_secret for client {}; it is not printed",
                now.client_id()
            );
        }
        print(&serde_json::to_string_pretty(&shown)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if a.delete {
        client.delete(&reg).await?;
        eprintln!(
            "pkjwt: deleted client {}; {} now holds a dead registration",
            reg.client_id(),
            path.display()
        );
        print(reg.client_id())?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut metadata = reg.metadata();
    let alg = a.alg.or(pkjwt_client::registered_alg(&metadata));
    if let Some(al) = a.alg {
        metadata.insert("token_endpoint_auth_signing_alg".into(), al.name().into());
    }
    if let Some(keys) = a.jwks().await? {
        let Some(alg) = alg.or_else(|| first_alg(&keys)) else {
            return Err(
                "the registration names no token_endpoint_auth_signing_alg; give --alg".into(),
            );
        };
        check_algs(&keys, alg)?;
        if a.jwks_uri.is_none() {
            metadata.remove("jwks_uri");
            metadata.insert("jwks".into(), serde_json::to_value(JwkSet::new(keys)?)?);
        }
    }
    if let Some(u) = &a.jwks_uri {
        metadata.remove("jwks");
        metadata.insert("jwks_uri".into(), u.clone().into());
    }
    if let Some(s) = &a.scope {
        metadata.insert("scope".into(), s.clone().into());
    }
    for (k, v) in a.extra_metadata()? {
        metadata.insert(k, v);
    }
    let new = client.update(&reg, &metadata).await?;
    // The server may have rotated the registration access token: the file must hold the new one.
    new.save(&path, true)?;
    eprintln!(
        "pkjwt: updated client {}; {} holds the new registration",
        new.client_id(),
        path.display()
    );
    print(new.client_id())?;
    Ok(ExitCode::SUCCESS)
}
