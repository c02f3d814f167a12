//! `pkjwt register` against oidc-provider with its registration feature on: register with a
//! served `jwks_uri` and with an inline `jwks` and fetch tokens with the new client id; rotate,
//! update the registration (RFC 7592) and fetch with the next key; delete and see the client
//! refused; an initial access token required and missing; metadata refused; no secret printed.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test code: a failed unwrap is a failed test.

mod common;
use common::*;

use std::path::Path;
use std::process::Output;

use pkjwt_conformance::oidc_provider::OidcProvider;
use serde_json::{Value, json};

mod serve_helper;
use serve_helper::Serve;

const SCOPE: &str = "accounts:read";

/// Registers and returns the client_id, checking that stdout is the client_id alone, that the
/// saved file is 0600 and holds the registration access token, and that neither output shows it.
fn register(dir: &Path, args: &[&str], env: &[(&str, &str)], out: &str) -> String {
    let o = run(dir, &[&["register", "--out", out], args].concat(), env);
    let stderr = String::from_utf8_lossy(&o.stderr).into_owned();
    assert!(o.status.success(), "pkjwt register {args:?}: {stderr}");
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    let client_id = stdout.trim_end().to_owned();
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(out)).unwrap()).unwrap();
    assert_eq!(saved["client_id"], client_id.as_str());
    assert_eq!(saved["token_endpoint_auth_method"], "private_key_jwt");
    let rat = saved["registration_access_token"].as_str().unwrap();
    assert!(!stdout.contains(rat) && !stderr.contains(rat));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(dir.join(out))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    client_id
}

fn token(dir: &Path, key: &str, client_id: &str, issuer: &str) -> Output {
    run(
        dir,
        &[
            "token",
            "--key",
            key,
            // `=`: oidc-provider's random client ids may start with '-'.
            &format!("--client-id={client_id}"),
            "--issuer",
            issuer,
            "--scope",
            SCOPE,
            "--attempts",
            "1",
        ],
        &[],
    )
}

fn assert_token(dir: &Path, key: &str, client_id: &str, op: &OidcProvider) {
    let o = token(dir, key, client_id, &op.issuer);
    assert!(
        o.status.success(),
        "token with {key} for {client_id}: {} (provider: {:?})",
        String::from_utf8_lossy(&o.stderr),
        op.grant_errors()
    );
    assert_eq!(
        String::from_utf8(o.stdout)
            .unwrap()
            .trim()
            .split('.')
            .count(),
        3
    );
}

fn assert_refused(dir: &Path, key: &str, client_id: &str, op: &OidcProvider) {
    let o = token(dir, key, client_id, &op.issuer);
    let err = String::from_utf8(o.stderr).unwrap();
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("invalid_client"), "{err}");
}

fn provider(extra: Value) -> Option<OidcProvider> {
    let mut config = json!({ "resources": { "https://api.example.com": { "scope": SCOPE } } });
    if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            c.insert(k.clone(), v.clone());
        }
    }
    OidcProvider::start(&config)
}

#[test]
fn register_with_jwks_uri_then_token() {
    let dir = tmpdir("uri");
    ok(&dir, &["keygen", "--key", "file:a.pem", "--alg", "PS256"]);
    let s = Serve::start(&dir, &["--key", "file:a.pem"]);
    let Some(op) = provider(json!({})) else {
        return;
    };
    let cid = register(
        &dir,
        &[
            "--issuer",
            &op.issuer,
            "--key",
            "file:a.pem",
            "--jwks-uri",
            &s.1,
            "--scope",
            SCOPE,
        ],
        &[],
        "reg.json",
    );
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reg.json")).unwrap()).unwrap();
    assert_eq!(saved["jwks_uri"], s.1.as_str());
    assert!(saved.get("jwks").is_none());
    assert_eq!(saved["token_endpoint_auth_signing_alg"], "PS256");
    assert_token(&dir, "file:a.pem", &cid, &op);

    // The registration file is never overwritten: it may hold the only copy of a token.
    let e = fails_env(
        &dir,
        &[
            "register",
            "--issuer",
            &op.issuer,
            "--key",
            "file:a.pem",
            "--out",
            "reg.json",
        ],
        &[],
    );
    assert!(e.contains("reg.json exists"), "{e}");
}

