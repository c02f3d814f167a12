//! Keeping a registration's keys in step with a key rotation: the RFC 7592 §2.2 update that
//! replaces an inline `jwks` with the keys published now, and the rule every such update (and
//! every new key) obeys: each key is for the registered `token_endpoint_auth_signing_alg`, since
//! the server refuses assertions signed with any other algorithm (RFC 7591 §2).
//!
//! A registration with a `jwks_uri` is never updated: the server reads the keys from that URL,
//! so publishing them there is the whole rotation.

use pkjwt_core::{Algorithm, Jwk, JwkSet};
use serde_json::{Map, Value};

use crate::{ClientError, Registration, RegistrationClient};

/// The `token_endpoint_auth_signing_alg` a registration's metadata names, if it names one that
/// pkjwt knows.
pub fn registered_alg(metadata: &Map<String, Value>) -> Option<Algorithm> {
    metadata
        .get("token_endpoint_auth_signing_alg")
        .and_then(Value::as_str)
        .and_then(|s| s.parse::<Algorithm>().ok())
}

/// Checks that every key in `keys` can be used with `alg`: its JWK names `alg`, or names no
/// algorithm (an RSA JWK published unpinned) and its key can sign `alg`. Anything else is
/// refused with [`ClientError::KeyAlgorithm`].
pub fn check_key_algs(keys: &[Jwk], alg: Algorithm) -> Result<(), ClientError> {
    for k in keys {
        let refused = |key_alg: String| ClientError::KeyAlgorithm {
            key: format!("key {}", k.kid.as_deref().unwrap_or("?")),
            key_alg,
            registered: alg,
        };
        match k.alg.as_deref() {
            Some(a) if a == alg.name() => {}
            Some(a) => return Err(refused(a.to_owned())),
            None => {
                let public = k
                    .to_public_key()
                    .map_err(|e| ClientError::Config(format!("key {:?}: {e}", k.kid)))?;
                if !public.supports(alg) {
                    return Err(refused(format!(
                        "{} (its JWK names no alg)",
                        public.describe()
                    )));
                }
            }
        }
    }
    Ok(())
}

/// Checks a new key's JWK against the registration's `token_endpoint_auth_signing_alg` before
/// it is published ([`check_key_algs`]); a registration that names no algorithm passes.
pub fn check_new_key(reg: &Registration, jwk: &Jwk) -> Result<(), ClientError> {
    match registered_alg(&reg.metadata()) {
        Some(registered) => {
            check_key_algs(std::slice::from_ref(jwk), registered).map_err(|e| match e {
                ClientError::KeyAlgorithm {
                    key_alg,
                    registered,
                    ..
                } => ClientError::KeyAlgorithm {
                    key: "the new key".to_owned(),
                    key_alg,
                    registered,
                },
                other => other,
            })
        }
        None => Ok(()),
    }
}

/// Checks, before a new key is made or published, that a key for `alg` is one the registration
/// accepts. `None` (the algorithm is not known yet), or a registration that names no algorithm,
/// passes.
pub fn check_new_key_alg(reg: &Registration, alg: Option<Algorithm>) -> Result<(), ClientError> {
    match (registered_alg(&reg.metadata()), alg) {
        (Some(registered), Some(alg)) if registered != alg => Err(ClientError::KeyAlgorithm {
            key: "the new key".to_owned(),
            key_alg: alg.name().to_owned(),
            registered,
        }),
        _ => Ok(()),
    }
}

/// What [`RegistrationClient::update_keys`] did.
#[derive(Debug)]
#[non_exhaustive]
pub enum KeysUpdate {
    /// The server took the keys; this is the registration it answered with (it may carry a new
    /// registration access token: save it in place of the old one).
    Updated(Registration),
    /// The registration names a `jwks_uri` and no inline `jwks`: the server reads the keys from
    /// there, so nothing was sent.
    JwksUri,
}

