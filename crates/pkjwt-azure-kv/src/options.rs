//! [`AzureKvOptions`] (retries, timeouts, trust roots, the credential) and the one place a
//! credential is built.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use azure_core::cloud::{CloudConfiguration, CustomConfiguration};
use azure_core::credentials::{Secret, TokenCredential};
use azure_core::http::ClientOptions;
use azure_identity::{
    AzureCliCredential, ClientAssertionCredentialOptions, ClientSecretCredential,
    ClientSecretCredentialOptions, ManagedIdentityCredential, ManagedIdentityCredentialOptions,
    UserAssignedId, WorkloadIdentityCredential, WorkloadIdentityCredentialOptions,
};

use crate::AzureKvError;
use crate::transport::ReqwestTransport;

/// Where the Microsoft Entra ID token for the vault comes from.
///
/// [`Auto`](Self::Auto) (the default) decides from the environment, without probing any
/// address: `AZURE_CLIENT_SECRET` set → [`Environment`](Self::Environment);
/// `AZURE_FEDERATED_TOKEN_FILE` set → [`WorkloadIdentity`](Self::WorkloadIdentity); otherwise
/// [`ManagedIdentity`](Self::ManagedIdentity). The Azure CLI is used only when asked for.
#[derive(Clone, Default)]
#[non_exhaustive]
pub enum CredentialSource {
    /// See the type's documentation.
    #[default]
    Auto,
    /// A service principal with a client secret from `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_CLIENT_SECRET` (each is required).
    Environment,
    /// A service principal with a client secret given here.
    ClientSecret {
        /// Directory (tenant) id.
        tenant_id: String,
        /// Application (client) id.
        client_id: String,
        /// The secret. Never printed.
        secret: String,
    },
    /// Microsoft Entra Workload ID on Kubernetes: `AZURE_TENANT_ID`, `AZURE_CLIENT_ID` and
    /// `AZURE_FEDERATED_TOKEN_FILE`, as the webhook injects them.
    WorkloadIdentity,
    /// The managed identity of the Azure resource: system-assigned, or the user-assigned one
    /// whose client id is given (`Auto` passes `AZURE_CLIENT_ID` when it is set).
    ManagedIdentity {
        /// Client id of a user-assigned identity.
        client_id: Option<String>,
    },
    /// The signed-in Azure CLI account (`az account get-access-token`); for developers.
    AzureCli,
    /// A credential the caller built.
    Custom(Arc<dyn TokenCredential>),
}

impl fmt::Debug for CredentialSource {
    // Hand-written: a client secret must never reach a log line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CredentialSource::Auto => f.write_str("Auto"),
            CredentialSource::Environment => f.write_str("Environment"),
            CredentialSource::ClientSecret {
                tenant_id,
                client_id,
                ..
            } => f
                .debug_struct("ClientSecret")
                .field("tenant_id", tenant_id)
                .field("client_id", client_id)
                .field("secret", &"<redacted>")
                .finish(),
            CredentialSource::WorkloadIdentity => f.write_str("WorkloadIdentity"),
            CredentialSource::ManagedIdentity { client_id } => f
                .debug_struct("ManagedIdentity")
                .field("client_id", client_id)
                .finish(),
            CredentialSource::AzureCli => f.write_str("AzureCli"),
            CredentialSource::Custom(_) => f.write_str("Custom(..)"),
        }
    }
}

impl CredentialSource {
    /// Parses the names `pkjwt` accepts in `PKJWT_AZURE_KV_CREDENTIAL`: `auto`, `environment`,
    /// `workload-identity`, `managed-identity`, `azure-cli`.
    pub fn from_name(name: &str) -> Result<Self, String> {
        Ok(match name {
            "auto" => CredentialSource::Auto,
            "environment" => CredentialSource::Environment,
            "workload-identity" => CredentialSource::WorkloadIdentity,
            "managed-identity" => CredentialSource::ManagedIdentity { client_id: None },
            "azure-cli" => CredentialSource::AzureCli,
            other => {
                return Err(format!(
                    "unknown Azure credential \"{other}\"; expected auto, environment, \
                     workload-identity, managed-identity or azure-cli"
                ));
            }
        })
    }
}

