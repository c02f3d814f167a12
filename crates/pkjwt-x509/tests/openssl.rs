//! Certificates and CSRs made with file keys of every algorithm family, checked by OpenSSL (an
//! independent X.509 implementation): the self-signature verifies, every extension parses, the
//! key and thumbprints agree; and bad input is refused specifically.

#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

use der::Decode;
use pkjwt_core::{Algorithm, KeyUri, Signer};
use pkjwt_x509::{CertOptions, X509Error};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pkjwt-x509-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn openssl() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("openssl"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var("PKJWT_REQUIRE_PEERS").as_deref() != Ok("1"),
            "openssl is required (PKJWT_REQUIRE_PEERS=1) but not installed"
        );
        eprintln!("SKIPPED: openssl not installed");
    }
    found
}

fn run(openssl: &Path, dir: &Path, args: &[&str]) -> String {
    let o = Command::new(openssl)
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    assert!(
        o.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn key(dir: &Path, alg: Algorithm) -> pkjwt_file::FileSigner {
    let path = dir.join(format!("{alg}.pem"));
    let KeyUri::File(uri) = KeyUri::parse(path.to_str().unwrap()).unwrap() else {
        panic!()
    };
    pkjwt_file::generate(&uri, alg, &Default::default()).unwrap()
}

/// `AA:BB:…` hex fingerprint from openssl → base64url, as in x5t / x5t#S256.
fn fingerprint_b64(openssl_out: &str) -> String {
    let hex = openssl_out
        .trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "");
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    pkjwt_core::b64::encode(bytes)
}

#[tokio::test]
async fn certificates_and_csrs_for_every_family_pass_openssl() {
    let Some(ossl) = openssl() else { return };
    let dir = tmpdir("all");
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::ES256K,
        Algorithm::PS256,
        Algorithm::PS512,
        Algorithm::RS256,
        Algorithm::EdDSA,
    ] {
        let signer = key(&dir, alg);
        let opts = CertOptions::new("CN=payments-client,O=Example Bank,C=GB")
            .unwrap()
            .san("dns:client.example.com")
            .unwrap()
            .san("uri:https://client.example.com/app")
            .unwrap()
            .san("email:ops@example.com")
            .unwrap()
            .san("ip:192.0.2.1")
            .unwrap()
            .days(30)
            .unwrap();
        let der = pkjwt_x509::self_signed(&signer, &opts).await.unwrap();
        let cert = dir.join(format!("{alg}.crt"));
        std::fs::write(&cert, pkjwt_x509::pem("CERTIFICATE", &der)).unwrap();
        let c = cert.to_str().unwrap();

        // The self-signed certificate verifies with its own key.
        let out = run(
            &ossl,
            &dir,
            &["verify", "-CAfile", c, "-check_ss_sig", "-partial_chain", c],
        );
        assert!(out.contains(": OK"), "{alg}: {out}");
        // Every extension parses.
        let text = run(&ossl, &dir, &["x509", "-in", c, "-noout", "-text"]);
        for want in [
            "Subject: C = GB, O = Example Bank, CN = payments-client",
            "Issuer: C = GB, O = Example Bank, CN = payments-client",
            "X509v3 Basic Constraints: critical",
            "CA:FALSE",
            "X509v3 Key Usage: critical",
            "Digital Signature",
            "X509v3 Subject Key Identifier",
            "DNS:client.example.com",
            "URI:https://client.example.com/app",
            "email:ops@example.com",
            "IP Address:192.0.2.1",
        ] {
            assert!(text.contains(want), "{alg}: {want:?} missing in\n{text}");
        }
        assert!(
            !text.contains("Non Repudiation"),
            "{alg}: digitalSignature only"
        );
        if matches!(alg, Algorithm::PS256) {
            assert!(
                text.contains("rsassaPss") && text.contains("Salt Length: 0x20"),
                "{text}"
            );
        }
        // The key in the certificate is the signer's.
        let pubkey = run(&ossl, &dir, &["x509", "-in", c, "-noout", "-pubkey"]);
        assert_eq!(pubkey, signer.public_key().to_spki_pem(), "{alg}");
        pkjwt_x509::check_matches(&der, signer.public_key()).unwrap();
        // Thumbprints agree with openssl's.
        let s256 = run(
            &ossl,
            &dir,
            &["x509", "-in", c, "-noout", "-fingerprint", "-sha256"],
        );
        assert_eq!(pkjwt_x509::x5t_s256(&der), fingerprint_b64(&s256));
        let s1 = run(
            &ossl,
            &dir,
            &["x509", "-in", c, "-noout", "-fingerprint", "-sha1"],
        );
        assert_eq!(pkjwt_x509::x5t_sha1(&der), fingerprint_b64(&s1));
        // x5c is the standard-base64 DER that openssl writes in PEM.
        let body: String = std::fs::read_to_string(&cert)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        assert_eq!(pkjwt_x509::x5c_entry(&der), body);

        // A Rust decoder agrees on subject, validity and key.
        let parsed = x509_cert::Certificate::from_der(&der).unwrap();
        assert_eq!(
            parsed.tbs_certificate.subject.to_string(),
            "CN=payments-client,O=Example Bank,C=GB"
        );
        let v = &parsed.tbs_certificate.validity;
        let span =
            v.not_after.to_unix_duration().as_secs() - v.not_before.to_unix_duration().as_secs();
        assert!(
            (30 * 86_400 + 300 - 2..=30 * 86_400 + 300 + 2).contains(&span),
            "{span}"
        );
        assert_eq!(
            &pkjwt_x509::certificate_public_key(&der).unwrap(),
            signer.public_key()
        );

        // The CSR verifies and carries the subject and SANs.
        let req = pkjwt_x509::csr(&signer, &opts).await.unwrap();
        let r = dir.join(format!("{alg}.csr"));
        std::fs::write(&r, pkjwt_x509::pem("CERTIFICATE REQUEST", &req)).unwrap();
        let out = run(
            &ossl,
            &dir,
            &[
                "req",
                "-in",
                r.to_str().unwrap(),
                "-noout",
                "-verify",
                "-text",
            ],
        );
        assert!(out.contains("verify OK"), "{alg}: {out}");
        assert!(
            out.contains("DNS:client.example.com") && out.contains("CN = payments-client"),
            "{out}"
        );
    }
}

