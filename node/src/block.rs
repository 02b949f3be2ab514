//! The block: what the proposer builds, consensus agrees on (as opaque bytes with a hash),
//! and every node executes. Also the results a node stores after executing one.

use serde::{Deserialize, Serialize};
use tally_consensus::{BLOCK_BYTES_MAX, BlockHash, Evidence};
use tally_contracts::{EncodedTransaction, Event, Receipt};
use tally_crypto::{Hash, PublicKey, merkle_root};

use crate::validator_update::{BLOCK_VALIDATOR_UPDATES_MAX, ValidatorUpdate};

/// The most transactions one block may carry, whatever the node's configuration says.
pub const BLOCK_TXS_MAX: usize = 20_000;
/// The most pieces of evidence one block may carry.
pub const BLOCK_EVIDENCE_MAX: usize = 64;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockHeader {
    pub chain_id: String,
    pub height: u64,
    /// The proposer's clock: later than the parent's, within a bound of the checker's clock.
    pub time_ms: u64,
    /// The hash of the block at `height - 1` (zero at height 1).
    pub parent: Hash,
    /// The ledger's state root after executing the block at `height - 1` (after genesis at
    /// height 1), so every node checks it agrees on state before voting.
    pub state_root: Hash,
    /// The Merkle root of the transactions' hashes, in block order.
    pub txs_root: Hash,
    /// The digest of the block's validator-set changes ([`validator_updates_root`]), so a
    /// client that follows the validator set proves a change with the header alone.
    pub validator_updates_root: Hash,
    /// The id of the validator set that signs this block (`ValidatorSet::id`, the set in
    /// force at its height): a client that follows the set from the genesis notices a change
    /// it was not shown, instead of believing the old set.
    pub validators_id: Hash,
    pub proposer: PublicKey,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Block {
    pub header: BlockHeader,
    /// Each as its canonical bytes on the wire, checked as at the API when decoded.
    pub txs: Vec<EncodedTransaction>,
    /// Equivocation evidence, put on chain for the regulator.
    pub evidence: Vec<Evidence>,
    /// Changes of the validator set (see [`crate::validator_update`]).
    pub validator_updates: Vec<ValidatorUpdate>,
}

/// A block's body as encoded: everything but the header.
#[derive(Serialize)]
struct BodyRef<'b> {
    txs: &'b [EncodedTransaction],
    evidence: &'b [Evidence],
    validator_updates: &'b [ValidatorUpdate],
}

#[derive(Deserialize)]
struct Body {
    txs: Vec<EncodedTransaction>,
    evidence: Vec<Evidence>,
    validator_updates: Vec<ValidatorUpdate>,
}

/// What executing a block produced, stored beside it for queries and event streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockResults {
    /// The state root after this block.
    pub state_root: Hash,
    /// The ledger tree's root after this block (half of `state_root`; the other half is the
    /// results root of `expired` and `receipts`), kept so a receipt can be proven.
    pub ledger_root: Hash,
    /// Events of holds released at the start of the block.
    pub expired: Vec<Event>,
    /// One per transaction, in block order.
    pub receipts: Vec<Receipt>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    #[error("block is {len} bytes, limit {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed block: {0}")]
    Malformed(String),
    #[error("block encoding is not canonical")]
    NotCanonical,
    #[error("block carries {count} {what}, limit {max}")]
    TooMany {
        what: &'static str,
        count: usize,
        max: usize,
    },
}

/// The Merkle root of transactions' body hashes.
pub fn txs_root(txs: &[EncodedTransaction]) -> Hash {
    let hashes: Vec<Hash> = txs.iter().map(|s| s.hash()).collect();
    merkle_root(&hashes)
}

/// The digest of a block's validator-set changes, in block order.
pub fn validator_updates_root(updates: &[ValidatorUpdate]) -> Hash {
    Hash::digest(
        "tally/block-validator-updates",
        &tally_consensus::encode(&updates),
    )
}

impl Block {
    /// The header, then the body, framed so that the block's id binds each apart
    /// ([`BlockHash::of`]): a client checks a header's certificate with the body's digest alone.
    pub fn encode(&self) -> Vec<u8> {
        let header = tally_consensus::encode(&self.header);
        let body = tally_consensus::encode(&BodyRef {
            txs: &self.txs,
            evidence: &self.evidence,
            validator_updates: &self.validator_updates,
        });
        tally_consensus::frame_block(&header, &body)
    }

    /// The id consensus votes on: the hash of the encoded block.
    pub fn hash_of(bytes: &[u8]) -> BlockHash {
        BlockHash::of(bytes)
    }

