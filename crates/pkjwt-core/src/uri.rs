//! Key references: one grammar for every backend.
//!
//! | form | backend |
//! | --- | --- |
//! | `file:/etc/pkjwt/client.pem`, `file:client.pem`, or a plain path | file (PEM, JWK, PKCS#12) |
//! | `file:key.pem?passphrase-source=env:NAME` (or `file:PATH`) | encrypted PKCS#8 |
//! | `file:client.p12?password-source=env:NAME` | PKCS#12 keystore |
//! | `pkcs11:token=T;object=O?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/pin` | PKCS#11 (RFC 7512) |
//! | `awskms:key-id=alias/name;region=eu-west-1[;profile=P][;endpoint=URL]` | AWS KMS |
//! | `arn:aws:kms:eu-west-1:111122223333:key/…` or `…:alias/…` | AWS KMS |
//! | `azurekv:https://VAULT.vault.azure.net/keys/NAME[/VERSION]` (or `….managedhsm.azure.net`) | Azure Key Vault / Managed HSM |
//! | `gcpkms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V[;endpoint=URL]` | Google Cloud KMS |
//! | `gcpkms:P/L/R/K/V[;endpoint=URL]` (short form) | Google Cloud KMS |
//!
//! Secrets are never part of a URI's text when printed: [`KeyUri`]'s `Display` and `Debug`
//! replace a `pin-value` with `<redacted>`.
//!
//! [`SCHEMES`] is the one list of schemes and their backends: the facade's `backends()` and its
//! "built without" errors, the CLI's help and `--version`, and this parser's messages read it
//! (docs/adding-a-backend.md).

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use zeroize::Zeroizing;

use crate::{Error, Result};

/// Where a secret (passphrase, password, PIN) comes from. Never from the command line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SecretSource {
    /// An environment variable's value.
    Env(String),
    /// A file's contents, with one trailing newline removed.
    File(PathBuf),
}

impl SecretSource {
    /// Parses `env:NAME` or `file:PATH` (RFC 7512 `pin-source` also allows a bare path).
    pub fn parse(s: &str, bare_path_ok: bool) -> std::result::Result<Self, String> {
        if let Some(name) = s.strip_prefix("env:") {
            if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(
                    "env: needs an environment variable name of letters, digits and _".to_string(),
                );
            }
            Ok(SecretSource::Env(name.to_string()))
        } else if let Some(path) = s.strip_prefix("file:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err("\"file:\" needs a path".into());
            }
            Ok(SecretSource::File(PathBuf::from(path)))
        } else if bare_path_ok && !s.is_empty() && !s.starts_with('|') {
            Ok(SecretSource::File(PathBuf::from(s)))
        } else {
            Err(
                "a secret source must be env:NAME or file:PATH, not the secret itself (secrets never \
                 go on the command line); the value given is not repeated here"
                    .to_string(),
            )
        }
    }

    /// How the source is named in an error: a file name without a directory that does not exist
    /// is more likely the secret itself, typed where its source belongs, so it is not repeated.
    fn describe_for_error(&self) -> String {
        match self {
            SecretSource::File(p)
                if !p.to_string_lossy().contains(std::path::MAIN_SEPARATOR) && !p.exists() =>
            {
                "a file that does not exist (name not shown: a secret source is env:NAME or \
                 file:PATH, never the secret itself)"
                    .into()
            }
            other => other.to_string(),
        }
    }

    /// Reads the secret. `what` names it for errors ("passphrase", "PIN").
    pub fn read(&self, what: &'static str) -> Result<Zeroizing<String>> {
        match self {
            SecretSource::Env(name) => match std::env::var(name) {
                Ok(v) if !v.is_empty() => Ok(Zeroizing::new(v)),
                Ok(_) => Err(Error::SecretSource {
                    what,
                    source_desc: self.describe_for_error(),
                    reason: "the variable is empty".into(),
                }),
                Err(e) => Err(Error::SecretSource {
                    what,
                    source_desc: self.describe_for_error(),
                    reason: e.to_string(),
                }),
            },
            SecretSource::File(path) => {
                check_secret_file_mode(path).map_err(|reason| Error::SecretSource {
                    what,
                    source_desc: self.describe_for_error(),
                    reason,
                })?;
                let mut text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| {
                    Error::SecretSource {
                        what,
                        source_desc: self.describe_for_error(),
                        reason: e.to_string(),
                    }
                })?);
                // Editors and `echo` add a newline; a secret never ends in one on purpose.
                if text.ends_with('\n') {
                    text.pop();
                    if text.ends_with('\r') {
                        text.pop();
                    }
                }
                if text.is_empty() {
                    return Err(Error::SecretSource {
                        what,
                        source_desc: self.describe_for_error(),
                        reason: "the file is empty".into(),
                    });
                }
                Ok(text)
            }
        }
    }
}

/// A file holding a PIN, passphrase or password must be readable by its owner alone, as a key
/// file must (issue 12, item 12): a group- or world-accessible secret is refused before it is
/// read, with no opt-out (for a Kubernetes secret volume, set `defaultMode: 0400`).
#[cfg(unix)]
fn check_secret_file_mode(path: &std::path::Path) -> std::result::Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        // Reading reports a missing or unreadable file with its own error.
        Err(_) => return Ok(()),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(format!(
            "the file's mode is {mode:04o}, so other users can read or change it; expected 0600 or \
             0400 (run `chmod 600` on it)"
        ));
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_secret_file_mode(_path: &std::path::Path) -> std::result::Result<(), String> {
    Ok(())
}

impl fmt::Display for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SecretSource::Env(n) => write!(f, "env:{n}"),
            SecretSource::File(p) => write!(f, "file:{}", p.display()),
        }
    }
}

/// One key-URI scheme and the backend behind it: a row of [`SCHEMES`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct SchemeInfo {
    /// The URI scheme, without its colon (`pkcs11`).
    pub scheme: &'static str,
    /// The backend's name in messages (`PKCS#11`).
    pub backend: &'static str,
    /// The backend's short name, as `pkjwt --version` lists it: its cargo feature, or `file`.
    pub id: &'static str,
    /// The cargo feature of `pkjwt` (and `pkjwt-cli`) that builds the backend; `None`: always
    /// built.
    pub feature: Option<&'static str>,
    /// A complete example, for help texts.
    pub example: &'static str,
    /// Other accepted forms, for help texts (`""` when none).
    pub also: &'static str,
}

/// Every key-URI scheme pkjwt parses, in the order help texts list them. Adding a backend adds
/// a row here (and a [`KeyUri`] variant); docs/adding-a-backend.md has the whole list.
pub const SCHEMES: &[SchemeInfo] = &[
    SchemeInfo {
        scheme: "file",
        backend: "file",
        id: "file",
        feature: None,
        example: "file:/path/client.pem",
        also: "or a plain path; ?passphrase-source=env:NAME|file:PATH for encrypted PKCS#8",
    },
    SchemeInfo {
        scheme: "pkcs11",
        backend: "PKCS#11",
        id: "pkcs11",
        feature: Some("pkcs11"),
        example: "pkcs11:token=T;object=O?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin",
        also: "",
    },
    SchemeInfo {
        scheme: "awskms",
        backend: "AWS KMS",
        id: "aws-kms",
        feature: Some("aws-kms"),
        example: "awskms:key-id=alias/NAME;region=eu-west-1",
        also: "or a KMS key/alias ARN",
    },
    SchemeInfo {
        scheme: "azurekv",
        backend: "Azure Key Vault",
        id: "azure-kv",
        feature: Some("azure-kv"),
        example: "azurekv:https://VAULT.vault.azure.net/keys/NAME",
        also: "/VERSION to pin a version; or a Managed HSM (https://HSM.managedhsm.azure.net/keys/NAME)",
    },
    SchemeInfo {
        scheme: "gcpkms",
        backend: "Google Cloud KMS",
        id: "gcp-kms",
        feature: Some("gcp-kms"),
        example: "gcpkms:projects/my-project/locations/europe-west1/keyRings/pkjwt/cryptoKeys/client/cryptoKeyVersions/1",
        also: "or gcpkms:PROJECT/LOCATION/RING/KEY/VERSION; ;endpoint=URL overrides the API endpoint",
    },
];

