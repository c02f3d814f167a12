#![allow(dead_code, clippy::unwrap_used)]
//! `pkjwt serve` started in the background by the CLI tests, killed on drop.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

/// `pkjwt serve` in the background; killed on drop.
pub struct Serve(pub Child, pub String);

impl Serve {
    pub fn start(dir: &Path, args: &[&str]) -> Serve {
        Self::start_with(dir, args, &[])
    }

    pub fn start_with(dir: &Path, args: &[&str], envs: &[(String, String)]) -> Serve {
        let child = Command::new(env!("CARGO_BIN_EXE_pkjwt"))
            .envs(envs.iter().map(|(k, v)| (k, v)))
            .arg("serve")
            .args(args)
            .args(["--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Owned by a `Serve` at once, so that a panic below still kills and reaps it.
        let mut serve = Serve(child, String::new());
        // Notes (an admin listener, an RSA key's JWK without alg) may come first; the
        // "serving JWKS" line is the last one at startup.
        let mut stderr = BufReader::new(serve.0.stderr.take().unwrap());
        let mut seen = String::new();
        loop {
            let mut line = String::new();
            if stderr.read_line(&mut line).unwrap() == 0 {
                panic!("pkjwt serve printed no \"serving JWKS\" line: {seen:?}");
            }
            if line.contains("serving JWKS") {
                serve.1 = line
                    .split_whitespace()
                    .find(|w| w.starts_with("http://"))
                    .unwrap_or_else(|| panic!("no URL in {line:?}"))
                    .to_owned();
                return serve;
            }
            seen.push_str(&line);
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}
