//! [`Pkcs11Error`]: everything that can go wrong between a `pkcs11:` URI and a signature.
//!
//! Every variant names what was wrong and what was expected. None of them ever carries a PIN:
//! PINs live only in `secrecy` types inside the signer, and URIs are printed through
//! [`pkjwt_core::Pkcs11Uri`]'s redacting `Display`.

use std::fmt;
use std::path::PathBuf;

use cryptoki::error::{Error as CkError, RvError};

/// An error from the PKCS#11 backend.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Pkcs11Error {
    /// Neither the URI nor the options name a PKCS#11 module.
    #[error(
        "{uri}: no PKCS#11 module given; add ?module-path=/path/to/module.so (for SoftHSM2: \
         /usr/lib/softhsm/libsofthsm2.so) or ?module-name=NAME, or set PKJWT_PKCS11_MODULE"
    )]
    NoModule {
        /// The URI, PIN redacted.
        uri: String,
    },
    /// `module-name=` matched no file in the searched directories.
    #[error("module-name={name}: no such PKCS#11 module in {searched}; give module-path= instead")]
    ModuleNameNotFound {
        /// The name from the URI.
        name: String,
        /// The directories searched, comma separated.
        searched: String,
    },
    /// The module file does not exist.
    #[error("PKCS#11 module {path} does not exist; expected the path of a PKCS#11 shared library")]
    ModuleNotFound {
        /// The path as given.
        path: PathBuf,
    },
    /// The module is not on the allow-list.
    #[error(
        "PKCS#11 module {path} is not allowed: it is not in {allowed_from} ({allowed}); \
         loading a module runs its code in this process"
    )]
    ModuleNotAllowed {
        /// The path as given.
        path: PathBuf,
        /// Where the allow-list came from.
        allowed_from: &'static str,
        /// The allowed paths, colon separated.
        allowed: String,
    },
    /// The file exists but could not be loaded as a PKCS#11 module.
    #[error("{path} is not a PKCS#11 module: {reason}")]
    NotAModule {
        /// The path.
        path: PathBuf,
        /// What the loader said.
        reason: String,
    },
    /// `C_Initialize` failed.
    #[error("PKCS#11 module {path}: C_Initialize failed with {rv}{hint}")]
    ModuleInit {
        /// The module path.
        path: PathBuf,
        /// The `CKR_` name.
        rv: String,
        /// A hint (for SoftHSM: the configuration file).
        hint: &'static str,
    },
    /// No token matches the URI.
    #[error("no token matches {wanted} in module {module}; the module has: {available}")]
    TokenNotFound {
        /// The token attributes asked for.
        wanted: String,
        /// The module path.
        module: PathBuf,
        /// The initialized tokens, with slot, label, serial, manufacturer and model.
        available: String,
    },
    /// Several tokens match the URI.
    #[error(
        "{wanted} matches {count} tokens ({candidates}); add token=, serial= or slot-id= to pick one"
    )]
    AmbiguousToken {
        /// The token attributes asked for.
        wanted: String,
        /// How many matched.
        count: usize,
        /// The matching tokens.
        candidates: String,
    },
    /// The token needs a login and no PIN source was given.
    #[error(
        "token \"{token}\" requires a login; add ?pin-source=file:PATH or ?pin-source=env:NAME to the URI"
    )]
    PinRequired {
        /// The token label.
        token: String,
    },
    /// The PIN could not be read from its source (the core error, the source, says why).
    #[error("token \"{token}\"")]
    PinSource {
        /// The token label.
        token: String,
        /// The underlying error (names the source, never the value).
        #[source]
        source: pkjwt_core::Error,
    },
    /// `C_Login` said the PIN is wrong.
    #[error("token \"{token}\": the PIN is incorrect (CKR_PIN_INCORRECT); check the pin-source")]
    PinIncorrect {
        /// The token label.
        token: String,
    },
    /// `C_Login` said the PIN is locked, expired or otherwise unusable.
    #[error(
        "token \"{token}\": the user PIN cannot be used ({rv}); the token's security officer must reset it"
    )]
    PinUnusable {
        /// The token label.
        token: String,
        /// The `CKR_` name.
        rv: String,
    },
    /// A signer stopped logging in: its token refused a PIN (this signer's, or one given to
    /// another opened in this process after this signer read its own) with `rv`. Until the
    /// signer is opened again, no `C_Login` is made with its cached PIN and every signature
    /// fails with this error without touching the token.
    #[error(
        "token \"{token}\" refused the PIN ({}); pkjwt will not try it again (retrying a wrong \
         PIN locks the token): fix the pin-source and open the signer again (restart the service)",
        ckr_name(*.rv)
    )]
    PinRefused {
        /// The token label.
        token: String,
        /// The refusal: `CKR_PIN_INCORRECT`, `CKR_PIN_LOCKED`, `CKR_PIN_EXPIRED`,
        /// `CKR_PIN_INVALID` or `CKR_PIN_LEN_RANGE`.
        rv: RvError,
    },
    /// After recovery, the URI's label and id name a key whose public key is not the one the
    /// signer announced at open (the key was deleted and another made in its place).
    #[error(
        "{uri}: private key {key}, found again on the token after a recovery, is not the \
         key this signer announced (announced: JWK thumbprint {announced}; found: {found}); \
         refusing to sign with it. If the key was replaced on purpose, open the signer again and \
         publish the new public key"
    )]
    KeyChanged {
        /// The URI, PIN redacted (it names the token).
        uri: String,
        /// Label and id of the key.
        key: String,
        /// RFC 7638 thumbprint (pkjwt's default `kid`) of the key announced at open.
        announced: String,
        /// RFC 7638 thumbprint of the key found now, or what its public part is.
        found: String,
    },
    /// No private key matches the URI.
    #[error("token \"{token}\" has no private key matching {wanted}; it holds: {available}")]
    ObjectNotFound {
        /// The token label.
        token: String,
        /// The object attributes asked for.
        wanted: String,
        /// What the token holds (class, label, id in hex, key type).
        available: String,
    },
    /// Several private keys match the URI.
    #[error(
        "{wanted} matches {count} private keys on token \"{token}\": {candidates}; add id= or a unique object= to pick one"
    )]
    AmbiguousObject {
        /// The token label.
        token: String,
        /// The object attributes asked for.
        wanted: String,
        /// How many matched.
        count: usize,
        /// The matching keys.
        candidates: String,
    },
    /// The URI names an object that is not a private key.
    #[error(
        "{uri}: type={what} names a {what} object; a signer needs the private key (type=private, or omit type=)"
    )]
    NotPrivateKey {
        /// The URI, PIN redacted.
        uri: String,
        /// `public` or `cert`.
        what: &'static str,
    },
    /// The private key may not sign.
    #[error(
        "private key {key} on token \"{token}\" has CKA_SIGN=false: the token will not sign with it"
    )]
    KeyCannotSign {
        /// The token label.
        token: String,
        /// Label and id of the key.
        key: String,
    },
    /// A certificate to store holds another public key than the token's key.
    #[error(
        "the certificate's public key ({cert_key}) is not that of private key {key} on token \"{token}\" ({token_key}); refusing to store a mismatched pair"
    )]
    CertificateMismatch {
        /// The token label.
        token: String,
        /// Label and id of the key.
        key: String,
        /// The certificate's key, described.
        cert_key: String,
        /// The token key, described.
        token_key: String,
    },
    /// A certificate with the key's id is already on the token.
    #[error(
        "token \"{token}\" already holds a certificate with the id of key {key}; delete it first (pkcs11-tool --delete-object --type cert --id …) to replace it"
    )]
    CertificateExists {
        /// The token label.
        token: String,
        /// Label and id of the key.
        key: String,
    },
    /// A certificate that cannot be parsed.
    #[error("the certificate cannot be stored: {0}")]
    BadCertificate(String),
    /// The key is of a type pkjwt cannot use.
    #[error("private key {key} on token \"{token}\": {reason}")]
    UnsupportedKey {
        /// The token label.
        token: String,
        /// Label and id of the key.
        key: String,
        /// Why.
        reason: String,
    },
    /// Neither a public key object nor a certificate with the key's id was found.
    #[error(
        "private key {key} on token \"{token}\": no public key object or certificate with the same \
         CKA_ID, and the private key does not expose its public part; import the public key or \
         certificate with id={id_hex}"
    )]
    PublicKeyNotFound {
        /// The token label.
        token: String,
        /// Label and id of the key.
        key: String,
        /// The CKA_ID in URI percent-encoding.
        id_hex: String,
    },
    /// The requested algorithm does not fit the key (the core error, the source, names the
    /// algorithms the key supports).
    #[error("private key {key}")]
    Algorithm {
        /// Label and id of the key.
        key: String,
        /// The core error naming the algorithms the key supports.
        #[source]
        source: pkjwt_core::Error,
    },
    /// The token advertises no mechanism for the algorithm.
    #[error(
        "token \"{token}\" cannot sign {alg}: it advertises none of {wanted} (C_GetMechanismList)"
    )]
    MechanismMissing {
        /// The token label.
        token: String,
        /// The JWS algorithm.
        alg: pkjwt_core::Algorithm,
        /// The mechanisms that would do.
        wanted: &'static str,
    },
    /// Key generation was asked for with an unsuitable URI or algorithm.
    #[error("cannot generate a key for {uri}: {reason}")]
    KeygenRequest {
        /// The URI, PIN redacted.
        uri: String,
        /// Why.
        reason: String,
    },
    /// An object with the label or id of the key to generate already exists.
    #[error(
        "token \"{token}\" already holds {existing}; refusing to create a second key with the same \
         label or id (delete it first, or choose another object=/id=)"
    )]
    DuplicateKey {
        /// The token label.
        token: String,
        /// The clashing objects.
        existing: String,
    },
    /// A PKCS#11 call failed. The message shows the function and the `CKR_` name, not
    /// cryptoki's paragraph; the cryptoki error is kept (for [`Pkcs11Error::rv`]) but is not a
    /// `source()`, so that the cause is not printed twice.
    #[error("{context}: {}", describe(.error))]
    Call {
        /// What pkjwt was doing (for example "signing with key \"client\" on token \"t\"").
        context: String,
        /// The cryptoki error (function and return value).
        error: CkError,
    },
    /// Sessions kept failing after the configured number of rebuilds.
    #[error(
        "token \"{token}\": signing failed after {attempts} attempt(s), rebuilding sessions and \
         logging in again each time; last error: {last}"
    )]
    RecoveryExhausted {
        /// The token label.
        token: String,
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<Pkcs11Error>,
    },
    /// The signature the token returned does not fit the algorithm.
    #[error("token \"{token}\" returned an unusable {alg} signature: {reason}")]
    BadSignature {
        /// The token label.
        token: String,
        /// The JWS algorithm.
        alg: pkjwt_core::Algorithm,
        /// Why.
        reason: String,
    },
    /// The blocking worker thread failed (a panic inside the module, or runtime shutdown).
    #[error("PKCS#11 worker thread failed: {0}")]
    Worker(String),
}

