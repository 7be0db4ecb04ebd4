//! The store in the data folder. Its files hold users' events and destinations' responses, so
//! the folder is created readable by its owner only (0700) and the files 0600, whatever the
//! umask; files an older ferry created more openly are tightened when opened.

use std::path::Path;
use std::time::Duration;

use std::sync::Arc;

use ferry_queue::{NatsQueue, Queue, SqliteOptions, SqliteQueue};
use ferry_spec::config::Synchronous;

use crate::error::StoreError;
use crate::setup::{Setup, StoreSetup};

/// The store's file name inside the data folder.
pub const STORE_FILE: &str = "ferry.sqlite";

/// Opens the queue `store` names: the SQLite file in `data_dir`, or NATS JetStream. With a
/// `setup`, its SQLite options apply.
pub async fn open_queue_at(
    store: &StoreSetup,
    data_dir: &Path,
    setup: Option<&Setup>,
) -> Result<Arc<dyn Queue>, StoreError> {
    match store {
        StoreSetup::Sqlite => Ok(Arc::new(open_store(data_dir, setup)?)),
        StoreSetup::Nats(options) => {
            tracing::info!(servers = %options.servers_shown(), "the queue is in NATS JetStream");
            Ok(Arc::new(NatsQueue::connect(options.clone()).await?))
        }
    }
}

/// Opens the queue of `setup`.
pub(crate) async fn open_queue(setup: &Setup) -> Result<Arc<dyn Queue>, StoreError> {
    open_queue_at(&setup.store, &setup.data_dir, Some(setup)).await
}

/// Opens the SQLite store in `data_dir`, creating the folder. With a `setup`, its store options
/// apply; without (`ferry dlq`), the defaults.
pub(crate) fn open_store(
    data_dir: &Path,
    setup: Option<&Setup>,
) -> Result<SqliteQueue, StoreError> {
    private_folder(data_dir)?;
    let file = data_dir.join(STORE_FILE);
    for path in [
        file.clone(),
        data_dir.join(format!("{STORE_FILE}-wal")),
        data_dir.join(format!("{STORE_FILE}-shm")),
    ] {
        private_file(&path, path == file)?;
    }
    let mut options = SqliteOptions::default();
    if let Some(setup) = setup {
        options.synchronous_full = setup.config.store.synchronous == Synchronous::Full;
        options.dedupe_window =
            Duration::from_secs(u64::from(setup.config.store.dedupe_hours) * 3600);
    }
    // SQLite gives its journal files the database file's permissions.
    Ok(SqliteQueue::open(&file, options)?)
}

/// Creates `dir` (and its parents) readable by its owner only.
pub(crate) fn private_folder(dir: &Path) -> Result<(), StoreError> {
    let fail = |source| StoreError::Folder {
        path: dir.to_path_buf(),
        source,
    };
    if dir.is_dir() {
        return Ok(());
    }
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir).map_err(fail)
}

/// Makes `path` readable by its owner only: tightens it when it exists, or creates it empty
/// with those permissions when `create` says so.
pub(crate) fn private_file(path: &Path, create: bool) -> Result<(), StoreError> {
    let fail = |source| StoreError::Permissions {
        path: path.to_path_buf(),
        source,
    };
    #[cfg(unix)]
    {
        use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
        match std::fs::metadata(path) {
            Ok(meta) if meta.permissions().mode() & 0o077 != 0 => {
                std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))
                    .map_err(fail)?;
            }
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && create => {
                std::fs::OpenOptions::new()
                    .write(true)
                    .create(true)
                    .truncate(false)
                    .mode(0o600)
                    .open(path)
                    .map_err(fail)?;
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(fail(e)),
        }
    }
    #[cfg(not(unix))]
    let _ = (path, create, fail);
    Ok(())
}

#[cfg(all(test, unix))]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn the_store_is_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        let queue = open_store(&data, None).unwrap();
        // A commit creates the WAL and shared-memory files.
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(ferry_queue::Queue::declare(
                &queue,
                vec![("c".to_owned(), "s".to_owned())],
            ))
            .unwrap();
        assert_eq!(mode(&data), 0o700);
        for name in [STORE_FILE, "ferry.sqlite-wal", "ferry.sqlite-shm"] {
            assert_eq!(mode(&data.join(name)), 0o600, "{name}");
        }
    }

    #[test]
    fn files_made_readable_by_others_are_tightened() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join(STORE_FILE);
        std::fs::write(&file, b"").unwrap();
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o644)).unwrap();
        drop(open_store(dir.path(), None).unwrap());
        assert_eq!(mode(&file), 0o600);
    }
}
