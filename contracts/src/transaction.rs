//! Transactions: what a sender asks the ledger to do, and the signatures that authorize it.
//! The set of transactions is closed: one [`TxKind`] variant per flow of the payment
//! process. See the crate's README for who may sign each and what it does.

use serde::{Deserialize, Serialize};
use tally_crypto::{Hash, HashBuilder, PublicKey, Signature, SigningKey};

use crate::types::{
    AccountId, Amount, BillId, CardToken, Currency, CycleId, InstitutionId, OrderId, TimeMs,
    TransferId,
};

/// The domain tag transaction signatures are made under.
pub const TX_SIGNATURE_DOMAIN: &str = "tally-tx";
/// The domain tag a consumer's offline payment code is signed under.
pub const PAYMENT_CODE_DOMAIN: &str = "tally-payment-code";
/// The domain tag of transaction ids (see [`SignedTransaction::hash`]).
pub const TX_ID_DOMAIN: &str = "tally-tx-id";

/// Who sends a transaction and whose nonce it uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Party {
    /// A consumer, merchant or biller account, signing with its device key.
    Account(AccountId),
    /// An institution, signing with its institution key.
    Institution(InstitutionId),
}

/// A transaction's body: everything the signatures cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    pub chain_id: String,
    pub sender: Party,
    /// The sender's next nonce: 0, 1, 2, ... without gaps.
    pub nonce: u64,
    pub kind: TxKind,
}

/// Where the money for an order comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentSource {
    /// The payer's wallet balance.
    Balance,
    /// A card bound to the payer's account; the card's bank funds it.
    Card(CardToken),
}

/// The bound a cross-border sender sets on a conversion.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum FxAmount {
    /// Debit exactly `debit`; the beneficiary must receive at least `min_credit`.
    Send { debit: Amount, min_credit: Amount },
    /// Credit exactly `credit`; the sender pays at most `max_debit`.
    Receive { credit: Amount, max_debit: Amount },
}

/// A consumer's offline payment code, signed by the consumer's device key under
/// [`PAYMENT_CODE_DOMAIN`] and shown to a merchant, who submits it in `CollectByCode`.
/// It is good from `issued_at_ms` until before `expires_at_ms`, at most
/// [`crate::PAYMENT_CODE_LIFETIME_MS_MAX`] (10 minutes) after it was issued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentCode {
    pub payer: AccountId,
    /// The key that signed the code; must be the payer's current device key.
    pub payer_key: PublicKey,
    pub max_amount: Amount,
    /// When the payer made it (block time it is good from).
    pub issued_at_ms: TimeMs,
    pub expires_at_ms: TimeMs,
    /// One-time: a code with this nonce works once for this key.
    pub code_nonce: u64,
    /// The merchant it is for, if the payer named one: then only that merchant collects it.
    pub merchant: Option<AccountId>,
}

impl PaymentCode {
    pub fn signing_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    pub fn sign(&self, key: &SigningKey, chain_id: &str) -> Signature {
        key.sign(PAYMENT_CODE_DOMAIN, chain_id, &self.signing_bytes())
    }
}

/// Institution roles, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Roles(pub u8);

impl Roles {
    /// Holds wallet money as its liability; binds cards; settles with other banks.
    pub const BANK: Roles = Roles(1);
    /// The payment platform: collects merchant fees.
    pub const PLATFORM: Roles = Roles(2);
    pub const FX_PROVIDER: Roles = Roles(4);
    /// Registers merchants and billers.
    pub const ACQUIRER: Roles = Roles(8);
    pub const REGULATOR: Roles = Roles(16);
    /// Verifies identities: co-signs account registrations and recoveries.
    pub const KYC: Roles = Roles(32);

    pub fn contains(self, other: Roles) -> bool {
        self.0 & other.0 == other.0
    }

    pub fn with(self, other: Roles) -> Roles {
        Roles(self.0 | other.0)
    }
}

