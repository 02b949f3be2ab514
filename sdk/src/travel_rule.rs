//! Travel-rule data, sealed by the sender's client and opened by the institutions it is for.
//!
//! HPKE (RFC 9180) base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305,
//! from the `hpke` crate: one sealed copy per recipient (the beneficiary's institution, a
//! regulator), each to the X25519 key that institution registered on the chain. The ledger
//! only checks who the copies are for; it never holds a key that opens them.
//!
//! An institution's X25519 key pair lives in a key file of its own (JSON, mode 0600, like
//! the ed25519 key files): `tally institution set-encryption-key` makes one and registers
//! its public half; `tally travel-rule open` reads the secret half.

use std::path::{Path, PathBuf};

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};
use tally_contracts::{
    AccountId, EncryptionKey, InstitutionId, SealedTravelRule, TRAVEL_RULE_CIPHERTEXT_BYTES_MAX,
    TransferId,
};
use zeroize::{Zeroize, Zeroizing};

type Kem = X25519HkdfSha256;

/// The AEAD tag ChaCha20-Poly1305 adds to every ciphertext.
const TAG_BYTES: usize = 16;
/// The most plaintext one sealed copy can carry: the ledger's bound less the tag.
pub const PLAINTEXT_BYTES_MAX: usize = TRAVEL_RULE_CIPHERTEXT_BYTES_MAX - TAG_BYTES;
/// Names this construction in HPKE's `info`, so a key schedule for anything else differs.
const INFO_LABEL: &[u8] = b"tally travel-rule v1";
const KEY_FILE_ALGORITHM: &str = "x25519";

/// What went wrong sealing or opening travel-rule data, or with an encryption key file.
#[derive(Debug, thiserror::Error)]
pub enum TravelRuleError {
    #[error("the travel-rule data is {0} bytes; one sealed copy carries at most {max}", max = PLAINTEXT_BYTES_MAX)]
    TooLong(usize),
    #[error("institution {0}'s registered encryption key is not a usable X25519 key")]
    BadRecipientKey(u32),
    #[error("sealing failed: {0}")]
    Seal(String),
    #[error(
        "this key does not open the copy sealed to institution {0}: the key file is not that \
         institution's registered encryption key, or the copy was altered or belongs to \
         another transfer"
    )]
    CannotOpen(u32),
    #[error("the opened copy is not travel-rule data: {0}")]
    NotTravelRuleData(String),
    #[error("encryption key file {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error("not an X25519 secret key: {0}")]
    BadSecretKey(String),
    #[error("no OS randomness for a new key: {0}")]
    Randomness(String),
}

/// One side of a cross-border transfer as the travel rule names it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartyDetails {
    pub name: String,
    /// The account as the institutions know it (the ledger account id, or an IBAN).
    pub account: String,
    pub address: String,
}

/// What travels sealed with a cross-border transfer above the governance threshold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TravelRuleData {
    pub originator: PartyDetails,
    pub beneficiary: PartyDetails,
}

/// The transfer a sealed copy belongs to. It goes into HPKE's `info` (the chain) and `aad`
/// (the transfer, both accounts and the recipient), so a copy lifted from one transfer and
/// attached to another — or replayed on another chain, or relabelled for another recipient
/// — fails to open instead of telling the reader false facts about that transfer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub chain_id: String,
    pub transfer: TransferId,
    pub sender: AccountId,
    pub beneficiary: AccountId,
}

impl Binding {
    fn info(&self) -> Vec<u8> {
        let mut info = INFO_LABEL.to_vec();
        info.push(0);
        info.extend_from_slice(self.chain_id.as_bytes());
        info
    }

    fn aad(&self, recipient: InstitutionId) -> Vec<u8> {
        let mut aad = Vec::with_capacity(52);
        aad.extend_from_slice(&self.transfer.0.to_be_bytes());
        aad.extend_from_slice(&self.sender.0.to_be_bytes());
        aad.extend_from_slice(&self.beneficiary.0.to_be_bytes());
        aad.extend_from_slice(&recipient.0.to_be_bytes());
        aad
    }
}

/// Seals `data` to `recipient` under its registered `key`, bound to `binding`.
pub fn seal(
    data: &TravelRuleData,
    recipient: InstitutionId,
    key: EncryptionKey,
    binding: &Binding,
) -> Result<SealedTravelRule, TravelRuleError> {
    let plaintext =
        Zeroizing::new(serde_json::to_vec(data).map_err(|e| TravelRuleError::Seal(e.to_string()))?);
    if plaintext.len() > PLAINTEXT_BYTES_MAX {
        return Err(TravelRuleError::TooLong(plaintext.len()));
    }
    let public = <Kem as hpke::Kem>::PublicKey::from_bytes(&key.0)
        .map_err(|_| TravelRuleError::BadRecipientKey(recipient.0))?;
    // The ephemeral key comes from the OS random source (the crate's `getrandom` feature).
    let (encapsulated, ciphertext) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &public,
        &binding.info(),
        &plaintext,
        &binding.aad(recipient),
    )
    .map_err(|e| TravelRuleError::Seal(e.to_string()))?;
    let encapsulated: [u8; 32] = encapsulated
        .to_bytes()
        .as_slice()
        .try_into()
        .map_err(|_| TravelRuleError::Seal("an encapsulated key of another size".into()))?;
    Ok(SealedTravelRule {
        recipient,
        key,
        encapsulated,
        ciphertext,
    })
}

