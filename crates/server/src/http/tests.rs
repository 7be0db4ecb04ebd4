//! The routes in process, with the client's address chosen by the test.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use arc_swap::ArcSwap;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{Request, StatusCode};
use tokio::sync::{Mutex, mpsc};
use tower::ServiceExt as _;

use crate::app::{App, Status};
use crate::metrics::Metrics;
use crate::setup::{ConfigOrigin, Setup};

/// An app serving a minimal configuration with these `server:` settings.
fn app(dir: &std::path::Path, server: &str) -> Arc<App> {
    std::fs::create_dir_all(dir.join("mappings")).unwrap();
    let config = dir.join("ferry.yaml");
    std::fs::write(
        &config,
        format!("version: 1\nserver: {server}\nsources:\n  web: {{ type: segment, keys: [k] }}\n"),
    )
    .unwrap();
    let origin = ConfigOrigin::File(config);
    let setup = Setup::load(&origin).unwrap_or_else(|d| panic!("{d}"));
    let queue = crate::store::open_store(&dir.join("data"), None).unwrap();
    let (reloads, _) = mpsc::channel(1);
    Arc::new(App {
        status: Mutex::new(Status::started(&origin)),
        setup: ArcSwap::from_pointee(setup),
        queue: Arc::new(queue),
        metrics: Arc::new(Metrics::new()),
        reloads,
        ready: AtomicBool::new(true),
        console: Arc::new(crate::console::Console::new().0),
    })
}

async fn status(app: &Arc<App>, peer: &str, authorization: Option<&str>) -> StatusCode {
    let headers: Vec<(&str, &str)> = authorization
        .map(|value| ("authorization", value))
        .into_iter()
        .collect();
    console(app, "GET", "/admin/status", peer, &headers, "").await
}

#[tokio::test]
async fn admin_endpoints_answer_loopback_and_holders_of_the_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "{ admin_token: t0ken-1234 }");
    let outside = "192.0.2.7:40000";
    assert_eq!(status(&app, "127.0.0.1:40000", None).await, StatusCode::OK);
    assert_eq!(status(&app, "[::1]:40000", None).await, StatusCode::OK);
    assert_eq!(status(&app, outside, None).await, StatusCode::FORBIDDEN);
    assert_eq!(
        status(&app, outside, Some("Bearer wrong-token")).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&app, outside, Some("Bearer t0ken-1234")).await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn without_a_token_admin_endpoints_answer_loopback_only() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "{}");
    assert_eq!(status(&app, "127.0.0.1:1", None).await, StatusCode::OK);
    assert_eq!(
        status(&app, "10.1.2.3:1", Some("Bearer anything")).await,
        StatusCode::FORBIDDEN
    );
}

#[test]
fn the_admin_token_never_shows_in_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "{ admin_token: t0ken-1234 }");
    let shown = format!("{:?}", app.setup.load());
    assert!(!shown.contains("t0ken-1234"), "{shown}");
}

/// Sends a request from `peer` with `headers`; answers the status.
async fn console(
    app: &Arc<App>,
    method: &str,
    path: &str,
    peer: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> StatusCode {
    let mut request = Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let mut request = request.body(Body::from(body.to_owned())).unwrap();
    let peer: SocketAddr = peer.parse().unwrap();
    request.extensions_mut().insert(ConnectInfo(peer));
    super::router(Arc::clone(app))
        .oneshot(request)
        .await
        .unwrap()
        .status()
}

#[tokio::test]
async fn the_console_api_answers_loopback_clients_that_asked_for_a_loopback_host() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "{}");
    let get = |peer: &'static str, host: &'static str| {
        let app = Arc::clone(&app);
        async move {
            console(
                &app,
                "GET",
                "/console/api/events",
                peer,
                &[("host", host)],
                "",
            )
            .await
        }
    };
    assert_eq!(get("127.0.0.1:1", "127.0.0.1:8080").await, StatusCode::OK);
    assert_eq!(get("127.0.0.1:1", "localhost:8080").await, StatusCode::OK);
    // A page of another site whose name resolves to 127.0.0.1 (DNS rebinding).
    assert_eq!(
        get("127.0.0.1:1", "rebind.example:8080").await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        get("10.1.2.3:1", "10.0.0.1:8080").await,
        StatusCode::FORBIDDEN
    );
    // The pages themselves hold no data: anyone who reaches the listener gets them.
    assert_eq!(
        console(&app, "GET", "/console", "10.1.2.3:1", &[("host", "x")], "").await,
        StatusCode::OK
    );
}

#[tokio::test]
async fn the_console_api_answers_any_host_with_the_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "{ admin_token: t0ken-1234 }");
    let with = |token: &'static str| {
        let app = Arc::clone(&app);
        async move {
            console(
                &app,
                "GET",
                "/console/api/events",
                "192.0.2.7:1",
                &[("host", "ferry.example"), ("authorization", token)],
                "",
            )
            .await
        }
    };
    assert_eq!(with("Bearer t0ken-1234").await, StatusCode::OK);
    assert_eq!(with("Bearer wrong").await, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn console_changes_must_be_json_from_the_same_origin() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "{}");
    let purge = |headers: &'static [(&'static str, &'static str)]| {
        let app = Arc::clone(&app);
        async move {
            console(
                &app,
                "POST",
                "/console/api/dead/purge",
                "127.0.0.1:1",
                headers,
                r#"{"all": true}"#,
            )
            .await
        }
    };
    // A form another site's page could post without asking first.
    assert_eq!(
        purge(&[("host", "127.0.0.1:8080"), ("content-type", "text/plain")]).await,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(
        purge(&[
            ("host", "127.0.0.1:8080"),
            ("content-type", "application/json"),
            ("origin", "http://evil.example")
        ])
        .await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        purge(&[
            ("host", "127.0.0.1:8080"),
            ("content-type", "application/json"),
            ("origin", "http://127.0.0.1:8080")
        ])
        .await,
        StatusCode::OK
    );
    // No state-changing GET.
    assert_eq!(
        console(
            &app,
            "GET",
            "/console/api/dead/purge",
            "127.0.0.1:1",
            &[("host", "127.0.0.1:8080")],
            ""
        )
        .await,
        StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test]
async fn a_disabled_console_serves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let app = app(dir.path(), "{ console: false }");
    for path in [
        "/console",
        "/console/api/events",
        "/console/assets/console.js",
    ] {
        assert_eq!(
            console(
                &app,
                "GET",
                path,
                "127.0.0.1:1",
                &[("host", "127.0.0.1")],
                ""
            )
            .await,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
}
