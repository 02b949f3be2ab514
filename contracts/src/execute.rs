//! Executing a block: expire due holds and complete due account recoveries, then apply each verified transaction in order —
//! check the chain, the sender's nonce and key, advance the nonce, run the contract on its
//! own layer (kept on success, dropped on rejection) — and return receipts, the ordered
//! writes, and the new state root.
//!
//! **State root.** `root_h = H("tally-state-root", root_{h-1}, h, time_ms, writes_h,
//! receipts_h, expired_h)` where `writes_h` are the block's writes ordered by key (every
//! write but the chain-head record itself). It is a hash chain: equal on every node that
//! executed the same blocks from the same genesis, computed in O(writes of the block), and
//! it commits to everything the block changed and answered. It does not, by itself, prove
//! one account's value to a light client (that would need a Merkle tree over state).

use serde::{Deserialize, Serialize};
use tally_crypto::Hash;

use crate::commitment;
use crate::context::{Tx, TxError, TxResult};
use crate::governance::{Institution, Rules};
use crate::ledger::accounts::Account;
use crate::ledger::transfers::Hold;
use crate::state::{State, encode_record, key};
use crate::transaction::{Party, TxKind};
use crate::types::{AccountId, TimeMs, TransferId};
use crate::{
    Event, ExecutionError, Rejection, StateStore, VerifiedTransaction, Write, bills, consumer,
    disputes, fx, governance, interbank, merchant, regulation, travel_rule,
};

/// The most holds released at the start of one block; the rest wait for the next block,
/// oldest first.
pub const EXPIRIES_PER_BLOCK_MAX: usize = 1_000;

/// What consensus decided about the block, as the contracts need it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockContext {
    pub height: u64,
    /// The block's time (the proposer's, checked by consensus).
    pub time_ms: TimeMs,
}

/// The outcome of one transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    pub tx: Hash,
    pub result: Result<(), Rejection>,
    /// Empty when rejected.
    pub events: Vec<Event>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockOutcome {
    /// One per transaction, in block order.
    pub receipts: Vec<Receipt>,
    /// Events of holds released at the start of the block.
    pub expired: Vec<Event>,
    /// What to commit, atomically with the block, ordered by key.
    pub writes: Vec<Write>,
    pub state_root: Hash,
    /// The chain head this block makes (also in `writes`).
    pub head: ChainHead,
}

/// The last executed block, as recorded in state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainHead {
    pub height: u64,
    pub time_ms: TimeMs,
    /// What the next block's header carries: binds `ledger_root` and `results_root`.
    pub state_root: Hash,
    /// The root of the ledger tree (every state entry; see [`crate::commitment`]).
    pub ledger_root: Hash,
    /// The root of the block's receipts and released holds.
    pub results_root: Hash,
}

/// The ledger: a pure state machine over a [`StateStore`].
#[derive(Debug, Clone, Copy)]
pub struct Ledger;

impl Ledger {
    /// The last executed block (height 0 after genesis), or `None` before genesis.
    pub fn chain_head(store: &dyn StateStore) -> Result<Option<ChainHead>, ExecutionError> {
        State::new(store).get(&key::meta())
    }

    /// The chain's current rules.
    pub fn rules(store: &dyn StateStore) -> Result<Rules, ExecutionError> {
        State::new(store)
            .get(&key::rules())?
            .ok_or(ExecutionError::NoGenesis)
    }

