//! `ferry`: validate, test and run mapping files.

mod commands;
mod demo;
mod input;
mod mappings;
mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Every request allocates and frees per event on each worker thread; glibc's allocator spent a
/// fifth of `ferry serve`'s time under ingest load in its own locks and free-list upkeep.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Turns customer-data events into the HTTP requests destinations expect, as described by YAML
/// mapping files.
#[derive(Parser)]
#[command(name = "ferry", version, about, max_term_width = 100)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Check mapping files and report every problem, located by file, line and column.
    Validate {
        /// Mapping files or folders of them.
        #[arg(default_value = "mappings")]
        paths: Vec<PathBuf>,
    },
    /// Map events to the requests a mapping plans, printed as JSON lines (a dry run: nothing
    /// is sent).
    Map(commands::map::Args),
    /// Deliver events: map them, send the requests with the retries, rate limits and batching
    /// the mapping declares, and append what cannot be delivered to a dead-letter file.
    Send(commands::send::Args),
    /// Send the events of a dead-letter file again, once the cause is fixed; the file keeps
    /// only what still fails.
    Replay(commands::replay::Args),
    /// Run the golden cases of mappings and show a diff for every case whose requests changed.
    Test {
        /// Mapping files, case files, or folders of mappings.
        #[arg(default_value = "mappings")]
        paths: Vec<PathBuf>,
        /// Write the current output as the expected output of every failing or new case.
        #[arg(long)]
        accept: bool,
    },
    /// Run the event gateway: accept events from Segment and Amplitude SDKs and Extole
    /// webhooks, store them durably, map and deliver them, and reload mappings on change.
    Serve(commands::serve::Args),
    /// Inspect, replay or purge the dead letters in the server's store.
    Dlq(commands::dlq::Args),
    /// Follow a running server's live events as JSON lines: each event as it arrives and what
    /// became of it for every connection (the console's live stream).
    Tap(commands::tap::Args),
    /// Print the JSON Schema of the mapping language (or, with `--config`, of `ferry.yaml`).
    Schema {
        /// The schema of the server configuration instead.
        #[arg(long)]
        config: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Validate { paths } => commands::validate::run(&paths),
        Command::Map(args) => commands::map::run(&args),
        Command::Send(args) => commands::send::run(&args),
        Command::Replay(args) => commands::replay::run(&args),
        Command::Test { paths, accept } => commands::test::run(&paths, accept),
        Command::Serve(args) => commands::serve::run(&args),
        Command::Dlq(args) => commands::dlq::run(&args),
        Command::Tap(args) => commands::tap::run(&args),
        Command::Schema { config } => commands::schema::run(config),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::from(2)
        }
    }
}
