//! Shared checks for the certificate tests of every backend (file keys, SoftHSM, AWS KMS): a
//! certificate and a CSR made with a signer are checked by OpenSSL (an independent X.509
//! implementation) and decoded with `x509-cert`, and both must agree with what was asked for.

#![allow(dead_code, clippy::unwrap_used)]

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::SystemTime;

use der::{Decode, Encode};
use pkjwt_core::{Algorithm, Signer};
use pkjwt_x509::CertOptions;
use x509_cert::der::oid::AssociatedOid;
use x509_cert::ext::Extension;
use x509_cert::ext::pkix::SubjectAltName;
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::request::{CertReq, ExtensionReq};

/// The SANs every test certificate carries, one of each type, in the `TYPE:VALUE` form
/// `CertOptions::san` takes (and `san_strings` gives back from decoded DER).
pub const SANS: [&str; 4] = [
    "dns:client.example.com",
    "uri:https://client.example.com/app",
    "email:ops@example.com",
    "ip:192.0.2.1",
];

/// The same SANs as `openssl x509 -text` prints them.
const SANS_OPENSSL: [&str; 4] = [
    "DNS:client.example.com",
    "URI:https://client.example.com/app",
    "email:ops@example.com",
    "IP Address:192.0.2.1",
];

/// Validity asked for, in days.
pub const DAYS: u64 = 30;

/// `notBefore` lies this far before now (`CertOptions`' default clock-skew allowance).
const BACKDATE_SECS: u64 = 300;

/// The `openssl` binary, or `None` (test skipped) when it is not installed and
/// `PKJWT_REQUIRE_PEERS=1` is not set.
pub fn openssl() -> Option<PathBuf> {
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
        eprintln!("SKIPPED: openssl not installed (apt-get install openssl)");
    }
    found
}

