//! The identity secret: the key under which a person's name, ID number or phone becomes the
//! digest the ledger keeps.
//!
//! Keyed, because an unkeyed digest of an ID number is reversible by guessing: an 18-digit
//! ID number has about 10^11 plausible values, a phone number about 10^9, and anyone who
//! reads a digest (from the chain, the API, a validator's disk) could hash every candidate
//! and find the person. With a 32-byte secret (blake3's keyed hash) a guess cannot be checked
//! without the secret. The KYC institutions and the regulator hold the same secret, so one
//! person gets one digest at every bank and the regulator's sanctions list matches it. The
//! secret is never on chain, never served by the API, never in a validator's data directory.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use zeroize::{Zeroize, Zeroizing};

use crate::Hash;
use crate::keyfile::{KeyFileError, read_owner_only};

const PURPOSE: &str = "tally-identity-secret";

/// The secret; wiped from memory when dropped, left out of `Debug`.
pub struct IdentitySecret(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for IdentitySecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentitySecret(..)")
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SecretFile {
    purpose: String,
    secret: String,
}

impl Drop for SecretFile {
    fn drop(&mut self) {
        self.secret.zeroize();
    }
}

impl IdentitySecret {
    pub fn from_bytes(bytes: [u8; 32]) -> IdentitySecret {
        IdentitySecret(Zeroizing::new(bytes))
    }

    /// The digest of `text` under `domain` (what kind of identity it is), keyed with the
    /// secret.
    pub fn digest(&self, domain: &str, text: &[u8]) -> Hash {
        let mut hasher = blake3::Hasher::new_keyed(&self.0);
        hasher.update(&(domain.len() as u64).to_le_bytes());
        hasher.update(domain.as_bytes());
        hasher.update(text);
        Hash(*hasher.finalize().as_bytes())
    }

    /// Reads a secret file: readable by its owner only (unix), JSON with the purpose and
    /// the secret in hex; the file's text and the decoded bytes are wiped after reading.
    pub fn read(path: &Path) -> Result<IdentitySecret, KeyFileError> {
        let invalid = |reason: String| KeyFileError::Invalid {
            path: path.to_path_buf(),
            reason,
        };
        let text = read_owner_only(path)?;
        let file: SecretFile = serde_json::from_str(&text).map_err(|e| invalid(e.to_string()))?;
        if file.purpose != PURPOSE {
            return Err(invalid(format!(
                "purpose is {:?}, expected {PURPOSE:?}",
                file.purpose
            )));
        }
        let decoded =
            Zeroizing::new(hex::decode(&file.secret).map_err(|e| invalid(format!("secret: {e}")))?);
        let bytes: [u8; 32] = decoded
            .as_slice()
            .try_into()
            .map_err(|_| invalid("secret must be 32 bytes".to_string()))?;
        Ok(IdentitySecret::from_bytes(bytes))
    }

    /// Writes a new secret file with mode 0600; refuses to overwrite an existing one.
    pub fn write_new(&self, path: &Path) -> Result<(), KeyFileError> {
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
                    path: PathBuf::from(path),
                }
            } else {
                write_err(source)
            }
        })?;
        let text = Zeroizing::new(
            serde_json::to_string_pretty(&SecretFile {
                purpose: PURPOSE.to_string(),
                secret: hex::encode(*self.0),
            })
            .map_err(|e| write_err(std::io::Error::other(e)))?,
        );
        file.write_all(text.as_bytes()).map_err(write_err)?;
        file.sync_all().map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID_NUMBER: &[u8] = b"110101199003077777";

    #[test]
    fn the_keyed_digest_is_no_unkeyed_hash_and_the_same_for_every_holder() {
        let secret = IdentitySecret::from_bytes([7; 32]);
        let keyed = secret.digest("tally-identity", ID_NUMBER);
        for unkeyed in [
            Hash(*blake3::hash(ID_NUMBER).as_bytes()),
            Hash::digest("tally-identity", ID_NUMBER),
            Hash::digest("tally-devnet-identity", ID_NUMBER),
            Hash(*blake3::keyed_hash(&[0; 32], ID_NUMBER).as_bytes()),
        ] {
            assert_ne!(keyed, unkeyed);
        }
        // Another holder of the same secret (another bank, the regulator) gets the same.
        let copy = IdentitySecret::from_bytes([7; 32]);
        assert_eq!(copy.digest("tally-identity", ID_NUMBER), keyed);
        assert_ne!(
            IdentitySecret::from_bytes([8; 32]).digest("tally-identity", ID_NUMBER),
            keyed
        );
        assert_ne!(secret.digest("tally-phone", ID_NUMBER), keyed);
    }

    #[test]
    fn a_secret_file_is_owner_only_and_reads_back() {
        let path =
            std::env::temp_dir().join(format!("tally-identity-secret-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let secret = IdentitySecret::from_bytes([9; 32]);
        secret.write_new(&path).unwrap();
        assert!(matches!(
            secret.write_new(&path),
            Err(KeyFileError::Exists { .. })
        ));
        let back = IdentitySecret::read(&path).unwrap();
        assert_eq!(back.digest("d", b"x"), secret.digest("d", b"x"));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
            assert!(matches!(
                IdentitySecret::read(&path),
                Err(KeyFileError::Exposed { .. })
            ));
        }
        let _ = std::fs::remove_file(&path);
    }
}
