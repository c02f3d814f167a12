//! Both sides of `private_key_jwt` in one process, with no server: a client signs an RFC 7523
//! client assertion with a key (a new in-memory key by default, or any key URI given as the
//! first argument: `file:…`, `pkcs11:…`, `awskms:…`), and an authorization server's verifier
//! checks it against the client's JWKS — then refuses the same assertion a second time.
//!
//! ```text
//! cargo run -p pkjwt-examples --example sign_and_verify
//! cargo run -p pkjwt-examples --example sign_and_verify -- 'file:client.pem'
//! ```

use std::sync::Arc;

use pkjwt::{
    Algorithm, AssertionOptions, ClientAssertion, GenerateOptions, Jwk, JwkSet, OpenOptions, Signer,
};
use pkjwt_verify::{AssertionVerifier, KeySet, VerifyPolicy};

const ISSUER: &str = "https://as.example.com";
const CLIENT_ID: &str = "my-client";

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::process::ExitCode {
    match run().await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    // The client's key: where it lives is the only thing that changes between backends.
    let signer: Arc<dyn Signer> = match std::env::args().nth(1) {
        Some(uri) => pkjwt::open(&uri, &OpenOptions::default()).await?,
        None => {
            Arc::new(pkjwt::generate_in_memory(Algorithm::ES256, &GenerateOptions::default())?.0)
        }
    };

    // What the client registers with the server: its public JWKS (kid = RFC 7638 thumbprint).
    let jwks = JwkSet::new(vec![Jwk::for_signing(
        signer.public_key(),
        signer.algorithm(),
    )])?;
    println!("client JWKS:\n{}", jwks.to_json_pretty());

    // The client side: aud = the issuer, typ client-authentication+jwt, 60 s, fresh jti.
    let assertion = ClientAssertion::new(signer, AssertionOptions::new(CLIENT_ID, ISSUER))?;
    let jwt = assertion.sign().await?;
    println!("\nclient assertion:\n{jwt}");

    // The server side: the audience it expects, the client's keys, the default strict policy.
    let verifier = AssertionVerifier::new(ISSUER, VerifyPolicy::default())?;
    let keys = Arc::new(KeySet::from_jwks(&jwks)?);
    let ok = verifier.verify(&jwt, CLIENT_ID, &keys).await?;
    println!(
        "\naccepted: client {} signed with {} (kid {}), jti {}",
        ok.client_id,
        ok.alg,
        ok.kid.as_deref().unwrap_or("-"),
        ok.jti
    );
    match verifier.verify(&jwt, CLIENT_ID, &keys).await {
        Err(e) if e.kind() == "replayed" => {
            println!("replayed: refused ({}): {e}", e.kind());
            Ok(())
        }
        Err(e) => Err(format!("the replay was refused for another reason: {e}").into()),
        Ok(_) => Err("a replayed assertion was accepted".into()),
    }
}
