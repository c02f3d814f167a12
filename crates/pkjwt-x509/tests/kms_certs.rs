//! Certificates and CSRs signed by AWS KMS keys (the project's KMS double on 127.0.0.1), checked
//! by OpenSSL and by `x509-cert` decoding (`certs::check_certificate_and_csr`), for every key spec
//! family the backend signs with.

#![allow(clippy::unwrap_used)]

mod certs;
#[path = "../../pkjwt-aws-kms/tests/common/mod.rs"]
mod kms;

use pkjwt_core::Algorithm;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kms_keys_sign_certificates_openssl_accepts() {
    let Some(ossl) = certs::openssl() else { return };
    let Some(d) = kms::double() else { return };
    let dir = std::env::temp_dir().join(format!("pkjwt-x509-kms-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    for alg in [
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::ES512,
        Algorithm::PS256,
        Algorithm::RS256,
        Algorithm::EdDSA,
    ] {
        let uri = kms::uri(d, &kms::alias(&format!("x509-{alg}").to_lowercase()));
        pkjwt_aws_kms::generate(&uri, alg, &Default::default(), &kms::options())
            .await
            .unwrap();
        let signer = pkjwt_aws_kms::AwsKmsSigner::open(&uri, Some(alg), &kms::options())
            .await
            .unwrap();
        certs::check_certificate_and_csr(&ossl, &signer, &dir, &format!("kms-{alg}")).await;
    }
}
