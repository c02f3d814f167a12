//! PKCS#12 keystore reading (pkjwt-file: `.p12` / `.pfx` with a password), through the public
//! entry point `FileSigner::from_pkcs12` (what `FileSigner::open` calls for a
//! `file:KEYSTORE?password-source=…` URI once it has read the file and the password).
//!
//! Input: `n`, then an `n`-byte password (UTF-8), then the keystore.
//!
//! Invariants held, besides "never panics":
//! - no error text (Display, Debug, cause chain) and no signer `Debug` contains the password. A
//!   password of at least 8 bytes found in the text counts as leaked unless the keystore bytes
//!   hold it too or the same keystore opened with another password of the same length yields a
//!   text that also holds it (then the text quotes something else that happens to equal it);
//! - an opened keystore gives a signer in format `Pkcs12` that signs, and whose signature
//!   converts to a JWS signature for its own public key.
#![no_main]

use libfuzzer_sys::fuzz_target;
use pkjwt_core::{Signer, display_chain, jws};
use pkjwt_file::{FileError, FileSigner, KeyFormat};

fn open(keystore: &[u8], password: &str) -> Result<FileSigner, FileError> {
    FileSigner::from_pkcs12(keystore, password, None)
}

fn error_text(e: &FileError) -> String {
    format!("{e}\n{e:?}\n{}", display_chain(e))
}

/// A password of the same length in characters that differs from `p` at every position.
fn other_password(p: &str) -> String {
    p.chars()
        .map(|c| if c == 'Q' { 'Z' } else { 'Q' })
        .collect()
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else {
        return;
    };
    let n = usize::from(n);
    if rest.len() < n {
        return;
    }
    let (password, keystore) = rest.split_at(n);
    let Ok(password) = std::str::from_utf8(password) else {
        return;
    };

    let (text, opened) = match open(keystore, password) {
        Ok(signer) => {
            assert_eq!(signer.format(), KeyFormat::Pkcs12);
            let sig = signer.try_sign(b"fuzz").expect("an opened keystore signs");
            jws::jws_signature(signer.algorithm(), signer.public_key(), &sig)
                .expect("the signature fits the key");
            for c in signer.certificate_chain() {
                assert!(!c.is_empty());
            }
            (format!("{signer:?}"), true)
        }
        Err(e) => {
            let text = error_text(&e);
            assert!(!e.to_string().is_empty());
            (text, false)
        }
    };

    if password.len() >= 8 && text.contains(password) && !contains(keystore, password.as_bytes()) {
        let other = match open(keystore, &other_password(password)) {
            Ok(signer) => format!("{signer:?}"),
            Err(e) => error_text(&e),
        };
        assert!(
            other.contains(password),
            "the password {password:?} appears in the {}: {text}",
            if opened { "signer's Debug" } else { "error" }
        );
    }
});
