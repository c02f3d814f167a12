//! A blocking client for the agent's Unix socket: one HTTP/1.1 `GET /token` per call, for
//! `pkjwt token --agent` and for tests. Deliberately tiny (no HTTP client dependency): the agent
//! answers with `Content-Length` and closes the connection (`Connection: close`).

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// Why no token came from the agent.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AgentClientError {
    /// The socket could not be used.
    #[error("agent socket {path}: {reason}")]
    Socket {
        /// The socket.
        path: String,
        /// The I/O error.
        reason: String,
    },
    /// The agent answered with an error.
    #[error("agent answered HTTP {status}: {error}: {description}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The `error` code (`unknown_profile`, `token_unavailable`, `access_denied`…).
        error: String,
        /// The agent's `error_description`.
        description: String,
    },
    /// The answer was not what the agent sends.
    #[error("unusable answer from the agent: {0}")]
    Invalid(String),
}

/// A raw answer: status and body.
#[derive(Debug)]
pub struct RawAnswer {
    /// HTTP status.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Sends `GET target` over the socket and reads the whole answer.
pub fn get(socket: &Path, target: &str, timeout: Duration) -> Result<RawAnswer, AgentClientError> {
    let io = |e: std::io::Error| AgentClientError::Socket {
        path: socket.display().to_string(),
        reason: e.to_string(),
    };
    let mut s = UnixStream::connect(socket).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(io)?;
    parse(&buf)
}

fn parse(buf: &[u8]) -> Result<RawAnswer, AgentClientError> {
    let bad = |m: &str| AgentClientError::Invalid(m.to_owned());
    let end = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| bad("no end of headers"))?;
    let head = std::str::from_utf8(&buf[..end]).map_err(|_| bad("headers are not UTF-8"))?;
    let status = head
        .lines()
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad("no HTTP status line"))?;
    let body = &buf[end + 4..];
    let len = head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case("content-length")
            .then(|| v.trim().parse::<usize>().ok())?
    });
    let body = match len {
        Some(n) if n <= body.len() => body[..n].to_vec(),
        Some(_) => return Err(bad("the body is shorter than its Content-Length")),
        None => body.to_vec(),
    };
    Ok(RawAnswer { status, body })
}

/// The access token of `profile`, or the agent's error.
pub fn token(socket: &Path, profile: &str, timeout: Duration) -> Result<String, AgentClientError> {
    if !profile
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(AgentClientError::Invalid(format!(
            "profile name {:?}: expected letters, digits, '-', '_' or '.'",
            pkjwt::escape_controls(profile)
        )));
    }
    let a = get(socket, &format!("/token?profile={profile}"), timeout)?;
    let v: serde_json::Value = serde_json::from_slice(&a.body)
        .map_err(|e| AgentClientError::Invalid(format!("body is not JSON: {e}")))?;
    if a.status != 200 {
        let field = |k: &str| pkjwt::escape_controls(v[k].as_str().unwrap_or("")).into_owned();
        return Err(AgentClientError::Refused {
            status: a.status,
            error: field("error"),
            description: field("error_description"),
        });
    }
    v["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| AgentClientError::Invalid("no access_token in the answer".into()))
}
