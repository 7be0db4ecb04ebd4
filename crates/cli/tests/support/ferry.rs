//! `ferry serve` as a child process: started on a known address and waited for until ready,
//! signalled, killed with SIGKILL, started again on the same store.

use std::fs::{self, File};
use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use super::workspace::{SINK_KEY, Workspace};

/// How long a start may take before the test fails.
const START: Duration = Duration::from_secs(30);

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Start {
    /// The binary: the debug build under test unless a benchmark names the release one.
    pub binary: PathBuf,
    /// The folder it runs in.
    pub dir: PathBuf,
    pub config: PathBuf,
    /// Its stderr is appended here, so that the log of every start of a store stays readable.
    pub log: PathBuf,
    pub address: SocketAddr,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    /// `RUST_LOG` of the process.
    pub log_level: String,
    /// It serves HTTPS: ready once it says it listens (a plain `/readyz` cannot reach it).
    pub https: bool,
}

impl Start {
    /// The server of `workspace`, on a free port, with its connection key in the environment.
    pub fn of(workspace: &Workspace) -> Start {
        Start {
            binary: PathBuf::from(env!("CARGO_BIN_EXE_ferry")),
            dir: workspace.path().to_path_buf(),
            config: workspace.config.clone(),
            log: workspace.path().join("ferry.log"),
            address: free_address(),
            args: Vec::new(),
            env: vec![("SINK_KEY".to_owned(), SINK_KEY.to_owned())],
            log_level: "info".to_owned(),
            https: false,
        }
    }

    #[must_use]
    pub fn arg(mut self, arg: &str) -> Start {
        self.args.push(arg.to_owned());
        self
    }

    #[must_use]
    pub fn env(mut self, name: &str, value: &str) -> Start {
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A running `ferry serve`, killed with SIGKILL when dropped.
pub struct Ferry {
    child: Child,
    start: Start,
    /// Where this process's part of the log begins.
    log_from: u64,
    pub address: SocketAddr,
    /// `http://ADDRESS`.
    pub url: String,
}

impl Ferry {
    /// Starts the server of `workspace` and waits until it is ready.
    pub fn start(workspace: &Workspace) -> Ferry {
        Ferry::start_with(Start::of(workspace))
    }

    /// Starts `ferry serve --config CONFIG --listen ADDRESS ARGS...` and waits until `/readyz`
    /// answers 200. Panics with the log if the process exits first or takes too long.
    pub fn start_with(start: Start) -> Ferry {
        let mut log = File::options()
            .create(true)
            .append(true)
            .open(&start.log)
            .expect("the log file opens");
        let log_from = log.metadata().map_or(0, |m| m.len());
        let _ = writeln!(log, "==== ferry serve on {}", start.address);
        let child = Command::new(&start.binary)
            .arg("serve")
            .arg("--config")
            .arg(&start.config)
            .arg("--listen")
            .arg(start.address.to_string())
            .args(&start.args)
            .envs(start.env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", &start.log_level)
            .current_dir(&start.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("ferry serve starts");
        let address = start.address;
        let mut ferry = Ferry {
            child,
            start,
            log_from,
            address,
            url: format!("http://{address}"),
        };
        let deadline = Instant::now() + START;
        while !ferry.ready() {
            if let Some(status) = ferry.child.try_wait().expect("the child can be polled") {
                panic!(
                    "ferry serve exited with {status} before it was ready:\n{}",
                    ferry.log()
                );
            }
            assert!(
                Instant::now() < deadline,
                "ferry serve was not ready within {START:?}:\n{}",
                ferry.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        ferry
    }

    fn ready(&self) -> bool {
        if self.start.https {
            self.log().contains("listening on https://")
        } else {
            ready(self.address)
        }
    }

    /// Starts the same server again, on the same address and store, after a kill or a stop.
    pub fn start_again(start: &Start) -> Ferry {
        Ferry::start_with(start.clone())
    }

    /// How this server was started, to start it again.
    pub fn how(&self) -> &Start {
        &self.start
    }

    /// What this process has logged so far.
    pub fn log(&self) -> String {
        let mut text = String::new();
        if let Ok(mut file) = File::open(&self.start.log) {
            let _ = file.read_to_string(&mut text);
        }
        let from = usize::try_from(self.log_from).unwrap_or(0).min(text.len());
        text.split_off(from)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends `signal` (`TERM`, `HUP`, ...) to the process.
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{signal} failed");
    }

    /// SIGKILL: no shutdown, no drain, no last commit. Answers how to start it again.
    pub fn kill(mut self) -> Start {
        self.kill_now();
        self.start.clone()
    }

    fn kill_now(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (at most 30 s) for the exit; the status and the log.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        self.signal("TERM");
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("the status") {
                return (status, self.log());
            }
            assert!(
                Instant::now() < deadline,
                "ferry serve did not stop:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().ok().flatten().is_none()
    }

    /// The peak resident set size (`VmHWM`) in bytes.
    pub fn peak_rss(&self) -> Option<u64> {
        let status = fs::read_to_string(format!("/proc/{}/status", self.pid())).ok()?;
        let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    }

    /// One series' value from `/metrics`, named with its labels as printed
    /// (`ferry_queue_depth{connection="sink",state="pending"}`).
    pub fn metric<T: std::str::FromStr>(&self, series: &str) -> Option<T> {
        let (_, text) = super::client::http("GET", &format!("{}/metrics", self.url), &[], "");
        text.lines()
            .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        self.kill_now();
    }
}

/// A port nobody listens on now, so that a server can be started on it (and again after a
/// kill).
pub fn free_address() -> SocketAddr {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
}

/// `GET /readyz` answers 200: the workers run and events are accepted.
fn ready(address: SocketAddr) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&address, Duration::from_millis(200)) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(2)));
    let request = "GET /readyz HTTP/1.1\r\nHost: ferry\r\nConnection: close\r\n\r\n";
    if stream.write_all(request.as_bytes()).is_err() {
        return false;
    }
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    answer.starts_with(b"HTTP/1.1 200")
}

/// The path of the `ferry` binary the tests run.
pub fn binary() -> &'static Path {
    Path::new(env!("CARGO_BIN_EXE_ferry"))
}
