#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod cache;
mod client;
mod error;
mod http;
mod metadata;
mod profile;
mod registered_keys;
mod registration;

pub use cache::{CacheOptions, CacheStats, Served, Source, TokenCache, Validity};
pub use client::{
    CLIENT_ASSERTION_TYPE, ClientConfig, GRANT_JWT_BEARER, MAX_FORWARD_SKEW_SECS, RetryPolicy,
    Secret, TokenClient, TokenRequest, TokenResponse,
};
pub use error::{ClientError, OAuthError};
pub use http::HttpOptions;
pub use metadata::{ServerMetadata, discovery_urls};
pub use profile::{AudienceMode, PROFILE_NAMES, Profile};
pub use registered_keys::{
    KeysUpdate, check_key_algs, check_new_key, check_new_key_alg, registered_alg,
};
pub use registration::{
    ClientKeys, ClientMetadata, RegisterOptions, Registration, RegistrationClient, SignedRequest,
    sign_software_statement,
};
