//! The one HTTPS client of this crate, and its adapter to `azure_core`'s [`HttpClient`] so that the
//! `azure_identity` credentials send their token requests through it too: the same trust roots,
//! timeouts and redirect policy apply to Microsoft Entra ID, the managed-identity endpoint and
//! the vault, and `azure_core` is built without its own reqwest/TLS stack.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use azure_core::error::{Error as AzError, ErrorKind};
use azure_core::http::headers::{HeaderName, HeaderValue, Headers};
use azure_core::http::request::{Body, Request};
use azure_core::http::{AsyncRawResponse, HttpClient, Method, Transport};

use crate::{AzureKvError, AzureKvOptions};

/// Builds the HTTPS client from `options`: no redirects (a redirect could carry a bearer token
/// elsewhere), HTTPS only, the platform's roots plus `options.root_certificates_pem`.
pub(crate) fn http_client(options: &AzureKvOptions) -> Result<reqwest::Client, AzureKvError> {
    let mut builder = reqwest::Client::builder()
        .https_only(true)
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(options.connect_timeout)
        .timeout(options.attempt_timeout)
        .user_agent(concat!("pkjwt-azure-kv/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &options.root_certificates_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            AzureKvError::Client(format!("root_certificates_pem is not a PEM bundle: {e}"))
        })?;
        if certs.is_empty() {
            return Err(AzureKvError::Client(
                "root_certificates_pem holds no certificate".into(),
            ));
        }
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| AzureKvError::Client(e.to_string()))
}

/// `azure_core` transport over [`http_client`]'s client.
#[derive(Debug)]
pub(crate) struct ReqwestTransport(pub reqwest::Client);

impl ReqwestTransport {
    pub(crate) fn transport(client: reqwest::Client) -> Transport {
        Transport::new(Arc::new(ReqwestTransport(client)))
    }
}

#[async_trait]
impl HttpClient for ReqwestTransport {
    async fn execute_request(&self, request: &Request) -> azure_core::Result<AsyncRawResponse> {
        let method = match request.method() {
            Method::Get => reqwest::Method::GET,
            Method::Post => reqwest::Method::POST,
            Method::Put => reqwest::Method::PUT,
            Method::Delete => reqwest::Method::DELETE,
            Method::Head => reqwest::Method::HEAD,
            Method::Patch => reqwest::Method::PATCH,
            other => {
                return Err(AzError::with_message(
                    ErrorKind::Other,
                    format!("HTTP method {other:?} is not supported by pkjwt's transport"),
                ));
            }
        };
        let mut req = self.0.request(method, request.url().clone());
        for (name, value) in request.headers().iter() {
            req = req.header(name.as_str(), value.as_str());
        }
        match request.body() {
            Body::Bytes(bytes) => req = req.body(bytes.to_vec()),
            // Credentials send form bodies; a streamed body would need a seekable reader here.
            #[allow(unreachable_patterns)]
            _ => {
                return Err(AzError::with_message(
                    ErrorKind::Other,
                    "streamed request bodies are not supported by pkjwt's transport",
                ));
            }
        }
        let resp = req.send().await.map_err(|e| {
            AzError::with_message(ErrorKind::Io, format!("HTTP request failed: {e}"))
        })?;
        let status = resp.status().as_u16();
        let headers: HashMap<HeaderName, HeaderValue> = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| {
                let v = v.to_str().ok()?;
                Some((
                    HeaderName::from(k.as_str().to_owned()),
                    HeaderValue::from(v.to_owned()),
                ))
            })
            .collect();
        let body = resp.bytes().await.map_err(|e| {
            AzError::with_message(ErrorKind::Io, format!("reading the response failed: {e}"))
        })?;
        let stream = futures::stream::once(async move { Ok(body) });
        Ok(AsyncRawResponse::new(
            status.into(),
            Headers::from(headers),
            Box::pin(stream),
        ))
    }
}
