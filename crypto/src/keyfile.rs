use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use zeroize::{Zeroize, Zeroizing};

use crate::{PublicKey, SigningKey};

/// A key on disk: JSON with the public key and the secret seed in hex. Written with mode
/// 0600 so only its owner can read it; a file that group or others may read is refused
/// (a key another local user could have copied is not this node's alone any more).
#[derive(Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub algorithm: String,
    pub public_key: PublicKey,
    pub secret_seed: String,
}

impl Drop for KeyFile {
    fn drop(&mut self) {
        self.secret_seed.zeroize();
    }
}

impl std::fmt::Debug for KeyFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyFile")
            .field("algorithm", &self.algorithm)
            .field("public_key", &self.public_key)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    #[error("cannot read key file {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write key file {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("key file {path} already exists; refusing to overwrite a key")]
    Exists { path: PathBuf },
    #[error("key file {path} is not valid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error(
        "key file {path} may be read by group or others (mode {mode:o}); a private key must \
         be readable by its owner only: run `chmod 600 {path}`"
    )]
    Exposed { path: PathBuf, mode: u32 },
}

const ALGORITHM: &str = "ed25519";

/// The permission bits that must be clear on a private key file: every group and other bit.
#[cfg(unix)]
const MODE_NOT_OWNER: u32 = 0o077;

/// The text of a secret file that only its owner may read (unix), wiped from memory when
/// dropped. The mode is checked on the opened file, so the file read is the file checked.
pub(crate) fn read_owner_only(path: &Path) -> Result<Zeroizing<String>, KeyFileError> {
    use std::io::Read;
    let read_err = |source| KeyFileError::Read {
        path: path.to_path_buf(),
        source,
    };
    let mut opened = std::fs::File::open(path).map_err(read_err)?;
    #[cfg(unix)]
    check_owner_only(path, &opened)?;
    let mut text = Zeroizing::new(String::new());
    opened.read_to_string(&mut text).map_err(read_err)?;
    Ok(text)
}

/// Refuses a key file that anyone but its owner may read or write.
#[cfg(unix)]
pub(crate) fn check_owner_only(path: &Path, file: &std::fs::File) -> Result<(), KeyFileError> {
    use std::os::unix::fs::PermissionsExt;
    let mode = file
        .metadata()
        .map_err(|source| KeyFileError::Read {
            path: path.to_path_buf(),
            source,
        })?
        .permissions()
        .mode();
    if mode & MODE_NOT_OWNER != 0 {
        return Err(KeyFileError::Exposed {
            path: path.to_path_buf(),
            mode: mode & 0o777,
        });
    }
    Ok(())
}

impl KeyFile {
    pub fn from_key(key: &SigningKey) -> KeyFile {
        let seed = Zeroizing::new(key.seed());
        KeyFile {
            algorithm: ALGORITHM.to_string(),
            public_key: key.public_key(),
            secret_seed: hex::encode(*seed),
        }
    }

    /// Reads and checks a key file: readable by its owner only (unix), the algorithm, the
    /// seed's length, and that the public key written in the file is the one the seed
    /// gives. The decoded seed and the file's text are wiped from memory afterwards.
    pub fn read(path: &Path) -> Result<SigningKey, KeyFileError> {
        let invalid = |reason: String| KeyFileError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let text = read_owner_only(path)?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if file.algorithm != ALGORITHM {
            return Err(invalid(format!(
                "algorithm is {:?}, expected {ALGORITHM:?}",
                file.algorithm
            )));
        }
        let decoded = Zeroizing::new(
            hex::decode(&file.secret_seed).map_err(|e| invalid(format!("secret_seed: {e}")))?,
        );
        let seed: Zeroizing<[u8; 32]> = Zeroizing::new(
            decoded
                .as_slice()
                .try_into()
                .map_err(|_| invalid("secret_seed must be 32 bytes".to_string()))?,
        );
        let key = SigningKey::from_seed(*seed);
        if key.public_key() != file.public_key {
            return Err(invalid(
                "public_key does not match the secret seed".to_string(),
            ));
        }
        Ok(key)
    }

