//! The settlement ledger and the native payment contracts: a deterministic state machine
//! over a key-value view. No I/O, clocks or randomness: the node supplies state (a
//! [`StateStore`]), block time and verified transactions, and commits what comes back.
//!
//! How the node uses it:
//! 1. **Genesis**: [`Genesis::apply`] on an empty store returns writes to commit.
//! 2. **Admission**: [`EncodedTransaction::decode`] untrusted bytes (size limit, field
//!    limits, canonical form), then [`verify_transactions`] in batches: only
//!    [`VerifiedTransaction`]s can be executed.
//! 3. **Execution**: [`Ledger::execute_block`] returns receipts (one per transaction, with
//!    a stable [`Rejection::code`] or events), events of holds released at block time, the
//!    ordered writes to commit atomically with the block, and the new state root.
//! 4. **Checking**: [`check_invariants`] over the whole state (debug builds, tests).
//!
//! See `README.md` for every transaction, who signs it, its effects, events and errors.
#![forbid(unsafe_code)]

pub mod admission;
mod bills;
pub mod commitment;
mod consumer;
mod context;
mod disputes;
pub mod encoding;
mod error;
mod events;
mod execute;
pub mod fx;
mod genesis;
mod governance;
mod interbank;
mod invariants;
mod ledger;
mod merchant;
mod regulation;
pub mod snapshot;
mod state;
mod store;
pub mod structuring;
mod transaction;
mod travel_rule;
mod tree_update;
mod types;
mod verify;

pub use bills::Bill;
pub use consumer::{CARDS_PER_ACCOUNT_MAX, CardBinding, PendingRecovery, RECOVERIES_PER_BLOCK_MAX};
pub use disputes::{Dispute, DisputeStatus, RefundRequest};
pub use encoding::EncodedTransaction;
pub use error::{DecodeError, ExecutionError, Rejection, StoreError};
pub use events::{Event, NetPosition};
pub use execute::{BlockContext, BlockOutcome, ChainHead, EXPIRIES_PER_BLOCK_MAX, Ledger, Receipt};
pub use genesis::{Genesis, GenesisInstitution, GenesisOutcome};
pub use governance::{
    Corridor, DISPUTE_PERIOD_MS_MAX, DisputeRules, INSTITUTION_NAME_BYTES_MAX, Institution,
    NAME_CHARACTERS, NO_CAP, RECOVERY_DELAY_MS_DEFAULT, RECOVERY_DELAY_MS_MAX, Rules, TierLimits,
    institution_name_is_valid,
};
pub use interbank::{SettlementCycleRecord, net_positions};
pub use invariants::{InvariantReport, InvariantViolation, check_invariants};
pub use ledger::accounts::{Account, AccountKind, Holder, SecondFactor};
pub use ledger::transfers::{Hold, HoldPurpose, TransferRecord};
pub use merchant::{
    CARD_AUTHORIZATION_MS, CARD_AUTHORIZATIONS_PER_WALLET_MAX, ESCROW_MS_MAX, MerchantPayment,
    Order, OrderStatus, PAYMENT_CODE_LIFETIME_MS_MAX, merchant_fee,
};
pub use regulation::PersonOutflow;
pub use store::{Entries, MemoryStore, StateStore, Write};
pub use transaction::{
    DisputeOutcome, DisputeReason, Disputed, EncryptionKey, FxAmount, GovernanceAction,
    MEMO_BYTES_MAX, Memo, PAYMENT_CODE_DOMAIN, Party, PaymentCode, PaymentSource, Roles,
    SealedTravelRule, SignedTransaction, TRAVEL_RULE_CIPHERTEXT_BYTES_MAX,
    TRAVEL_RULE_CIPHERTEXT_BYTES_MIN, TRAVEL_RULE_RECIPIENTS_MAX, TX_SIGNATURE_DOMAIN, Transaction,
    TxKind, TxSignature,
};
pub use types::{
    AMOUNT_MAX, AccountId, Amount, BillId, CardToken, Currency, CycleId, DAY_MS, InstitutionId,
    OrderId, TimeMs, TransferId, utc_year,
};
pub use verify::{VerifiedTransaction, VerifyError, verify_transactions};

pub mod query;
