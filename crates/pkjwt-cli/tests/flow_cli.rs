//! `pkjwt serve`, `pkjwt rotate` and `pkjwt token` as scripts use them: the JWKS served from
//! keys and from a rotation state, rotation guard rails, and a token from oidc-provider printed
//! alone on stdout.

#![allow(clippy::unwrap_used, clippy::expect_used)]
// test code: a failed unwrap is a failed test.
// Each test needs its backend compiled into the CLI (`#[cfg(feature)]`); in a build with fewer
// backends (the file-only CI step) the helpers of the missing ones go unused.
#![cfg_attr(
    not(all(
        feature = "pkcs11",
        feature = "aws-kms",
        feature = "azure-kv",
        feature = "gcp-kms"
    )),
    allow(dead_code, unused_imports)
)]

#[path = "../../pkjwt-azure-kv/tests/common/mod.rs"]
mod azure;
#[path = "../../pkjwt-gcp-kms/tests/common/mod.rs"]
mod gcp;
#[path = "../../pkjwt-aws-kms/tests/common/mod.rs"]
mod kms;

mod common;
use common::*;

use std::path::Path;
use std::process::{Command, Output};

use pkjwt_conformance::oidc_provider::{OidcProvider, client_metadata};
use serde_json::{Value, json};

mod serve_helper;
use serve_helper::Serve;

fn get(url: &str) -> (u16, String, String) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let r = reqwest::get(url).await.unwrap();
        let cc = r
            .headers()
            .get("cache-control")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        (r.status().as_u16(), cc, r.text().await.unwrap())
    })
}

