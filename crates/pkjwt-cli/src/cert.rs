//! `pkjwt cert`: a self-signed certificate or a CSR signed by the key, wherever it lives; and the
//! helpers `pubkey --cert` and `assert --cert` use to put `x5c` / `x5t#S256` in JWKs and headers.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;
use pkjwt::{Jwk, Signer};
use pkjwt_x509::CertOptions;

use crate::cmd::{CmdResult, KeyArgs};

#[derive(Args)]
pub(crate) struct CertArgs {
    #[command(flatten)]
    key: KeyArgs,
    /// Subject distinguished name (RFC 4514), e.g. "CN=payments-client,O=Example Bank,C=GB".
    #[arg(long)]
    subject: String,
    /// Subject alternative name: dns:NAME, uri:URI, email:ADDR or ip:ADDR. Repeatable.
    #[arg(long = "san", value_name = "TYPE:VALUE")]
    sans: Vec<String>,
    /// Validity in days (certificates only).
    #[arg(long, default_value_t = 365, allow_negative_numbers = true)]
    days: i64,
    /// Make a PKCS#10 certificate signing request instead of a self-signed certificate.
    #[arg(long)]
    csr: bool,
    /// Write DER instead of PEM (requires --out).
    #[arg(long, requires = "out")]
    der: bool,
    /// Write to this file (never overwriting) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Also store the certificate on the PKCS#11 token next to the key (same id and label), so
    /// that `pubkey` publishes it as x5c. Certificates only (not with --csr).
    #[arg(long, conflicts_with = "csr")]
    store_on_token: bool,
}

pub(crate) async fn run(a: CertArgs) -> CmdResult {
    let mut opts = CertOptions::new(&a.subject)?.days(a.days)?;
    for s in &a.sans {
        opts = opts.san(s)?;
    }
    let signer = a.key.open(None).await?;
    let (der, label) = if a.csr {
        (
            pkjwt_x509::csr(signer.as_ref(), &opts).await?,
            "CERTIFICATE REQUEST",
        )
    } else {
        (
            pkjwt_x509::self_signed(signer.as_ref(), &opts).await?,
            "CERTIFICATE",
        )
    };
    if a.store_on_token {
        pkjwt::store_certificate(&a.key.uri()?, &der, &a.key.options(None)?).await?;
    }
    let bytes = if a.der {
        der
    } else {
        pkjwt_x509::pem(label, &der).into_bytes()
    };
    match &a.out {
        Some(path) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .map_err(|e| format!("{}: {e}", path.display()))?;
            f.write_all(&bytes)?;
        }
        None => {
            let mut o = std::io::stdout().lock();
            o.write_all(&bytes)?;
            o.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Certificates from a PEM or DER file, leaf first, after checking that the leaf holds
/// `signer`'s public key.
pub(crate) fn load_chain(
    path: &Path,
    signer: &dyn Signer,
) -> Result<Vec<Vec<u8>>, Box<dyn std::error::Error + Send + Sync>> {
    let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
    let chain =
        pkjwt_x509::read_certificates(&bytes).map_err(|e| format!("{}: {e}", path.display()))?;
    pkjwt_x509::check_matches(&chain[0], signer.public_key())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(chain)
}

/// The key's certificate chain: from `--cert FILE` (checked against the key), else the one the
/// backend holds next to the key (a PKCS#12 keystore, PKCS#11 certificate objects), led by the
/// certificate that holds the key; `None` when neither exists.
pub(crate) fn chain_for(
    cert: Option<&Path>,
    signer: &dyn Signer,
) -> Result<Option<Vec<Vec<u8>>>, Box<dyn std::error::Error + Send + Sync>> {
    if let Some(path) = cert {
        return load_chain(path, signer).map(Some);
    }
    let stored = signer.certificate_chain();
    if stored.is_empty() {
        return Ok(None);
    }
    // The leaf is the certificate of this key (a token may hold several with the key's id, in
    // no particular order); the others follow.
    let Some(i) = stored
        .iter()
        .position(|c| pkjwt_x509::check_matches(c, signer.public_key()).is_ok())
    else {
        return Err(
            "none of the certificates kept with the key holds its public key; give the right \
             one with --cert FILE"
                .into(),
        );
    };
    let mut chain = stored.to_vec();
    let leaf = chain.remove(i);
    chain.insert(0, leaf);
    Ok(Some(chain))
}

/// Adds `x5c` (the chain) and `x5t#S256` (of the leaf) to a JWK.
pub(crate) fn add_to_jwk(jwk: &mut Jwk, chain: &[Vec<u8>], sha1: bool) {
    jwk.x5c = Some(chain.iter().map(|c| pkjwt_x509::x5c_entry(c)).collect());
    jwk.x5t_s256 = Some(pkjwt_x509::x5t_s256(&chain[0]));
    if sha1 {
        jwk.x5t = Some(pkjwt_x509::x5t_sha1(&chain[0]));
    }
}
