//! Shared checks for the backend certificate tests: a certificate and a CSR made with `signer`
//! must pass OpenSSL's verification and carry the signer's key.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use pkjwt_core::Signer;
use pkjwt_x509::CertOptions;

/// Makes a certificate and a CSR with `signer` and has OpenSSL verify both.
pub async fn check_with_openssl(signer: &dyn Signer, dir: &Path, name: &str) {
    let opts = CertOptions::new(&format!("CN={name},O=pkjwt tests"))
        .unwrap()
        .san("dns:client.example.com")
        .unwrap()
        .days(7)
        .unwrap();
    let der = pkjwt_x509::self_signed(signer, &opts).await.unwrap();
    pkjwt_x509::check_matches(&der, signer.public_key()).unwrap();
    let cert = dir.join(format!("{name}.crt"));
    std::fs::write(&cert, pkjwt_x509::pem("CERTIFICATE", &der)).unwrap();
    let c = cert.to_str().unwrap();
    let out = openssl(
        dir,
        &["verify", "-CAfile", c, "-check_ss_sig", "-partial_chain", c],
    );
    assert!(out.contains(": OK"), "{name}: {out}");
    let text = openssl(dir, &["x509", "-in", c, "-noout", "-text"]);
    assert!(
        text.contains("CA:FALSE") && text.contains("DNS:client.example.com"),
        "{text}"
    );
    assert_eq!(
        openssl(dir, &["x509", "-in", c, "-noout", "-pubkey"]),
        signer.public_key().to_spki_pem()
    );
    let req = pkjwt_x509::csr(signer, &opts).await.unwrap();
    let r = dir.join(format!("{name}.csr"));
    std::fs::write(&r, pkjwt_x509::pem("CERTIFICATE REQUEST", &req)).unwrap();
    let out = openssl(
        dir,
        &["req", "-in", r.to_str().unwrap(), "-noout", "-verify"],
    );
    assert!(out.contains("verify OK"), "{name}: {out}");
}

fn openssl(dir: &Path, args: &[&str]) -> String {
    let o = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| {
            panic!("openssl is required for this test (apt-get install openssl): {e}")
        });
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
