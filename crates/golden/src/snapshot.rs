//! Snapshot files in insta's format, so `cargo insta review` and `ferry test --accept` manage the
//! same files.

use std::path::{Path, PathBuf};

/// The snapshot file of a case: `<case>.snap` beside it.
pub fn snapshot_path(case: &Path) -> PathBuf {
    case.with_extension("snap")
}

/// The content of a snapshot file (its header removed), or `None` when there is none.
pub fn read_snapshot(path: &Path) -> Option<String> {
    let text = std::fs::read_to_string(path).ok()?;
    let rest = text.strip_prefix("---\n")?;
    let end = rest.find("\n---\n")?;
    Some(rest[end + 5..].trim_end().to_owned())
}

/// Writes `content` as the snapshot of `case`, with the header insta writes.
pub fn write_snapshot(path: &Path, case: &Path, content: &str) -> std::io::Result<()> {
    let input = case.display().to_string().replace('\\', "/");
    let text = format!(
        "---\nsource: ferry test\nexpression: rendered\ninput_file: {input}\n---\n{content}\n"
    );
    std::fs::write(path, text)
}
