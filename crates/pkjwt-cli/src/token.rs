//! `pkjwt token`: discovers the authorization server, authenticates with `private_key_jwt` and
//! prints the access token (or, with `--json`, the whole token response).

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use pkjwt::{Algorithm, KeyId};
use pkjwt_client::{
    AudienceMode, ClientConfig, HttpOptions, Profile, RetryPolicy, TokenClient, TokenRequest,
};

use crate::args::{CmdResult, KeyArgs, chain_for};
use crate::output::print;

fn parse_profile(s: &str) -> Result<String, String> {
    Profile::named(s)
        .map(|_| s.to_owned())
        .map_err(|e| e.to_string())
}

#[derive(Args)]
// `--key`, or else `--state` (or `--agent`: the agent has the key).
#[command(mut_arg("key", |a| a.required(false).required_unless_present_any(["state", "agent"])))]
pub(crate) struct TokenArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Sign with the key a rotation state file (`pkjwt rotate`) says signs now, instead of --key.
    #[arg(long, env = "PKJWT_STATE", value_name = "FILE", conflicts_with = "key")]
    state: Option<PathBuf>,
    /// Signing algorithm (default: derived from the key).
    #[arg(long, env = "PKJWT_ALG")]
    alg: Option<Algorithm>,
    /// The client_id.
    // A client_id may start with "-" (oidc-provider makes base64url ids): taken as a value.
    #[arg(
        long,
        env = "PKJWT_CLIENT_ID",
        required_unless_present = "agent",
        allow_hyphen_values = true
    )]
    client_id: Option<String>,
    /// The issuer identifier, exactly as the server's metadata has it (no trailing slash unless
    /// the server's has one).
    #[arg(
        long,
        env = "PKJWT_ISSUER",
        value_name = "URL",
        required_unless_present = "agent"
    )]
    issuer: Option<String>,
    /// Scope to ask for (space-separated).
    #[arg(long, env = "PKJWT_SCOPE")]
    scope: Option<String>,
    /// Resource indicator (RFC 8707); repeat for several.
    #[arg(long, value_name = "URI")]
    resource: Vec<String>,
    /// `audience` parameter (Auth0/Okta style servers).
    #[arg(long)]
    audience: Option<String>,
    /// Extra form parameter NAME=VALUE; repeatable.
    #[arg(long, value_name = "NAME=VALUE")]
    param: Vec<String>,
    /// Use the RFC 7523 §2.1 JWT-bearer grant for this subject (user) instead of
    /// client_credentials.
    #[arg(long, value_name = "SUBJECT")]
    jwt_bearer_subject: Option<String>,
    /// Server profile: standard, fapi2, keycloak, entra, okta, legacy.
    #[arg(long, env = "PKJWT_PROFILE", default_value = "standard", value_parser = parse_profile)]
    profile: String,
    /// Override the profile's aud: issuer or token-endpoint.
    #[arg(long, value_parser = |s: &str| s.parse::<AudienceMode>())]
    aud_mode: Option<AudienceMode>,
    /// Override the profile's typ header.
    #[arg(long, conflicts_with = "no_typ")]
    typ: Option<String>,
    /// Send no typ header.
    #[arg(long)]
    no_typ: bool,
    /// Override the assertion lifetime in seconds.
    #[arg(long)]
    lifetime: Option<u64>,
    /// kid header instead of the RFC 7638 thumbprint.
    #[arg(long, env = "PKJWT_KID", allow_hyphen_values = true)]
    kid: Option<String>,
    /// x5t#S256 header (base64url SHA-256 of the registered certificate), for Entra ID, given
    /// as a value (else computed from --cert or the certificate kept with the key).
    #[arg(long, conflicts_with_all = ["cert", "x5t_sha1"], allow_hyphen_values = true)]
    x5t_s256: Option<String>,
    /// The key's certificate (PEM or DER; refused when it holds another key): the assertion
    /// carries its x5t#S256. Without it, a profile that needs the thumbprint (entra) or
    /// --x5t-sha1 uses the certificate kept with the key.
    #[arg(long, value_name = "FILE")]
    cert: Option<std::path::PathBuf>,
    /// Also send the SHA-1 x5t of the certificate (servers that still identify certificates by
    /// SHA-1).
    #[arg(long)]
    x5t_sha1: bool,
    /// Seconds to wait for each HTTP request.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
    /// Requests at most (retries only for network errors, 5xx and 429).
    #[arg(long, default_value_t = 3)]
    attempts: u32,
    /// Print the whole token response as JSON.
    #[arg(long, conflicts_with = "exec_credential")]
    json: bool,
    /// Print a Kubernetes ExecCredential (client.authentication.k8s.io/v1: the token and its
    /// expiry), for kubeconfig `exec` plugins and other tools that run a command for a token.
    #[arg(long)]
    exec_credential: bool,
    /// Get the token from a running `pkjwt agent` on this Unix socket (with --agent-profile);
    /// the key, client and server options are then the agent's, not these.
    #[arg(long, value_name = "SOCKET", requires = "agent_profile")]
    agent: Option<PathBuf>,
    /// The agent's [profile.NAME] to get the token of.
    #[arg(long, value_name = "NAME", requires = "agent")]
    agent_profile: Option<String>,
}

