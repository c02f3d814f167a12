//! The `pkjwt` command's interface, which scripts rely on: output shapes, exit codes, error
//! lines, environment variables — and assertions verified by an independent JOSE library
//! (PyJWT, installed into `.venv` by `infra/ci/setup.sh`).

#![allow(clippy::unwrap_used)]

mod common;
use common::*;
mod serve_helper;

use std::path::Path;
use std::process::{Command, Stdio};

use serde_json::Value;

fn decode_part(jwt: &str, i: usize) -> Value {
    let part = jwt.split('.').nth(i).unwrap();
    serde_json::from_slice(&pkjwt_core_b64(part)).unwrap()
}

fn pkjwt_core_b64(s: &str) -> Vec<u8> {
    // Small base64url decoder so the test does not lean on the code under test.
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in s.bytes() {
        let v = alphabet.iter().position(|a| *a == c).unwrap() as u32;
        bits = (bits << 6) | v;
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push((bits >> n) as u8);
        }
    }
    out
}

#[test]
fn version_lists_backends() {
    let v = ok(&tmpdir("v"), &["--version"]);
    assert!(
        v.starts_with("pkjwt ") && v.contains("backends: file"),
        "{v}"
    );
}

#[test]
fn keygen_pubkey_assert_for_every_algorithm() {
    let dir = tmpdir("all");
    for alg in [
        "ES256", "ES384", "ES512", "ES256K", "PS256", "PS384", "PS512", "RS256", "RS384", "RS512",
        "EdDSA",
    ] {
        let key = format!("file:{alg}.pem");
        let made: Value =
            serde_json::from_str(&ok(&dir, &["keygen", "--key", &key, "--alg", alg])).unwrap();
        // An RSA key signs RS* and PS* alike: its JWK pins an alg only when asked for.
        let rsa = alg.starts_with("RS") || alg.starts_with("PS");
        if rsa {
            assert!(made.get("alg").is_none(), "{made}");
        } else {
            assert_eq!(made["alg"], alg);
        }
        assert!(
            made.get("d").is_none(),
            "keygen must print only the public key"
        );
        let jwk: Value =
            serde_json::from_str(&ok(&dir, &["pubkey", "--key", &key, "--alg", alg])).unwrap();
        assert_eq!(jwk["alg"], alg);
        let mut unpinned = jwk.clone();
        if rsa {
            unpinned.as_object_mut().unwrap().remove("alg");
        }
        assert_eq!(unpinned, made);
        let thumb = ok(&dir, &["pubkey", "--key", &key, "--format", "thumbprint"]);
        assert_eq!(thumb.trim(), jwk["kid"]);
        let jwks: Value = serde_json::from_str(&ok(
            &dir,
            &["pubkey", "--key", &key, "--format", "jwks", "--alg", alg],
        ))
        .unwrap();
        assert_eq!(jwks["keys"][0], jwk);
        let pem = ok(&dir, &["pubkey", "--key", &key, "--format", "pem"]);
        assert!(pem.starts_with("-----BEGIN PUBLIC KEY-----\n"));
        std::fs::write(dir.join(format!("{alg}.jwk")), jwk.to_string()).unwrap();

        let jwt = ok(
            &dir,
            &[
                "assert",
                "--key",
                &key,
                "--client-id",
                "cli-client",
                "--aud",
                "https://as.example",
                "--alg",
                alg,
            ],
        );
        assert_eq!(jwt.lines().count(), 1, "the JWT alone on stdout");
        let jwt = jwt.trim();
        assert_eq!(jwt.split('.').count(), 3);
        let header = decode_part(jwt, 0);
        assert_eq!(header["alg"], alg);
        assert_eq!(header["typ"], "client-authentication+jwt");
        assert_eq!(header["kid"], jwk["kid"]);
        let claims = decode_part(jwt, 1);
        assert_eq!(claims["aud"], "https://as.example");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            60
        );
        pyjwt_verify(&dir.join(format!("{alg}.jwk")), alg, jwt);
    }
}

