//! Errors of certificate and CSR building.

/// What went wrong building or reading a certificate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum X509Error {
    /// The subject is not a distinguished name.
    #[error("subject {subject:?} is {reason}")]
    Subject {
        /// As given.
        subject: String,
        /// What was wrong.
        reason: String,
    },
    /// A subject alternative name that cannot be used.
    #[error("subject alternative name {san:?}: {reason}")]
    San {
        /// As given.
        san: String,
        /// What was wrong.
        reason: String,
    },
    /// A validity that makes no sense.
    #[error("invalid validity: {0}")]
    Validity(String),
    /// The certificate's key is not the signer's.
    #[error(
        "the certificate's public key ({cert_key}) is not the signer's ({signer_key}); refusing a mismatched pair"
    )]
    KeyMismatch {
        /// Description of the certificate's key.
        cert_key: String,
        /// Description of the signer's key.
        signer_key: String,
    },
    /// Signing failed in the backend (the backend's error is the source).
    #[error("signing the certificate failed")]
    Sign(#[source] pkjwt_core::Error),
    /// A key pkjwt cannot use.
    #[error(transparent)]
    Key(pkjwt_core::Error),
    /// DER encoding or decoding failed.
    #[error("{what}: {reason}")]
    Der {
        /// The structure.
        what: &'static str,
        /// The encoder's message.
        reason: String,
    },
    /// The builder refused.
    #[error("cannot build the certificate: {0}")]
    Build(String),
    /// Bytes that hold no certificate (the reason says what they hold instead).
    #[error("{0}")]
    NotCertificates(String),
    /// A certificate file that cannot be read or used (the reason names what was wrong).
    #[error("certificate file {path}: {reason}")]
    File {
        /// The file as given.
        path: String,
        /// What was wrong: the I/O error, the parse error, or the key mismatch.
        reason: String,
    },
    /// The backend keeps certificates with the key, but none of them holds its public key.
    #[error(
        "none of the {count} certificate(s) kept with the key holds its public key; give the \
         key's certificate as a file"
    )]
    NoStoredMatch {
        /// How many certificates the backend holds for the key.
        count: usize,
    },
}

impl From<X509Error> for pkjwt_core::Error {
    fn from(e: X509Error) -> Self {
        pkjwt_core::Error::certificate(e)
    }
}

impl X509Error {
    pub(crate) fn der<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> X509Error {
        move |e| X509Error::Der {
            what,
            reason: e.to_string(),
        }
    }

    pub(crate) fn build(e: x509_cert::builder::Error) -> X509Error {
        X509Error::Build(e.to_string())
    }

    pub(crate) fn build_spki<E: std::fmt::Display>(e: E) -> X509Error {
        X509Error::Build(e.to_string())
    }
}