/// What `pkjwt token` prints.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Format {
    /// The access token alone.
    Token,
    /// The whole token response (or the agent's answer).
    Json,
    /// A Kubernetes ExecCredential.
    ExecCredential,
}

impl TokenArgs {
    fn format(&self) -> Format {
        if self.json {
            Format::Json
        } else if self.exec_credential {
            Format::ExecCredential
        } else {
            Format::Token
        }
    }
}

pub(crate) async fn run(a: TokenArgs) -> CmdResult {
    if let (Some(socket), Some(profile)) = (&a.agent, &a.agent_profile) {
        return crate::agent::token(socket, profile, a.format(), a.timeout);
    }
    let format = a.format();
    let (Some(client_id), Some(issuer)) = (a.client_id.clone(), a.issuer.clone()) else {
        return Err("give --client-id and --issuer (or --agent)".into());
    };
    let open = a.key.options(a.alg)?;
    let signer = match &a.state {
        _ if a.key.given() => pkjwt::open_uri(&a.key.uri()?, &open).await?,
        Some(path) => {
            let st = pkjwt_jwks::RotationState::load(path)?;
            let now = pkjwt::Clock::now(&pkjwt::SystemClock);
            let uri = &st
                .signing(now)
                .ok_or_else(|| format!("{}: no key signs now", path.display()))?
                .uri;
            pkjwt::open(uri, &open).await?
        }
        None => return Err("give --key or --state".into()),
    };

    let mut profile = Profile::named(&a.profile)?;
    if let Some(m) = a.aud_mode {
        profile.audience = m;
    }
    if a.no_typ {
        profile.typ = None;
    } else if let Some(t) = a.typ {
        profile.typ = Some(t);
    }
    if let Some(l) = a.lifetime {
        profile.lifetime_secs = l;
    }
    if a.x5t_sha1 {
        profile.require_x5t_sha1 = true;
    }
    let mut http = HttpOptions::default();
    http.timeout = Duration::from_secs(a.timeout.max(1));
    http.connect_timeout = http.timeout.min(Duration::from_secs(5));
    let mut config = ClientConfig::new(client_id, issuer)
        .profile(profile)
        .http(http)
        .retry(RetryPolicy::attempts(a.attempts.max(1)));
    if let Some(k) = a.kid {
        config.kid = KeyId::Given(k);
    }
    // A certificate given is used; one kept with the key only where the profile (or
    // --x5t-sha1) needs a thumbprint, so that keystores do not change the header unasked.
    let wanted = a.cert.is_some()
        || (a.x5t_s256.is_none()
            && (config.profile.require_x5t_s256 || config.profile.require_x5t_sha1));
    let chain = if wanted {
        chain_for(a.cert.as_deref(), signer.as_ref())?
    } else {
        None
    };
    if let Some(leaf) = chain.as_ref().and_then(|c| c.first()) {
        config.x5t_s256 = Some(pkjwt_x509::x5t_s256(leaf));
        if config.profile.require_x5t_sha1 {
            config.x5t = Some(pkjwt_x509::x5t_sha1(leaf));
        }
    }
    if a.x5t_s256.is_some() {
        config.x5t_s256 = a.x5t_s256;
    }

    let mut req = match a.jwt_bearer_subject {
        Some(s) => TokenRequest::jwt_bearer(s),
        None => TokenRequest::client_credentials(),
    };
    if let Some(s) = a.scope {
        req = req.scope(s);
    }
    for r in a.resource {
        req = req.resource(r);
    }
    if let Some(au) = a.audience {
        req = req.audience(au);
    }
    for p in a.param {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| format!("--param {p:?}: expected NAME=VALUE"))?;
        req = req.param(k, v)?;
    }

    let client = TokenClient::discover(signer, config).await?;
    let result = client.request(&req).await;
    let offset = client.clock_offset();
    if offset != 0 {
        eprintln!(
            "pkjwt: warning: the local clock is {}s {} the authorization server's (its Date \
             header); the assertion used the server's time",
            offset.abs(),
            if offset > 0 { "behind" } else { "ahead of" }
        );
    }
    let token = result?;
    let text = match format {
        Format::Json => serde_json::to_string_pretty(&token.to_json())?,
        Format::Token => token.access_token.secret().to_owned(),
        Format::ExecCredential => {
            crate::output::exec_credential(token.access_token.secret(), token.expires_in)?
        }
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}
