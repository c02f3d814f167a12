//! The file backend: conformance for every algorithm, every input format, and bad input.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::sync::Arc;

use pkjwt_conformance::check_signer;
use pkjwt_core::{ALL_ALGORITHMS, Algorithm, FileUri, GenerateOptions, KeyUri, Signer};
use pkjwt_file::{FileOptions, FileSigner};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pkjwt-file-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn file_uri(s: &str) -> FileUri {
    match KeyUri::parse(s).unwrap() {
        KeyUri::File(f) => f,
        other => panic!("{other:?}"),
    }
}

fn make_key(dir: &Path, alg: Algorithm) -> FileSigner {
    let path = dir.join(format!("{alg}.pem"));
    pkjwt_file::generate(
        &file_uri(path.to_str().unwrap()),
        alg,
        &GenerateOptions::default(),
    )
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_passes_conformance() {
    let dir = tmpdir("conf");
    for alg in ALL_ALGORITHMS {
        let generated = make_key(&dir, alg);
        assert_eq!(generated.algorithm(), alg);
        // Reopen from disk: the written file is what gets tested.
        let path = dir.join(format!("{alg}.pem"));
        let opened = FileSigner::open(
            &file_uri(path.to_str().unwrap()),
            Some(alg),
            &FileOptions::default(),
        )
        .unwrap();
        assert_eq!(opened.public_key(), generated.public_key());
        check_signer(Arc::new(opened)).await;
    }
}

#[cfg(unix)]
#[test]
fn generated_files_are_private_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmpdir("mode");
    make_key(&dir, Algorithm::ES256);
    let path = dir.join("ES256.pem");
    assert_eq!(
        std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let before = std::fs::read(&path).unwrap();
    let e = pkjwt_file::generate(
        &file_uri(path.to_str().unwrap()),
        Algorithm::ES256,
        &Default::default(),
    )
    .unwrap_err();
    assert!(e.to_string().contains("refusing to overwrite"), "{e}");
    assert_eq!(std::fs::read(&path).unwrap(), before);
}

#[test]
fn default_algorithm_follows_the_key_and_overrides_must_fit() {
    let dir = tmpdir("alg");
    for (alg, default) in [
        (Algorithm::ES256, Algorithm::ES256),
        (Algorithm::ES384, Algorithm::ES384),
        (Algorithm::RS256, Algorithm::PS256),
        (Algorithm::EdDSA, Algorithm::EdDSA),
        (Algorithm::ES256K, Algorithm::ES256K),
    ] {
        make_key(&dir, alg);
        let uri = file_uri(dir.join(format!("{alg}.pem")).to_str().unwrap());
        let s = FileSigner::open(&uri, None, &FileOptions::default()).unwrap();
        assert_eq!(s.algorithm(), default);
    }
    let uri = file_uri(dir.join("ES256.pem").to_str().unwrap());
    let e = FileSigner::open(&uri, Some(Algorithm::PS256), &FileOptions::default()).unwrap_err();
    // The core error is the source of FileError::Key: the chain printer shows both.
    let e = pkjwt_core::display_chain(&e);
    assert!(
        e.contains("PS256 cannot be used with an EC P-256 key"),
        "{e}"
    );
    let uri = file_uri(dir.join("RS256.pem").to_str().unwrap());
    assert_eq!(
        FileSigner::open(&uri, Some(Algorithm::RS512), &FileOptions::default())
            .unwrap()
            .algorithm(),
        Algorithm::RS512
    );
}

/// Keys written by OpenSSL in every format pkjwt reads. The test fails when openssl is missing
/// and PKJWT_REQUIRE_PEERS=1 (CI), and says so loudly otherwise.
#[tokio::test]
async fn openssl_formats_load_and_sign() {
    let Some(openssl) = tool("openssl") else {
        return;
    };
    let dir = tmpdir("openssl");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(&openssl)
            .args(args)
            .current_dir(&dir)
            // The passphrase goes through the environment, never an argument list.
            .env("PKJWT_TEST_PASS", "correct horse")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    // SEC1 EC, PKCS#8 EC, PKCS#1 RSA, PKCS#8 RSA, PKCS#8 Ed25519, encrypted PKCS#8 (AES, PBKDF2).
    run(&[
        "ecparam",
        "-name",
        "prime256v1",
        "-genkey",
        "-noout",
        "-out",
        "sec1.pem",
    ]);
    run(&[
        "ecparam",
        "-name",
        "secp384r1",
        "-genkey",
        "-out",
        "sec1-params.pem",
    ]);
    run(&[
        "pkcs8",
        "-topk8",
        "-nocrypt",
        "-in",
        "sec1.pem",
        "-out",
        "p8-ec.pem",
    ]);
    run(&["genrsa", "-traditional", "-out", "pkcs1.pem", "2048"]);
    run(&[
        "genpkey",
        "-algorithm",
        "RSA",
        "-pkeyopt",
        "rsa_keygen_bits:2048",
        "-out",
        "p8-rsa.pem",
    ]);
    run(&["genpkey", "-algorithm", "ED25519", "-out", "ed.pem"]);
    run(&[
        "genpkey",
        "-algorithm",
        "EC",
        "-pkeyopt",
        "ec_paramgen_curve:P-521",
        "-out",
        "p521.pem",
    ]);
    run(&[
        "pkcs8",
        "-topk8",
        "-v2",
        "aes-256-cbc",
        "-passout",
        "env:PKJWT_TEST_PASS",
        "-in",
        "sec1.pem",
        "-out",
        "enc.pem",
    ]);
    run(&[
        "pkcs8", "-topk8", "-nocrypt", "-outform", "DER", "-in", "sec1.pem", "-out", "p8.der",
    ]);
    for f in [
        "sec1.pem",
        "sec1-params.pem",
        "p8-ec.pem",
        "pkcs1.pem",
        "p8-rsa.pem",
        "ed.pem",
        "p521.pem",
        "enc.pem",
        "p8.der",
    ] {
        let p = dir.join(f);
        std::fs::set_permissions(&p, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        let pass = (f == "enc.pem").then_some("correct horse");
        let s = FileSigner::open_path(&p, pass, None, &FileOptions::default())
            .unwrap_or_else(|e| panic!("{f}: {e}"));
        check_signer_light(Arc::new(s)).await;
    }
    // The key OpenSSL derives the public key from matches ours.
    let out = std::process::Command::new(&openssl)
        .args(["pkey", "-in", "p8-ec.pem", "-pubout"])
        .current_dir(&dir)
        .output()
        .unwrap();
    let s =
        FileSigner::open_path(&dir.join("p8-ec.pem"), None, None, &FileOptions::default()).unwrap();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        s.public_key().to_spki_pem()
    );
    // An encrypted key: no passphrase, wrong passphrase.
    let enc = dir.join("enc.pem");
    let e = FileSigner::open_path(&enc, None, None, &FileOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("encrypted") && e.contains("passphrase-source"),
        "{e}"
    );
    let e = FileSigner::open_path(&enc, Some("wrong"), None, &FileOptions::default())
        .unwrap_err()
        .to_string();
    assert!(e.contains("wrong passphrase"), "{e}");
    // RSA below 2048 bits.
    run(&["genrsa", "-traditional", "-out", "small.pem", "1024"]);
    std::fs::set_permissions(
        dir.join("small.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let e = FileSigner::open_path(&dir.join("small.pem"), None, None, &FileOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("1024 bits") && e.contains("at least 2048"),
        "{e}"
    );
    // An unsupported curve.
    run(&[
        "ecparam",
        "-name",
        "secp224r1",
        "-genkey",
        "-noout",
        "-out",
        "p224.pem",
    ]);
    std::fs::set_permissions(
        dir.join("p224.pem"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let e = FileSigner::open_path(&dir.join("p224.pem"), None, None, &FileOptions::default())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("unsupported EC curve") && e.contains("1.3.132.0.33"),
        "{e}"
    );
}

async fn check_signer_light(s: Arc<dyn Signer>) {
    let a = pkjwt_core::ClientAssertion::new(
        s.clone(),
        pkjwt_core::AssertionOptions::new("c", "https://issuer.example"),
    )
    .unwrap();
    let jwt = a.sign().await.unwrap();
    pkjwt_conformance::verify_independently(&jwt, s.public_key(), s.algorithm()).unwrap();
}

#[tokio::test]
async fn encrypted_keys_written_by_pkjwt_round_trip() {
    let dir = tmpdir("enc");
    let pass_file = dir.join("pass");
    std::fs::write(&pass_file, "s3cret passphrase\n").unwrap();
    std::fs::set_permissions(
        &pass_file,
        <std::fs::Permissions as std::os::unix::fs::PermissionsExt>::from_mode(0o600),
    )
    .unwrap();
    let uri = format!(
        "file:{}?passphrase-source=file:{}",
        dir.join("k.pem").display(),
        pass_file.display()
    );
    let generated =
        pkjwt_file::generate(&file_uri(&uri), Algorithm::EdDSA, &Default::default()).unwrap();
    let text = std::fs::read_to_string(dir.join("k.pem")).unwrap();
    assert!(text.starts_with("-----BEGIN ENCRYPTED PRIVATE KEY-----"));
    let opened = FileSigner::open(&file_uri(&uri), None, &FileOptions::default()).unwrap();
    assert_eq!(opened.public_key(), generated.public_key());
    // And OpenSSL can decrypt it.
    if let Some(openssl) = tool("openssl") {
        let out = std::process::Command::new(openssl)
            .args([
                "pkey",
                "-in",
                dir.join("k.pem").to_str().unwrap(),
                "-passin",
            ])
            .arg(format!("file:{}", pass_file.display()))
            .args(["-pubout"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8(out.stdout).unwrap(),
            opened.public_key().to_spki_pem()
        );
    }
}

#[cfg(unix)]
#[test]
fn bad_input_gets_specific_errors() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tmpdir("bad");
    let write = |name: &str, body: &str, mode: u32| {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    };
    // Printed as a person sees it: the message and its causes (an OS error, a core error).
    let open = |p: &Path| {
        pkjwt_core::display_chain(
            &FileSigner::open_path(p, None, None, &FileOptions::default()).unwrap_err(),
        )
    };
    let cases: Vec<(PathBuf, &str)> = vec![
        (write("garbage.pem", "hello world", 0o600), "no PEM block"),
        (
            write(
                "trunc.pem",
                "-----BEGIN PRIVATE KEY-----\nMIGHAgEA\n",
                0o600,
            ),
            "no matching",
        ),
        (
            write(
                "b64.pem",
                "-----BEGIN PRIVATE KEY-----\n#$%^\n-----END PRIVATE KEY-----\n",
                0o600,
            ),
            "invalid base64",
        ),
        (
            write(
                "asn1.pem",
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                0o600,
            ),
            "malformed PKCS#8",
        ),
        (
            write(
                "pub.pem",
                "-----BEGIN PUBLIC KEY-----\nAAAA\n-----END PUBLIC KEY-----\n",
                0o600,
            ),
            "public material",
        ),
        (
            write(
                "legacy.pem",
                "-----BEGIN EC PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END EC PRIVATE KEY-----\n",
                0o600,
            ),
            "legacy OpenSSL-encrypted",
        ),
        (
            write(
                "jwk-pub.json",
                r#"{"kty":"OKP","crv":"Ed25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#,
                0o600,
            ),
            "public key",
        ),
        (
            write(
                "jwk-short.json",
                r#"{"kty":"EC","crv":"P-256","x":"AQ","y":"AQ","d":"AQ"}"#,
                0o600,
            ),
            "must be 32 bytes",
        ),
        (
            write(
                "jwk-missing.json",
                r#"{"kty":"EC","crv":"P-256","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"}"#,
                0o600,
            ),
            "lacks member \"x\"",
        ),
        (
            write(
                "jwk-curve.json",
                r#"{"kty":"EC","crv":"P-192","d":"AQ"}"#,
                0o600,
            ),
            "unsupported EC curve",
        ),
        (
            write("jwk-oct.json", r#"{"kty":"oct","k":"AAAA"}"#, 0o600),
            "symmetric",
        ),
        (write("jwks.json", r#"{"keys":[]}"#, 0o600), "JWK set"),
        (
            write("open.pem", "-----BEGIN PRIVATE KEY-----\n", 0o644),
            "accessible by group or others (mode 0644)",
        ),
        (dir.join("missing.pem"), "No such file"),
    ];
    for (p, want) in cases {
        let e = open(&p);
        assert!(e.contains(want), "{}: {e} (wanted {want:?})", p.display());
        assert!(
            e.contains(p.file_name().unwrap().to_str().unwrap()),
            "error should name the file: {e}"
        );
    }
    // The explicit opt-out loads a group-readable key.
    let dir2 = tmpdir("optout");
    make_key(&dir2, Algorithm::ES256);
    let p = dir2.join("ES256.pem");
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o640)).unwrap();
    assert!(FileSigner::open_path(&p, None, None, &FileOptions::default()).is_err());
    FileSigner::open_path(
        &p,
        None,
        None,
        &FileOptions::default().allow_insecure_permissions(true),
    )
    .unwrap();
}

#[test]
fn debug_output_never_shows_key_material() {
    let jwk = r#"{"kty":"OKP","crv":"Ed25519","d":"nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}"#;
    let s = FileSigner::from_bytes(jwk.as_bytes(), None, None).unwrap();
    let dbg = format!("{s:?}");
    assert!(!dbg.contains("nWGxne"), "{dbg}");
    assert!(dbg.contains("Ed25519"));
}

/// Finds an external tool; missing is a failure under PKJWT_REQUIRE_PEERS=1.
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join(name))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("PKJWT_REQUIRE_PEERS").as_deref() != Ok("1"),
            "{name} is required (PKJWT_REQUIRE_PEERS=1) but not installed"
        );
        eprintln!("SKIPPED: {name} not installed; this check did not run");
    }
    found
}
