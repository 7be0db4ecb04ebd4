//! `ferry map`: a dry run. Events in, one JSON line per planned request out; bad events are
//! reported on stderr with their position and the rest still go through.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use ferry_engine::{
    CannedResponses, Connection, DryRun, MergedRequest, Outcome, PlannedRequest, Shown,
};
use ferry_golden::RequestLines;
use serde_json::json;

use crate::input::{Position, read_events};
use crate::mappings::{load, resolve};
use crate::settings::connect;

#[derive(clap::Args)]
pub struct Args {
    /// Mapping name (`mappings/NAME.yaml`) or file.
    #[arg(long, short)]
    mapping: String,
    /// Settings file (YAML or JSON map of setting names to values).
    #[arg(long)]
    settings: Option<PathBuf>,
    /// A setting, `name=value`; wins over the settings file. Repeatable.
    #[arg(long = "set", value_name = "NAME=VALUE")]
    sets: Vec<String>,
    /// Print secret settings instead of `[redacted]`.
    #[arg(long)]
    show_secrets: bool,
    /// Also report skipped events on stderr.
    #[arg(long, short)]
    verbose: bool,
    /// Explain on stderr which actions each event selected and where every field came from.
    #[arg(long)]
    trace: bool,
    /// Canned responses to the steps of multi-step actions (YAML or JSON: `{ STEP: { status,
    /// headers, body } }`, STEP being `action.step` or a step name), so that the steps after
    /// them are planned too.
    #[arg(long, value_name = "FILE")]
    responses: Option<PathBuf>,
    /// Merge requests as the mapping's batch rules declare and print the merged requests, each
    /// with the events it carries.
    #[arg(long)]
    batch: bool,
    /// The time the mapping's `now` reads (ISO-8601, e.g. `2026-11-02T09:00:00Z`), so that a
    /// dry run repeats exactly.
    #[arg(long, value_name = "TIME")]
    now: Option<String>,
    /// Events: a JSON object, a JSON array, or newline-delimited JSON; `-` or nothing for stdin.
    input: Option<PathBuf>,
}

#[derive(Default)]
struct Tally {
    events: usize,
    requests: usize,
    skipped: usize,
    failed: usize,
}

