#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod error;
#[doc(hidden)]
pub mod fuzzing;
mod keygen;
mod options;
mod signer;
mod transport;
mod vault;

pub use error::{AzureKvError, Operation};
pub use keygen::{CREATED_BY_TAG, RSA_SIZES, generate};
pub use options::{AzureKvOptions, CredentialSource};
pub use signer::AzureKvSigner;
pub use vault::API_VERSION;

/// The Azure SDK crates this backend takes its credentials from, re-exported so that callers
/// who build their own [`azure_core::credentials::TokenCredential`] get matching versions.
pub use azure_core;
/// See [`azure_core`].
pub use azure_identity;
