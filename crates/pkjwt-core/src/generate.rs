//! [`GenerateOptions`]: what a caller may ask of a new key beyond its algorithm, the same for
//! every backend (issue 13, item 4: each backend had read its own field, and the CLI set only the
//! file backend's).
//!
//! Every backend's `generate` takes these options and checks them with
//! [`GenerateOptions::rsa_bits_for`] before it creates anything, so an option that the algorithm
//! or the backend cannot honour is refused with [`Error::GenerateOption`] instead of being
//! ignored.

use std::fmt;

use crate::{Algorithm, Error, Family, Result};

/// RSA modulus size of a new key when [`GenerateOptions::rsa_bits`] is `None`, in the file and
/// PKCS#11 backends (AWS KMS matches the size to the hash instead: see its `generate`). 2048 is
/// what FAPI 2.0 requires at least and what every server accepts.
pub const DEFAULT_RSA_BITS: usize = 2048;

/// Options for creating a key, passed unchanged to the `generate` of every backend.
///
/// ```
/// use pkjwt_core::{Algorithm, GenerateOptions, RsaSizes};
/// let opts = GenerateOptions::default().rsa_bits(4096);
/// let sizes = RsaSizes::OneOf(&[2048, 3072, 4096]);
/// assert_eq!(opts.rsa_bits_for(Algorithm::PS256, "file", 2048, sizes).unwrap(), Some(4096));
/// // An RSA size is an error for a key that is not RSA, never silently ignored.
/// assert!(opts.rsa_bits_for(Algorithm::ES256, "file", 2048, sizes).is_err());
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct GenerateOptions {
    /// RSA modulus size in bits, for RS*/PS* keys only. `None`: the backend's default
    /// ([`DEFAULT_RSA_BITS`] for files and PKCS#11 tokens; for AWS KMS the key spec that matches
    /// the hash). Set for any other algorithm, or to a size the backend cannot make, the key is
    /// refused.
    pub rsa_bits: Option<usize>,
}

/// The RSA modulus sizes a backend can create.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum RsaSizes<'a> {
    /// Exactly these sizes (a software library's or a cloud service's fixed list).
    OneOf(&'a [usize]),
    /// Any size in this inclusive range (a PKCS#11 token takes `CKA_MODULUS_BITS` as given).
    Between(usize, usize),
}

impl RsaSizes<'_> {
    /// True when `bits` is one of the sizes.
    pub fn contains(&self, bits: usize) -> bool {
        match *self {
            RsaSizes::OneOf(list) => list.contains(&bits),
            RsaSizes::Between(min, max) => (min..=max).contains(&bits),
        }
    }
}

impl fmt::Display for RsaSizes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            RsaSizes::OneOf(list) => {
                for (i, bits) in list.iter().enumerate() {
                    let sep = match i {
                        0 => "",
                        i if i + 1 == list.len() => " or ",
                        _ => ", ",
                    };
                    write!(f, "{sep}{bits}")?;
                }
                Ok(())
            }
            RsaSizes::Between(min, max) => write!(f, "{min} to {max}"),
        }
    }
}

impl GenerateOptions {
    /// Sets [`rsa_bits`](Self::rsa_bits).
    pub fn rsa_bits(mut self, bits: usize) -> Self {
        self.rsa_bits = Some(bits);
        self
    }

    /// The RSA modulus size a backend creates for `alg`: `Ok(None)` for an algorithm that is not
    /// RSA (and no size was asked), else the size asked for, or `default` when none was.
    ///
    /// Refuses ([`Error::GenerateOption`], naming `backend`) an RSA size for an algorithm that is
    /// not RSA, and a size outside `supported`. A backend calls this before it creates anything.
    pub fn rsa_bits_for(
        &self,
        alg: Algorithm,
        backend: &'static str,
        default: usize,
        supported: RsaSizes<'_>,
    ) -> Result<Option<usize>> {
        let refuse = |bits: usize, reason: String| Error::GenerateOption {
            alg,
            option: format!("rsa_bits = {bits}"),
            reason,
        };
        let rsa = matches!(alg.family(), Family::RsaPss | Family::RsaPkcs1);
        match (rsa, self.rsa_bits) {
            (false, None) => Ok(None),
            (false, Some(bits)) => Err(refuse(
                bits,
                "an RSA size applies to RS*/PS* keys only".to_owned(),
            )),
            (true, None) => Ok(Some(default)),
            (true, Some(bits)) if supported.contains(bits) => Ok(Some(bits)),
            (true, Some(bits)) => Err(refuse(
                bits,
                format!("the {backend} backend makes RSA keys of {supported} bits"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXED: RsaSizes<'static> = RsaSizes::OneOf(&[2048, 3072, 4096]);

    #[test]
    fn rsa_size_is_used_defaulted_or_refused() {
        let none = GenerateOptions::default();
        let big = GenerateOptions::default().rsa_bits(4096);
        let odd = GenerateOptions::default().rsa_bits(8192);
        assert_eq!(
            none.rsa_bits_for(Algorithm::PS256, "file", 2048, FIXED)
                .ok(),
            Some(Some(2048))
        );
        assert_eq!(
            none.rsa_bits_for(Algorithm::ES256, "file", 2048, FIXED)
                .ok(),
            Some(None)
        );
        assert_eq!(
            big.rsa_bits_for(Algorithm::RS512, "file", 2048, FIXED).ok(),
            Some(Some(4096))
        );
        let wide = RsaSizes::Between(2048, 8192);
        assert_eq!(
            odd.rsa_bits_for(Algorithm::PS384, "PKCS#11", 2048, wide)
                .ok(),
            Some(Some(8192))
        );

        let e = odd
            .rsa_bits_for(Algorithm::PS256, "AWS KMS", 2048, FIXED)
            .err()
            .map(|e| e.to_string());
        assert_eq!(
            e.as_deref(),
            Some(
                "rsa_bits = 8192 for PS256: the AWS KMS backend makes RSA keys of 2048, 3072 \
                 or 4096 bits"
            )
        );
        for alg in [Algorithm::ES256, Algorithm::EdDSA, Algorithm::ES256K] {
            let e = big
                .rsa_bits_for(alg, "file", 2048, FIXED)
                .err()
                .map(|e| e.to_string());
            let e = e.unwrap_or_default();
            assert!(
                e.contains("rsa_bits = 4096") && e.contains(&alg.to_string()),
                "{e}"
            );
        }
    }

    #[test]
    fn sizes_read_as_prose() {
        assert_eq!(FIXED.to_string(), "2048, 3072 or 4096");
        assert_eq!(RsaSizes::OneOf(&[2048]).to_string(), "2048");
        assert_eq!(RsaSizes::Between(2048, 8192).to_string(), "2048 to 8192");
    }
}
