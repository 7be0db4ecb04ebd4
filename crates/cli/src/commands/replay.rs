//! `ferry replay`: sends the events of a dead-letter file again, after the cause was fixed. The
//! file is then rewritten to hold only what still cannot be delivered, so it can be replayed
//! until it is empty; records of other mappings and unreadable lines are kept as they were.

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use ferry_delivery::{DeadLetterReader, DeadLetterWriter, Entry, ReadError};
use ferry_pipeline::Input;

use super::send::{Target, connect, deliver, exit_code};
use crate::mappings::{load, resolve};

#[derive(clap::Args)]
pub struct Args {
    /// The dead-letter file written by `ferry send`.
    file: PathBuf,
    /// Mapping name or file; by default, the mapping named in the dead letters.
    #[arg(long, short)]
    mapping: Option<String>,
    #[command(flatten)]
    target: Target,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let reader = DeadLetterReader::open(&args.file)
        .with_context(|| format!("cannot open `{}`", args.file.display()))?;
    let mut records: Vec<Entry> = Vec::new();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for item in reader {
        match item {
            Ok(entry) => records.push(entry),
            Err(ReadError::BadLine {
                line,
                message,
                text,
            }) => {
                eprintln!(
                    "{}:{line}: not a dead letter ({message}); kept as it is",
                    args.file.display(),
                );
                kept.push(text);
            }
            Err(error @ ReadError::Io { .. }) => {
                return Err(error)
                    .with_context(|| format!("cannot read `{}`", args.file.display()));
            }
        }
    }
    let name = if let Some(name) = &args.mapping {
        name.clone()
    } else if let Some(first) = records.first() {
        first.record.mapping.clone()
    } else {
        eprintln!("{}: no dead letters to replay", args.file.display());
        return Ok(ExitCode::SUCCESS);
    };
    let path = resolve(&name)?;
    let Some(mapping) = load(&path) else {
        return Ok(ExitCode::FAILURE);
    };
    let (mine, others): (Vec<_>, Vec<_>) = records
        .into_iter()
        .partition(|entry| entry.record.mapping == *mapping.name);
    for entry in &others {
        kept.push(serde_json::to_vec(&entry.record).expect("a dead letter serializes"));
    }
    if !others.is_empty() {
        eprintln!(
            "{} dead letters of other mappings are kept; replay them with --mapping",
            others.len()
        );
    }
    let connection = connect(&mapping, &args.target)?;
    let fresh = sibling(&args.file, "replaying");
    // Left over by an interrupted replay: its records are still in the original file.
    let _ = fs::remove_file(&fresh);
    let dead_letters = DeadLetterWriter::open(&fresh)
        .with_context(|| format!("cannot open `{}`", fresh.display()))?;
    let replayed = mine.len();
    let summary = deliver(connection, dead_letters, &args.target, move |tx| {
        for Entry { line, record } in mine {
            let input = if record.event.is_object() {
                Input::Event {
                    index: line,
                    event: record.event,
                }
            } else {
                Input::Unreadable {
                    index: line,
                    text: record
                        .event
                        .as_str()
                        .map_or_else(|| record.event.to_string(), ToOwned::to_owned),
                    reason: record.reason,
                }
            };
            tx.blocking_send(input)
                .map_err(|_| io::Error::other(super::send::STOPPED))?;
        }
        Ok(())
    })?;
    {
        let mut out = fs::OpenOptions::new()
            .append(true)
            .open(&fresh)
            .with_context(|| format!("cannot open `{}`", fresh.display()))?;
        for line in &kept {
            out.write_all(line)?;
            out.write_all(b"\n")?;
        }
        out.sync_all()?;
    }
    fs::rename(&fresh, &args.file)
        .with_context(|| format!("cannot replace `{}`", args.file.display()))?;
    eprintln!(
        "{}: replayed {replayed} dead letters: {summary}",
        mapping.name
    );
    let left = summary.dead_lettered + kept.len() as u64;
    if left > 0 {
        eprintln!("{left} records remain in {}", args.file.display());
    } else {
        eprintln!("{} is empty: everything was delivered", args.file.display());
    }
    Ok(exit_code(&summary))
}

/// `dir/name.ext` -> `dir/name.ext.<suffix>`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{suffix}"));
    path.with_file_name(name)
}
