//! Test equipment for Tally's cross-crate suites. Nothing here runs in a node.
//!
//! - [`generate`]: proptest strategies that build *valid* values (signed transactions, consensus
//!   messages, certificates, evidence, blocks, sync messages) from seeds, so the same seed
//!   always gives the same value and proptest can shrink a failure to a small one.
//! - [`mutate`]: strategies that damage a valid encoding the way a hostile or broken peer
//!   would: bit flips, truncation, extension, random overwrite, an inflated length prefix, a
//!   re-encoded non-canonical (overlong) varint.
//! - [`cases`]: the proptest case count, `TALLY_FUZZ_CASES=N` to run longer.
//! - [`binaries`]: the `tally` binary for the suites that run real node processes.
//! - [`network`]: a devnet of real `tally` processes that a fault test starts, kills and
//!   restarts node by node, and always tears down.
//! - [`load`]: funded wallets, a transfer load that survives faults, a mempool flood.
//! - [`chain`]: the checks after a fault: agreement of blocks and state roots, committed
//!   transactions on every node, the ledger invariants through the audit node.

use proptest::prelude::*;

pub mod chain;
pub mod load;
pub mod network;

/// How many cases each fuzz property runs.
pub mod cases {
    /// The default number of cases per property: small enough for CI.
    pub const DEFAULT: u32 = 256;
    /// The environment variable that raises (or lowers) the count for a longer run.
    pub const ENV: &str = "TALLY_FUZZ_CASES";

    /// `TALLY_FUZZ_CASES` if set to a positive number, else `default`.
    pub fn from_env(default: u32) -> u32 {
        std::env::var(ENV)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
            .filter(|&n| n > 0)
            .unwrap_or(default)
    }

    /// `TALLY_FUZZ_CASES` scaled down by `divisor` for an expensive property (at least 1).
    pub fn scaled(default: u32, divisor: u32) -> u32 {
        match std::env::var(ENV)
            .ok()
            .and_then(|s| s.trim().parse::<u32>().ok())
        {
            Some(n) if n > 0 => (n / divisor.max(1)).max(1),
            _ => default,
        }
    }
}

/// Generators of valid values, from seeds.
pub mod generate {
    use super::*;
    use tally_consensus::{
        BlockHash, CommitCertificate, CommitSignature, Evidence, Height, Message, Proposal, Round,
        SignedProposal, SignedVote, Validator, ValidatorIndex, Vote, VoteKind,
    };
    use tally_contracts::snapshot::{SnapshotChunk, TreeRow};
    use tally_contracts::{
        AccountId, CardToken, Currency, GovernanceAction, InstitutionId, Party, Roles,
        SignedTransaction, Transaction, TransferId, TxKind,
    };
    use tally_crypto::{Hash, PublicKey, Signature, SigningKey};
    use tally_node::block::{Block, BlockHeader};
    use tally_node::chain::state_sync::SyncRequest;
    use tally_node::chain::sync::{BlockRequest, BlockResponse, StoredBlock};
    use tally_node::validator_update::{UpdateSignature, ValidatorChange, ValidatorUpdate};

    /// A deterministic key from a small seed.
    pub fn key(seed: u8) -> SigningKey {
        SigningKey::from_seed([seed; 32])
    }

    pub fn hash() -> impl Strategy<Value = Hash> {
        any::<[u8; 32]>().prop_map(Hash)
    }

    pub fn public_key() -> impl Strategy<Value = PublicKey> {
        any::<u8>().prop_map(|s| key(s).public_key())
    }

    pub fn signature() -> impl Strategy<Value = Signature> {
        (any::<[u8; 32]>(), any::<[u8; 32]>()).prop_map(|(a, b)| {
            let mut s = [0u8; 64];
            let (lo, hi) = s.split_at_mut(32);
            lo.copy_from_slice(&a);
            hi.copy_from_slice(&b);
            Signature(s)
        })
    }

    /// A chain id within the transaction limit.
    pub fn chain_id() -> impl Strategy<Value = String> {
        prop_oneof![Just("tally-test".to_string()), "[a-z0-9-]{0,64}"]
    }

    fn currency() -> impl Strategy<Value = Currency> {
        prop_oneof![Just(*b"EUR"), Just(*b"USD"), any::<[u8; 3]>()].prop_map(Currency)
    }

