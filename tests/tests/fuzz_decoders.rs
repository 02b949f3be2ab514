//! Property-based fuzzing of every decoder that sees untrusted bytes (stable toolchain; no
//! cargo-fuzz). For each target, four properties:
//!
//! - `no_panic_random` / `no_panic_mutated`: arbitrary bytes and damaged valid encodings never
//!   panic the decoder, and anything it accepts re-encodes to exactly the input (canonical:
//!   one value, one byte string, one hash);
//! - `round_trip`: a valid value's encoding decodes to the same value;
//! - `oversized_refused_first`: a valid encoding padded past the size limit is refused as too
//!   large (not as malformed or non-canonical), so the limit is checked before decoding.
//!
//! `TALLY_FUZZ_CASES=N` sets the case count (default [`cases::DEFAULT`]). Failing inputs are
//! kept by proptest in `fuzz_decoders.proptest-regressions` beside this file and replayed
//! first on every run; commit that file.

#![allow(clippy::indexing_slicing, clippy::unwrap_used, clippy::expect_used)]

use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use tally_consensus::{
    CommitCertificate, Error as ConsensusError, Evidence, MESSAGE_BYTES_MAX, Message,
};
use tally_contracts::snapshot::SnapshotChunk;
use tally_contracts::{DecodeError, SignedTransaction, encoding};
use tally_node::block::{Block, BlockError, BlockResults};
use tally_node::chain::state_sync::{SnapshotManifest, SnapshotOffer, SyncRequest};
use tally_node::chain::sync::BlockResponse;
use tally_node::validator_update::ValidatorUpdate;
use tally_tests::cases;
use tally_tests::generate;
use tally_tests::mutate::{self, mutation, random_bytes};

/// The node's default `limits.message_bytes_max` (node/src/config.rs): the limit the router
/// and the sync task pass to `tally_consensus::decode` for gossip, evidence, validator updates,
/// sync responses and certificates.
const NODE_MESSAGE_BYTES_MAX: usize = 4 * 1024 * 1024;
/// `SYNC_REQUEST_BYTES_MAX` of node/src/chain/sync.rs (private there).
const SYNC_REQUEST_BYTES_MAX: usize = 64;
/// `TX_BATCH_COUNT_MAX` of node/src/node.rs (private there).
const TX_BATCH_COUNT_MAX: usize = 4_096;
/// The longest random input (the limits above are far larger; the shape, not the size, is
/// what random bytes explore).
const RANDOM_BYTES_MAX: usize = 4096;

fn config() -> ProptestConfig {
    ProptestConfig::with_cases(cases::from_env(cases::DEFAULT))
}

/// The oversize properties allocate up to the 4 MiB limits per case: fewer cases.
fn config_oversized() -> ProptestConfig {
    ProptestConfig::with_cases(cases::scaled(8, 32))
}

/// The gossiped transaction batch, as `Router::decode_txs` (node/src/node.rs, private)
/// decodes it: a canonical `Vec<Vec<u8>>` within the message limit, at most
/// `TX_BATCH_COUNT_MAX` entries, each a canonical transaction.
fn decode_tx_batch(bytes: &[u8]) -> Result<Vec<SignedTransaction>, BatchError> {
    let batch: Vec<Vec<u8>> =
        tally_consensus::decode(bytes, NODE_MESSAGE_BYTES_MAX).map_err(BatchError::Batch)?;
    if batch.len() > TX_BATCH_COUNT_MAX {
        return Err(BatchError::Count(batch.len()));
    }
    batch
        .iter()
        .map(|b| encoding::decode(b).map_err(BatchError::Transaction))
        .collect()
}

#[derive(Debug)]
#[allow(dead_code)] // read through Debug in failure messages
enum BatchError {
    Batch(ConsensusError),
    Count(usize),
    Transaction(DecodeError),
}

fn encode_tx_batch(txs: &[SignedTransaction]) -> Vec<u8> {
    let batch: Vec<Vec<u8>> = txs.iter().map(encoding::encode).collect();
    tally_consensus::encode(&batch)
}