/// The row of [`SCHEMES`] for `scheme` (lower case, no colon).
pub fn scheme_info(scheme: &str) -> Option<&'static SchemeInfo> {
    SCHEMES.iter().find(|s| s.scheme == scheme)
}

/// A key reference, parsed and validated.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyUri {
    /// A key in a file.
    File(FileUri),
    /// A key on a PKCS#11 token (RFC 7512).
    Pkcs11(Pkcs11Uri),
    /// An AWS KMS key.
    AwsKms(AwsKmsUri),
    /// An Azure Key Vault or Managed HSM key.
    AzureKv(AzureKvUri),
    /// A Google Cloud KMS key version.
    GcpKms(GcpKmsUri),
}

/// `file:` key reference.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct FileUri {
    /// The file.
    pub path: PathBuf,
    /// Passphrase for an encrypted PKCS#8 key.
    pub passphrase: Option<SecretSource>,
    /// Password for a PKCS#12 keystore.
    pub password: Option<SecretSource>,
}

/// PKCS#11 object class selected by `type=`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pkcs11ObjectType {
    /// `type=private`.
    Private,
    /// `type=public`.
    Public,
    /// `type=cert`.
    Cert,
}

/// A PKCS#11 URI (RFC 7512) naming a key.
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Pkcs11Uri {
    /// `token=`: token label (matched against the space-padded `CK_TOKEN_INFO.label`).
    pub token: Option<String>,
    /// `manufacturer=`.
    pub manufacturer: Option<String>,
    /// `serial=`.
    pub serial: Option<String>,
    /// `model=`.
    pub model: Option<String>,
    /// `slot-id=`.
    pub slot_id: Option<u64>,
    /// `object=`: `CKA_LABEL`.
    pub object: Option<String>,
    /// `id=`: `CKA_ID` bytes.
    pub id: Option<Vec<u8>>,
    /// `type=`.
    pub object_type: Option<Pkcs11ObjectType>,
    /// `module-path=`.
    pub module_path: Option<PathBuf>,
    /// `module-name=`.
    pub module_name: Option<String>,
    /// `pin-source=`.
    pub pin_source: Option<SecretSource>,
    /// `pin-value=`: accepted, discouraged, never printed.
    pub pin_value: Option<Zeroizing<String>>,
}

/// An AWS KMS key reference.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AwsKmsUri {
    /// Key id, key ARN, alias name (`alias/…`) or alias ARN.
    pub key_id: String,
    /// Region; from the ARN or `region=`, else the standard AWS chain.
    pub region: Option<String>,
    /// Named profile.
    pub profile: Option<String>,
    /// Endpoint URL override (VPC endpoint, local test endpoint).
    pub endpoint: Option<String>,
}

/// An Azure Key Vault or Managed HSM key reference:
/// `azurekv:https://VAULT.vault.azure.net/keys/NAME[/VERSION]`.
///
/// The vault must be `https://` on a Key Vault or Managed HSM domain of an Azure cloud
/// ([`AZURE_KV_DOMAINS`]), without a port; or, for local test doubles, `https://` on a loopback
/// address (`127.0.0.1`, `[::1]`, `localhost`) with a port. Nothing else: a bearer token for the
/// vault is sent there.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct AzureKvUri {
    /// The vault's base URL, `https://HOST[:PORT]`, host in lower case, no trailing slash.
    pub vault: String,
    /// The key name (1–127 characters of `0-9a-zA-Z-`).
    pub name: String,
    /// The key version (32 hex digits); `None`: the current version, resolved once when the key
    /// is opened.
    pub version: Option<String>,
}

/// Host suffixes of Key Vault (`vault`) and Managed HSM (`managedhsm`) in the Azure clouds
/// (public, China, US Government), each with the resource a token for it is issued to.
pub const AZURE_KV_DOMAINS: &[(&str, &str)] = &[
    (".vault.azure.net", "https://vault.azure.net"),
    (".vault.azure.cn", "https://vault.azure.cn"),
    (
        ".vault.usgovcloudapi.net",
        "https://vault.usgovcloudapi.net",
    ),
    (".managedhsm.azure.net", "https://managedhsm.azure.net"),
    (".managedhsm.azure.cn", "https://managedhsm.azure.cn"),
    (
        ".managedhsm.usgovcloudapi.net",
        "https://managedhsm.usgovcloudapi.net",
    ),
];

impl AzureKvUri {
    fn parse_body(uri: &str, rest: &str) -> Result<Self> {
        const FORM: &str = "expected azurekv:https://VAULT.vault.azure.net/keys/NAME[/VERSION]";
        let Some(after) = rest.strip_prefix("https://") else {
            let why = if rest.starts_with("http://") {
                "the vault must be https:// (a bearer token is sent to it)".to_owned()
            } else {
                format!("no https:// vault URL; {FORM}")
            };
            return Err(uri_err(uri, why));
        };
        if after.contains(['?', '#']) {
            return Err(uri_err(
                uri,
                format!("a query or fragment is not part of a key identifier; {FORM}"),
            ));
        }
        let (authority, path) = after.split_once('/').unwrap_or((after, ""));
        let authority = authority.to_ascii_lowercase();
        if authority.contains('@') {
            return Err(uri_err(
                uri,
                "user information is not allowed in the vault URL",
            ));
        }
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && !p.contains(']') => (h, Some(p)),
            _ => (authority.as_str(), None),
        };
        let loopback = matches!(host, "127.0.0.1" | "[::1]" | "localhost");
        let known = AZURE_KV_DOMAINS.iter().any(|(suffix, _)| {
            host.len() > suffix.len()
                && host.ends_with(suffix)
                && host[..host.len() - suffix.len()]
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
        if !known && !loopback {
            return Err(uri_err(
                uri,
                format!(
                    "\"{host}\" is not a Key Vault or Managed HSM host (VAULT.vault.azure.net, \
                     HSM.managedhsm.azure.net, or their .azure.cn / .usgovcloudapi.net forms; \
                     loopback for a local test double)"
                ),
            ));
        }
        match (port, loopback) {
            (Some(p), true) if p.parse::<u16>().is_ok_and(|p| p > 0) => {}
            (Some(p), true) => {
                return Err(uri_err(uri, format!("port \"{p}\" is not a port number")));
            }
            (Some(_), false) => {
                return Err(uri_err(
                    uri,
                    "a port is not allowed on a Key Vault host (the service listens on 443 only)",
                ));
            }
            (None, _) => {}
        }
        let parts: Vec<&str> = path.split('/').collect();
        let (name, version) = match parts.as_slice() {
            ["keys", name] => (*name, None),
            ["keys", name, version] => (*name, Some(*version)),
            _ => {
                return Err(uri_err(
                    uri,
                    format!("the path must be /keys/NAME[/VERSION]; {FORM}"),
                ));
            }
        };
        if name.is_empty()
            || name.len() > 127
            || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(uri_err(
                uri,
                format!("key name \"{name}\" must be 1-127 characters of 0-9, a-z, A-Z and -"),
            ));
        }
        if let Some(v) = version
            && (v.len() != 32 || !v.chars().all(|c| c.is_ascii_hexdigit()))
        {
            return Err(uri_err(
                uri,
                format!(
                    "key version \"{v}\" must be 32 hex digits (as in the key identifier the vault shows)"
                ),
            ));
        }
        Ok(AzureKvUri {
            vault: format!("https://{authority}"),
            name: name.to_owned(),
            version: version.map(str::to_ascii_lowercase),
        })
    }

