//! `pkjwt agent --config FILE` as a service runs it, and `pkjwt token --agent` as a script uses
//! it: tokens from oidc-provider through the agent's socket, one token request for several
//! one-shot clients, and configuration errors before anything starts.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test.

mod common;
use common::*;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use pkjwt_conformance::oidc_provider::{OidcProvider, client_metadata};
use serde_json::{Value, json};

mod serve_helper;
use serve_helper::Serve;

/// `pkjwt agent` in the background: stopped with SIGTERM on drop.
struct AgentProc(Child);

impl Drop for AgentProc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn agent_serves_tokens_to_token_dash_dash_agent() {
    let dir = tmpdir("agent");
    ok(&dir, &["keygen", "--key", "file:c.pem", "--alg", "ES256"]);
    let s = Serve::start(&dir, &["--key", "file:c.pem"]);
    let Some(op) = OidcProvider::start(&json!({
        "clients": [client_metadata("agent-cli", &s.1, "ES256", "accounts:read")],
        "resources": { "https://api.example.com": { "scope": "accounts:read" } },
    })) else {
        return;
    };
    let socket = dir.join("agent.sock");
    // No file watch: the reload below must come from SIGHUP.
    let table = |name: &str| {
        format!(
            "[profile.{name}]\nkey = {:?}\nissuer = {:?}\n\
             client_id = \"agent-cli\"\nscope = \"accounts:read\"\nresources = [\"https://api.example.com\"]\n",
            format!("file:{}", dir.join("c.pem").display()),
            op.issuer
        )
    };
    let head = format!(
        "[agent]\nsocket = {:?}\nwatch_interval_secs = 0\n\n",
        socket.display().to_string()
    );
    let config = format!("{head}{}", table("api"));
    std::fs::write(dir.join("agent.toml"), &config).unwrap();
    let checked = run(&dir, &["agent", "--config", "agent.toml", "--check"], &[]);
    assert!(checked.status.success());
    assert!(String::from_utf8_lossy(&checked.stderr).contains("configuration is valid"));

    let mut child = Command::new(BIN)
        .args(["agent", "--config", "agent.toml"])
        .current_dir(&dir)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let agent = AgentProc(child);
    let mut lines = BufReader::new(stderr).lines();
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no listening line: {seen}"))
            .unwrap();
        if line.contains("agent listening on") {
            break;
        }
        seen.push_str(&line);
    }
    // Keep reading the log so that the agent never blocks on a full pipe.
    let log = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<_>>());

    let sock = socket.to_str().unwrap();
    let args = ["token", "--agent", sock, "--agent-profile", "api"];
    let t1 = ok(&dir, &args);
    let t2 = ok(&dir, &args);
    assert_eq!(t1.lines().count(), 1);
    assert_eq!(t1.trim_end().split('.').count(), 3, "a JWT: {t1}");
    assert_eq!(t1, t2);
    let v: Value = serde_json::from_str(&ok(&dir, &[&args[..], &["--json"]].concat())).unwrap();
    assert_eq!(v["access_token"].as_str().unwrap(), t1.trim_end());
    assert_eq!(v["token_type"], "Bearer");
    let e = fails(
        &dir,
        &["token", "--agent", sock, "--agent-profile", "other"],
    );
    assert!(
        e.contains("agent answered HTTP 404: unknown_profile") && e.contains("configured: api"),
        "{e}"
    );
    // A usage error (clap's exit 2) names the missing flag.
    let o = run(&dir, &["token", "--agent", sock], &[]);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(2), "{e}");
    assert!(e.contains("--agent-profile <NAME>"), "{e}");
    // The credential-process form: a Kubernetes ExecCredential with the token and its expiry.
    let v: Value =
        serde_json::from_str(&ok(&dir, &[&args[..], &["--exec-credential"]].concat())).unwrap();
    assert_eq!(v["kind"], "ExecCredential");
    assert_eq!(v["apiVersion"], "client.authentication.k8s.io/v1");
    assert_eq!(v["status"]["token"].as_str().unwrap(), t1.trim_end());
    let ts = v["status"]["expirationTimestamp"].as_str().unwrap();
    assert!(
        ts.len() == 20 && ts.ends_with('Z') && ts.starts_with("20"),
        "{ts}"
    );

    // Status, human and JSON.
    let st = ok(&dir, &["agent", "status", "--socket", sock]);
    assert!(st.contains("[api] ready: client agent-cli"), "{st}");
    assert!(st.contains("token valid"), "{st}");
    assert!(!st.contains(t1.trim_end()), "no token in the status: {st}");
    assert!(!st.contains("c.pem"), "the key URI is not shown: {st}");
    let sj: Value = serde_json::from_str(&ok(
        &dir,
        &["agent", "status", "--config", "agent.toml", "--json"],
    ))
    .unwrap();
    assert_eq!(sj["profiles"]["api"]["state"], "ready");
    assert!(!sj.to_string().contains("c.pem"), "{sj}");
    assert_eq!(sj["profiles"]["api"]["key"]["backend"], "file");
    assert_eq!(sj["profiles"]["api"]["token_fetches"], 1);
    // Assertions are off unless the profile enables them.
    let e = fails(
        &dir,
        &[
            "agent",
            "assertion",
            "--socket",
            sock,
            "--profile",
            "api",
            "--audience",
            &op.token_endpoint(),
        ],
    );
    assert!(e.contains("HTTP 403: assertions_disabled"), "{e}");

    // SIGHUP: a second profile appears, the first keeps its token.
    std::fs::write(
        dir.join("agent.toml"),
        format!("{head}{}{}", table("api"), table("two")),
    )
    .unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&agent.0),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let sj: Value =
            serde_json::from_str(&ok(&dir, &["agent", "status", "--socket", sock, "--json"]))
                .unwrap();
        if sj["profiles"]["two"].is_object() {
            assert_eq!(sj["last_reload"]["ok"], true, "{sj}");
            assert_eq!(sj["last_reload"]["kept"], json!(["api"]), "{sj}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "SIGHUP did not reload: {sj}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    assert_eq!(ok(&dir, &args), t1, "the reload dropped the token");

    let grants = op.events_when(|ev| ev.iter().any(|e| e["event"] == "grant.success"));
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert_eq!(op.grants("agent-cli"), 1, "one token request: {grants:?}");

    // SIGTERM: a clean stop that removes the socket.
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&agent.0),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let mut agent = agent;
    let status = agent.0.wait().unwrap();
    assert!(status.success(), "{status:?}");
    let log = log.join().unwrap().join("\n");
    assert!(!log.contains(t1.trim_end()), "no token in the log: {log}");
    assert!(!socket.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn agent_config_errors_stop_it_before_it_starts() {
    let dir = tmpdir("agent-config");
    std::fs::write(
        dir.join("agent.toml"),
        "[agent]\nsocket = \"/tmp/x.sock\"\nhttp_listen = \"0.0.0.0:8790\"\n\
         [profile.api]\nkey = \"file:c.pem\"\nissuer = \"https://as.example\"\nclient_id = \"c\"\n",
    )
    .unwrap();
    let e = fails(&dir, &["agent", "--config", "agent.toml"]);
    assert!(
        e.contains("agent.toml: [agent]: http_listen: 0.0.0.0:8790 is not a loopback address"),
        "{e}"
    );
    // The chain: what could not be read, then the OS's reason, once.
    let e = fails(&dir, &["agent", "--config", "missing.toml"]);
    assert_eq!(
        e.trim_end(),
        "pkjwt: error: cannot read missing.toml: No such file or directory (os error 2)"
    );
    std::fs::remove_dir_all(&dir).ok();
}