    /// Writes a new key file; refuses to overwrite an existing one.
    pub fn write_new(key: &SigningKey, path: &Path) -> Result<(), KeyFileError> {
        use std::io::Write;
        let write_err = |source| KeyFileError::Write {
            path: path.to_path_buf(),
            source,
        };
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                KeyFileError::Exists {
                    path: path.to_path_buf(),
                }
            } else {
                write_err(source)
            }
        })?;
        let text = serde_json::to_string_pretty(&KeyFile::from_key(key))
            .map_err(|e| write_err(std::io::Error::other(e)))?;
        file.write_all(text.as_bytes()).map_err(write_err)?;
        file.sync_all().map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn temp_path(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tally-keyfile-{}-{name}", std::process::id()));
        let _ = std::fs::remove_file(&dir);
        dir
    }

    #[test]
    fn write_read_round_trip_and_no_overwrite() {
        let path = temp_path("rt");
        let key = SigningKey::from_seed([9; 32]);
        assert!(KeyFile::write_new(&key, &path).is_ok());
        let back = KeyFile::read(&path).map(|k| k.public_key()).ok();
        assert_eq!(back, Some(key.public_key()));
        assert!(matches!(
            KeyFile::write_new(&key, &path),
            Err(KeyFileError::Exists { .. })
        ));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path)
                .map(|m| m.permissions().mode() & 0o777)
                .ok();
            assert_eq!(mode, Some(0o600));
        }
        let _ = std::fs::remove_file(&path);
    }

    /// Writes `text` to `path` readable by its owner only.
    fn write_private(path: &Path, text: &str) {
        assert!(std::fs::write(path, text).is_ok());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let private = std::fs::Permissions::from_mode(0o600);
            assert!(std::fs::set_permissions(path, private).is_ok());
        }
    }

    #[test]
    fn mismatched_public_key_is_refused() {
        let path = temp_path("mismatch");
        let mut file = KeyFile::from_key(&SigningKey::from_seed([1; 32]));
        file.public_key = SigningKey::from_seed([2; 32]).public_key();
        write_private(&path, &serde_json::to_string(&file).unwrap_or_default());
        assert!(matches!(
            KeyFile::read(&path),
            Err(KeyFileError::Invalid { .. })
        ));
        write_private(&path, "{not json");
        assert!(matches!(
            KeyFile::read(&path),
            Err(KeyFileError::Invalid { .. })
        ));
        let _ = std::fs::remove_file(&path);
    }

    /// Another local user (group or other) who may read a key file may have copied the key:
    /// such a file is refused, with the file and the fix named, whatever the bit.
    #[cfg(unix)]
    #[test]
    fn a_key_file_readable_by_group_or_others_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let path = temp_path("exposed");
        let key = SigningKey::from_seed([5; 32]);
        assert!(KeyFile::write_new(&key, &path).is_ok());
        for mode in [
            0o640,
            0o604,
            0o644,
            0o660,
            0o602,
            0o620,
            0o610,
            0o601,
            0o700 | 0o070,
        ] {
            assert!(std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).is_ok());
            let refused = KeyFile::read(&path);
            let Err(KeyFileError::Exposed {
                path: named,
                mode: seen,
            }) = &refused
            else {
                panic!("mode {mode:o} was not refused: {refused:?}");
            };
            assert_eq!((named, *seen), (&path, mode));
            let message = refused.err().map(|e| e.to_string()).unwrap_or_default();
            assert!(
                message.contains(&format!("chmod 600 {}", path.display())),
                "{message}"
            );
        }
        // Owner-only modes are read.
        for mode in [0o600, 0o400, 0o700] {
            assert!(std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).is_ok());
            let read = KeyFile::read(&path).map(|k| k.public_key()).ok();
            assert_eq!(read, Some(key.public_key()), "mode {mode:o}");
        }
        let _ = std::fs::remove_file(&path);
    }

    #[test]
    fn a_key_file_does_not_print_its_seed() {
        let file = KeyFile::from_key(&SigningKey::from_seed([0xab; 32]));
        assert!(!format!("{file:?}").contains("abab"));
    }
}
