//! Connection gating from a file, for fault tests: the peers listed in the file are cut off
//! (disconnected, refused both ways, their messages dropped) until their line goes away.
//! Lets a test build and heal partitions at run time without root or network namespaces.
//! Only ever configured through `[test_faults]`, which release builds refuse.

use libp2p::PeerId;
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;
use tally_crypto::PublicKey;
use tracing::{info, warn};

use super::identity;

/// How often the file is read.
pub(super) const GATE_POLL_INTERVAL: Duration = Duration::from_millis(200);
/// A larger file is a mistake: it is ignored rather than read.
const GATE_FILE_BYTES_MAX: u64 = 1024 * 1024;

/// The file and what it said when last read.
#[derive(Debug)]
pub(super) struct GateFile {
    path: PathBuf,
    /// The text last read (`None`: no file), so an unchanged file costs no parsing or logs.
    last_text: Option<String>,
}

impl GateFile {
    pub(super) fn new(path: PathBuf) -> GateFile {
        GateFile {
            path,
            last_text: None,
        }
    }

    /// Reads the file; the peers it lists when its contents changed since the last read, or
    /// `None` if nothing changed. A missing file lists nobody.
    pub(super) fn poll(&mut self) -> Option<BTreeSet<PeerId>> {
        let text = match std::fs::metadata(&self.path) {
            Ok(meta) if meta.len() > GATE_FILE_BYTES_MAX => {
                warn!(path = %self.path.display(), "blocked peers file too large; ignored");
                return None;
            }
            Ok(_) => std::fs::read_to_string(&self.path).ok(),
            Err(_) => None,
        };
        if text == self.last_text {
            return None;
        }
        let peers = text.as_deref().map(|t| self.parse(t)).unwrap_or_default();
        info!(path = %self.path.display(), peers = peers.len(), "blocked peers file read");
        self.last_text = text;
        Some(peers)
    }

    fn parse(&self, text: &str) -> BTreeSet<PeerId> {
        let mut peers = BTreeSet::new();
        for line in text.lines() {
            let entry = line.split('#').next().unwrap_or("").trim();
            if entry.is_empty() {
                continue;
            }
            let peer = PublicKey::from_hex(entry)
                .ok()
                .and_then(|key| identity::peer_id(&key).ok())
                .or_else(|| entry.parse::<PeerId>().ok());
            match peer {
                Some(peer) => {
                    peers.insert(peer);
                }
                None => {
                    warn!(path = %self.path.display(), entry, "blocked peers file: not a public key or peer id")
                }
            }
        }
        peers
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_crypto::SigningKey;

    #[test]
    fn lists_keys_and_peer_ids_and_notices_changes() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("blocked");
        let mut gate = GateFile::new(path.clone());
        assert_eq!(gate.poll(), None, "no file, nothing changed");
        let a = SigningKey::from_seed([1; 32]).public_key();
        let b = identity::peer_id(&SigningKey::from_seed([2; 32]).public_key())?;
        std::fs::write(
            &path,
            format!("{}\n# comment\n\n{b}  # b\nnonsense\n", a.to_hex()),
        )?;
        let expected: BTreeSet<PeerId> = [identity::peer_id(&a)?, b].into_iter().collect();
        assert_eq!(gate.poll(), Some(expected));
        assert_eq!(gate.poll(), None, "unchanged");
        std::fs::remove_file(&path)?;
        assert_eq!(gate.poll(), Some(BTreeSet::new()));
        Ok(())
    }
}
