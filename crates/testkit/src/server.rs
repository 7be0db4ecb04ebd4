//! `nats-server` processes on loopback, killed with SIGKILL when dropped.

use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a server may take to answer its health check.
const READY: Duration = Duration::from_secs(30);

/// One `nats-server` with JetStream, its store in a folder of its own.
pub struct NatsServer {
    binary: PathBuf,
    args: Vec<String>,
    /// `GOMAXPROCS` for the process, when it shares the machine with other servers.
    go_threads: Option<usize>,
    name: String,
    log: PathBuf,
    child: Option<Child>,
    /// The client port.
    pub port: u16,
    /// The monitoring port (`/healthz`, `/jsz`).
    pub monitor: u16,
    /// The cluster port, for a member of a cluster.
    pub cluster: Option<u16>,
    /// The temporary folder of a lone server, removed with it.
    dir: Option<tempfile::TempDir>,
}

impl NatsServer {
    /// Starts a single JetStream server with a store in a new temporary folder, and waits until
    /// it is healthy.
    pub fn start(binary: &Path) -> NatsServer {
        NatsServer::start_with(binary, &[])
    }

    /// [`NatsServer::start`] with more command-line options (say `--user U --pass P`).
    pub fn start_with(binary: &Path, extra: &[&str]) -> NatsServer {
        on_free_ports("nats-server n1", || {
            let dir = tempfile::tempdir().expect("a temporary folder");
            let mut server = NatsServer::new(binary, "n1", dir.path(), None);
            server
                .args
                .extend(extra.iter().map(|arg| (*arg).to_owned()));
            server.dir = Some(dir);
            server.spawn();
            server.try_ready().map(|()| server)
        })
    }

    fn new(binary: &Path, name: &str, dir: &Path, cluster: Option<(u16, &str)>) -> NatsServer {
        let (port, monitor) = (free_port(), free_port());
        let store = dir.join(name);
        std::fs::create_dir_all(&store).expect("the store folder");
        let mut args = vec![
            "-js".to_owned(),
            "-sd".to_owned(),
            store.display().to_string(),
            "-a".to_owned(),
            "127.0.0.1".to_owned(),
            "-p".to_owned(),
            port.to_string(),
            "-m".to_owned(),
            monitor.to_string(),
            "-n".to_owned(),
            name.to_owned(),
        ];
        if let Some((cluster_port, routes)) = cluster {
            args.extend([
                "--cluster_name".to_owned(),
                "ferry-test".to_owned(),
                "--cluster".to_owned(),
                format!("nats://127.0.0.1:{cluster_port}"),
                "--routes".to_owned(),
                routes.to_owned(),
            ]);
        }
        NatsServer {
            binary: binary.to_path_buf(),
            args,
            go_threads: None,
            name: name.to_owned(),
            log: dir.join(format!("{name}.log")),
            child: None,
            port,
            monitor,
            cluster: cluster.map(|(port, _)| port),
            dir: None,
        }
    }

    fn spawn(&mut self) {
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("the server log opens");
        let mut command = Command::new(&self.binary);
        if let Some(threads) = self.go_threads {
            command.env("GOMAXPROCS", threads.to_string());
        }
        let child = command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("nats-server starts");
        self.child = Some(child);
    }

    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The server's process id, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: the process stops at once, without a shutdown.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the process again with the same ports and store (after [`NatsServer::kill`]),
    /// and waits until it answers its health check.
    pub fn restart(&mut self) {
        self.kill();
        self.spawn();
        self.wait_ready();
    }

    /// Whether `GET /healthz?js-enabled-only=true` answers 200.
    pub fn healthy(&self) -> bool {
        http_status(self.monitor, "/healthz?js-enabled-only=true") == Some(200)
    }

    fn wait_ready(&mut self) {
        if let Err(log) = self.try_ready() {
            panic!("nats-server {} exited:\n{log}", self.name);
        }
    }

