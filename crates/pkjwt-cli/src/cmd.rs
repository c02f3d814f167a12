//! The subcommands and the dispatch: nothing else. Each subcommand lives in its own module with
//! its arguments and its `run`; the `#[command]` texts here are what `pkjwt --help` and
//! `pkjwt <subcommand> --help` print around them.

use clap::Subcommand;

use crate::args::CmdResult;
use crate::{agent, assert, cert, keygen, pubkey, register, rotate, serve, token, verify};

#[derive(Subcommand)]
pub(crate) enum Command {
    /// Create a new signing key in a backend (a file is written with mode 0600 and never
    /// overwritten); prints its public JWK.
    #[command(
        after_help = "Examples:\n  pkjwt keygen --key file:client.pem --alg ES256\n  \
        pkjwt keygen --key 'file:client.pem?passphrase-source=env:KEY_PASS' --alg PS256"
    )]
    Keygen(keygen::KeygenArgs),
    /// Print a key's public part as a JWK, a JWKS, PEM, or its RFC 7638 thumbprint.
    #[command(
        after_help = "Example:\n  pkjwt pubkey --key file:client.pem --format jwks > jwks.json"
    )]
    Pubkey(pubkey::PubkeyArgs),
    /// Print a signed RFC 7523 client assertion (private_key_jwt) on stdout.
    #[command(
        after_help = "Example:\n  pkjwt assert --key file:client.pem --client-id my-client \\\n    \
        --aud https://as.example.com"
    )]
    Assert(assert::AssertArgs),
    /// Explain, claim by claim, whether a client assertion would be accepted (exit 0) or refused
    /// (exit 1, the reason on stderr).
    #[command(
        after_help = "Example:\n  pkjwt verify --jwks jwks.json --client-id my-client \\\n    \
        --aud https://as.example.com \"$JWT\""
    )]
    Verify(verify::VerifyArgs),
    /// Print a self-signed X.509 certificate (or, with --csr, a PKCS#10 request) signed by the
    /// key, as PEM on stdout.
    #[command(
        after_help = "Examples:\n  pkjwt cert --key file:client.pem --subject \"CN=payments-client,O=Example,C=GB\" --days 365\n  \
        pkjwt cert --key 'pkcs11:token=t;object=k?pin-source=env:PIN' --subject CN=client --csr"
    )]
    Cert(cert::CertArgs),
    /// Get an access token with private_key_jwt; prints the token alone (--json: the response).
    #[command(
        after_help = "Example:\n  pkjwt token --key file:client.pem --client-id my-client \\\n    \
        --issuer https://as.example.com --scope accounts:read"
    )]
    Token(token::TokenArgs),
    /// Serve the JWKS of keys and of a rotation state at /jwks (and /.well-known/jwks.json).
    #[command(after_help = "Example:\n  pkjwt serve --key file:client.pem --listen 127.0.0.1:8000")]
    Serve(serve::ServeArgs),
    /// Rotate keys: init, begin (publish next, switch later, retire after overlap), status.
    #[command(
        after_help = "Example:\n  pkjwt rotate --state rotation.json begin --key file:next.pem \\\n    \
        --generate --prepublish 7200 --overlap 3600"
    )]
    Rotate(rotate::RotateArgs),
    /// Register the client (RFC 7591) with private_key_jwt and its keys (inline jwks or
    /// jwks_uri); prints the client_id alone and saves the registration (mode 0600). With
    /// --read/--update/--delete --registration FILE: manage it (RFC 7592).
    #[command(after_help = "Examples:\n  \
        pkjwt register --issuer https://as.example.com --key file:client.pem \\\n    \
        --scope accounts:read --out registration.json\n  \
        pkjwt register --issuer https://as.example.com --key file:client.pem \\\n    \
        --jwks-uri https://client.example.com/jwks --initial-access-token-source env:IAT\n  \
        pkjwt rotate --state rotation.json begin --key file:next.pem --generate\n  \
        pkjwt register --update --registration registration.json --state rotation.json\n  \
        pkjwt register --delete --registration registration.json")]
    Register(register::RegisterArgs),
    /// Run the token agent: cached access tokens for local processes over a Unix socket
    /// (docs/agent.md); `pkjwt token --agent SOCKET --agent-profile NAME` is its client.
    #[command(after_help = "Example:\n  pkjwt agent --config /etc/pkjwt/agent.toml")]
    Agent(agent::AgentArgs),
}

pub(crate) async fn run(cmd: Command) -> CmdResult {
    match cmd {
        Command::Keygen(a) => keygen::run(a).await,
        Command::Pubkey(a) => pubkey::run(a).await,
        Command::Assert(a) => assert::run(a).await,
        Command::Verify(a) => verify::run(a).await,
        Command::Cert(a) => cert::run(a).await,
        Command::Token(a) => token::run(a).await,
        Command::Serve(a) => serve::run(a).await,
        Command::Rotate(a) => rotate::run(a).await,
        Command::Register(a) => register::run(a).await,
        Command::Agent(a) => agent::run(a).await,
    }
}