    /// True when the vault is a Managed HSM (`*.managedhsm.*`).
    pub fn is_managed_hsm(&self) -> bool {
        self.vault.contains(".managedhsm.")
    }

    /// True when the vault is a loopback address (a local test double).
    pub fn is_loopback(&self) -> bool {
        let authority = self.vault.strip_prefix("https://").unwrap_or("");
        let host = match authority.split_once(']') {
            Some((v6, _)) => v6.trim_start_matches('['),
            None => authority.split(':').next().unwrap_or(""),
        };
        matches!(host, "127.0.0.1" | "::1" | "localhost")
    }

    /// This reference with `version` pinned.
    pub fn with_version(&self, version: impl Into<String>) -> Self {
        AzureKvUri {
            version: Some(version.into()),
            ..self.clone()
        }
    }
}

impl fmt::Display for AzureKvUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "azurekv:{}/keys/{}", self.vault, self.name)?;
        if let Some(v) = &self.version {
            write!(f, "/{v}")?;
        }
        Ok(())
    }
}

/// A Google Cloud KMS key version:
/// `gcpkms:projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V`, or the short form
/// `gcpkms:P/L/R/K/V`, each optionally followed by `;endpoint=URL`.
///
/// The version is required: an asymmetric Cloud KMS key has no primary version, and a signer
/// must name the exact key (and `kid`) it announces.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct GcpKmsUri {
    /// Project id (`my-project`, or a domain-scoped `example.com:my-project`).
    pub project: String,
    /// Location (`global`, `europe-west1`, `us`).
    pub location: String,
    /// Key ring id.
    pub key_ring: String,
    /// Crypto key id.
    pub crypto_key: String,
    /// Crypto key version number (1 or more).
    pub version: u64,
    /// API endpoint override (a private endpoint, or a local test endpoint); `None`: the public
    /// endpoint `https://cloudkms.googleapis.com`.
    pub endpoint: Option<String>,
}

impl FromStr for KeyUri {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        KeyUri::parse(s)
    }
}

fn uri_err(uri: &str, reason: impl Into<String>) -> Error {
    Error::KeyUri {
        uri: redact(uri),
        reason: reason.into(),
    }
}

/// Removes inline secrets (`pin-value=`, `passphrase=`, `password=`) from URI text so it can
/// appear in a message.
///
/// The value of a secret ends where the parsers end it, never sooner: before the first `?` a
/// path attribute ends at `;` (or at that `?`), after it a query attribute ends at `&` only; an
/// `awskms:` URI, ARN or `gcpkms:` URI has no query and ends attributes at `;` only. A secret holding `;` in a
/// query (`pin-value=12;34`) is therefore hidden whole (issue 12, item 2).
pub fn redact(uri: &str) -> String {
    // Secret values, and secret *sources* whose value is not a source (someone typed the secret
    // itself where `env:NAME` or `file:PATH` belongs).
    const SECRET: [&str; 3] = ["pin-value=", "passphrase=", "password="];
    const SOURCE: [&str; 3] = ["pin-source=", "passphrase-source=", "password-source="];
    let scheme = uri.split_once(':').map(|(s, _)| s.to_ascii_lowercase());
    let has_query = !matches!(scheme.as_deref(), Some("awskms" | "arn" | "gcpkms"));
    let mut in_query = false;
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    'outer: while !rest.is_empty() {
        let at_attr_start = out.is_empty() || out.ends_with(['?', '&', ';', ':']);
        if at_attr_start {
            for key in SECRET.iter().chain(SOURCE.iter()) {
                // Compare bytes: slicing `rest` at key.len() could split a multi-byte character.
                // A match means those bytes are ASCII, so key.len() is then a char boundary.
                if rest.len() >= key.len()
                    && rest.as_bytes()[..key.len()].eq_ignore_ascii_case(key.as_bytes())
                {
                    let value_text = &rest[key.len()..];
                    let len = if !has_query {
                        value_text.find(';')
                    } else if in_query {
                        value_text.find('&')
                    } else {
                        value_text.find([';', '?'])
                    }
                    .unwrap_or(value_text.len());
                    let value = &value_text[..len];
                    let is_source = SOURCE.contains(key)
                        && (value.starts_with("env:")
                            || value.starts_with("file:")
                            || value.starts_with('/'));
                    out.push_str(&rest[..key.len()]);
                    out.push_str(if is_source { value } else { "<redacted>" });
                    rest = &value_text[len..];
                    continue 'outer;
                }
            }
        }
        let mut chars = rest.chars();
        if let Some(c) = chars.next() {
            if c == '?' && has_query {
                in_query = true;
            }
            out.push(c);
        }
        rest = chars.as_str();
    }
    out
}

impl KeyUri {
    /// Parses a key reference (see the module documentation for the forms).
    pub fn parse(s: &str) -> Result<Self> {
        if s.is_empty() {
            return Err(uri_err(s, "empty key reference"));
        }
        let lower_scheme = s
            .split_once(':')
            .map(|(scheme, _)| scheme.to_ascii_lowercase());
        if let Some(scheme) = lower_scheme.as_deref()
            && scheme_info(scheme).is_some()
            && !s.starts_with(&format!("{scheme}:"))
        {
            // RFC 3986 schemes are case-insensitive: accept PKCS11:, AWSKMS:, FILE:.
            let fixed = format!("{scheme}{}", &s[scheme.len()..]);
            return KeyUri::parse(&fixed);
        }
        if let Some(rest) = s.strip_prefix("pkcs11:") {
            return Pkcs11Uri::parse_body(s, rest).map(KeyUri::Pkcs11);
        }
        if let Some(rest) = s.strip_prefix("awskms:") {
            return AwsKmsUri::parse_body(s, rest).map(KeyUri::AwsKms);
        }
        if s.starts_with("arn:") {
            return AwsKmsUri::parse_arn(s, s).map(KeyUri::AwsKms);
        }
        if let Some(rest) = s.strip_prefix("azurekv:") {
            return AzureKvUri::parse_body(s, rest).map(KeyUri::AzureKv);
        }
        if let Some(rest) = s.strip_prefix("gcpkms:") {
            return GcpKmsUri::parse_body(s, rest).map(KeyUri::GcpKms);
        }
        if let Some(rest) = s.strip_prefix("file:") {
            return FileUri::parse_body(s, rest).map(KeyUri::File);
        }
        if let Some((scheme, _)) = s.split_once(':') {
            let looks_like_scheme = scheme.len() > 1
                && scheme
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '+' || c == '-' || c == '.');
            if looks_like_scheme && !scheme.contains('.') {
                let known: Vec<String> = SCHEMES.iter().map(|s| format!("{}:", s.scheme)).collect();
                return Err(uri_err(
                    s,
                    format!(
                        "unknown scheme \"{scheme}:\"; expected {} or an AWS KMS ARN \
                         (for a file whose name contains ':', prefix it with file:./)",
                        known.join(", ")
                    ),
                ));
            }
        }
        Ok(KeyUri::File(FileUri {
            path: PathBuf::from(s),
            passphrase: None,
            password: None,
        }))
    }

    /// The [`SCHEMES`] row of this reference's backend.
    pub fn scheme(&self) -> &'static SchemeInfo {
        let name = match self {
            KeyUri::File(_) => "file",
            KeyUri::Pkcs11(_) => "pkcs11",
            KeyUri::AwsKms(_) => "awskms",
            KeyUri::AzureKv(_) => "azurekv",
            KeyUri::GcpKms(_) => "gcpkms",
        };
        // Invariant: every KeyUri variant has its row (test `every_variant_has_a_scheme_row`).
        scheme_info(name).unwrap_or(&SCHEMES[0])
    }

    /// Short backend name for messages.
    pub fn backend_name(&self) -> &'static str {
        self.scheme().backend
    }
}

