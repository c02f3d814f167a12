//! The `pkjwt` command: glue between the command line and the pkjwt crates.
//!
//! Parse, then resolve: clap turns arguments (and `PKJWT_*` environment variables) into typed
//! options, each subcommand module turns those into library calls. `main` prints an error once,
//! as `pkjwt: error: …` with its cause chain on one line, and exits 1; usage errors exit 2
//! (clap's convention); a closed stdout pipe is not an error.

mod cert;
mod cmd;
mod config;
mod register;
mod rotate;
mod serve;
mod token;
mod verify;

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Version text: the crate version and the backends compiled in.
fn version() -> &'static str {
    static V: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    V.get_or_init(|| {
        format!(
            "{} (backends: {})",
            env!("CARGO_PKG_VERSION"),
            pkjwt::backends().join(", ")
        )
    })
}

/// Long help: the key reference forms come from the scheme table (`pkjwt::SCHEMES`), so a new
/// backend appears here without an edit; a backend left out of the build says so.
fn long_about() -> &'static str {
    static L: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    L.get_or_init(|| {
        let mut text = String::from(
            "private_key_jwt client authentication with keys in files, PKCS#11 HSMs or AWS KMS.\n\n\
             Key references (--key, or PKJWT_KEY):",
        );
        for s in pkjwt::SCHEMES {
            text.push_str("\n  ");
            text.push_str(s.example);
            match (s.also.is_empty(), pkjwt::is_built(s)) {
                (true, true) => {}
                (false, true) => text.push_str(&format!("  ({})", s.also)),
                (_, false) => text.push_str(&format!(
                    "  (not in this build: rebuild with the `{}` feature)",
                    s.feature.unwrap_or("?")
                )),
            }
        }
        text.push_str(
            "\n\nConfiguration: flags, then PKJWT_* environment variables, then a JSON file given \
             as\n  pkjwt --config FILE <subcommand> …  (or PKJWT_CONFIG=FILE), one section per \
             subcommand:\n  {\"token\": {\"key\": \"file:client.pem\", \"client-id\": \"c1\", \
             \"issuer\": \"https://as.example.com\"}}",
        );
        text
    })
}

#[derive(Parser)]
#[command(
    name = "pkjwt",
    version = version(),
    about = "private_key_jwt client authentication with keys in files, PKCS#11 HSMs or AWS KMS",
    long_about = long_about()
)]
struct Cli {
    #[command(subcommand)]
    command: cmd::Command,
}

/// The process holds PINs, passphrases and tokens in memory: no core file may carry them to
/// disk, and (on Linux) other processes of the same user may not attach to it or read its
/// memory through /proc (issue 12, item 12). Done before anything is read; a failure is only a
/// warning, since the limits can be lowered but a sandbox may refuse the call.
fn harden_process() {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, setrlimit};
        let none = Rlimit {
            current: Some(0),
            maximum: Some(0),
        };
        if let Err(e) = setrlimit(Resource::Core, none) {
            eprintln!("pkjwt: warning: cannot disable core dumps: {e}");
        }
    }
    #[cfg(target_os = "linux")]
    if let Err(e) =
        rustix::process::set_dumpable_behavior(rustix::process::DumpableBehavior::NotDumpable)
    {
        eprintln!("pkjwt: warning: cannot mark the process non-dumpable: {e}");
    }
}

fn main() -> ExitCode {
    harden_process();
    // `--config FILE` (or PKJWT_CONFIG) adds the file's options before clap sees the arguments.
    let args = match config::expand(std::env::args_os().collect()) {
        Ok(a) => a,
        Err(e) => {
            eprintln!("pkjwt: error: {e}");
            return ExitCode::from(2);
        }
    };
    let cli = Cli::parse_from(args);
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("pkjwt: error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(cmd::run(cli.command)) {
        Ok(code) => code,
        Err(e) => {
            if is_broken_pipe(&*e) {
                return ExitCode::SUCCESS;
            }
            // The one chain printer (pkjwt_core::display_chain), then the flag that helps.
            let mut line = pkjwt::display_chain(&*e);
            if let Some(hint) = flag_hint(&*e) {
                line.push_str("; ");
                line.push_str(hint);
            }
            let _ = writeln!(std::io::stderr(), "pkjwt: error: {line}");
            ExitCode::FAILURE
        }
    }
}

/// The command-line flag that fixes an error, where the library's message can only name the API
/// field (libraries do not know about flags). Found by walking the cause chain, so it works
/// behind `file backend`, `client assertion` and the like.
fn flag_hint(e: &(dyn std::error::Error + 'static)) -> Option<&'static str> {
    use pkjwt_client::ClientError;
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(pkjwt::FileError::InsecurePermissions { .. }) = c.downcast_ref() {
            return Some("to accept it here, pass --allow-insecure-key-permissions");
        }
        if let Some(pkjwt::Error::NoCertificateStorage { .. }) = c.downcast_ref() {
            return Some("pass the certificate file with --cert where it is needed");
        }
        if let Some(ce) = c.downcast_ref::<ClientError>() {
            match ce {
                ClientError::ThumbprintRequired {
                    field: "x5t_s256", ..
                } => {
                    return Some(
                        "give the certificate with --cert FILE, or its thumbprint with --x5t-s256",
                    );
                }
                ClientError::ThumbprintRequired { .. } => {
                    return Some("give the certificate with --cert FILE");
                }
                ClientError::Registration { error, .. }
                    if error.status == 401 && error.error == "invalid_token" =>
                {
                    return Some(
                        "give the initial access token with --initial-access-token-source, or \
                         manage a registration with --registration FILE as saved by `pkjwt register`",
                    );
                }
                _ if ce.oauth().is_some_and(|o| o.error == "invalid_client") => {
                    return Some("the aud is chosen by --profile (or --aud-mode)");
                }
                _ => {}
            }
        }
        cur = c.source();
    }
    None
}

fn is_broken_pipe(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(c) = cur {
        if let Some(io) = c.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::BrokenPipe
        {
            return true;
        }
        cur = c.source();
    }
    false
}
