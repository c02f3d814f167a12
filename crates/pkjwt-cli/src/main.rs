//! The `pkjwt` command: glue between the command line and the pkjwt crates.
//!
//! Parse, then resolve: clap turns arguments (and `PKJWT_*` environment variables) into typed
//! options, and the subcommand's module (one per subcommand, each with its `run`) turns those
//! into library calls. `cmd` holds only the subcommand enum and the dispatch; `args` and
//! `output` the pieces subcommands share (they never import from one another). `main` prints an
//! error once (`output::report`), as `pkjwt: error: …` with its cause chain on one line, and
//! exits 1; usage errors exit 2 (clap's convention); a closed stdout pipe is not an error.

mod args;
mod cmd;
mod config;
mod output;

mod agent;
mod assert;
mod cert;
mod keygen;
mod pubkey;
mod register;
mod rotate;
mod serve;
mod token;
mod verify;

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
        Err(e) => output::report(&*e),
    }
}
