//! `ferry serve`: the event gateway. Accepts events from SDKs over HTTP, stores them durably,
//! maps and delivers them, and reloads mappings while it runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::ValueEnum;
use ferry_server::{ConfigOrigin, EMBEDDED_CONFIG, Options, ServeError, StartError, serve};

use crate::demo;

#[derive(clap::Args)]
pub struct Args {
    /// The configuration file [default: `ferry.yaml` when it exists, otherwise the embedded
    /// default: the bundled mappings in dry-run mode].
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Listen on this address instead of the configuration's `listen`.
    #[arg(long)]
    listen: Option<String>,
    /// Keep the store in this folder instead of the configuration's `data`.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Send nothing: record mapped requests in `DATA/dry-run.ndjson` and the log.
    #[arg(long)]
    dry_run: bool,
    /// Log lines as text or as JSON objects.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// At shutdown, how long deliveries in flight may take to finish before they are left
    /// pending for the next start.
    #[arg(long, default_value_t = 10, value_name = "SECONDS")]
    drain: u64,
    /// Print the embedded default configuration and exit (a starting point for `ferry.yaml`).
    #[arg(long)]
    print_config: bool,
    /// Serve in dry-run mode on a free port with a fresh store, post the sample events of
    /// `examples/` to it as the SDKs would, print every mapped request, and stop.
    #[arg(long)]
    demo: bool,
}

#[derive(Clone, Copy, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    if args.print_config {
        print!("{EMBEDDED_CONFIG}");
        return Ok(ExitCode::SUCCESS);
    }
    init_logging(args.log_format, args.demo);
    let origin = origin(args.config.as_deref())?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    if args.demo {
        return runtime.block_on(demo::run(origin));
    }
    if origin == ConfigOrigin::Embedded {
        tracing::info!(
            "no ferry.yaml here: serving the bundled mappings in dry-run mode (see `ferry serve --print-config`)"
        );
    }
    let options = Options {
        origin,
        listen: args.listen.clone(),
        data: args.data.clone(),
        dry_run: args.dry_run,
        drain: Duration::from_secs(args.drain),
    };
    match runtime.block_on(serve(options, terminated())) {
        Ok(()) => Ok(ExitCode::SUCCESS),
        Err(ServeError::Start(StartError::Setup(problems))) => {
            eprintln!("{problems}");
            let count = match problems.0.len() {
                1 => "a problem".to_owned(),
                n => format!("{n} problems"),
            };
            eprintln!(
                "ferry serve: {count} in the configuration and its mappings; nothing was started"
            );
            Ok(ExitCode::from(2))
        }
        Err(error) => Err(error.into()),
    }
}

/// The configuration named, or `ferry.yaml` when it exists, or the embedded default.
fn origin(config: Option<&Path>) -> anyhow::Result<ConfigOrigin> {
    match config {
        Some(path) if path.is_file() => Ok(ConfigOrigin::File(path.to_path_buf())),
        Some(path) => anyhow::bail!("the configuration `{}` does not exist", path.display()),
        None if Path::new("ferry.yaml").is_file() => {
            Ok(ConfigOrigin::File(PathBuf::from("ferry.yaml")))
        }
        None => Ok(ConfigOrigin::Embedded),
    }
}

/// Completes on SIGTERM or Ctrl-C.
async fn terminated() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Logs to stderr; `RUST_LOG` filters (default: `info`, or `warn` for a demo). Colours only on
/// a terminal, and not when `NO_COLOR` is set, so that a log redirected to a file or a
/// collector is plain text.
fn init_logging(format: LogFormat, quiet: bool) {
    use std::io::IsTerminal as _;
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(if quiet { "warn" } else { "info" }));
    let colour = std::io::stderr().is_terminal()
        && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().flatten_event(true).init(),
    }
}
