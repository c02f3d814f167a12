//! Reading private keys: PEM (PKCS#8, encrypted PKCS#8, SEC1, PKCS#1), DER PKCS#8 and JWK.

use std::path::Path;

use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use pkcs8::der::Decode;
use pkjwt_core::wipe::WipedJson;
use pkjwt_core::{Curve, MIN_RSA_BITS, b64, pem};
use zeroize::Zeroizing;

use crate::{FileError, FileOptions, PrivateKey, ecdsa_alg};

/// OIDs (dotted) of the key algorithms in PKCS#8.
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_ED25519: &str = "1.3.101.112";

/// The format a key was read from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyFormat {
    /// PEM `PRIVATE KEY` (PKCS#8).
    Pkcs8Pem,
    /// PEM `ENCRYPTED PRIVATE KEY` (PKCS#8 with PBES2).
    EncryptedPkcs8Pem,
    /// PEM `EC PRIVATE KEY` (SEC1, RFC 5915).
    Sec1Pem,
    /// PEM `RSA PRIVATE KEY` (PKCS#1).
    Pkcs1Pem,
    /// DER PKCS#8.
    Pkcs8Der,
    /// A private JWK.
    Jwk,
    /// A PKCS#12 keystore (`.p12` / `.pfx`).
    Pkcs12,
}