/// Settings for talking to Key Vault. `Default` gives the values documented on each field.
#[derive(Clone)]
#[non_exhaustive]
pub struct AzureKvOptions {
    /// Where the token comes from. Default [`CredentialSource::Auto`].
    pub credential: CredentialSource,
    /// Microsoft Entra ID authority host (`https://login.microsoftonline.com` for the public
    /// cloud). `None`: `AZURE_AUTHORITY_HOST`, else the public cloud. Must be `https://`.
    pub authority_host: Option<String>,
    /// Extra trust anchors (PEM), added to the platform's, for the vault and Entra ID (a TLS
    /// inspecting proxy, a local test double). Default none.
    pub root_certificates_pem: Option<Vec<u8>>,
    /// Total attempts per vault call, the first included. Retried: 429, 500, 502, 503, 504 and
    /// connection failures (Create Key: 429 and connection refusals only, as it is not
    /// idempotent). Default 3; 1 disables retries.
    pub max_attempts: u32,
    /// First backoff between attempts when the vault sends no `Retry-After`; it doubles per
    /// attempt. Default 200 ms.
    pub initial_backoff: Duration,
    /// Upper bound of one backoff. Default 2 s.
    pub max_backoff: Duration,
    /// The longest `Retry-After` (429/503) that is waited for; a longer one fails at once with
    /// [`AzureKvError::Throttled`] carrying it. Default 10 s.
    pub max_retry_after: Duration,
    /// TCP/TLS connect timeout. Default 3 s.
    pub connect_timeout: Duration,
    /// Timeout of one HTTP attempt. Default 10 s.
    pub attempt_timeout: Duration,
    /// Read the Key Vault certificate of the key's name at open, for `x5c` / `x5t#S256`.
    /// Default true (a 404 then means "no certificate"; a 403 is an error naming the role).
    /// Ignored for a Managed HSM, which stores no certificates.
    pub read_certificate: bool,
    /// Create keys as `EC-HSM` / `RSA-HSM` (Premium vaults) in [`generate`](crate::generate).
    /// Default false for a vault (software-protected `EC` / `RSA`, any tier); a Managed HSM
    /// always creates HSM keys.
    pub hsm_keys: bool,
}

impl Default for AzureKvOptions {
    fn default() -> Self {
        AzureKvOptions {
            credential: CredentialSource::Auto,
            authority_host: None,
            root_certificates_pem: None,
            max_attempts: 3,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(2),
            max_retry_after: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
            attempt_timeout: Duration::from_secs(10),
            read_certificate: true,
            hsm_keys: false,
        }
    }
}

impl fmt::Debug for AzureKvOptions {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AzureKvOptions")
            .field("credential", &self.credential)
            .field("authority_host", &self.authority_host)
            .field(
                "root_certificates_pem",
                &self.root_certificates_pem.as_ref().map(|_| "<given>"),
            )
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("max_retry_after", &self.max_retry_after)
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("read_certificate", &self.read_certificate)
            .field("hsm_keys", &self.hsm_keys)
            .finish()
    }
}

impl AzureKvOptions {
    /// Sets [`credential`](Self::credential).
    pub fn credential(mut self, credential: CredentialSource) -> Self {
        self.credential = credential;
        self
    }

    /// Sets [`authority_host`](Self::authority_host).
    pub fn authority_host(mut self, host: impl Into<String>) -> Self {
        self.authority_host = Some(host.into());
        self
    }

