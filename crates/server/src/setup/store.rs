//! `store:` checked: the backend, and for NATS its servers and credentials with `${ENV_VAR}`
//! resolved. Secrets end in [`NatsOptions`], whose `Debug` redacts them.

use std::path::Path;
use std::time::Duration;

use ferry_queue::{NatsCredentials, NatsOptions};
use ferry_spec::config::{Backend, Credentials, CredsFile, Token, UserPassword};
use ferry_spec::{ConfigDocument, Diagnostic, Target};

use super::env::interpolate;

/// Where the queue lives.
#[derive(Debug, Clone)]
pub enum StoreSetup {
    /// The SQLite file in the data folder.
    Sqlite,
    /// NATS JetStream, shared by every node given the same servers.
    Nats(NatsOptions),
}

/// The store `document` describes; problems go to `problems`. `base` is the folder relative
/// paths start from.
pub(crate) fn store(
    document: &ConfigDocument,
    base: &Path,
    problems: &mut Vec<Diagnostic>,
) -> StoreSetup {
    let spec = &document.config.store;
    if spec.backend == Backend::Sqlite {
        for (key, given) in [
            ("servers", !spec.servers.is_empty()),
            ("credentials", spec.credentials.is_some()),
        ] {
            if given {
                problems.push(document.diagnostic(
                    &format!("/store/{key}"),
                    Target::Key,
                    format!("`{key}` is for `backend: nats`; this store is SQLite"),
                ));
            }
        }
        return StoreSetup::Sqlite;
    }
    let mut resolve = |pointer: &str, text: &str| match interpolate(text) {
        Ok(value) => Some(value),
        Err(message) => {
            problems.push(document.diagnostic(pointer, Target::Value, message));
            None
        }
    };
    let servers: Vec<String> = spec
        .servers
        .iter()
        .enumerate()
        .filter_map(|(i, url)| resolve(&format!("/store/servers/{i}"), url))
        .collect();
    let credentials = match &spec.credentials {
        None => None,
        Some(Credentials::UserPassword(UserPassword { user, password })) => {
            let user = resolve("/store/credentials/user", user);
            let password = resolve("/store/credentials/password", password);
            user.zip(password)
                .map(|(user, password)| NatsCredentials::UserPassword { user, password })
        }
        Some(Credentials::Token(Token { token })) => {
            resolve("/store/credentials/token", token).map(NatsCredentials::Token)
        }
        Some(Credentials::CredsFile(CredsFile { creds_file })) => {
            resolve("/store/credentials/creds_file", creds_file)
                .map(|path| NatsCredentials::CredsFile(base.join(path)))
        }
    };
    if spec.servers.is_empty() {
        problems.push(document.diagnostic(
            "/store/backend",
            Target::Value,
            "`backend: nats` needs `servers`: the URLs of the NATS servers (`nats://host:4222`)",
        ));
    }
    let mut options = NatsOptions::new(servers);
    options.credentials = credentials;
    options.replicas = usize::try_from(spec.replicas).unwrap_or(1);
    // JetStream keeps at least a second: 0 hours is as little as it allows.
    options.dedupe_window =
        Duration::from_secs(u64::from(spec.dedupe_hours) * 3600).max(Duration::from_secs(1));
    options.ack_wait = Duration::from_secs(spec.ack_wait_seconds.max(1));
    StoreSetup::Nats(options)
}
