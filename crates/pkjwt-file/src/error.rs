//! Errors of the file backend.

use std::path::{Path, PathBuf};

use pkjwt_core::Algorithm;

/// What went wrong loading, generating or using a key file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FileError {
    /// The file could not be read or written (the OS error is the source).
    #[error("{}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A private key file others can read.
    #[error(
        "{path}: private key file is accessible by group or others (mode {mode:04o}); \
         run `chmod 600 {path}`, or allow it explicitly (FileOptions::allow_insecure_permissions)"
    )]
    InsecurePermissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// The contents are not a key pkjwt can read.
    #[error("{}{reason}", path_prefix(.path))]
    Malformed {
        /// The file, when known.
        path: Option<PathBuf>,
        /// What was wrong and what was expected.
        reason: String,
    },
    /// An encrypted key and no passphrase.
    #[error(
        "{}the key is encrypted (ENCRYPTED PRIVATE KEY); give its passphrase with \
         ?passphrase-source=env:NAME or file:PATH",
        path_prefix(.path)
    )]
    PassphraseRequired {
        /// The file, when known.
        path: Option<PathBuf>,
    },
    /// Decryption failed.
    #[error("{}cannot decrypt the key: wrong passphrase, or a corrupt file", path_prefix(.path))]
    WrongPassphrase {
        /// The file, when known.
        path: Option<PathBuf>,
    },
    /// A format or feature pkjwt does not handle.
    #[error("{path}: {what}")]
    Unsupported {
        /// The file.
        path: PathBuf,
        /// What is unsupported, and the way out.
        what: String,
    },
    /// Refusing to overwrite an existing key.
    #[error(
        "{0}: already exists; refusing to overwrite a key (remove it first, or choose another path)"
    )]
    Exists(PathBuf),
    /// Key or algorithm rejected by the core rules (size, curve, algorithm mismatch); the core
    /// error is the source.
    #[error("{}", key_context(.path))]
    Key {
        /// The file, when known.
        path: Option<PathBuf>,
        /// The core error.
        #[source]
        source: pkjwt_core::Error,
    },
    /// A secret could not be read from its source.
    #[error(transparent)]
    Secret(pkjwt_core::Error),
    /// Signing failed inside the crypto library.
    #[error("signing with {alg} failed in the crypto library")]
    Sign {
        /// The algorithm.
        alg: Algorithm,
    },
    /// A failure that indicates a bug.
    #[error("internal error: {0}")]
    Internal(&'static str),
}

/// What [`FileError::Key`] says before its cause: the file, or that a key (made or parsed in
/// memory) was refused.
fn key_context(p: &Option<PathBuf>) -> String {
    match p {
        Some(p) => p.display().to_string(),
        None => "key refused".into(),
    }
}

fn path_prefix(p: &Option<PathBuf>) -> String {
    match p {
        Some(p) => format!("{}: ", p.display()),
        None => String::new(),
    }
}

impl From<pkjwt_core::Error> for FileError {
    fn from(e: pkjwt_core::Error) -> Self {
        match e {
            pkjwt_core::Error::SecretSource { .. } => FileError::Secret(e),
            other => FileError::Key {
                path: None,
                source: other,
            },
        }
    }
}

impl From<FileError> for pkjwt_core::Error {
    fn from(e: FileError) -> Self {
        pkjwt_core::Error::backend("file", e)
    }
}

impl From<pkjwt_core::private_file::PrivateFileError> for FileError {
    fn from(e: pkjwt_core::private_file::PrivateFileError) -> Self {
        use pkjwt_core::private_file::PrivateFileError as P;
        match e {
            P::Exists(path) => FileError::Exists(path),
            P::Io { path, source, .. } => FileError::Io { path, source },
            P::Insecure { path, reason } => FileError::Unsupported { path, what: reason },
            // PrivateFileError is non_exhaustive: keep whatever a later variant says.
            other => FileError::Unsupported {
                path: other.path().to_path_buf(),
                what: other.to_string(),
            },
        }
    }
}

impl FileError {
    pub(crate) fn malformed(reason: impl Into<String>) -> Self {
        FileError::Malformed {
            path: None,
            reason: reason.into(),
        }
    }

    /// Attaches the file name to errors raised while parsing its contents.
    pub(crate) fn with_path(self, p: &Path) -> Self {
        let some = Some(p.to_path_buf());
        match self {
            FileError::Malformed { path: None, reason } => {
                FileError::Malformed { path: some, reason }
            }
            FileError::PassphraseRequired { path: None } => {
                FileError::PassphraseRequired { path: some }
            }
            FileError::WrongPassphrase { path: None } => FileError::WrongPassphrase { path: some },
            FileError::Key { path: None, source } => FileError::Key { path: some, source },
            other => other,
        }
    }
}