/// An RSA key made for RS256 (Keycloak's default) publishes a JWK that strict verifiers accept
/// RS256 assertions with: no `alg` unless asked for, so RS256 and PS256 both verify; a JWK
/// pinned with `pubkey --alg` verifies that algorithm only. Two independent libraries check.
#[test]
fn rsa_key_made_for_rs256_verifies_with_strict_jose_libraries() {
    let dir = tmpdir("rsa-rs256");
    let o = pkjwt(&dir, &["keygen", "--key", "file:rs.pem", "--alg", "RS256"]);
    assert!(o.status.success());
    let made: Value = serde_json::from_slice(&o.stdout).unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(made.get("alg").is_none(), "{made}");
    assert!(
        said.contains("carries no alg") && said.contains("--alg RS256") && said.contains("PS256"),
        "keygen must say what it did: {said}"
    );
    let o = pkjwt(&dir, &["pubkey", "--key", "rs.pem", "--format", "jwks"]);
    assert!(o.status.success());
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("carries no alg") && said.contains("--alg RS256"),
        "pubkey must say why alg is left out: {said}"
    );
    let jwks = dir.join("jwks.json");
    std::fs::write(&jwks, &o.stdout).unwrap();
    let published: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(published["keys"][0].get("alg").is_none(), "{published}");
    assert_eq!(published["keys"][0]["kid"], made["kid"]);

    let sign = |alg: &str| {
        ok(
            &dir,
            &[
                "assert",
                "--key",
                "rs.pem",
                "--client-id",
                "c",
                "--aud",
                "https://as",
                "--alg",
                alg,
            ],
        )
    };
    let (rs, ps) = (sign("RS256"), sign("PS256"));
    for (alg, jwt) in [("RS256", &rs), ("PS256", &ps)] {
        if let Some(r) = jose_verify(&jwks, alg, jwt) {
            r.unwrap_or_else(|e| panic!("{alg} with the published JWKS: {e}"));
        }
    }

    // Asked for, the alg is pinned: RS256 verifies, PS256 is refused by both libraries (which
    // shows that they do select keys by alg).
    let pinned = dir.join("pinned.json");
    let o = pkjwt(
        &dir,
        &[
            "pubkey", "--key", "rs.pem", "--format", "jwks", "--alg", "RS256",
        ],
    );
    assert!(o.status.success() && o.stderr.is_empty());
    std::fs::write(&pinned, &o.stdout).unwrap();
    if let Some(r) = jose_verify(&pinned, "RS256", &rs) {
        r.unwrap();
    }
    if let Some(r) = jose_verify(&pinned, "PS256", &ps) {
        let e = r.unwrap_err();
        assert!(e.contains("joserfc") && e.contains("jwcrypto"), "{e}");
    }
    // An EC key's curve fixes its algorithm: pinned without being asked, and no note.
    ok(&dir, &["keygen", "--key", "ec.pem", "--alg", "ES256"]);
    let o = pkjwt(&dir, &["pubkey", "--key", "ec.pem"]);
    let jwk: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(jwk["alg"], "ES256");
    assert!(o.stderr.is_empty());
}

