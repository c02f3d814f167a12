//! `pkjwt cert`: a self-signed certificate or a CSR signed by the key, wherever it lives.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use pkjwt_x509::CertOptions;

use crate::args::{CmdResult, KeyArgs};

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
