//! Node.js scripts the tests run: the real Segment and Amplitude SDKs in `tests/sdk/`.

use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// What one run of a script printed, and how it ended.
pub struct NodeRun {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

/// Runs `node` with `args` in `cwd` and `env`, its output kept in `dir` as `NAME.stdout` and
/// `NAME.stderr`; a run past `timeout` is killed and fails the test with what it printed.
pub fn run(
    name: &str,
    args: &[&str],
    env: &[(&str, &str)],
    cwd: &Path,
    dir: &Path,
    timeout: Duration,
) -> NodeRun {
    let stdout_path = dir.join(format!("{name}.stdout"));
    let stderr_path = dir.join(format!("{name}.stderr"));
    let mut child = Command::new("node")
        .args(args)
        .envs(env.iter().copied())
        .current_dir(cwd)
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout_path).expect("a stdout file"))
        .stderr(std::fs::File::create(&stderr_path).expect("a stderr file"))
        .spawn()
        .expect("node runs (the SDK tests need Node.js on PATH)");
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait().expect("node's status") {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "node {name} did not finish within {timeout:?}; its output:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    NodeRun {
        status,
        stdout: std::fs::read_to_string(&stdout_path).expect("node's stdout"),
        stderr: std::fs::read_to_string(&stderr_path).expect("node's stderr"),
    }
}