#[test]
fn inline_jwks_rotation_update_and_delete() {
    let dir = tmpdir("inline");
    ok(&dir, &["keygen", "--key", "file:a.pem", "--alg", "ES256"]);
    ok(
        &dir,
        &[
            "rotate",
            "--state",
            "st.json",
            "init",
            "--key",
            "file:a.pem",
        ],
    );
    let Some(op) = provider(json!({})) else {
        return;
    };
    let cid = register(
        &dir,
        &[
            "--issuer", &op.issuer, "--state", "st.json", "--scope", SCOPE,
        ],
        &[],
        "reg.json",
    );
    let before: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reg.json")).unwrap()).unwrap();
    assert_eq!(before["jwks"]["keys"].as_array().unwrap().len(), 1);
    assert_token(&dir, "file:a.pem", &cid, &op);

    // Rotation without the registration: the next key is published in the state, but the
    // server does not know it yet.
    let begin = |key: &str, registration: &[&str]| {
        let mut args = vec![
            "rotate",
            "--state",
            "st.json",
            "begin",
            "--key",
            key,
            "--generate",
            "--prepublish",
            "61",
            "--overlap",
            "60",
        ];
        args.extend_from_slice(registration);
        ok(&dir, &args);
    };
    std::fs::copy(dir.join("st.json"), dir.join("st-before.json")).unwrap();
    begin("file:b0.pem", &[]);
    assert_refused(&dir, "file:b0.pem", &cid, &op);
    // `register --update --state` tells the server afterwards.
    let out = ok(
        &dir,
        &[
            "register",
            "--update",
            "--registration",
            "reg.json",
            "--state",
            "st.json",
        ],
    );
    assert_eq!(out.trim_end(), cid);
    assert_token(&dir, "file:b0.pem", &cid, &op);

    // Rotation with --registration: the state and the registration change in one command.
    std::fs::copy(dir.join("st-before.json"), dir.join("st.json")).unwrap();
    // A next key the registration's algorithm would refuse: refused before the key exists.
    let e = fails_env(
        &dir,
        &[
            "rotate",
            "--state",
            "st.json",
            "begin",
            "--key",
            "file:wrong.pem",
            "--generate",
            "--alg",
            "EdDSA",
            "--prepublish",
            "61",
            "--registration",
            "reg.json",
        ],
        &[],
    );
    assert!(e.contains("ES256") && e.contains("EdDSA"), "{e}");
    assert!(!dir.join("wrong.pem").exists(), "no key was created");
    begin("file:b.pem", &["--registration", "reg.json"]);
    let after: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reg.json")).unwrap()).unwrap();
    let kids: Vec<&str> = after["jwks"]["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap())
        .collect();
    assert_eq!(kids.len(), 2, "the current and the next key: {after}");
    assert_eq!(after["client_id"], cid.as_str());
    assert_token(&dir, "file:b.pem", &cid, &op);
    assert_token(&dir, "file:a.pem", &cid, &op);
    assert_refused(&dir, "file:b0.pem", &cid, &op);

    // --read shows the server's view and never the token.
    let read = ok(&dir, &["register", "--read", "--registration", "reg.json"]);
    let v: Value = serde_json::from_str(&read).unwrap();
    assert_eq!(v["jwks"]["keys"].as_array().unwrap().len(), 2);
    assert!(v.get("registration_access_token").is_none());
    assert!(!read.contains(after["registration_access_token"].as_str().unwrap()));

    // A key of another algorithm than the registered one is refused before any request.
    ok(&dir, &["keygen", "--key", "file:e.pem", "--alg", "EdDSA"]);
    let e = fails_env(
        &dir,
        &[
            "register",
            "--update",
            "--registration",
            "reg.json",
            "--key",
            "file:a.pem",
            "--key",
            "file:e.pem",
        ],
        &[],
    );
    assert!(e.contains("is for EdDSA") && e.contains("ES256"), "{e}");

    // Delete: the client is refused, and the registration is gone.
    let out = ok(
        &dir,
        &["register", "--delete", "--registration", "reg.json"],
    );
    assert_eq!(out.trim_end(), cid);
    assert_refused(&dir, "file:a.pem", &cid, &op);
    let e = fails_env(
        &dir,
        &["register", "--read", "--registration", "reg.json"],
        &[],
    );
    assert!(e.contains("HTTP 401: invalid_token"), "{e}");
}

/// Issue 12, item 12: a server may issue a client_secret beside private_key_jwt (oidc-provider
/// does when an HMAC ID-token algorithm is registered); `--read` must not print it.
#[test]
fn read_does_not_print_a_client_secret() {
    let dir = tmpdir("read-secret");
    let Some(op) = provider(json!({ "idTokenSigningAlgValues": ["HS256", "ES256"] })) else {
        return;
    };
    ok(&dir, &["keygen", "--key", "file:a.pem", "--alg", "ES256"]);
    register(
        &dir,
        &[
            "--issuer",
            &op.issuer,
            "--key",
            "file:a.pem",
            "--metadata",
            "id_token_signed_response_alg=HS256",
        ],
        &[],
        "reg.json",
    );
    let saved: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("reg.json")).unwrap()).unwrap();
    let secret = saved["client_secret"]
        .as_str()
        .expect("oidc-provider issues a client_secret for an HS256 ID-token algorithm")
        .to_owned();
    let o = run(
        &dir,
        &["register", "--read", "--registration", "reg.json"],
        &[],
    );
    let (stdout, stderr) = (
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
    );
    assert!(o.status.success(), "{stderr}");
    assert!(
        !stdout.contains(&secret) && !stderr.contains(&secret),
        "{stdout}{stderr}"
    );
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(v.get("client_secret").is_none(), "{stdout}");
    assert_eq!(v["id_token_signed_response_alg"], "HS256");
    assert!(
        stderr.contains("client_secret") && stderr.contains("not printed"),
        "{stderr}"
    );
}