impl fmt::Display for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            KeyUri::File(u) => {
                write!(f, "file:{}", u.path.display())?;
                let mut sep = '?';
                if let Some(p) = &u.passphrase {
                    write!(f, "{sep}passphrase-source={p}")?;
                    sep = '&';
                }
                if let Some(p) = &u.password {
                    write!(f, "{sep}password-source={p}")?;
                }
                Ok(())
            }
            KeyUri::Pkcs11(u) => fmt::Display::fmt(u, f),
            KeyUri::AwsKms(u) => fmt::Display::fmt(u, f),
            KeyUri::AzureKv(u) => fmt::Display::fmt(u, f),
            KeyUri::GcpKms(u) => fmt::Display::fmt(u, f),
        }
    }
}

impl fmt::Debug for KeyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyUri({self})")
    }
}

/// An endpoint override must be `https://`, or `http://` to a loopback host (a local test
/// endpoint): plain HTTP elsewhere would carry signed requests and the signatures in clear text
/// (issue 12, item 13).
fn check_kms_endpoint(e: &str) -> std::result::Result<(), String> {
    if e.starts_with("https://") {
        return Ok(());
    }
    let Some(rest) = e.strip_prefix("http://") else {
        return Err(format!(
            "endpoint \"{e}\" must be an https:// URL (or http:// to 127.0.0.1, [::1] or localhost)"
        ));
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    let authority = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split_once(']').map_or(v6, |(h, _)| h)
    } else {
        authority.split_once(':').map_or(authority, |(h, _)| h)
    };
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if loopback {
        Ok(())
    } else {
        Err(format!(
            "endpoint \"{e}\" is plain http:// to a host that is not loopback; use https:// \
             (http:// is accepted only for 127.0.0.1, [::1] or localhost)"
        ))
    }
}

fn split_query(rest: &str) -> (&str, Option<&str>) {
    match rest.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (rest, None),
    }
}

fn query_pairs<'a>(
    uri: &str,
    query: &'a str,
) -> Result<impl Iterator<Item = Result<(&'a str, String)>> + use<'a>> {
    let uri = uri.to_string();
    Ok(query.split('&').filter(|p| !p.is_empty()).map(move |p| {
        let (k, v) = p
            .split_once('=')
            .ok_or_else(|| uri_err(&uri, format!("query attribute \"{p}\" has no '='")))?;
        let v = percent_decode_str(v).map_err(|e| uri_err(&uri, e))?;
        Ok((k, v))
    }))
}

impl FileUri {
    fn parse_body(uri: &str, rest: &str) -> Result<Self> {
        let (path, query) = split_query(rest);
        // file:///abs and file:/abs and file:rel all name paths; a host part is not supported.
        let path = if let Some(p) = path.strip_prefix("//") {
            if !p.starts_with('/') {
                return Err(uri_err(
                    uri,
                    "file URIs with a host are not supported; write file:/absolute/path or file:relative/path",
                ));
            }
            p
        } else {
            path
        };
        let path = percent_decode_str(path).map_err(|e| uri_err(uri, e))?;
        if path.is_empty() {
            return Err(uri_err(uri, "file: needs a path"));
        }
        let mut out = FileUri {
            path: PathBuf::from(path),
            passphrase: None,
            password: None,
        };
        if let Some(q) = query {
            for pair in query_pairs(uri, q)? {
                let (k, v) = pair?;
                let slot = match k {
                    "passphrase-source" => &mut out.passphrase,
                    "password-source" => &mut out.password,
                    "passphrase" | "password" | "pin-value" => {
                        return Err(uri_err(
                            uri,
                            format!(
                                "\"{k}=\" would put a secret in the URI; use {k}-source=env:NAME or file:PATH"
                            )
                            .replace("pin-value-source", "passphrase-source"),
                        ));
                    }
                    other => {
                        return Err(uri_err(
                            uri,
                            format!(
                                "unknown attribute \"{other}\"; file: takes passphrase-source and password-source"
                            ),
                        ));
                    }
                };
                if slot.is_some() {
                    return Err(uri_err(uri, format!("attribute \"{k}\" given twice")));
                }
                *slot = Some(SecretSource::parse(&v, false).map_err(|e| uri_err(uri, e))?);
            }
        }
        Ok(out)
    }
}

impl Pkcs11Uri {
    fn parse_body(uri: &str, rest: &str) -> Result<Self> {
        let (path, query) = split_query(rest);
        let mut out = Pkcs11Uri::default();
        for attr in path.split(';').filter(|a| !a.is_empty()) {
            let (k, raw) = attr
                .split_once('=')
                .ok_or_else(|| uri_err(uri, format!("path attribute \"{attr}\" has no '='")))?;
            let v = || percent_decode_bytes(raw).map_err(|e| uri_err(uri, e));
            let text = || {
                String::from_utf8(v()?).map_err(|_| {
                    uri_err(
                        uri,
                        format!("attribute \"{k}\" is not UTF-8 after percent-decoding"),
                    )
                })
            };
            let dup = |set: bool| {
                if set {
                    Err(uri_err(uri, format!("attribute \"{k}\" given twice")))
                } else {
                    Ok(())
                }
            };
            match k {
                "token" => {
                    dup(out.token.is_some())?;
                    out.token = Some(text()?);
                }
                "manufacturer" => {
                    dup(out.manufacturer.is_some())?;
                    out.manufacturer = Some(text()?);
                }
                "serial" => {
                    dup(out.serial.is_some())?;
                    out.serial = Some(text()?);
                }
                "model" => {
                    dup(out.model.is_some())?;
                    out.model = Some(text()?);
                }
                "slot-id" => {
                    dup(out.slot_id.is_some())?;
                    let t = text()?;
                    out.slot_id = Some(t.parse().map_err(|_| {
                        uri_err(uri, format!("slot-id \"{t}\" is not a decimal number"))
                    })?);
                }
                "object" => {
                    dup(out.object.is_some())?;
                    out.object = Some(text()?);
                }
                "id" => {
                    dup(out.id.is_some())?;
                    let id = v()?;
                    if id.is_empty() {
                        return Err(uri_err(uri, "id= is empty"));
                    }
                    out.id = Some(id);
                }
                "type" => {
                    dup(out.object_type.is_some())?;
                    out.object_type = Some(match text()?.as_str() {
                        "private" => Pkcs11ObjectType::Private,
                        "public" => Pkcs11ObjectType::Public,
                        "cert" => Pkcs11ObjectType::Cert,
                        other => {
                            return Err(uri_err(
                                uri,
                                format!(
                                    "type \"{other}\" cannot name a signing key; expected private, public or cert"
                                ),
                            ));
                        }
                    });
                }
                // RFC 7512 attributes that do not narrow the key choice further: accepted.
                "library-manufacturer"
                | "library-description"
                | "library-version"
                | "slot-description"
                | "slot-manufacturer" => {}
                x if x.starts_with("x-") => {}
                other => {
                    return Err(uri_err(
                        uri,
                        format!(
                            "unknown path attribute \"{other}\"; expected token, manufacturer, serial, model, \
                             slot-id, object, id or type"
                        ),
                    ));
                }
            }
        }
        if let Some(q) = query {
            for pair in query_pairs(uri, q)? {
                let (k, v) = pair?;
                let dup = |set: bool| {
                    if set {
                        Err(uri_err(uri, format!("attribute \"{k}\" given twice")))
                    } else {
                        Ok(())
                    }
                };
                match k {
                    "module-path" => {
                        dup(out.module_path.is_some())?;
                        out.module_path = Some(PathBuf::from(v));
                    }
                    "module-name" => {
                        dup(out.module_name.is_some())?;
                        out.module_name = Some(v);
                    }
                    "pin-source" => {
                        dup(out.pin_source.is_some())?;
                        out.pin_source =
                            Some(SecretSource::parse(&v, true).map_err(|e| uri_err(uri, e))?);
                    }
                    "pin-value" => {
                        dup(out.pin_value.is_some())?;
                        if v == "<redacted>" {
                            return Err(uri_err(
                                uri,
                                "pin-value=<redacted> is a printed URI, not a PIN; give the PIN with \
                                 pin-source=env:NAME or file:PATH",
                            ));
                        }
                        out.pin_value = Some(Zeroizing::new(v));
                    }
                    x if x.starts_with("x-") => {}
                    other => {
                        return Err(uri_err(
                            uri,
                            format!(
                                "unknown query attribute \"{other}\"; expected module-path, module-name, \
                                 pin-source or pin-value"
                            ),
                        ));
                    }
                }
            }
        }
        if out.pin_source.is_some() && out.pin_value.is_some() {
            return Err(uri_err(uri, "give pin-source or pin-value, not both"));
        }
        if out.module_path.is_some() && out.module_name.is_some() {
            return Err(uri_err(uri, "give module-path or module-name, not both"));
        }
        if out.object.is_none() && out.id.is_none() {
            return Err(uri_err(
                uri,
                "name the key with object=LABEL or id=%XX… (a URI for a whole token cannot pick one key)",
            ));
        }
        Ok(out)
    }

    /// True when the URI carries a `pin-value` (callers should warn: prefer `pin-source`).
    pub fn has_pin_value(&self) -> bool {
        self.pin_value.is_some()
    }
}

impl fmt::Display for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut path: Vec<String> = Vec::new();
        let mut push = |k: &str, v: Option<&str>| {
            if let Some(v) = v {
                path.push(format!("{k}={}", percent_encode(v.as_bytes())));
            }
        };
        push("token", self.token.as_deref());
        push("manufacturer", self.manufacturer.as_deref());
        push("serial", self.serial.as_deref());
        push("model", self.model.as_deref());
        push("object", self.object.as_deref());
        if let Some(id) = &self.id {
            path.push(format!(
                "id={}",
                id.iter().map(|b| format!("%{b:02x}")).collect::<String>()
            ));
        }
        if let Some(s) = self.slot_id {
            path.push(format!("slot-id={s}"));
        }
        if let Some(t) = self.object_type {
            path.push(
                match t {
                    Pkcs11ObjectType::Private => "type=private",
                    Pkcs11ObjectType::Public => "type=public",
                    Pkcs11ObjectType::Cert => "type=cert",
                }
                .into(),
            );
        }
        let mut query: Vec<String> = Vec::new();
        if let Some(p) = &self.module_path {
            query.push(format!("module-path={}", p.display()));
        }
        if let Some(n) = &self.module_name {
            query.push(format!("module-name={n}"));
        }
        if let Some(p) = &self.pin_source {
            query.push(format!("pin-source={p}"));
        }
        if self.pin_value.is_some() {
            query.push("pin-value=<redacted>".into());
        }
        write!(f, "pkcs11:{}", path.join(";"))?;
        if !query.is_empty() {
            write!(f, "?{}", query.join("&"))?;
        }
        Ok(())
    }
}

