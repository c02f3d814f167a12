//! Authorization server metadata: OpenID Connect Discovery, then RFC 8414, with an exact issuer
//! check (FAPI 2.0 §5.3.2.1, RFC 8414 §3.3) and the checks `private_key_jwt` needs.

use pkjwt_core::Algorithm;
use serde::Deserialize;
use serde_json::{Map, Value};
use url::Url;

use crate::ClientError;
use crate::http::{Http, read_limited};

/// The metadata fields the client uses; every other field is kept in [`ServerMetadata::other`].
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[non_exhaustive]
pub struct ServerMetadata {
    /// `issuer`.
    pub issuer: String,
    /// `token_endpoint`.
    pub token_endpoint: String,
    /// `jwks_uri` (the server's own keys, for access-token validation).
    #[serde(default)]
    pub jwks_uri: Option<String>,
    /// `registration_endpoint` (RFC 7591).
    #[serde(default)]
    pub registration_endpoint: Option<String>,
    /// `token_endpoint_auth_methods_supported`; absent means `client_secret_basic` only
    /// (RFC 8414 §2).
    #[serde(default)]
    pub token_endpoint_auth_methods_supported: Option<Vec<String>>,
    /// `token_endpoint_auth_signing_alg_values_supported`.
    #[serde(default)]
    pub token_endpoint_auth_signing_alg_values_supported: Option<Vec<String>>,
    /// `grant_types_supported`; absent means `authorization_code` and `implicit` (RFC 8414 §2).
    #[serde(default)]
    pub grant_types_supported: Option<Vec<String>>,
    /// Every other member.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ServerMetadata {
    /// Metadata for a server known without discovery (only `issuer` and `token_endpoint`).
    pub fn manual(issuer: impl Into<String>, token_endpoint: impl Into<String>) -> Self {
        ServerMetadata {
            issuer: issuer.into(),
            token_endpoint: token_endpoint.into(),
            jwks_uri: None,
            registration_endpoint: None,
            token_endpoint_auth_methods_supported: Some(vec!["private_key_jwt".into()]),
            token_endpoint_auth_signing_alg_values_supported: None,
            grant_types_supported: None,
            other: Map::new(),
        }
    }

    /// Checks that the server takes `private_key_jwt` and `alg`; the error names what it takes.
    pub fn check_private_key_jwt(&self, alg: Algorithm) -> Result<(), ClientError> {
        let methods = self
            .token_endpoint_auth_methods_supported
            .clone()
            .unwrap_or_else(|| vec!["client_secret_basic (the RFC 8414 default)".into()]);
        if !methods.iter().any(|m| m == "private_key_jwt") {
            return Err(ClientError::Unsupported {
                what: "private_key_jwt client authentication".into(),
                supported: methods.join(", "),
            });
        }
        // Absent: the server did not say; the request will tell.
        if let Some(algs) = &self.token_endpoint_auth_signing_alg_values_supported
            && !algs.iter().any(|a| a == alg.name())
        {
            return Err(ClientError::Unsupported {
                what: format!("{alg} client assertions (the key's algorithm)"),
                supported: algs.join(", "),
            });
        }
        Ok(())
    }

    /// Checks that the server lists `grant` (when it lists grants at all).
    pub fn check_grant(&self, grant: &str) -> Result<(), ClientError> {
        if let Some(g) = &self.grant_types_supported
            && !g.iter().any(|x| x == grant)
        {
            return Err(ClientError::Unsupported {
                what: format!("the {grant} grant"),
                supported: g.join(", "),
            });
        }
        Ok(())
    }
}

/// The two discovery locations for `issuer`: OpenID Connect (issuer + path suffix) and RFC 8414
/// (well-known segment inserted between host and path).
pub fn discovery_urls(issuer: &str) -> Result<[Url; 2], ClientError> {
    let base = Url::parse(issuer)
        .map_err(|e| ClientError::Config(format!("issuer {issuer:?} is not a URL: {e}")))?;
    if base.query().is_some() || base.fragment().is_some() {
        return Err(ClientError::Config(format!(
            "issuer {issuer:?} must not have a query or fragment (RFC 8414 §2)"
        )));
    }
    let path = base.path().trim_end_matches('/').to_string();
    let mut oidc = base.clone();
    oidc.set_path(&format!("{path}/.well-known/openid-configuration"));
    let mut oauth = base;
    oauth.set_path(&format!("/.well-known/oauth-authorization-server{path}"));
    Ok([oidc, oauth])
}

/// Fetches and checks the metadata of `issuer`.
pub(crate) async fn discover(http: &Http, issuer: &str) -> Result<ServerMetadata, ClientError> {
    let mut reasons = Vec::new();
    for url in discovery_urls(issuer)? {
        http.check_url(url.as_str())?;
        let resp = match http
            .client
            .get(url.clone())
            .header("accept", "application/json")
            .send()
            .await
        {
            Ok(r) => r,
            Err(e) => {
                reasons.push(format!("{url}: {}", http.describe(&e)));
                continue;
            }
        };
        let status = resp.status().as_u16();
        if status != 200 {
            reasons.push(format!("{url}: HTTP {status}"));
            continue;
        }
        let body = read_limited(resp, http, url.as_str()).await?;
        let meta: ServerMetadata =
            serde_json::from_slice(&body).map_err(|e| ClientError::InvalidResponse {
                url: url.to_string(),
                status,
                reason: format!(
                    "expected a JSON metadata document with issuer and token_endpoint: {e}"
                ),
            })?;
        if meta.issuer != issuer {
            return Err(ClientError::IssuerMismatch {
                url: url.to_string(),
                expected: issuer.into(),
                found: meta.issuer,
            });
        }
        http.check_url(&meta.token_endpoint)?;
        return Ok(meta);
    }
    Err(ClientError::Discovery {
        issuer: issuer.into(),
        reason: reasons.join("; "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discovery_locations() {
        let [o, a] = discovery_urls("https://as.example.com").unwrap();
        assert_eq!(
            o.as_str(),
            "https://as.example.com/.well-known/openid-configuration"
        );
        assert_eq!(
            a.as_str(),
            "https://as.example.com/.well-known/oauth-authorization-server"
        );
        let [o, a] = discovery_urls("https://as.example.com/realms/x").unwrap();
        assert_eq!(
            o.as_str(),
            "https://as.example.com/realms/x/.well-known/openid-configuration"
        );
        assert_eq!(
            a.as_str(),
            "https://as.example.com/.well-known/oauth-authorization-server/realms/x"
        );
        assert!(discovery_urls("https://as.example.com/?a=b").is_err());
    }

    #[test]
    fn metadata_checks_name_what_is_supported() {
        let mut m = ServerMetadata::manual("https://as", "https://as/token");
        m.token_endpoint_auth_signing_alg_values_supported = Some(vec!["RS256".into()]);
        let e = m.check_private_key_jwt(Algorithm::ES256).unwrap_err();
        assert_eq!(
            e.to_string(),
            "the authorization server does not support ES256 client assertions (the key's \
             algorithm); it supports: RS256"
        );
        m.token_endpoint_auth_methods_supported = None;
        let e = m
            .check_private_key_jwt(Algorithm::RS256)
            .unwrap_err()
            .to_string();
        assert!(e.contains("client_secret_basic"), "{e}");
        m.grant_types_supported = Some(vec!["authorization_code".into()]);
        assert!(m.check_grant("client_credentials").is_err());
    }
}
