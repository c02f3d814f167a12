#![doc = include_str!("../README.md")]
//!
//! ```no_run
//! # async fn demo(signer: std::sync::Arc<dyn pkjwt_core::Signer>) -> Result<(), pkjwt_x509::X509Error> {
//! use pkjwt_x509::{CertOptions, self_signed};
//! let opts = CertOptions::new("CN=payments-client,O=Example Bank,C=GB")?
//!     .san("dns:client.example.com")?
//!     .days(365)?;
//! let der = self_signed(signer.as_ref(), &opts).await?;
//! println!("{}", pkjwt_x509::pem("CERTIFICATE", &der));
//! # Ok(()) }
//! ```

mod adapter;
mod error;

use std::str::FromStr;
use std::time::{Duration, SystemTime};

use der::asn1::{BitString, Ia5String, OctetString};
use der::referenced::OwnedToRef;
use der::{Decode, Encode};
use pkjwt_core::{PublicKey, Signer, b64};
use sha2::Digest;
use x509_cert::builder::{Builder, CertificateBuilder, Profile, RequestBuilder};
use x509_cert::ext::pkix::name::GeneralName;
use x509_cert::ext::pkix::{
    BasicConstraints, KeyUsage, KeyUsages, SubjectAltName, SubjectKeyIdentifier,
};
use x509_cert::name::Name;
use x509_cert::serial_number::SerialNumber;
use x509_cert::spki::SubjectPublicKeyInfoOwned;
use x509_cert::time::{Time, Validity};

pub use error::X509Error;

/// Largest validity accepted, in days (about 10 years: beyond this, servers and auditors balk).
pub const MAX_DAYS: u32 = 3653;

/// A subject alternative name.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum San {
    /// `dns:host.example.com`
    Dns(String),
    /// `uri:https://client.example.com`
    Uri(String),
    /// `email:ops@example.com`
    Email(String),
    /// `ip:192.0.2.1` or `ip:2001:db8::1`
    Ip(std::net::IpAddr),
}

impl FromStr for San {
    type Err = X509Error;

    fn from_str(s: &str) -> Result<Self, X509Error> {
        let bad = |reason: &str| X509Error::San {
            san: s.to_string(),
            reason: reason.to_string(),
        };
        let (kind, value) = s
            .split_once(':')
            .ok_or_else(|| bad("expected TYPE:VALUE with TYPE dns, uri, email or ip"))?;
        if value.is_empty() {
            return Err(bad("the value is empty"));
        }
        if !value.is_ascii() {
            return Err(bad(
                "must be ASCII (IA5String); use the punycode form of a name",
            ));
        }
        match kind.to_ascii_lowercase().as_str() {
            "dns" => {
                let ok = value.split('.').all(|l| {
                    !l.is_empty()
                        && l.len() <= 63
                        && (l == "*" || l.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'))
                });
                if !ok || value.len() > 253 {
                    return Err(bad("not a DNS name (labels of letters, digits and '-')"));
                }
                Ok(San::Dns(value.to_string()))
            }
            "uri" => {
                if !value.contains("://") && !value.starts_with("urn:") {
                    return Err(bad("a URI needs a scheme, like https://… or urn:…"));
                }
                Ok(San::Uri(value.to_string()))
            }
            "email" => {
                if value.split('@').count() != 2 || value.starts_with('@') || value.ends_with('@') {
                    return Err(bad("not an email address (local@domain)"));
                }
                Ok(San::Email(value.to_string()))
            }
            "ip" => value
                .parse()
                .map(San::Ip)
                .map_err(|_| bad("not an IPv4 or IPv6 address")),
            _ => Err(bad("unknown SAN type; expected dns, uri, email or ip")),
        }
    }
}

impl San {
    fn general_name(&self) -> Result<GeneralName, X509Error> {
        let ia5 = |v: &str| {
            Ia5String::new(v).map_err(|e| X509Error::San {
                san: v.to_string(),
                reason: e.to_string(),
            })
        };
        Ok(match self {
            San::Dns(v) => GeneralName::DnsName(ia5(v)?),
            San::Uri(v) => GeneralName::UniformResourceIdentifier(ia5(v)?),
            San::Email(v) => GeneralName::Rfc822Name(ia5(v)?),
            San::Ip(ip) => {
                let bytes = match ip {
                    std::net::IpAddr::V4(a) => a.octets().to_vec(),
                    std::net::IpAddr::V6(a) => a.octets().to_vec(),
                };
                GeneralName::IpAddress(OctetString::new(bytes).map_err(|e| X509Error::San {
                    san: ip.to_string(),
                    reason: e.to_string(),
                })?)
            }
        })
    }
}

/// What goes into a certificate or CSR.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct CertOptions {
    subject: Name,
    subject_text: String,
    /// Subject alternative names.
    pub sans: Vec<San>,
    /// Validity in days from now (certificates only). Default 365.
    pub days: u32,
    /// How far before now `notBefore` lies, to absorb clock skew. Default 5 minutes.
    pub backdate: Duration,
}