#[test]
fn initial_access_token_required() {
    let dir = tmpdir("iat");
    ok(&dir, &["keygen", "--key", "file:a.pem", "--alg", "ES256"]);
    let secret = "iat-5b0c1e7f-secret";
    let Some(op) = provider(json!({ "initialAccessToken": secret })) else {
        return;
    };
    let base = [
        "register",
        "--issuer",
        &op.issuer,
        "--key",
        "file:a.pem",
        "--scope",
        SCOPE,
    ];
    let e = fails_env(&dir, &base, &[]);
    assert!(
        e.contains("HTTP 401: invalid_token") && e.contains("--initial-access-token-source"),
        "{e}"
    );
    assert!(!dir.join("registration.json").exists());
    let e = fails_env(
        &dir,
        &[&base[..], &["--initial-access-token-source", "env:IAT"]].concat(),
        &[("IAT", "wrong")],
    );
    assert!(e.contains("HTTP 401: invalid_token"), "{e}");
    let e = fails_env(
        &dir,
        &[
            &base[..],
            &["--initial-access-token-source", "env:NOPE_UNSET"],
        ]
        .concat(),
        &[],
    );
    assert!(
        e.contains("initial access token") && e.contains("NOPE_UNSET"),
        "{e}"
    );
    // A token on the command line is refused: secrets come from env: or file: sources.
    let o = run(
        &dir,
        &[&base[..], &["--initial-access-token-source", secret]].concat(),
        &[],
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--initial-access-token-source") && !err.contains(secret),
        "the mistyped token must not be echoed: {err}"
    );
    std::fs::write(dir.join("iat.txt"), format!("{secret}\n")).unwrap();
    // Secret files must be the owner's alone (issue 12, item 12).
    std::fs::set_permissions(
        dir.join("iat.txt"),
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let cid = register(
        &dir,
        &[
            "--issuer",
            &op.issuer,
            "--key",
            "file:a.pem",
            "--scope",
            SCOPE,
            "--initial-access-token-source",
            "file:iat.txt",
        ],
        &[],
        "reg.json",
    );
    assert_token(&dir, "file:a.pem", &cid, &op);
}

#[test]
fn refused_metadata_names_the_error() {
    let dir = tmpdir("meta");
    ok(&dir, &["keygen", "--key", "file:a.pem", "--alg", "ES256"]);
    let Some(op) = provider(json!({})) else {
        return;
    };
    let e = fails_env(
        &dir,
        &[
            "register",
            "--issuer",
            &op.issuer,
            "--key",
            "file:a.pem",
            "--grant-type",
            "password",
        ],
        &[],
    );
    assert!(e.contains("HTTP 400: invalid_client_metadata"), "{e}");
    assert!(e.contains("grant_types"), "{e}");
    // oidc-provider takes JSON only: a signed request (application/jwt) is refused, with its words.
    let e = fails_env(
        &dir,
        &[
            "register",
            "--issuer",
            &op.issuer,
            "--key",
            "file:a.pem",
            "--signed-request-key",
            "file:a.pem",
            "--request-issuer",
            "software-1",
        ],
        &[],
    );
    assert!(
        e.contains("HTTP 400: invalid_request") && e.contains("application/json"),
        "{e}"
    );
    // Discovery of a server without registration.
    let e = fails_env(
        &dir,
        &[
            "register",
            "--issuer",
            "http://127.0.0.1:9/",
            "--key",
            "file:a.pem",
        ],
        &[],
    );
    assert!(e.contains("discovery failed"), "{e}");
}

#[test]
fn software_statement_options() {
    let dir = tmpdir("ss");
    ok(&dir, &["keygen", "--key", "file:a.pem", "--alg", "ES256"]);
    ok(
        &dir,
        &["keygen", "--key", "file:publisher.pem", "--alg", "PS256"],
    );
    std::fs::write(dir.join("ssa.jwt"), "not a jwt\n").unwrap();
    let Some(op) = provider(json!({})) else {
        return;
    };
    let e = fails_env(
        &dir,
        &[
            "register",
            "--issuer",
            &op.issuer,
            "--key",
            "file:a.pem",
            "--software-statement",
            "ssa.jwt",
        ],
        &[],
    );
    assert!(e.contains("ssa.jwt does not hold a compact JWS"), "{e}");
    // A statement needs its issuer (usage error before anything is signed or sent).
    let o = run(
        &dir,
        &[
            "register",
            "--issuer",
            &op.issuer,
            "--key",
            "file:a.pem",
            "--software-statement-key",
            "file:publisher.pem",
        ],
        &[],
    );
    assert_eq!(o.status.code(), Some(2));
    // oidc-provider accepts the registration and ignores the statement (docs/registration.md);
    // this proves the CLI path signs and sends; tests/it/registration.rs verifies the statement.
    let cid = register(
        &dir,
        &[
            "--issuer",
            &op.issuer,
            "--key",
            "file:a.pem",
            "--scope",
            SCOPE,
            "--software-statement-key",
            "file:publisher.pem",
            "--software-statement-issuer",
            "https://publisher.example",
        ],
        &[],
        "reg.json",
    );
    assert_token(&dir, "file:a.pem", &cid, &op);
}

#[test]
fn management_needs_a_usable_registration_file() {
    let dir = tmpdir("mgmt");
    // Registration files hold a token: one others can read is refused before it is parsed.
    std::fs::write(dir.join("plain.json"), r#"{"client_id":"c1"}"#).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("plain.json");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o644)).unwrap();
        let e = fails_env(
            &dir,
            &["register", "--read", "--registration", "plain.json"],
            &[],
        );
        assert!(
            e.contains("refusing the registration file plain.json") && e.contains("0644"),
            "{e}"
        );
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let e = fails_env(
        &dir,
        &["register", "--read", "--registration", "plain.json"],
        &[],
    );
    assert!(e.contains("did not offer RFC 7592 management"), "{e}");
    std::fs::write(dir.join("bad.json"), "[1]").unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let p = dir.join("bad.json");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    let e = fails_env(
        &dir,
        &["register", "--delete", "--registration", "bad.json"],
        &[],
    );
    assert!(e.contains("bad.json is not a registration"), "{e}");
    let e = fails_env(
        &dir,
        &["register", "--update", "--registration", "missing.json"],
        &[],
    );
    assert!(
        e.contains("cannot read the registration file missing.json"),
        "{e}"
    );
    let o = run(&dir, &["register", "--read"], &[]);
    assert_eq!(o.status.code(), Some(2));
    let o = run(&dir, &["register", "--key", "file:a.pem"], &[]);
    assert_eq!(o.status.code(), Some(2), "--issuer is required to register");
}