pub fn run(args: &Args) -> anyhow::Result<ExitCode> {
    let path = resolve(&args.mapping)?;
    let Some(mapping) = load(&path) else {
        return Ok(ExitCode::FAILURE);
    };
    let mut connection = connect(&mapping, args.settings.as_deref(), &args.sets)?;
    if let Some(now) = &args.now {
        let time = ferry_golden::parse_time(now).with_context(|| {
            format!("`--now {now}` is not an ISO-8601 time such as `2026-11-02T09:00:00Z`")
        })?;
        connection.pin_clock(time);
    }
    let canned = match &args.responses {
        Some(path) => read_responses(path)?,
        None => CannedResponses::default(),
    };
    let mut dry_run = DryRun::new(&connection, canned, args.batch, args.trace);

    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let stderr = io::stderr();
    let mut err = BufWriter::new(stderr.lock());
    let mut tally = Tally::default();
    let name = &*mapping.name;

    let printer = Printer {
        mapping: name,
        connection: &connection,
        show_secrets: args.show_secrets,
        verbose: args.verbose || args.trace,
    };
    let mut handle = |(position, event): crate::input::Item| -> io::Result<()> {
        tally.events += 1;
        let event = match event {
            Ok(event) => event,
            Err(bad) => {
                tally.failed += 1;
                return report(&mut err, position, None, "error", &bad.reason);
            }
        };
        let (shown, trace) = dry_run.event(position.index, &event);
        for line in &trace {
            writeln!(err, "event {}: {}", position.index, connection.redact(line))?;
        }
        for output in shown {
            printer.emit(output, position, &mut tally, &mut out, &mut err)?;
        }
        Ok(())
    };

    match args.input.as_deref() {
        None => read_events(io::stdin().lock(), &mut handle),
        Some(path) if path.as_os_str() == "-" => read_events(io::stdin().lock(), &mut handle),
        Some(path) => {
            let file =
                File::open(path).with_context(|| format!("cannot open `{}`", path.display()))?;
            read_events(BufReader::with_capacity(1 << 16, file), &mut handle)
        }
    }
    .or_else(ignore_broken_pipe)?;
    for output in dry_run.finish() {
        let last = Position {
            index: tally.events,
            line: None,
        };
        printer
            .emit(output, last, &mut tally, &mut out, &mut err)
            .or_else(ignore_broken_pipe)?;
    }
    out.flush().or_else(ignore_broken_pipe)?;
    writeln!(
        err,
        "{name}: {}, {} planned, {} skipped, {} failed",
        count(tally.events, "event"),
        count(tally.requests, "request"),
        tally.skipped,
        tally.failed
    )?;
    err.flush()?;
    Ok(if tally.failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Canned step responses from a YAML or JSON file.
fn read_responses(path: &std::path::Path) -> anyhow::Result<CannedResponses> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read `{}`", path.display()))?;
    let value: serde_json::Value = serde_yaml::from_str(&text)
        .with_context(|| format!("`{}` is not YAML or JSON", path.display()))?;
    CannedResponses::from_value(value).map_err(|e| anyhow::anyhow!("`{}`: {e}", path.display()))
}

fn count(n: usize, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// `ferry map ... | head` closes the pipe early; that is not an error.
fn ignore_broken_pipe(error: io::Error) -> io::Result<()> {
    if error.kind() == io::ErrorKind::BrokenPipe {
        Ok(())
    } else {
        Err(error)
    }
}

fn report(
    err: &mut impl Write,
    position: Position,
    action: Option<&str>,
    kind: &str,
    reason: &str,
) -> io::Result<()> {
    let mut line = json!({ "event": position.index });
    if let Some(number) = position.line {
        line["line"] = json!(number);
    }
    if let Some(action) = action {
        line["action"] = json!(action);
    }
    line[kind] = json!(reason);
    serde_json::to_writer(&mut *err, &line)?;
    err.write_all(b"\n")
}

/// How planned requests are printed: one JSON line each, secrets redacted unless asked.
struct Printer<'a> {
    mapping: &'a str,
    connection: &'a Connection,
    show_secrets: bool,
    /// Report skipped events on stderr.
    verbose: bool,
}

impl Printer<'_> {
    /// Prints what a dry run shows: a request on stdout, a skip or failure on stderr.
    fn emit(
        &self,
        output: Shown,
        position: Position,
        tally: &mut Tally,
        out: &mut impl Write,
        err: &mut impl Write,
    ) -> io::Result<()> {
        match output {
            Shown::Batch(merged) => {
                tally.requests += 1;
                self.write_merged(out, &merged)
            }
            Shown::Event { event, followed } => {
                let position = Position {
                    index: event,
                    ..position
                };
                match followed.outcome {
                    Outcome::Request(request) => {
                        tally.requests += 1;
                        let status = followed.answer.as_ref().map(|a| a.status);
                        self.write_request(out, &[event], &request, status)
                    }
                    Outcome::Skipped(skip) => {
                        tally.skipped += 1;
                        if self.verbose {
                            report(
                                err,
                                position,
                                skip.action.as_deref(),
                                "skipped",
                                &skip.reason,
                            )?;
                        }
                        Ok(())
                    }
                    Outcome::Failed(failure) => {
                        tally.failed += 1;
                        report(
                            err,
                            position,
                            failure.action.as_deref(),
                            "error",
                            &failure.message,
                        )
                    }
                }
            }
        }
    }

    fn write_merged(&self, out: &mut impl Write, merged: &MergedRequest<usize>) -> io::Result<()> {
        self.write_request(out, &merged.items, &merged.request, None)
    }

    fn write_request(
        &self,
        out: &mut impl Write,
        events: &[usize],
        request: &PlannedRequest,
        answered: Option<u16>,
    ) -> io::Result<()> {
        RequestLines {
            mapping: self.mapping,
            connection: self.connection,
            show_secrets: self.show_secrets,
        }
        .write(out, events, request, answered)
    }
}