/// Opens `copy` with `secret`: the data, if `secret` is the key it was sealed to and the
/// copy is unaltered and belongs to `binding`'s transfer.
pub fn open(
    copy: &SealedTravelRule,
    secret: &SecretKey,
    binding: &Binding,
) -> Result<TravelRuleData, TravelRuleError> {
    let cannot = || TravelRuleError::CannotOpen(copy.recipient.0);
    let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(secret.bytes.as_slice())
        .map_err(|_| cannot())?;
    let encapsulated =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(&copy.encapsulated).map_err(|_| cannot())?;
    let plaintext = Zeroizing::new(
        hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
            &OpModeR::Base,
            &private,
            &encapsulated,
            &binding.info(),
            &copy.ciphertext,
            &binding.aad(copy.recipient),
        )
        .map_err(|_| cannot())?,
    );
    serde_json::from_slice(&plaintext)
        .map_err(|e| TravelRuleError::NotTravelRuleData(e.to_string()))
}

/// An institution's X25519 secret key, wiped when dropped.
pub struct SecretKey {
    bytes: Zeroizing<[u8; 32]>,
    public: EncryptionKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey(public {})", self.public.to_hex())
    }
}

impl SecretKey {
    /// A new key pair from the OS random source.
    pub fn generate() -> Result<SecretKey, TravelRuleError> {
        let mut ikm = Zeroizing::new([0u8; 32]);
        getrandom::fill(ikm.as_mut_slice())
            .map_err(|e| TravelRuleError::Randomness(e.to_string()))?;
        let (private, _) = Kem::derive_keypair(ikm.as_slice());
        let mut bytes = Zeroizing::new([0u8; 32]);
        bytes.copy_from_slice(private.to_bytes().as_slice());
        SecretKey::from_bytes(bytes)
    }

    fn from_bytes(bytes: Zeroizing<[u8; 32]>) -> Result<SecretKey, TravelRuleError> {
        let private = <Kem as hpke::Kem>::PrivateKey::from_bytes(bytes.as_slice())
            .map_err(|e| TravelRuleError::BadSecretKey(e.to_string()))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(Kem::sk_to_pk(&private).to_bytes().as_slice());
        Ok(SecretKey {
            bytes,
            public: EncryptionKey(public),
        })
    }

    /// The public half, as the institution registers it.
    pub fn public(&self) -> EncryptionKey {
        self.public
    }

