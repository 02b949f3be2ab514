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

/// A short text a payer attaches to a payment: a transfer's memo, or the merchant's
/// reference (till, order) a static QR code carries. At most [`MEMO_BYTES_MAX`] bytes of
/// UTF-8 with no control characters (it is shown in people's terminals and pages); empty
/// means none, so "no memo" has one encoding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize)]
pub struct Memo(String);

/// The longest memo or merchant reference, in bytes.
pub const MEMO_BYTES_MAX: usize = 64;

impl Memo {
    /// No memo.
    pub const NONE: Memo = Memo(String::new());

    /// `text` as a memo, if it is short enough and has no control characters.
    pub fn new(text: &str) -> Option<Memo> {
        let memo = Memo(text.to_string());
        memo.is_well_formed().then_some(memo)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Within [`MEMO_BYTES_MAX`] bytes, no control characters. Checked when a transaction
    /// is decoded, so a memo that is not well formed never reaches a block.
    pub fn is_well_formed(&self) -> bool {
        self.0.len() <= MEMO_BYTES_MAX && !self.0.chars().any(char::is_control)
    }
}

impl std::fmt::Display for Memo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// An X25519 public key an institution receives encrypted data under (travel-rule data,
/// HPKE base mode). The ledger only stores and compares it; it never decrypts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct EncryptionKey(#[serde(with = "hex_bytes")] pub [u8; 32]);

impl EncryptionKey {
    /// Not all zeroes (the identity point: every shared secret with it is zero).
    pub fn is_valid(&self) -> bool {
        self.0 != [0; 32]
    }

    pub fn to_hex(&self) -> String {
        hex_bytes::encode(&self.0)
    }

    /// 64 hex digits.
    pub fn from_hex(text: &str) -> Option<EncryptionKey> {
        hex_bytes::decode(text)?.try_into().ok().map(EncryptionKey)
    }
}

/// Bytes as hex in JSON (and other human-readable forms), as they are in binary otherwise.
mod hex_bytes {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn encode(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    pub fn decode(text: &str) -> Option<Vec<u8>> {
        if !text.len().is_multiple_of(2) {
            return None;
        }
        (0..text.len())
            .step_by(2)
            .map(|i| {
                text.get(i..i + 2)
                    .and_then(|pair| u8::from_str_radix(pair, 16).ok())
            })
            .collect()
    }

    pub trait Bytes: Sized {
        fn bytes(&self) -> &[u8];
        fn from_vec(v: Vec<u8>) -> Option<Self>;
    }

    impl Bytes for Vec<u8> {
        fn bytes(&self) -> &[u8] {
            self
        }
        fn from_vec(v: Vec<u8>) -> Option<Self> {
            Some(v)
        }
    }

    impl Bytes for [u8; 32] {
        fn bytes(&self) -> &[u8] {
            self
        }
        fn from_vec(v: Vec<u8>) -> Option<Self> {
            v.try_into().ok()
        }
    }

    pub fn serialize<T, S>(value: &T, s: S) -> Result<S::Ok, S::Error>
    where
        T: Bytes + Serialize,
        S: Serializer,
    {
        if s.is_human_readable() {
            s.serialize_str(&encode(value.bytes()))
        } else {
            value.serialize(s)
        }
    }

    pub fn deserialize<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: Bytes + Deserialize<'de>,
        D: Deserializer<'de>,
    {
        if d.is_human_readable() {
            let text = String::deserialize(d)?;
            decode(&text)
                .and_then(T::from_vec)
                .ok_or_else(|| serde::de::Error::custom("expected hex of the right length"))
        } else {
            T::deserialize(d)
        }
    }
}

/// The travel-rule data of a cross-border transfer, sealed to one institution: HPKE
/// (RFC 9180, base mode, DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, ChaCha20-Poly1305) to
/// the recipient's registered [`EncryptionKey`]. The names, accounts and addresses of the
/// originator and the beneficiary are inside the ciphertext only: never in clear on chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SealedTravelRule {
    /// The institution that can open it: the beneficiary's, or a regulator.
    pub recipient: InstitutionId,
    /// The recipient's registered key it was sealed to.
    pub key: EncryptionKey,
    /// HPKE's encapsulated key.
    #[serde(with = "hex_bytes")]
    pub encapsulated: [u8; 32],
    /// The sealed data and its tag, at most [`TRAVEL_RULE_CIPHERTEXT_BYTES_MAX`] bytes.
    #[serde(with = "hex_bytes")]
    pub ciphertext: Vec<u8>,
}

/// The most bytes of one sealed copy of travel-rule data (names, accounts and addresses of
/// both sides, and the AEAD tag).
pub const TRAVEL_RULE_CIPHERTEXT_BYTES_MAX: usize = 480;
/// The fewest: the AEAD tag alone is 16 bytes, so anything shorter carries nothing.
pub const TRAVEL_RULE_CIPHERTEXT_BYTES_MIN: usize = 17;
/// The most sealed copies on one transfer: the beneficiary's institution, a regulator, and
/// one more (a second regulator).
pub const TRAVEL_RULE_RECIPIENTS_MAX: usize = 3;

/// A completed payment a payer may dispute: a paid order, a paid bill, or a static-QR or
/// payment-code payment (by its transfer id).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Disputed {
    Order(OrderId),
    Bill(BillId),
    Payment(TransferId),
}

