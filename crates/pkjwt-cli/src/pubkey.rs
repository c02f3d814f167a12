//! `pkjwt pubkey`: a key's public part as a JWK (with `x5c` / `x5t#S256` when its certificate
//! is known), a JWKS, SubjectPublicKeyInfo PEM, or its RFC 7638 thumbprint.

use std::process::ExitCode;

use clap::{Args, ValueEnum};
use pkjwt::{Algorithm, Jwk, JwkSet};

use crate::args::{CmdResult, KeyArgs, add_chain_to_jwk, chain_for};
use crate::output::{print, unpinned_note};

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
    #[arg(long, env = "PKJWT_ALG")]
    alg: Option<Algorithm>,
    /// kid to publish instead of the RFC 7638 thumbprint.
    #[arg(long, env = "PKJWT_KID", allow_hyphen_values = true)]
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

pub(crate) async fn run(a: PubkeyArgs) -> CmdResult {
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
    if let Some(chain) = chain_for(a.cert.as_deref(), signer.as_ref())? {
        add_chain_to_jwk(&mut jwk, &chain, a.x5t_sha1);
    }
    let text = match a.format {
        PubFormat::Jwk => jwk.to_json(),
        PubFormat::Jwks => JwkSet::new(vec![jwk])?.to_json_pretty(),
        PubFormat::Pem => signer.public_key().to_spki_pem(),
        PubFormat::Thumbprint => pkjwt::thumbprint(signer.public_key()),
    };
    print(&text)?;
    Ok(ExitCode::SUCCESS)
}
