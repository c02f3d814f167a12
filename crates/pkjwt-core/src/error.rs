//! The error type shared by every pkjwt crate.
//!
//! Each variant names what was wrong and, where it helps, what was expected. Backends keep their
//! own error enums (`FileError`, `Pkcs11Error`, …) and convert into [`Error::Backend`], so that the
//! facade and the CLI can treat every backend alike while the cause chain stays intact.
//!
//! The rule for every error type in pkjwt (docs/design.md, "Errors"): a variant either shows its
//! cause in its own message or returns it from `source()`, never both. A variant that wraps a
//! typed cause returns it and its message says only what it adds (`file backend`, `client
//! assertion`); [`display_chain`] is the one place that joins a message with its causes.

use std::fmt;

/// Result alias used throughout pkjwt.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in pkjwt's core.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A DER-encoded ECDSA signature (or other DER structure) is malformed.
    #[error("invalid DER {what}: {reason}")]
    Der {
        /// What was being decoded (for example "ECDSA signature").
        what: &'static str,
        /// Why it was refused.
        reason: String,
    },
    /// An algorithm name that pkjwt does not know.
    #[error(
        "unknown algorithm {0}; expected one of ES256, ES384, ES512, ES256K, PS256, PS384, PS512, RS256, RS384, RS512, EdDSA"
    )]
    UnknownAlgorithm(String),
    /// The key cannot produce the requested algorithm.
    #[error("algorithm {requested} cannot be used with {key}; this key can sign with {supported}")]
    AlgorithmMismatch {
        /// The algorithm asked for.
        requested: String,
        /// A description of the key (for example "an EC P-256 key").
        key: String,
        /// The algorithms the key supports, comma separated.
        supported: String,
    },
    /// A key the toolkit refuses to use (too small, unsupported curve, …).
    #[error("unsupported key: {0}")]
    UnsupportedKey(String),
    /// A JWK or JWKS that cannot be parsed or is not acceptable.
    #[error("invalid JWK: {0}")]
    Jwk(String),
    /// A JWKS holding two keys with the same `kid`.
    #[error("duplicate kid {0:?} in JWK set: every key needs its own kid")]
    DuplicateKid(String),
    /// A key URI that cannot be parsed.
    #[error("invalid key URI {uri}: {reason}")]
    KeyUri {
        /// The URI as given, with any PIN removed.
        uri: String,
        /// What was wrong, and the expected form.
        reason: String,
    },
    /// The key URI names a backend that this build does not include.
    #[error(
        "{uri}: this pkjwt was built without {backend} support (rebuild with the `{feature}` feature)"
    )]
    BackendNotBuilt {
        /// The URI, redacted.
        uri: String,
        /// Human name of the backend.
        backend: &'static str,
        /// Cargo feature that enables it.
        feature: &'static str,
    },
    /// A client-assertion setting that a server would reject or that makes no sense.
    #[error("invalid assertion settings: {0}")]
    Assertion(String),
    /// A secret (passphrase, PIN) could not be read from its source.
    #[error("cannot read {what} from {source_desc}: {reason}")]
    SecretSource {
        /// What the secret is for ("passphrase", "PIN").
        what: &'static str,
        /// Where it was to come from (`env:NAME`, `file:PATH`), never the value.
        source_desc: String,
        /// Why it failed.
        reason: String,
    },
    /// The signing backend failed. The backend's error is the [`source`](std::error::Error::source);
    /// [`display_chain`] prints both.
    #[error("{backend} backend")]
    Backend {
        /// Which backend ("file", "PKCS#11", "AWS KMS").
        backend: &'static str,
        /// What kind of failure, for metrics and retry decisions (see [`Error::kind`]).
        kind: &'static str,
        /// The backend's own error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A certificate could not be built, read or checked (the X.509 crate's error is the
    /// [`source`](std::error::Error::source)).
    #[error("X.509 certificate")]
    Certificate {
        /// The certificate crate's error.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync + 'static>,
    },
    /// A certificate was to be stored next to a key whose backend has no place for one.
    #[error(
        "{uri}: only PKCS#11 tokens store certificates next to the key; keep the certificate file \
         and give it wherever the key's certificate is needed, or use a PKCS#12 keystore for a \
         file key"
    )]
    NoCertificateStorage {
        /// The key URI, redacted.
        uri: String,
    },
    /// A key-generation option ([`crate::GenerateOptions`]) that the algorithm or the backend
    /// cannot honour; nothing was created.
    #[error("{option} for {alg}: {reason}")]
    GenerateOption {
        /// The algorithm the key was for.
        alg: crate::Algorithm,
        /// The option and its value, as the API names it (`rsa_bits = 8192`).
        option: String,
        /// Why it cannot be honoured, and what can.
        reason: String,
    },
    /// A signature returned by a backend does not fit the signature contract of [`crate::Signer`].
    #[error("signature from backend does not fit {alg}: {reason}")]
    BadSignature {
        /// The algorithm in use.
        alg: crate::Algorithm,
        /// What was wrong with it.
        reason: String,
    },
}