    /// Executes a block of verified transactions over `store` (which it only reads).
    /// The node commits `writes` atomically with the block.
    pub fn execute_block(
        store: &dyn StateStore,
        block: BlockContext,
        txs: &[VerifiedTransaction],
    ) -> Result<BlockOutcome, ExecutionError> {
        let head = Ledger::chain_head(store)?.ok_or(ExecutionError::NoGenesis)?;
        if Some(block.height) != head.height.checked_add(1) || block.time_ms < head.time_ms {
            return Err(ExecutionError::BlockOutOfOrder {
                expected_height: head.height.saturating_add(1),
                height: block.height,
            });
        }
        let mut state = State::new(store);
        let mut rules: Rules = state.get(&key::rules())?.ok_or(ExecutionError::NoGenesis)?;
        let mut expired = expire_holds(&mut state, &rules, block)?;
        expired.append(&mut complete_recoveries(&mut state, &rules, block)?);
        let mut receipts = Vec::with_capacity(txs.len());
        for verified in txs {
            let (result, events) = execute_tx(&mut state, &rules, block, verified)?;
            if result.is_ok() && matches!(verified.tx().kind, TxKind::Govern(_)) {
                rules = state.get(&key::rules())?.ok_or(ExecutionError::NoGenesis)?;
            }
            receipts.push(Receipt {
                tx: verified.hash(),
                result,
                events,
            });
        }
        let (writes, head) = seal(store, block, state.into_writes(), &receipts, &expired)?;
        Ok(BlockOutcome {
            receipts,
            expired,
            writes,
            state_root: head.state_root,
            head,
        })
    }
}

/// Adds the chain-head record to writes that do not contain it, keeping key order.
pub(crate) fn with_head(mut writes: Vec<Write>, head: &ChainHead) -> Vec<Write> {
    let k = key::meta();
    let at = writes.partition_point(|w| w.key < k);
    debug_assert!(writes.get(at).is_none_or(|w| w.key != k));
    writes.insert(
        at,
        Write {
            key: k,
            value: Some(encode_record(head)),
        },
    );
    writes
}

/// Seals a block's state writes: updates the ledger tree with them and adds the tree's node
/// changes and the new chain-head record, keeping key order. Returns the writes to commit and
/// the head they make.
pub(crate) fn seal(
    store: &dyn StateStore,
    block: BlockContext,
    mut writes: Vec<Write>,
    receipts: &[Receipt],
    expired: &[Event],
) -> Result<(Vec<Write>, ChainHead), ExecutionError> {
    let tree = commitment::update(store, block.height, &writes)?;
    let results_root = commitment::results_root(receipts, expired);
    let head = ChainHead {
        height: block.height,
        time_ms: block.time_ms,
        state_root: commitment::state_root(tree.root, results_root),
        ledger_root: tree.root,
        results_root,
    };
    // No state key carries the tree's tag, so its nodes go in as one run.
    let at = writes.partition_point(|w| w.key.first() < Some(&key::TREE_NODE));
    debug_assert!(
        writes
            .get(at)
            .is_none_or(|w| w.key.first() != Some(&key::TREE_NODE))
    );
    writes.splice(at..at, tree.writes);
    Ok((with_head(writes, &head), head))
}

fn expire_holds(
    state: &mut State<'_>,
    rules: &Rules,
    block: BlockContext,
) -> Result<Vec<Event>, ExecutionError> {
    let start = vec![key::EXPIRY];
    let end = key::expiry(block.time_ms.saturating_add(1), TransferId(0));
    let due = state.scan(&start, &end, EXPIRIES_PER_BLOCK_MAX)?;
    let mut events = Vec::new();
    let mut tx = Tx::new(state, rules, block, &[]);
    for (k, _) in due {
        let id = k
            .last_chunk::<16>()
            .map(|b| TransferId(u128::from_be_bytes(*b)))
            .ok_or_else(|| ExecutionError::Corrupt { key: k.clone() })?;
        let hold: Hold = tx
            .state
            .get(&key::hold(id))?
            .ok_or_else(|| ExecutionError::Corrupt { key: k.clone() })?;
        match merchant::expire_hold(&mut tx, &hold) {
            Ok(()) => {
                events.append(&mut tx.events);
                tx.commit();
            }
            // Releasing a hold only moves money already reserved; if it cannot, state
            // is inconsistent and the block must not commit.
            Err(TxError::Rejected(_)) => return Err(ExecutionError::Corrupt { key: k }),
            Err(TxError::Failed(e)) => return Err(e),
        }
    }
    Ok(events)
}

