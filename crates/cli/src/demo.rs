//! `ferry serve --demo`: the server's main job, end to end, on the bundled mappings and the
//! sample events. It serves in dry-run mode on a free port with a fresh store, posts the files of
//! `examples/` to its own ingest endpoints the way the SDKs do (Segment `/v1/batch` with Basic
//! auth, Amplitude `/2/httpapi`, an Extole webhook with its secret), waits until every event is
//! settled, prints each mapped request as one JSON line, and stops.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use base64::Engine as _;
use ferry_server::ConfigOrigin;
use ferry_server::Options;
use ferry_spec::config::SourceKind;
use serde_json::{Value, json};

/// How long to wait for every event to be delivered.
const SETTLE_TIMEOUT: Duration = Duration::from_mins(1);

pub async fn run(origin: ConfigOrigin) -> anyhow::Result<ExitCode> {
    let data = tempfile::tempdir().context("cannot create a folder for the demo's store")?;
    let running = ferry_server::start(Options {
        origin,
        listen: Some("127.0.0.1:0".to_owned()),
        data: Some(data.path().to_path_buf()),
        dry_run: true,
        drain: Duration::from_secs(5),
    })
    .await?;
    let base = format!("http://{}", running.address);
    eprintln!("ferry serve (dry run) is listening on {base}");
    let setup = running.setup();
    post_samples(&base, &setup).await?;

    let started = Instant::now();
    loop {
        let mut open = 0;
        for connection in setup.connections.keys() {
            let depth = running.queue().depth(connection).await?;
            open += depth.pending + depth.in_flight + depth.retrying;
        }
        if open == 0 {
            break;
        }
        if started.elapsed() > SETTLE_TIMEOUT {
            eprintln!("{open} events were still not delivered after {SETTLE_TIMEOUT:?}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let recorded = data.path().join("dry-run.ndjson");
    let text = std::fs::read_to_string(&recorded).unwrap_or_default();
    let mut per_connection: BTreeMap<String, usize> = BTreeMap::new();
    for line in text.lines() {
        println!("{line}");
        if let Ok(record) = serde_json::from_str::<Value>(line)
            && let Some(connection) = record["connection"].as_str()
        {
            *per_connection.entry(connection.to_owned()).or_default() += 1;
        }
    }
    let mut dead = 0;
    for connection in setup.connections.keys() {
        dead += running.queue().depth(connection).await?.dead;
    }
    running.stop().await?;
    let counts: Vec<String> = per_connection
        .iter()
        .map(|(connection, n)| format!("{connection}: {n}"))
        .collect();
    eprintln!(
        "requests mapped (dry run, nothing sent): {}; dead letters: {dead}",
        counts.join(", ")
    );
    Ok(ExitCode::SUCCESS)
}

/// Posts each sample file to the source of its kind, as that source's SDK would.
async fn post_samples(base: &str, setup: &ferry_server::Setup) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    for (name, source) in &setup.sources {
        if setup.connections_of(name).next().is_none() {
            continue;
        }
        let key = &source.keys()[0];
        let (file, request) = match source.kind {
            SourceKind::Segment => {
                // A source named after a catalog destination gets that destination's samples.
                let own = format!("examples/{name}-events.ndjson");
                let file = if Path::new(&own).is_file() {
                    own
                } else {
                    "examples/segment-events.ndjson".to_owned()
                };
                let events = read_events(&file)?;
                let auth = base64::engine::general_purpose::STANDARD.encode(format!("{key}:"));
                (
                    file,
                    client
                        .post(format!("{base}/v1/batch"))
                        .header("Authorization", format!("Basic {auth}"))
                        .body(json!({ "batch": events }).to_string()),
                )
            }
            SourceKind::Amplitude => {
                let events = read_events("examples/amplitude-events.ndjson")?;
                (
                    "examples/amplitude-events.ndjson".to_owned(),
                    client
                        .post(format!("{base}/2/httpapi"))
                        .body(json!({ "api_key": key, "events": events }).to_string()),
                )
            }
            SourceKind::Extole => {
                let events = read_events("examples/extole-events.ndjson")?;
                (
                    "examples/extole-events.ndjson".to_owned(),
                    client
                        .post(format!("{base}/webhooks/extole/{name}"))
                        .bearer_auth(key)
                        .body(Value::Array(events).to_string()),
                )
            }
        };
        let response = request
            .header("Content-Type", "application/json")
            .send()
            .await
            .with_context(|| format!("cannot post `{file}` to the server"))?;
        let status = response.status();
        let body = response.text().await.unwrap_or_default();
        eprintln!("posted {file} as source `{name}`: {status} {body}");
    }

    Ok(())
}

/// The events of an NDJSON sample file.
fn read_events(file: &str) -> anyhow::Result<Vec<Value>> {
    let text = std::fs::read_to_string(Path::new(file)).with_context(|| {
        format!("cannot read `{file}`: run the demo from the root of the ferry repository")
    })?;
    text.lines()
        .enumerate()
        .filter(|(_, line)| !line.trim().is_empty())
        .map(|(i, line)| {
            serde_json::from_str(line).with_context(|| format!("{file}:{}: not JSON", i + 1))
        })
        .collect()
}
