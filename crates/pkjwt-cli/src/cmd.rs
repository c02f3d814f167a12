//! Subcommands. Each one resolves its arguments into library calls and prints the result.

use std::io::Write;
use std::process::ExitCode;

use clap::{Args, Subcommand, ValueEnum};
use pkjwt::{
    Algorithm, AssertionOptions, Audience, ClientAssertion, Jwk, JwkSet, KeyId, KeyUri,
    OpenOptions, Signer,
};

pub(crate) type CmdResult = Result<ExitCode, Box<dyn std::error::Error + Send + Sync>>;

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a new signing key in a backend (a file is written with mode 0600 and never
    /// overwritten); prints its public JWK.
    #[command(
        after_help = "Examples:\n  pkjwt keygen --key file:client.pem --alg ES256\n  \
        pkjwt keygen --key 'file:client.pem?passphrase-source=env:KEY_PASS' --alg PS256"
    )]
    Keygen(KeygenArgs),
    /// Print a key's public part as a JWK, a JWKS, PEM, or its RFC 7638 thumbprint.
    #[command(
        after_help = "Example:\n  pkjwt pubkey --key file:client.pem --format jwks > jwks.json"
    )]
    Pubkey(PubkeyArgs),
    /// Print a signed RFC 7523 client assertion (private_key_jwt) on stdout.
    #[command(
        after_help = "Example:\n  pkjwt assert --key file:client.pem --client-id my-client \\\n    \
        --aud https://as.example.com"
    )]
    Assert(AssertArgs),
    /// Explain, claim by claim, whether a client assertion would be accepted (exit 0) or refused
    /// (exit 1, the reason on stderr).
    #[command(
        after_help = "Example:\n  pkjwt verify --jwks jwks.json --client-id my-client \\\n    \
        --aud https://as.example.com \"$JWT\""
    )]
    Verify(crate::verify::VerifyArgs),
    /// Print a self-signed X.509 certificate (or, with --csr, a PKCS#10 request) signed by the
    /// key, as PEM on stdout.
    #[command(
        after_help = "Examples:\n  pkjwt cert --key file:client.pem --subject \"CN=payments-client,O=Example,C=GB\" --days 365\n  \
        pkjwt cert --key 'pkcs11:token=t;object=k?pin-source=env:PIN' --subject CN=client --csr"
    )]
    Cert(crate::cert::CertArgs),
    /// Get an access token with private_key_jwt; prints the token alone (--json: the response).
    #[command(
        after_help = "Example:\n  pkjwt token --key file:client.pem --client-id my-client \\\n    \
        --issuer https://as.example.com --scope accounts:read"
    )]
    Token(crate::token::TokenArgs),
    /// Serve the JWKS of keys and of a rotation state at /jwks (and /.well-known/jwks.json).
    #[command(after_help = "Example:\n  pkjwt serve --key file:client.pem --listen 127.0.0.1:8000")]
    Serve(crate::serve::ServeArgs),
    /// Rotate keys: init, begin (publish next, switch later, retire after overlap), status.
    #[command(
        after_help = "Example:\n  pkjwt rotate --state rotation.json begin --key file:next.pem \\\n    \
        --generate --prepublish 7200 --overlap 3600"
    )]
    Rotate(crate::rotate::RotateArgs),
    /// Register the client (RFC 7591) with private_key_jwt and its keys (inline jwks or
    /// jwks_uri); prints the client_id alone and saves the registration (mode 0600). With
    /// --read/--update/--delete --registration FILE: manage it (RFC 7592).
    #[command(
        after_help = "Examples:\n  pkjwt register --issuer https://as.example.com --key file:client.pem \\\n            --scope accounts:read --out registration.json\n          pkjwt register --issuer https://as.example.com --key file:client.pem \\\n            --jwks-uri https://client.example.com/jwks --initial-access-token-source env:IAT\n          pkjwt rotate --state rotation.json begin --key file:next.pem --generate\n          pkjwt register --update --registration registration.json --state rotation.json\n          pkjwt register --delete --registration registration.json"
    )]
    Register(crate::register::RegisterArgs),
}