/// Reads a private key file after checking that only its owner can read it.
pub(crate) fn read_private_file(
    path: &Path,
    options: &FileOptions,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let io = |source| FileError::Io {
        path: path.to_path_buf(),
        source,
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.is_dir() {
        return Err(FileError::Malformed {
            path: Some(path.to_path_buf()),
            reason: "is a directory, not a key file".into(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 && !options.allow_insecure_permissions {
            return Err(FileError::InsecurePermissions {
                path: path.to_path_buf(),
                mode,
            });
        }
    }
    #[cfg(not(unix))]
    let _ = options;
    if meta.len() > 1 << 20 {
        return Err(FileError::Malformed {
            path: Some(path.to_path_buf()),
            reason: format!(
                "is {} bytes; a key file is at most a few kilobytes",
                meta.len()
            ),
        });
    }
    Ok(Zeroizing::new(std::fs::read(path).map_err(io)?))
}

/// Detects the format and parses the private key.
pub(crate) fn parse_private_key(
    bytes: &[u8],
    passphrase: Option<&str>,
) -> Result<(PrivateKey, KeyFormat), FileError> {
    let first = bytes.iter().find(|b| !b.is_ascii_whitespace()).copied();
    if first == Some(b'{') {
        let text = std::str::from_utf8(bytes)
            .map_err(|_| FileError::malformed("JWK is not UTF-8 text"))?;
        return Ok((parse_private_jwk(text)?, KeyFormat::Jwk));
    }
    if first == Some(0x30) {
        return Ok((parse_pkcs8(bytes)?, KeyFormat::Pkcs8Der));
    }
    let text = std::str::from_utf8(bytes).map_err(|_| {
        FileError::malformed(
            "neither PEM text, a JWK, nor DER PKCS#8; expected -----BEGIN PRIVATE KEY----- or similar",
        )
    })?;
    let blocks = pem::decode_all(text).map_err(|e| FileError::malformed(e.to_string()))?;
    let mut labels = Vec::new();
    for block in &blocks {
        let encrypted_legacy = block
            .headers
            .iter()
            .any(|(k, v)| k.eq_ignore_ascii_case("Proc-Type") && v.contains("ENCRYPTED"));
        match block.label.as_str() {
            _ if encrypted_legacy => {
                return Err(FileError::malformed(format!(
                    "legacy OpenSSL-encrypted \"{}\" (Proc-Type: 4,ENCRYPTED) is not supported; \
                     convert it with `openssl pkcs8 -topk8 -v2 aes-256-cbc -in OLD -out NEW`",
                    block.label
                )));
            }
            "PRIVATE KEY" => return Ok((parse_pkcs8(&block.der)?, KeyFormat::Pkcs8Pem)),
            "ENCRYPTED PRIVATE KEY" => {
                let pass = passphrase.ok_or(FileError::PassphraseRequired { path: None })?;
                let info = pkcs8::EncryptedPrivateKeyInfo::from_der(&block.der).map_err(|e| {
                    FileError::malformed(format!("malformed ENCRYPTED PRIVATE KEY: {e}"))
                })?;
                let doc = info
                    .decrypt(pass.as_bytes())
                    .map_err(|_| FileError::WrongPassphrase { path: None })?;
                return Ok((parse_pkcs8(doc.as_bytes())?, KeyFormat::EncryptedPkcs8Pem));
            }
            "EC PRIVATE KEY" => return Ok((parse_sec1(&block.der)?, KeyFormat::Sec1Pem)),
            "RSA PRIVATE KEY" => return Ok((parse_pkcs1(&block.der)?, KeyFormat::Pkcs1Pem)),
            // `openssl ecparam -genkey` writes the curve parameters first.
            "EC PARAMETERS" => {}
            other => labels.push(other.to_string()),
        }
    }
    let found = labels.join(", ");
    let hint = if labels
        .iter()
        .any(|l| l == "PUBLIC KEY" || l == "CERTIFICATE" || l == "RSA PUBLIC KEY")
    {
        " — that is public material; pkjwt needs the private key to sign"
    } else {
        ""
    };
    Err(FileError::malformed(format!(
        "no private key found (PEM blocks: {found}){hint}; expected PRIVATE KEY, ENCRYPTED PRIVATE KEY, \
         EC PRIVATE KEY or RSA PRIVATE KEY"
    )))
}

fn rejected(what: &str, e: aws_lc_rs::error::KeyRejected) -> FileError {
    FileError::malformed(format!("{what} rejected by the crypto library: {e}"))
}

/// PKCS#8 `PrivateKeyInfo` (RFC 5208 / RFC 5958).
pub(crate) fn parse_pkcs8(der: &[u8]) -> Result<PrivateKey, FileError> {
    let info = pkcs8::PrivateKeyInfo::from_der(der)
        .map_err(|e| FileError::malformed(format!("malformed PKCS#8 PrivateKeyInfo: {e}")))?;
    let oid = info.algorithm.oid.to_string();
    match oid.as_str() {
        OID_EC => {
            let params = info.algorithm.parameters_oid().map_err(|_| {
                FileError::malformed(
                    "EC key without a named curve (explicit curve parameters are not supported)",
                )
            })?;
            let curve = curve_from_oid(&params.to_string())?;
            let kp = EcdsaKeyPair::from_pkcs8(ecdsa_alg(curve), der)
                .map_err(|e| rejected("EC PKCS#8 key", e))?;
            Ok(PrivateKey::Ecdsa(kp))
        }
        OID_RSA => {
            check_rsa_size(info.private_key)?;
            let kp = RsaKeyPair::from_pkcs8(der).map_err(|e| rejected("RSA PKCS#8 key", e))?;
            Ok(PrivateKey::Rsa(kp))
        }
        OID_RSA_PSS => Err(FileError::malformed(
            "RSASSA-PSS-restricted key (OID 1.2.840.113549.1.1.10) is not supported; \
             generate a plain RSA key (it can sign PS256)",
        )),
        OID_ED25519 => {
            let kp = Ed25519KeyPair::from_pkcs8_maybe_unchecked(der)
                .map_err(|e| rejected("Ed25519 PKCS#8 key", e))?;
            Ok(PrivateKey::Ed25519(kp))
        }
        "1.3.101.113" => Err(FileError::malformed(
            "Ed448 keys are not supported; expected EC (P-256, P-384, P-521, secp256k1), RSA or Ed25519",
        )),
        other => Err(FileError::malformed(format!(
            "key algorithm OID {other} is not supported; expected EC (P-256, P-384, P-521, secp256k1), RSA or Ed25519"
        ))),
    }
}

fn curve_from_oid(oid: &str) -> Result<Curve, FileError> {
    match oid {
        "1.2.840.10045.3.1.7" => Ok(Curve::P256),
        "1.3.132.0.34" => Ok(Curve::P384),
        "1.3.132.0.35" => Ok(Curve::P521),
        "1.3.132.0.10" => Ok(Curve::Secp256k1),
        other => Err(FileError::malformed(format!(
            "unsupported EC curve (OID {other}); expected P-256, P-384, P-521 or secp256k1"
        ))),
    }
}

/// Refuses RSA keys below 2048 bits with a message that says so (the crypto library's own error
/// would only say "rejected").
fn check_rsa_size(pkcs1_der: &[u8]) -> Result<(), FileError> {
    let key = pkcs1::RsaPrivateKey::from_der(pkcs1_der)
        .map_err(|e| FileError::malformed(format!("malformed RSA private key: {e}")))?;
    let n = key.modulus.as_bytes();
    let n = &n[n.iter().take_while(|b| **b == 0).count()..];
    let bits = n.len() * 8 - n.first().map_or(8, |b| b.leading_zeros() as usize);
    if bits < MIN_RSA_BITS {
        return Err(FileError::malformed(format!(
            "RSA key of {bits} bits; at least {MIN_RSA_BITS} bits are required"
        )));
    }
    Ok(())
}

/// SEC1 `ECPrivateKey` (RFC 5915).
fn parse_sec1(der: &[u8]) -> Result<PrivateKey, FileError> {
    let key = sec1::EcPrivateKey::from_der(der)
        .map_err(|e| FileError::malformed(format!("malformed EC PRIVATE KEY: {e}")))?;
    let curve_oid = key
        .parameters
        .and_then(|p| p.named_curve())
        .ok_or_else(|| {
            FileError::malformed("EC PRIVATE KEY without a named curve; convert it to PKCS#8 with `openssl pkcs8 -topk8 -nocrypt`")
        })?;
    let curve = curve_from_oid(&curve_oid.to_string())?;
    let kp = EcdsaKeyPair::from_private_key_der(ecdsa_alg(curve), der)
        .map_err(|e| rejected("EC PRIVATE KEY", e))?;
    Ok(PrivateKey::Ecdsa(kp))
}

/// PKCS#1 `RSAPrivateKey`.
fn parse_pkcs1(der: &[u8]) -> Result<PrivateKey, FileError> {
    check_rsa_size(der)?;
    let kp = RsaKeyPair::from_der(der).map_err(|e| rejected("RSA PRIVATE KEY", e))?;
    Ok(PrivateKey::Rsa(kp))
}

/// A private JWK (RFC 7518 §6.2.2, §6.3.2; RFC 8037 §2).
fn parse_private_jwk(text: &str) -> Result<PrivateKey, FileError> {
    // The parsed tree holds `d` (and p, q, … for RSA) as strings: wiped when it goes out of
    // scope, on the error paths too (issue 12, item 12).
    let v = WipedJson(
        pkjwt_core::jwk::parse_json_no_duplicates(text)
            .map_err(|e| FileError::malformed(format!("private JWK: {e}")))?,
    );
    let obj =
        v.0.as_object()
            .ok_or_else(|| FileError::malformed("private JWK must be a JSON object"))?;
    let get = |name: &str| -> Result<Zeroizing<Vec<u8>>, FileError> {
        let s = obj
            .get(name)
            .and_then(|v| v.as_str())
            .ok_or_else(|| FileError::malformed(format!("private JWK lacks member \"{name}\"")))?;
        b64::decode(&format!("member \"{name}\""), s)
            .map(Zeroizing::new)
            .map_err(|e| FileError::malformed(format!("private JWK: {e}")))
    };
    let kty = obj.get("kty").and_then(|v| v.as_str()).unwrap_or("");
    if obj.contains_key("keys") {
        return Err(FileError::malformed(
            "this is a JWK set; pkjwt needs a single private JWK",
        ));
    }
    if !obj.contains_key("d") && matches!(kty, "EC" | "RSA" | "OKP") {
        return Err(FileError::malformed(
            "JWK has no private member \"d\": it is a public key; pkjwt needs the private key to sign",
        ));
    }
    match kty {
        "EC" => {
            let crv = obj.get("crv").and_then(|v| v.as_str()).unwrap_or("");
            let curve = Curve::from_jwk_name(crv).ok_or_else(|| {
                FileError::malformed(format!(
                    "unsupported EC curve \"{crv}\"; expected P-256, P-384, P-521 or secp256k1"
                ))
            })?;
            let (d, x, y) = (get("d")?, get("x")?, get("y")?);
            let field = curve.field_len();
            for (name, v) in [("d", &d), ("x", &x), ("y", &y)] {
                if v.len() != field {
                    return Err(FileError::malformed(format!(
                        "member \"{name}\" of a {curve} JWK must be {field} bytes, got {}",
                        v.len()
                    )));
                }
            }
            let mut point = Vec::with_capacity(1 + 2 * field);
            point.push(4);
            point.extend_from_slice(&x);
            point.extend_from_slice(&y);
            let kp = EcdsaKeyPair::from_private_key_and_public_key(ecdsa_alg(curve), &d, &point)
                .map_err(|e| rejected("EC JWK (d does not match x, y?)", e))?;
            Ok(PrivateKey::Ecdsa(kp))
        }
        "RSA" => {
            if obj.contains_key("oth") {
                return Err(FileError::malformed(
                    "multi-prime RSA JWK (\"oth\") is not supported",
                ));
            }
            let parts = ["n", "e", "d", "p", "q", "dp", "dq", "qi"]
                .iter()
                .map(|m| get(m))
                .collect::<Result<Vec<_>, _>>()?;
            fn uint(b: &[u8]) -> Result<pkcs1::UintRef<'_>, FileError> {
                pkcs1::UintRef::new(b)
                    .map_err(|e| FileError::malformed(format!("RSA JWK number: {e}")))
            }
            let key = pkcs1::RsaPrivateKey {
                modulus: uint(&parts[0])?,
                public_exponent: uint(&parts[1])?,
                private_exponent: uint(&parts[2])?,
                prime1: uint(&parts[3])?,
                prime2: uint(&parts[4])?,
                exponent1: uint(&parts[5])?,
                exponent2: uint(&parts[6])?,
                coefficient: uint(&parts[7])?,
                other_prime_infos: None,
            };
            let der = Zeroizing::new(
                pkcs8::der::Encode::to_der(&key)
                    .map_err(|e| FileError::malformed(format!("RSA JWK: {e}")))?,
            );
            parse_pkcs1(&der)
        }
        "OKP" => {
            let crv = obj.get("crv").and_then(|v| v.as_str()).unwrap_or("");
            if crv != "Ed25519" {
                return Err(FileError::malformed(format!(
                    "unsupported OKP curve \"{crv}\"; expected Ed25519"
                )));
            }
            let (d, x) = (get("d")?, get("x")?);
            let kp = Ed25519KeyPair::from_seed_and_public_key(&d, &x)
                .map_err(|e| rejected("Ed25519 JWK (d does not match x?)", e))?;
            Ok(PrivateKey::Ed25519(kp))
        }
        "oct" => Err(FileError::malformed(
            "kty \"oct\" is a symmetric secret; private_key_jwt needs an asymmetric key",
        )),
        "" => Err(FileError::malformed("JWK lacks \"kty\"")),
        other => Err(FileError::malformed(format!(
            "unsupported kty \"{other}\"; expected EC, RSA or OKP"
        ))),
    }
}
