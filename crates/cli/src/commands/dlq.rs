//! `ferry dlq`: the dead letters in the server's store: list them, show one, replay them once
//! the cause is fixed (a running server delivers them within a second), or purge them. Works
//! while `ferry serve` runs.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Subcommand;
use ferry_queue::{Queue, Select};
use ferry_server::{ConfigOrigin, StoreSetup};
use serde_json::json;

#[derive(clap::Args)]
pub struct Args {
    /// The server's configuration, to find its data folder [default: `ferry.yaml` when it
    /// exists].
    #[arg(long, short, global = true)]
    config: Option<PathBuf>,
    /// The data folder, instead of the configuration's.
    #[arg(long, global = true)]
    data: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List dead letters, newest first.
    List {
        /// Only this connection's.
        #[arg(long)]
        connection: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 100)]
        limit: usize,
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one dead letter whole: the event, the reason, the last request and response.
    Show { id: i64 },
    /// Queue dead-lettered events again for their connection.
    Replay(Which),
    /// Delete dead letters for good.
    Purge(Which),
}

/// Which dead letters: one, every one, or a connection's.
#[derive(clap::Args)]
struct Which {
    /// The dead letter's id (from `ferry dlq list`).
    #[arg(conflicts_with_all = ["all", "connection"], required_unless_present_any = ["all", "connection"])]
    id: Option<i64>,
    /// Every dead letter.
    #[arg(long)]
    all: bool,
    /// This connection's dead letters.
    #[arg(long)]
    connection: Option<String>,
}

impl Which {
    fn select(&self) -> Select {
        match (self.id, &self.connection) {
            (Some(id), _) => Select::One(id),
            (None, Some(connection)) => Select::Connection(connection.clone()),
            (None, None) => Select::All,
        }
    }
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let (store, data) = store(args.config.as_deref(), args.data.as_deref())?;
    if let StoreSetup::Sqlite = store {
        let file = data.join(ferry_server::STORE_FILE);
        if !file.is_file() {
            anyhow::bail!(
                "no store at `{}`: has `ferry serve` run with this data folder?",
                file.display()
            );
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async {
        let queue = ferry_server::open_queue_at(&store, &data, None).await?;
        command(queue.as_ref(), &args.command).await
    })
}

async fn command(queue: &dyn Queue, command: &Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::List {
            connection,
            limit,
            json,
        } => {
            let letters = queue.dead_letters(connection.as_deref(), *limit).await?;
            if *json {
                for letter in &letters {
                    println!(
                        "{}",
                        json!({
                            "id": letter.id,
                            "at": ferry_delivery::timestamp(at(letter.at_ms)),
                            "connection": letter.connection,
                            "source": letter.source,
                            "event_id": letter.event_id.map(|e| e.0),
                            "mapping": letter.mapping,
                            "reason": letter.reason,
                        })
                    );
                }
            } else if letters.is_empty() {
                eprintln!("no dead letters");
            } else {
                println!("{:>6}  {:<20}  {:<18}  REASON", "ID", "AT", "CONNECTION");
                for letter in &letters {
                    let connection = letter.connection.as_deref().unwrap_or("(ingest)");
                    println!(
                        "{:>6}  {:<20}  {:<18}  {}",
                        letter.id,
                        ferry_delivery::timestamp(at(letter.at_ms)),
                        connection,
                        one_line(&letter.reason, 100)
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Show { id } => {
            let Some(record) = queue.dead_letter(*id).await? else {
                anyhow::bail!("no dead letter {id}");
            };
            let event: serde_json::Value = serde_json::from_str(&record.event)
                .unwrap_or(serde_json::Value::String(record.event.clone()));
            let shown = json!({
                "id": record.summary.id,
                "at": ferry_delivery::timestamp(at(record.summary.at_ms)),
                "connection": record.summary.connection,
                "source": record.summary.source,
                "event_id": record.summary.event_id.map(|e| e.0),
                "mapping": record.summary.mapping,
                "reason": record.summary.reason,
                "event": event,
                "letters": record.letters,
            });
            println!("{}", serde_json::to_string_pretty(&shown)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Replay(which) => {
            let replayed = queue.replay(which.select()).await?;
            eprintln!(
                "{} events queued again; a running `ferry serve` delivers them within a second",
                replayed.queued
            );
            for (id, why) in &replayed.skipped {
                eprintln!("dead letter {id} not replayed: {why}");
            }
            // Asked for one dead letter that cannot be replayed: that is a failure. Asked for
            // many, the ones refused at ingest are expected to stay.
            Ok(if which.id.is_some() && !replayed.skipped.is_empty() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            })
        }
        Command::Purge(which) => {
            let purged = queue.purge(which.select()).await?;
            eprintln!("{purged} dead letters deleted");
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The store of the configuration (`--config`, or `ferry.yaml` when it exists): SQLite in its
/// data folder (`--data` instead, or `ferry-data` without a configuration), or NATS JetStream,
/// which every node shares, so that this works from any of them.
fn store(config: Option<&Path>, data: Option<&Path>) -> anyhow::Result<(StoreSetup, PathBuf)> {
    let config = match config {
        Some(path) => Some(path.to_path_buf()),
        None => Some(PathBuf::from("ferry.yaml")).filter(|p| p.is_file()),
    };
    let (store, configured) = match config {
        Some(path) => ConfigOrigin::File(path)
            .load_store()
            .map_err(|diagnostics| anyhow::anyhow!("{diagnostics}"))?,
        None => (StoreSetup::Sqlite, PathBuf::from("ferry-data")),
    };
    Ok((store, data.map_or(configured, Path::to_path_buf)))
}

fn at(ms: i64) -> std::time::SystemTime {
    std::time::UNIX_EPOCH + std::time::Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

fn one_line(text: &str, max: usize) -> String {
    let line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    if line.chars().count() <= max {
        line
    } else {
        let cut: String = line.chars().take(max - 1).collect();
        format!("{cut}…")
    }
}
