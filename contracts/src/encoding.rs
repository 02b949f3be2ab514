//! The one canonical binary encoding of a signed transaction (postcard). Decoding checks a
//! byte limit first, then every variable-length field's limit, then that re-encoding gives
//! back exactly the input: any other spelling of the same value (a padded varint, trailing
//! bytes, signatures out of order) is refused, so one transaction has one byte string and
//! one hash.
//!
//! [`EncodedTransaction`] is what the node carries from the door to the block: the value, its
//! canonical bytes and its id, each made once where the transaction enters.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tally_crypto::Hash;

use crate::transaction::{
    TRAVEL_RULE_CIPHERTEXT_BYTES_MAX, TRAVEL_RULE_CIPHERTEXT_BYTES_MIN, TRAVEL_RULE_RECIPIENTS_MAX,
    TxSignature, tx_id,
};
use crate::{DecodeError, SignedTransaction, Transaction, TxKind};

/// The largest encoded signed transaction accepted.
pub const TX_BYTES_MAX: usize = 2048;
/// The longest chain id.
pub const CHAIN_ID_BYTES_MAX: usize = 64;
/// The most signatures on one transaction (sender, co-signers, governance quorum).
pub const SIGNATURES_MAX: usize = 8;

/// Checks the limits and canonical signature order of a transaction however it was made.
pub fn check_limits(signed: &SignedTransaction) -> Result<(), DecodeError> {
    if signed.tx.chain_id.len() > CHAIN_ID_BYTES_MAX {
        return Err(DecodeError::Limit("chain_id"));
    }
    if signed.signatures.is_empty() || signed.signatures.len() > SIGNATURES_MAX {
        return Err(DecodeError::Limit("signatures"));
    }
    if !signed.signatures.windows(2).all(|w| match w {
        [a, b] => a.key < b.key,
        _ => true,
    }) {
        return Err(DecodeError::Limit(
            "signatures must be sorted by key, no key twice",
        ));
    }
    match &signed.tx.kind {
        TxKind::PayMerchant { reference, .. } if !reference.is_well_formed() => Err(
            DecodeError::Limit("reference: at most 64 bytes, no control characters"),
        ),
        TxKind::Transfer { memo, .. } if !memo.is_well_formed() => Err(DecodeError::Limit(
            "memo: at most 64 bytes, no control characters",
        )),
        TxKind::CrossBorderTransfer { travel_rule, .. } => {
            if travel_rule.len() > TRAVEL_RULE_RECIPIENTS_MAX {
                return Err(DecodeError::Limit("travel_rule: at most 3 sealed copies"));
            }
            if !travel_rule.windows(2).all(|w| match w {
                [a, b] => a.recipient < b.recipient,
                _ => true,
            }) {
                return Err(DecodeError::Limit(
                    "travel_rule: sorted by recipient, one copy each",
                ));
            }
            let sizes = TRAVEL_RULE_CIPHERTEXT_BYTES_MIN..=TRAVEL_RULE_CIPHERTEXT_BYTES_MAX;
            if !travel_rule
                .iter()
                .all(|copy| sizes.contains(&copy.ciphertext.len()))
            {
                return Err(DecodeError::Limit(
                    "travel_rule: each ciphertext 17..=480 bytes",
                ));
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

pub fn encode(signed: &SignedTransaction) -> Vec<u8> {
    postcard::to_allocvec(signed).unwrap_or_default()
}

/// Decodes untrusted bytes into a signed transaction, or says why not.
pub fn decode(bytes: &[u8]) -> Result<SignedTransaction, DecodeError> {
    EncodedTransaction::decode(bytes.to_vec()).map(EncodedTransaction::into_signed)
}

/// A signed transaction with its canonical bytes and its id.
///
/// Why: a transaction crosses the API, the mempool, gossip, a block and execution on every
/// node; encoding it again for each (to hash it, to check a signature, to measure or send it)
/// was a tenth of a validator's work. Equality is equality of the canonical bytes, which is
/// equality of the values. In a block it travels as its bytes (postcard: length, then bytes),
/// so encoding a block copies them and decoding one checks each transaction as the door does.
#[derive(Debug, Clone)]
pub struct EncodedTransaction {
    signed: SignedTransaction,
    bytes: Vec<u8>,
    /// `bytes[..body_len]` is the encoded [`Transaction`]: what every signature covers.
    body_len: usize,
    hash: Hash,
}

impl EncodedTransaction {
    /// Decodes untrusted bytes: the size limit, then the value, its field limits and its
    /// canonical form (encoding it again gives back exactly `bytes`).
    pub fn decode(bytes: Vec<u8>) -> Result<EncodedTransaction, DecodeError> {
        if bytes.len() > TX_BYTES_MAX {
            return Err(DecodeError::TooLarge {
                len: bytes.len(),
                max: TX_BYTES_MAX,
            });
        }
        let malformed = |e: postcard::Error| DecodeError::Malformed(e.to_string());
        // A signed transaction encodes as its body, then its signatures: the body's bytes are
        // a prefix, so the signed bytes need no second encoding.
        let (tx, rest) = postcard::take_from_bytes::<Transaction>(&bytes).map_err(malformed)?;
        let (signatures, _) =
            postcard::take_from_bytes::<Vec<TxSignature>>(rest).map_err(malformed)?;
        let body_len = bytes.len() - rest.len();
        let signed = SignedTransaction { tx, signatures };
        check_limits(&signed)?;
        if encode(&signed) != bytes {
            return Err(DecodeError::NotCanonical);
        }
        Ok(EncodedTransaction::from_parts(signed, bytes, body_len))
    }

    /// Encodes a transaction made here (a client's, a test's). Its limits are not checked
    /// until verification ([`crate::verify_transactions`] checks them, as for any other).
    pub fn new(signed: SignedTransaction) -> EncodedTransaction {
        // The same bytes as [`encode`]: a struct encodes as its fields one after another.
        let body = signed.tx.signing_bytes();
        let body_len = body.len();
        let bytes = postcard::to_extend(&signed.signatures, body).unwrap_or_default();
        EncodedTransaction::from_parts(signed, bytes, body_len)
    }

    /// The id, from the body's bytes and the signers: computed here once.
    fn from_parts(signed: SignedTransaction, bytes: Vec<u8>, body_len: usize) -> Self {
        let hash = tx_id(
            bytes.get(..body_len).unwrap_or_default(),
            signed.signatures.iter().map(|s| &s.key),
        );
        EncodedTransaction {
            signed,
            bytes,
            body_len,
            hash,
        }
    }

    pub fn signed(&self) -> &SignedTransaction {
        &self.signed
    }

    pub fn tx(&self) -> &Transaction {
        &self.signed.tx
    }

    pub fn into_signed(self) -> SignedTransaction {
        self.signed
    }

    /// The canonical encoding of the signed transaction.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The bytes every signature covers: the encoded body ([`Transaction::signing_bytes`]).
    pub fn signing_bytes(&self) -> &[u8] {
        self.bytes.get(..self.body_len).unwrap_or_default()
    }

    /// The transaction's id ([`SignedTransaction::hash`]).
    pub fn hash(&self) -> Hash {
        self.hash
    }
}

impl From<SignedTransaction> for EncodedTransaction {
    fn from(signed: SignedTransaction) -> EncodedTransaction {
        EncodedTransaction::new(signed)
    }
}

impl PartialEq for EncodedTransaction {
    fn eq(&self, other: &EncodedTransaction) -> bool {
        self.bytes == other.bytes
    }
}

impl Eq for EncodedTransaction {}

/// Binary formats carry the canonical bytes; human-readable ones (JSON) the value.
impl Serialize for EncodedTransaction {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        if serializer.is_human_readable() {
            self.signed.serialize(serializer)
        } else {
            serializer.serialize_bytes(&self.bytes)
        }
    }
}

/// Held to the door's checks whatever the format.
impl<'de> Deserialize<'de> for EncodedTransaction {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let bytes = if deserializer.is_human_readable() {
            encode(&SignedTransaction::deserialize(deserializer)?)
        } else {
            serde_bytes_vec(deserializer)?
        };
        EncodedTransaction::decode(bytes).map_err(serde::de::Error::custom)
    }
}

/// A byte string from a binary format, owned.
fn serde_bytes_vec<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = Vec<u8>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("the bytes of a signed transaction")
        }
        fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Vec<u8>, E> {
            Ok(v.to_vec())
        }
        fn visit_byte_buf<E: serde::de::Error>(self, v: Vec<u8>) -> Result<Vec<u8>, E> {
            Ok(v)
        }
    }
    deserializer.deserialize_bytes(Visitor)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{AccountId, Memo, Party, Transaction, TransferId, TxKind};
    use tally_crypto::SigningKey;

    fn sample() -> SignedTransaction {
        let key = SigningKey::from_seed([1; 32]);
        Transaction {
            chain_id: "tally-test".into(),
            sender: Party::Account(AccountId(7)),
            nonce: 3,
            kind: TxKind::Transfer {
                id: TransferId(9),
                to: AccountId(8),
                amount: 100,
                memo: Memo::NONE,
            },
        }
        .sign(&[&key])
    }

    #[test]
    fn round_trip_is_exact() {
        let signed = sample();
        let bytes = encode(&signed);
        assert_eq!(decode(&bytes), Ok(signed));
        assert!(
            bytes.len() < 200,
            "a simple transfer is small: {}",
            bytes.len()
        );
    }

    #[test]
    fn an_encoded_transaction_carries_the_same_bytes_body_and_id_either_way() {
        let signed = sample();
        let made = EncodedTransaction::new(signed.clone());
        assert_eq!(made.bytes(), encode(&signed).as_slice());
        assert_eq!(made.signing_bytes(), signed.tx.signing_bytes().as_slice());
        assert_eq!(made.hash(), signed.hash());
        let decoded = EncodedTransaction::decode(encode(&signed)).map_err(|e| e.to_string());
        assert_eq!(
            decoded.as_ref().map(|d| d.signing_bytes()),
            Ok(made.signing_bytes())
        );
        assert_eq!(decoded.as_ref().map(|d| d.hash()), Ok(signed.hash()));
        assert_eq!(decoded.map(EncodedTransaction::into_signed), Ok(signed));
    }

    #[test]
    fn in_a_binary_format_it_travels_as_its_checked_bytes() {
        let made = EncodedTransaction::new(sample());
        let wire = postcard::to_allocvec(&made).unwrap_or_default();
        // postcard: a length, then the canonical bytes.
        assert_eq!(wire.get(1..), Some(made.bytes()));
        assert_eq!(
            postcard::from_bytes::<EncodedTransaction>(&wire).ok(),
            Some(made.clone())
        );
        let mut padded = made.bytes().to_vec();
        padded.push(0);
        let wire = postcard::to_allocvec(&padded).unwrap_or_default();
        assert!(postcard::from_bytes::<EncodedTransaction>(&wire).is_err());
    }

    #[test]
    fn trailing_bytes_and_padded_varints_are_refused() {
        let mut bytes = encode(&sample());
        bytes.push(0);
        assert_eq!(decode(&bytes), Err(DecodeError::NotCanonical));

        // The nonce 3 is a one-byte varint; 0x83 0x00 decodes to 3 as well.
        let bytes = encode(&sample());
        let chain_len = "tally-test".len();
        // layout: chain_id (len + bytes), sender tag, varint account id, nonce
        let nonce_at = 1 + chain_len + 1 + 1;
        assert_eq!(bytes[nonce_at], 3);
        let mut padded = bytes[..nonce_at].to_vec();
        padded.extend_from_slice(&[0x83, 0x00]);
        padded.extend_from_slice(&bytes[nonce_at + 1..]);
        assert_eq!(decode(&padded), Err(DecodeError::NotCanonical));
    }

    #[test]
    fn limits_are_enforced() {
        assert!(matches!(
            decode(&vec![0u8; TX_BYTES_MAX + 1]),
            Err(DecodeError::TooLarge { .. })
        ));
        let mut long_chain = sample();
        long_chain.tx.chain_id = "x".repeat(CHAIN_ID_BYTES_MAX + 1);
        assert_eq!(
            decode(&encode(&long_chain)),
            Err(DecodeError::Limit("chain_id"))
        );
        let mut doubled = sample();
        let first = doubled.signatures[0];
        doubled.signatures.push(first);
        assert!(matches!(
            decode(&encode(&doubled)),
            Err(DecodeError::Limit(_))
        ));
        let mut unsigned = sample();
        unsigned.signatures.clear();
        assert!(matches!(
            decode(&encode(&unsigned)),
            Err(DecodeError::Limit(_))
        ));
        assert!(matches!(
            decode(&[0xff; 10]),
            Err(DecodeError::Malformed(_))
        ));
    }
}
