//! `pkjwt verify`: explains, claim by claim, whether a client assertion would be accepted.

use std::io::{Read, Write};
use std::process::ExitCode;

use clap::{Args, ValueEnum};
use pkjwt::Algorithm;
use pkjwt_verify::{TypPolicy, VerifyPolicy};

use crate::args::CmdResult;

#[derive(Clone, Copy, ValueEnum)]
pub(crate) enum TypRule {
    /// typ must be client-authentication+jwt (rfc7523bis explicit typing).
    Explicit,
    /// typ may be absent, client-authentication+jwt or JWT (the default).
    Lenient,
    /// typ is not checked.
    Any,
}

#[derive(Args)]
pub(crate) struct VerifyArgs {
    /// The client's keys: a JWKS file, or an https:// URL (http:// only for loopback).
    #[arg(long, env = "PKJWT_JWKS", value_name = "FILE|URL")]
    jwks: String,
    /// Allow a JWKS URL whose host is, or resolves to, a private, link-local or otherwise
    /// non-public address (a host on your own network). Refused by default, as a server that
    /// fetches client-registered jwks_uri values must.
    #[arg(long)]
    allow_private_jwks_host: bool,
    /// The client_id the assertion must be issued by (iss = sub).
    // A client_id may start with "-" (oidc-provider makes base64url ids): taken as a value.
    #[arg(long, env = "PKJWT_CLIENT_ID", allow_hyphen_values = true)]
    client_id: String,
    /// The audience the verifier is: the authorization server's issuer identifier.
    #[arg(long, env = "PKJWT_AUD")]
    aud: String,
    /// A further accepted audience (e.g. the token endpoint, for clients built for older
    /// servers). Repeatable.
    #[arg(long = "also-aud", value_name = "AUD")]
    also_aud: Vec<String>,
    /// Accept aud as an array containing an accepted audience.
    #[arg(long)]
    allow_aud_array: bool,
    /// Accepted algorithm (repeatable; default: all that pkjwt knows).
    #[arg(long = "alg")]
    algs: Vec<Algorithm>,
    /// The typ rule.
    #[arg(long, value_enum, default_value = "lenient")]
    typ: TypRule,
    /// Largest accepted lifetime (exp - iat, and exp - now), seconds.
    #[arg(long, default_value_t = 300)]
    max_lifetime: u64,
    /// Print the report as JSON.
    #[arg(long)]
    json: bool,
    /// The client assertion; "-" reads it from stdin.
    jwt: String,
}

pub(crate) async fn run(a: VerifyArgs) -> CmdResult {
    let jwt = if a.jwt == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        s.trim().to_string()
    } else {
        a.jwt.clone()
    };
    let mut fetch = pkjwt_verify::FetchPolicy::default();
    fetch.allow_private_addresses = a.allow_private_jwks_host;
    let keys = pkjwt_verify::load_jwks_with(&a.jwks, &fetch).await?;
    let mut policy = VerifyPolicy::default();
    if !a.algs.is_empty() {
        policy.algorithms = a.algs.clone();
    }
    policy.typ = match a.typ {
        TypRule::Explicit => TypPolicy::explicit(),
        TypRule::Lenient => TypPolicy::default(),
        TypRule::Any => TypPolicy::Any,
    };
    policy.additional_audiences = a.also_aud.clone();
    policy.allow_audience_array = a.allow_aud_array;
    policy.max_lifetime_secs = a.max_lifetime;
    let report = pkjwt_verify::explain(&jwt, &keys, &a.client_id, &a.aud, &policy);
    let mut out = std::io::stdout().lock();
    if a.json {
        writeln!(out, "{}", serde_json::to_string_pretty(&report.to_json())?)?;
    } else {
        writeln!(out, "{report}")?;
    }
    out.flush()?;
    if report.accepted() {
        return Ok(ExitCode::SUCCESS);
    }
    let reason = report
        .rejection()
        .map(|r| format!("{} ({})", pkjwt::escape_controls(&r.to_string()), r.kind()))
        .unwrap_or_else(|| "no check was made".into());
    eprintln!("pkjwt: refused: {reason}");
    Ok(ExitCode::FAILURE)
}