impl Error {
    /// Wraps a backend error.
    pub fn backend<E>(backend: &'static str, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Self::backend_kind(backend, "other", source)
    }

    /// Wraps a backend error of a known kind: one of `throttled`, `access_denied`, `not_found`,
    /// `key_unavailable` (disabled, pending deletion, wrong state), `unavailable` (service,
    /// network, timeout), `credentials`, `pin`, `key_changed`, `invalid_response`, `other`.
    pub fn backend_kind<E>(backend: &'static str, kind: &'static str, source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Backend {
            backend,
            kind,
            source: Box::new(source),
        }
    }

    /// A short, stable name of what went wrong, for metrics labels (`pkjwt agent`'s
    /// `pkjwt_agent_signer_errors_total{kind}`): a backend's own kind (see
    /// [`backend_kind`](Self::backend_kind)), or `key_uri`, `algorithm`, `key`, `certificate`,
    /// `signature`, `config` for pkjwt's own checks.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Backend { kind, .. } => kind,
            Error::KeyUri { .. } | Error::BackendNotBuilt { .. } | Error::SecretSource { .. } => {
                "key_uri"
            }
            Error::UnknownAlgorithm(_) | Error::AlgorithmMismatch { .. } => "algorithm",
            Error::UnsupportedKey(_) | Error::Jwk(_) | Error::DuplicateKid(_) => "key",
            Error::Certificate { .. } | Error::NoCertificateStorage { .. } => "certificate",
            Error::Der { .. } | Error::BadSignature { .. } => "signature",
            _ => "config",
        }
    }

    /// Wraps a certificate (X.509) error.
    pub fn certificate<E>(source: E) -> Self
    where
        E: std::error::Error + Send + Sync + 'static,
    {
        Error::Certificate {
            source: Box::new(source),
        }
    }

    pub(crate) fn der(what: &'static str, reason: impl fmt::Display) -> Self {
        Error::Der {
            what,
            reason: reason.to_string(),
        }
    }

    pub(crate) fn jwk(reason: impl fmt::Display) -> Self {
        Error::Jwk(reason.to_string())
    }
}

/// An error and its causes on one line, `outer: cause: root cause`, with control characters
/// escaped ([`escape_controls`]): how pkjwt shows an error to a person (the CLI's `pkjwt: error:`
/// line, a log line). Every cause is printed once, as its own `Display` says it; nothing is
/// dropped, because no pkjwt error repeats its source in its own message (see the module docs).
pub fn display_chain(e: &(dyn std::error::Error + 'static)) -> String {
    // Causes carry outside text (a server's description, a kid): never raw to a terminal.
    escape_controls(&ErrorChain(e).to_string()).into_owned()
}

/// Writes an error and its causes joined with `": "`, unescaped: the walker behind
/// [`display_chain`], for putting a foreign error's whole chain into another error's text (an
/// SDK's dispatch failure, an HTTP client's connect error). Text shown to a person goes through
/// [`display_chain`], which escapes it once at the end.
#[derive(Clone, Copy, Debug)]
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cur = self.0.source();
        while let Some(c) = cur {
            write!(f, ": {c}")?;
            cur = c.source();
        }
        Ok(())
    }
}

/// Makes outside text safe to show on a terminal or in a log line: control characters (C0 with
/// CR, LF and TAB, DEL, C1) and the Unicode bidirectional overrides are written as `\u{…}`
/// escapes, and a backslash as `\\`, so a `kid`, `typ` or server `error_description` holding CR/LF
/// or ANSI escapes cannot forge a line or recolour one (issue 12, item 6). Text without such
/// characters is returned as is.
pub fn escape_controls(text: &str) -> std::borrow::Cow<'_, str> {
    fn unsafe_char(c: char) -> bool {
        c.is_control()
            || c == '\\'
            || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}' | '\u{2028}' | '\u{2029}')
    }
    if !text.chars().any(unsafe_char) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if c == '\\' {
            out.push_str("\\\\");
        } else if unsafe_char(c) {
            out.push_str(&format!("\\u{{{:x}}}", c as u32));
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn control_characters_are_escaped() {
        let kid = "k1\r\n\u{1b}[32m\u{2713} signature accepted\u{1b}[0m\u{202e}";
        let shown = escape_controls(kid);
        assert_eq!(
            shown,
            "k1\\u{d}\\u{a}\\u{1b}[32m\u{2713} signature accepted\\u{1b}[0m\\u{202e}"
        );
        assert!(!shown.chars().any(|c| c.is_control()));
        assert!(matches!(
            escape_controls("plain kid-é"),
            std::borrow::Cow::Borrowed(_)
        ));
        // A backslash is escaped too, so a literal "\u{a}" cannot pass for an escaped LF.
        assert_eq!(escape_controls("a\\u{a}"), "a\\\\u{a}");
    }
}
