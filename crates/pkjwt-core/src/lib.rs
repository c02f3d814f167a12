//! # pkjwt-core
//!
//! The backend-independent heart of pkjwt: the [`Signer`] trait, JWS [`Algorithm`]s, public keys
//! and JWK/JWKS with RFC 7638 thumbprints, key URIs, and the assembly of RFC 7523 client
//! assertions. It has no crypto backend of its own; signing happens in `pkjwt-file`,
//! `pkjwt-pkcs11` or `pkjwt-aws-kms`, and this crate turns what they return into a JWS.
//!
//! ```no_run
//! # async fn demo(signer: std::sync::Arc<dyn pkjwt_core::Signer>) -> pkjwt_core::Result<()> {
//! use pkjwt_core::{AssertionOptions, ClientAssertion};
//! let assertion = ClientAssertion::new(
//!     signer,
//!     AssertionOptions::new("my-client", "https://as.example.com"),
//! )?;
//! let jwt = assertion.sign().await?; // fresh jti and timestamps every call
//! # Ok(()) }
//! ```

mod algorithm;
pub mod assertion;
pub mod b64;
mod der;
mod error;
mod generate;
mod jti;
pub mod jwk;
pub mod jws;
mod key;
pub mod pem;
pub mod private_file;
mod signer;
pub mod uri;
pub mod wipe;

pub use algorithm::{ALL_ALGORITHMS, Algorithm, Curve, Family, HashAlg};
pub use assertion::{
    AssertionOptions, Audience, ClientAssertion, Clock, FixedClock, KeyId, SignedAssertion,
    SystemClock,
};
pub use der::{ecdsa_der_to_fixed, ecdsa_fixed_to_der};
pub use error::{Error, ErrorChain, Result, display_chain, escape_controls};
pub use generate::{DEFAULT_RSA_BITS, GenerateOptions, RsaSizes};
pub use jwk::{Jwk, JwkSet, published_alg, thumbprint};
pub use key::{MAX_RSA_BITS, MIN_RSA_BITS, PublicKey};
pub use signer::{Signature, Signer};
pub use uri::{
    AwsKmsUri, FileUri, GcpKmsUri, KeyUri, Pkcs11ObjectType, Pkcs11Uri, SCHEMES, SchemeInfo,
    SecretSource, scheme_info,
};
