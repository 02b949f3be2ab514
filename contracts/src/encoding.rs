//! The one canonical binary encoding of a signed transaction (postcard). Decoding checks a
//! byte limit first, then every variable-length field's limit, then that re-encoding gives
//! back exactly the input: any other spelling of the same value (a padded varint, trailing
//! bytes, signatures out of order) is refused, so one transaction has one byte string and
//! one hash.

use crate::transaction::{
    TRAVEL_RULE_CIPHERTEXT_BYTES_MAX, TRAVEL_RULE_CIPHERTEXT_BYTES_MIN, TRAVEL_RULE_RECIPIENTS_MAX,
};
use crate::{DecodeError, SignedTransaction, TxKind};

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
    if bytes.len() > TX_BYTES_MAX {
        return Err(DecodeError::TooLarge {
            len: bytes.len(),
            max: TX_BYTES_MAX,
        });
    }
    let signed: SignedTransaction =
        postcard::from_bytes(bytes).map_err(|e| DecodeError::Malformed(e.to_string()))?;
    check_limits(&signed)?;
    if encode(&signed) != bytes {
        return Err(DecodeError::NotCanonical);
    }
    Ok(signed)
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