impl Pkcs11Error {
    pub(crate) fn call(context: impl Into<String>, error: CkError) -> Self {
        Pkcs11Error::Call {
            context: context.into(),
            error,
        }
    }

    /// The PKCS#11 return value behind this error, if it came from a module call.
    pub fn rv(&self) -> Option<RvError> {
        match self {
            Pkcs11Error::Call {
                error: CkError::Pkcs11(rv, _),
                ..
            } => Some(*rv),
            Pkcs11Error::RecoveryExhausted { last, .. } => last.rv(),
            Pkcs11Error::PinRefused { rv, .. } => Some(*rv),
            _ => None,
        }
    }
}

impl From<Pkcs11Error> for pkjwt_core::Error {
    fn from(e: Pkcs11Error) -> Self {
        use Pkcs11Error::*;
        let kind = match &e {
            PinRequired { .. }
            | PinSource { .. }
            | PinIncorrect { .. }
            | PinUnusable { .. }
            | PinRefused { .. } => "pin",
            KeyChanged { .. } => "key_changed",
            ObjectNotFound { .. } | TokenNotFound { .. } | PublicKeyNotFound { .. } => "not_found",
            Call { .. } | RecoveryExhausted { .. } => "unavailable",
            BadSignature { .. } => "invalid_response",
            _ => "other",
        };
        pkjwt_core::Error::backend_kind("PKCS#11", kind, e)
    }
}