impl CertOptions {
    /// Options for `subject`, an RFC 4514 distinguished name such as `CN=client,O=Example,C=GB`.
    pub fn new(subject: &str) -> Result<Self, X509Error> {
        let bad = |reason: String| X509Error::Subject {
            subject: subject.to_string(),
            reason,
        };
        if subject.trim().is_empty() {
            return Err(bad(
                "empty; expected something like CN=client,O=Example,C=GB".into(),
            ));
        }
        let name = Name::from_str(subject).map_err(|e| {
            bad(format!(
                "not an RFC 4514 distinguished name like CN=client,O=Example,C=GB ({e})"
            ))
        })?;
        if name.0.is_empty() {
            return Err(bad("has no attributes".into()));
        }
        Ok(CertOptions {
            subject: name,
            subject_text: subject.to_string(),
            sans: Vec::new(),
            days: 365,
            backdate: Duration::from_secs(300),
        })
    }

    /// Adds a subject alternative name given as `dns:…`, `uri:…`, `email:…` or `ip:…`.
    pub fn san(mut self, san: &str) -> Result<Self, X509Error> {
        self.sans.push(san.parse()?);
        Ok(self)
    }

    /// Sets the validity in days (1..=3653).
    pub fn days(mut self, days: i64) -> Result<Self, X509Error> {
        if days <= 0 || days > i64::from(MAX_DAYS) {
            return Err(X509Error::Validity(format!(
                "{days} days; the validity must be between 1 and {MAX_DAYS} days"
            )));
        }
        // Invariant: 1..=MAX_DAYS fits in u32.
        self.days = u32::try_from(days).unwrap_or(MAX_DAYS);
        Ok(self)
    }

    /// The subject as given.
    pub fn subject(&self) -> &str {
        &self.subject_text
    }
}

/// Builds and signs a self-signed certificate for `signer`'s key; returns its DER.
///
/// Extensions: basicConstraints CA:FALSE (critical), keyUsage digitalSignature (critical),
/// subjectKeyIdentifier, and subjectAltName when SANs are given. The serial is 128 random bits,
/// positive.
pub async fn self_signed(
    signer: &(impl Signer + ?Sized),
    options: &CertOptions,
) -> Result<Vec<u8>, X509Error> {
    let adapter = adapter::Adapter::new(signer.public_key(), signer.algorithm())?;
    let spki = SubjectPublicKeyInfoOwned::from_der(&signer.public_key().to_spki_der())
        .map_err(X509Error::der("subject public key"))?;
    let now = SystemTime::now();
    let not_before = now.checked_sub(options.backdate).unwrap_or(now);
    let not_after = now + Duration::from_secs(u64::from(options.days) * 86_400);
    let validity = Validity {
        not_before: Time::try_from(not_before).map_err(X509Error::der("notBefore"))?,
        not_after: Time::try_from(not_after).map_err(X509Error::der("notAfter"))?,
    };
    let mut builder = CertificateBuilder::new(
        Profile::Manual { issuer: None },
        random_serial()?,
        validity,
        options.subject.clone(),
        spki.clone(),
        &adapter,
    )
    .map_err(X509Error::build)?;
    builder
        .add_extension(&BasicConstraints {
            ca: false,
            path_len_constraint: None,
        })
        .map_err(X509Error::build)?;
    builder
        .add_extension(&KeyUsage(KeyUsages::DigitalSignature.into()))
        .map_err(X509Error::build)?;
    builder
        .add_extension(
            &SubjectKeyIdentifier::try_from(spki.owned_to_ref()).map_err(X509Error::build_spki)?,
        )
        .map_err(X509Error::build)?;
    if !options.sans.is_empty() {
        builder
            .add_extension(&san_extension(&options.sans)?)
            .map_err(X509Error::build)?;
    }
    let tbs = builder
        .finalize()
        .map_err(X509Error::der("TBSCertificate"))?;
    let sig = signer.sign(&tbs).await.map_err(X509Error::Sign)?;
    let bits = BitString::from_bytes(sig.as_bytes()).map_err(X509Error::der("signature"))?;
    let cert = builder.assemble(bits).map_err(X509Error::build)?;
    cert.to_der().map_err(X509Error::der("certificate"))
}

