//! The HTTP client of one destination, and turning an [`Outgoing`] into one attempt.

use std::fmt;
use std::time::Duration;

use http::{HeaderName, HeaderValue};
use reqwest::Url;

use crate::request::{Outgoing, Response};
use crate::rules::{Rules, SetupError};

const USER_AGENT: &str = concat!("ferry/", env!("CARGO_PKG_VERSION"));

/// Why an attempt got no response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TransportError {
    /// No complete response within the attempt's time limit.
    Timeout(Duration),
    /// No connection could be made (refused, unreachable, DNS, TLS handshake).
    Connect(String),
    /// The connection failed during the exchange, e.g. closed without an answer.
    Connection(String),
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TransportError::Timeout(limit) => {
                write!(f, "timeout (no response within {})", crate::human(*limit))
            }
            TransportError::Connect(why) => write!(f, "connection failed ({why})"),
            TransportError::Connection(why) => write!(f, "connection error ({why})"),
        }
    }
}

/// A request checked and converted once, cloned for each attempt.
pub(crate) struct Prepared {
    request: reqwest::Request,
    /// Host and path, without query or credentials: what logs may show.
    pub(crate) target: String,
}

impl Prepared {
    pub(crate) fn method(&self) -> &http::Method {
        self.request.method()
    }
}

/// One destination's HTTP client: a connection pool per host, HTTP/1.1 and HTTP/2 (chosen
/// by ALPN over TLS), gzip-encoded responses decoded, redirects not followed (a destination
/// that redirects is misconfigured, and following would turn a POST into a GET).
#[derive(Debug, Clone)]
pub(crate) struct HttpClient {
    inner: reqwest::Client,
}

impl HttpClient {
    pub(crate) fn new(rules: &Rules) -> Result<Self, SetupError> {
        let inner = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .connect_timeout(rules.connect_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|err| SetupError::Client(innermost(&err)))?;
        Ok(Self { inner })
    }

    /// Checks the URL, method and headers; the reason never quotes a header value.
    pub(crate) fn prepare(outgoing: &Outgoing) -> Result<Prepared, String> {
        let url = Url::parse(&outgoing.url).map_err(|err| format!("invalid URL: {err}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "invalid URL: scheme {:?} is not http or https",
                url.scheme()
            ));
        }
        let target = target(&url);
        let mut request = reqwest::Request::new(outgoing.method.clone(), url);
        for (name, value) in &outgoing.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| format!("invalid header name {name:?}"))?;
            let mut value = HeaderValue::from_str(value)
                .map_err(|_| format!("header {name} has a value that is not valid in HTTP"))?;
            value.set_sensitive(true);
            request.headers_mut().append(name, value);
        }
        let carries_body = matches!(
            outgoing.method,
            http::Method::POST | http::Method::PUT | http::Method::PATCH
        );
        if carries_body || !outgoing.body.is_empty() {
            *request.body_mut() = Some(outgoing.body.clone().into());
        }
        Ok(Prepared { request, target })
    }

    /// Sends one attempt and reads the whole response within `timeout`.
    ///
    /// Once a status has arrived it decides the attempt: if the body then fails to arrive the
    /// response is kept with an empty body (a 2xx was accepted by the server; sending it again
    /// could deliver it twice).
    pub(crate) async fn attempt(
        &self,
        prepared: &Prepared,
        timeout: Duration,
    ) -> Result<Response, TransportError> {
        let mut request = prepared
            .request
            .try_clone()
            .expect("a request with an in-memory body can be cloned");
        *request.timeout_mut() = Some(timeout);
        let response = self
            .inner
            .execute(request)
            .await
            .map_err(|err| transport_error(&err, timeout))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect();
        let body = match read_capped(response, MAX_RESPONSE_BYTES).await {
            Ok((body, complete)) => {
                if !complete {
                    tracing::warn!(
                        target = %prepared.target,
                        status,
                        kept = MAX_RESPONSE_BYTES,
                        "response body cut short"
                    );
                }
                body
            }
            Err(err) => {
                let err = transport_error(&err, timeout);
                tracing::warn!(target = %prepared.target, status, error = %err, "response body lost");
                bytes::Bytes::new()
            }
        };
        Ok(Response {
            status,
            headers,
            body,
        })
    }
}

/// The most of a response body that is kept: destinations answer with small JSON documents, and
/// one that streams without end must not exhaust memory.
pub const MAX_RESPONSE_BYTES: usize = 4 << 20;

/// Reads at most `limit` bytes of the body; `false` when the rest was left unread.
async fn read_capped(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<(bytes::Bytes, bool), reqwest::Error> {
    let mut body = bytes::BytesMut::new();
    while let Some(chunk) = response.chunk().await? {
        let room = limit - body.len();
        if chunk.len() > room {
            body.extend_from_slice(&chunk[..room]);
            return Ok((body.freeze(), false));
        }
        body.extend_from_slice(&chunk);
    }
    Ok((body.freeze(), true))
}

fn transport_error(err: &reqwest::Error, timeout: Duration) -> TransportError {
    if err.is_timeout() {
        TransportError::Timeout(timeout)
    } else if err.is_connect() {
        TransportError::Connect(innermost(err))
    } else {
        TransportError::Connection(innermost(err))
    }
}

/// The deepest cause of an error: the specific one ("connection refused"), and free of the
/// request URL that reqwest's outer message carries.
fn innermost(err: &(dyn std::error::Error + 'static)) -> String {
    let mut deepest = err;
    while let Some(source) = deepest.source() {
        deepest = source;
    }
    deepest.to_string()
}

/// Host, port when not the default, and path: no credentials, query or fragment.
fn target(url: &Url) -> String {
    let host = url.host_str().unwrap_or_default();
    match url.port() {
        Some(port) => format!("{host}:{port}{}", url.path()),
        None => format!("{host}{}", url.path()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::request::Method;

    #[test]
    fn the_log_target_leaves_out_credentials_and_query() {
        let url = Url::parse("https://user:pw@rest.iad-01.braze.com:8443/users/track?key=s3cret#x")
            .unwrap();
        assert_eq!(target(&url), "rest.iad-01.braze.com:8443/users/track");
    }

    #[test]
    fn invalid_requests_are_refused_without_quoting_values() {
        let bad_url = Outgoing::new(Method::POST, "not a url");
        assert!(
            HttpClient::prepare(&bad_url)
                .err()
                .unwrap()
                .starts_with("invalid URL")
        );

        let ftp = Outgoing::new(Method::GET, "ftp://example.com/file");
        assert!(
            HttpClient::prepare(&ftp)
                .err()
                .unwrap()
                .contains("not http or https")
        );

        let bad_value = Outgoing::new(Method::POST, "https://example.com/")
            .with_header("Authorization", "Bearer s3cret\n");
        let reason = HttpClient::prepare(&bad_value).err().unwrap();
        assert!(reason.contains("authorization"), "{reason}");
        assert!(!reason.contains("s3cret"), "{reason}");

        let bad_name =
            Outgoing::new(Method::POST, "https://example.com/").with_header("Bad Name", "x");
        assert!(HttpClient::prepare(&bad_name).is_err());
    }
}