/// `bytes` zero-padded to one byte past `limit`.
fn past(bytes: &[u8], limit: usize) -> Vec<u8> {
    let mut out = bytes.to_vec();
    out.resize(limit + 1, 0);
    out
}

/// One fuzz target: a module with the four properties over one decoder.
macro_rules! fuzz_target {
    (
        $name:ident,
        value: $strategy:expr,
        decode: $decode:expr,
        encode: $encode:expr,
        limit: $limit:expr,
        too_large: $too_large:pat $(,)?
    ) => {
        mod $name {
            use super::*;

            /// Decodes; if accepted, the value must re-encode to exactly `bytes`.
            fn accepted_is_canonical(bytes: &[u8]) -> Result<(), TestCaseError> {
                if let Ok(value) = ($decode)(bytes) {
                    prop_assert_eq!(
                        ($encode)(&value),
                        bytes.to_vec(),
                        "accepted a non-canonical encoding"
                    );
                }
                Ok(())
            }

            proptest! {
                #![proptest_config(config())]

                #[test]
                fn no_panic_random(bytes in random_bytes(RANDOM_BYTES_MAX)) {
                    accepted_is_canonical(&bytes)?;
                }

                #[test]
                fn no_panic_mutated(value in $strategy, m in mutation()) {
                    let bytes = mutate::apply(&($encode)(&value), &m);
                    accepted_is_canonical(&bytes)?;
                }

                #[test]
                fn round_trip(value in $strategy) {
                    let bytes = ($encode)(&value);
                    prop_assert!(bytes.len() <= $limit);
                    let decoded = ($decode)(&bytes);
                    prop_assert_eq!(decoded.as_ref().ok(), Some(&value), "{:?}", decoded.as_ref().err());
                }
            }

            proptest! {
                #![proptest_config(config_oversized())]

                #[test]
                fn oversized_refused_first(value in $strategy) {
                    let bytes = past(&($encode)(&value), $limit);
                    let result = ($decode)(&bytes);
                    prop_assert!(matches!(result, $too_large), "{:?}", result.as_ref().err());
                }
            }
        }
    };
}

fuzz_target!(
    transaction,
    value: generate::signed_transaction(),
    decode: encoding::decode,
    encode: encoding::encode,
    limit: encoding::TX_BYTES_MAX,
    too_large: Err(DecodeError::TooLarge { .. }),
);

fuzz_target!(
    gossip_tx_batch,
    value: proptest::collection::vec(generate::signed_transaction(), 0..4),
    decode: decode_tx_batch,
    encode: |txs: &Vec<SignedTransaction>| encode_tx_batch(txs),
    limit: NODE_MESSAGE_BYTES_MAX,
    too_large: Err(BatchError::Batch(ConsensusError::TooLarge { .. })),
);

fuzz_target!(
    consensus_message,
    value: generate::message(),
    decode: Message::decode,
    encode: Message::encode,
    limit: MESSAGE_BYTES_MAX,
    too_large: Err(ConsensusError::TooLarge { .. }),
);

fuzz_target!(
    commit_certificate,
    value: generate::commit_certificate(),
    decode: |b: &[u8]| tally_consensus::decode::<CommitCertificate>(b, NODE_MESSAGE_BYTES_MAX),
    encode: |c: &CommitCertificate| tally_consensus::encode(c),
    limit: NODE_MESSAGE_BYTES_MAX,
    too_large: Err(ConsensusError::TooLarge { .. }),
);

fuzz_target!(
    evidence,
    value: generate::evidence(),
    decode: |b: &[u8]| tally_consensus::decode::<Evidence>(b, NODE_MESSAGE_BYTES_MAX),
    encode: |e: &Evidence| tally_consensus::encode(e),
    limit: NODE_MESSAGE_BYTES_MAX,
    too_large: Err(ConsensusError::TooLarge { .. }),
);

