//! `ferry send`: delivers events for real, with the retries, limits and batching the mapping
//! declares; whatever cannot be delivered is written to a dead-letter file.

use std::fs::File;
use std::io::{self, BufReader, IsTerminal as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use ferry_delivery::DeadLetterWriter;
use ferry_engine::{CompiledMapping, Connection};
use ferry_pipeline::{Halt, Input, Pipeline, Summary};
use indicatif::{ProgressBar, ProgressStyle};
use tokio::sync::{mpsc, watch};

use crate::input::read_events;
use crate::mappings::{load, resolve};
use crate::settings;

/// What the reader says when the pipeline takes no more input.
pub const STOPPED: &str = "the pipeline stopped taking input";

/// Where dead letters go unless `--dead-letter` says otherwise.
pub const DEFAULT_DEAD_LETTERS: &str = "ferry-dead-letters.ndjson";

/// How a mapping is connected: shared by `send` and `replay`.
#[derive(clap::Args)]
pub struct Target {
    /// Settings file (YAML or JSON map of setting names to values).
    #[arg(long)]
    pub settings: Option<PathBuf>,
    /// A setting, `name=value`; wins over the settings file. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    pub sets: Vec<String>,
    /// Send every request to this base URL instead of the mapping's, e.g. a local test server.
    #[arg(long, value_name = "URL")]
    pub base_url: Option<String>,
    /// Name of the connection, recorded in dead letters; the settings file's name by default.
    #[arg(long)]
    pub connection: Option<String>,
    /// No progress display.
    #[arg(long, short)]
    pub quiet: bool,
}

#[derive(clap::Args)]
pub struct Args {
    /// Mapping name (`mappings/NAME.yaml`) or file.
    #[arg(long, short)]
    mapping: String,
    #[command(flatten)]
    target: Target,
    /// File that undeliverable events are appended to, one JSON record per line.
    #[arg(long, value_name = "FILE", default_value = DEFAULT_DEAD_LETTERS)]
    dead_letter: PathBuf,
    /// Events: a JSON object, a JSON array, or newline-delimited JSON; `-` or nothing for stdin.
    input: Option<PathBuf>,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let path = resolve(&args.mapping)?;
    let Some(mapping) = load(&path) else {
        return Ok(ExitCode::FAILURE);
    };
    let connection = connect(&mapping, &args.target)?;
    let existed = args.dead_letter.exists();
    let dead_letters = DeadLetterWriter::open(&args.dead_letter)
        .with_context(|| format!("cannot open `{}`", args.dead_letter.display()))?;
    let input = args.input.clone();
    let summary = deliver(connection, dead_letters, &args.target, move |tx| {
        let each = |(position, event): crate::input::Item| {
            let input = match event {
                Ok(event) => Input::Event {
                    index: position.index,
                    event,
                },
                Err(bad) => Input::Unreadable {
                    index: position.index,
                    text: bad.text,
                    reason: bad.reason,
                },
            };
            tx.blocking_send(input)
                .map_err(|_| io::Error::other(STOPPED))
        };
        match input.as_deref() {
            None => read_events(io::stdin().lock(), each),
            Some(path) if path.as_os_str() == "-" => read_events(io::stdin().lock(), each),
            Some(path) => {
                let file = File::open(path)?;
                read_events(BufReader::with_capacity(1 << 16, file), each)
            }
        }
    })?;
    eprintln!("{}: {summary}", mapping.name);
    if !existed && summary.dead_lettered == 0 {
        // Opened early to fail before sending anything if it cannot be written; not needed.
        let _ = std::fs::remove_file(&args.dead_letter);
    }
    for error in summary.unattributed.iter().take(5) {
        eprintln!("  a response listed an error for no request it carried: {error}");
    }
    if summary.dead_lettered > 0 {
        eprintln!(
            "{} dead letters appended to {}; fix the cause, then `ferry replay {}`",
            summary.dead_lettered,
            args.dead_letter.display(),
            args.dead_letter.display()
        );
    }
    Ok(exit_code(&summary))
}

/// Binds a mapping to the target's settings and base URL.
pub fn connect(mapping: &Arc<CompiledMapping>, target: &Target) -> anyhow::Result<Connection> {
    let mut connection = settings::connect(mapping, target.settings.as_deref(), &target.sets)?;
    if let Some(url) = &target.base_url {
        connection.override_base_url(url)?;
    }
    Ok(connection)
}

/// Non-zero when anything was dead-lettered.
pub fn exit_code(summary: &Summary) -> ExitCode {
    if summary.dead_lettered > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Runs a pipeline over the inputs `produce` sends (on a thread of its own, so that reading
/// never blocks sending), showing progress on stderr.
pub fn deliver(
    connection: Connection,
    dead_letters: DeadLetterWriter,
    target: &Target,
    produce: impl FnOnce(mpsc::Sender<Input>) -> io::Result<()> + Send + 'static,
) -> anyhow::Result<Summary> {
    let name = target.connection.clone().or_else(|| {
        target
            .settings
            .as_deref()
            .and_then(Path::file_stem)
            .map(|s| s.to_string_lossy().into_owned())
    });
    let mut pipeline = Pipeline::new(Arc::new(connection), dead_letters)?;
    if let Some(name) = name {
        pipeline = pipeline.named(name);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (tx, rx) = mpsc::channel(4096);
    let reader = std::thread::spawn(move || produce(tx));
    let mut progress = Progress::new(target.quiet);
    // The first Ctrl-C stops reading: what was read is still delivered or dead-lettered. The
    // second gives up on requests in flight, dead-lettering their events as interrupted.
    let (halt_tx, halt) = watch::channel(Halt::No);
    let interrupted = Arc::new(AtomicBool::new(false));
    let on_press = Arc::clone(&interrupted);
    let signals = runtime.spawn(async move {
        let mut presses = 0;
        while tokio::signal::ctrl_c().await.is_ok() {
            presses += 1;
            on_press.store(true, Ordering::SeqCst);
            if presses == 1 {
                eprintln!("\nstopping: finishing what was read (Ctrl-C again to stop at once)");
                let _ = halt_tx.send(Halt::Drain);
            } else {
                eprintln!("\nstopping at once: requests in flight are dead-lettered");
                let _ = halt_tx.send(Halt::Abort);
                break;
            }
        }
    });
    let summary = runtime
        .block_on(pipeline.run_until(rx, halt, &mut |s| progress.show(s)))
        .context("cannot write a dead letter; stopped")?;
    signals.abort();
    progress.finish();
    if interrupted.load(Ordering::SeqCst) {
        // The reader may be blocked on input that never ends (a terminal): leave it.
        eprintln!(
            "interrupted: the first {} events read were delivered or dead-lettered; the rest of \
             the input was not read",
            summary.events
        );
        return Ok(summary);
    }
    match reader.join() {
        Ok(Ok(())) => {}
        Ok(Err(error)) => return Err(error).context("cannot read the events"),
        Err(_) => anyhow::bail!("the event reader panicked"),
    }
    Ok(summary)
}

/// A progress bar on a terminal, a plain line every few seconds otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    lines: bool,
    last: Instant,
}

impl Progress {
    fn new(quiet: bool) -> Progress {
        let terminal = io::stderr().is_terminal();
        let bar = (!quiet && terminal).then(|| {
            let bar = ProgressBar::new_spinner();
            bar.set_style(
                ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                    .expect("a valid template"),
            );
            bar.enable_steady_tick(Duration::from_millis(120));
            bar
        });
        Progress {
            bar,
            lines: !quiet && !terminal,
            last: Instant::now(),
        }
    }

    fn show(&mut self, summary: &Summary) {
        if let Some(bar) = &self.bar {
            if self.last.elapsed() >= Duration::from_millis(100) {
                self.last = Instant::now();
                bar.set_message(summary.to_string());
            }
        } else if self.lines && self.last.elapsed() >= Duration::from_secs(5) {
            self.last = Instant::now();
            eprintln!("progress: {summary}");
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