/// A change of the chain's rules, signed by a quorum of the governance keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GovernanceAction {
    AddInstitution {
        id: InstitutionId,
        key: PublicKey,
        roles: Roles,
    },
    SetIssuanceLimit {
        bank: InstitutionId,
        currency: Currency,
        limit: Amount,
    },
    SetFxCreditLine {
        provider: InstitutionId,
        currency: Currency,
        limit: Amount,
    },
    /// A KYC tier's (account class's) limits: see [`crate::TierLimits`].
    SetTierLimits {
        tier: u8,
        single_max: Amount,
        daily_max: Amount,
        yearly_max: Amount,
        cross_border_yearly_max: Amount,
    },
    SetFeeSchedule {
        merchant_fee_bps_max: u16,
    },
    SetCorridor {
        from: Currency,
        to: Currency,
        single_max: Amount,
    },
}

/// What a transaction does. One variant per transaction of the payment process.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum TxKind {
    // --- governance ---
    Govern(GovernanceAction),

    // --- consumer ---
    RegisterAccount {
        account: AccountId,
        key: PublicKey,
        currency: Currency,
        institution: InstitutionId,
        tier: u8,
        identity: Hash,
    },
    BindCard {
        card: CardToken,
        bank: InstitutionId,
    },
    UnbindCard {
        card: CardToken,
    },
    TopUp {
        id: TransferId,
        card: CardToken,
        amount: Amount,
    },
    Withdraw {
        id: TransferId,
        card: CardToken,
        amount: Amount,
    },
    Transfer {
        id: TransferId,
        to: AccountId,
        amount: Amount,
    },
    RotateKey {
        new_key: PublicKey,
    },
    RecoverAccount {
        account: AccountId,
        new_key: PublicKey,
    },
    SetSecondFactor {
        key: Option<PublicKey>,
        threshold: Amount,
    },

    // --- merchant ---
    RegisterMerchant {
        account: AccountId,
        key: PublicKey,
        currency: Currency,
        fee_bps: u16,
        identity: Hash,
    },
    CreateOrder {
        order: OrderId,
        amount: Amount,
        currency: Currency,
        expires_at_ms: TimeMs,
        items: Hash,
    },
    PayOrder {
        id: TransferId,
        order: OrderId,
        source: PaymentSource,
        /// Hold the payment in escrow until `ConfirmReceipt` or this many milliseconds.
        escrow_ms: Option<u64>,
    },
    ConfirmReceipt {
        order: OrderId,
    },
    AuthorizeCardPayment {
        order: OrderId,
        approve: bool,
    },
    CancelOrder {
        order: OrderId,
    },
    Refund {
        id: TransferId,
        order: OrderId,
        amount: Amount,
    },
    CollectByCode {
        id: TransferId,
        code: PaymentCode,
        code_signature: Signature,
        amount: Amount,
    },
    PayMerchant {
        id: TransferId,
        merchant: AccountId,
        amount: Amount,
    },
    SettleMerchant {
        id: TransferId,
        amount: Amount,
    },

    // --- bills ---
    RegisterBiller {
        account: AccountId,
        key: PublicKey,
        currency: Currency,
        identity: Hash,
    },
    IssueBill {
        bill: BillId,
        customer: Hash,
        amount: Amount,
        due_ms: TimeMs,
    },
    PayBill {
        id: TransferId,
        bill: BillId,
        amount: Amount,
    },

    // --- cross-border ---
    PublishFxRate {
        base: Currency,
        quote: Currency,
        /// Quote minor units per base minor unit, times [`crate::fx::RATE_SCALE`].
        rate: u64,
        valid_from_ms: TimeMs,
        valid_until_ms: TimeMs,
    },
    CrossBorderTransfer {
        id: TransferId,
        provider: InstitutionId,
        beneficiary: AccountId,
        amount: FxAmount,
    },

    // --- interbank ---
    SettlementCycle,
    ConfirmSettlement {
        cycle: CycleId,
    },

    // --- regulation ---
    Freeze {
        account: AccountId,
        reason: Hash,
    },
    Unfreeze {
        account: AccountId,
    },
    AddSanction {
        identity: Hash,
    },
    RemoveSanction {
        identity: Hash,
    },
}