fn kids(body: &str) -> Vec<String> {
    let v: Value = serde_json::from_str(body).unwrap();
    v["keys"]
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["kid"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn serve_publishes_keys_and_rotate_drives_the_state() {
    let dir = tmpdir("serve");
    ok(&dir, &["keygen", "--key", "file:a.pem", "--alg", "ES256"]);
    ok(&dir, &["keygen", "--key", "file:e.pem", "--alg", "EdDSA"]);
    let kid_a = ok(
        &dir,
        &["pubkey", "--key", "file:a.pem", "--format", "thumbprint"],
    );
    let kid_e = ok(
        &dir,
        &["pubkey", "--key", "file:e.pem", "--format", "thumbprint"],
    );

    let s = Serve::start(
        &dir,
        &[
            "--key",
            "file:a.pem",
            "--key",
            "file:e.pem",
            "--max-age",
            "45",
        ],
    );
    let (status, cc, body) = get(&s.1);
    assert_eq!(status, 200);
    assert_eq!(cc, "public, max-age=45");
    assert_eq!(kids(&body), [kid_a.trim(), kid_e.trim()]);
    let base = s.1.trim_end_matches("/jwks");
    assert_eq!(get(&format!("{base}/.well-known/jwks.json")).2, body);
    assert_eq!(get(&format!("{base}/healthz")).0, 200);
    drop(s);

    // Rotation through the state file.
    let st = ["rotate", "--state", "rotation.json"];
    let init = ok(
        &dir,
        &[&st[..], &["init", "--key", "file:r1.pem", "--generate"]].concat(),
    );
    let v: Value = serde_json::from_str(&init).unwrap();
    let kid1 = v["signing_kid"].as_str().unwrap().to_owned();
    assert_eq!(v["keys"][0]["phase"], "signing");
    let e = fails(
        &dir,
        &[
            &st[..],
            &[
                "begin",
                "--key",
                "file:r2.pem",
                "--generate",
                "--prepublish",
                "30",
            ],
        ]
        .concat(),
    );
    assert!(
        e.contains("not longer than the servers' JWKS cache (60 s)"),
        "{e}"
    );
    assert!(
        !dir.join("r2.pem").exists(),
        "nothing generated when refused"
    );
    let begun = ok(
        &dir,
        &[
            &st[..],
            &[
                "begin",
                "--key",
                "file:r2.pem",
                "--generate",
                "--prepublish",
                "61",
                "--overlap",
                "5",
            ],
        ]
        .concat(),
    );
    let v: Value = serde_json::from_str(&begun).unwrap();
    assert_eq!(v["signing_kid"], kid1.as_str());
    assert_eq!(v["keys"][1]["phase"], "pre-published");
    let kid2 = v["keys"][1]["kid"].as_str().unwrap().to_owned();
    let e = fails(
        &dir,
        &[
            &st[..],
            &[
                "begin",
                "--key",
                "file:r3.pem",
                "--generate",
                "--prepublish",
                "61",
            ],
        ]
        .concat(),
    );
    assert!(e.contains("rotation is in progress"), "{e}");

    let s = Serve::start(&dir, &["--state", "rotation.json"]);
    assert_eq!(kids(&get(&s.1).2), [kid1, kid2]);
    let e = fails(
        &dir,
        &[
            "serve",
            "--state",
            "rotation.json",
            "--admin-listen",
            "0.0.0.0:0",
        ],
    );
    assert!(e.contains("loopback"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn token_prints_the_access_token_from_oidc_provider() {
    let dir = tmpdir("token");
    ok(&dir, &["keygen", "--key", "file:c.pem", "--alg", "PS256"]);
    let s = Serve::start(&dir, &["--key", "file:c.pem"]);
    let mut client = client_metadata("cli", &s.1, "PS256", "accounts:read");
    client["grant_types"] = json!([
        "client_credentials",
        "urn:ietf:params:oauth:grant-type:jwt-bearer"
    ]);
    let Some(op) = OidcProvider::start(&json!({
        "clients": [client],
        "resources": { "https://api.example.com": { "scope": "accounts:read" } },
    })) else {
        return;
    };
    let args = [
        "token",
        "--key",
        "file:c.pem",
        "--client-id",
        "cli",
        "--issuer",
        &op.issuer,
        "--scope",
        "accounts:read",
    ];
    let out = ok(&dir, &args);
    let token = out.trim_end();
    assert_eq!(out.lines().count(), 1);
    assert_eq!(token.split('.').count(), 3, "a JWT access token: {token}");
    let json_out = ok(&dir, &[&args[..], &["--json"]].concat());
    let v: Value = serde_json::from_str(&json_out).unwrap();
    assert_eq!(v["token_type"], "Bearer");
    assert_eq!(v["scope"], "accounts:read");
    assert!(v["access_token"].as_str().unwrap().split('.').count() == 3);
    // Without the agent too: a Kubernetes ExecCredential expiring with the token (300 s).
    let ec: Value =
        serde_json::from_str(&ok(&dir, &[&args[..], &["--exec-credential"]].concat())).unwrap();
    assert_eq!(ec["kind"], "ExecCredential");
    assert_eq!(
        ec["status"]["token"].as_str().unwrap().split('.').count(),
        3
    );
    let expiry = ec["status"]["expirationTimestamp"].as_str().unwrap();
    let in_5_min = std::time::SystemTime::now() + std::time::Duration::from_secs(300);
    let hhmm = |t: std::time::SystemTime| {
        let s = t.duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 86_400;
        format!("T{:02}:{:02}", s / 3600, s % 3600 / 60)
    };
    // Minute precision, either side of a minute boundary.
    let near = [
        hhmm(in_5_min - std::time::Duration::from_secs(60)),
        hhmm(in_5_min),
    ];
    assert!(
        near.iter().any(|m| expiry.contains(m.as_str())),
        "{expiry} vs {near:?}"
    );

    // Profile entra (aud = token endpoint, typ JWT) needs the certificate thumbprint: refused
    // without a certificate, accepted with --cert (x5t#S256 and, asked for, the SHA-1 x5t).
    let entra = [&args[..], &["--profile", "entra"]].concat();
    let e = fails(&dir, &entra);
    assert!(e.contains("x5t#S256") && e.contains("--cert"), "{e}");
    let pem = ok(
        &dir,
        &["cert", "--key", "file:c.pem", "--subject", "CN=cli"],
    );
    std::fs::write(dir.join("c.crt"), pem).unwrap();
    let t = ok(
        &dir,
        &[&entra[..], &["--cert", "c.crt", "--x5t-sha1"]].concat(),
    );
    assert_eq!(t.trim_end().split('.').count(), 3);
    ok(
        &dir,
        &["keygen", "--key", "file:other.pem", "--alg", "ES256"],
    );
    let other = ok(
        &dir,
        &["cert", "--key", "file:other.pem", "--subject", "CN=other"],
    );
    std::fs::write(dir.join("other.crt"), other).unwrap();
    let e = fails(&dir, &[&entra[..], &["--cert", "other.crt"]].concat());
    assert!(e.contains("other.crt"), "{e}");

    // The RFC 7523 §2.1 JWT-bearer grant: the token is issued to the assertion's subject.
    let user_token = ok(
        &dir,
        &[&args[..], &["--jwt-bearer-subject", "alice"]].concat(),
    );
    let payload = user_token.trim_end().split('.').nth(1).unwrap().to_owned();
    let claims: Value =
        serde_json::from_slice(&pkjwt::b64::decode("payload", &payload).unwrap()).unwrap();
    assert_eq!(
        (&claims["sub"], &claims["client_id"]),
        (&json!("alice"), &json!("cli"))
    );

    // --state: the key the rotation state says signs now.
    ok(
        &dir,
        &[
            "rotate",
            "--state",
            "st.json",
            "init",
            "--key",
            "file:c.pem",
        ],
    );
    let via_state = ok(
        &dir,
        &[
            "token",
            "--state",
            "st.json",
            "--client-id",
            "cli",
            "--issuer",
            &op.issuer,
        ],
    );
    assert_eq!(via_state.trim_end().split('.').count(), 3);

    // The same from a configuration file; a flag beats the file.
    std::fs::write(
        dir.join("pkjwt.json"),
        json!({"token": {"key": "file:c.pem", "client-id": "nobody", "issuer": &op.issuer,
                         "scope": "accounts:read", "json": true}})
        .to_string(),
    )
    .unwrap();
    let from_file = ok(
        &dir,
        &["--config", "pkjwt.json", "token", "--client-id", "cli"],
    );
    let v: Value = serde_json::from_str(&from_file).unwrap();
    assert_eq!(v["scope"], "accounts:read");

    // Clear errors: an unknown client, an issuer that differs by a slash, an unknown profile.
    let e = fails(
        &dir,
        &[
            "token",
            "--key",
            "file:c.pem",
            "--client-id",
            "nobody",
            "--issuer",
            &op.issuer,
        ],
    );
    assert!(
        e.contains("invalid_client") && e.contains("HTTP 401"),
        "{e}"
    );
    let wrong = format!("{}/", op.issuer);
    let e = fails(
        &dir,
        &[
            "token",
            "--key",
            "file:c.pem",
            "--client-id",
            "cli",
            "--issuer",
            &wrong,
        ],
    );
    assert!(e.contains("issuer"), "{e}");
    let o = pkjwt(&dir, &[&args[..], &["--profile", "fapi3"]].concat());
    assert_eq!(o.status.code(), Some(2), "a usage error");
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("unknown profile \"fapi3\"") && e.contains("fapi2"),
        "{e}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// Environment variables for the processes that use a backend.
type Env = Vec<(String, String)>;

/// One key of a real backend.
struct BackendKey {
    name: String,
    uri: String,
    alg: String,
}

fn run_with(dir: &Path, envs: &[(String, String)], args: &[&str]) -> String {
    run_with_stderr(dir, envs, args).0
}

/// Runs `pkjwt` with backend environment variables.
fn run_backend(dir: &Path, envs: &[(String, String)], args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("PKJWT_KEY")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(envs.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap()
}

/// Runs `pkjwt` with backend environment variables; asserts failure; returns stderr.
fn fails_with(dir: &Path, envs: &[(String, String)], args: &[&str]) -> String {
    let o = run_backend(dir, envs, args);
    assert!(!o.status.success(), "pkjwt {args:?} succeeded");
    String::from_utf8(o.stderr).unwrap()
}

/// Runs `pkjwt` with backend environment variables; asserts success; returns (stdout, stderr).
fn run_with_stderr(dir: &Path, envs: &[(String, String)], args: &[&str]) -> (String, String) {
    let o = run_backend(dir, envs, args);
    let err = String::from_utf8(o.stderr).unwrap();
    assert!(o.status.success(), "pkjwt {args:?}: {err}");
    (String::from_utf8(o.stdout).unwrap(), err)
}

/// SoftHSM keys from `infra/softhsm/setup.sh` (a private token directory), or `None` when
/// SoftHSM is absent and not required.
fn softhsm_keys(dir: &Path) -> Option<(Vec<BackendKey>, Env)> {
    let token = softhsm_token(&dir.join("hsm"), "flow")?;
    let keys = token
        .keys
        .into_iter()
        .map(|(alg, uri)| BackendKey {
            name: format!("softhsm-{alg}"),
            uri,
            alg,
        })
        .collect();
    let env = vec![("SOFTHSM2_CONF".to_owned(), token.conf.display().to_string())];
    Some((keys, env))
}

/// A service principal's standard variables, pointed at the Azure Key Vault double.
fn azure_env(d: &azure::Double) -> Env {
    vec![
        ("AZURE_TENANT_ID".to_owned(), azure::TENANT.to_owned()),
        ("AZURE_CLIENT_ID".to_owned(), azure::CLIENT_ID.to_owned()),
        (
            "AZURE_CLIENT_SECRET".to_owned(),
            azure::CLIENT_SECRET.to_owned(),
        ),
        ("AZURE_AUTHORITY_HOST".to_owned(), d.base()),
        (
            "PKJWT_AZURE_KV_CA_FILE".to_owned(),
            d.ca_file.display().to_string(),
        ),
    ]
}

/// The full flow through the CLI with keys in real backends (SoftHSM2, the KMS double, the Azure
/// Key Vault double, the Cloud KMS double): `pkjwt serve` publishes a backend's keys, oidc-provider fetches them,
/// `pkjwt token` signs with the backend, and the access token validates (pkjwt-verify, against
/// the provider's keys) for the API audience only.
#[cfg(all(
    feature = "pkcs11",
    feature = "aws-kms",
    feature = "azure-kv",
    feature = "gcp-kms"
))]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_flow_with_softhsm_and_kms_keys() {
    let dir = tmpdir("backends");
    let mut groups: Vec<(Vec<BackendKey>, Env)> = Vec::new();
    if let Some((mut keys, env)) = softhsm_keys(&dir) {
        // The RSA key also as an RS256 client (setup.sh names it for PS256).
        let rsa = keys.iter().find(|k| k.alg == "PS256").unwrap();
        let rs256 = BackendKey {
            name: "softhsm-RS256".into(),
            uri: rsa.uri.clone(),
            alg: "RS256".into(),
        };
        keys.push(rs256);
        groups.push((keys, env));
    }
    if let Some(d) = kms::double() {
        let env = vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
            ("AWS_REGION".to_owned(), kms::REGION.to_owned()),
        ];
        let mut keys = Vec::new();
        for alg in ["ES256", "ES384", "ES512", "PS256", "RS256", "EdDSA"] {
            let uri = format!(
                "awskms:key-id={};region={};endpoint={}",
                kms::alias(&format!("flow-{alg}").to_lowercase()),
                kms::REGION,
                d.endpoint()
            );
            run_with(&dir, &env, &["keygen", "--key", &uri, "--alg", alg]);
            keys.push(BackendKey {
                name: format!("kms-{alg}"),
                uri,
                alg: alg.to_owned(),
            });
        }
        groups.push((keys, env));
    }
    if let Some(d) = azure::double() {
        let env = azure_env(d);
        let mut keys = Vec::new();
        for alg in ["ES256", "PS256", "RS256"] {
            let uri = format!(
                "azurekv:{}/keys/{}",
                d.base(),
                azure::name(&format!("flow-{alg}").to_lowercase())
            );
            run_with(&dir, &env, &["keygen", "--key", &uri, "--alg", alg]);
            keys.push(BackendKey {
                name: format!("azure-{alg}"),
                uri,
                alg: alg.to_owned(),
            });
        }
        groups.push((keys, env));
    }
    if let Some(d) = gcp::double() {
        // Application Default Credentials: a service account key file whose token_uri is the
        // double's token endpoint.
        let env = vec![(
            "GOOGLE_APPLICATION_CREDENTIALS".to_owned(),
            d.service_account.display().to_string(),
        )];
        let ring = "projects/pkjwt-flow/locations/global/keyRings/flow";
        gcp::control(d, "POST", "/_pkjwt/key-ring", Some(json!({ "name": ring })));
        let mut keys = Vec::new();
        for alg in ["ES256", "ES384", "PS256", "RS256", "EdDSA"] {
            let uri = format!(
                "gcpkms:{ring}/cryptoKeys/{}/cryptoKeyVersions/1;endpoint={}",
                gcp::key_id(&format!("flow-{alg}").to_lowercase()),
                d.endpoint()
            );
            run_with(&dir, &env, &["keygen", "--key", &uri, "--alg", alg]);
            keys.push(BackendKey {
                name: format!("gcp-{alg}"),
                uri,
                alg: alg.to_owned(),
            });
        }
        groups.push((keys, env));
    }
    if groups.is_empty() {
        return;
    }
    // One `pkjwt serve` per key, started one after the other (SoftHSM logins from several
    // processes at the same moment are unreliable; test-peers.md). Served without --alg, as a
    // user would: oidc-provider picks keys by the JWK's `alg`, so each key's published JWK must
    // fit the client's algorithm by itself — an EC key's carries its curve's, an RSA key's none
    // (a JWK pinned to PS256 was not found for RS256 assertions).
    let mut servers = Vec::new();
    let mut clients = Vec::new();
    for (keys, env) in &groups {
        for k in keys {
            let s = Serve::start_with(&dir, &["--key", &k.uri], env);
            clients.push(client_metadata(&k.name, &s.1, &k.alg, "accounts:read"));
            servers.push(s);
        }
    }
    let api = "https://api.example.com";
    let Some(op) = OidcProvider::start(&json!({
        "clients": clients,
        "resources": { api: { "scope": "accounts:read" }, "https://other.example.com": { "scope": "accounts:read" } },
    })) else {
        return;
    };
    let validator = pkjwt_verify::AccessTokenValidator::discover(
        &op.issuer,
        api,
        pkjwt_verify::AccessTokenPolicy::default(),
        pkjwt_verify::FetchPolicy::default(),
    )
    .await
    .unwrap();
    for (keys, env) in &groups {
        for k in keys {
            let base = [
                "token",
                "--key",
                &k.uri,
                "--alg",
                &k.alg,
                "--client-id",
                &k.name,
                "--issuer",
                &op.issuer,
                "--scope",
                "accounts:read",
            ];
            let out = run_with(&dir, env, &[&base[..], &["--resource", api]].concat());
            let claims = validator
                .validate(out.trim())
                .await
                .unwrap_or_else(|e| panic!("{}: {e:?}; {:?}", k.name, op.grant_errors()));
            assert_eq!(claims.client_id, k.name);
            let other = run_with(
                &dir,
                env,
                &[&base[..], &["--resource", "https://other.example.com"]].concat(),
            );
            assert!(
                validator.validate(other.trim()).await.is_err(),
                "{}: a token for another audience was accepted",
                k.name
            );
        }
    }
    drop(servers);
    std::fs::remove_dir_all(&dir).ok();
}

/// `pkjwt rotate` generating the next key in the backend: PKCS#11 (a new object on the SoftHSM
/// token), AWS KMS (a new key under a new alias), Azure Key Vault (a new key, recorded with
/// its version) and Cloud KMS (a new key in the key ring), then `pkjwt serve` publishing both.
#[cfg(all(feature = "pkcs11", feature = "aws-kms"))]
#[test]
fn rotate_generates_next_keys_in_softhsm_and_kms() {
    let dir = tmpdir("rotate-backends");
    let mut cases: Vec<(String, String, Env)> = Vec::new();
    if let Some((keys, env)) = softhsm_keys(&dir) {
        // Same token, new objects: take the URI of an existing key and change the object.
        let base = &keys[0].uri;
        let (path, query) = base.split_once('?').unwrap();
        let token_part: Vec<&str> = path
            .trim_start_matches("pkcs11:")
            .split(';')
            .filter(|a| a.starts_with("token="))
            .collect();
        let uri = |obj: &str| format!("pkcs11:{};object={obj}?{query}", token_part[0]);
        cases.push((uri("rot-1"), uri("rot-2"), env));
    }
    if let Some(d) = kms::double() {
        let env = vec![
            ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
            ("AWS_REGION".to_owned(), kms::REGION.to_owned()),
        ];
        let uri = |tag: &str| {
            format!(
                "awskms:key-id={};region={};endpoint={}",
                kms::alias(tag),
                kms::REGION,
                d.endpoint()
            )
        };
        cases.push((uri("rot-1"), uri("rot-2"), env));
    }
    if let Some(d) = azure::double() {
        let uri = |tag: &str| format!("azurekv:{}/keys/{}", d.base(), azure::name(tag));
        cases.push((uri("rot-1"), uri("rot-2"), azure_env(d)));
    }
    if let Some(d) = gcp::double() {
        // Cloud KMS: the next key is a new crypto key (its version 1) in the same key ring.
        let env = vec![(
            "GOOGLE_APPLICATION_CREDENTIALS".to_owned(),
            d.service_account.display().to_string(),
        )];
        let ring = "projects/pkjwt-flow/locations/global/keyRings/rotate";
        gcp::control(d, "POST", "/_pkjwt/key-ring", Some(json!({ "name": ring })));
        let uri = |tag: &str| {
            format!(
                "gcpkms:{ring}/cryptoKeys/{}/cryptoKeyVersions/1;endpoint={}",
                gcp::key_id(tag),
                d.endpoint()
            )
        };
        cases.push((uri("rot-1"), uri("rot-2"), env));
    }
    for (i, (first, next, env)) in cases.iter().enumerate() {
        let state = format!("state-{i}.json");
        let st = ["rotate", "--state", state.as_str()];
        let v: Value = serde_json::from_str(&run_with(
            &dir,
            env,
            &[
                &st[..],
                &["init", "--key", first, "--generate", "--alg", "ES256"],
            ]
            .concat(),
        ))
        .unwrap();
        let kid1 = v["signing_kid"].as_str().unwrap().to_owned();
        let v: Value = serde_json::from_str(&run_with(
            &dir,
            env,
            &[
                &st[..],
                &[
                    "begin",
                    "--key",
                    next,
                    "--generate",
                    "--alg",
                    "ES256",
                    "--prepublish",
                    "61",
                ],
            ]
            .concat(),
        ))
        .unwrap();
        let kid2 = v["keys"][1]["kid"].as_str().unwrap().to_owned();
        assert_ne!(kid1, kid2, "a new key in the backend");
        assert_eq!(v["keys"][1]["phase"], "pre-published");
        // PKCS#11: the URI names the new object; AWS KMS: the URI names the new key by ARN and
        // the alias it was created with is recorded.
        let entry = &v["keys"][1];
        assert!(
            entry["uri"].as_str().unwrap().contains("rot-2")
                || (entry["uri"].as_str().unwrap().contains(":key/")
                    && entry["alias"].as_str().unwrap().contains("rot-2")),
            "{v}"
        );
        // Azure Key Vault: the URI names the version created, so a newer current version in
        // the vault never changes the key behind the published kid.
        if next.starts_with("azurekv:") {
            let stored = entry["uri"].as_str().unwrap();
            let version = stored.rsplit('/').next().unwrap();
            assert!(
                stored.starts_with(&format!("{next}/"))
                    && version.len() == 32
                    && version.chars().all(|c| c.is_ascii_hexdigit()),
                "{v}"
            );
        }
        let s = Serve::start_with(&dir, &["--state", &state], env);
        assert_eq!(kids(&get(&s.1).2), [kid1, kid2]);
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// The AWS KMS alias swap: `begin` with the alias the clients use creates a new key without an
/// alias, `apply` leaves the alias alone until the new key signs and then moves it (once);
/// every state entry keeps reaching its own key by ARN throughout.
#[cfg(feature = "aws-kms")]
#[test]
fn kms_rotation_swaps_the_alias_when_the_next_key_signs() {
    let Some(d) = kms::double() else { return };
    let dir = tmpdir("alias-swap");
    let env = vec![
        ("AWS_ACCESS_KEY_ID".to_owned(), "test".to_owned()),
        ("AWS_SECRET_ACCESS_KEY".to_owned(), "test".to_owned()),
        ("AWS_REGION".to_owned(), kms::REGION.to_owned()),
    ];
    let alias = kms::alias("swap");
    let uri = format!(
        "awskms:key-id={alias};region={};endpoint={}",
        kms::REGION,
        d.endpoint()
    );
    let thumbprint = |key: &str| {
        run_with(
            &dir,
            &env,
            &["pubkey", "--key", key, "--format", "thumbprint"],
        )
        .trim()
        .to_owned()
    };
    let st = ["rotate", "--state", "state.json"];
    let init = [
        &st[..],
        &["init", "--key", &uri, "--generate", "--alg", "ES256"],
    ]
    .concat();
    let v: Value = serde_json::from_str(&run_with(&dir, &env, &init)).unwrap();
    let kid1 = v["signing_kid"].as_str().unwrap().to_owned();
    let uri1 = v["keys"][0]["uri"].as_str().unwrap().to_owned();
    assert!(uri1.contains(":key/"), "stored by key ARN: {uri1}");
    assert_eq!(v["keys"][0]["alias"], alias.as_str());
    assert_eq!(thumbprint(&uri), kid1);

    // An alias that names another application's key is never taken over.
    let other = format!(
        "awskms:key-id={};region={};endpoint={}",
        kms::alias("not-ours"),
        kms::REGION,
        d.endpoint()
    );
    run_with(&dir, &env, &["keygen", "--key", &other]);
    let e = fails_with(
        &dir,
        &env,
        &[
            &st[..],
            &[
                "begin",
                "--key",
                &other,
                "--generate",
                "--prepublish",
                "4",
                "--server-cache",
                "1",
            ],
        ]
        .concat(),
    );
    assert!(e.contains("refusing to take the alias over"), "{e}");

    let begin = [
        &st[..],
        &[
            "begin",
            "--key",
            &uri,
            "--generate",
            "--alg",
            "ES256",
            "--prepublish",
            "4",
            "--server-cache",
            "1",
        ],
    ]
    .concat();
    let (out, err) = run_with_stderr(&dir, &env, &begin);
    assert!(
        err.contains("pkjwt rotate apply") && err.contains(&alias),
        "{err}"
    );
    let v: Value = serde_json::from_str(&out).unwrap();
    let kid2 = v["keys"][1]["kid"].as_str().unwrap().to_owned();
    let uri2 = v["keys"][1]["uri"].as_str().unwrap().to_owned();
    assert_ne!(kid1, kid2);
    assert_ne!(uri1, uri2);
    assert_eq!(v["keys"][1]["alias"], alias.as_str());
    assert_eq!(v["keys"][1]["phase"], "pre-published");

    // Before the switch the alias stays with the signing key, and a second rotation is refused
    // before any key is created.
    let begun = std::time::Instant::now();
    let apply = [&st[..], &["apply"]].concat();
    let (_, err) = run_with_stderr(&dir, &env, &apply);
    assert!(err.contains("already points"), "{err}");
    assert_eq!(thumbprint(&uri), kid1);
    let e = fails_with(&dir, &env, &begin);
    assert!(e.contains("rotation is in progress"), "{e}");
    assert!(
        begun.elapsed() < std::time::Duration::from_secs(4),
        "the machine is too slow for this test's 4 s pre-publication"
    );

    std::thread::sleep(std::time::Duration::from_millis(4500));
    let (out, err) = run_with_stderr(&dir, &env, &apply);
    assert!(err.contains(&format!("moved {alias} from")), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["signing_kid"], kid2.as_str());
    assert_eq!(thumbprint(&uri), kid2, "the alias names the new key");
    assert_eq!(
        thumbprint(&uri1),
        kid1,
        "the old key stays reachable for the overlap"
    );
    let (_, err) = run_with_stderr(&dir, &env, &apply);
    assert!(err.contains("already points"), "idempotent: {err}");

    // Guard rails: --swap-alias takes alias/NAME, and only for KMS keys.
    let bad = [
        &st[..],
        &[
            "begin",
            "--key",
            &uri1,
            "--swap-alias",
            "payments",
            "--prepublish",
            "2",
            "--server-cache",
            "1",
        ],
    ]
    .concat();
    let e = fails_with(&dir, &env, &bad);
    assert!(e.contains("payments is not an alias"), "{e}");
    std::fs::remove_dir_all(&dir).ok();
}
