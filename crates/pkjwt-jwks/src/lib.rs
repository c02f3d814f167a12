#![doc = include_str!("../README.md")]
#![warn(missing_docs)]

mod rotation;
mod server;

use std::path::PathBuf;

pub use rotation::{
    KeyEntry, MIN_SERVER_JWKS_CACHE_SECS, Phase, RotationState, RotationTiming, STATE_VERSION,
};
pub use server::{JwksService, ServeOptions, admin_router, check_admin_addr};

/// Why a key set cannot be served or a rotation cannot proceed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The state file cannot be read, parsed or written.
    #[error("rotation state {}: {reason}", path.display())]
    State {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// A key given to [`JwksService::new`] that must not be published: private or symmetric
    /// key material (`d`, `p`, `q`, `dp`, `dq`, `qi`, `oth`, `k`) or key material no verifier
    /// could use.
    #[error("key {kid} cannot be published: {reason}")]
    NotPublic {
        /// The key's kid.
        kid: String,
        /// What is wrong with it (names the private member found).
        reason: String,
    },
    /// A rotation step that is not allowed now, or keys that cannot form a JWKS.
    #[error("{0}")]
    Rotation(String),
}