/// Account recoveries due by the block's time take effect, earliest due first, then by
/// account id (the index's key order): the same on every node.
fn complete_recoveries(
    state: &mut State<'_>,
    rules: &Rules,
    block: BlockContext,
) -> Result<Vec<Event>, ExecutionError> {
    let start = vec![key::RECOVERY_DUE];
    let end = key::recovery_due(block.time_ms.saturating_add(1), AccountId(0));
    let due = state.scan(&start, &end, consumer::RECOVERIES_PER_BLOCK_MAX)?;
    let mut events = Vec::new();
    let mut tx = Tx::new(state, rules, block, &[]);
    for (k, _) in due {
        let account = k
            .last_chunk::<16>()
            .map(|b| AccountId(u128::from_be_bytes(*b)))
            .ok_or_else(|| ExecutionError::Corrupt { key: k.clone() })?;
        let pending: consumer::PendingRecovery = tx
            .state
            .get(&key::recovery(account))?
            .ok_or_else(|| ExecutionError::Corrupt { key: k.clone() })?;
        match consumer::complete_recovery(&mut tx, &pending) {
            Ok(()) => {
                events.append(&mut tx.events);
                tx.commit();
            }
            // The account and institution a recovery names exist while it pends: if not,
            // state is inconsistent and the block must not commit.
            Err(TxError::Rejected(_)) => return Err(ExecutionError::Corrupt { key: k }),
            Err(TxError::Failed(e)) => return Err(e),
        }
    }
    Ok(events)
}

type TxOutcome = (Result<(), Rejection>, Vec<Event>);

/// The sender's record after its nonce advanced: written back if the body is rejected.
enum Sender {
    Account(Box<Account>),
    Institution(Institution),
    /// A `RegisterAccount` for an account that does not exist yet.
    New,
}

fn execute_tx(
    state: &mut State<'_>,
    rules: &Rules,
    block: BlockContext,
    verified: &VerifiedTransaction,
) -> Result<TxOutcome, ExecutionError> {
    let tx = verified.tx();
    if tx.chain_id != rules.chain_id {
        return Ok((Err(Rejection::WrongChain), Vec::new()));
    }
    let mut ctx = Tx::new(state, rules, block, verified.signers());
    let sender = match authenticate(&mut ctx, verified) {
        Ok(sender) => sender,
        Err(TxError::Rejected(rejection)) => {
            ctx.abort();
            return Ok((Err(rejection), Vec::new()));
        }
        Err(TxError::Failed(e)) => return Err(e),
    };
    let body = Hash::digest("tally-transfer-body", &encode_record(&tx.kind));
    match dispatch(&mut ctx, tx.sender, &tx.kind, body) {
        Ok(()) => {
            let events = std::mem::take(&mut ctx.events);
            ctx.commit();
            Ok((Ok(()), events))
        }
        Err(TxError::Rejected(rejection)) => {
            ctx.abort();
            // A rejected transaction still uses up its nonce.
            match sender {
                Sender::Account(account) => ctx.put_account(&account),
                Sender::Institution(institution) => ctx
                    .state
                    .put(key::institution(institution.id), &institution),
                Sender::New => {}
            }
            ctx.commit();
            Ok((Err(rejection), Vec::new()))
        }
        Err(TxError::Failed(e)) => Err(e),
    }
}

fn check_nonce(expected: u64, got: u64) -> Result<(), Rejection> {
    match got.cmp(&expected) {
        std::cmp::Ordering::Less => Err(Rejection::NonceReplayed),
        std::cmp::Ordering::Greater => Err(Rejection::NonceGap),
        std::cmp::Ordering::Equal => Ok(()),
    }
}

