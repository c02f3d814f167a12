//! `pkjwt agent --config FILE`: runs the token agent (crate pkjwt-agent, docs/agent.md) until
//! SIGINT or SIGTERM; and the client side of `pkjwt token --agent SOCKET`.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use pkjwt_agent::{Agent, AgentConfig};

use crate::args::{BoxError, CmdResult};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(crate) struct AgentArgs {
    /// The agent's TOML configuration (see docs/agent.md).
    #[arg(
        long,
        env = "PKJWT_AGENT_CONFIG",
        value_name = "FILE",
        required = true,
        help = "The agent's TOML configuration ([agent] and [profile.NAME] tables; docs/agent.md)"
    )]
    config: Option<PathBuf>,
    /// Check the configuration and exit without opening keys or listening.
    #[arg(long)]
    check: bool,
    #[command(subcommand)]
    command: Option<AgentCommand>,
}

#[derive(clap::Subcommand)]
enum AgentCommand {
    /// Show what a running agent is doing: each profile's state, token lifetime, key, errors
    #[command(after_help = "Example:\n  pkjwt agent status --socket /run/pkjwt-agent/agent.sock")]
    Status(StatusArgs),
    /// Get a client assertion from a running agent (POST /assertion; the profile must enable it)
    #[command(
        after_help = "Example:\n  pkjwt agent assertion --socket /run/pkjwt-agent/agent.sock --profile billing \\\n    --audience https://login.example.com/oauth2/token"
    )]
    Assertion(AssertionArgs),
}

#[derive(Args)]
struct SocketArgs {
    /// The agent's Unix socket.
    #[arg(long, value_name = "SOCKET", required_unless_present = "config")]
    socket: Option<PathBuf>,
    /// Read the socket's path from the agent's configuration instead.
    #[arg(long, env = "PKJWT_AGENT_CONFIG", value_name = "FILE")]
    config: Option<PathBuf>,
    /// Seconds to wait for the agent.
    #[arg(long, default_value_t = 10)]
    timeout: u64,
}

impl SocketArgs {
    fn socket(&self) -> Result<PathBuf, BoxError> {
        match (&self.socket, &self.config) {
            (Some(s), _) => Ok(s.clone()),
            (None, Some(c)) => Ok(AgentConfig::load(c)?.agent.socket),
            (None, None) => Err("give --socket SOCKET or --config FILE".into()),
        }
    }

    fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout.max(1))
    }
}

#[derive(Args)]
struct StatusArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// Print the agent's status document as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct AssertionArgs {
    #[command(flatten)]
    socket: SocketArgs,
    /// The agent's [profile.NAME].
    #[arg(long, value_name = "NAME")]
    profile: String,
    /// The audience (the token endpoint or issuer the assertion is for); the profile must allow it.
    #[arg(long, value_name = "URL")]
    audience: String,
}

pub(crate) async fn run(a: AgentArgs) -> CmdResult {
    match a.command {
        Some(AgentCommand::Status(s)) => return status(&s),
        Some(AgentCommand::Assertion(s)) => {
            let jwt = pkjwt_agent::client::assertion(
                &s.socket.socket()?,
                &s.profile,
                &s.audience,
                s.socket.timeout(),
            )?;
            crate::output::print(&jwt)?;
            return Ok(ExitCode::SUCCESS);
        }
        None => {}
    }
    let Some(path) = a.config else {
        return Err("give --config FILE".into());
    };
    let config = AgentConfig::load(&path)?;
    if a.check {
        eprintln!(
            "pkjwt: {}: configuration is valid ({} profiles)",
            path.display(),
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
    let mut handle = Agent::start(config).await?;
    handle.watch(path.clone());
    // One line scripts can wait for.
    eprintln!(
        "pkjwt: agent listening on {}{}",
        handle.socket().display(),
        handle
            .http_addr()
            .map(|a| format!(" and http://{a}"))
            .unwrap_or_default()
    );
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())?;
    let stop = crate::serve::shutdown();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            _ = hup.recv() => {
                // The outcome is logged and shown by `pkjwt agent status`; a refused reload
                // leaves the running configuration serving.
                let _ = handle.reload_from(&path).await;
            }
        }
    }
    handle.shutdown().await?;
    Ok(ExitCode::SUCCESS)
}

fn status(s: &StatusArgs) -> CmdResult {
    let v = pkjwt_agent::client::status(&s.socket.socket()?, s.socket.timeout())?;
    if s.json {
        crate::output::print(&serde_json::to_string_pretty(&v)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Everything printed comes from the agent: escaped before it reaches the terminal.
    let text =
        |v: &serde_json::Value| pkjwt::escape_controls(v.as_str().unwrap_or("")).into_owned();
    let mut out = format!(
        "pkjwt agent {} — up {} s\n",
        text(&v["version"]),
        v["uptime_secs"].as_u64().unwrap_or(0)
    );
    if let Some(r) = v["last_reload"].as_object() {
        let result = if r.get("ok").and_then(|b| b.as_bool()) == Some(true) {
            "ok".to_owned()
        } else {
            format!(
                "refused: {}",
                text(r.get("error").unwrap_or(&serde_json::Value::Null))
            )
        };
        out.push_str(&format!(
            "last reload: {} s ago, {result}\n",
            pkjwt_now().saturating_sub(r.get("at").and_then(|a| a.as_u64()).unwrap_or(0))
        ));
    }
    if let Some(profiles) = v["profiles"].as_object() {
        for (name, p) in profiles {
            let state = text(&p["state"]);
            let token = match p["token"].as_object() {
                Some(t) => format!(
                    "token valid {} s more, refresh in {} s",
                    t.get("expires_in").and_then(|x| x.as_u64()).unwrap_or(0),
                    t.get("refresh_in").and_then(|x| x.as_u64()).unwrap_or(0)
                ),
                None if state == "ready" => "no token yet".into(),
                None => format!("pending: {}", text(&p["error"])),
            };
            out.push_str(&format!(
                "[{}] {state}: client {} at {}; key {} {} ; {token}; {} token requests\n",
                pkjwt::escape_controls(name),
                text(&p["client_id"]),
                text(&p["issuer"]),
                text(&p["key"]["backend"]),
                text(&p["key"]["kid"]),
                p["token_fetches"].as_u64().unwrap_or(0),
            ));
        }
    }
    crate::output::print(out.trim_end())?;
    Ok(ExitCode::SUCCESS)
}

fn pkjwt_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// `pkjwt token --agent SOCKET --agent-profile NAME`: the access token (or the agent's whole
/// answer, or an ExecCredential) from a running agent.
pub(crate) fn token(
    socket: &Path,
    profile: &str,
    format: crate::token::Format,
    timeout: u64,
) -> CmdResult {
    let timeout = Duration::from_secs(timeout.max(1));
    let (token, answer) =
        pkjwt_agent::client::token_answer(socket, checked_profile(profile)?, timeout)?;
    let text = match format {
        crate::token::Format::Token => token,
        crate::token::Format::Json => serde_json::to_string_pretty(&answer)?,
        crate::token::Format::ExecCredential => {
            crate::output::exec_credential(&token, answer["expires_in"].as_u64())?
        }
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