    /// A transaction body of a few representative kinds (varints of every width, options,
    /// nested enums, fixed arrays).
    pub fn tx_kind() -> impl Strategy<Value = TxKind> {
        prop_oneof![
            (any::<u128>(), any::<u128>(), any::<u64>()).prop_map(|(id, to, amount)| {
                TxKind::Transfer {
                    id: TransferId(id),
                    to: AccountId(to),
                    amount,
                    memo: tally_contracts::Memo::NONE,
                }
            }),
            (
                any::<u128>(),
                any::<u8>(),
                currency(),
                any::<u32>(),
                any::<u8>(),
                hash()
            )
                .prop_map(|(account, k, currency, institution, tier, identity)| {
                    TxKind::RegisterAccount {
                        account: AccountId(account),
                        key: key(k).public_key(),
                        currency,
                        institution: InstitutionId(institution),
                        tier,
                        identity,
                    }
                }),
            (any::<u128>(), any::<[u8; 32]>(), any::<u64>()).prop_map(|(id, card, amount)| {
                TxKind::TopUp {
                    id: TransferId(id),
                    card: CardToken(card),
                    amount,
                }
            }),
            (proptest::option::of(public_key()), any::<u64>())
                .prop_map(|(key, threshold)| TxKind::SetSecondFactor { key, threshold }),
            (any::<u32>(), any::<u8>(), any::<u8>(), ".{0,80}").prop_map(|(id, k, roles, name)| {
                TxKind::Govern(GovernanceAction::AddInstitution {
                    id: InstitutionId(id),
                    key: key(k).public_key(),
                    roles: Roles(roles),
                    name,
                })
            }),
            any::<u16>().prop_map(|merchant_fee_bps_max| {
                TxKind::Govern(GovernanceAction::SetFeeSchedule {
                    merchant_fee_bps_max,
                })
            }),
        ]
    }

    /// A valid signed transaction: within every limit, 1 to 3 distinct signers.
    pub fn signed_transaction() -> impl Strategy<Value = SignedTransaction> {
        (
            chain_id(),
            prop_oneof![
                any::<u128>().prop_map(|a| Party::Account(AccountId(a))),
                any::<u32>().prop_map(|i| Party::Institution(InstitutionId(i))),
            ],
            any::<u64>(),
            tx_kind(),
            proptest::collection::btree_set(any::<u8>(), 1..=3),
        )
            .prop_map(|(chain_id, sender, nonce, kind, seeds)| {
                let keys: Vec<SigningKey> = seeds.into_iter().map(key).collect();
                let refs: Vec<&SigningKey> = keys.iter().collect();
                Transaction {
                    chain_id,
                    sender,
                    nonce,
                    kind,
                }
                .sign(&refs)
            })
    }

    pub fn vote() -> impl Strategy<Value = Vote> {
        (
            any::<bool>(),
            any::<u64>(),
            any::<u32>(),
            proptest::option::of(hash()),
            any::<u32>(),
        )
            .prop_map(|(pre, height, round, block, validator)| Vote {
                kind: if pre {
                    VoteKind::Prevote
                } else {
                    VoteKind::Precommit
                },
                height: Height(height),
                round: Round(round),
                block: block.map(BlockHash),
                validator: ValidatorIndex(validator),
            })
    }

    pub fn signed_vote() -> impl Strategy<Value = SignedVote> {
        (vote(), signature()).prop_map(|(vote, signature)| SignedVote { vote, signature })
    }

    pub fn signed_proposal() -> impl Strategy<Value = SignedProposal> {
        (
            any::<u64>(),
            any::<u32>(),
            proptest::option::of(any::<u32>()),
            hash(),
            any::<u32>(),
            signature(),
        )
            .prop_map(
                |(height, round, pol, block, proposer, signature)| SignedProposal {
                    proposal: Proposal {
                        height: Height(height),
                        round: Round(round),
                        pol_round: pol.map(Round),
                        block: BlockHash(block),
                        proposer: ValidatorIndex(proposer),
                    },
                    signature,
                },
            )
    }

