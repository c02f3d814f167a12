//! Choosing the signing mechanism from what the token advertises (`C_GetMechanismList`), and
//! preparing the bytes it signs.
//!
//! | JWS | preferred | fallback |
//! | --- | --- | --- |
//! | ES256/384/512 | `CKM_ECDSA` over the digest computed here | `CKM_ECDSA_SHA*` over the message |
//! | RS256/384/512 | `CKM_SHA*_RSA_PKCS` over the message | `CKM_RSA_PKCS` over DigestInfo(digest) |
//! | PS256/384/512 | `CKM_SHA*_RSA_PKCS_PSS` over the message | `CKM_RSA_PKCS_PSS` over the digest |
//! | EdDSA | `CKM_EDDSA` over the message | — |
//!
//! `CKM_ECDSA` comes first for EC because it is what every module has (SoftHSM2 has nothing
//! else) and because hashing here keeps the token's hashing limits (AWS CloudHSM: 16 KB) out of
//! the way. PSS always carries explicit parameters: hash = MGF1 hash = the JWS hash and salt =
//! hash length (RFC 7518 §3.5), since module defaults differ.

use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsPssParams};
use cryptoki::mechanism::{Mechanism, MechanismType};
use pkjwt_core::{Algorithm, Family, HashAlg};

use crate::error::Pkcs11Error;

/// The mechanism a signer uses, decided once at open.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Mech {
    /// `CKM_ECDSA` over a local digest; returns raw `r || s`.
    EcdsaRaw(HashAlg),
    /// `CKM_ECDSA_SHA*` over the message; returns raw `r || s`.
    EcdsaHashing(HashAlg),
    /// `CKM_SHA*_RSA_PKCS` over the message.
    RsaPkcsHashing(HashAlg),
    /// `CKM_RSA_PKCS` over a DigestInfo built here.
    RsaPkcsRaw(HashAlg),
    /// `CKM_SHA*_RSA_PKCS_PSS` over the message.
    PssHashing(HashAlg),
    /// `CKM_RSA_PKCS_PSS` over a local digest.
    PssRaw(HashAlg),
    /// `CKM_EDDSA` over the message.
    Eddsa,
}

fn hash_mech(h: HashAlg) -> MechanismType {
    match h {
        HashAlg::Sha384 => MechanismType::SHA384,
        HashAlg::Sha512 => MechanismType::SHA512,
        _ => MechanismType::SHA256,
    }
}

fn mgf(h: HashAlg) -> PkcsMgfType {
    match h {
        HashAlg::Sha384 => PkcsMgfType::MGF1_SHA384,
        HashAlg::Sha512 => PkcsMgfType::MGF1_SHA512,
        _ => PkcsMgfType::MGF1_SHA256,
    }
}

fn pss_params(h: HashAlg) -> PkcsPssParams {
    PkcsPssParams {
        hash_alg: hash_mech(h),
        mgf: mgf(h),
        s_len: (h.len() as u64).into(),
    }
}

