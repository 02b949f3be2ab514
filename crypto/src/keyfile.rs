use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

use crate::{PublicKey, SigningKey};

/// A key on disk: JSON with the public key and the secret seed in hex. Written with mode
/// 0600 so only its owner can read it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyFile {
    pub algorithm: String,
    pub public_key: PublicKey,
    pub secret_seed: String,
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
}

const ALGORITHM: &str = "ed25519";

impl KeyFile {
    pub fn from_key(key: &SigningKey) -> KeyFile {
        KeyFile {
            algorithm: ALGORITHM.to_string(),
            public_key: key.public_key(),
            secret_seed: hex::encode(key.seed()),
        }
    }

    /// Reads and checks a key file: the algorithm, the seed's length, and that the public key
    /// written in the file is the one the seed gives.
    pub fn read(path: &Path) -> Result<SigningKey, KeyFileError> {
        let invalid = |reason: String| KeyFileError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|source| KeyFileError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let file: KeyFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if file.algorithm != ALGORITHM {
            return Err(invalid(format!(
                "algorithm is {:?}, expected {ALGORITHM:?}",
                file.algorithm
            )));
        }
        let seed =
            hex::decode(&file.secret_seed).map_err(|e| invalid(format!("secret_seed: {e}")))?;
        let seed: [u8; 32] = seed
            .try_into()
            .map_err(|_| invalid("secret_seed must be 32 bytes".to_string()))?;
        let key = SigningKey::from_seed(seed);
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

    #[test]
    fn mismatched_public_key_is_refused() {
        let path = temp_path("mismatch");
        let mut file = KeyFile::from_key(&SigningKey::from_seed([1; 32]));
        file.public_key = SigningKey::from_seed([2; 32]).public_key();
        let text = serde_json::to_string(&file).unwrap_or_default();
        assert!(std::fs::write(&path, text).is_ok());
        assert!(matches!(
            KeyFile::read(&path),
            Err(KeyFileError::Invalid { .. })
        ));
        assert!(std::fs::write(&path, "{not json").is_ok());
        assert!(matches!(
            KeyFile::read(&path),
            Err(KeyFileError::Invalid { .. })
        ));
        let _ = std::fs::remove_file(&path);
    }
}