    /// Decodes untrusted bytes: size limit, canonical form (decode then encode gives the same
    /// bytes), counts, and each transaction as at the API ([`EncodedTransaction::decode`]:
    /// its limits and canonical form). Signatures, the parent, time and state root are
    /// checked by the caller, which knows the chain.
    pub fn decode(bytes: &[u8]) -> Result<Block, BlockError> {
        if bytes.len() > BLOCK_BYTES_MAX {
            return Err(BlockError::TooLarge {
                len: bytes.len(),
                max: BLOCK_BYTES_MAX,
            });
        }
        let (header, body) = tally_consensus::split_block(bytes)
            .ok_or_else(|| BlockError::Malformed("no header frame".to_string()))?;
        let header: BlockHeader =
            postcard::from_bytes(header).map_err(|e| BlockError::Malformed(e.to_string()))?;
        let body: Body =
            postcard::from_bytes(body).map_err(|e| BlockError::Malformed(e.to_string()))?;
        let block = Block {
            header,
            txs: body.txs,
            evidence: body.evidence,
            validator_updates: body.validator_updates,
        };
        if block.encode() != bytes {
            return Err(BlockError::NotCanonical);
        }
        if block.txs.len() > BLOCK_TXS_MAX {
            return Err(BlockError::TooMany {
                what: "transactions",
                count: block.txs.len(),
                max: BLOCK_TXS_MAX,
            });
        }
        if block.evidence.len() > BLOCK_EVIDENCE_MAX {
            return Err(BlockError::TooMany {
                what: "pieces of evidence",
                count: block.evidence.len(),
                max: BLOCK_EVIDENCE_MAX,
            });
        }
        if block.validator_updates.len() > BLOCK_VALIDATOR_UPDATES_MAX {
            return Err(BlockError::TooMany {
                what: "validator updates",
                count: block.validator_updates.len(),
                max: BLOCK_VALIDATOR_UPDATES_MAX,
            });
        }
        Ok(block)
    }
}

impl BlockResults {
    pub fn encode(&self) -> Vec<u8> {
        tally_consensus::encode(self)
    }

    /// Decodes results this node stored itself (a failure means a damaged data directory).
    pub fn decode(bytes: &[u8]) -> Result<BlockResults, BlockError> {
        postcard::from_bytes(bytes).map_err(|e| BlockError::Malformed(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block() -> Block {
        Block {
            header: BlockHeader {
                chain_id: "test".to_string(),
                height: 3,
                time_ms: 1_000,
                parent: Hash::digest("t", b"parent"),
                state_root: Hash::digest("t", b"root"),
                txs_root: txs_root(&[]),
                validator_updates_root: validator_updates_root(&[]),
                validators_id: Hash::digest("t", b"validators"),
                proposer: tally_crypto::SigningKey::from_seed([1; 32]).public_key(),
            },
            txs: Vec::new(),
            evidence: Vec::new(),
            validator_updates: Vec::new(),
        }
    }

    #[test]
    fn round_trip_and_canonical() {
        let bytes = block().encode();
        assert_eq!(Block::decode(&bytes), Ok(block()));
        let mut trailing = bytes.clone();
        trailing.push(0);
        assert_eq!(Block::decode(&trailing), Err(BlockError::NotCanonical));
        assert!(matches!(
            Block::decode(&bytes[..bytes.len() - 1]),
            Err(BlockError::Malformed(_))
        ));
        let huge = vec![0u8; BLOCK_BYTES_MAX + 1];
        assert!(matches!(
            Block::decode(&huge),
            Err(BlockError::TooLarge { .. })
        ));
    }

    #[test]
    fn transactions_travel_as_their_bytes_and_are_checked_on_the_way_in() {
        let key = tally_crypto::SigningKey::from_seed([2; 32]);
        let tx = tally_contracts::Transaction {
            chain_id: "test".into(),
            sender: tally_contracts::Party::Account(tally_contracts::AccountId(1)),
            nonce: 0,
            kind: tally_contracts::TxKind::Transfer {
                id: tally_contracts::TransferId(1),
                to: tally_contracts::AccountId(2),
                amount: 5,
                memo: tally_contracts::Memo::NONE,
            },
        }
        .sign(&[&key]);
        let mut with_tx = block();
        with_tx.txs.push(EncodedTransaction::new(tx.clone()));
        with_tx.header.txs_root = txs_root(&with_tx.txs);
        let bytes = with_tx.encode();
        assert_eq!(Block::decode(&bytes), Ok(with_tx.clone()));
        // The same block with the transaction's signatures out of order: its own encoding
        // is not canonical, so neither is the block.
        let mut unsorted = tx;
        unsorted.signatures.push(unsorted.signatures[0]);
        let mut bad = with_tx;
        bad.txs = vec![EncodedTransaction::new(unsorted)];
        assert!(matches!(
            Block::decode(&bad.encode()),
            Err(BlockError::Malformed(_))
        ));
    }

    #[test]
    fn hash_covers_every_field() {
        let base = Block::hash_of(&block().encode());
        let mut later = block();
        later.header.time_ms += 1;
        assert_ne!(Block::hash_of(&later.encode()), base);
        let mut other_root = block();
        other_root.header.state_root = Hash::ZERO;
        assert_ne!(Block::hash_of(&other_root.encode()), base);
    }
}