    /// Waits until the server is healthy; its log when it exits first.
    fn try_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + READY;
        while !self.healthy() {
            if let Some(child) = &mut self.child
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!("exit {status}\n{}", self.log_text()));
            }
            assert!(
                Instant::now() < deadline,
                "nats-server {} was not healthy within {READY:?}:\n{}",
                self.name,
                self.log_text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// What the server logged.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Three `nats-server`s routed to each other on loopback, each with JetStream and its own
/// store, so that streams may have three replicas.
pub struct Cluster {
    pub servers: Vec<NatsServer>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// Starts three servers and waits until each is healthy and JetStream has a meta leader.
    pub fn start(binary: &Path) -> Cluster {
        let cluster = on_free_ports("a nats-server of the cluster", || {
            Cluster::try_start(binary)
        });
        cluster.wait_for_leader();
        cluster
    }

    /// Starts three servers on free ports and waits until each is healthy; the log of one that
    /// exits first (the others are stopped as the cluster is dropped).
    fn try_start(binary: &Path) -> Result<Cluster, String> {
        let dir = tempfile::tempdir().expect("a temporary folder");
        let cluster_ports: Vec<u16> = (0..3).map(|_| free_port()).collect();
        let routes = cluster_ports
            .iter()
            .map(|port| format!("nats://127.0.0.1:{port}"))
            .collect::<Vec<_>>()
            .join(",");
        let servers: Vec<NatsServer> = cluster_ports
            .iter()
            .enumerate()
            .map(|(i, port)| {
                NatsServer::new(
                    binary,
                    &format!("n{}", i + 1),
                    dir.path(),
                    Some((*port, &routes)),
                )
            })
            .collect();
        let mut cluster = Cluster { servers, _dir: dir };
        // Three servers on one machine: each Go runtime sized to its share of the cores, as it
        // would be on a machine of its own, instead of three runtimes each running a thread
        // per core and preempting one another.
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        for server in &mut cluster.servers {
            server.go_threads = Some((cores / 3).max(1));
            server.spawn();
        }
        for server in &mut cluster.servers {
            server.try_ready()?;
        }
        Ok(cluster)
    }

    /// Every client URL, comma-separated, as a client's server list.
    pub fn urls(&self) -> Vec<String> {
        self.servers.iter().map(NatsServer::url).collect()
    }

    /// Waits until every running server names the same JetStream meta leader.
    pub fn wait_for_leader(&self) {
        let deadline = Instant::now() + READY;
        loop {
            let leaders: Vec<Option<String>> = self
                .servers
                .iter()
                .filter(|s| s.child.is_some())
                .map(|s| meta_leader(s.monitor))
                .collect();
            if leaders.iter().all(Option::is_some) && leaders.windows(2).all(|w| w[0] == w[1]) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the cluster has no JetStream meta leader within {READY:?}: {leaders:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How many times a server (or a cluster) is started on fresh ports when a port that was free
/// when chosen was taken before the server could listen on it: another test process, running
/// at the same time, chose it too.
const PORT_TRIES: usize = 3;

/// Runs `start` (which picks free ports each time) until it succeeds, again only when a server
/// exited because it lost a port ("address already in use"), at most [`PORT_TRIES`] times.
fn on_free_ports<T>(what: &str, mut start: impl FnMut() -> Result<T, String>) -> T {
    let mut attempt = 1;
    loop {
        match start() {
            Ok(started) => return started,
            Err(log) if log.contains("address already in use") && attempt < PORT_TRIES => {
                attempt += 1;
            }
            Err(log) => panic!("{what} exited:\n{log}"),
        }
    }
}

/// The name of the JetStream meta leader a server knows, from `/jsz`.
fn meta_leader(monitor: u16) -> Option<String> {
    let body = http_get(monitor, "/jsz")?;
    let at = body.find("\"meta_cluster\"")?;
    let rest = &body[at..];
    let leader = rest.find("\"leader\"")?;
    let value = rest[leader + "\"leader\"".len()..].trim_start_matches([':', ' ']);
    let value = value.strip_prefix('"')?;
    let end = value.find('"')?;
    Some(value[..end].to_owned()).filter(|name| !name.is_empty())
}

/// A port nobody listens on now.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port()
}

fn http_status(port: u16, path: &str) -> Option<u16> {
    let response = http(port, path)?;
    response.split_whitespace().nth(1)?.parse().ok()
}

fn http_get(port: u16, path: &str) -> Option<String> {
    let response = http(port, path)?;
    (response.split_whitespace().nth(1)? == "200")
        .then(|| response.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()))
        .flatten()
}

fn http(port: u16, path: &str) -> Option<String> {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    Some(response)
}
