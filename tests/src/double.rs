//! Starting a Python test double (the AWS KMS, Cloud KMS and Key Vault doubles under `infra/`)
//! the same way everywhere: from the repository's `.venv` (or a Python named by an environment
//! variable), on 127.0.0.1 and a free port it reports on its first line (`READY PORT`), with its
//! stdin kept open — when the test process ends, the pipe closes and the double exits, so a
//! crashed test leaves nothing behind.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::{Mutex, mpsc};
use std::time::Duration;

/// The repository's root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Python to run a double with: `$env_var` when set, else the repository's `.venv`. The
/// error says how to make the venv (`hint`, e.g. the requirements file it needs).
pub fn python(env_var: &str, hint: &str) -> Result<PathBuf, String> {
    let python = std::env::var_os(env_var)
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".venv/bin/python"));
    if python.exists() {
        Ok(python)
    } else {
        Err(format!("{} not found: {hint}", python.display()))
    }
}

/// A running double; it stops when this value is dropped or the test process ends (its stdin
/// pipe closes).
pub struct PythonDouble {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    // Held so that the pipe stays open for the double's lifetime; its closing stops the double.
    _stdin: Mutex<ChildStdin>,
    _child: Mutex<Child>,
}

impl PythonDouble {
    /// Spawns `command` (the script and its arguments set by the caller; stdin and stdout are
    /// piped here) and waits up to `within` for its `READY PORT` line. `name` names it in errors.
    pub fn start(mut command: Command, name: &str, within: Duration) -> Result<Self, String> {
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .map_err(|e| format!("cannot start the {name}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout pipe")?;
        let stdin = child.stdin.take().ok_or("no stdin pipe")?;
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(within) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "the {name} did not report READY within {} s",
                    within.as_secs()
                ));
            }
        };
        let Some(port) = line
            .trim()
            .strip_prefix("READY ")
            .and_then(|p| p.parse().ok())
        else {
            let _ = child.kill();
            let status = child.wait().map(|s| s.to_string()).unwrap_or_default();
            return Err(format!(
                "unexpected first line from the {name}: {line:?} ({status})"
            ));
        };
        Ok(PythonDouble {
            port,
            _stdin: Mutex::new(stdin),
            _child: Mutex::new(child),
        })
    }
}

/// A plain HTTP/1.0 request to a double's control API (`/_pkjwt/…`) on 127.0.0.1:`port`;
/// panics unless it answers 200, and returns the JSON body.
pub fn control(
    port: u16,
    method: &str,
    path: &str,
    body: Option<serde_json::Value>,
) -> serde_json::Value {
    use std::io::{Read, Write};
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to the double");
    s.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .expect("write control request");
    let mut resp = String::new();
    s.read_to_string(&mut resp).expect("read control response");
    let (head, json) = resp.split_once("\r\n\r\n").expect("HTTP response");
    assert!(
        head.starts_with("HTTP/1.") && head.contains(" 200 "),
        "control {path}: {head}\n{json}"
    );
    serde_json::from_str(json).expect("JSON from the double")
}

impl Drop for PythonDouble {
    fn drop(&mut self) {
        // Closing stdin would stop it too; killing does not wait for the double to notice.
        if let Ok(mut c) = self._child.lock() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
