//! Who the console answers. Its pages hold no data and are served to anyone who can reach the
//! listener (while `server.console` is on); its API answers as `/admin/*` does, with two more
//! rules for browsers:
//!
//! - a loopback client without the admin token is answered only when it asked for a loopback
//!   host (`localhost`, `127.0.0.1`, `[::1]`), so that a page of another site that makes its
//!   name resolve to 127.0.0.1 (DNS rebinding) is not;
//! - a request that changes something (replay, purge, and every `POST`) must be JSON, which a
//!   page of another origin cannot send without asking first, and when the browser names its
//!   origin it must be this host.
//!
//! The admin token travels only in the `Authorization` header: never in a URL or a cookie.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::app::App;
use crate::http::has_admin_token;

/// The Content-Security-Policy of every console response: the page's own script and style,
/// nothing inline, no frames, no other origin.
const POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' \
                      data:; connect-src 'self'; base-uri 'none'; form-action 'none'; \
                      frame-ancestors 'none'";

/// Every console route: 404 while `server.console` is off; the security headers on every answer.
pub(crate) async fn enabled(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    if !app.setup.load().listener.console {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({ "error": "the console is off (`server.console: false`)" })),
        )
            .into_response();
    }
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// The console's API: the admin token, or a loopback client that asked for a loopback host;
/// a `POST` must be JSON from this origin.
pub(crate) async fn api(State(app): State<Arc<App>>, request: Request, next: Next) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(peer)| *peer);
    let headers = request.headers();
    let admitted = has_admin_token(&app, headers)
        || peer
            .is_some_and(|peer| peer.ip().to_canonical().is_loopback() && loopback_host(headers));
    if !admitted {
        return refuse(
            StatusCode::FORBIDDEN,
            "the console answers loopback clients, or clients that send the admin token as \
             `Authorization: Bearer TOKEN`",
        );
    }
    if request.method() != Method::GET {
        let json = headers
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.split(';')
                    .next()
                    .is_some_and(|t| t.trim() == "application/json")
            });
        if !json {
            return refuse(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "send the request as `Content-Type: application/json`",
            );
        }
        if !same_origin(headers) {
            return refuse(
                StatusCode::FORBIDDEN,
                "the request comes from a page of another origin",
            );
        }
    }
    next.run(request).await
}

fn refuse(status: StatusCode, message: &str) -> Response {
    (status, Json(json!({ "error": message }))).into_response()
}

/// The host the client asked for (`Host`, without its port).
fn host(headers: &HeaderMap) -> Option<&str> {
    let host = headers.get(header::HOST)?.to_str().ok()?;
    Some(match host.strip_prefix('[') {
        Some(rest) => rest.split(']').next().unwrap_or(rest),
        None => host.rsplit_once(':').map_or(host, |(name, _)| name),
    })
}

fn loopback_host(headers: &HeaderMap) -> bool {
    host(headers).is_some_and(|host| {
        host.eq_ignore_ascii_case("localhost")
            || host
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.to_canonical().is_loopback())
    })
}

/// No `Origin` (not a browser, or a same-origin `GET`), or one whose host and port are the
/// `Host` asked for.
fn same_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN) else {
        return true;
    };
    let (Ok(origin), Some(Ok(host))) = (
        origin.to_str(),
        headers.get(header::HOST).map(HeaderValue::to_str),
    ) else {
        return false;
    };
    origin
        .split_once("://")
        .is_some_and(|(_, authority)| authority.eq_ignore_ascii_case(host))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.insert(*name, HeaderValue::from_static(value));
        }
        map
    }

    #[test]
    fn only_loopback_host_names_pass_without_a_token() {
        for host in [
            "localhost:8080",
            "127.0.0.1:3000",
            "[::1]:9",
            "LOCALHOST",
            "127.0.0.1",
        ] {
            assert!(loopback_host(&headers(&[("host", host)])), "{host}");
        }
        for host in [
            "evil.example:8080",
            "10.0.0.1:80",
            "localhost.evil.example",
            "",
        ] {
            assert!(!loopback_host(&headers(&[("host", host)])), "{host}");
        }
        assert!(!loopback_host(&headers(&[])));
    }

    #[test]
    fn an_origin_must_be_the_host_asked_for() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://evil.example")
        ])));
        assert!(!same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "null")
        ])));
    }
}