#[derive(Args)]
pub(crate) struct KeyArgs {
    /// Key reference: file:PATH (or a path) or a backend's key URI; `pkjwt --help` lists the forms.
    #[arg(long, env = "PKJWT_KEY", value_name = "URI")]
    key: String,
    /// Accept a private key file that group or others can read (ssh refuses those; so do we).
    #[arg(long, env = "PKJWT_ALLOW_INSECURE_KEY_PERMISSIONS")]
    allow_insecure_key_permissions: bool,
}

impl KeyArgs {
    pub(crate) fn uri(&self) -> Result<KeyUri, pkjwt::Error> {
        let uri = KeyUri::parse(&self.key)?;
        if let KeyUri::Pkcs11(p) = &uri
            && p.has_pin_value()
        {
            eprintln!(
                "pkjwt: warning: the key URI carries pin-value; prefer pin-source=env:NAME or \
                 file:PATH (a PIN on the command line ends up in shell history and process lists)"
            );
        }
        Ok(uri)
    }

    pub(crate) fn options(&self, alg: Option<Algorithm>) -> Result<OpenOptions, String> {
        open_options(alg, self.allow_insecure_key_permissions)
    }

    pub(crate) async fn open(
        &self,
        alg: Option<Algorithm>,
    ) -> Result<std::sync::Arc<dyn Signer>, Box<dyn std::error::Error + Send + Sync>> {
        // An out-of-range PKJWT_* variable is reported as itself, as every other command does
        // (it is not an assertion setting).
        let options = self.options(alg)?;
        Ok(pkjwt::open_uri(&self.uri()?, &options).await?)
    }
}

/// Options for opening keys: the algorithm, the file-permission opt-out, and backend tuning
/// from the environment — `PKJWT_PKCS11_POOL_SIZE`, `PKJWT_PKCS11_MAX_ATTEMPTS`,
/// `PKJWT_AWS_KMS_MAX_ATTEMPTS`, `PKJWT_AWS_KMS_CONNECT_TIMEOUT` and `PKJWT_AWS_KMS_TIMEOUT`
/// (seconds per attempt).
pub(crate) fn open_options(
    alg: Option<Algorithm>,
    allow_insecure_key_permissions: bool,
) -> Result<OpenOptions, String> {
    let mut o = OpenOptions::default().alg(alg);
    o.file = o
        .file
        .allow_insecure_permissions(allow_insecure_key_permissions);
    #[cfg(feature = "pkcs11")]
    {
        if let Some(n) = env_number("PKJWT_PKCS11_POOL_SIZE", 1, 1024)? {
            o.pkcs11 = o.pkcs11.pool_size(n as usize);
        }
        if let Some(n) = env_number("PKJWT_PKCS11_MAX_ATTEMPTS", 1, 100)? {
            o.pkcs11 = o.pkcs11.max_attempts(n as u32);
        }
    }
    #[cfg(feature = "aws-kms")]
    {
        use std::time::Duration;
        if let Some(n) = env_number("PKJWT_AWS_KMS_MAX_ATTEMPTS", 1, 100)? {
            o.aws_kms = o.aws_kms.max_attempts(n as u32);
        }
        if let Some(n) = env_number("PKJWT_AWS_KMS_CONNECT_TIMEOUT", 1, 600)? {
            o.aws_kms = o.aws_kms.connect_timeout(Duration::from_secs(n));
        }
        if let Some(n) = env_number("PKJWT_AWS_KMS_TIMEOUT", 1, 600)? {
            let attempt = Duration::from_secs(n);
            let attempts = o.aws_kms.max_attempts.max(1);
            // Every attempt, plus the longest backoff before each retry.
            let operation = attempt
                .saturating_mul(attempts)
                .saturating_add(o.aws_kms.max_backoff.saturating_mul(attempts - 1));
            o.aws_kms = o.aws_kms.timeouts(attempt, operation);
        }
    }
    Ok(o)
}

/// A whole number from environment variable `name`, within `min..=max`; `None` when unset.
#[cfg(any(feature = "pkcs11", feature = "aws-kms"))]
fn env_number(name: &str, min: u64, max: u64) -> Result<Option<u64>, String> {
    let Ok(v) = std::env::var(name) else {
        return Ok(None);
    };
    match v.trim().parse::<u64>() {
        Ok(n) if (min..=max).contains(&n) => Ok(Some(n)),
        _ => Err(format!(
            "{name}={v:?}: expected a whole number from {min} to {max}"
        )),
    }
}

