//! A blocking client for the agent's Unix socket: one HTTP/1.1 request per call, for
//! `pkjwt token --agent`, `pkjwt agent status` and tests. Deliberately tiny (no HTTP client dependency): the agent
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
    request(socket, "GET", target, timeout)
}

/// Sends `METHOD target` (no body) over the socket and reads the whole answer.
pub fn request(
    socket: &Path,
    method: &str,
    target: &str,
    timeout: Duration,
) -> Result<RawAnswer, AgentClientError> {
    let io = |e: std::io::Error| AgentClientError::Socket {
        path: socket.display().to_string(),
        reason: e.to_string(),
    };
    let mut s = UnixStream::connect(socket).map_err(io)?;
    s.set_read_timeout(Some(timeout)).map_err(io)?;
    s.set_write_timeout(Some(timeout)).map_err(io)?;
    write!(
        s,
        "{method} {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(io)?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(io)?;
    parse(&buf)
}

/// `METHOD target` answered with JSON: the body on 200, the agent's error otherwise.
pub fn json(
    socket: &Path,
    method: &str,
    target: &str,
    timeout: Duration,
) -> Result<serde_json::Value, AgentClientError> {
    let a = request(socket, method, target, timeout)?;
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
    Ok(v)
}

/// The agent's `/status` document.
pub fn status(socket: &Path, timeout: Duration) -> Result<serde_json::Value, AgentClientError> {
    json(socket, "GET", "/status", timeout)
}

/// A client assertion of `profile`'s client for `audience` (`POST /assertion`), the JWT only.
pub fn assertion(
    socket: &Path,
    profile: &str,
    audience: &str,
    timeout: Duration,
) -> Result<String, AgentClientError> {
    check_profile(profile)?;
    let v = json(
        socket,
        "POST",
        &format!(
            "/assertion?profile={profile}&audience={}",
            percent_encode(audience)
        ),
        timeout,
    )?;
    v["assertion"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| AgentClientError::Invalid("no assertion in the answer".into()))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for a query value.
pub fn percent_encode(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for b in v.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn check_profile(profile: &str) -> Result<(), AgentClientError> {
    if profile.is_empty()
        || !profile
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
    {
        return Err(AgentClientError::Invalid(format!(
            "profile name {:?}: expected letters, digits, '-', '_' or '.'",
            pkjwt::escape_controls(profile)
        )));
    }
    Ok(())
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
    token_answer(socket, profile, timeout).map(|(t, _)| t)
}

/// The access token of `profile` and the agent's whole answer (`expires_in`, `scope`, …).
pub fn token_answer(
    socket: &Path,
    profile: &str,
    timeout: Duration,
) -> Result<(String, serde_json::Value), AgentClientError> {
    check_profile(profile)?;
    let v = json(socket, "GET", &format!("/token?profile={profile}"), timeout)?;
    let t = v["access_token"]
        .as_str()
        .map(str::to_owned)
        .ok_or_else(|| AgentClientError::Invalid("no access_token in the answer".into()))?;
    Ok((t, v))
}
