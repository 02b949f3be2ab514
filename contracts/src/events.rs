//! What applied transactions did, for notifications: the node streams these to subscribers
//! (consumer, merchant, bank, regulator) when the block commits.

use serde::{Deserialize, Serialize};
use tally_crypto::{Hash, PublicKey};

use crate::transaction::{DisputeOutcome, DisputeReason, Disputed, EncryptionKey, Memo};
use crate::types::{
    AccountId, Amount, BillId, Currency, CycleId, InstitutionId, OrderId, TimeMs, TransferId,
};

/// A net position of one institution in one currency after a settlement cycle: positive
/// receives, negative pays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct NetPosition {
    pub currency: Currency,
    pub institution: InstitutionId,
    pub net: i128,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    GovernanceApplied {
        action: String,
    },
    AccountRegistered {
        account: AccountId,
        institution: InstitutionId,
        tier: u8,
    },
    CardBound {
        account: AccountId,
        bank: InstitutionId,
    },
    CardUnbound {
        account: AccountId,
        bank: InstitutionId,
    },
    ToppedUp {
        id: TransferId,
        account: AccountId,
        bank: InstitutionId,
        amount: Amount,
    },
    Withdrawn {
        id: TransferId,
        account: AccountId,
        bank: InstitutionId,
        amount: Amount,
    },
    /// Money left `from` and reached `to`; both sides are notified from this one event.
    TransferReceived {
        id: TransferId,
        from: AccountId,
        to: AccountId,
        amount: Amount,
        /// The sender's memo, so the receiver reads it with the money; empty for none.
        memo: Memo,
    },
    KeyRotated {
        account: AccountId,
        key: PublicKey,
    },
    /// The new key took over, at the recovery's due time (in `BlockOutcome::expired`).
    AccountRecovered {
        account: AccountId,
        institution: InstitutionId,
    },
    /// The institution holding the account announced a recovery: `new_key` becomes the
    /// account's key at `due_ms` unless the account's current key cancels it before.
    RecoveryAnnounced {
        account: AccountId,
        institution: InstitutionId,
        new_key: PublicKey,
        due_ms: TimeMs,
    },
    /// The recovery will not happen: the account's key cancelled it (`by_account`), or at
    /// its due time the institution's key that announced it had been replaced or revoked.
    RecoveryCancelled {
        account: AccountId,
        institution: InstitutionId,
        by_account: bool,
    },
    SecondFactorSet {
        account: AccountId,
        enabled: bool,
        threshold: Amount,
    },
    MerchantRegistered {
        merchant: AccountId,
        acquirer: InstitutionId,
        fee_bps: u16,
    },
    OrderCreated {
        order: OrderId,
        merchant: AccountId,
        amount: Amount,
    },
    PaymentCompleted {
        order: OrderId,
        payer: AccountId,
        merchant: AccountId,
        amount: Amount,
    },
    /// The payment is reserved: in escrow, or waiting for the card's bank.
    PaymentHeld {
        order: OrderId,
        payer: AccountId,
        merchant: AccountId,
        amount: Amount,
        expires_at_ms: TimeMs,
    },
    PaymentVoided {
        order: OrderId,
        payer: AccountId,
        amount: Amount,
    },
    OrderCancelled {
        order: OrderId,
    },
    Refunded {
        id: TransferId,
        order: OrderId,
        payer: AccountId,
        amount: Amount,
        refunded_total: Amount,
    },
    CollectedByCode {
        id: TransferId,
        payer: AccountId,
        merchant: AccountId,
        amount: Amount,
    },
    MerchantPaid {
        id: TransferId,
        payer: AccountId,
        merchant: AccountId,
        amount: Amount,
        /// The merchant's reference from its QR code (till, order), if it had one.
        reference: Memo,
    },
    MerchantSettled {
        id: TransferId,
        merchant: AccountId,
        bank: InstitutionId,
        net: Amount,
        fee: Amount,
    },
    BillerRegistered {
        biller: AccountId,
        acquirer: InstitutionId,
    },
    BillIssued {
        bill: BillId,
        biller: AccountId,
        customer: Hash,
        amount: Amount,
        due_ms: TimeMs,
    },
    BillPaid {
        id: TransferId,
        bill: BillId,
        payer: AccountId,
        biller: AccountId,
        amount: Amount,
    },
    FxRatePublished {
        provider: InstitutionId,
        base: Currency,
        quote: Currency,
        rate: u64,
        valid_until_ms: TimeMs,
    },
    RemittanceCredited {
        id: TransferId,
        sender: AccountId,
        beneficiary: AccountId,
        debited: Amount,
        debit_currency: Currency,
        credited: Amount,
        credit_currency: Currency,
        /// The institutions the travel-rule data was sealed to (none below the threshold).
        travel_rule_for: Vec<InstitutionId>,
    },
    ObligationRecorded {
        currency: Currency,
        from: InstitutionId,
        to: InstitutionId,
        amount: Amount,
    },
    SettlementCycleOpened {
        cycle: CycleId,
        positions: Vec<NetPosition>,
    },
    SettlementConfirmed {
        cycle: CycleId,
        institution: InstitutionId,
    },
    SettlementClosed {
        cycle: CycleId,
    },
    AccountFrozen {
        account: AccountId,
        reason: Hash,
    },
    AccountUnfrozen {
        account: AccountId,
    },
    SanctionAdded {
        identity: Hash,
    },
    SanctionRemoved {
        identity: Hash,
    },
    /// A payer disputed a payment: `amount` is held on `held_from` (the merchant's or
    /// biller's account, or its acquirer's settlement account) until `decider` decides or
    /// `deadline_ms` passes. Names both sides, so both see it.
    DisputeOpened {
        disputed: Disputed,
        payer: AccountId,
        merchant: AccountId,
        amount: Amount,
        reason: DisputeReason,
        decider: InstitutionId,
        held_from: AccountId,
        deadline_ms: TimeMs,
    },
    /// A dispute ended: refunded (`held_from` → `refund_to`, where the payment came from)
    /// or released to the merchant. `decided_by` is `None` when the deadline's rule ended it.
    DisputeResolved {
        disputed: Disputed,
        payer: AccountId,
        merchant: AccountId,
        amount: Amount,
        outcome: DisputeOutcome,
        decided_by: Option<InstitutionId>,
        held_from: AccountId,
        refund_to: AccountId,
    },
    RefundRequested {
        order: OrderId,
        payer: AccountId,
        merchant: AccountId,
        amount: Amount,
    },
    /// The merchant answered a refund request; an accepted one also emits `Refunded`.
    RefundRequestAnswered {
        order: OrderId,
        payer: AccountId,
        merchant: AccountId,
        amount: Amount,
        accepted: bool,
    },
    EncryptionKeySet {
        institution: InstitutionId,
        key: EncryptionKey,
    },
}