#[tokio::test]
async fn bad_input_is_refused_specifically() {
    let dir = tmpdir("bad");
    let cases: Vec<(Result<CertOptions, X509Error>, &str)> = vec![
        (CertOptions::new(""), "empty"),
        (CertOptions::new("CN"), "RFC 4514"),
        (CertOptions::new("XYZ=1"), "RFC 4514"),
        (
            CertOptions::new("CN=a").and_then(|o| o.san("ftp:x")),
            "unknown SAN type",
        ),
        (
            CertOptions::new("CN=a").and_then(|o| o.san("dns")),
            "TYPE:VALUE",
        ),
        (
            CertOptions::new("CN=a").and_then(|o| o.san("dns:bad_name!")),
            "not a DNS name",
        ),
        (
            CertOptions::new("CN=a").and_then(|o| o.san("ip:300.1.1.1")),
            "not an IPv4 or IPv6",
        ),
        (
            CertOptions::new("CN=a").and_then(|o| o.san("email:nobody")),
            "not an email",
        ),
        (
            CertOptions::new("CN=a").and_then(|o| o.days(0)),
            "between 1 and",
        ),
        (CertOptions::new("CN=a").and_then(|o| o.days(-5)), "-5 days"),
        (
            CertOptions::new("CN=a").and_then(|o| o.days(100_000)),
            "between 1 and",
        ),
    ];
    for (r, want) in cases {
        let e = r.map(|_| ()).unwrap_err().to_string();
        assert!(e.contains(want), "{e} (wanted {want:?})");
    }
    // A certificate for a different key is refused.
    let a = key(&dir, Algorithm::ES256);
    let b = key(&dir, Algorithm::EdDSA);
    let der = pkjwt_x509::self_signed(&a, &CertOptions::new("CN=a").unwrap())
        .await
        .unwrap();
    let e = pkjwt_x509::check_matches(&der, b.public_key())
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("not the signer's") && e.contains("Ed25519") && e.contains("P-256"),
        "{e}"
    );
    // Garbage is not a certificate.
    assert!(pkjwt_x509::read_certificates(b"hello").is_err());
    assert!(pkjwt_x509::certificate_public_key(&[0x30, 0x03, 0x02, 0x01, 0x01]).is_err());
}
