//! Private key parsing (PEM PKCS#8 / encrypted PKCS#8 / SEC1 / PKCS#1, DER, private JWK): never
//! panics on any input.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = pkjwt_file::FileSigner::from_bytes(data, Some("fuzz"), None);
    if let Ok(s) = std::str::from_utf8(data) {
        let _ = pkjwt_core::pem::decode_all(s);
    }
});