impl fmt::Debug for Pkcs11Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pkcs11Uri({self})")
    }
}

impl AwsKmsUri {
    fn parse_body(uri: &str, rest: &str) -> Result<Self> {
        let mut key_id = None;
        let mut out = AwsKmsUri {
            key_id: String::new(),
            region: None,
            profile: None,
            endpoint: None,
        };
        for attr in rest.split(';').filter(|a| !a.is_empty()) {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| uri_err(uri, format!("attribute \"{attr}\" has no '='")))?;
            let v = percent_decode_str(v).map_err(|e| uri_err(uri, e))?;
            let slot = match k {
                "key-id" => &mut key_id,
                "region" => &mut out.region,
                "profile" => &mut out.profile,
                "endpoint" => &mut out.endpoint,
                other => {
                    return Err(uri_err(
                        uri,
                        format!(
                            "unknown attribute \"{other}\"; expected key-id, region, profile or endpoint"
                        ),
                    ));
                }
            };
            if slot.is_some() {
                return Err(uri_err(uri, format!("attribute \"{k}\" given twice")));
            }
            if v.is_empty() {
                return Err(uri_err(uri, format!("attribute \"{k}\" is empty")));
            }
            *slot = Some(v);
        }
        let key_id = key_id.ok_or_else(|| {
            uri_err(
                uri,
                "missing key-id=; expected awskms:key-id=<key id | key ARN | alias/NAME | alias ARN>;region=REGION",
            )
        })?;
        if key_id.starts_with("arn:") {
            let from_arn = AwsKmsUri::parse_arn(uri, &key_id)?;
            if let (Some(a), Some(b)) = (&from_arn.region, &out.region)
                && a != b
            {
                return Err(uri_err(
                    uri,
                    format!("region={b} contradicts the key ARN's region {a}"),
                ));
            }
            out.region = from_arn.region;
        } else if let Some(alias) = key_id.strip_prefix("alias/") {
            if alias.is_empty() || alias.starts_with("aws/") {
                return Err(uri_err(
                    uri,
                    "alias/ needs a customer alias name (AWS-managed aliases alias/aws/… cannot sign)",
                ));
            }
        } else if !key_id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-')
        {
            return Err(uri_err(
                uri,
                format!("key-id \"{key_id}\" is neither a key id, an ARN nor alias/NAME"),
            ));
        }
        if let Some(r) = &out.region {
            validate_region(uri, r)?;
        }
        if let Some(e) = &out.endpoint {
            check_kms_endpoint(e).map_err(|reason| uri_err(uri, reason))?;
        }
        out.key_id = key_id;
        Ok(out)
    }

    fn parse_arn(uri: &str, arn: &str) -> Result<Self> {
        // arn:PARTITION:kms:REGION:ACCOUNT:key/ID | alias/NAME
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let ok = parts.len() == 6
            && parts[0] == "arn"
            && parts[1].starts_with("aws")
            && parts[2] == "kms"
            && !parts[3].is_empty()
            && parts[4].len() == 12
            && parts[4].chars().all(|c| c.is_ascii_digit())
            && (parts[5].strip_prefix("key/").is_some_and(|k| !k.is_empty())
                || parts[5]
                    .strip_prefix("alias/")
                    .is_some_and(|k| !k.is_empty()));
        if !ok {
            return Err(uri_err(
                uri,
                "not an AWS KMS key or alias ARN; expected arn:aws:kms:REGION:ACCOUNT:key/ID or \
                 arn:aws:kms:REGION:ACCOUNT:alias/NAME",
            ));
        }
        validate_region(uri, parts[3])?;
        Ok(AwsKmsUri {
            key_id: arn.to_string(),
            region: Some(parts[3].to_string()),
            profile: None,
            endpoint: None,
        })
    }
}

