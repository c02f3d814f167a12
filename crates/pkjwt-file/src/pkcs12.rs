//! PKCS#12 keystores (`.p12` / `.pfx`): what Java-based servers and administrators exchange.
//!
//! Reading accepts the modern form (PBES2: PBKDF2-HMAC-SHA256 + AES-256-CBC, as OpenSSL 3 writes
//! by default) and the legacy one (PBE-SHA1-3DES, OpenSSL 1.x and old Java). Writing produces the
//! modern form with an HMAC-SHA256 MAC, always with the key's certificate, since the leaf
//! certificate is what feeds `x5c` / `x5t#S256`. A keystore read without any certificate still
//! opens (a key is a key); it just has no chain to publish.

use std::path::Path;

use p12_keystore::{
    Certificate, EncryptionAlgorithm, KeyStore, KeyStoreEntry, MacAlgorithm, Pkcs12Archive,
    PrivateKey as P12Key, PrivateKeyChain,
};
use pkjwt_core::private_file::{Overwrite, write_private};
use zeroize::Zeroizing;

use crate::{FileError, PrivateKey, load};

/// PBKDF2 iterations for keystores pkjwt writes (key encryption and MAC). Higher than OpenSSL's
/// 2,048 default; lower than the PKCS#8 figure because Java's keytool and some servers read
/// keystores on every start.
const ITERATIONS: u32 = 100_000;

/// Reads the private key and certificate chain (leaf first) from PKCS#12 bytes.
pub(crate) fn read(bytes: &[u8], password: &str) -> Result<(PrivateKey, Vec<Vec<u8>>), FileError> {
    let archive = Pkcs12Archive::from_pkcs12(bytes, password).map_err(|e| match e {
        p12_keystore::error::Error::MacError(_) => FileError::WrongPassphrase { path: None },
        other => FileError::malformed(format!(
            "not a readable PKCS#12 keystore ({other}); expected a .p12/.pfx file"
        )),
    })?;
    let key = match archive.keys.as_slice() {
        [one] => one,
        [] => {
            return Err(FileError::malformed(
                "the PKCS#12 keystore holds no private key (only certificates?)",
            ));
        }
        more => {
            return Err(FileError::malformed(format!(
                "the PKCS#12 keystore holds {} private keys; pkjwt needs exactly one",
                more.len()
            )));
        }
    };
    let pkcs8 = Zeroizing::new(key.key.as_der().to_vec());
    let private = load::parse_pkcs8(&pkcs8)?;
    // The leaf is the certificate bound to the key by localKeyId, else the only one; the rest of
    // the chain follows in file order.
    let mut certs: Vec<Vec<u8>> = Vec::new();
    let leaf = archive.certs.iter().position(|c| {
        matches!((&c.local_key_id, &key.local_key_id), (Some(a), Some(b)) if a.as_slice() == b.as_ref())
    });
    if let Some(i) = leaf {
        certs.push(archive.certs[i].cert.as_der().to_vec());
    }
    for (i, c) in archive.certs.iter().enumerate() {
        if Some(i) != leaf {
            certs.push(c.cert.as_der().to_vec());
        }
    }
    Ok((private, certs))
}

/// Writes a new keystore (mode 0600, never overwriting) holding `pkcs8_der` and `chain`.
pub fn write_new(
    path: &Path,
    pkcs8_der: &[u8],
    chain: &[Vec<u8>],
    password: &str,
) -> Result<(), FileError> {
    if chain.is_empty() {
        return Err(FileError::Internal(
            "a PKCS#12 keystore needs the key's certificate",
        ));
    }
    let key = P12Key::from_der(pkcs8_der)
        .map_err(|_| FileError::Internal("PKCS#8 key not accepted by the PKCS#12 writer"))?;
    let certs = chain
        .iter()
        .map(|c| Certificate::from_der(c))
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| FileError::malformed(format!("certificate for the keystore: {e}")))?;
    let mut local_key_id = [0u8; 20];
    getrandom::fill(&mut local_key_id)
        .map_err(|_| FileError::Internal("operating system random generator failed"))?;
    let mut store = KeyStore::new();
    store.add_entry(
        "pkjwt",
        KeyStoreEntry::PrivateKeyChain(PrivateKeyChain::new(local_key_id.to_vec(), key, certs)),
    );
    let bytes = store
        .writer(password)
        .encryption_algorithm(EncryptionAlgorithm::PbeWithHmacSha256AndAes256)
        .encryption_iterations(ITERATIONS)
        .mac_algorithm(MacAlgorithm::HmacSha256)
        .mac_iterations(ITERATIONS)
        .write()
        .map_err(|e| FileError::malformed(format!("cannot write the PKCS#12 keystore: {e}")))?;
    Ok(write_private(path, &bytes, Overwrite::Never)?)
}

/// True when a path names a keystore by its extension.
pub(crate) fn is_keystore_path(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("p12") || e.eq_ignore_ascii_case("pfx"))
}
