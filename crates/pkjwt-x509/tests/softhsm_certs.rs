//! Certificates and CSRs signed by keys on a SoftHSM2 token (a private token directory made by
//! `infra/softhsm/setup.sh` for this test process), checked by OpenSSL and by `x509-cert`
//! decoding (`certs::check_certificate_and_csr`).

#![allow(clippy::unwrap_used)]

mod certs;

use std::path::Path;
use std::process::Command;

use pkjwt_core::{KeyUri, Signer};
use pkjwt_pkcs11::{Pkcs11Options, Pkcs11Signer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn softhsm_keys_sign_certificates_openssl_accepts() {
    if !Path::new("/usr/lib/softhsm/libsofthsm2.so").exists() {
        assert!(
            std::env::var("PKJWT_REQUIRE_PEERS").as_deref() != Ok("1"),
            "SoftHSM2 is required (PKJWT_REQUIRE_PEERS=1): apt-get install softhsm2"
        );
        eprintln!("SKIPPED: SoftHSM2 not installed");
        return;
    }
    let Some(ossl) = certs::openssl() else { return };
    // SoftHSM reads SOFTHSM2_CONF when the module initializes; the work runs in a child copy
    // of this test binary whose environment points at a token directory of its own.
    if let Ok(dir) = std::env::var("PKJWT_X509_HSM_DIR") {
        return sign_with_every_key(&ossl, Path::new(&dir)).await;
    }
    let dir = std::env::temp_dir().join(format!("pkjwt-x509-hsm-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let out = Command::new(root.join("infra/softhsm/setup.sh"))
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "setup.sh: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "softhsm_keys_sign_certificates_openssl_accepts",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("SOFTHSM2_CONF", dir.join("softhsm2.conf"))
        .env("PKJWT_X509_HSM_DIR", &dir)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&child.stdout);
    assert!(
        child.status.success() && out.contains("1 passed"),
        "child: {out}{}",
        String::from_utf8_lossy(&child.stderr)
    );
}

async fn sign_with_every_key(ossl: &Path, dir: &Path) {
    let pin = dir.join("pin");
    for object in ["p256", "p384", "p521", "rsa2048", "ed25519"] {
        let uri = format!(
            "pkcs11:token=pkjwt;object={object}?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:{}",
            pin.display()
        );
        let KeyUri::Pkcs11(u) = KeyUri::parse(&uri).unwrap() else {
            panic!()
        };
        let signer = Pkcs11Signer::open(&u, None, &Pkcs11Options::default())
            .await
            .unwrap();
        certs::check_certificate_and_csr(
            ossl,
            &signer,
            dir,
            &format!("hsm-{object}-{}", signer.algorithm()),
        )
        .await;
    }
}