impl GcpKmsUri {
    fn parse_body(uri: &str, rest: &str) -> Result<Self> {
        const FULL: &str = "projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V";
        let expected = format!("expected gcpkms:{FULL} or gcpkms:P/L/R/K/V");
        let mut attrs = rest.split(';');
        let name = attrs.next().unwrap_or("");
        let mut endpoint = None;
        for attr in attrs.filter(|a| !a.is_empty()) {
            let (k, v) = attr
                .split_once('=')
                .ok_or_else(|| uri_err(uri, format!("attribute \"{attr}\" has no '='")))?;
            if k != "endpoint" {
                return Err(uri_err(
                    uri,
                    format!("unknown attribute \"{k}\"; expected endpoint"),
                ));
            }
            if endpoint.is_some() {
                return Err(uri_err(uri, "attribute \"endpoint\" given twice"));
            }
            let v = percent_decode_str(v).map_err(|e| uri_err(uri, e))?;
            check_kms_endpoint(&v).map_err(|reason| uri_err(uri, reason))?;
            endpoint = Some(v);
        }
        let parts: Vec<&str> = name.split('/').collect();
        let ids: [&str; 5] = if parts.first() == Some(&"projects") {
            const LABELS: [&str; 5] = [
                "projects",
                "locations",
                "keyRings",
                "cryptoKeys",
                "cryptoKeyVersions",
            ];
            if parts.len() == 8 && parts[6] == "cryptoKeys" {
                return Err(uri_err(
                    uri,
                    "names a crypto key without its version; Cloud KMS asymmetric keys have no \
                     primary version, so add /cryptoKeyVersions/N (pkjwt signs with exactly the \
                     version named)",
                ));
            }
            if parts.len() != 10 {
                return Err(uri_err(uri, format!("not a key version name; {expected}")));
            }
            for (i, label) in LABELS.iter().enumerate() {
                if parts[2 * i] != *label {
                    return Err(uri_err(
                        uri,
                        format!(
                            "segment {} is \"{}\", expected \"{label}\"; {expected}",
                            2 * i + 1,
                            parts[2 * i]
                        ),
                    ));
                }
            }
            [parts[1], parts[3], parts[5], parts[7], parts[9]]
        } else if parts.len() == 5 {
            [parts[0], parts[1], parts[2], parts[3], parts[4]]
        } else if parts.len() == 4 {
            return Err(uri_err(
                uri,
                "names a crypto key without its version; Cloud KMS asymmetric keys have no \
                 primary version, so add /VERSION (pkjwt signs with exactly the version named)",
            ));
        } else {
            return Err(uri_err(uri, format!("not a key version name; {expected}")));
        };
        let [project, location, key_ring, crypto_key, version] = ids;
        let check = |what: &str, v: &str, ok: &dyn Fn(char) -> bool, max: usize, form: &str| {
            if v.is_empty() || v.len() > max || !v.chars().all(ok) {
                Err(uri_err(
                    uri,
                    format!("{what} \"{v}\" is not valid; expected {form}"),
                ))
            } else {
                Ok(())
            }
        };
        check(
            "project",
            project,
            &|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | ':'),
            100,
            "a project id (lower-case letters, digits, '-', optionally domain:)",
        )?;
        check(
            "location",
            location,
            &|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-',
            63,
            "a location such as global or europe-west1",
        )?;
        let id = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
        let id_form = "1 to 63 letters, digits, '-' or '_'";
        check("key ring", key_ring, &id, 63, id_form)?;
        check("crypto key", crypto_key, &id, 63, id_form)?;
        let version = version
            .parse::<u64>()
            .ok()
            .filter(|v| *v >= 1 && version.chars().all(|c| c.is_ascii_digit()))
            .ok_or_else(|| {
                uri_err(
                    uri,
                    format!("key version \"{version}\" is not a version number (1, 2, …)"),
                )
            })?;
        Ok(GcpKmsUri {
            project: project.to_owned(),
            location: location.to_owned(),
            key_ring: key_ring.to_owned(),
            crypto_key: crypto_key.to_owned(),
            version,
            endpoint,
        })
    }

    /// The key ring's resource name: `projects/P/locations/L/keyRings/R`.
    pub fn key_ring_name(&self) -> String {
        format!(
            "projects/{}/locations/{}/keyRings/{}",
            self.project, self.location, self.key_ring
        )
    }

    /// The crypto key's resource name: `projects/P/locations/L/keyRings/R/cryptoKeys/K`.
    pub fn crypto_key_name(&self) -> String {
        format!("{}/cryptoKeys/{}", self.key_ring_name(), self.crypto_key)
    }

    /// The key version's resource name, as the API names it:
    /// `projects/P/locations/L/keyRings/R/cryptoKeys/K/cryptoKeyVersions/V`.
    pub fn version_name(&self) -> String {
        format!(
            "{}/cryptoKeyVersions/{}",
            self.crypto_key_name(),
            self.version
        )
    }
}

impl fmt::Display for GcpKmsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "gcpkms:{}", self.version_name())?;
        if let Some(e) = &self.endpoint {
            write!(f, ";endpoint={e}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for GcpKmsUri {
    // Hand-written so that it reads as the URI (a GCP key name holds no secret).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "GcpKmsUri({self})")
    }
}

fn validate_region(uri: &str, r: &str) -> Result<()> {
    if r.is_empty()
        || !r
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    {
        return Err(uri_err(
            uri,
            format!("region \"{r}\" is not an AWS region name like eu-west-1"),
        ));
    }
    Ok(())
}

impl fmt::Display for AwsKmsUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "awskms:key-id={}", self.key_id)?;
        if let Some(r) = &self.region {
            write!(f, ";region={r}")?;
        }
        if let Some(p) = &self.profile {
            write!(f, ";profile={p}")?;
        }
        if let Some(e) = &self.endpoint {
            write!(f, ";endpoint={e}")?;
        }
        Ok(())
    }
}

fn percent_decode_bytes(s: &str) -> std::result::Result<Vec<u8>, String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = b
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| "a '%' is not followed by two hex digits".to_string())?;
            out.push(hex);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    Ok(out)
}

fn percent_decode_str(s: &str) -> std::result::Result<String, String> {
    String::from_utf8(percent_decode_bytes(s)?)
        .map_err(|_| "the value is not UTF-8 after percent-decoding".to_string())
}