impl Disputed {
    /// Fixed-width key bytes: a kind byte, then the 16-byte id.
    pub fn to_key_bytes(self) -> [u8; 17] {
        let (kind, id) = match self {
            Disputed::Order(o) => (1u8, o.0),
            Disputed::Bill(b) => (2, b.0),
            Disputed::Payment(t) => (3, t.0),
        };
        let mut bytes = [0u8; 17];
        bytes[0] = kind;
        bytes[1..].copy_from_slice(&id.to_be_bytes());
        bytes
    }

    /// The inverse of [`Disputed::to_key_bytes`].
    pub fn from_key_bytes(bytes: &[u8; 17]) -> Option<Disputed> {
        let (kind, id) = bytes.split_first()?;
        let id = u128::from_be_bytes(<[u8; 16]>::try_from(id).ok()?);
        match kind {
            1 => Some(Disputed::Order(OrderId(id))),
            2 => Some(Disputed::Bill(BillId(id))),
            3 => Some(Disputed::Payment(TransferId(id))),
            _ => None,
        }
    }
}

/// Why a payer disputes a payment (the card schemes' reason families).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisputeReason {
    /// Paid, never received.
    NotReceived,
    /// Received, not what was described.
    NotAsDescribed,
    /// The payer did not make this payment.
    Unauthorized,
    /// Charged twice for one purchase.
    Duplicate,
    /// Cancelled with the merchant, not refunded.
    Cancelled,
    /// Charged another amount than agreed.
    IncorrectAmount,
}

/// How a dispute ends: the held amount goes back where the payment came from, or is
/// released to the merchant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisputeOutcome {
    Refund,
    Release,
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

    /// Each role with the word genesis descriptions and the API name it by.
    pub const NAMED: [(&'static str, Roles); 6] = [
        ("bank", Roles::BANK),
        ("platform", Roles::PLATFORM),
        ("fx_provider", Roles::FX_PROVIDER),
        ("acquirer", Roles::ACQUIRER),
        ("regulator", Roles::REGULATOR),
        ("kyc", Roles::KYC),
    ];

    /// The words for the roles held, in [`Roles::NAMED`]'s order.
    pub fn names(self) -> Vec<&'static str> {
        Roles::NAMED
            .iter()
            .filter(|(_, r)| self.contains(*r))
            .map(|(name, _)| *name)
            .collect()
    }
}

/// A change of the chain's rules, signed by a quorum of the governance keys.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum GovernanceAction {
    AddInstitution {
        id: InstitutionId,
        key: PublicKey,
        roles: Roles,
        /// What people call it ("Bank A"): see [`crate::institution_name_is_valid`].
        name: String,
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
    /// How long after a payment its payer may dispute it, how long the deciding
    /// institution has, and how an undecided dispute ends at its deadline.
    SetDisputeRules {
        window_ms: u64,
        decision_ms: u64,
        default: DisputeOutcome,
    },
    /// From which amount (in minor units of the sender's currency) a cross-border
    /// transfer must carry travel-rule data; [`crate::NO_CAP`] takes the requirement away.
    SetTravelRuleThreshold {
        currency: Currency,
        threshold: Amount,
    },
    /// A new key for an institution (its old one compromised or lost): the old key signs
    /// nothing from this block on. The new key co-signs; the old key's signature does not
    /// count toward the quorum.
    ReplaceInstitutionKey {
        institution: InstitutionId,
        new_key: PublicKey,
    },
    /// The institution signs nothing until a `ReplaceInstitutionKey`; its accounts and
    /// obligations stay.
    RevokeInstitutionKey {
        institution: InstitutionId,
    },
    /// How long an account recovery waits, announced, before it takes effect (1 ms to 30
    /// days). Recoveries already announced keep their due time.
    SetRecoveryDelay {
        delay_ms: u64,
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
        /// A note from the sender to the receiver (what the money is for); empty for none.
        memo: Memo,
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
    /// Sent by the account with its current key: drops the recovery announced for it.
    CancelRecovery,

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
        /// The merchant's reference from its QR code (till, order), so it can match the
        /// payment; empty when the code has none.
        reference: Memo,
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
        /// The travel-rule data, sealed to each institution that may read it, sorted by
        /// recipient; empty below the governance threshold.
        travel_rule: Vec<SealedTravelRule>,
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

    // --- disputes and refund requests (appended: earlier variants keep their encoding) ---
    /// The payer disputes a completed payment; `id` names the hold on the disputed amount.
    OpenDispute {
        id: TransferId,
        disputed: Disputed,
        reason: DisputeReason,
    },
    /// The card's bank (card-funded) or the wallet's institution decides.
    DecideDispute {
        disputed: Disputed,
        outcome: DisputeOutcome,
    },
    /// The payer of a paid order asks its merchant for a refund.
    RequestRefund {
        order: OrderId,
        amount: Amount,
    },
    /// The merchant accepts: the refund is made by the `Refund` rules, under `id`.
    AcceptRefundRequest {
        id: TransferId,
        order: OrderId,
    },
    /// The merchant refuses.
    RefuseRefundRequest {
        order: OrderId,
    },

    // --- travel rule ---
    /// An institution registers the X25519 key it receives travel-rule data under.
    SetEncryptionKey {
        key: EncryptionKey,
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
            TxKind::CancelRecovery => "CancelRecovery",
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
            TxKind::OpenDispute { .. } => "OpenDispute",
            TxKind::DecideDispute { .. } => "DecideDispute",
            TxKind::RequestRefund { .. } => "RequestRefund",
            TxKind::AcceptRefundRequest { .. } => "AcceptRefundRequest",
            TxKind::RefuseRefundRequest { .. } => "RefuseRefundRequest",
            TxKind::SetEncryptionKey { .. } => "SetEncryptionKey",
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