/// Checks the sender exists, the nonce is the next one and the sender's key signed; then
/// advances the nonce.
fn authenticate(tx: &mut Tx<'_, '_>, verified: &VerifiedTransaction) -> TxResult<Sender> {
    let body = verified.tx();
    match body.sender {
        Party::Account(id) => match tx.find_account(id)? {
            Some(mut account) if account.kind.has_holder() => {
                check_nonce(account.holder.nonce, body.nonce)?;
                signed(verified, &account.holder.key)?;
                account.holder.nonce = account
                    .holder
                    .nonce
                    .checked_add(1)
                    .ok_or(Rejection::Overflow)?;
                tx.put_account(&account);
                Ok(Sender::Account(Box::new(account)))
            }
            Some(_) => Err(Rejection::UnknownSender.into()),
            // A new account's registration: its nonce is 0 and it is signed by the key it
            // registers. The contract creates the account with nonce 1.
            None => match &body.kind {
                TxKind::RegisterAccount { account, key, .. } if *account == id => {
                    check_nonce(0, body.nonce)?;
                    signed(verified, key)?;
                    Ok(Sender::New)
                }
                _ => Err(Rejection::UnknownSender.into()),
            },
        },
        Party::Institution(id) => {
            let k = key::institution(id);
            let mut institution: Institution = tx.state.get(&k)?.ok_or(Rejection::UnknownSender)?;
            check_nonce(institution.nonce, body.nonce)?;
            signed(verified, &institution.key.ok_or(Rejection::KeyRevoked)?)?;
            institution.nonce = institution
                .nonce
                .checked_add(1)
                .ok_or(Rejection::Overflow)?;
            tx.state.put(k, &institution);
            Ok(Sender::Institution(institution))
        }
    }
}

fn signed(verified: &VerifiedTransaction, key: &tally_crypto::PublicKey) -> Result<(), Rejection> {
    if verified.is_signed_by(key) {
        Ok(())
    } else {
        Err(Rejection::WrongSigner)
    }
}