fn parse_rsa_bits(s: &str) -> Result<usize, String> {
    match s {
        "2048" | "3072" | "4096" => s.parse().map_err(|_| String::new()),
        _ => Err(format!(
            "{s:?} is not a supported RSA size; expected 2048, 3072 or 4096"
        )),
    }
}

fn parse_alg(s: &str) -> Result<Algorithm, String> {
    s.parse::<Algorithm>().map_err(|e| e.to_string())
}

#[derive(Args)]
pub(crate) struct KeygenArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Algorithm the key is for; picks the key type (ES256 → P-256, PS256/RS256 → RSA, EdDSA →
    /// Ed25519, ES256K → secp256k1). An RSA key does not record it: the printed JWK carries no
    /// alg (RS256 and PS256 both verify; `pubkey --alg` pins one), and assert signs PS256
    /// unless given --alg.
    #[arg(long, env = "PKJWT_ALG", default_value = "ES256", value_parser = parse_alg)]
    alg: Algorithm,
    /// RSA modulus size for PS*/RS* keys [default: 2048; AWS KMS: 2048, 3072 or 4096 to match
    /// the hash]. Refused for other algorithms.
    #[arg(long, value_parser = parse_rsa_bits)]
    rsa_bits: Option<usize>,
}

#[derive(Clone, Copy, ValueEnum)]
enum PubFormat {
    /// One public JWK with kid, use and (unless an RSA key without --alg) alg.
    Jwk,
    /// A JWK set holding the key.
    Jwks,
    /// SubjectPublicKeyInfo PEM.
    Pem,
    /// The RFC 7638 thumbprint (the default kid).
    Thumbprint,
}

#[derive(Args)]
pub(crate) struct PubkeyArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Output format.
    #[arg(long, value_enum, default_value = "jwk")]
    format: PubFormat,
    /// Algorithm to pin in the JWK's alg. Default: the one an EC or Ed25519 key's curve fixes;
    /// none for an RSA key (it signs RS256 and PS256 alike, and no backend records which one it
    /// was made for), so that verifiers accept either — a note on stderr says so.
    #[arg(long, env = "PKJWT_ALG", value_parser = parse_alg)]
    alg: Option<Algorithm>,
    /// kid to publish instead of the RFC 7638 thumbprint.
    #[arg(long, env = "PKJWT_KID")]
    kid: Option<String>,
    /// Certificate (PEM chain, leaf first, or DER) of the key: adds x5c and x5t#S256. Refused
    /// when it holds another key.
    #[arg(long, value_name = "FILE")]
    cert: Option<std::path::PathBuf>,
    /// With --cert (or a keystore's certificate): also add the SHA-1 x5t (only for servers that
    /// ask for it).
    #[arg(long)]
    x5t_sha1: bool,
}

