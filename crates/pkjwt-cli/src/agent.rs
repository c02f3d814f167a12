//! `pkjwt agent --config FILE`: runs the token agent (crate pkjwt-agent, docs/agent.md) until
//! SIGINT or SIGTERM; and the client side of `pkjwt token --agent SOCKET`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use pkjwt_agent::{Agent, AgentConfig};

use crate::args::CmdResult;

#[derive(Args)]
pub(crate) struct AgentArgs {
    /// The agent's TOML configuration (see docs/agent.md).
    #[arg(
        long,
        env = "PKJWT_AGENT_CONFIG",
        value_name = "FILE",
        help = "The agent's TOML configuration ([agent] and [profile.NAME] tables; docs/agent.md)"
    )]
    config: PathBuf,
    /// Check the configuration and exit without opening keys or listening.
    #[arg(long)]
    check: bool,
}

pub(crate) async fn run(a: AgentArgs) -> CmdResult {
    let config = AgentConfig::load(&a.config)?;
    if a.check {
        eprintln!(
            "pkjwt: {}: configuration is valid ({} profiles)",
            a.config.display(),
            config.profiles.len()
        );
        return Ok(ExitCode::SUCCESS);
    }
    // Structured logs on stderr (journald under systemd); no token, assertion or key is ever
    // logged by the agent.
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing::Level::INFO)
        .try_init();
    let handle = Agent::start(config).await?;
    // One line scripts can wait for.
    eprintln!(
        "pkjwt: agent listening on {}{}",
        handle.socket().display(),
        handle
            .http_addr()
            .map(|a| format!(" and http://{a}"))
            .unwrap_or_default()
    );
    crate::serve::shutdown().await;
    handle.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

/// `pkjwt token --agent SOCKET --agent-profile NAME`: the access token (or, with `json`, the
/// agent's whole answer) from a running agent.
pub(crate) fn token(socket: &Path, profile: &str, json: bool, timeout: u64) -> CmdResult {
    let timeout = Duration::from_secs(timeout.max(1));
    let text = if json {
        let answer = pkjwt_agent::client::get(
            socket,
            &format!("/token?profile={}", checked_profile(profile)?),
            timeout,
        )?;
        if answer.status != 200 {
            // The same error the plain form reports.
            pkjwt_agent::client::token(socket, profile, timeout)?;
        }
        String::from_utf8(answer.body).map_err(|_| "the agent's answer is not UTF-8")?
    } else {
        pkjwt_agent::client::token(socket, profile, timeout)?
    };
    crate::output::print(&text)?;
    Ok(ExitCode::SUCCESS)
}

fn checked_profile(p: &str) -> Result<&str, String> {
    if !p.is_empty()
        && p.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        Ok(p)
    } else {
        Err(format!(
            "--agent-profile {:?}: expected letters, digits, '-', '_' or '.'",
            pkjwt::escape_controls(p)
        ))
    }
}
