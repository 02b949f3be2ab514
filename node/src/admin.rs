//! The node's admin socket: `admin.sock` in its data directory, how `tally node backup` asks a
//! running node for a backup (the node holds its store open; no other process may).
//!
//! Who may call it: the operator alone, meaning a process of the user the node runs as. The
//! socket is a file (mode 0600) on the node's disk, never on the network, and each connection's
//! peer credentials are checked against the socket's owner besides, so a looser umask or a
//! shared data directory does not open it to another local user. A backup holds every party's
//! records, so nothing else may ask for one; the node's HTTP API has no route to it.
//!
//! One request, `backup\n`; the answer is the backup's bytes (see `storage::backup`) or one
//! line `ERROR reason`.

use std::io::{BufRead, Read, Write};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;
use tracing::{info, warn};

use crate::storage::Storage;
use crate::storage::backup::{self, BackupError, BackupHeader, BackupReader};

/// The socket's name inside the data directory.
pub const ADMIN_SOCKET: &str = "admin.sock";
const REQUEST_BACKUP: &str = "backup";
const REQUEST_BYTES_MAX: u64 = 64;
/// A caller that connects and says nothing is dropped after this.
const REQUEST_WAIT: Duration = Duration::from_secs(5);
const ERROR_PREFIX: &[u8] = b"ERROR ";
/// A caller that stops reading a backup is dropped after this: it would hold the one request
/// slot and a read transaction (which keeps the store from reusing pages) for ever.
const WRITE_STALL: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the admin socket {path}: {source}")]
    Socket {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("the node refused: {0}")]
    Refused(String),
    #[error(transparent)]
    Backup(#[from] BackupError),
}

/// Binds `admin.sock` in `data_dir` (replacing a socket left by an earlier run: the store's
/// lock, taken before this, proves no other node uses the directory).
pub fn bind(data_dir: &Path) -> Result<(UnixListener, u32), AdminError> {
    let path = data_dir.join(ADMIN_SOCKET);
    let socket_error = |source| AdminError::Socket {
        path: path.clone(),
        source,
    };
    match std::fs::remove_file(&path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(socket_error(e)),
    }
    let listener = UnixListener::bind(&path).map_err(socket_error)?;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(socket_error)?;
    let owner = std::fs::metadata(&path).map_err(socket_error)?.uid();
    Ok((listener, owner))
}

/// Answers admin requests until shutdown.
pub async fn serve(
    listener: UnixListener,
    owner: u32,
    storage: Storage,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let stream = tokio::select! {
            _ = shutdown.changed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    warn!(error = %e, "admin socket: accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        // One request at a time: a backup reads the whole store, two at once would only
        // halve each other's speed.
        if let Err(e) = answer(stream, owner, &storage).await {
            warn!(error = %e, "admin socket: request failed");
        }
    }
}

async fn refuse(mut stream: UnixStream, reason: &str) -> std::io::Result<()> {
    stream
        .write_all(format!("ERROR {reason}\n").as_bytes())
        .await?;
    stream.shutdown().await
}

async fn answer(stream: UnixStream, owner: u32, storage: &Storage) -> std::io::Result<()> {
    let caller = stream.peer_cred()?.uid();
    if caller != owner {
        warn!(
            caller,
            owner, "admin socket: a request from another user refused"
        );
        return refuse(stream, "only the node's own user may ask").await;
    }
    let mut reader = tokio::io::BufReader::new(stream);
    let mut line = String::new();
    let read = {
        let mut bounded = tokio::io::AsyncReadExt::take(&mut reader, REQUEST_BYTES_MAX);
        tokio::time::timeout(REQUEST_WAIT, bounded.read_line(&mut line)).await
    };
    let stream = reader.into_inner();
    match read {
        Ok(Ok(_)) if line.trim_end() == REQUEST_BACKUP => {}
        Ok(Ok(_)) => return refuse(stream, "unknown request (the one request is `backup`)").await,
        Ok(Err(e)) => return Err(e),
        Err(_) => return refuse(stream, "no request in time").await,
    }
    match storage.head() {
        Ok(Some(_)) => {}
        Ok(None) => return refuse(stream, &BackupError::NothingCommitted.to_string()).await,
        Err(e) => return refuse(stream, &e.to_string()).await,
    }
    let mut std_stream = stream.into_std()?;
    std_stream.set_nonblocking(false)?;
    std_stream.set_write_timeout(Some(WRITE_STALL))?;
    let storage = storage.clone();
    let written =
        tokio::task::spawn_blocking(move || backup::write(&storage, &mut std_stream, |_, _| {}))
            .await
            .map_err(std::io::Error::other)?;
    match written {
        Ok(header) => {
            info!(
                head = header.head,
                entries = header.entries,
                "backup sent over the admin socket"
            );
            Ok(())
        }
        // Part of the backup may have left: the client's digest check fails on it.
        Err(e) => Err(std::io::Error::other(e)),
    }
}

/// Copies what is read from `from` into `to`.
struct Tee<R, W> {
    from: R,
    to: W,
}

impl<R: Read, W: Write> Read for Tee<R, W> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let n = self.from.read(buffer)?;
        self.to.write_all(buffer.get(..n).unwrap_or_default())?;
        Ok(n)
    }
}

/// Asks the node running on `data_dir` for a backup and writes it to `out`, checking its
/// digest as it arrives. `Ok(None)` when no node answers on the socket (none is running).
pub fn request_backup(
    data_dir: &Path,
    out: impl Write,
    progress: impl FnMut(u64),
    mut started: impl FnMut(&BackupHeader),
) -> Result<Option<BackupHeader>, AdminError> {
    let path = data_dir.join(ADMIN_SOCKET);
    let socket_error = |source| AdminError::Socket {
        path: path.clone(),
        source,
    };
    let mut stream = match std::os::unix::net::UnixStream::connect(&path) {
        Ok(stream) => stream,
        Err(e)
            if matches!(
                e.kind(),
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
            ) =>
        {
            return Ok(None);
        }
        Err(e) => return Err(socket_error(e)),
    };
    stream
        .write_all(format!("{REQUEST_BACKUP}\n").as_bytes())
        .map_err(socket_error)?;
    let mut answer = std::io::BufReader::with_capacity(1 << 20, stream);
    let first = answer.fill_buf().map_err(socket_error)?;
    if first.starts_with(ERROR_PREFIX) {
        let mut line = String::new();
        answer
            .take(1024)
            .read_line(&mut line)
            .map_err(socket_error)?;
        let reason = line
            .trim_end()
            .strip_prefix("ERROR ")
            .unwrap_or(line.trim_end());
        return Err(AdminError::Refused(reason.to_string()));
    }
    let reader = BackupReader::open(Tee {
        from: answer,
        to: out,
    })?;
    started(reader.header());
    Ok(Some(reader.check(progress)?))
}