/// Runs openssl in `dir`; fails the test unless it exits 0. Returns stdout then stderr.
pub fn run(openssl: &Path, dir: &Path, args: &[&str]) -> String {
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

/// `sha256 Fingerprint=AA:BB:…` from openssl → base64url of those bytes, as in x5t / x5t#S256.
pub fn fingerprint_b64(openssl_out: &str) -> String {
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

/// The lines `openssl x509 -text` prints for the signature algorithm `alg` must produce.
fn signature_algorithm_text(alg: Algorithm) -> Vec<String> {
    let pss = |bits: u32| {
        vec![
            "Signature Algorithm: rsassaPss".to_owned(),
            format!("Hash Algorithm: sha{bits}"),
            format!("Mask Algorithm: mgf1 with sha{bits}"),
            // Salt length = hash length, in bytes.
            format!("Salt Length: 0x{:X}", bits / 8),
        ]
    };
    match alg {
        Algorithm::ES256 | Algorithm::ES256K => {
            vec!["Signature Algorithm: ecdsa-with-SHA256".into()]
        }
        Algorithm::ES384 => vec!["Signature Algorithm: ecdsa-with-SHA384".into()],
        Algorithm::ES512 => vec!["Signature Algorithm: ecdsa-with-SHA512".into()],
        Algorithm::RS256 => vec!["Signature Algorithm: sha256WithRSAEncryption".into()],
        Algorithm::RS384 => vec!["Signature Algorithm: sha384WithRSAEncryption".into()],
        Algorithm::RS512 => vec!["Signature Algorithm: sha512WithRSAEncryption".into()],
        Algorithm::PS256 => pss(256),
        Algorithm::PS384 => pss(384),
        Algorithm::PS512 => pss(512),
        Algorithm::EdDSA => vec!["Signature Algorithm: ED25519".into()],
        other => panic!("no expected signature algorithm for {other}"),
    }
}

/// Decoded general names in the `TYPE:VALUE` form of [`SANS`]; other kinds fail the test.
pub fn san_strings(names: &[GeneralName]) -> Vec<String> {
    names
        .iter()
        .map(|n| match n {
            GeneralName::DnsName(v) => format!("dns:{v}"),
            GeneralName::UniformResourceIdentifier(v) => format!("uri:{v}"),
            GeneralName::Rfc822Name(v) => format!("email:{v}"),
            GeneralName::IpAddress(o) => {
                let ip: IpAddr = match o.as_bytes().len() {
                    4 => <[u8; 4]>::try_from(o.as_bytes()).unwrap().into(),
                    16 => <[u8; 16]>::try_from(o.as_bytes()).unwrap().into(),
                    n => panic!("IP address SAN of {n} bytes"),
                };
                format!("ip:{ip}")
            }
            other => panic!("unexpected SAN {other:?}"),
        })
        .collect()
}

/// The SANs in a list of extensions, decoded; fails when there is not exactly one
/// subjectAltName extension.
fn sans_in(extensions: &[Extension]) -> Vec<String> {
    let found: Vec<&Extension> = extensions
        .iter()
        .filter(|e| e.extn_id == SubjectAltName::OID)
        .collect();
    assert_eq!(found.len(), 1, "one subjectAltName extension");
    let san = SubjectAltName::from_der(found[0].extn_value.as_bytes()).unwrap();
    san_strings(&san.0)
}

/// A certificate and a CSR for `signer`'s key with subject `CN={name},O=Example Bank,C=GB`,
/// [`SANS`] and [`DAYS`]; files go to `dir` as `{name}.crt`, `.der`, `.csr`. Checks:
///
/// * OpenSSL: the self-signature verifies; subject, issuer, extensions, SANs and the signature
///   algorithm (PSS parameters included) print as expected; the key is the signer's; the SHA-256
///   and SHA-1 fingerprints are `x5t#S256` and `x5t`; the DER OpenSSL writes is the
///   certificate's and its base64 is `x5c`; the CSR verifies and carries subject and SANs.
/// * `x509-cert` decoding: subject and issuer, SANs, validity (around now, `DAYS` plus the
///   backdate long) and the SubjectPublicKeyInfo of the certificate; subject, SANs (in the
///   extensionRequest) and key of the CSR.
pub async fn check_certificate_and_csr(ossl: &Path, signer: &dyn Signer, dir: &Path, name: &str) {
    let alg = signer.algorithm();
    let subject = format!("CN={name},O=Example Bank,C=GB");
    let mut opts = CertOptions::new(&subject).unwrap();
    for san in SANS {
        opts = opts.san(san).unwrap();
    }
    let opts = opts.days(DAYS as i64).unwrap();
    let signed_at = SystemTime::now();
    let der = pkjwt_x509::self_signed(signer, &opts).await.unwrap();
    let cert = dir.join(format!("{name}.crt"));
    std::fs::write(&cert, pkjwt_x509::pem("CERTIFICATE", &der)).unwrap();
    let c = cert.to_str().unwrap();

    // --- OpenSSL on the certificate ---
    let out = run(
        ossl,
        dir,
        &["verify", "-CAfile", c, "-check_ss_sig", "-partial_chain", c],
    );
    assert!(out.contains(": OK"), "{name}: {out}");
    let text = run(ossl, dir, &["x509", "-in", c, "-noout", "-text"]);
    let printed_subject = format!("C = GB, O = Example Bank, CN = {name}");
    let mut want = vec![
        format!("Subject: {printed_subject}"),
        format!("Issuer: {printed_subject}"),
        "X509v3 Basic Constraints: critical".into(),
        "CA:FALSE".into(),
        "X509v3 Key Usage: critical".into(),
        "Digital Signature".into(),
        "X509v3 Subject Key Identifier".into(),
        "X509v3 Subject Alternative Name".into(),
    ];
    want.extend(SANS_OPENSSL.map(String::from));
    want.extend(signature_algorithm_text(alg));
    for w in &want {
        assert!(
            text.contains(w.as_str()),
            "{name}: {w:?} missing in\n{text}"
        );
    }
    assert!(
        !text.contains("Non Repudiation"),
        "{name}: digitalSignature only"
    );
    // The key in the certificate is the signer's.
    let pubkey = run(ossl, dir, &["x509", "-in", c, "-noout", "-pubkey"]);
    assert_eq!(pubkey, signer.public_key().to_spki_pem(), "{name}");
    pkjwt_x509::check_matches(&der, signer.public_key()).unwrap();
    // Thumbprints agree with openssl's fingerprints.
    for (digest, ours) in [
        ("-sha256", pkjwt_x509::x5t_s256(&der)),
        ("-sha1", pkjwt_x509::x5t_sha1(&der)),
    ] {
        let fp = run(
            ossl,
            dir,
            &["x509", "-in", c, "-noout", "-fingerprint", digest],
        );
        assert_eq!(ours, fingerprint_b64(&fp), "{name}: {digest} fingerprint");
    }
    // x5c is the standard base64 of the DER that openssl writes.
    let der_file = dir.join(format!("{name}.der"));
    let d = der_file.to_str().unwrap();
    run(ossl, dir, &["x509", "-in", c, "-outform", "DER", "-out", d]);
    assert_eq!(std::fs::read(&der_file).unwrap(), der, "{name}: DER");
    let b64 = run(ossl, dir, &["base64", "-A", "-in", d]);
    assert_eq!(pkjwt_x509::x5c_entry(&der), b64.trim(), "{name}: x5c");

    // --- x509-cert decoding of the certificate ---
    let parsed = x509_cert::Certificate::from_der(&der).unwrap();
    let tbs = &parsed.tbs_certificate;
    assert_eq!(tbs.subject.to_string(), subject, "{name}: subject");
    assert_eq!(tbs.issuer, tbs.subject, "{name}: self-issued");
    assert_eq!(
        sans_in(tbs.extensions.as_deref().unwrap_or_default()),
        SANS,
        "{name}: SANs"
    );
    let not_before = tbs.validity.not_before.to_unix_duration().as_secs();
    let not_after = tbs.validity.not_after.to_unix_duration().as_secs();
    let now = signed_at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    // X.509 times have whole seconds; allow 2 s either way for that and a slow signer.
    let near = |t: u64, expected: u64| t.abs_diff(expected) <= 2;
    assert!(
        near(not_before, now - BACKDATE_SECS),
        "{name}: notBefore {not_before}, signed at {now}"
    );
    assert!(
        near(not_after, now + DAYS * 86_400),
        "{name}: notAfter {not_after}, signed at {now}"
    );
    assert_eq!(
        tbs.subject_public_key_info.to_der().unwrap(),
        signer.public_key().to_spki_der(),
        "{name}: certificate key"
    );
    assert_eq!(
        &pkjwt_x509::certificate_public_key(&der).unwrap(),
        signer.public_key()
    );
    assert_eq!(parsed.signature_algorithm, tbs.signature, "{name}");

    // --- The CSR: OpenSSL, then x509-cert decoding ---
    let req = pkjwt_x509::csr(signer, &opts).await.unwrap();
    let r = dir.join(format!("{name}.csr"));
    std::fs::write(&r, pkjwt_x509::pem("CERTIFICATE REQUEST", &req)).unwrap();
    let out = run(
        ossl,
        dir,
        &[
            "req",
            "-in",
            r.to_str().unwrap(),
            "-noout",
            "-verify",
            "-text",
        ],
    );
    assert!(out.contains("verify OK"), "{name}: {out}");
    for w in SANS_OPENSSL
        .iter()
        .copied()
        .chain([printed_subject.as_str()])
    {
        assert!(out.contains(w), "{name}: {w:?} missing in CSR\n{out}");
    }
    let parsed = CertReq::from_der(&req).unwrap();
    assert_eq!(
        parsed.info.subject.to_string(),
        subject,
        "{name}: CSR subject"
    );
    assert_eq!(
        parsed.info.public_key.to_der().unwrap(),
        signer.public_key().to_spki_der(),
        "{name}: CSR key"
    );
    let ext_req: Vec<_> = parsed
        .info
        .attributes
        .iter()
        .filter(|a| a.oid == ExtensionReq::OID)
        .collect();
    assert_eq!(ext_req.len(), 1, "{name}: one extensionRequest");
    let values: Vec<_> = ext_req[0].values.iter().collect();
    assert_eq!(values.len(), 1, "{name}: one extensionRequest value");
    let exts = ExtensionReq::from_der(&values[0].to_der().unwrap()).unwrap();
    assert_eq!(sans_in(&exts.0), SANS, "{name}: CSR SANs");
}
