//! The HTTP listener as the configuration describes it, checked: where it listens, its limits
//! on slow or numerous clients, its TLS certificate and the admin token.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use ferry_spec::config::Server;
use ferry_spec::{ConfigDocument, Diagnostic, Target};
use rustls_pki_types::pem::PemObject as _;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::rustls;

use super::env::interpolate;

/// The listener, ready to serve.
#[derive(Clone)]
pub(crate) struct Listener {
    /// `host:port`.
    pub(crate) address: String,
    pub(crate) max_connections: usize,
    pub(crate) header_timeout: Duration,
    pub(crate) body_timeout: Duration,
    /// The certificate and key, read from their files, when it serves HTTPS.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    /// Lets clients beyond loopback reach `/admin/*` with `Authorization: Bearer TOKEN`.
    pub(crate) admin_token: Option<String>,
    /// Serve the console at `/console`.
    pub(crate) console: bool,
}

impl std::fmt::Debug for Listener {
    /// Never shows the admin token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listener")
            .field("address", &self.address)
            .field("max_connections", &self.max_connections)
            .field("header_timeout", &self.header_timeout)
            .field("body_timeout", &self.body_timeout)
            .field("tls", &self.tls.is_some())
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field("console", &self.console)
            .finish()
    }
}

/// The listener of `document`; its problems (an unset variable, an unreadable certificate)
/// are added to `problems`. Paths are relative to `base`, the configuration's folder.
pub(crate) fn listener(
    document: &ConfigDocument,
    base: &Path,
    problems: &mut Vec<Diagnostic>,
) -> Listener {
    let config = &document.config;
    let server: &Server = &config.server;
    let admin_token = admin_token(document, problems);
    let paths = server.tls.as_ref().map(|tls| {
        (
            resolved(
                document,
                problems,
                "/server/tls/certificate",
                &tls.certificate,
            ),
            resolved(document, problems, "/server/tls/key", &tls.key),
        )
    });
    let tls = match paths {
        Some((Some(certificate), Some(key))) => {
            match tls_config(&base.join(certificate), &base.join(key)) {
                Ok(config) => Some(Arc::new(config)),
                Err((pointer, message)) => {
                    problems.push(document.diagnostic(pointer, Target::Value, message));
                    None
                }
            }
        }
        _ => None,
    };
    Listener {
        address: config.listen.clone(),
        max_connections: usize::try_from(server.max_connections).unwrap_or(usize::MAX),
        header_timeout: Duration::from_secs(server.header_timeout_seconds),
        body_timeout: Duration::from_secs(server.body_timeout_seconds),
        tls,
        admin_token,
        console: server.console,
    }
}

/// `text` with its `${VAR}`s resolved; an unset variable is a problem at `pointer`.
fn resolved(
    document: &ConfigDocument,
    problems: &mut Vec<Diagnostic>,
    pointer: &str,
    text: &str,
) -> Option<String> {
    match interpolate(text) {
        Ok(value) => Some(value),
        Err(message) => {
            problems.push(document.diagnostic(pointer, Target::Value, message));
            None
        }
    }
}

/// The admin token, resolved; an empty one is a problem, and no token.
fn admin_token(document: &ConfigDocument, problems: &mut Vec<Diagnostic>) -> Option<String> {
    let token = document
        .config
        .server
        .admin_token
        .as_deref()
        .and_then(|token| resolved(document, problems, "/server/admin_token", token))?;
    if token.is_empty() {
        problems.push(document.diagnostic(
            "/server/admin_token",
            Target::Value,
            "the admin token must not be empty",
        ));
        return None;
    }
    Some(token)
}

/// How a client on this machine reaches the listener.
#[derive(Clone)]
pub struct Reach {
    /// `http://HOST:PORT` or `https://...`, with a wildcard address (`0.0.0.0`, `[::]`) replaced
    /// by loopback.
    pub base_url: String,
    /// The admin token, to send as `Authorization: Bearer TOKEN`.
    pub admin_token: Option<String>,
    /// The listener's certificate (PEM), to trust when it serves HTTPS.
    pub certificate: Option<std::path::PathBuf>,
    /// Whether the console (and its live stream) is on.
    pub console: bool,
}

impl std::fmt::Debug for Reach {
    /// Never shows the admin token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Reach")
            .field("base_url", &self.base_url)
            .field(
                "admin_token",
                &self.admin_token.as_ref().map(|_| "[redacted]"),
            )
            .field("certificate", &self.certificate)
            .field("console", &self.console)
            .finish()
    }
}

/// How to reach the listener `document` describes; problems go to `problems`.
pub(crate) fn reach(
    document: &ConfigDocument,
    base: &Path,
    problems: &mut Vec<Diagnostic>,
) -> Reach {
    let config = &document.config;
    let server = &config.server;
    let admin_token = admin_token(document, problems);
    let certificate = server
        .tls
        .as_ref()
        .and_then(|tls| {
            resolved(
                document,
                problems,
                "/server/tls/certificate",
                &tls.certificate,
            )
        })
        .map(|path| base.join(path));
    let scheme = if certificate.is_some() {
        "https"
    } else {
        "http"
    };
    let address = match config.listen.rsplit_once(':') {
        Some(("0.0.0.0" | "", port)) => format!("127.0.0.1:{port}"),
        Some(("[::]", port)) => format!("[::1]:{port}"),
        _ => config.listen.clone(),
    };
    Reach {
        base_url: format!("{scheme}://{address}"),
        admin_token,
        certificate,
        console: server.console,
    }
}

/// A TLS server configuration from PEM files: TLS 1.2 and 1.3, HTTP/1.1. The error names the
/// configuration key at fault.
fn tls_config(
    certificate: &Path,
    key: &Path,
) -> Result<rustls::ServerConfig, (&'static str, String)> {
    let certificate_problem = |what: String| ("/server/tls/certificate", what);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| {
            certificate_problem(format!(
                "cannot read the certificate `{}`: {e}",
                certificate.display()
            ))
        })?
        .collect::<Result<_, _>>()
        .map_err(|e| {
            certificate_problem(format!(
                "cannot read the certificate `{}`: {e}",
                certificate.display()
            ))
        })?;
    if chain.is_empty() {
        return Err(certificate_problem(format!(
            "`{}` holds no PEM certificate",
            certificate.display()
        )));
    }
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| {
        (
            "/server/tls/key",
            format!("cannot read the private key `{}`: {e}", key.display()),
        )
    })?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| certificate_problem(format!("cannot set up TLS: {e}")))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            (
                "/server/tls/key",
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}
