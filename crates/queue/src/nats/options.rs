//! How a [`NatsQueue`](super::NatsQueue) reaches NATS and lays out its streams.

use std::path::PathBuf;
use std::time::Duration;

/// Where the JetStream servers are, how to authenticate, and how streams are replicated.
#[derive(Clone)]
pub struct NatsOptions {
    /// Server URLs (`nats://host:4222`); the client connects to one and learns the others.
    pub(crate) servers: Vec<String>,
    /// How to authenticate, if the servers ask.
    pub credentials: Option<NatsCredentials>,
    /// Copies of every stream and bucket (1, 3 or 5). An event is acknowledged only once
    /// JetStream has stored it on a majority of them.
    pub replicas: usize,
    /// How long a Segment `messageId` or Amplitude `insert_id` is remembered to drop repeats
    /// (JetStream's duplicate window, which the servers keep in memory).
    pub dedupe_window: Duration,
    /// How long a claimed event may go unsettled before JetStream hands it to another node. A
    /// node working on an event longer than a third of this tells JetStream it is still busy,
    /// so only a node that stopped loses its events to another.
    pub ack_wait: Duration,
}

impl NatsOptions {
    /// One server, no credentials, one replica, a 2-minute dedupe window, 30 s ack wait.
    pub fn new(servers: Vec<String>) -> NatsOptions {
        NatsOptions {
            servers,
            credentials: None,
            replicas: 1,
            dedupe_window: Duration::from_mins(2),
            ack_wait: Duration::from_secs(30),
        }
    }

    /// The server list as it may be shown: any `user:password@` in a URL masked.
    pub fn servers_shown(&self) -> String {
        self.servers
            .iter()
            .map(|url| mask_userinfo(url))
            .collect::<Vec<_>>()
            .join(",")
    }
}

impl std::fmt::Debug for NatsOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NatsOptions")
            .field("servers", &self.servers_shown())
            .field("credentials", &self.credentials)
            .field("replicas", &self.replicas)
            .field("dedupe_window", &self.dedupe_window)
            .field("ack_wait", &self.ack_wait)
            .finish()
    }
}

/// How ferry authenticates to NATS. Secrets are never shown by `Debug`.
#[derive(Clone)]
pub enum NatsCredentials {
    UserPassword {
        user: String,
        password: String,
    },
    Token(String),
    /// A `.creds` file (a user JWT and its NKey seed), as `nsc` writes it.
    CredsFile(PathBuf),
}

impl std::fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UserPassword { user, .. } => f
                .debug_struct("UserPassword")
                .field("user", user)
                .field("password", &"[redacted]")
                .finish(),
            Self::Token(_) => f.debug_tuple("Token").field(&"[redacted]").finish(),
            Self::CredsFile(path) => f.debug_tuple("CredsFile").field(path).finish(),
        }
    }
}

/// `nats://user:pass@host` -> `nats://[redacted]@host`.
fn mask_userinfo(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let host_start = rest.find('/').unwrap_or(rest.len());
    match rest[..host_start].rfind('@') {
        Some(at) => {
            let prefix = if scheme.is_empty() {
                String::new()
            } else {
                format!("{scheme}://")
            };
            format!("{prefix}[redacted]@{}", &rest[at + 1..])
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_not_shown() {
        let mut options = NatsOptions::new(vec![
            "nats://ferry:hunter2@10.0.0.1:4222".to_owned(),
            "tls://n2:4222".to_owned(),
        ]);
        options.credentials = Some(NatsCredentials::UserPassword {
            user: "ferry".to_owned(),
            password: "s3cret-pass".to_owned(),
        });
        let shown = format!("{options:?}");
        assert!(
            !shown.contains("hunter2") && !shown.contains("s3cret-pass"),
            "{shown}"
        );
        assert!(
            shown.contains("nats://[redacted]@10.0.0.1:4222,tls://n2:4222"),
            "{shown}"
        );
        let token = format!("{:?}", NatsCredentials::Token("tok-123".to_owned()));
        assert!(!token.contains("tok-123"), "{token}");
    }
}
