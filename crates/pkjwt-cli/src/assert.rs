//! `pkjwt assert`: prints a signed RFC 7523 client assertion (`private_key_jwt`), or with
//! `--json` its header and claims as well.

use std::process::ExitCode;

use clap::Args;
use pkjwt::{Algorithm, AssertionOptions, Audience, ClientAssertion, KeyId};

use crate::args::{CmdResult, KeyArgs, chain_for};
use crate::output::print;

#[derive(Args)]
pub(crate) struct AssertArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// The client_id: becomes iss and sub.
    // A client_id may start with "-" (oidc-provider makes base64url ids): taken as a value.
    #[arg(long, env = "PKJWT_CLIENT_ID", allow_hyphen_values = true)]
    client_id: String,
    /// Audience: the authorization server's issuer identifier (FAPI 2.0, rfc7523bis), or its
    /// token endpoint for servers that want that. Repeat for an array (discouraged).
    #[arg(long, env = "PKJWT_AUD", required = true, value_delimiter = ' ')]
    aud: Vec<String>,
    /// Signing algorithm (default: derived from the key).
    #[arg(long, env = "PKJWT_ALG")]
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
    #[arg(
        long,
        env = "PKJWT_KID",
        conflicts_with = "no_kid",
        allow_hyphen_values = true
    )]
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

pub(crate) async fn run(a: AssertArgs) -> CmdResult {
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
        chain_for(a.cert.as_deref(), signer.as_ref())?
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
        print(&serde_json::to_string_pretty(&v)?)?;
    } else {
        print(&assertion.sign().await?)?;
    }
    Ok(ExitCode::SUCCESS)
}