fuzz_target!(
    validator_update,
    value: generate::validator_update(),
    decode: |b: &[u8]| tally_consensus::decode::<ValidatorUpdate>(b, NODE_MESSAGE_BYTES_MAX),
    encode: |u: &ValidatorUpdate| tally_consensus::encode(u),
    limit: NODE_MESSAGE_BYTES_MAX,
    too_large: Err(ConsensusError::TooLarge { .. }),
);

fuzz_target!(
    block,
    value: generate::block(),
    decode: Block::decode,
    encode: Block::encode,
    limit: tally_consensus::BLOCK_BYTES_MAX,
    too_large: Err(BlockError::TooLarge { .. }),
);

fuzz_target!(
    sync_request,
    value: generate::sync_request(),
    decode: |b: &[u8]| tally_consensus::decode::<SyncRequest>(b, SYNC_REQUEST_BYTES_MAX),
    encode: |r: &SyncRequest| tally_consensus::encode(r),
    limit: SYNC_REQUEST_BYTES_MAX,
    too_large: Err(ConsensusError::TooLarge { .. }),
);

fuzz_target!(
    snapshot_chunk,
    value: generate::snapshot_chunk(),
    decode: |b: &[u8]| tally_consensus::decode::<SnapshotChunk>(b, NODE_MESSAGE_BYTES_MAX),
    encode: |c: &SnapshotChunk| tally_consensus::encode(c),
    limit: NODE_MESSAGE_BYTES_MAX,
    too_large: Err(ConsensusError::TooLarge { .. }),
);

fuzz_target!(
    sync_response,
    value: generate::block_response(),
    decode: |b: &[u8]| tally_consensus::decode::<BlockResponse>(b, NODE_MESSAGE_BYTES_MAX),
    encode: |r: &BlockResponse| tally_consensus::encode(r),
    limit: NODE_MESSAGE_BYTES_MAX,
    too_large: Err(ConsensusError::TooLarge { .. }),
);

/// The JSON body of `POST /v1/transactions` (node/src/api/transactions.rs): serde_json, then
/// the same limits and canonical check as the binary body (`decode(encode(tx))`).
fn decode_json_body(body: &[u8]) -> Result<SignedTransaction, String> {
    let signed: SignedTransaction = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    encoding::decode(&encoding::encode(&signed)).map_err(|e| e.to_string())
}

/// Damaged JSON: a valid body with one character replaced, cut, or a field's value swapped
/// for a hostile one.
fn json_mutation() -> impl Strategy<Value = (usize, String)> {
    (
        any::<usize>(),
        prop_oneof![
            Just(String::new()),
            Just("\"".to_string()),
            Just("-1".to_string()),
            Just("1e400".to_string()),
            Just("340282366920938463463374607431768211456".to_string()),
            Just("null".to_string()),
            Just("[]".to_string()),
            Just("{}".to_string()),
            Just("\"\\ud800\"".to_string()),
            "[ -~]{0,8}",
        ],
    )
}