    /// A consensus message: a vote, or a proposal carrying a real encoded block.
    pub fn message() -> impl Strategy<Value = Message> {
        prop_oneof![
            signed_vote().prop_map(Message::Vote),
            (signed_proposal(), block()).prop_map(|(proposal, block)| Message::Proposal {
                proposal,
                block: block.encode(),
            }),
            (
                signed_proposal(),
                proptest::collection::vec(any::<u8>(), 0..64)
            )
                .prop_map(|(proposal, block)| Message::Proposal { proposal, block }),
        ]
    }

    pub fn commit_certificate() -> impl Strategy<Value = CommitCertificate> {
        (
            any::<u64>(),
            any::<u32>(),
            hash(),
            proptest::collection::btree_map(any::<u32>(), signature(), 0..5),
        )
            .prop_map(|(height, round, block, sigs)| CommitCertificate {
                height: Height(height),
                round: Round(round),
                block: BlockHash(block),
                signatures: sigs
                    .into_iter()
                    .map(|(v, signature)| CommitSignature {
                        validator: ValidatorIndex(v),
                        signature,
                    })
                    .collect(),
            })
    }

    /// Evidence built through the public constructors (so in canonical order).
    pub fn evidence() -> impl Strategy<Value = Evidence> {
        prop_oneof![
            (signed_vote(), hash(), signature()).prop_map(|(a, other, sig)| {
                let mut b = a;
                b.vote.block = Some(BlockHash(other));
                b.signature = sig;
                if a.vote.block == b.vote.block {
                    b.vote.block = None;
                }
                Evidence::votes(a, b).unwrap_or(Evidence::ConflictingVotes {
                    first: a,
                    second: b,
                })
            }),
            (signed_proposal(), hash(), signature()).prop_map(|(a, other, sig)| {
                let mut b = a;
                b.proposal.block = BlockHash(other);
                b.signature = sig;
                Evidence::proposals(a, b).unwrap_or(Evidence::ConflictingProposals {
                    first: a,
                    second: b,
                })
            }),
        ]
    }

    pub fn validator_update() -> impl Strategy<Value = ValidatorUpdate> {
        (
            any::<u64>(),
            proptest::collection::vec((public_key(), any::<u64>()), 0..4),
            proptest::collection::btree_map(public_key(), signature(), 0..3),
        )
            .prop_map(|(effective_height, vals, sigs)| ValidatorUpdate {
                change: ValidatorChange {
                    effective_height,
                    validators: vals
                        .into_iter()
                        .map(|(public_key, power)| Validator { public_key, power })
                        .collect(),
                },
                signatures: sigs
                    .into_iter()
                    .map(|(key, signature)| UpdateSignature { key, signature })
                    .collect(),
            })
    }

    /// A block within every limit `Block::decode` checks (signatures are not checked there).
    pub fn block() -> impl Strategy<Value = Block> {
        (
            "[a-z0-9-]{0,32}",
            any::<u64>(),
            any::<u64>(),
            hash(),
            hash(),
            public_key(),
            proptest::collection::vec(signed_transaction(), 0..4),
            proptest::collection::vec(evidence(), 0..3),
            proptest::collection::vec(validator_update(), 0..2),
        )
            .prop_map(
                |(chain_id, height, time_ms, parent, state_root, proposer, txs, evidence, vu)| {
                    let txs: Vec<tally_contracts::EncodedTransaction> =
                        txs.into_iter().map(Into::into).collect();
                    Block {
                        header: BlockHeader {
                            chain_id,
                            height,
                            time_ms,
                            parent,
                            state_root,
                            txs_root: tally_node::block::txs_root(&txs),
                            validator_updates_root: tally_node::block::validator_updates_root(&vu),
                            validators_id: parent,
                            proposer,
                        },
                        txs,
                        evidence,
                        validator_updates: vu,
                    }
                },
            )
    }

    pub fn block_request() -> impl Strategy<Value = BlockRequest> {
        (any::<u64>(), any::<u32>()).prop_map(|(from_height, count_max)| BlockRequest {
            from_height,
            count_max,
        })
    }

    /// Every request of the sync protocol.
    pub fn sync_request() -> impl Strategy<Value = SyncRequest> {
        prop_oneof![
            block_request().prop_map(SyncRequest::Blocks),
            Just(SyncRequest::Snapshots),
            any::<u64>().prop_map(|height| SyncRequest::Manifest { height }),
            (any::<u64>(), any::<u32>())
                .prop_map(|(height, index)| SyncRequest::Chunk { height, index }),
        ]
    }