/// Builds and signs a PKCS#10 certificate signing request (with the SANs as an
/// extensionRequest); returns its DER.
pub async fn csr(
    signer: &(impl Signer + ?Sized),
    options: &CertOptions,
) -> Result<Vec<u8>, X509Error> {
    let adapter = adapter::Adapter::new(signer.public_key(), signer.algorithm())?;
    let mut builder =
        RequestBuilder::new(options.subject.clone(), &adapter).map_err(X509Error::build)?;
    if !options.sans.is_empty() {
        builder
            .add_extension(&san_extension(&options.sans)?)
            .map_err(X509Error::build)?;
    }
    let info = builder
        .finalize()
        .map_err(X509Error::der("CertificationRequestInfo"))?;
    let sig = signer.sign(&info).await.map_err(X509Error::Sign)?;
    let bits = BitString::from_bytes(sig.as_bytes()).map_err(X509Error::der("signature"))?;
    let req = builder.assemble(bits).map_err(X509Error::build)?;
    req.to_der()
        .map_err(X509Error::der("certification request"))
}

fn san_extension(sans: &[San]) -> Result<SubjectAltName, X509Error> {
    Ok(SubjectAltName(
        sans.iter()
            .map(San::general_name)
            .collect::<Result<Vec<_>, _>>()?,
    ))
}

fn random_serial() -> Result<SerialNumber, X509Error> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes)
        .map_err(|_| X509Error::Build("operating system random generator failed".into()))?;
    // Positive (top bit clear) and minimal (first byte non-zero): RFC 5280 §4.1.2.2.
    bytes[0] = (bytes[0] & 0x7f) | 0x01;
    SerialNumber::new(&bytes).map_err(|e| X509Error::Build(format!("serial number: {e}")))
}

/// The public key a DER certificate carries.
pub fn certificate_public_key(cert_der: &[u8]) -> Result<PublicKey, X509Error> {
    let cert = x509_cert::Certificate::from_der(cert_der).map_err(X509Error::der("certificate"))?;
    let spki = cert
        .tbs_certificate
        .subject_public_key_info
        .to_der()
        .map_err(X509Error::der("subject public key"))?;
    PublicKey::from_spki_der(&spki).map_err(X509Error::Key)
}

/// Refuses a certificate whose public key is not `key` (a mismatched pair would register a
/// certificate the client cannot sign for).
pub fn check_matches(cert_der: &[u8], key: &PublicKey) -> Result<(), X509Error> {
    let in_cert = certificate_public_key(cert_der)?;
    if &in_cert != key {
        return Err(X509Error::KeyMismatch {
            cert_key: in_cert.describe(),
            signer_key: key.describe(),
        });
    }
    Ok(())
}

