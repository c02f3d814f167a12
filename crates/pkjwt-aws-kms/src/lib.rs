#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod error;
mod keygen;
mod options;
mod rotation;
mod signer;
mod spec;

pub use error::{AwsKmsError, Operation};
pub use keygen::{
    KEY_DESCRIPTION, alias_name, alias_target, create_key, generate, point_alias, same_key,
};
pub use options::AwsKmsOptions;
pub use rotation::create_rotation_key;
pub use signer::{AwsKmsSigner, MAX_RAW_MESSAGE};

/// The AWS SDK crates this backend is built with, re-exported so that callers who build their
/// own [`aws_config::SdkConfig`] or KMS client get exactly the matching versions.
pub use aws_config;
/// See [`aws_config`].
pub use aws_sdk_kms;
