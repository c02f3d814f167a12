//! Certificates and CSRs made with file keys of every algorithm family, checked by OpenSSL (an
//! independent X.509 implementation) and by `x509-cert` decoding (`certs::check_certificate_and_csr`:
//! self-signature, extensions, SANs, validity, key, `x5t#S256`/`x5t`/`x5c`); and bad input is
//! refused specifically.

#![allow(clippy::unwrap_used)]

mod certs;

use std::path::{Path, PathBuf};

use pkjwt_core::{Algorithm, KeyUri, Signer};
use pkjwt_x509::{CertOptions, X509Error};

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("pkjwt-x509-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn key(dir: &Path, alg: Algorithm) -> pkjwt_file::FileSigner {
    let path = dir.join(format!("{alg}.pem"));
    let KeyUri::File(uri) = KeyUri::parse(path.to_str().unwrap()).unwrap() else {
        panic!()
    };
    pkjwt_file::generate(&uri, alg, &Default::default()).unwrap()
}

#[tokio::test]
async fn certificates_and_csrs_for_every_family_pass_openssl() {
    let Some(ossl) = certs::openssl() else { return };
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
        certs::check_certificate_and_csr(&ossl, &signer, &dir, &format!("file-{alg}")).await;
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