#[derive(Args)]
pub(crate) struct AssertArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The client_id: becomes iss and sub.
    #[arg(long, env = "PKJWT_CLIENT_ID")]
    client_id: String,
    /// Audience: the authorization server's issuer identifier (FAPI 2.0, rfc7523bis), or its
    /// token endpoint for servers that want that. Repeat for an array (discouraged).
    #[arg(long, env = "PKJWT_AUD", required = true, value_delimiter = ' ')]
    aud: Vec<String>,
    /// Signing algorithm (default: derived from the key).
    #[arg(long, env = "PKJWT_ALG", value_parser = parse_alg)]
    alg: Option<Algorithm>,
    /// Seconds until exp.
    #[arg(long, env = "PKJWT_LIFETIME", default_value_t = pkjwt::assertion::DEFAULT_LIFETIME_SECS)]
    lifetime: u64,
    /// Largest lifetime accepted; raise only for a server known to accept long-lived assertions.
    #[arg(long, env = "PKJWT_MAX_LIFETIME", default_value_t = pkjwt::assertion::DEFAULT_MAX_LIFETIME_SECS)]
    max_lifetime: u64,
    /// Header typ (servers before rfc7523bis may want "JWT").
    #[arg(long, env = "PKJWT_TYP", default_value = pkjwt::assertion::TYP_CLIENT_AUTHENTICATION, conflicts_with = "no_typ")]
    typ: String,
    /// Send no typ header.
    #[arg(long)]
    no_typ: bool,
    /// kid header instead of the RFC 7638 thumbprint.
    #[arg(long, env = "PKJWT_KID", conflicts_with = "no_kid")]
    kid: Option<String>,
    /// Send no kid header.
    #[arg(long)]
    no_kid: bool,
    /// Extra claim NAME=VALUE; VALUE is parsed as JSON when it is valid JSON, else taken as a
    /// string. Repeatable.
    #[arg(long = "claim", value_name = "NAME=VALUE")]
    claims: Vec<String>,
    /// Seconds to add to the local clock (when it is known to be behind the server's).
    #[arg(
        long,
        env = "PKJWT_CLOCK_OFFSET",
        default_value_t = 0,
        allow_negative_numbers = true
    )]
    clock_offset: i64,
    /// Certificate of the key (PEM or DER): adds the x5t#S256 header. Refused when it holds
    /// another key. With --x5c or --x5t-sha1 and no --cert, the certificate kept with the key
    /// (PKCS#12 keystore, PKCS#11 certificate object with the key's id) is used.
    #[arg(long, value_name = "FILE")]
    cert: Option<std::path::PathBuf>,
    /// Also send the certificate chain as x5c.
    #[arg(long)]
    x5c: bool,
    /// Also send the SHA-1 x5t (servers that still identify certificates by SHA-1).
    #[arg(long)]
    x5t_sha1: bool,
    /// Print header, claims and JWT as JSON instead of the bare JWT.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(cmd: Command) -> CmdResult {
    match cmd {
        Command::Keygen(a) => keygen(a).await,
        Command::Pubkey(a) => pubkey(a).await,
        Command::Assert(a) => assert(a).await,
        Command::Verify(a) => crate::verify::run(a).await,
        Command::Cert(a) => crate::cert::run(a).await,
        Command::Token(a) => crate::token::run(a).await,
        Command::Serve(a) => crate::serve::run(a).await,
        Command::Rotate(a) => crate::rotate::run(a).await,
        Command::Register(a) => crate::register::run(a).await,
    }
}

fn out(text: &str) -> std::io::Result<()> {
    let mut o = std::io::stdout().lock();
    o.write_all(text.as_bytes())?;
    if !text.ends_with('\n') {
        o.write_all(b"\n")?;
    }
    o.flush()
}

async fn keygen(a: KeygenArgs) -> CmdResult {
    let uri = a.key.uri()?;
    let mut options = a.key.options(Some(a.alg))?;
    options.generate.rsa_bits = a.rsa_bits;
    let signer = pkjwt::generate(&uri, a.alg, &options).await?;
    // The JWK printed here is the one `pubkey` prints later for the same key: no backend
    // records the algorithm an RSA key was made for, so its JWK pins none (see
    // `Jwk::for_publication`).
    let jwk = Jwk::for_publication(signer.public_key(), None)?;
    let kind = signer.public_key().describe();
    let kind = kind.trim_start_matches("an ").trim_start_matches("a ");
    let kid = jwk.kid.as_deref().unwrap_or("");
    match &jwk.alg {
        Some(alg) => eprintln!("pkjwt: created {kind} for {alg} at {uri} (kid {kid})"),
        None => eprintln!(
            "pkjwt: created {kind} at {uri} (kid {kid}); the key does not record {alg}, so its \
             JWK carries no alg and verifiers accept RS256 and PS256 assertions alike (pubkey, \
             serve and register pin one with --alg {alg}); assert and token sign {default} \
             unless given --alg {alg}",
            alg = a.alg,
            default = signer.public_key().default_algorithm(),
        ),
    }
    out(&jwk.to_json())?;
    Ok(ExitCode::SUCCESS)
}

