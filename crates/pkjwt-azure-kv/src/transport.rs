//! The HTTPS client of this crate (and its twin for credentials), and the adapter to `azure_core`'s [`HttpClient`] so that the
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

/// The client the credentials use: as [`http_client`]'s, except that plain HTTP is allowed —
/// to the managed-identity endpoints only, which are plain HTTP by design (the instance metadata
/// address, or a loopback endpoint of App Service, Azure Arc or Service Fabric); the adapter
/// refuses plain HTTP to any other host.
pub(crate) fn credential_client(options: &AzureKvOptions) -> Result<reqwest::Client, AzureKvError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(options.connect_timeout)
        .timeout(options.attempt_timeout)
        .user_agent(concat!("pkjwt-azure-kv/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &options.root_certificates_pem {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| {
            AzureKvError::Client(format!("root_certificates_pem is not a PEM bundle: {e}"))
        })?;
        builder = builder.tls_certs_merge(certs);
    }
    builder
        .build()
        .map_err(|e| AzureKvError::Client(e.to_string()))
}

/// Hosts a credential may reach over plain HTTP (managed-identity endpoints).
fn plain_http_allowed(url: &reqwest::Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => {
            ip.is_loopback() || ip == std::net::Ipv4Addr::new(169, 254, 169, 254)
        }
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// `azure_core` transport over [`credential_client`]'s client.
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
        let url = request.url().clone();
        if url.scheme() != "https" && !(url.scheme() == "http" && plain_http_allowed(&url)) {
            return Err(AzError::with_message(
                ErrorKind::Other,
                format!(
                    "refusing {}://{}: credentials use https://, or plain http:// to a \
                     managed-identity endpoint (169.254.169.254 or loopback) only",
                    url.scheme(),
                    url.host_str().unwrap_or("")
                ),
            ));
        }
        let mut req = self.0.request(method, url);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_http_only_to_managed_identity_endpoints() {
        for (url, ok) in [
            (
                "http://169.254.169.254/metadata/identity/oauth2/token",
                true,
            ),
            ("http://127.0.0.1:41741/msi/token", true),
            ("http://localhost:8081/token", true),
            ("http://[::1]:80/", true),
            (
                "http://login.microsoftonline.com/t/oauth2/v2.0/token",
                false,
            ),
            ("http://169.254.169.253/", false),
            ("http://10.0.0.1/", false),
        ] {
            let url = reqwest::Url::parse(url).expect("test URL");
            assert_eq!(plain_http_allowed(&url), ok, "{url}");
        }
    }

    #[tokio::test]
    async fn the_adapter_refuses_plain_http_elsewhere() {
        let client = credential_client(&AzureKvOptions::default()).expect("client");
        let adapter = ReqwestTransport(client);
        let req = Request::new(
            "http://login.example.com/token".parse().expect("URL"),
            Method::Post,
        );
        let e = adapter.execute_request(&req).await.expect_err("refused");
        assert!(
            e.to_string().contains("refusing http://login.example.com"),
            "{e}"
        );
    }

    /// A managed-identity endpoint is plain HTTP on loopback (App Service, Arc): the credentials'
    /// client must reach it (the vault client's `https_only` refused it).
    #[tokio::test]
    async fn the_adapter_reaches_a_loopback_http_identity_endpoint() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let port = listener.local_addr().expect("addr").port();
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.expect("accept");
            let mut buf = [0u8; 2048];
            let _ = s.read(&mut buf).await;
            let body = r#"{"access_token":"t","expires_on":"1"}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                body.len()
            );
            let _ = s.write_all(resp.as_bytes()).await;
        });
        let adapter =
            ReqwestTransport(credential_client(&AzureKvOptions::default()).expect("client"));
        let req = Request::new(
            format!("http://127.0.0.1:{port}/msi/token")
                .parse()
                .expect("URL"),
            Method::Get,
        );
        let resp = adapter.execute_request(&req).await.expect("reached");
        assert_eq!(u16::from(resp.status()), 200);
    }
}
