//! The listener: accepts connections up to `server.max_connections`, speaks HTTP/1.1 (over TLS
//! when the configuration has a certificate) with a deadline on every request's headers, and
//! stops gracefully. Limits and certificates are read from the setup being served, so a reload
//! changes them for the connections that follow.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tower::ServiceExt as _;

use crate::app::App;
use crate::metrics::Metrics;

/// How long shutdown waits for requests being answered; the body timeout bounds them too.
const GRACE: Duration = Duration::from_secs(30);

/// Serves `listener` until `shutdown` completes, then lets requests being answered finish.
pub(crate) async fn serve(
    listener: TcpListener,
    app: Arc<App>,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let router = super::router(Arc::clone(&app));
    let graceful = GracefulShutdown::new();
    let open = Arc::new(AtomicUsize::new(0));
    tokio::pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, say: keep serving the connections that are open.
                    tracing::warn!("cannot accept a connection: {error}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let setup = app.setup.load_full();
        let limits = &setup.listener;
        if open.load(Ordering::Acquire) >= limits.max_connections {
            app.metrics.connections_refused.inc();
            drop(stream);
            continue;
        }
        let guard = Open::new(&open, &app.metrics);
        let _ = stream.set_nodelay(true);
        let mut http = http1::Builder::new();
        http.timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout);
        let connection = Connection {
            http,
            router: router.clone(),
            peer,
        };
        let tls = limits.tls.clone().map(tokio_rustls::TlsAcceptor::from);
        let handshake = limits.header_timeout;
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let _open = guard;
            match tls {
                None => connection.serve(stream, watcher).await,
                Some(acceptor) => {
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection.serve(stream, watcher).await,
                        Ok(Err(error)) => tracing::debug!(%peer, "TLS handshake failed: {error}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("requests still being answered after {GRACE:?} were cut off");
    }
    Ok(())
}

/// One accepted connection, ready to be served.
struct Connection {
    http: http1::Builder,
    router: Router,
    peer: SocketAddr,
}

impl Connection {
    async fn serve<S: AsyncRead + AsyncWrite + Send + Unpin + 'static>(
        self,
        stream: S,
        graceful: hyper_util::server::graceful::Watcher,
    ) {
        let Connection { http, router, peer } = self;
        let service = hyper::service::service_fn(move |mut request: http::Request<Incoming>| {
            request.extensions_mut().insert(ConnectInfo(peer));
            router.clone().oneshot(request)
        });
        let served = graceful.watch(http.serve_connection(TokioIo::new(stream), service));
        if let Err(error) = served.await {
            // A client that went away or was too slow: nothing to do but note it.
            tracing::debug!(%peer, "connection ended: {error}");
        }
    }
}

/// Counts a connection as open for as long as it lives.
struct Open {
    open: Arc<AtomicUsize>,
    metrics: Arc<Metrics>,
}

impl Open {
    fn new(open: &Arc<AtomicUsize>, metrics: &Arc<Metrics>) -> Open {
        let now = open.fetch_add(1, Ordering::AcqRel) + 1;
        metrics
            .connections_open
            .set(i64::try_from(now).unwrap_or(i64::MAX));
        Open {
            open: Arc::clone(open),
            metrics: Arc::clone(metrics),
        }
    }
}

impl Drop for Open {
    fn drop(&mut self) {
        let now = self.open.fetch_sub(1, Ordering::AcqRel) - 1;
        self.metrics
            .connections_open
            .set(i64::try_from(now).unwrap_or(i64::MAX));
    }
}