/// The certificate chain of `signer`'s key, leaf (the certificate holding the key) first.
///
/// From `file` (PEM with one or more certificates, or one DER certificate) when given: its first
/// certificate must hold the signer's public key. Otherwise from the chain the backend keeps
/// next to the key (a PKCS#12 keystore, PKCS#11 certificate objects, a Key Vault certificate),
/// which may list the key's certificate anywhere: it is moved to the front. `None` when neither
/// exists; [`X509Error::NoStoredMatch`] when the backend keeps certificates but none is this
/// key's (a stale or mislabelled object must not be published as the key's).
pub fn key_chain(
    file: Option<&std::path::Path>,
    signer: &dyn Signer,
) -> Result<Option<Vec<Vec<u8>>>, X509Error> {
    if let Some(path) = file {
        let in_file = |reason: String| X509Error::File {
            path: path.display().to_string(),
            reason,
        };
        let bytes = std::fs::read(path).map_err(|e| in_file(e.to_string()))?;
        let chain = read_certificates(&bytes).map_err(|e| in_file(e.to_string()))?;
        // read_certificates returns at least one certificate or an error.
        let leaf = chain
            .first()
            .ok_or_else(|| in_file("no certificate".into()))?;
        check_matches(leaf, signer.public_key()).map_err(|e| in_file(e.to_string()))?;
        return Ok(Some(chain));
    }
    let stored = signer.certificate_chain();
    if stored.is_empty() {
        return Ok(None);
    }
    let Some(i) = stored
        .iter()
        .position(|c| check_matches(c, signer.public_key()).is_ok())
    else {
        return Err(X509Error::NoStoredMatch {
            count: stored.len(),
        });
    };
    let mut chain = stored.to_vec();
    let leaf = chain.remove(i);
    chain.insert(0, leaf);
    Ok(Some(chain))
}

/// `x5t#S256`: base64url SHA-256 of the DER certificate (RFC 7517 §4.9, RFC 7515 §4.1.8).
pub fn x5t_s256(cert_der: &[u8]) -> String {
    b64::encode(sha2::Sha256::digest(cert_der))
}

/// `x5t`: base64url SHA-1 of the DER certificate *bytes* (RFC 7517 §4.8), for servers that still
/// ask for it (Entra). Not a hex string's hash — a common mistake.
pub fn x5t_sha1(cert_der: &[u8]) -> String {
    b64::encode(sha1::Sha1::digest(cert_der))
}

/// `x5c` entry: standard base64 (not base64url) of the DER certificate (RFC 7517 §4.7).
pub fn x5c_entry(cert_der: &[u8]) -> String {
    b64::encode_std(cert_der)
}

/// PEM-encodes DER with the given label (`CERTIFICATE`, `CERTIFICATE REQUEST`).
pub fn pem(label: &str, der: &[u8]) -> String {
    pkjwt_core::pem::encode(label, der)
}

/// Reads certificates from PEM text (every `CERTIFICATE` block, leaf first) or a DER file's
/// bytes.
pub fn read_certificates(bytes: &[u8]) -> Result<Vec<Vec<u8>>, X509Error> {
    if bytes.first() == Some(&0x30) {
        x509_cert::Certificate::from_der(bytes).map_err(X509Error::der("DER certificate"))?;
        return Ok(vec![bytes.to_vec()]);
    }
    let text = std::str::from_utf8(bytes)
        .map_err(|_| X509Error::NotCertificates("neither PEM text nor a DER certificate".into()))?;
    let blocks = pkjwt_core::pem::decode_all(text).map_err(|e| match e {
        pkjwt_core::pem::PemError::NoBlock => X509Error::NotCertificates(
            "no PEM block found (expected \"-----BEGIN CERTIFICATE-----\")".into(),
        ),
        e => X509Error::NotCertificates(e.to_string()),
    })?;
    let certs: Vec<Vec<u8>> = blocks
        .iter()
        .filter(|b| b.label == "CERTIFICATE")
        .map(|b| b.der.clone())
        .collect();
    if certs.is_empty() {
        let labels: Vec<&str> = blocks.iter().map(|b| b.label.as_str()).collect();
        return Err(X509Error::NotCertificates(format!(
            "no CERTIFICATE block (found: {})",
            labels.join(", ")
        )));
    }
    for c in &certs {
        x509_cert::Certificate::from_der(c).map_err(X509Error::der("certificate"))?;
    }
    Ok(certs)
}