async fn pubkey(a: PubkeyArgs) -> CmdResult {
    let signer = a.key.open(a.alg).await?;
    let mut jwk = Jwk::for_publication(signer.public_key(), a.alg)?;
    if matches!(a.format, PubFormat::Jwk | PubFormat::Jwks)
        && let Some(note) = unpinned_note(&jwk)
    {
        eprintln!("pkjwt: {note}");
    }
    if let Some(k) = a.kid {
        jwk = jwk.with_kid(k);
    }
    // A certificate given, or carried by the keystore / token: publish it as x5c / x5t#S256.
    if let Some(chain) = crate::cert::chain_for(a.cert.as_deref(), signer.as_ref())? {
        crate::cert::add_to_jwk(&mut jwk, &chain, a.x5t_sha1);
    }
    let text = match a.format {
        PubFormat::Jwk => jwk.to_json(),
        PubFormat::Jwks => JwkSet::new(vec![jwk])?.to_json_pretty(),
        PubFormat::Pem => signer.public_key().to_spki_pem(),
        PubFormat::Thumbprint => pkjwt::thumbprint(signer.public_key()),
    };
    out(&text)?;
    Ok(ExitCode::SUCCESS)
}

/// Why a published JWK carries no `alg`, for stderr (`None` when it carries one).
pub(crate) fn unpinned_note(jwk: &Jwk) -> Option<String> {
    if jwk.alg.is_some() {
        return None;
    }
    Some(format!(
        "the JWK (kid {}) carries no alg: an RSA key signs RS256 and PS256 alike and the key \
         does not record which one it is for, so verifiers accept either; give --alg RS256 (or \
         PS256) to pin it",
        pkjwt::escape_controls(jwk.kid.as_deref().unwrap_or("none"))
    ))
}

async fn assert(a: AssertArgs) -> CmdResult {
    let signer = a.key.open(a.alg).await?;
    let audience = match a.aud.as_slice() {
        [one] => Audience::One(one.clone()),
        many => Audience::Many(many.to_vec()),
    };
    let mut o = AssertionOptions::new(a.client_id, audience);
    o.lifetime_secs = a.lifetime;
    o.max_lifetime_secs = a.max_lifetime;
    o.typ = (!a.no_typ).then_some(a.typ);
    o.kid = match (a.kid, a.no_kid) {
        (_, true) => KeyId::Omit,
        (Some(k), false) => KeyId::Given(k),
        (None, false) => KeyId::Thumbprint,
    };
    o.clock_offset_secs = a.clock_offset;
    // A certificate given is used; one kept with the key only when certificate headers are
    // asked for (--x5c, --x5t-sha1), so that keystores do not change the header unasked.
    let wanted = a.cert.is_some() || a.x5c || a.x5t_sha1;
    let chain = if wanted {
        crate::cert::chain_for(a.cert.as_deref(), signer.as_ref())?
    } else {
        None
    };
    match chain {
        Some(chain) => {
            o.x5t_s256 = Some(pkjwt_x509::x5t_s256(&chain[0]));
            if a.x5t_sha1 {
                o.x5t = Some(pkjwt_x509::x5t_sha1(&chain[0]));
            }
            if a.x5c {
                o.x5c = Some(chain.iter().map(|c| pkjwt_x509::x5c_entry(c)).collect());
            }
        }
        None if a.x5c || a.x5t_sha1 => {
            return Err(
                "--x5c and --x5t-sha1 need the key's certificate: give --cert FILE (or \
                        keep the certificate with the key: a PKCS#12 keystore, or a PKCS#11 \
                        certificate object with the key's id)"
                    .into(),
            );
        }
        None => {}
    }
    for c in a.claims {
        let (name, value) = c.split_once('=').ok_or_else(|| {
            format!("--claim {c:?}: expected NAME=VALUE, for example --claim scope=payments")
        })?;
        if name.is_empty() {
            return Err(format!("--claim {c:?}: the claim name is empty").into());
        }
        let v = serde_json::from_str(value)
            .unwrap_or_else(|_| serde_json::Value::String(value.to_string()));
        o.extra_claims.insert(name.to_string(), v);
    }
    let assertion = ClientAssertion::new(signer, o)?;
    if a.json {
        let s = assertion.sign_detailed().await?;
        let v = serde_json::json!({ "header": s.header, "claims": s.claims, "jwt": s.jwt });
        out(&serde_json::to_string_pretty(&v)?)?;
    } else {
        out(&assertion.sign().await?)?;
    }
    Ok(ExitCode::SUCCESS)
}
