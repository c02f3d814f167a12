#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod client;
mod crc32c;
mod credentials;
mod error;
#[doc(hidden)]
pub mod fuzzing;
mod keygen;
mod options;
mod signer;
mod spec;

pub use credentials::SCOPE;
pub use error::{GcpKmsError, Operation};
pub use keygen::{KEY_LABEL, algorithm_for, generate};
pub use options::{Credentials, DEFAULT_ENDPOINT, GcpKmsOptions, ProtectionLevel};
pub use signer::{GcpKmsSigner, MAX_DATA};

/// CRC32C (Castagnoli), as Cloud KMS computes its integrity fields; public for tests and tools
/// that build requests themselves.
pub fn crc32c(data: &[u8]) -> u32 {
    crc32c::crc32c(data)
}