fn percent_encode(b: &[u8]) -> String {
    let mut out = String::with_capacity(b.len());
    for &c in b {
        if c.is_ascii_alphanumeric() || b"-._~:[]@!$'()*+,".contains(&c) {
            out.push(c as char);
        } else {
            out.push_str(&format!("%{c:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn every_variant_has_a_scheme_row() {
        for (uri, scheme, backend) in [
            ("file:k.pem", "file", "file"),
            ("pkcs11:object=k", "pkcs11", "PKCS#11"),
            (
                "awskms:key-id=alias/k;region=eu-west-1",
                "awskms",
                "AWS KMS",
            ),
            (
                "arn:aws:kms:eu-west-1:111122223333:alias/k",
                "awskms",
                "AWS KMS",
            ),
            (
                "azurekv:https://v.vault.azure.net/keys/k",
                "azurekv",
                "Azure Key Vault",
            ),
            ("gcpkms:p/global/r/k/1", "gcpkms", "Google Cloud KMS"),
        ] {
            let u = KeyUri::parse(uri).unwrap();
            assert_eq!(u.scheme().scheme, scheme, "{uri}");
            assert_eq!(u.backend_name(), backend, "{uri}");
            // Each row's example parses, to its own row.
            let row = scheme_info(scheme).unwrap();
            assert_eq!(
                KeyUri::parse(row.example).unwrap().scheme(),
                row,
                "{}",
                row.example
            );
        }
        let unique = |f: fn(&SchemeInfo) -> &'static str| {
            SCHEMES
                .iter()
                .map(f)
                .collect::<std::collections::HashSet<_>>()
                .len()
        };
        assert_eq!(unique(|s| s.scheme), SCHEMES.len(), "schemes are unique");
        assert_eq!(unique(|s| s.id), SCHEMES.len(), "ids are unique");
        assert_eq!(SCHEMES[0].feature, None, "the file backend is always built");
    }

    use super::*;

    #[test]
    fn plain_path_and_file_forms() {
        for (s, p) in [
            ("client.pem", "client.pem"),
            ("/etc/k.pem", "/etc/k.pem"),
            ("file:/etc/k.pem", "/etc/k.pem"),
            ("file:///etc/k.pem", "/etc/k.pem"),
            ("file:rel/k%20x.pem", "rel/k x.pem"),
            ("./a:b.pem", "./a:b.pem"),
        ] {
            match KeyUri::parse(s).unwrap() {
                KeyUri::File(f) => assert_eq!(f.path, PathBuf::from(p), "{s}"),
                other => panic!("{s}: {other:?}"),
            }
        }
        let KeyUri::File(f) = KeyUri::parse("file:k.pem?passphrase-source=env:PASS").unwrap()
        else {
            panic!()
        };
        assert_eq!(f.passphrase, Some(SecretSource::Env("PASS".into())));
    }

    #[test]
    fn pkcs11_full() {
        let u = "pkcs11:token=My%20Token;object=client-2026;id=%01%02;type=private\
                 ?module-path=/usr/lib/softhsm/libsofthsm2.so&pin-source=file:/run/pin";
        let KeyUri::Pkcs11(p) = KeyUri::parse(u).unwrap() else {
            panic!()
        };
        assert_eq!(p.token.as_deref(), Some("My Token"));
        assert_eq!(p.id.as_deref(), Some(&[1u8, 2][..]));
        assert_eq!(p.object_type, Some(Pkcs11ObjectType::Private));
        assert_eq!(p.pin_source, Some(SecretSource::File("/run/pin".into())));
        let again = KeyUri::parse(&p.to_string()).unwrap();
        assert_eq!(again, KeyUri::Pkcs11(p));
    }

    #[test]
    fn kms_endpoint_http_only_to_loopback() {
        for ok in [
            "https://kms.eu-west-1.amazonaws.com",
            "http://127.0.0.1:4566",
            "http://[::1]:4566/",
            "http://localhost:4566",
            "http://127.0.0.2",
        ] {
            let u = format!("awskms:key-id=alias/a;region=eu-west-1;endpoint={ok}");
            assert!(KeyUri::parse(&u).is_ok(), "{ok}");
        }
        for bad in [
            "http://kms.example.com",
            "http://10.0.0.1:4566",
            "http://127.0.0.1.evil.com",
            "http://localhost.evil.com/",
            "http://user@evil.com",
            "http://[fe80::1]/",
            "ftp://127.0.0.1",
        ] {
            let u = format!("awskms:key-id=alias/a;region=eu-west-1;endpoint={bad}");
            let e = KeyUri::parse(&u).unwrap_err().to_string();
            assert!(e.contains("https://"), "{bad}: {e}");
        }
    }

    #[test]
    fn redaction_follows_the_parsers_grammar() {
        // Issue 12, item 2: a query value ends at '&' only, so a ';' inside a secret must not
        // end the redaction and leak the tail.
        assert_eq!(
            redact("file:k.pem?passphrase-source=hunter;2isMyPass"),
            "file:k.pem?passphrase-source=<redacted>"
        );
        assert_eq!(
            redact("pkcs11:object=k?pin-value=12;34&module-path=/m.so"),
            "pkcs11:object=k?pin-value=<redacted>&module-path=/m.so"
        );
        assert_eq!(
            redact("pkcs11:object=k;pin-value=ab?pin-value=cd;ef&x=1"),
            "pkcs11:object=k;pin-value=<redacted>?pin-value=<redacted>&x=1"
        );
        // awskms: has no query: attributes end at ';'.
        assert_eq!(
            redact("awskms:key-id=k;password=a?b&c;region=r"),
            "awskms:key-id=k;password=<redacted>;region=r"
        );
        for uri in [
            "file:k.pem?passphrase-source=hunter;2isMyPass",
            "pkcs11:object=k?pin-value=12;34",
            "pkcs11:token=t;object=k?module-path=/x&pin-value=12;34&bogus",
            "file:k.p12?password-source=pa;ss;word",
        ] {
            let e = KeyUri::parse(uri).map_or_else(|e| e.to_string(), |u| format!("{u:?}"));
            for secret in ["hunter", "2isMyPass", "12;34", ";34", "ss;word", "pa;ss"] {
                assert!(!e.contains(secret), "{uri}: {e}");
            }
        }
    }

    #[test]
    fn redaction_handles_multibyte_text() {
        // Found by the key_uri fuzz target: a multi-byte character where a key name could start.
        assert_eq!(redact("pkcs11:é€"), "pkcs11:é€");
        assert_eq!(redact("x?pin-value=é€&a"), "x?pin-value=<redacted>&a");
        assert!(KeyUri::parse("pkcs11:object=o?pin-value=\u{20ac}\u{20ac}\u{20ac}&bad").is_err());
    }

    #[test]
    fn secrets_are_not_echoed_in_errors() {
        for uri in [
            "pkcs11:object=k?module-path=/x&pin-value=Secr%et99",
            "pkcs11:object=k?pin-value=%ffSecret99",
            "PKCS11:object=o;bogus=1?pin-value=Secret99",
            "file:k.pem?passphrase-source=Secret99",
            "gcpkms:x?pin-value=Secret99",
        ] {
            let e = KeyUri::parse(uri).unwrap_err().to_string();
            assert!(
                !e.contains("Secret99") && !e.contains("Secr%et99"),
                "{uri}: {e}"
            );
        }
        let e = SecretSource::File("Secret99".into())
            .read("PIN")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("Secret99"), "{e}");
        let e = KeyUri::parse("pkcs11:object=o?pin-value=<redacted>")
            .unwrap_err()
            .to_string();
        assert!(e.contains("printed URI"), "{e}");
        // Upper-case schemes are accepted (RFC 3986).
        assert!(matches!(
            KeyUri::parse("PKCS11:object=o"),
            Ok(KeyUri::Pkcs11(_))
        ));
    }

    #[test]
    fn pin_value_never_printed() {
        let u = "pkcs11:token=t;object=o?pin-value=123456&module-path=/x.so";
        let parsed = KeyUri::parse(u).unwrap();
        for s in [parsed.to_string(), format!("{parsed:?}")] {
            assert!(!s.contains("123456"), "{s}");
            assert!(s.contains("<redacted>"));
        }
        let bad = "pkcs11:token=t;object=o;bogus=1?pin-value=123456";
        let e = KeyUri::parse(bad).unwrap_err().to_string();
        assert!(!e.contains("123456") && e.contains("bogus"), "{e}");
    }

    #[test]
    fn awskms_forms() {
        let KeyUri::AwsKms(a) = KeyUri::parse(
            "awskms:key-id=alias/payments;region=eu-west-1;endpoint=http://127.0.0.1:5000",
        )
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.key_id, "alias/payments");
        assert_eq!(a.endpoint.as_deref(), Some("http://127.0.0.1:5000"));
        let arn = "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab";
        let KeyUri::AwsKms(a) = KeyUri::parse(arn).unwrap() else {
            panic!()
        };
        assert_eq!(a.region.as_deref(), Some("us-east-1"));
        assert_eq!(a.key_id, arn);
    }

    #[test]
    fn azurekv_forms() {
        let v = "0123456789abcdef0123456789ABCDEF";
        let KeyUri::AzureKv(a) = KeyUri::parse(&format!(
            "AZUREKV:https://My-Vault.vault.azure.net/keys/client-1/{v}"
        ))
        .unwrap() else {
            panic!()
        };
        assert_eq!(a.vault, "https://my-vault.vault.azure.net");
        assert_eq!(a.name, "client-1");
        assert_eq!(
            a.version.as_deref(),
            Some("0123456789abcdef0123456789abcdef")
        );
        assert!(!a.is_managed_hsm() && !a.is_loopback());
        assert_eq!(
            a.to_string(),
            "azurekv:https://my-vault.vault.azure.net/keys/client-1/0123456789abcdef0123456789abcdef"
        );
        let KeyUri::AzureKv(h) =
            KeyUri::parse("azurekv:https://h.managedhsm.azure.net/keys/k").unwrap()
        else {
            panic!()
        };
        assert!(h.is_managed_hsm() && h.version.is_none());
        let KeyUri::AzureKv(l) = KeyUri::parse("azurekv:https://127.0.0.1:8443/keys/k").unwrap()
        else {
            panic!()
        };
        assert!(l.is_loopback());
        assert_eq!(l.vault, "https://127.0.0.1:8443");
        for bad in [
            (
                "azurekv:http://v.vault.azure.net/keys/k",
                "must be https://",
            ),
            (
                "azurekv:https://evil.example.com/keys/k",
                "not a Key Vault or Managed HSM host",
            ),
            (
                "azurekv:https://vault.azure.net.evil.com/keys/k",
                "not a Key Vault",
            ),
            ("azurekv:https://.vault.azure.net/keys/k", "not a Key Vault"),
            (
                "azurekv:https://v.vault.azure.net:8443/keys/k",
                "port is not allowed",
            ),
            (
                "azurekv:https://v.vault.azure.net/secrets/k",
                "/keys/NAME[/VERSION]",
            ),
            ("azurekv:https://v.vault.azure.net/keys/k/", "32 hex digits"),
            (
                "azurekv:https://v.vault.azure.net/keys/k/v1",
                "32 hex digits",
            ),
            (
                "azurekv:https://v.vault.azure.net/keys/a_b",
                "0-9, a-z, A-Z and -",
            ),
            (
                "azurekv:https://v.vault.azure.net/keys/k?api-version=7.5",
                "query",
            ),
            (
                "azurekv:https://u@v.vault.azure.net/keys/k",
                "user information",
            ),
            ("azurekv:https://127.0.0.1:0/keys/k", "not a port number"),
            ("azurekv:v.vault.azure.net/keys/k", "no https:// vault URL"),
        ] {
            let e = KeyUri::parse(bad.0).unwrap_err().to_string();
            assert!(e.contains(bad.1), "{}: {e} (wanted {:?})", bad.0, bad.1);
        }
    }

    #[test]
    fn gcpkms_forms() {
        let full = "gcpkms:projects/my-proj/locations/europe-west1/keyRings/ring-1/cryptoKeys/client_key/cryptoKeyVersions/3";
        let KeyUri::GcpKms(g) = KeyUri::parse(full).unwrap() else {
            panic!()
        };
        assert_eq!(
            (
                g.project.as_str(),
                g.location.as_str(),
                g.key_ring.as_str(),
                g.crypto_key.as_str(),
                g.version
            ),
            ("my-proj", "europe-west1", "ring-1", "client_key", 3)
        );
        assert_eq!(g.to_string(), full);
        let short = KeyUri::parse("GCPKMS:my-proj/europe-west1/ring-1/client_key/3").unwrap();
        assert_eq!(short, KeyUri::GcpKms(g.clone()));
        assert_eq!(short.backend_name(), "Google Cloud KMS");
        let KeyUri::GcpKms(e) =
            KeyUri::parse("gcpkms:p/global/r/k/1;endpoint=http://127.0.0.1:8080").unwrap()
        else {
            panic!()
        };
        assert_eq!(e.endpoint.as_deref(), Some("http://127.0.0.1:8080"));
        assert_eq!(
            e.version_name(),
            "projects/p/locations/global/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1"
        );
        assert_eq!(KeyUri::parse(&e.to_string()).unwrap(), KeyUri::GcpKms(e));
        for (bad, why) in [
            (
                "gcpkms:projects/p/locations/l/keyRings/r/cryptoKeys/k",
                "without its version",
            ),
            ("gcpkms:p/l/r/k", "without its version"),
            ("gcpkms:p/l/r/k/0", "not a version number"),
            ("gcpkms:p/l/r/k/v1", "not a version number"),
            ("gcpkms:p/l/r/k/1/2", "not a key version name"),
            (
                "gcpkms:projects/p/regions/l/keyRings/r/cryptoKeys/k/cryptoKeyVersions/1",
                "expected \"locations\"",
            ),
            ("gcpkms:P/l/r/k/1", "project \"P\""),
            ("gcpkms:p/l/r r/k/1", "key ring \"r r\""),
            ("gcpkms:p/l/r/k/1;endpoint=http://10.0.0.1", "not loopback"),
            ("gcpkms:p/l/r/k/1;region=x", "unknown attribute \"region\""),
        ] {
            let e = KeyUri::parse(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn bad_uris_are_specific() {
        let cases = [
            ("", "empty"),
            ("pkcs11:token=t", "object=LABEL or id="),
            ("pkcs11:token=t;token=u;object=o", "given twice"),
            ("pkcs11:object=o;slot-id=x", "not a decimal"),
            ("pkcs11:object=%zz", "two hex digits"),
            ("pkcs11:object=o?pin-source=|cat", "env:NAME or file:PATH"),
            ("pkcs11:object=o?pin-source=env:A&pin-value=1", "not both"),
            (
                "pkcs11:object=o;type=secret-key",
                "cannot name a signing key",
            ),
            ("awskms:region=eu-west-1", "missing key-id"),
            ("awskms:key-id=alias/aws/ebs", "AWS-managed"),
            ("awskms:key-id=k;region=EU", "not an AWS region"),
            ("awskms:key-id=k;endpoint=ftp://x", "http://"),
            ("arn:aws:kms:eu-west-1:12:key/x", "not an AWS KMS key"),
            (
                "awskms:key-id=arn:aws:kms:us-east-1:123456789012:key/x;region=eu-west-1",
                "contradicts",
            ),
            ("ocikms:projects/x", "unknown scheme"),
            ("file:k.pem?passphrase=hunter2", "would put a secret"),
            (
                "file:k.pem?passphrase-source=hunter2",
                "env:NAME or file:PATH",
            ),
        ];
        for (s, want) in cases {
            let e = KeyUri::parse(s)
                .map(|u| u.to_string())
                .unwrap_err()
                .to_string();
            assert!(e.contains(want), "{s}: {e} (wanted {want:?})");
        }
        let e = KeyUri::parse("file:k.pem?passphrase=hunter2")
            .unwrap_err()
            .to_string();
        assert!(!e.contains("hunter2"), "{e}");
    }

    #[test]
    fn secret_source_reads_and_trims() {
        let dir = std::env::temp_dir().join(format!("pkjwt-uri-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pin");
        std::fs::write(&f, "1234\n").unwrap();
        #[cfg(unix)]
        {
            // Issue 12, item 12: a world-readable PIN file is refused, naming the mode.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o644)).unwrap();
            let e = SecretSource::File(f.clone())
                .read("PIN")
                .unwrap_err()
                .to_string();
            assert!(
                e.contains("0644") && e.contains("0600") && !e.contains("1234"),
                "{e}"
            );
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
            assert!(SecretSource::File(f.clone()).read("PIN").is_err());
            std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        assert_eq!(&*SecretSource::File(f.clone()).read("PIN").unwrap(), "1234");
        std::fs::write(&f, "").unwrap();
        assert!(
            SecretSource::File(f)
                .read("PIN")
                .unwrap_err()
                .to_string()
                .contains("empty")
        );
        let e = SecretSource::Env("PKJWT_TEST_SURELY_UNSET".into())
            .read("PIN")
            .unwrap_err();
        assert!(e.to_string().contains("env:PKJWT_TEST_SURELY_UNSET"));
    }
}