impl Mech {
    /// Picks a mechanism for `alg` among `available`, or says which ones are missing. With
    /// `local_hashing`, RSA prefers the mechanisms that sign a digest computed here
    /// (`CKM_RSA_PKCS`, `CKM_RSA_PKCS_PSS`) when the token has them.
    pub(crate) fn choose(
        alg: Algorithm,
        available: &[MechanismType],
        token: &str,
        local_hashing: bool,
    ) -> Result<Mech, Pkcs11Error> {
        let has = |m: MechanismType| available.contains(&m);
        let missing = |wanted: &'static str| Pkcs11Error::MechanismMissing {
            token: token.to_string(),
            alg,
            wanted,
        };
        let hash = alg.hash();
        match (alg.family(), hash) {
            (Family::Ecdsa(_), Some(h)) => {
                let hashing = match h {
                    HashAlg::Sha384 => MechanismType::ECDSA_SHA384,
                    HashAlg::Sha512 => MechanismType::ECDSA_SHA512,
                    _ => MechanismType::ECDSA_SHA256,
                };
                if has(MechanismType::ECDSA) {
                    Ok(Mech::EcdsaRaw(h))
                } else if has(hashing) {
                    Ok(Mech::EcdsaHashing(h))
                } else {
                    Err(missing(match h {
                        HashAlg::Sha384 => "CKM_ECDSA, CKM_ECDSA_SHA384",
                        HashAlg::Sha512 => "CKM_ECDSA, CKM_ECDSA_SHA512",
                        _ => "CKM_ECDSA, CKM_ECDSA_SHA256",
                    }))
                }
            }
            (Family::RsaPkcs1, Some(h)) => {
                let hashing = match h {
                    HashAlg::Sha384 => MechanismType::SHA384_RSA_PKCS,
                    HashAlg::Sha512 => MechanismType::SHA512_RSA_PKCS,
                    _ => MechanismType::SHA256_RSA_PKCS,
                };
                if local_hashing && has(MechanismType::RSA_PKCS) {
                    Ok(Mech::RsaPkcsRaw(h))
                } else if has(hashing) {
                    Ok(Mech::RsaPkcsHashing(h))
                } else if has(MechanismType::RSA_PKCS) {
                    Ok(Mech::RsaPkcsRaw(h))
                } else {
                    Err(missing(match h {
                        HashAlg::Sha384 => "CKM_SHA384_RSA_PKCS, CKM_RSA_PKCS",
                        HashAlg::Sha512 => "CKM_SHA512_RSA_PKCS, CKM_RSA_PKCS",
                        _ => "CKM_SHA256_RSA_PKCS, CKM_RSA_PKCS",
                    }))
                }
            }
            (Family::RsaPss, Some(h)) => {
                let hashing = match h {
                    HashAlg::Sha384 => MechanismType::SHA384_RSA_PKCS_PSS,
                    HashAlg::Sha512 => MechanismType::SHA512_RSA_PKCS_PSS,
                    _ => MechanismType::SHA256_RSA_PKCS_PSS,
                };
                if local_hashing && has(MechanismType::RSA_PKCS_PSS) {
                    Ok(Mech::PssRaw(h))
                } else if has(hashing) {
                    Ok(Mech::PssHashing(h))
                } else if has(MechanismType::RSA_PKCS_PSS) {
                    Ok(Mech::PssRaw(h))
                } else {
                    Err(missing(match h {
                        HashAlg::Sha384 => "CKM_SHA384_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS",
                        HashAlg::Sha512 => "CKM_SHA512_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS",
                        _ => "CKM_SHA256_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS",
                    }))
                }
            }
            (Family::Ed25519, _) => {
                if has(MechanismType::EDDSA) {
                    Ok(Mech::Eddsa)
                } else {
                    Err(missing("CKM_EDDSA"))
                }
            }
            // Every hashed family has a hash; a new family must be added above.
            _ => Err(missing("(no mechanism known for this algorithm)")),
        }
    }

    /// The `cryptoki` mechanism value.
    pub(crate) fn mechanism(self) -> Mechanism<'static> {
        match self {
            Mech::EcdsaRaw(_) => Mechanism::Ecdsa,
            Mech::EcdsaHashing(HashAlg::Sha384) => Mechanism::EcdsaSha384,
            Mech::EcdsaHashing(HashAlg::Sha512) => Mechanism::EcdsaSha512,
            Mech::EcdsaHashing(_) => Mechanism::EcdsaSha256,
            Mech::RsaPkcsHashing(HashAlg::Sha384) => Mechanism::Sha384RsaPkcs,
            Mech::RsaPkcsHashing(HashAlg::Sha512) => Mechanism::Sha512RsaPkcs,
            Mech::RsaPkcsHashing(_) => Mechanism::Sha256RsaPkcs,
            Mech::RsaPkcsRaw(_) => Mechanism::RsaPkcs,
            Mech::PssHashing(h @ HashAlg::Sha384) => Mechanism::Sha384RsaPkcsPss(pss_params(h)),
            Mech::PssHashing(h @ HashAlg::Sha512) => Mechanism::Sha512RsaPkcsPss(pss_params(h)),
            Mech::PssHashing(h) => Mechanism::Sha256RsaPkcsPss(pss_params(h)),
            Mech::PssRaw(h) => Mechanism::RsaPkcsPss(pss_params(h)),
            Mech::Eddsa => Mechanism::Eddsa(cryptoki::mechanism::eddsa::EddsaParams::new(
                cryptoki::mechanism::eddsa::EddsaSignatureScheme::Pure,
            )),
        }
    }

    /// The bytes handed to `C_Sign` for `message`.
    pub(crate) fn input(self, message: &[u8]) -> Vec<u8> {
        match self {
            Mech::EcdsaRaw(h) | Mech::PssRaw(h) => h.digest(message),
            Mech::RsaPkcsRaw(h) => {
                let mut out = digest_info_prefix(h).to_vec();
                out.extend(h.digest(message));
                out
            }
            Mech::EcdsaHashing(_) | Mech::RsaPkcsHashing(_) | Mech::PssHashing(_) | Mech::Eddsa => {
                message.to_vec()
            }
        }
    }

    /// True when the token returns raw `r || s` that must become DER for the Signer contract.
    pub(crate) fn returns_raw_ecdsa(self) -> bool {
        matches!(self, Mech::EcdsaRaw(_) | Mech::EcdsaHashing(_))
    }

    /// The PKCS#11 name, for messages and docs.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Mech::EcdsaRaw(_) => "CKM_ECDSA",
            Mech::EcdsaHashing(HashAlg::Sha384) => "CKM_ECDSA_SHA384",
            Mech::EcdsaHashing(HashAlg::Sha512) => "CKM_ECDSA_SHA512",
            Mech::EcdsaHashing(_) => "CKM_ECDSA_SHA256",
            Mech::RsaPkcsHashing(HashAlg::Sha384) => "CKM_SHA384_RSA_PKCS",
            Mech::RsaPkcsHashing(HashAlg::Sha512) => "CKM_SHA512_RSA_PKCS",
            Mech::RsaPkcsHashing(_) => "CKM_SHA256_RSA_PKCS",
            Mech::RsaPkcsRaw(_) => "CKM_RSA_PKCS",
            Mech::PssHashing(HashAlg::Sha384) => "CKM_SHA384_RSA_PKCS_PSS",
            Mech::PssHashing(HashAlg::Sha512) => "CKM_SHA512_RSA_PKCS_PSS",
            Mech::PssHashing(_) => "CKM_SHA256_RSA_PKCS_PSS",
            Mech::PssRaw(_) => "CKM_RSA_PKCS_PSS",
            Mech::Eddsa => "CKM_EDDSA",
        }
    }
}