    /// Sets [`root_certificates_pem`](Self::root_certificates_pem).
    pub fn root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates_pem = Some(pem.into());
        self
    }

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

    /// Sets [`max_retry_after`](Self::max_retry_after).
    pub fn max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// Sets [`read_certificate`](Self::read_certificate).
    pub fn read_certificate(mut self, read: bool) -> Self {
        self.read_certificate = read;
        self
    }

    /// Sets [`hsm_keys`](Self::hsm_keys).
    pub fn hsm_keys(mut self, hsm: bool) -> Self {
        self.hsm_keys = hsm;
        self
    }

    fn client_options(&self, http: &reqwest::Client) -> ClientOptions {
        let mut options = ClientOptions {
            transport: Some(ReqwestTransport::transport(http.clone())),
            ..Default::default()
        };
        if let Some(host) = &self.authority_host {
            let mut custom = CustomConfiguration::default();
            custom.authority_host = host.clone();
            options.cloud = Some(Arc::new(CloudConfiguration::from(custom)));
        }
        options
    }

    /// The credential [`credential`](Self::credential) names, sending its requests through
    /// `http`.
    pub(crate) fn build_credential(
        &self,
        vault: &str,
        http: &reqwest::Client,
    ) -> Result<Arc<dyn TokenCredential>, AzureKvError> {
        let fail = |reason: String| AzureKvError::Credential {
            vault: vault.to_owned(),
            reason,
        };
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let source = match &self.credential {
            CredentialSource::Auto if env("AZURE_CLIENT_SECRET").is_some() => {
                CredentialSource::Environment
            }
            CredentialSource::Auto if env("AZURE_FEDERATED_TOKEN_FILE").is_some() => {
                CredentialSource::WorkloadIdentity
            }
            CredentialSource::Auto => CredentialSource::ManagedIdentity {
                client_id: env("AZURE_CLIENT_ID"),
            },
            other => other.clone(),
        };
        let az = |what: &str, e: azure_core::Error| fail(format!("{what}: {e}"));
        Ok(match source {
            CredentialSource::Custom(c) => c,
            CredentialSource::Environment => {
                let need = |name: &str| {
                    env(name).ok_or_else(|| {
                        fail(format!(
                            "the environment credential needs {name} (with AZURE_TENANT_ID, \
                             AZURE_CLIENT_ID and AZURE_CLIENT_SECRET)"
                        ))
                    })
                };
                let (tenant, client, secret) = (
                    need("AZURE_TENANT_ID")?,
                    need("AZURE_CLIENT_ID")?,
                    need("AZURE_CLIENT_SECRET")?,
                );
                self.client_secret(&tenant, client, secret, http)
                    .map_err(|e| az("client secret credential", e))?
            }
            CredentialSource::ClientSecret {
                tenant_id,
                client_id,
                secret,
            } => self
                .client_secret(&tenant_id, client_id, secret, http)
                .map_err(|e| az("client secret credential", e))?,
            CredentialSource::WorkloadIdentity => {
                let options = WorkloadIdentityCredentialOptions {
                    credential_options: ClientAssertionCredentialOptions {
                        client_options: self.client_options(http),
                    },
                    ..Default::default()
                };
                WorkloadIdentityCredential::new(Some(options))
                    .map_err(|e| az("workload identity credential", e))?
            }
            CredentialSource::ManagedIdentity { client_id } => {
                let options = ManagedIdentityCredentialOptions {
                    user_assigned_id: client_id.map(UserAssignedId::ClientId),
                    client_options: self.client_options(http),
                };
                ManagedIdentityCredential::new(Some(options))
                    .map_err(|e| az("managed identity credential", e))?
            }
            CredentialSource::AzureCli => {
                AzureCliCredential::new(None).map_err(|e| az("Azure CLI credential", e))?
            }
            // Auto was resolved above.
            CredentialSource::Auto => {
                return Err(fail("no credential source resolved".into()));
            }
        })
    }

    fn client_secret(
        &self,
        tenant: &str,
        client_id: String,
        secret: String,
        http: &reqwest::Client,
    ) -> azure_core::Result<Arc<dyn TokenCredential>> {
        let credential = ClientSecretCredential::new(
            tenant,
            client_id,
            Secret::new(secret),
            Some(ClientSecretCredentialOptions {
                client_options: self.client_options(http),
            }),
        )?;
        Ok(credential)
    }
}
