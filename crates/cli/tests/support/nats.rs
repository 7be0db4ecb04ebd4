//! `ferry serve` nodes on NATS JetStream: the `store:` a workspace needs to use a real
//! nats-server (one, or a three-node cluster), and a second node on the same configuration.

use std::path::Path;

use ferry_testkit::{Cluster, NatsServer};

use super::ferry::{Ferry, Start, free_address};
use super::workspace::Workspace;

/// How long JetStream waits in these tests before it hands a stopped node's claims to
/// another node (`store.ack_wait_seconds`).
pub const ACK_WAIT_SECONDS: u64 = 2;

/// The `store:` of a workspace on `servers` with `replicas` copies of every stream.
pub fn store(servers: &[String], replicas: usize) -> String {
    let servers = servers.join(", ");
    format!(
        "{{ backend: nats, servers: [{servers}], replicas: {replicas}, ack_wait_seconds: {ACK_WAIT_SECONDS} }}"
    )
}

/// A single JetStream server, or `None` (the test passes with a note) when nats-server is not
/// installed and not required.
pub fn single() -> Option<NatsServer> {
    let binary = ferry_testkit::nats_server()?;
    Some(NatsServer::start(&binary))
}

/// Three JetStream servers routed on loopback, or `None` as for [`single`].
pub fn cluster() -> Option<Cluster> {
    let binary = ferry_testkit::nats_server()?;
    Some(Cluster::start(&binary))
}

/// Another node of `workspace`: the same configuration, its own address and log file.
pub fn node(workspace: &Workspace, name: &str) -> Ferry {
    Ferry::start_with(node_start(workspace, name))
}

/// How [`node`] starts a node.
pub fn node_start(workspace: &Workspace, name: &str) -> Start {
    let mut start = Start::of(workspace);
    start.address = free_address();
    start.log = log_path(workspace.path(), name);
    start
}

fn log_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("ferry-{name}.log"))
}