fn dispatch(tx: &mut Tx<'_, '_>, sender: Party, kind: &TxKind, body: Hash) -> TxResult {
    use Party::{Account as A, Institution as I};
    match (sender, kind) {
        (I(_), TxKind::Govern(action)) => governance::govern(tx, action),

        (
            A(_),
            TxKind::RegisterAccount {
                account,
                key,
                currency,
                institution,
                tier,
                identity,
            },
        ) => consumer::register_account(
            tx,
            *account,
            *key,
            *currency,
            *institution,
            *tier,
            *identity,
        ),
        (A(s), TxKind::BindCard { card, bank }) => consumer::bind_card(tx, s, *card, *bank),
        (A(s), TxKind::UnbindCard { card }) => consumer::unbind_card(tx, s, *card),
        (A(s), TxKind::TopUp { id, card, amount }) => {
            consumer::top_up(tx, s, body, *id, *card, *amount)
        }
        (A(s), TxKind::Withdraw { id, card, amount }) => {
            consumer::withdraw(tx, s, body, *id, *card, *amount)
        }
        (
            A(s),
            TxKind::Transfer {
                id,
                to,
                amount,
                memo,
            },
        ) => consumer::transfer(tx, s, body, *id, *to, *amount, memo),
        (A(s), TxKind::RotateKey { new_key }) => consumer::rotate_key(tx, s, *new_key),
        (I(s), TxKind::RecoverAccount { account, new_key }) => {
            consumer::recover_account(tx, s, *account, *new_key)
        }
        (A(s), TxKind::CancelRecovery) => consumer::cancel_recovery(tx, s),
        (A(s), TxKind::SetSecondFactor { key, threshold }) => {
            consumer::set_second_factor(tx, s, *key, *threshold)
        }

        (
            I(s),
            TxKind::RegisterMerchant {
                account,
                key,
                currency,
                fee_bps,
                identity,
            },
        ) => merchant::register_merchant(tx, s, *account, *key, *currency, *fee_bps, *identity),
        (
            A(s),
            TxKind::CreateOrder {
                order,
                amount,
                currency,
                expires_at_ms,
                items,
            },
        ) => merchant::create_order(tx, s, *order, *amount, *currency, *expires_at_ms, *items),
        (
            A(s),
            TxKind::PayOrder {
                id,
                order,
                source,
                escrow_ms,
            },
        ) => merchant::pay_order(tx, s, body, *id, *order, *source, *escrow_ms),
        (A(s), TxKind::ConfirmReceipt { order }) => merchant::confirm_receipt(tx, s, *order),
        (I(s), TxKind::AuthorizeCardPayment { order, approve }) => {
            merchant::authorize_card_payment(tx, s, *order, *approve)
        }
        (A(s), TxKind::CancelOrder { order }) => merchant::cancel_order(tx, s, *order),
        (A(s), TxKind::Refund { id, order, amount }) => {
            merchant::refund(tx, s, body, *id, *order, *amount)
        }
        (
            A(s),
            TxKind::CollectByCode {
                id, code, amount, ..
            },
        ) => merchant::collect_by_code(tx, s, body, *id, code, *amount),
        (
            A(s),
            TxKind::PayMerchant {
                id,
                merchant: to,
                amount,
                reference,
            },
        ) => merchant::pay_merchant(tx, s, body, *id, *to, *amount, reference),
        (A(s), TxKind::SettleMerchant { id, amount }) => {
            merchant::settle_merchant(tx, s, body, *id, *amount)
        }

        (
            I(s),
            TxKind::RegisterBiller {
                account,
                key,
                currency,
                identity,
            },
        ) => bills::register_biller(tx, s, *account, *key, *currency, *identity),
        (
            A(s),
            TxKind::IssueBill {
                bill,
                customer,
                amount,
                due_ms,
            },
        ) => bills::issue_bill(tx, s, *bill, *customer, *amount, *due_ms),
        (A(s), TxKind::PayBill { id, bill, amount }) => {
            bills::pay_bill(tx, s, body, *id, *bill, *amount)
        }

        (
            I(s),
            TxKind::PublishFxRate {
                base,
                quote,
                rate,
                valid_from_ms,
                valid_until_ms,
            },
        ) => fx::publish_rate(tx, s, *base, *quote, *rate, *valid_from_ms, *valid_until_ms),
        (
            A(s),
            TxKind::CrossBorderTransfer {
                id,
                provider,
                beneficiary,
                amount,
                travel_rule,
            },
        ) => fx::cross_border_transfer(
            tx,
            s,
            body,
            *id,
            *provider,
            *beneficiary,
            *amount,
            travel_rule,
        ),

        (I(s), TxKind::SettlementCycle) => interbank::settlement_cycle(tx, s),
        (I(s), TxKind::ConfirmSettlement { cycle }) => interbank::confirm_settlement(tx, s, *cycle),

        (I(s), TxKind::Freeze { account, reason }) => regulation::freeze(tx, s, *account, *reason),
        (I(s), TxKind::Unfreeze { account }) => regulation::unfreeze(tx, s, *account),
        (I(s), TxKind::AddSanction { identity }) => regulation::add_sanction(tx, s, *identity),
        (I(s), TxKind::RemoveSanction { identity }) => {
            regulation::remove_sanction(tx, s, *identity)
        }

        (
            A(s),
            TxKind::OpenDispute {
                id,
                disputed,
                reason,
            },
        ) => disputes::open_dispute(tx, s, body, *id, *disputed, *reason),
        (I(s), TxKind::DecideDispute { disputed, outcome }) => {
            disputes::decide_dispute(tx, s, *disputed, *outcome)
        }
        (A(s), TxKind::RequestRefund { order, amount }) => {
            disputes::request_refund(tx, s, *order, *amount)
        }
        (A(s), TxKind::AcceptRefundRequest { id, order }) => {
            disputes::accept_refund_request(tx, s, body, *id, *order)
        }
        (A(s), TxKind::RefuseRefundRequest { order }) => {
            disputes::refuse_refund_request(tx, s, *order)
        }
        (I(s), TxKind::SetEncryptionKey { key }) => travel_rule::set_encryption_key(tx, s, *key),

        _ => Err(Rejection::NotPermitted.into()),
    }
}
