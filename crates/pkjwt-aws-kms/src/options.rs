//! [`AwsKmsOptions`]: retries, timeouts and an optional pre-built SDK configuration, and the one
//! place where a KMS client is built from a key URI.

use std::fmt;
use std::time::Duration;

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_kms::Client;
use pkjwt_core::AwsKmsUri;

use crate::AwsKmsError;

/// Settings for talking to KMS. `Default` gives the values documented on each field.
///
/// Region, credentials, profile and endpoint come from the key URI and the standard AWS chain
/// (environment, shared config/credentials files and SSO, web identity for EKS, ECS container
/// credentials, EC2 instance metadata), unless [`sdk_config`](Self::sdk_config) is given.
#[derive(Clone)]
#[non_exhaustive]
pub struct AwsKmsOptions {
    /// Total attempts per KMS call, the first included (SDK "standard" retry mode, which retries
    /// throttling, 5xx and transient network errors with jittered exponential backoff).
    /// Default 3; 1 disables retries.
    pub max_attempts: u32,
    /// Base of the exponential backoff between attempts. Default 100 ms (the SDK's own default is
    /// 1 s, long for an interactive token request).
    pub initial_backoff: Duration,
    /// Upper bound of one backoff. Default 2 s.
    pub max_backoff: Duration,
    /// TCP/TLS connect timeout. Default 3.1 s (the SDK's default).
    pub connect_timeout: Duration,
    /// Timeout of one attempt, from sending the request to the end of the response.
    /// Default 5 s.
    pub attempt_timeout: Duration,
    /// Timeout of a whole call, retries and backoff included. Default 15 s.
    pub operation_timeout: Duration,
    /// Use this SDK configuration instead of loading the standard chain (for callers that
    /// already hold one, and tests). The URI's `region=` and `endpoint=` still override it; its
    /// `profile=` is then ignored.
    pub sdk_config: Option<SdkConfig>,
}

impl Default for AwsKmsOptions {
    fn default() -> Self {
        AwsKmsOptions {
            max_attempts: 3,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(3100),
            attempt_timeout: Duration::from_secs(5),
            operation_timeout: Duration::from_secs(15),
            sdk_config: None,
        }
    }
}

impl fmt::Debug for AwsKmsOptions {
    // Hand-written: an SdkConfig holds a credentials provider, which has no business in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AwsKmsOptions")
            .field("max_attempts", &self.max_attempts)
            .field("initial_backoff", &self.initial_backoff)
            .field("max_backoff", &self.max_backoff)
            .field("connect_timeout", &self.connect_timeout)
            .field("attempt_timeout", &self.attempt_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .field("sdk_config", &self.sdk_config.as_ref().map(|_| "<given>"))
            .finish()
    }
}

impl AwsKmsOptions {
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

    /// Sets [`connect_timeout`](Self::connect_timeout).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets [`attempt_timeout`](Self::attempt_timeout) and
    /// [`operation_timeout`](Self::operation_timeout).
    pub fn timeouts(mut self, attempt: Duration, operation: Duration) -> Self {
        self.attempt_timeout = attempt;
        self.operation_timeout = operation;
        self
    }

    /// Sets [`sdk_config`](Self::sdk_config).
    pub fn sdk_config(mut self, config: SdkConfig) -> Self {
        self.sdk_config = Some(config);
        self
    }

    fn retry_config(&self) -> RetryConfig {
        RetryConfig::standard()
            .with_max_attempts(self.max_attempts.max(1))
            .with_initial_backoff(self.initial_backoff)
            .with_max_backoff(self.max_backoff)
    }

    fn timeout_config(&self) -> TimeoutConfig {
        TimeoutConfig::builder()
            .connect_timeout(self.connect_timeout)
            .operation_attempt_timeout(self.attempt_timeout)
            .operation_timeout(self.operation_timeout)
            .build()
    }
}

/// A KMS client for `uri`, with its description of where it sends requests (for messages).
pub(crate) async fn client_for(
    uri: &AwsKmsUri,
    options: &AwsKmsOptions,
) -> Result<(Client, String), AwsKmsError> {
    let sdk = match &options.sdk_config {
        Some(config) => config.clone(),
        None => {
            let mut loader = aws_config::defaults(BehaviorVersion::latest());
            if let Some(profile) = &uri.profile {
                loader = loader.profile_name(profile);
            }
            if let Some(region) = &uri.region {
                // Also the region for STS/SSO calls of the credentials chain.
                loader = loader.region(Region::new(region.clone()));
            }
            loader.load().await
        }
    };
    let mut builder = aws_sdk_kms::config::Builder::from(&sdk)
        .retry_config(options.retry_config())
        .timeout_config(options.timeout_config());
    if let Some(region) = &uri.region {
        builder = builder.region(Region::new(region.clone()));
    }
    if let Some(endpoint) = &uri.endpoint {
        builder = builder.endpoint_url(endpoint.clone());
    }
    let config = builder.build();
    let Some(region) = config.region().map(|r| r.to_string()) else {
        return Err(AwsKmsError::NoRegion {
            key: uri.key_id.clone(),
        });
    };
    let endpoint = match (&uri.endpoint, sdk.endpoint_url()) {
        (Some(e), _) => e.clone(),
        (None, Some(e)) => e.to_owned(),
        // AWS_ENDPOINT_URL_KMS is resolved inside the client; name the region's default here.
        (None, None) => format!("the KMS endpoint of {region}"),
    };
    Ok((Client::from_conf(config), endpoint))
}
