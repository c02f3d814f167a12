//! PEM (RFC 7468) encoding and a careful decoder that says what it found when it is not what was
//! expected.

use crate::Result;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;

/// Encodes DER as PEM with 64-column lines.
pub fn encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = String::with_capacity(b64.len() + b64.len() / 64 + 2 * label.len() + 40);
    out.push_str("-----BEGIN ");
    out.push_str(label);
    out.push_str("-----\n");
    // Invariant: base64 output is ASCII, so every 64-byte chunk is valid UTF-8.
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str("-----END ");
    out.push_str(label);
    out.push_str("-----\n");
    out
}

/// One decoded PEM block.
#[derive(Clone, PartialEq, Eq)]
pub struct PemBlock {
    /// The label between `BEGIN ` and `-----`, e.g. `PRIVATE KEY`.
    pub label: String,
    /// RFC 1421 headers (`Proc-Type: 4,ENCRYPTED`), present in legacy OpenSSL encrypted keys.
    pub headers: Vec<(String, String)>,
    /// The decoded contents.
    pub der: Vec<u8>,
}

impl std::fmt::Debug for PemBlock {
    // The contents may be a private key: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PemBlock({}, {} bytes)", self.label, self.der.len())
    }
}

impl Drop for PemBlock {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(&mut self.der);
    }
}

/// Why PEM text could not be decoded.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum PemError {
    /// No `-----BEGIN …-----` line.
    #[error("no PEM block found (expected a line like \"-----BEGIN PRIVATE KEY-----\")")]
    NoBlock,
    /// A BEGIN without its END.
    #[error("PEM block \"{0}\" has no matching \"-----END {0}-----\" line")]
    Unterminated(String),
    /// Bad base64 inside.
    #[error("PEM block \"{label}\" holds invalid base64: {reason}")]
    Base64 {
        /// Block label.
        label: String,
        /// Decoder message.
        reason: String,
    },
}

/// Decodes every PEM block in `text`, in order. Text outside blocks (comments, `openssl`'s
/// "Bag Attributes") is ignored, as OpenSSL does.
pub fn decode_all(text: &str) -> Result<Vec<PemBlock>, PemError> {
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        let Some(label) = line
            .strip_prefix("-----BEGIN ")
            .and_then(|l| l.strip_suffix("-----"))
        else {
            continue;
        };
        let end = format!("-----END {label}-----");
        let mut headers = Vec::new();
        let mut body = zeroize::Zeroizing::new(String::new());
        let mut closed = false;
        for l in lines.by_ref() {
            if l == end {
                closed = true;
                break;
            }
            if body.is_empty()
                && let Some((k, v)) = l.split_once(':')
            {
                headers.push((k.trim().to_string(), v.trim().to_string()));
                continue;
            }
            body.push_str(l);
        }
        if !closed {
            return Err(PemError::Unterminated(label.to_string()));
        }
        let der = STANDARD
            .decode(body.as_bytes())
            .map_err(|e| PemError::Base64 {
                label: label.to_string(),
                reason: e.to_string(),
            })?;
        blocks.push(PemBlock {
            label: label.to_string(),
            headers,
            der,
        });
    }
    if blocks.is_empty() {
        return Err(PemError::NoBlock);
    }
    Ok(blocks)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let pem = encode("PUBLIC KEY", &[1, 2, 3, 250]);
        let blocks = decode_all(&format!("junk\n{pem}")).unwrap();
        assert_eq!(blocks[0].label, "PUBLIC KEY");
        assert_eq!(blocks[0].der, vec![1, 2, 3, 250]);
        assert_eq!(decode_all("hello").unwrap_err(), PemError::NoBlock);
        assert!(matches!(
            decode_all("-----BEGIN X-----\nAAAA\n").unwrap_err(),
            PemError::Unterminated(_)
        ));
        assert!(matches!(
            decode_all("-----BEGIN X-----\nA*AA\n-----END X-----\n").unwrap_err(),
            PemError::Base64 { .. }
        ));
    }
}