    /// A snapshot chunk of random rows (as a peer may serve one).
    pub fn snapshot_chunk() -> impl Strategy<Value = SnapshotChunk> {
        (
            proptest::collection::vec(
                (
                    proptest::collection::vec(0u8..16, 0..6),
                    proptest::collection::vec(any::<u8>(), 0..80),
                ),
                0..4,
            ),
            proptest::collection::vec(
                (
                    proptest::collection::vec(any::<u8>(), 0..12),
                    proptest::collection::vec(any::<u8>(), 0..12),
                ),
                0..4,
            ),
        )
            .prop_map(|(nodes, entries)| SnapshotChunk {
                nodes: nodes
                    .into_iter()
                    .map(|(path, node)| TreeRow { path, node })
                    .collect(),
                entries,
            })
    }

    pub fn block_response() -> impl Strategy<Value = BlockResponse> {
        (
            any::<u64>(),
            proptest::collection::vec((block(), commit_certificate()), 0..3),
        )
            .prop_map(|(head, blocks)| BlockResponse {
                head,
                blocks: blocks
                    .into_iter()
                    .map(|(b, c)| StoredBlock {
                        block: b.encode(),
                        certificate: tally_consensus::encode(&c),
                    })
                    .collect(),
            })
    }
}

/// Damage done to a valid encoding.
pub mod mutate {
    use super::*;

    /// One way to damage bytes. Positions are taken modulo the input's length.
    #[derive(Debug, Clone)]
    pub enum Mutation {
        /// Flip one bit.
        FlipBit { at: usize, bit: u8 },
        /// Keep only the first `len` bytes.
        Truncate { len: usize },
        /// Append bytes.
        Extend { bytes: Vec<u8> },
        /// Overwrite a run of bytes with random ones.
        Overwrite { at: usize, bytes: Vec<u8> },
        /// Insert bytes in the middle.
        Insert { at: usize, bytes: Vec<u8> },
        /// Replace the byte at `at` by a huge varint (a length or count prefix that claims far
        /// more than follows).
        InflateLength { at: usize, varint: Vec<u8> },
        /// Re-encode the varint starting at `at` with `extra` redundant continuation bytes: the
        /// same value, a non-canonical spelling.
        PadVarint { at: usize, extra: u8 },
        /// Apply several mutations in turn.
        Many(Vec<Mutation>),
    }

    /// The LEB128 varint of `value` (postcard's integer encoding).
    pub fn varint(mut value: u128) -> Vec<u8> {
        let mut out = Vec::new();
        loop {
            let low = (value & 0x7f) as u8;
            value >>= 7;
            if value == 0 {
                out.push(low);
                return out;
            }
            out.push(low | 0x80);
        }
    }

    /// The varint starting at `at` re-spelt with `extra` more bytes for the same value.
    pub fn pad_varint(bytes: &[u8], at: usize, extra: u8) -> Vec<u8> {
        let Some(tail) = bytes.get(at..) else {
            return bytes.to_vec();
        };
        let Some(end) = tail.iter().position(|b| b & 0x80 == 0) else {
            return bytes.to_vec();
        };
        let mut out = bytes.get(..at).unwrap_or_default().to_vec();
        let body = tail.get(..=end).unwrap_or_default();
        let (last, init) = match body.split_last() {
            Some(x) => x,
            None => return bytes.to_vec(),
        };
        out.extend_from_slice(init);
        out.push(last | 0x80);
        out.extend(std::iter::repeat_n(0x80, usize::from(extra.max(1)) - 1));
        out.push(0x00);
        out.extend_from_slice(tail.get(end + 1..).unwrap_or_default());
        out
    }

