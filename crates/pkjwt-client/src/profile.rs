//! Server profiles: what an authorization server expects of a client assertion, as data.
//!
//! Servers disagree on `aud` (issuer or token endpoint), `typ` (`client-authentication+jwt` from
//! rfc7523bis or plain `JWT`), lifetime and algorithms (standards.md, "Audience", "Explicit
//! typing"). A [`Profile`] names those choices; pick one by name and override any field.

use std::fmt;
use std::str::FromStr;

use pkjwt_core::assertion::TYP_CLIENT_AUTHENTICATION;
use pkjwt_core::{Algorithm, Family, PublicKey, Signer};

use crate::ClientError;

/// Which value goes into the assertion's `aud`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AudienceMode {
    /// The issuer identifier as a string (FAPI 2.0, OIDC Core errata 2, rfc7523bis).
    Issuer,
    /// The token endpoint URL (Entra ID, Okta, servers before rfc7523bis).
    TokenEndpoint,
}

impl FromStr for AudienceMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "issuer" => Ok(AudienceMode::Issuer),
            "token-endpoint" | "token_endpoint" => Ok(AudienceMode::TokenEndpoint),
            _ => Err(format!(
                "{s:?} is not an audience mode; expected issuer or token-endpoint"
            )),
        }
    }
}

/// What one kind of server expects. Start from a named profile ([`Profile::named`]) and change
/// fields as needed.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Profile {
    /// The profile's name, for messages.
    pub name: String,
    /// `aud` of the assertion.
    pub audience: AudienceMode,
    /// Header `typ`; `None` omits it.
    pub typ: Option<String>,
    /// Assertion lifetime in seconds.
    pub lifetime_secs: u64,
    /// Algorithms the server accepts from clients under this profile; `None` = any the key makes.
    /// Checked before any request is sent.
    pub algorithms: Option<Vec<Algorithm>>,
    /// Smallest RSA modulus in bits (FAPI 2.0: 2048).
    pub min_rsa_bits: usize,
    /// Smallest EC field size in bits (FAPI 2.0: 224).
    pub min_ec_bits: usize,
    /// The assertion must carry `x5t#S256` (Entra ID with certificate credentials).
    pub require_x5t_s256: bool,
    /// The assertion must also carry the SHA-1 `x5t` (servers that still identify certificates
    /// by their SHA-1 thumbprint). Off in every named profile; set it field by field
    /// (`pkjwt token --x5t-sha1`).
    pub require_x5t_sha1: bool,
    /// Send `client_id` in the token request form too (optional per RFC 7521; some servers want
    /// it).
    pub send_client_id: bool,
}

/// The profile names [`Profile::named`] knows.
pub const PROFILE_NAMES: [&str; 6] = ["standard", "fapi2", "keycloak", "entra", "okta", "legacy"];

impl Default for Profile {
    fn default() -> Self {
        Profile::standard()
    }
}

impl Profile {
    /// The default: `aud` = issuer string, `typ: client-authentication+jwt`, 60 s, any
    /// algorithm the key makes.
    pub fn standard() -> Self {
        Profile {
            name: "standard".into(),
            audience: AudienceMode::Issuer,
            typ: Some(TYP_CLIENT_AUTHENTICATION.into()),
            lifetime_secs: 60,
            algorithms: None,
            min_rsa_bits: 2048,
            min_ec_bits: 224,
            require_x5t_s256: false,
            require_x5t_sha1: false,
            send_client_id: true,
        }
    }

