//! Generates a key on a PKCS#11 token and prints its public JWK.
//!
//! ```text
//! cargo run -p pkjwt-pkcs11 --example keygen -- \
//!   'pkcs11:token=pkjwt;object=client;id=%01?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:pin' ES256
//! ```
//! Used by `infra/softhsm/setup.sh` when OpenSC's `pkcs11-tool` is not installed.

use pkjwt_core::{Algorithm, GenerateOptions, Jwk, KeyUri};
use pkjwt_pkcs11::{Pkcs11Options, generate};

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("keygen: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(uri), Some(alg)) = (args.next(), args.next()) else {
        return Err(
            "usage: keygen PKCS11-URI ALGORITHM (ES256, ES384, ES512, PS256, RS256, EdDSA)".into(),
        );
    };
    let KeyUri::Pkcs11(uri) = KeyUri::parse(&uri)? else {
        return Err("the key URI must be a pkcs11: URI".into());
    };
    let alg: Algorithm = alg.parse()?;
    let key = generate(
        &uri,
        alg,
        &GenerateOptions::default(),
        &Pkcs11Options::default(),
    )
    .await?;
    println!("{}", Jwk::for_signing(&key, alg).to_json());
    Ok(())
}