    /// Writes a new key file (never over an existing one), readable by its owner only.
    pub fn write_new(&self, path: &Path) -> Result<(), TravelRuleError> {
        use std::io::Write;
        let fail = |detail: String| TravelRuleError::KeyFile {
            path: path.to_path_buf(),
            detail,
        };
        let mut file_json = KeyFileJson {
            algorithm: KEY_FILE_ALGORITHM.to_string(),
            public_key: self.public.to_hex(),
            secret_key: hex::encode(self.bytes.as_slice()),
        };
        let text = Zeroizing::new(
            serde_json::to_string_pretty(&file_json).map_err(|e| fail(e.to_string()))?,
        );
        file_json.secret_key.zeroize();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|e| fail(e.to_string()))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.write_all(b"\n"))
            .and_then(|()| file.sync_all())
            .map_err(|e| fail(e.to_string()))
    }

    /// Reads a key file, refusing one that group or others may read, and one whose public
    /// key does not match its secret.
    pub fn read(path: &Path) -> Result<SecretKey, TravelRuleError> {
        let fail = |detail: String| TravelRuleError::KeyFile {
            path: path.to_path_buf(),
            detail,
        };
        let metadata = std::fs::metadata(path).map_err(|e| fail(e.to_string()))?;
        if metadata.len() > 4_096 {
            return Err(fail("larger than any key file".into()));
        }
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = metadata.permissions().mode();
            if mode & 0o077 != 0 {
                return Err(fail(format!(
                    "may be read by group or others (mode {:o}); a secret key must be readable \
                     by its owner only: run `chmod 600 {}`",
                    mode & 0o777,
                    path.display()
                )));
            }
        }
        let text = Zeroizing::new(std::fs::read_to_string(path).map_err(|e| fail(e.to_string()))?);
        let mut file: KeyFileJson =
            serde_json::from_str(&text).map_err(|e| fail(format!("not a key file: {e}")))?;
        if file.algorithm != KEY_FILE_ALGORITHM {
            return Err(fail(format!(
                "an {} key, not an {KEY_FILE_ALGORITHM} encryption key",
                file.algorithm
            )));
        }
        let mut bytes = Zeroizing::new([0u8; 32]);
        let decoded = Zeroizing::new(hex::decode(file.secret_key.trim()).unwrap_or_default());
        file.secret_key.zeroize();
        if decoded.len() != 32 {
            return Err(fail("secret_key: 64 hex digits expected".into()));
        }
        bytes.copy_from_slice(&decoded);
        let key =
            SecretKey::from_bytes(bytes).map_err(|_| fail("not an X25519 secret key".into()))?;
        if EncryptionKey::from_hex(file.public_key.trim()) != Some(key.public) {
            return Err(fail("public_key is not the secret key's".into()));
        }
        Ok(key)
    }
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFileJson {
    algorithm: String,
    public_key: String,
    secret_key: String,
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn data() -> TravelRuleData {
        TravelRuleData {
            originator: PartyDetails {
                name: "Alice Wang".into(),
                account: "1001".into(),
                address: "1 Century Avenue, Shanghai".into(),
            },
            beneficiary: PartyDetails {
                name: "Chen Ho".into(),
                account: "2001".into(),
                address: "8 Queen's Road, Hong Kong".into(),
            },
        }
    }

    fn binding() -> Binding {
        Binding {
            chain_id: "tally-test".into(),
            transfer: TransferId(77),
            sender: AccountId(1001),
            beneficiary: AccountId(2001),
        }
    }

    #[test]
    fn a_sealed_copy_opens_with_its_recipients_key_only() {
        let bank = SecretKey::generate().unwrap();
        let other = SecretKey::generate().unwrap();
        let copy = seal(&data(), InstitutionId(2), bank.public(), &binding()).unwrap();
        assert_eq!(copy.recipient, InstitutionId(2));
        assert!(copy.ciphertext.len() <= TRAVEL_RULE_CIPHERTEXT_BYTES_MAX);
        assert_eq!(open(&copy, &bank, &binding()).unwrap(), data());
        assert!(matches!(
            open(&copy, &other, &binding()),
            Err(TravelRuleError::CannotOpen(2))
        ));
    }

    #[test]
    fn an_altered_or_moved_copy_does_not_open() {
        let bank = SecretKey::generate().unwrap();
        let copy = seal(&data(), InstitutionId(2), bank.public(), &binding()).unwrap();
        let mut tampered = copy.clone();
        if let Some(byte) = tampered.ciphertext.first_mut() {
            *byte ^= 1;
        }
        assert!(open(&tampered, &bank, &binding()).is_err());
        let mut encap = copy.clone();
        encap.encapsulated[0] ^= 1;
        assert!(open(&encap, &bank, &binding()).is_err());
        // Attached to another transfer, another chain, or relabelled for another recipient.
        let other_transfer = Binding {
            transfer: TransferId(78),
            ..binding()
        };
        assert!(open(&copy, &bank, &other_transfer).is_err());
        let other_chain = Binding {
            chain_id: "tally-other".into(),
            ..binding()
        };
        assert!(open(&copy, &bank, &other_chain).is_err());
        let relabelled = SealedTravelRule {
            recipient: InstitutionId(3),
            ..copy
        };
        assert!(open(&relabelled, &bank, &binding()).is_err());
    }

    #[test]
    fn data_too_long_for_a_copy_is_refused_before_sealing() {
        let bank = SecretKey::generate().unwrap();
        let mut long = data();
        long.originator.address = "x".repeat(PLAINTEXT_BYTES_MAX);
        assert!(matches!(
            seal(&long, InstitutionId(2), bank.public(), &binding()),
            Err(TravelRuleError::TooLong(_))
        ));
    }

    #[test]
    fn key_files_round_trip_private_and_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bank.x25519");
        let key = SecretKey::generate().unwrap();
        key.write_new(&path).unwrap();
        assert!(key.write_new(&path).is_err(), "overwrote a key file");
        let read = SecretKey::read(&path).unwrap();
        assert_eq!(read.public(), key.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
            assert!(SecretKey::read(&path).is_err(), "read an exposed key file");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        }
        // A public key that is not the secret's.
        let other = SecretKey::generate().unwrap();
        let text = std::fs::read_to_string(&path)
            .unwrap()
            .replace(&key.public().to_hex(), &other.public().to_hex());
        std::fs::write(&path, text).unwrap();
        assert!(SecretKey::read(&path).is_err());
    }
}
