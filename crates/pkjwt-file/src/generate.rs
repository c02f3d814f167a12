//! Key generation: a fresh key for any algorithm family, written as PKCS#8 PEM with mode 0600,
//! never over an existing file.

use aws_lc_rs::encoding::AsDer;
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::KeySize;
use aws_lc_rs::signature::{EcdsaKeyPair, Ed25519KeyPair, RsaKeyPair};
use pkcs8::der::Decode;
use pkjwt_core::private_file::{Overwrite, write_private};
use pkjwt_core::{Algorithm, DEFAULT_RSA_BITS, Family, FileUri, GenerateOptions, RsaSizes, pem};
use zeroize::Zeroizing;

use crate::{FileError, FileSigner, KeyFormat, load};

/// PBKDF2-HMAC-SHA256 iterations for encrypted keys (OWASP's 2023 recommendation).
const PBKDF2_ITERATIONS: u32 = 600_000;

/// The RSA sizes aws-lc-rs generates.
const RSA_SIZES: RsaSizes<'static> = RsaSizes::OneOf(&[2048, 3072, 4096]);

/// Generates a key for `alg` and writes it to `uri.path` as PKCS#8 PEM (encrypted with
/// PBES2/PBKDF2-SHA256/AES-256-CBC when the URI has a `passphrase-source`). The file is created
/// with mode 0600 and never overwrites an existing one. Returns the signer for the new key.
///
/// [`GenerateOptions::rsa_bits`]: 2048, 3072 or 4096 for RS*/PS* (default 2048); any other
/// value, or a size for another algorithm, is refused before anything is written.
pub fn generate(
    uri: &FileUri,
    alg: Algorithm,
    options: &GenerateOptions,
) -> Result<FileSigner, FileError> {
    if uri.password.is_some() || crate::pkcs12::is_keystore_path(&uri.path) {
        return Err(FileError::Unsupported {
            path: uri.path.clone(),
            what: "a PKCS#12 keystore holds a certificate too: create it through the pkjwt facade \
                   (pkjwt::generate with file:KEYSTORE.p12?password-source=…), or with \
                   generate_in_memory + pkcs12::write_new"
                .into(),
        });
    }
    let passphrase = uri
        .passphrase
        .as_ref()
        .map(|s| s.read("passphrase"))
        .transpose()?;
    let pkcs8 = generate_pkcs8(alg, options)?;
    // Parse back before writing: the file only appears if the key is usable.
    let signer = FileSigner::from_key(load::parse_pkcs8(&pkcs8)?, KeyFormat::Pkcs8Pem, Some(alg))?;
    let text = Zeroizing::new(match passphrase {
        None => pem::encode("PRIVATE KEY", &pkcs8),
        Some(pass) => pem::encode("ENCRYPTED PRIVATE KEY", &encrypt(&pkcs8, pass.as_bytes())?),
    });
    write_private(&uri.path, text.as_bytes(), Overwrite::Never)?;
    Ok(FileSigner {
        path: Some(uri.path.clone()),
        format: if uri.passphrase.is_some() {
            KeyFormat::EncryptedPkcs8Pem
        } else {
            KeyFormat::Pkcs8Pem
        },
        ..signer
    })
}

/// A new key for `alg`, in memory only: its signer and its DER PKCS#8 (for writing it in another
/// container, such as a PKCS#12 keystore with its certificate).
pub fn generate_in_memory(
    alg: Algorithm,
    options: &GenerateOptions,
) -> Result<(FileSigner, Zeroizing<Vec<u8>>), FileError> {
    let pkcs8 = generate_pkcs8(alg, options)?;
    let signer = FileSigner::from_key(load::parse_pkcs8(&pkcs8)?, KeyFormat::Pkcs8Der, Some(alg))?;
    Ok((signer, pkcs8))
}

/// A new private key for `alg` as DER PKCS#8.
pub(crate) fn generate_pkcs8(
    alg: Algorithm,
    options: &GenerateOptions,
) -> Result<Zeroizing<Vec<u8>>, FileError> {
    let rsa_bits = options.rsa_bits_for(alg, "file", DEFAULT_RSA_BITS, RSA_SIZES)?;
    let rng = SystemRandom::new();
    let fail = |_| FileError::Internal("key generation failed in the crypto library");
    let der = match alg.family() {
        Family::Ecdsa(curve) => EcdsaKeyPair::generate_pkcs8(crate::ecdsa_alg(curve), &rng)
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        Family::RsaPss | Family::RsaPkcs1 => {
            let size = match rsa_bits {
                Some(2048) => KeySize::Rsa2048,
                Some(3072) => KeySize::Rsa3072,
                Some(4096) => KeySize::Rsa4096,
                // rsa_bits_for returns the default or one of RSA_SIZES for an RSA algorithm.
                _ => return Err(FileError::Internal("RSA size outside RSA_SIZES")),
            };
            let kp = RsaKeyPair::generate(size).map_err(fail)?;
            let doc: aws_lc_rs::encoding::Pkcs8V1Der = kp.as_der().map_err(fail)?;
            doc.as_ref().to_vec()
        }
        // PKCS#8 v1 (no embedded public key): OpenSSL 3.0 and older Java cannot read the v2
        // (RFC 5958 OneAsymmetricKey) form.
        Family::Ed25519 => Ed25519KeyPair::generate_pkcs8v1(&rng)
            .map_err(fail)?
            .as_ref()
            .to_vec(),
        #[allow(unreachable_patterns)]
        _ => return Err(FileError::Internal("algorithm family without a generator")),
    };
    Ok(Zeroizing::new(der))
}

fn encrypt(pkcs8_der: &[u8], pass: &[u8]) -> Result<Vec<u8>, FileError> {
    let mut salt = [0u8; 16];
    let mut iv = [0u8; 16];
    getrandom::fill(&mut salt)
        .and_then(|_| getrandom::fill(&mut iv))
        .map_err(|_| FileError::Internal("operating system random generator failed"))?;
    let params = pkcs5::pbes2::Parameters::pbkdf2_sha256_aes256cbc(PBKDF2_ITERATIONS, &salt, &iv)
        .map_err(|_| FileError::Internal("PBES2 parameters"))?;
    let info = pkcs8::PrivateKeyInfo::from_der(pkcs8_der)
        .map_err(|_| FileError::Internal("generated PKCS#8 does not parse"))?;
    let doc = info
        .encrypt_with_params(params, pass)
        .map_err(|_| FileError::Internal("PKCS#8 encryption failed"))?;
    Ok(doc.as_bytes().to_vec())
}
