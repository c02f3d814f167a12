//! [`GcpKmsOptions`]: retries, timeouts, the endpoint, the credentials and the protection level
//! of created keys.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use zeroize::Zeroizing;

/// The public Cloud KMS endpoint.
pub const DEFAULT_ENDPOINT: &str = "https://cloudkms.googleapis.com";

/// Where the access token comes from.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum Credentials {
    /// Application Default Credentials: the JSON file `GOOGLE_APPLICATION_CREDENTIALS` names
    /// (service account key, workload identity federation configuration, or gcloud user
    /// credentials), else gcloud's `application_default_credentials.json`, else the metadata
    /// server of the VM, GKE node or Cloud Run instance.
    #[default]
    ApplicationDefault,
    /// This credentials file (the same JSON types as above), and nothing else.
    File(PathBuf),
    /// The metadata server only.
    MetadataServer,
    /// A caller-provided OAuth 2.0 access token, used as is (it is never refreshed).
    AccessToken(Zeroizing<String>),
}

impl fmt::Debug for Credentials {
    // Hand-written: an access token never reaches a log.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Credentials::ApplicationDefault => f.write_str("ApplicationDefault"),
            Credentials::File(p) => f.debug_tuple("File").field(p).finish(),
            Credentials::MetadataServer => f.write_str("MetadataServer"),
            Credentials::AccessToken(_) => f.write_str("AccessToken(<redacted>)"),
        }
    }
}

/// Where Cloud KMS keeps a key pkjwt creates.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtectionLevel {
    /// Cloud HSM (FIPS 140-2 level 3). The default: pkjwt is about keys that never leave an HSM.
    #[default]
    Hsm,
    /// Software keys (cheaper; FIPS 140-2 level 1).
    Software,
}

impl ProtectionLevel {
    /// The API's name.
    pub fn name(self) -> &'static str {
        match self {
            ProtectionLevel::Hsm => "HSM",
            ProtectionLevel::Software => "SOFTWARE",
        }
    }
}

/// Settings for talking to Cloud KMS. `Default` gives the values documented on each field.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct GcpKmsOptions {
    /// Total attempts per call, the first included. Retried: HTTP 429 `RESOURCE_EXHAUSTED`, 503
    /// `UNAVAILABLE`, 504 `DEADLINE_EXCEEDED`, 500 `INTERNAL`, connection failures and
    /// timeouts, and answers that fail a CRC32C check. Default 4; 1 disables retries.
    pub max_attempts: u32,
    /// Base of the exponential backoff (full jitter) between attempts. Default 100 ms.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff. Default 2 s.
    pub max_backoff: Duration,
    /// TCP/TLS connect timeout. Default 3 s.
    pub connect_timeout: Duration,
    /// Timeout of one attempt, request to end of response. Default 5 s.
    pub attempt_timeout: Duration,
    /// The API endpoint when the key URI has no `;endpoint=`. Default
    /// [`DEFAULT_ENDPOINT`].
    pub endpoint: String,
    /// Where the access token comes from. Default [`Credentials::ApplicationDefault`].
    pub credentials: Credentials,
    /// Protection level of keys [`generate`](crate::generate) creates. Default HSM.
    pub protection_level: ProtectionLevel,
    /// How long [`generate`](crate::generate) waits for a new key version to leave
    /// `PENDING_GENERATION`. Default 60 s.
    pub generation_timeout: Duration,
}

impl Default for GcpKmsOptions {
    fn default() -> Self {
        GcpKmsOptions {
            max_attempts: 4,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(5),
            endpoint: DEFAULT_ENDPOINT.to_owned(),
            credentials: Credentials::ApplicationDefault,
            protection_level: ProtectionLevel::Hsm,
            generation_timeout: Duration::from_secs(60),
        }
    }
}

impl GcpKmsOptions {
    /// Sets [`max_attempts`](Self::max_attempts) (at least 1).
    pub fn max_attempts(mut self, attempts: u32) -> Self {
        self.max_attempts = attempts.max(1);
        self
    }

    /// Sets [`initial_backoff`](Self::initial_backoff) and [`max_backoff`](Self::max_backoff).
    pub fn backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_backoff = initial;
        self.max_backoff = max.max(initial);
        self
    }

    /// Sets [`attempt_timeout`](Self::attempt_timeout).
    pub fn attempt_timeout(mut self, timeout: Duration) -> Self {
        self.attempt_timeout = timeout;
        self
    }

    /// Sets [`endpoint`](Self::endpoint).
    pub fn endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = endpoint.into();
        self
    }

    /// Sets [`credentials`](Self::credentials).
    pub fn credentials(mut self, credentials: Credentials) -> Self {
        self.credentials = credentials;
        self
    }

    /// Sets [`protection_level`](Self::protection_level).
    pub fn protection_level(mut self, level: ProtectionLevel) -> Self {
        self.protection_level = level;
        self
    }

    /// Sets [`generation_timeout`](Self::generation_timeout).
    pub fn generation_timeout(mut self, timeout: Duration) -> Self {
        self.generation_timeout = timeout;
        self
    }
}
