#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod access_token;
mod address;
mod assertion;
mod check;
mod jwks;
mod keys;
mod policy;
mod rejection;
mod replay;
mod report;

#[cfg(feature = "axum")]
pub mod layer;
#[cfg(feature = "redis")]
pub mod redis_store;

pub use access_token::{
    AccessTokenClaims, AccessTokenPolicy, AccessTokenValidator, DiscoveryError,
};
pub use assertion::{AssertionVerifier, VerifiedAssertion, explain};
pub use jwks::{FetchPolicy, JwksError, RemoteJwks, load_jwks, load_jwks_with};
pub use keys::{KeySet, KeySource, VerifyingKey};
pub use policy::{PolicyError, TYP_ACCESS_TOKEN, TYP_CLIENT_ASSERTION, TypPolicy, VerifyPolicy};
pub use rejection::{Part, Rejection};
pub use replay::{MemoryReplayStore, ReplayStore, ReplayStoreError};
pub use report::{Check, Outcome, Report};

pub use pkjwt_core::{Algorithm, Clock, FixedClock, Jwk, JwkSet, SystemClock};
#[cfg(feature = "redis")]
pub use redis_store::{RedisReplayStore, RedisTls};