    /// `bytes` with `mutation` applied.
    pub fn apply(bytes: &[u8], mutation: &Mutation) -> Vec<u8> {
        let n = bytes.len();
        let pos = |at: usize| if n == 0 { 0 } else { at % n };
        let mut out = bytes.to_vec();
        match mutation {
            Mutation::FlipBit { at, bit } => {
                if let Some(b) = out.get_mut(pos(*at)) {
                    *b ^= 1 << (bit % 8);
                }
            }
            Mutation::Truncate { len } => out.truncate(if n == 0 { 0 } else { len % n }),
            Mutation::Extend { bytes } => out.extend_from_slice(bytes),
            Mutation::Overwrite { at, bytes } => {
                for (i, b) in bytes.iter().enumerate() {
                    if let Some(slot) = out.get_mut(pos(*at) + i) {
                        *slot = *b;
                    }
                }
            }
            Mutation::Insert { at, bytes } => {
                let p = pos(*at);
                out.splice(p..p, bytes.iter().copied());
            }
            Mutation::InflateLength { at, varint } => {
                let p = pos(*at);
                if p < out.len() {
                    out.splice(p..=p, varint.iter().copied());
                } else {
                    out.extend_from_slice(varint);
                }
            }
            Mutation::PadVarint { at, extra } => out = pad_varint(bytes, pos(*at), *extra),
            Mutation::Many(ms) => {
                for m in ms {
                    out = apply(&out, m);
                }
            }
        }
        out
    }

    fn one() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            (any::<usize>(), any::<u8>()).prop_map(|(at, bit)| Mutation::FlipBit { at, bit }),
            any::<usize>().prop_map(|len| Mutation::Truncate { len }),
            proptest::collection::vec(any::<u8>(), 1..16)
                .prop_map(|bytes| Mutation::Extend { bytes }),
            (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
                .prop_map(|(at, bytes)| Mutation::Overwrite { at, bytes }),
            (any::<usize>(), proptest::collection::vec(any::<u8>(), 1..8))
                .prop_map(|(at, bytes)| Mutation::Insert { at, bytes }),
            (
                any::<usize>(),
                prop_oneof![
                    Just(u128::from(u32::MAX)),
                    Just(u128::from(u64::MAX)),
                    Just(1u128 << 31),
                    Just(1u128 << 40),
                    any::<u64>().prop_map(u128::from),
                ]
            )
                .prop_map(|(at, v)| Mutation::InflateLength {
                    at,
                    varint: varint(v)
                }),
            (any::<usize>(), 1u8..4).prop_map(|(at, extra)| Mutation::PadVarint { at, extra }),
        ]
    }

    /// One mutation, or a few in a row.
    pub fn mutation() -> impl Strategy<Value = Mutation> {
        prop_oneof![
            4 => one(),
            1 => proptest::collection::vec(one(), 2..4).prop_map(Mutation::Many),
        ]
    }

    /// Arbitrary bytes, mostly short, sometimes up to `max`.
    pub fn random_bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            4 => proptest::collection::vec(any::<u8>(), 0..64),
            1 => proptest::collection::vec(any::<u8>(), 0..max.max(1)),
        ]
    }
}

/// The binaries of this workspace that the process-level suites run.
pub mod binaries {
    use std::path::PathBuf;
    use std::process::Command;

    /// The `tally` binary of this build, built (or brought up to date) first with the same
    /// profile as the test, and with the test fault modes (the `test-faults` feature, which
    /// the fault suites switch on in their configs): cargo builds another package's binaries
    /// for a test only when they belong to the test's own package. Answers an error in words
    /// when the build fails.
    pub fn tally() -> Result<PathBuf, String> {
        let here = std::env::current_exe().map_err(|e| format!("finding the test binary: {e}"))?;
        // target/<profile>/deps/<test>: the binaries are in target/<profile>.
        let dir = here
            .parent()
            .and_then(|deps| deps.parent())
            .ok_or("the test binary is not in a cargo target directory")?;
        let release = dir.ends_with("release");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
        let mut build = Command::new(cargo);
        build.args([
            "build",
            "-p",
            "tally-node",
            "--bin",
            "tally",
            "--features",
            "test-faults",
        ]);
        if release {
            build.arg("--release");
        }
        let status = build
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .map_err(|e| format!("running cargo build: {e}"))?;
        if !status.success() {
            return Err(
                "cargo build -p tally-node --bin tally --features test-faults failed".into(),
            );
        }
        let tally = dir.join("tally");
        if tally.is_file() {
            Ok(tally)
        } else {
            Err(format!("{} was not built", tally.display()))
        }
    }
}
