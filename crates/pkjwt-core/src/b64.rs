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

/// Appends base64url of `data` to a byte buffer (JSON being written) without an intermediate
/// allocation.
pub(crate) fn encode_into_vec(data: impl AsRef<[u8]>, out: &mut Vec<u8>) {
    let data = data.as_ref();
    let start = out.len();
    out.resize(start + encoded_len(data.len()), 0);
    // Invariant: the slice was just sized to the exact encoded length, which is all
    // `encode_slice` needs to succeed.
    let written = URL_SAFE_NO_PAD
        .encode_slice(data, &mut out[start..])
        .unwrap_or(0);
    debug_assert_eq!(written, out.len() - start);
}

/// Length of the base64url encoding (no padding) of `n` bytes.
pub(crate) const fn encoded_len(n: usize) -> usize {
    n / 3 * 4 + [0, 2, 3][n % 3]
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

    #[test]
    fn encoded_len_and_vec_encoding_agree_with_the_string_encoder() {
        for n in 0..70 {
            let data: Vec<u8> = (0..n).map(|i| (i * 37 + 11) as u8).collect();
            let want = encode(&data);
            assert_eq!(encoded_len(n), want.len(), "{n} bytes");
            let mut v = b"prefix".to_vec();
            encode_into_vec(&data, &mut v);
            assert_eq!(&v[..6], b"prefix");
            assert_eq!(&v[6..], want.as_bytes(), "{n} bytes");
        }
    }
}
