//! base64url without padding (RFC 7515 §2), strict on input: no padding, no whitespace, no
//! standard-alphabet characters and no non-zero trailing bits, so every value has exactly one
//! accepted spelling.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::{Error, Result};

/// Encodes bytes as base64url without padding.
pub fn encode(data: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(data)
}

/// Appends base64url of `data` to `out` without an intermediate allocation.
pub fn encode_into(data: impl AsRef<[u8]>, out: &mut String) {
    URL_SAFE_NO_PAD.encode_string(data, out)
}

/// Decodes strict base64url; `what` names the field for the error message.
pub fn decode(what: &str, s: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD.decode(s).map_err(|e| {
        Error::Jwk(format!(
            "{what} is not canonical base64url without padding ({e})"
        ))
    })
}

/// Encodes bytes as standard base64 with padding (used by `x5c`, RFC 7517 §4.7).
pub fn encode_std(data: impl AsRef<[u8]>) -> String {
    STANDARD.encode(data)
}

/// Decodes standard base64 with padding (used by `x5c`).
pub fn decode_std(what: &str, s: &str) -> Result<Vec<u8>> {
    STANDARD
        .decode(s)
        .map_err(|e| Error::Jwk(format!("{what} is not standard base64 ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strictness() {
        assert_eq!(decode("x", "AQAB").unwrap(), vec![1, 0, 1]);
        assert!(decode("x", "AQAB=").is_err());
        assert!(decode("x", "AQ+B").is_err());
        // "AR" has non-zero trailing bits (canonical spelling of [0x01] is "AQ").
        assert!(decode("x", "AR").is_err());
        assert!(decode("x", "AQ AB").is_err());
    }
}
