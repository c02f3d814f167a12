//! The HTTP plumbing: one `reqwest` client with time limits, no redirects, HTTPS except to
//! loopback, and bounded response bodies.

use std::time::Duration;

use url::Url;
use zeroize::Zeroizing;

use crate::ClientError;

/// HTTP settings of the token client.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct HttpOptions {
    /// Limit for one request (connect, send, headers and body). Default 10 s.
    pub timeout: Duration,
    /// Limit for connecting. Default 5 s.
    pub connect_timeout: Duration,
    /// Largest response body. Default 1 MiB.
    pub max_body: usize,
    /// Allow `http://` to loopback addresses (tests, local servers). Default true; `http://` to
    /// anything else is always refused.
    pub allow_loopback_http: bool,
}

impl Default for HttpOptions {
    fn default() -> Self {
        HttpOptions {
            timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(5),
            max_body: 1024 * 1024,
            allow_loopback_http: true,
        }
    }
}

#[derive(Clone, Debug)]
pub(crate) struct Http {
    pub(crate) client: reqwest::Client,
    pub(crate) timeout: Duration,
    pub(crate) max_body: usize,
    allow_loopback_http: bool,
}

impl Http {
    pub(crate) fn new(o: &HttpOptions) -> Result<Self, ClientError> {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(o.timeout)
            .connect_timeout(o.connect_timeout)
            .user_agent(concat!("pkjwt/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ClientError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Http {
            client,
            timeout: o.timeout,
            max_body: o.max_body,
            allow_loopback_http: o.allow_loopback_http,
        })
    }

    /// Refuses anything but `https://`, or `http://` to loopback when allowed.
    pub(crate) fn check_url(&self, url: &str) -> Result<Url, ClientError> {
        let u = Url::parse(url)
            .map_err(|e| ClientError::Config(format!("{url:?} is not a URL: {e}")))?;
        match u.scheme() {
            "https" => Ok(u),
            "http" if self.allow_loopback_http && is_loopback(&u) => Ok(u),
            _ => Err(ClientError::Config(format!(
                "{url} is not an https:// URL (plain http is only allowed to loopback addresses)"
            ))),
        }
    }

    /// A transport error as text (the reqwest error and its causes).
    pub(crate) fn describe(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!("no answer within {:?}", self.timeout);
        }
        pkjwt_core::display_chain(e)
    }

    /// A transport error as a [`ClientError`].
    pub(crate) fn error(&self, url: &str, e: &reqwest::Error) -> ClientError {
        if e.is_timeout() {
            ClientError::Timeout {
                url: url.into(),
                timeout: self.timeout,
            }
        } else {
            ClientError::Network {
                url: url.into(),
                reason: self.describe(e),
            }
        }
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    }
}

/// Reads a body of at most `max` bytes (the client's timeout bounds the time).
pub(crate) async fn read_limited(
    mut resp: reqwest::Response,
    http: &Http,
    url: &str,
) -> Result<Zeroizing<Vec<u8>>, ClientError> {
    let max = http.max_body;
    let status = resp.status().as_u16();
    // The body may hold tokens: it is wiped when dropped, and sized once from Content-Length
    // (within the limit) so that growing it leaves no unwiped copies behind in the usual case.
    let expected = resp.content_length().unwrap_or(0).min(max as u64) as usize;
    let mut body = Zeroizing::new(Vec::with_capacity(expected));
    loop {
        match resp.chunk().await {
            Ok(Some(c)) => {
                if body.len() + c.len() > max {
                    return Err(ClientError::InvalidResponse {
                        url: url.into(),
                        status,
                        reason: format!("response body larger than {max} bytes"),
                    });
                }
                body.extend_from_slice(&c);
            }
            Ok(None) => return Ok(body),
            Err(e) if e.is_timeout() => {
                return Err(ClientError::Timeout {
                    url: url.into(),
                    timeout: http.timeout,
                });
            }
            Err(e) => {
                return Err(ClientError::Network {
                    url: url.into(),
                    reason: format!("reading the response body: {e}"),
                });
            }
        }
    }
}
