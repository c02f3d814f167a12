//! `pkjwt keygen`: creates a signing key in its backend (a file: mode 0600, never overwritten)
//! and prints its public JWK.

use std::process::ExitCode;

use clap::Args;
use pkjwt::{Algorithm, Jwk};

use crate::args::{CmdResult, KeyArgs};
use crate::output::print;

fn parse_rsa_bits(s: &str) -> Result<usize, String> {
    match s {
        "2048" | "3072" | "4096" => s.parse().map_err(|_| String::new()),
        _ => Err(format!(
            "{s:?} is not a supported RSA size; expected 2048, 3072 or 4096"
        )),
    }
}

#[derive(Args)]
pub(crate) struct KeygenArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Algorithm the key is for; picks the key type (ES256 → P-256, PS256/RS256 → RSA, EdDSA →
    /// Ed25519, ES256K → secp256k1). An RSA key does not record it: the printed JWK carries no
    /// alg (RS256 and PS256 both verify; `pubkey --alg` pins one), and assert signs PS256
    /// unless given --alg.
    #[arg(long, env = "PKJWT_ALG", default_value = "ES256")]
    alg: Algorithm,
    /// RSA modulus size for PS*/RS* keys [default: 2048; AWS KMS: 2048, 3072 or 4096 to match
    /// the hash]. Refused for other algorithms.
    #[arg(long, value_parser = parse_rsa_bits)]
    rsa_bits: Option<usize>,
}

pub(crate) async fn run(a: KeygenArgs) -> CmdResult {
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
    print(&jwk.to_json())?;
    Ok(ExitCode::SUCCESS)
}