    /// A profile by name: one of [`PROFILE_NAMES`].
    pub fn named(name: &str) -> Result<Self, ClientError> {
        let standard = Profile::standard();
        let p = match name {
            "standard" => standard,
            // FAPI 2.0 Security Profile §5.4: PS256, ES256, EdDSA (Ed25519); RSA ≥ 2048, EC ≥ 224.
            "fapi2" => Profile {
                name: "fapi2".into(),
                algorithms: Some(vec![Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA]),
                ..standard
            },
            // Keycloak ≥ 26.2 takes the issuer (or one endpoint URL) as a single value; it limits
            // assertions to 60 s by default and predates the new typ.
            "keycloak" => Profile {
                name: "keycloak".into(),
                typ: Some("JWT".into()),
                ..standard
            },
            // Microsoft Entra ID: aud = v2.0 token endpoint, certificate thumbprint header.
            "entra" => Profile {
                name: "entra".into(),
                audience: AudienceMode::TokenEndpoint,
                typ: Some("JWT".into()),
                require_x5t_s256: true,
                ..standard
            },
            // Okta: aud = the full token endpoint URL.
            "okta" => Profile {
                name: "okta".into(),
                audience: AudienceMode::TokenEndpoint,
                typ: Some("JWT".into()),
                ..standard
            },
            "legacy" => Profile {
                name: "legacy".into(),
                audience: AudienceMode::TokenEndpoint,
                typ: Some("JWT".into()),
                ..standard
            },
            _ => {
                return Err(ClientError::Config(format!(
                    "unknown profile {name:?}; expected one of {}",
                    PROFILE_NAMES.join(", ")
                )));
            }
        };
        Ok(p)
    }

    /// Refuses a signer this profile does not allow, before anything is sent.
    pub fn check_signer(&self, signer: &dyn Signer) -> Result<(), ClientError> {
        let alg = signer.algorithm();
        if let Some(allowed) = &self.algorithms
            && !allowed.contains(&alg)
        {
            return Err(ClientError::Config(format!(
                "profile {} does not allow {alg}; it allows {}",
                self.name,
                names(allowed)
            )));
        }
        match (alg.family(), signer.public_key()) {
            (Family::RsaPss | Family::RsaPkcs1, key) => {
                let bits = rsa_bits(key);
                if bits < self.min_rsa_bits {
                    return Err(ClientError::Config(format!(
                        "profile {} needs RSA keys of at least {} bits; this key has {bits}",
                        self.name, self.min_rsa_bits
                    )));
                }
            }
            (Family::Ecdsa(curve), _) => {
                let bits = curve.field_len() * 8;
                if bits < self.min_ec_bits {
                    return Err(ClientError::Config(format!(
                        "profile {} needs EC keys of at least {} bits; this key has {bits}",
                        self.name, self.min_ec_bits
                    )));
                }
            }
            _ => {}
        }
        Ok(())
    }
}

fn rsa_bits(key: &PublicKey) -> usize {
    match key {
        PublicKey::Rsa { n, .. } => {
            let n = n.as_slice();
            let lead = n.iter().take_while(|b| **b == 0).count();
            match n.get(lead) {
                Some(first) => (n.len() - lead) * 8 - first.leading_zeros() as usize,
                None => 0,
            }
        }
        _ => 0,
    }
}

pub(crate) fn names(algs: &[Algorithm]) -> String {
    algs.iter().map(|a| a.name()).collect::<Vec<_>>().join(", ")
}

impl fmt::Display for Profile {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

impl FromStr for Profile {
    type Err = ClientError;
    fn from_str(s: &str) -> Result<Self, ClientError> {
        Profile::named(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_named_profile_resolves_and_unknown_is_refused() {
        for n in PROFILE_NAMES {
            assert_eq!(Profile::named(n).unwrap().name, n);
        }
        let e = Profile::named("fapi").unwrap_err().to_string();
        assert!(e.contains("fapi2, keycloak"), "{e}");
    }

    #[test]
    fn fapi2_allows_only_three_algorithms() {
        let p = Profile::named("fapi2").unwrap();
        assert_eq!(
            p.algorithms,
            Some(vec![Algorithm::PS256, Algorithm::ES256, Algorithm::EdDSA])
        );
        assert_eq!(
            Profile::named("entra").unwrap().audience,
            AudienceMode::TokenEndpoint
        );
        assert_eq!(
            Profile::named("standard").unwrap().typ.as_deref(),
            Some(TYP_CLIENT_AUTHENTICATION)
        );
    }
}
