//! `ferry tap`: the console's live stream in a terminal, as JSON lines: events as they arrive,
//! what became of each for every connection, refused requests, and counts of what the stream
//! did not show. Reads the server's address and admin token from its configuration, as
//! `ferry dlq` does.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, bail};
use ferry_server::{ConfigOrigin, Reach};

#[derive(clap::Args)]
pub struct Args {
    /// The server's configuration, for its address and admin token [default: `ferry.yaml`
    /// when it exists, else the default address].
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The server's base URL, instead of the configuration's (`http://host:port`).
    #[arg(long)]
    url: Option<String>,
    /// Only events of this source (and what became of them).
    #[arg(long)]
    source: Option<String>,
    /// Only what became of events for this connection (and the events of its source).
    #[arg(long)]
    connection: Option<String>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let mut reach = reach(args.config.as_deref())?;
    if let Some(url) = &args.url {
        url.trim_end_matches('/').clone_into(&mut reach.base_url);
    }
    if !reach.console {
        bail!(
            "the console is off in this configuration (`server.console: false`): there is no live stream to tap"
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(tap(&reach, args))
}

/// The configuration's listener, or the default one without a configuration.
fn reach(config: Option<&Path>) -> anyhow::Result<Reach> {
    let config = match config {
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from("ferry.yaml")).filter(|p| p.is_file()),
    };
    match config {
        Some(path) => ConfigOrigin::File(path)
            .load_reach()
            .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}")),
        None => ConfigOrigin::Embedded
            .load_reach()
            .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}")),
    }
}

async fn tap(reach: &Reach, args: &Args) -> anyhow::Result<ExitCode> {
    let mut client = reqwest::Client::builder();
    if let Some(path) = &reach.certificate {
        let pem = std::fs::read(path)
            .with_context(|| format!("cannot read the certificate `{}`", path.display()))?;
        let certificate = reqwest::Certificate::from_pem(&pem)
            .with_context(|| format!("`{}` is not a PEM certificate", path.display()))?;
        client = client.add_root_certificate(certificate);
    }
    let client = client.build().context("cannot set up the HTTP client")?;
    let mut query = Vec::new();
    if let Some(source) = &args.source {
        query.push(("source", source.as_str()));
    }
    if let Some(connection) = &args.connection {
        query.push(("connection", connection.as_str()));
    }
    let url =
        reqwest::Url::parse_with_params(&format!("{}/console/api/stream", reach.base_url), &query)
            .with_context(|| format!("`{}` is not a URL", reach.base_url))?;
    let mut request = client.get(url);
    if let Some(token) = &reach.admin_token {
        request = request.bearer_auth(token);
    }
    let mut response = request
        .send()
        .await
        .with_context(|| format!("cannot reach ferry at {}", reach.base_url))?;
    if !response.status().is_success() {
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        bail!("{} answered {status}: {}", reach.base_url, body.trim());
    }
    eprintln!("tapping {} (Ctrl-C to stop)", reach.base_url);
    let stdout = std::io::stdout();
    let mut buffered = String::new();
    while let Some(chunk) = response.chunk().await.context("the stream broke off")? {
        buffered.push_str(&String::from_utf8_lossy(&chunk));
        while let Some(end) = buffered.find("\n\n") {
            let block: String = buffered.drain(..end + 2).collect();
            let mut out = stdout.lock();
            for line in block.lines() {
                let Some(message) = line.strip_prefix("data: ") else {
                    continue;
                };
                if message == r#"{"kind":"hello"}"# {
                    continue;
                }
                if writeln!(out, "{message}")
                    .and_then(|()| out.flush())
                    .is_err()
                {
                    // `ferry tap | head`: the reader has gone.
                    return Ok(ExitCode::SUCCESS);
                }
            }
        }
    }
    eprintln!("the server ended the stream (it is shutting down)");
    Ok(ExitCode::SUCCESS)
}
