#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod cache;
mod client;
mod error;
mod http;
mod metadata;
mod profile;
mod registration;

pub use cache::{CacheOptions, TokenCache};
pub use client::{
    CLIENT_ASSERTION_TYPE, ClientConfig, GRANT_JWT_BEARER, MAX_FORWARD_SKEW_SECS, RetryPolicy,
    Secret, TokenClient, TokenRequest, TokenResponse,
};
pub use error::{ClientError, OAuthError};
pub use http::HttpOptions;
pub use metadata::{ServerMetadata, discovery_urls};
pub use profile::{AudienceMode, PROFILE_NAMES, Profile};
pub use registration::{
    ClientKeys, ClientMetadata, RegisterOptions, Registration, RegistrationClient, SignedRequest,
    sign_software_statement,
};