#[test]
fn assert_options() {
    let dir = tmpdir("opts");
    ok(&dir, &["keygen", "--key", "k.pem"]);
    let j: Value = serde_json::from_str(&ok(
        &dir,
        &[
            "assert",
            "--key",
            "k.pem",
            "--client-id",
            "c",
            "--aud",
            "https://as/token",
            "--aud",
            "https://as",
            "--typ",
            "JWT",
            "--kid",
            "my-kid",
            "--lifetime",
            "120",
            "--claim",
            "scope=payments",
            "--claim",
            "n=5",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(j["header"]["typ"], "JWT");
    assert_eq!(j["header"]["kid"], "my-kid");
    assert_eq!(
        j["claims"]["aud"],
        serde_json::json!(["https://as/token", "https://as"])
    );
    assert_eq!(j["claims"]["scope"], "payments");
    assert_eq!(j["claims"]["n"], 5);
    assert_eq!(
        j["claims"]["exp"].as_i64().unwrap() - j["claims"]["iat"].as_i64().unwrap(),
        120
    );
    assert_eq!(decode_part(j["jwt"].as_str().unwrap(), 1), j["claims"]);
    let j: Value = serde_json::from_str(&ok(
        &dir,
        &[
            "assert",
            "--key",
            "k.pem",
            "--client-id",
            "c",
            "--aud",
            "https://as",
            "--no-typ",
            "--no-kid",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(j["header"], serde_json::json!({"alg": "ES256"}));
    // Two assertions never share a jti.
    let a = ok(
        &dir,
        &[
            "assert",
            "--key",
            "k.pem",
            "--client-id",
            "c",
            "--aud",
            "https://as",
        ],
    );
    let b = ok(
        &dir,
        &[
            "assert",
            "--key",
            "k.pem",
            "--client-id",
            "c",
            "--aud",
            "https://as",
        ],
    );
    assert_ne!(
        decode_part(a.trim(), 1)["jti"],
        decode_part(b.trim(), 1)["jti"]
    );
}

#[test]
fn options_from_environment() {
    let dir = tmpdir("env");
    ok(&dir, &["keygen", "--key", "k.pem", "--alg", "EdDSA"]);
    let o = Command::new(BIN)
        .args(["assert", "--json"])
        .current_dir(&dir)
        .env("PKJWT_KEY", "file:k.pem")
        .env("PKJWT_CLIENT_ID", "env-client")
        .env("PKJWT_AUD", "https://issuer.example")
        .env("PKJWT_LIFETIME", "30")
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let j: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["claims"]["iss"], "env-client");
    assert_eq!(
        j["claims"]["exp"].as_i64().unwrap() - j["claims"]["iat"].as_i64().unwrap(),
        30
    );
}

#[test]
fn user_mistakes_get_one_line_errors() {
    let dir = tmpdir("err");
    ok(&dir, &["keygen", "--key", "ec.pem"]);
    let base = [
        "assert",
        "--key",
        "ec.pem",
        "--client-id",
        "c",
        "--aud",
        "https://as",
    ];
    let with = |extra: &[&'static str]| [&base[..], extra].concat();
    let cases: Vec<(Vec<&str>, &str)> = vec![
        (
            with(&["--alg", "PS256"]),
            "PS256 cannot be used with an EC P-256 key; this key can sign with ES256",
        ),
        (with(&["--lifetime", "3600"]), "exceeds the maximum of 600s"),
        (with(&["--lifetime", "0"]), "at least 1 second"),
        (
            with(&["--claim", "jti=x"]),
            "\"jti\" is set by pkjwt itself",
        ),
        (with(&["--claim", "novalue"]), "expected NAME=VALUE"),
        (
            vec![
                "assert",
                "--key",
                "missing.pem",
                "--client-id",
                "c",
                "--aud",
                "https://as",
            ],
            "missing.pem: No such file",
        ),
        (
            vec!["pubkey", "--key", "ocikms:projects/x"],
            "unknown scheme",
        ),
        (
            vec!["pubkey", "--key", "file:ec.pem?passphrase=hunter2"],
            "would put a secret",
        ),
        (vec!["keygen", "--key", "ec.pem"], "refusing to overwrite"),
    ];
    for (args, want) in cases {
        let e = fails(&dir, &args);
        assert!(e.contains(want), "{args:?}: {e} (wanted {want:?})");
        assert!(!e.contains("hunter2"), "a secret was echoed: {e}");
    }
    // Usage errors are clap's: exit 2, with the reason.
    assert_eq!(
        pkjwt(&dir, &["assert", "--key", "ec.pem"]).status.code(),
        Some(2)
    );
    let o = pkjwt(&dir, &with(&["--alg", "es256"]));
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("did you mean ES256"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("ec.pem"), std::fs::Permissions::from_mode(0o644))
            .unwrap();
        let e = fails(&dir, &["pubkey", "--key", "ec.pem"]);
        assert!(e.contains("mode 0644") && e.contains("chmod 600"), "{e}");
        ok(
            &dir,
            &[
                "pubkey",
                "--key",
                "ec.pem",
                "--allow-insecure-key-permissions",
            ],
        );
    }
}

#[test]
fn backends_left_out_say_so() {
    let dir = tmpdir("nb");
    let version = ok(&dir, &["--version"]);
    if !version.contains("pkcs11") {
        // The pin-value warning comes first, so not `fails` (one line): the error is the last
        // line, and the PIN is on none of them.
        let o = run(
            &dir,
            &["pubkey", "--key", "pkcs11:token=t;object=o?pin-value=1234"],
            &[],
        );
        let e = String::from_utf8(o.stderr).unwrap();
        assert_eq!(o.status.code(), Some(1), "{e}");
        let last = e.lines().last().unwrap_or("");
        assert!(
            last.starts_with("pkjwt: error: ") && last.contains("built without PKCS#11 support"),
            "{e}"
        );
        assert!(!e.contains("1234"), "{e}");
    }
    if !version.contains("gcp-kms") {
        let e = fails(
            &dir,
            &[
                "pubkey",
                "--key",
                "gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
            ],
        );
        assert!(e.contains("built without") && e.contains("gcp-kms"), "{e}");
    }
    if !version.contains("aws-kms") {
        let e = fails(
            &dir,
            &["pubkey", "--key", "awskms:key-id=alias/x;region=eu-west-1"],
        );
        assert!(e.contains("built without AWS KMS support"), "{e}");
    }
    if !version.contains("azure-kv") {
        let e = fails(
            &dir,
            &[
                "pubkey",
                "--key",
                "azurekv:https://v.vault.azure.net/keys/k",
            ],
        );
        assert!(
            e.contains("built without Azure Key Vault support") && e.contains("azure-kv"),
            "{e}"
        );
    }
}

#[test]
fn closed_stdout_is_not_an_error() {
    let dir = tmpdir("pipe");
    ok(&dir, &["keygen", "--key", "k.pem"]);
    let mut child = Command::new(BIN)
        .args(["pubkey", "--key", "k.pem", "--format", "jwks"])
        .current_dir(&dir)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let o = child.wait_with_output().unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).is_empty(),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// Verifies with PyJWT. Missing Python environment: a failure under PKJWT_REQUIRE_PEERS=1.
fn pyjwt_verify(jwk: &Path, alg: &str, jwt: &str) {
    let Some((root, python)) = venv_python("PyJWT cross-check") else {
        return;
    };
    let mut child = Command::new(python)
        .arg(root.join("infra/ci/pyjwt_verify.py"))
        .args([
            jwk.to_str().unwrap(),
            alg,
            "cli-client",
            "https://as.example",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(jwt.as_bytes())
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(
        o.status.success(),
        "{alg}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
}

/// `k.pem` (of `alg`, or the default) in `dir`, and its public key set as `jwks.json`.
fn key_and_jwks(dir: &Path, alg: Option<&str>) {
    let mut args = vec!["keygen", "--key", "k.pem"];
    args.extend(alg.iter().flat_map(|a| ["--alg", a]));
    ok(dir, &args);
    std::fs::write(
        dir.join("jwks.json"),
        ok(dir, &["pubkey", "--key", "k.pem", "--format", "jwks"]),
    )
    .unwrap();
}

#[test]
fn verify_accepts_and_explains_refusals() {
    let dir = tmpdir("verify");
    key_and_jwks(&dir, Some("PS256"));
    let jwt = ok(
        &dir,
        &[
            "assert",
            "--key",
            "k.pem",
            "--client-id",
            "c",
            "--aud",
            "https://as.example",
        ],
    );
    let jwt = jwt.trim();
    let report = ok(
        &dir,
        &[
            "verify",
            "--jwks",
            "jwks.json",
            "--client-id",
            "c",
            "--aud",
            "https://as.example",
            jwt,
        ],
    );
    assert!(
        report.contains("✓ signature") && report.trim_end().ends_with("accepted"),
        "{report}"
    );
    // Each refusal: exit 1, the report on stdout, one line on stderr naming the claim at fault.
    for (args, want) in [
        (
            vec!["--client-id", "c", "--aud", "https://as.example/"],
            "claim \"aud\"",
        ),
        (
            vec!["--client-id", "d", "--aud", "https://as.example"],
            "claim \"iss\"",
        ),
        (
            vec![
                "--client-id",
                "c",
                "--aud",
                "https://as.example",
                "--alg",
                "ES256",
            ],
            "alg",
        ),
        (
            vec![
                "--client-id",
                "c",
                "--aud",
                "https://as.example",
                "--max-lifetime",
                "30",
            ],
            "claim \"exp\"",
        ),
    ] {
        let mut full = vec!["verify", "--jwks", "jwks.json"];
        full.extend(args);
        full.push(jwt);
        let o = pkjwt(&dir, &full);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{full:?}: {err}");
        assert!(
            err.starts_with("pkjwt: refused: ") && err.contains(want),
            "{full:?}: {err}"
        );
    }
    // A tampered signature.
    let mut bad = jwt.to_string();
    let last = bad.pop().unwrap();
    bad.push(if last == 'A' { 'B' } else { 'A' });
    let o = pkjwt(
        &dir,
        &[
            "verify",
            "--jwks",
            "jwks.json",
            "--client-id",
            "c",
            "--aud",
            "https://as.example",
            &bad,
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stderr).contains("signature"));
    // JSON report.
    let j: Value = serde_json::from_str(&ok(
        &dir,
        &[
            "verify",
            "--jwks",
            "jwks.json",
            "--client-id",
            "c",
            "--aud",
            "https://as.example",
            "--json",
            jwt,
        ],
    ))
    .unwrap();
    assert!(j.is_object(), "{j}");
}

#[test]
fn cert_csr_and_x5c() {
    let dir = tmpdir("cert");
    ok(&dir, &["keygen", "--key", "k.pem", "--alg", "ES384"]);
    let pem = ok(
        &dir,
        &[
            "cert",
            "--key",
            "k.pem",
            "--subject",
            "CN=client,O=Example,C=GB",
            "--san",
            "dns:client.example",
            "--days",
            "10",
        ],
    );
    assert!(
        pem.starts_with("-----BEGIN CERTIFICATE-----\n")
            && pem.trim_end().ends_with("-----END CERTIFICATE-----")
    );
    assert_eq!(pem.matches("-----BEGIN").count(), 1, "PEM alone on stdout");
    std::fs::write(dir.join("c.pem"), &pem).unwrap();
    let csr = ok(
        &dir,
        &["cert", "--key", "k.pem", "--subject", "CN=client", "--csr"],
    );
    assert!(csr.starts_with("-----BEGIN CERTIFICATE REQUEST-----\n"));
    ok(
        &dir,
        &[
            "cert",
            "--key",
            "k.pem",
            "--subject",
            "CN=client",
            "--der",
            "--out",
            "c.der",
        ],
    );
    assert_eq!(std::fs::read(dir.join("c.der")).unwrap()[0], 0x30);
    let e = fails(
        &dir,
        &[
            "cert",
            "--key",
            "k.pem",
            "--subject",
            "CN=client",
            "--der",
            "--out",
            "c.der",
        ],
    );
    assert!(e.contains("c.der"), "{e}");

    // pubkey --cert: x5c (standard base64 DER) and x5t#S256.
    let jwk: Value = serde_json::from_str(&ok(
        &dir,
        &["pubkey", "--key", "k.pem", "--cert", "c.pem", "--x5t-sha1"],
    ))
    .unwrap();
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    assert_eq!(jwk["x5c"][0], body);
    assert_eq!(jwk["x5t#S256"].as_str().unwrap().len(), 43);
    assert_eq!(jwk["x5t"].as_str().unwrap().len(), 27);
    // assert --cert puts x5t#S256 (and x5c on request) in the header.
    let j: Value = serde_json::from_str(&ok(
        &dir,
        &[
            "assert",
            "--key",
            "k.pem",
            "--client-id",
            "c",
            "--aud",
            "https://as",
            "--cert",
            "c.pem",
            "--x5c",
            "--json",
        ],
    ))
    .unwrap();
    assert_eq!(j["header"]["x5t#S256"], jwk["x5t#S256"]);
    assert_eq!(j["header"]["x5c"][0], body);
    // Without a certificate anywhere, --x5c has nothing to send.
    let e = fails(
        &dir,
        &[
            "assert",
            "--key",
            "k.pem",
            "--client-id",
            "c",
            "--aud",
            "https://as",
            "--x5c",
        ],
    );
    assert!(e.contains("--cert"), "{e}");
    // A certificate for another key is refused.
    ok(&dir, &["keygen", "--key", "other.pem", "--alg", "EdDSA"]);
    let e = fails(&dir, &["pubkey", "--key", "other.pem", "--cert", "c.pem"]);
    assert!(e.contains("not the signer's"), "{e}");
    for (args, want) in [
        (vec!["--subject", "nonsense"], "RFC 4514"),
        (
            vec!["--subject", "CN=a", "--san", "smtp:x"],
            "unknown SAN type",
        ),
        (vec!["--subject", "CN=a", "--days", "0"], "between 1 and"),
        (vec!["--subject", "CN=a", "--days", "-3"], "-3 days"),
    ] {
        let mut full = vec!["cert", "--key", "k.pem"];
        full.extend(args);
        let e = fails(&dir, &full);
        assert!(e.contains(want), "{full:?}: {e}");
    }
}

#[test]
fn pkcs12_keystores() {
    let dir = tmpdir("p12");
    let openssl = |args: &[&str]| {
        let o = Command::new("openssl")
            .args(args)
            .current_dir(&dir)
            .env("P12PW", "s3cret pw")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        String::from_utf8_lossy(&o.stdout).to_string()
    };
    let with_pw = |args: &[&str]| {
        let o = Command::new(BIN)
            .args(args)
            .current_dir(&dir)
            .env("P12PW", "s3cret pw")
            .output()
            .unwrap();
        (
            o.status.code(),
            String::from_utf8_lossy(&o.stdout).to_string(),
            String::from_utf8_lossy(&o.stderr).to_string(),
        )
    };
    // A keystore written by pkjwt: AES-256/PBKDF2, opens in openssl with the same key and cert.
    let (code, out, err) = with_pw(&[
        "keygen",
        "--key",
        "file:client.p12?password-source=env:P12PW",
        "--alg",
        "ES256",
    ]);
    assert_eq!(code, Some(0), "{err}");
    let jwk: Value = serde_json::from_str(&out).unwrap();
    let info = Command::new("openssl")
        .args([
            "pkcs12",
            "-in",
            "client.p12",
            "-passin",
            "env:P12PW",
            "-info",
            "-nodes",
        ])
        .current_dir(&dir)
        .env("P12PW", "s3cret pw")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&info.stdout),
        String::from_utf8_lossy(&info.stderr)
    );
    assert!(
        info.status.success() && text.contains("AES-256-CBC") && text.contains("BEGIN CERTIFICATE"),
        "{text}"
    );
    std::fs::write(dir.join("from-p12.pem"), &text).unwrap();
    let spki = openssl(&["pkey", "-in", "from-p12.pem", "-pubout"]);
    let (_, pem, _) = with_pw(&[
        "pubkey",
        "--key",
        "file:client.p12?password-source=env:P12PW",
        "--format",
        "pem",
    ]);
    assert_eq!(spki, pem);
    // The keystore's certificate feeds x5c / x5t#S256.
    let (_, out, _) = with_pw(&[
        "pubkey",
        "--key",
        "file:client.p12?password-source=env:P12PW",
    ]);
    let pub_jwk: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pub_jwk["kid"], jwk["kid"]);
    assert!(
        pub_jwk["x5c"][0].as_str().unwrap().starts_with("MII"),
        "{pub_jwk}"
    );
    assert!(pub_jwk["x5t#S256"].is_string());
    // ... and the assertion header, without --cert.
    let (_, out, _) = with_pw(&[
        "assert",
        "--key",
        "file:client.p12?password-source=env:P12PW",
        "--client-id",
        "c",
        "--aud",
        "https://as",
        "--x5c",
        "--x5t-sha1",
        "--json",
    ]);
    let j: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(j["header"]["x5t#S256"], pub_jwk["x5t#S256"]);
    assert_eq!(j["header"]["x5c"], pub_jwk["x5c"]);
    assert_eq!(j["header"]["x5t"].as_str().unwrap().len(), 27);

    // Keystores written by openssl: modern (AES) and legacy (3DES), both open and sign.
    openssl(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-out",
        "k.pem",
    ]);
    openssl(&[
        "req", "-x509", "-key", "k.pem", "-subj", "/CN=ossl", "-days", "2", "-out", "c.pem",
    ]);
    openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        "k.pem",
        "-in",
        "c.pem",
        "-passout",
        "env:P12PW",
        "-out",
        "aes.p12",
    ]);
    openssl(&[
        "pkcs12",
        "-export",
        "-inkey",
        "k.pem",
        "-in",
        "c.pem",
        "-passout",
        "env:P12PW",
        "-keypbe",
        "PBE-SHA1-3DES",
        "-certpbe",
        "PBE-SHA1-3DES",
        "-macalg",
        "sha1",
        "-out",
        "3des.p12",
    ]);
    for f in ["aes.p12", "3des.p12"] {
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.join(f), std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        let uri = format!("file:{f}?password-source=env:P12PW");
        let (code, jwt, err) = with_pw(&[
            "assert",
            "--key",
            &uri,
            "--client-id",
            "c",
            "--aud",
            "https://as.example",
        ]);
        assert_eq!(code, Some(0), "{f}: {err}");
        let (_, jwks, _) = with_pw(&["pubkey", "--key", &uri, "--format", "jwks"]);
        std::fs::write(dir.join(format!("{f}.jwks")), jwks).unwrap();
        let (code, _, err) = with_pw(&[
            "verify",
            "--jwks",
            &format!("{f}.jwks"),
            "--client-id",
            "c",
            "--aud",
            "https://as.example",
            jwt.trim(),
        ]);
        assert_eq!(code, Some(0), "{f}: {err}");
    }
    // Wrong password, corrupt file, missing password: specific errors.
    let o = Command::new(BIN)
        .args(["pubkey", "--key", "file:aes.p12?password-source=env:P12PW"])
        .current_dir(&dir)
        .env("P12PW", "wrong")
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("wrong passphrase"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
    let mut bytes = std::fs::read(dir.join("aes.p12")).unwrap();
    bytes.truncate(bytes.len() / 2);
    std::fs::write(dir.join("cut.p12"), bytes).unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.join("cut.p12"), std::fs::Permissions::from_mode(0o600))
            .unwrap();
    }
    let (code, _, err) = with_pw(&["pubkey", "--key", "file:cut.p12?password-source=env:P12PW"]);
    assert!(
        code == Some(1) && err.contains("cut.p12") && err.contains("PKCS#12"),
        "{err}"
    );
    let (code, _, err) = with_pw(&["pubkey", "--key", "aes.p12"]);
    assert!(code == Some(1) && err.contains("password-source"), "{err}");
}

#[test]
fn verify_survives_extreme_timestamps() {
    // Found in review: exp/iat of i64::MIN made the verifier negate i64::MIN.
    let dir = tmpdir("extreme");
    key_and_jwks(&dir, None);
    let b64 = |v: &str| {
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = v.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk
                .iter()
                .enumerate()
                .fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(alphabet[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    for claims in [
        r#"{"iss":"c","sub":"c","aud":"a","exp":-9223372036854775808,"iat":-9223372036854775808,"nbf":-9223372036854775808,"jti":"x"}"#,
        r#"{"iss":"c","sub":"c","aud":"a","exp":9223372036854775807,"iat":9223372036854775807,"jti":"x"}"#,
    ] {
        let jwt = format!(
            "{}.{}.AAAA",
            b64(r#"{"alg":"ES256","typ":"JWT"}"#),
            b64(claims)
        );
        let o = pkjwt(
            &dir,
            &[
                "verify",
                "--jwks",
                "jwks.json",
                "--client-id",
                "c",
                "--aud",
                "a",
                &jwt,
            ],
        );
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(
            !err.contains("panicked") && err.starts_with("pkjwt: refused: "),
            "{err}"
        );
    }
}

/// Backend tuning from the environment: a value out of range is a one-line error naming the
/// variable and the accepted range, before any key is opened; a valid one is accepted.
#[test]
fn backend_tuning_variables_are_checked() {
    let dir = tmpdir("tuning");
    ok(&dir, &["keygen", "--key", "k.pem"]);
    // A backend's variables are read where that backend is built in.
    let mut cases = Vec::new();
    if cfg!(feature = "pkcs11") {
        cases.extend([
            ("PKJWT_PKCS11_POOL_SIZE", "0", "from 1 to 1024"),
            ("PKJWT_PKCS11_MAX_ATTEMPTS", "many", "from 1 to 100"),
        ]);
    }
    if cfg!(feature = "aws-kms") {
        cases.extend([
            ("PKJWT_AWS_KMS_MAX_ATTEMPTS", "-1", "from 1 to 100"),
            ("PKJWT_AWS_KMS_TIMEOUT", "0", "from 1 to 600"),
            ("PKJWT_AWS_KMS_CONNECT_TIMEOUT", "9999", "from 1 to 600"),
        ]);
    }
    for (var, bad, range) in cases {
        let o = Command::new(BIN)
            .args(["pubkey", "--key", "k.pem", "--format", "thumbprint"])
            .current_dir(&dir)
            .env(var, bad)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{var}: {err}");
        assert!(err.contains(var) && err.contains(range), "{err}");
        let o = Command::new(BIN)
            .args(["pubkey", "--key", "k.pem", "--format", "thumbprint"])
            .current_dir(&dir)
            .env(var, "3")
            .output()
            .unwrap();
        assert!(
            o.status.success(),
            "{var}=3: {}",
            String::from_utf8_lossy(&o.stderr)
        );
    }
}

/// Issue 12, item 12: the process that holds PINs and passphrases cannot write a core file
/// (RLIMIT_CORE 0, soft and hard), read here from /proc of a running `pkjwt serve`.
#[cfg(target_os = "linux")]
#[test]
fn core_dumps_are_disabled() {
    let dir = tmpdir("core");
    ok(&dir, &["keygen", "--key", "file:k.pem", "--alg", "ES256"]);
    let serve = serve_helper::Serve::start(&dir, &["--key", "file:k.pem"]);
    let limits = std::fs::read_to_string(format!("/proc/{}/limits", serve.0.id())).unwrap();
    let core = limits
        .lines()
        .find(|l| l.starts_with("Max core file size"))
        .unwrap();
    let fields: Vec<&str> = core.split_whitespace().collect();
    assert_eq!(&fields[4..6], ["0", "0"], "{core}");
}

/// Every command that takes `--key` warns when a PKCS#11 URI carries its PIN (pin-value): it
/// ends up in shell history and process lists. `token`, `serve` and `register` declared `--key`
/// themselves and skipped the warning; they flatten the shared key arguments now. The PIN
/// itself is never printed.
#[test]
fn every_key_taking_command_warns_about_pin_value() {
    let dir = tmpdir("pinvalue");
    let key =
        "pkcs11:token=no-such-token;object=o?module-path=/nonexistent/libnone.so&pin-value=8642";
    let commands: [&[&str]; 7] = [
        &["keygen", "--key", key],
        &["pubkey", "--key", key],
        &["assert", "--key", key, "--client-id", "c", "--aud", "a"],
        &["cert", "--key", key, "--subject", "CN=c"],
        &[
            "token",
            "--key",
            key,
            "--client-id",
            "c",
            "--issuer",
            "http://127.0.0.1:9",
        ],
        &["serve", "--key", key, "--listen", "127.0.0.1:0"],
        &[
            "register",
            "--key",
            key,
            "--issuer",
            "http://127.0.0.1:9",
            "--out",
            "reg.json",
        ],
    ];
    for args in commands {
        let o = pkjwt(&dir, args);
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "pkjwt {}: {err}", args[0]);
        assert!(
            err.contains("pkjwt: warning: the key URI carries pin-value"),
            "pkjwt {}: no pin-value warning: {err}",
            args[0]
        );
        assert!(!err.contains("8642"), "pkjwt {}: {err}", args[0]);
    }
}

/// A JWKS URL on a private address is refused before any connection, and the error names the
/// flag that allows it (the library's message names only `FetchPolicy::allow_private_addresses`).
/// With the flag the address check no longer refuses it; that path is not run here, as it would
/// send traffic to a non-loopback address (the library's address tests cover it).
#[test]
fn verify_refuses_a_private_jwks_host_and_names_the_flag() {
    let dir = tmpdir("verify-private");
    let e = fails(
        &dir,
        &[
            "verify",
            "--jwks",
            "https://10.1.2.3/jwks",
            "--client-id",
            "c",
            "--aud",
            "https://as.example",
            "a.b.c",
        ],
    );
    assert!(
        e.contains("refusing https://10.1.2.3/jwks")
            && e.contains("RFC 1918")
            && e.contains("pass --allow-private-jwks-host"),
        "{e}"
    );
}

/// oidc-provider makes base64url client ids, and one in 64 starts with "-" (a quick start run
/// failed on `-ooH0…`): `--client-id -x` and `--kid -x` take it as the value, in the form with a
/// space as well as with `=`.
#[test]
fn a_client_id_starting_with_a_hyphen_is_a_value() {
    let dir = tmpdir("hyphen");
    key_and_jwks(&dir, Some("ES256"));
    let jwt = ok(
        &dir,
        &[
            "assert",
            "--key",
            "k.pem",
            "--client-id",
            "-ooH0RKAx79",
            "--aud",
            "https://as.example",
        ],
    );
    let claims = jwt.trim().split('.').nth(1).unwrap().to_owned();
    let claims: serde_json::Value =
        serde_json::from_slice(&pkjwt::b64::decode("claims", &claims).unwrap()).unwrap();
    assert_eq!(claims["iss"], "-ooH0RKAx79");
    assert_eq!(claims["sub"], "-ooH0RKAx79");
    let report = ok(
        &dir,
        &[
            "verify",
            "--jwks",
            "jwks.json",
            "--client-id",
            "-ooH0RKAx79",
            "--aud",
            "https://as.example",
            jwt.trim(),
        ],
    );
    assert!(report.trim_end().ends_with("accepted"), "{report}");
    let pubkey = ok(&dir, &["pubkey", "--key", "k.pem", "--kid", "-k1"]);
    assert!(pubkey.contains("\"kid\":\"-k1\""), "{pubkey}");
}