proptest! {
    #![proptest_config(config())]

    /// Arbitrary bytes and damaged JSON bodies never panic the JSON path; whatever it accepts
    /// has a canonical binary encoding the binary path accepts as the same transaction.
    #[test]
    fn api_json_body_no_panic(
        tx in generate::signed_transaction(),
        (at, insert) in json_mutation(),
        cut in any::<bool>(),
        random in random_bytes(RANDOM_BYTES_MAX),
    ) {
        let json = serde_json::to_string(&tx).unwrap();
        let mut chars: Vec<char> = json.chars().collect();
        let p = at % chars.len().max(1);
        if cut {
            chars.truncate(p);
        } else {
            chars.splice(p..(p + 1).min(chars.len()), insert.chars());
        }
        let damaged: String = chars.into_iter().collect();
        for body in [damaged.as_bytes(), random.as_slice()] {
            if let Ok(signed) = decode_json_body(body) {
                prop_assert_eq!(encoding::decode(&encoding::encode(&signed)), Ok(signed));
            }
        }
    }

    /// A valid transaction's JSON body decodes to the same transaction.
    #[test]
    fn api_json_body_round_trip(tx in generate::signed_transaction()) {
        let json = serde_json::to_vec(&tx).unwrap();
        prop_assert_eq!(decode_json_body(&json), Ok(tx));
    }

    /// Stored block results are decoded from this node's own store (not from peers), so the
    /// decoder has no canonical check; it must still never panic on damaged bytes.
    #[test]
    fn block_results_no_panic(bytes in random_bytes(RANDOM_BYTES_MAX)) {
        let _ = BlockResults::decode(&bytes);
    }

    /// Padding a varint of a valid transaction (same value, longer spelling) never decodes
    /// to the same transaction. (`at` may land inside a fixed-size field instead: then the
    /// bytes may spell another, canonical transaction, which is fine.)
    #[test]
    fn padded_varints_are_refused(
        tx in generate::signed_transaction(),
        at in any::<usize>(),
        extra in 1u8..4,
    ) {
        let bytes = encoding::encode(&tx);
        let padded = mutate::pad_varint(&bytes, at % bytes.len(), extra);
        prop_assert_ne!(&padded, &bytes);
        if let Ok(other) = encoding::decode(&padded) {
            prop_assert_ne!(&other, &tx, "a padded varint decoded to the same transaction");
            prop_assert_eq!(encoding::encode(&other), padded);
        }
    }
}

// ---- concrete hostile inputs, kept as plain regression tests ----

/// A length prefix claiming 2^64 - 1 elements must be refused without allocating for it.
#[test]
fn inflated_length_prefixes_are_refused_cheaply() {
    let huge = mutate::varint(u128::from(u64::MAX));
    // A Vec<Vec<u8>> gossip batch, a block (chain id length first), a sync response (after
    // the head), a certificate's signature count (after height, round, block hash).
    let mut response = vec![0x05];
    response.extend_from_slice(&huge);
    let mut certificate = vec![0x01, 0x00];
    certificate.extend_from_slice(&[0u8; 32]);
    certificate.extend_from_slice(&huge);
    assert!(decode_tx_batch(&huge).is_err());
    assert!(Block::decode(&huge).is_err());
    assert!(tally_consensus::decode::<BlockResponse>(&response, NODE_MESSAGE_BYTES_MAX).is_err());
    assert!(
        tally_consensus::decode::<CommitCertificate>(&certificate, NODE_MESSAGE_BYTES_MAX).is_err()
    );
    assert!(
        Message::decode(&[
            0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01
        ])
        .is_err()
    );
    assert!(BlockResults::decode(&huge).is_err());
}

/// The empty input and one byte of every value, for every decoder.
#[test]
fn tiny_inputs_never_panic() {
    let mut inputs = vec![Vec::new()];
    inputs.extend((0..=255u8).map(|b| vec![b]));
    for bytes in &inputs {
        let _ = encoding::decode(bytes);
        let _ = decode_tx_batch(bytes);
        let _ = Message::decode(bytes);
        let _ = tally_consensus::decode::<CommitCertificate>(bytes, NODE_MESSAGE_BYTES_MAX);
        let _ = tally_consensus::decode::<Evidence>(bytes, NODE_MESSAGE_BYTES_MAX);
        let _ = tally_consensus::decode::<ValidatorUpdate>(bytes, NODE_MESSAGE_BYTES_MAX);
        let _ = Block::decode(bytes);
        let _ = BlockResults::decode(bytes);
        let _ = tally_consensus::decode::<SyncRequest>(bytes, SYNC_REQUEST_BYTES_MAX);
        let _ = tally_consensus::decode::<SnapshotChunk>(bytes, NODE_MESSAGE_BYTES_MAX);
        let _ = tally_consensus::decode::<SnapshotOffer>(bytes, 1_024);
        let _ = tally_consensus::decode::<Option<SnapshotManifest>>(bytes, NODE_MESSAGE_BYTES_MAX);
        let _ = tally_consensus::decode::<BlockResponse>(bytes, NODE_MESSAGE_BYTES_MAX);
        let _ = decode_json_body(bytes);
    }
}