/// `CKR_SESSION_HANDLE_INVALID` from `RvError::SessionHandleInvalid`: the name operators grep for,
/// rather than cryptoki's paragraph-long description.
pub(crate) fn ckr_name(rv: RvError) -> String {
    let debug = format!("{rv:?}");
    let mut out = String::from("CKR_");
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

/// A one-line description of a cryptoki error: `C_Sign returned CKR_KEY_HANDLE_INVALID`.
pub(crate) fn describe(e: &CkError) -> String {
    match e {
        CkError::Pkcs11(rv, func) => format!("C_{func:?} returned {}", ckr_name(*rv)),
        other => other.to_string(),
    }
}

/// Formats bytes as the URI's `id=` would carry them (`%01%02`).
pub(crate) fn id_uri(id: &[u8]) -> String {
    id.iter().map(|b| format!("%{b:02x}")).collect()
}

/// Formats bytes as lower-case hex.
pub(crate) fn hex(id: &[u8]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// A label and id pair for messages: `"client" (id 01ab)`.
pub(crate) struct KeyName<'a> {
    pub(crate) label: Option<&'a str>,
    pub(crate) id: &'a [u8],
}

impl fmt::Display for KeyName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.label {
            Some(l) => write!(f, "\"{l}\"")?,
            None => f.write_str("(no label)")?,
        }
        if self.id.is_empty() {
            f.write_str(" (no id)")
        } else {
            write!(f, " (id {})", hex(self.id))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ckr_names() {
        assert_eq!(
            ckr_name(RvError::SessionHandleInvalid),
            "CKR_SESSION_HANDLE_INVALID"
        );
        assert_eq!(ckr_name(RvError::PinIncorrect), "CKR_PIN_INCORRECT");
        assert_eq!(
            ckr_name(RvError::UserAlreadyLoggedIn),
            "CKR_USER_ALREADY_LOGGED_IN"
        );
    }

    #[test]
    fn key_names_and_ids() {
        let n = KeyName {
            label: Some("client"),
            id: &[1, 0xab],
        };
        assert_eq!(n.to_string(), "\"client\" (id 01ab)");
        assert_eq!(id_uri(&[1, 0xab]), "%01%ab");
    }
}