/// The DER `DigestInfo` prefix (RFC 8017 §9.2 note 1) that `CKM_RSA_PKCS` needs before the hash.
fn digest_info_prefix(h: HashAlg) -> &'static [u8] {
    match h {
        HashAlg::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlg::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
        _ => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefers_token_hashing_for_rsa_and_raw_ecdsa() {
        let softhsm = [
            MechanismType::ECDSA,
            MechanismType::RSA_PKCS,
            MechanismType::SHA256_RSA_PKCS,
            MechanismType::SHA256_RSA_PKCS_PSS,
            MechanismType::RSA_PKCS_PSS,
            MechanismType::EDDSA,
        ];
        let c = |a| Mech::choose(a, &softhsm, "t", false).unwrap();
        assert_eq!(c(Algorithm::ES256), Mech::EcdsaRaw(HashAlg::Sha256));
        assert_eq!(c(Algorithm::RS256), Mech::RsaPkcsHashing(HashAlg::Sha256));
        assert_eq!(c(Algorithm::RS384), Mech::RsaPkcsRaw(HashAlg::Sha384));
        assert_eq!(c(Algorithm::PS256), Mech::PssHashing(HashAlg::Sha256));
        assert_eq!(c(Algorithm::PS512), Mech::PssRaw(HashAlg::Sha512));
        assert_eq!(c(Algorithm::EdDSA), Mech::Eddsa);
        let local = |a| Mech::choose(a, &softhsm, "t", true).unwrap();
        assert_eq!(local(Algorithm::RS256), Mech::RsaPkcsRaw(HashAlg::Sha256));
        assert_eq!(local(Algorithm::PS256), Mech::PssRaw(HashAlg::Sha256));
        assert_eq!(local(Algorithm::ES256), Mech::EcdsaRaw(HashAlg::Sha256));
    }

    #[test]
    fn missing_mechanism_is_named() {
        let e = Mech::choose(Algorithm::EdDSA, &[MechanismType::ECDSA], "hsm", false)
            .unwrap_err()
            .to_string();
        assert!(e.contains("CKM_EDDSA") && e.contains("hsm"), "{e}");
        let e = Mech::choose(Algorithm::PS256, &[MechanismType::RSA_PKCS], "hsm", false)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("CKM_SHA256_RSA_PKCS_PSS, CKM_RSA_PKCS_PSS"),
            "{e}"
        );
    }

    #[test]
    fn digest_info_lengths_match_their_headers() {
        for h in [HashAlg::Sha256, HashAlg::Sha384, HashAlg::Sha512] {
            let input = Mech::RsaPkcsRaw(h).input(b"abc");
            assert_eq!(input.len(), 19 + h.len());
            assert_eq!(input[1] as usize, input.len() - 2);
            assert_eq!(input[18] as usize, h.len());
        }
    }
}