impl TxKind {
    /// A short stable name, for logs and metrics.
    pub fn name(&self) -> &'static str {
        match self {
            TxKind::Govern(_) => "Govern",
            TxKind::RegisterAccount { .. } => "RegisterAccount",
            TxKind::BindCard { .. } => "BindCard",
            TxKind::UnbindCard { .. } => "UnbindCard",
            TxKind::TopUp { .. } => "TopUp",
            TxKind::Withdraw { .. } => "Withdraw",
            TxKind::Transfer { .. } => "Transfer",
            TxKind::RotateKey { .. } => "RotateKey",
            TxKind::RecoverAccount { .. } => "RecoverAccount",
            TxKind::SetSecondFactor { .. } => "SetSecondFactor",
            TxKind::RegisterMerchant { .. } => "RegisterMerchant",
            TxKind::CreateOrder { .. } => "CreateOrder",
            TxKind::PayOrder { .. } => "PayOrder",
            TxKind::ConfirmReceipt { .. } => "ConfirmReceipt",
            TxKind::AuthorizeCardPayment { .. } => "AuthorizeCardPayment",
            TxKind::CancelOrder { .. } => "CancelOrder",
            TxKind::Refund { .. } => "Refund",
            TxKind::CollectByCode { .. } => "CollectByCode",
            TxKind::PayMerchant { .. } => "PayMerchant",
            TxKind::SettleMerchant { .. } => "SettleMerchant",
            TxKind::RegisterBiller { .. } => "RegisterBiller",
            TxKind::IssueBill { .. } => "IssueBill",
            TxKind::PayBill { .. } => "PayBill",
            TxKind::PublishFxRate { .. } => "PublishFxRate",
            TxKind::CrossBorderTransfer { .. } => "CrossBorderTransfer",
            TxKind::SettlementCycle => "SettlementCycle",
            TxKind::ConfirmSettlement { .. } => "ConfirmSettlement",
            TxKind::Freeze { .. } => "Freeze",
            TxKind::Unfreeze { .. } => "Unfreeze",
            TxKind::AddSanction { .. } => "AddSanction",
            TxKind::RemoveSanction { .. } => "RemoveSanction",
        }
    }
}

/// One signature on a transaction, with the key that made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TxSignature {
    pub key: PublicKey,
    pub signature: Signature,
}

/// A transaction with its signatures: the sender's, and any co-signers' (KYC institution,
/// card's bank, second factor, new key, governance signers). Canonical form: signatures
/// sorted by key, no key twice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedTransaction {
    pub tx: Transaction,
    pub signatures: Vec<TxSignature>,
}

impl Transaction {
    /// The bytes every signature covers.
    pub fn signing_bytes(&self) -> Vec<u8> {
        postcard::to_allocvec(self).unwrap_or_default()
    }

    /// Signs with each key, in canonical order.
    pub fn sign(self, keys: &[&SigningKey]) -> SignedTransaction {
        let bytes = self.signing_bytes();
        let mut signatures: Vec<TxSignature> = keys
            .iter()
            .map(|k| TxSignature {
                key: k.public_key(),
                signature: k.sign(TX_SIGNATURE_DOMAIN, &self.chain_id, &bytes),
            })
            .collect();
        signatures.sort_by_key(|s| s.key);
        signatures.dedup_by_key(|s| s.key);
        SignedTransaction {
            tx: self,
            signatures,
        }
    }
}

impl SignedTransaction {
    /// The transaction's id: its body and the set of keys that signed it. A copy with
    /// fewer (or other) signatures is another transaction, so it can neither pass for the
    /// original in the mempool's duplicate check or the committed index, nor answer for it.
    /// The signatures' bytes are left out: only a key's holder can make another signature
    /// with it, and every valid one means the same.
    pub fn hash(&self) -> Hash {
        tx_id(
            &self.tx.signing_bytes(),
            self.signatures.iter().map(|s| &s.key),
        )
    }
}

/// A transaction's id from its signed bytes and its signers' keys (sorted, as in the
/// canonical encoding). Each part is length-prefixed by the hash builder.
pub(crate) fn tx_id<'a>(body: &[u8], signers: impl IntoIterator<Item = &'a PublicKey>) -> Hash {
    signers
        .into_iter()
        .fold(HashBuilder::new(TX_ID_DOMAIN).update(body), |id, key| {
            id.update(&key.0)
        })
        .finish()
}