impl RegistrationClient {
    /// RFC 7592 §2.2 update of a registration with an inline `jwks`: its keys become exactly
    /// `keys`, the rest of its metadata unchanged. Every key must be for the registered
    /// `token_endpoint_auth_signing_alg` ([`check_key_algs`]); a refusal sends nothing. A
    /// `jwks_uri` registration is left alone ([`KeysUpdate::JwksUri`]).
    pub async fn update_keys(
        &self,
        reg: &Registration,
        keys: Vec<Jwk>,
    ) -> Result<KeysUpdate, ClientError> {
        let mut metadata = reg.metadata();
        if metadata.contains_key("jwks_uri") && !metadata.contains_key("jwks") {
            return Ok(KeysUpdate::JwksUri);
        }
        // RFC 7591 §2: jwks and jwks_uri MUST NOT both be present.
        metadata.remove("jwks_uri");
        if let Some(alg) = registered_alg(&metadata) {
            check_key_algs(&keys, alg)?;
        }
        let set = JwkSet::new(keys).map_err(|e| ClientError::Config(e.to_string()))?;
        let jwks = serde_json::to_value(set)
            .map_err(|e| ClientError::Config(format!("the key set does not serialize: {e}")))?;
        metadata.insert("jwks".into(), jwks);
        Ok(KeysUpdate::Updated(self.update(reg, &metadata).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HttpOptions;
    use serde_json::json;

    fn key(kid: &str, alg: Option<&str>) -> Jwk {
        let mut v = json!({"kty": "OKP", "crv": "Ed25519", "kid": kid,
                           "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"});
        if let Some(a) = alg {
            v["alg"] = a.into();
        }
        Jwk::from_json(&v.to_string()).unwrap()
    }

    fn registration(extra: Value) -> Registration {
        let mut m = json!({
            "client_id": "c1",
            "registration_client_uri": "http://127.0.0.1:9/register/c1",
            "registration_access_token": "rat",
        });
        for (k, v) in extra.as_object().unwrap() {
            m[k] = v.clone();
        }
        Registration::from_json(m.as_object().unwrap().clone()).unwrap()
    }

    #[test]
    fn the_registered_algorithm_is_read_when_known() {
        let m = |v: Value| v.as_object().unwrap().clone();
        assert_eq!(
            registered_alg(&m(json!({"token_endpoint_auth_signing_alg": "PS256"}))),
            Some(Algorithm::PS256)
        );
        assert_eq!(
            registered_alg(&m(json!({"token_endpoint_auth_signing_alg": "HS256"}))),
            None
        );
        assert_eq!(registered_alg(&m(json!({}))), None);
    }

    #[test]
    fn every_key_must_be_for_the_registered_algorithm() {
        let good = [key("a", Some("EdDSA")), key("b", Some("EdDSA"))];
        assert!(check_key_algs(&good, Algorithm::EdDSA).is_ok());
        // A JWK without alg passes for an algorithm its key can sign, and names its key otherwise
        // (issue 12, item 3).
        let bare = [key("a", Some("EdDSA")), key("b", None)];
        assert!(check_key_algs(&bare, Algorithm::EdDSA).is_ok());
        let e = check_key_algs(&bare[1..], Algorithm::ES256)
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("key b is for ")
                && e.contains("Ed25519")
                && e.contains("its JWK names no alg")
                && e.ends_with(
                    "but the client registers token_endpoint_auth_signing_alg ES256: the server \
                     would refuse its assertions"
                ),
            "{e}"
        );
        let e = check_key_algs(&good, Algorithm::ES256).unwrap_err();
        assert!(
            matches!(&e, ClientError::KeyAlgorithm { key, key_alg, registered }
                if key == "key a" && key_alg == "EdDSA" && *registered == Algorithm::ES256),
            "{e:?}"
        );
    }

    #[test]
    fn a_new_key_must_fit_the_registration() {
        let reg = registration(json!({"token_endpoint_auth_signing_alg": "ES256"}));
        assert!(check_new_key_alg(&reg, Some(Algorithm::ES256)).is_ok());
        assert!(check_new_key_alg(&reg, None).is_ok());
        let e = check_new_key_alg(&reg, Some(Algorithm::PS256))
            .unwrap_err()
            .to_string();
        assert!(
            e.starts_with("the new key is for PS256, but the client registers"),
            "{e}"
        );
        let open = registration(json!({}));
        assert!(check_new_key_alg(&open, Some(Algorithm::PS256)).is_ok());
    }

    #[tokio::test]
    async fn nothing_is_sent_for_a_jwks_uri_or_a_refused_key() {
        // The management URI is a closed port: a request would fail with Network, not pass.
        let client = RegistrationClient::new(&HttpOptions::default()).unwrap();
        let by_uri = registration(json!({"jwks_uri": "https://client.example/jwks"}));
        let r = client
            .update_keys(&by_uri, vec![key("a", Some("EdDSA"))])
            .await
            .unwrap();
        assert!(matches!(r, KeysUpdate::JwksUri), "{r:?}");

        let inline = registration(json!({
            "token_endpoint_auth_signing_alg": "ES256",
            "jwks": {"keys": []},
        }));
        let e = client
            .update_keys(&inline, vec![key("a", Some("EdDSA"))])
            .await
            .unwrap_err();
        assert!(matches!(e, ClientError::KeyAlgorithm { .. }), "{e:?}");
    }
}
