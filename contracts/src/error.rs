//! Why a transaction was rejected (a stable code per reason), and why a block could not be
//! executed at all (the store failed or holds bytes this code did not write).

use serde::{Deserialize, Serialize};

macro_rules! rejections {
    ($( $(#[$doc:meta])* $variant:ident => $code:literal, $msg:literal; )*) => {
        /// Why a transaction was rejected. A rejected transaction changes nothing but the
        /// sender's nonce; its receipt carries [`Rejection::code`], which never changes
        /// meaning once published.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
        pub enum Rejection {
            $( $(#[$doc])* #[error($msg)] $variant, )*
        }

        impl Rejection {
            /// The stable, machine-readable code.
            pub fn code(self) -> &'static str {
                match self { $( Rejection::$variant => $code, )* }
            }

            /// Every rejection, for documentation and tests.
            pub const ALL: &'static [Rejection] = &[ $( Rejection::$variant, )* ];
        }
    };
}

rejections! {
    WrongChain => "WRONG_CHAIN", "transaction is for another chain";
    UnknownSender => "UNKNOWN_SENDER", "sender is not registered";
    NonceReplayed => "NONCE_REPLAYED", "nonce already used";
    NonceGap => "NONCE_OUT_OF_ORDER", "nonce is ahead of the next expected one";
    WrongSigner => "WRONG_SIGNER", "the sender's key did not sign";
    MissingCoSignature => "MISSING_CO_SIGNATURE", "a required co-signer did not sign";
    SecondFactorRequired => "SECOND_FACTOR_REQUIRED", "amount above threshold needs the second factor";
    NotPermitted => "NOT_PERMITTED", "sender may not perform this action";
    InvalidKey => "INVALID_KEY", "public key is weak or malformed";
    InvalidAmount => "INVALID_AMOUNT", "amount is zero or above the maximum";
    InvalidField => "INVALID_FIELD", "a field is out of its allowed range";
    UnknownCurrency => "UNKNOWN_CURRENCY", "currency is not enabled on this chain";
    CurrencyMismatch => "CURRENCY_MISMATCH", "accounts or order are in different currencies";
    AccountExists => "ACCOUNT_EXISTS", "account id is taken";
    AccountNotFound => "ACCOUNT_NOT_FOUND", "account does not exist";
    WrongAccountKind => "WRONG_ACCOUNT_KIND", "account is not of the kind this action needs";
    SameAccount => "SAME_ACCOUNT", "debit and credit account are the same";
    AccountFrozen => "ACCOUNT_FROZEN", "account is frozen";
    InsufficientFunds => "INSUFFICIENT_FUNDS", "available balance is too low";
    IssuanceLimitExceeded => "ISSUANCE_LIMIT_EXCEEDED", "bank's issuance limit would be exceeded";
    OverSingleLimit => "OVER_TIER_SINGLE_LIMIT", "amount above the KYC tier's single-payment limit";
    OverDailyLimit => "OVER_TIER_DAILY_LIMIT", "the person's outflow today at this institution would pass the tier's daily limit";
    OverYearlyLimit => "OVER_TIER_YEARLY_LIMIT", "the person's outflow this year at this institution would pass the tier's yearly limit";
    CrossBorderQuotaExceeded => "CROSS_BORDER_QUOTA_EXCEEDED", "the person's cross-border transfers this year would pass the tier's yearly quota";
    Overflow => "OVERFLOW", "arithmetic overflow";
    TransferExists => "TRANSFER_EXISTS", "transfer id already applied with this body";
    TransferExistsWithDifferentBody => "TRANSFER_EXISTS_WITH_DIFFERENT_BODY", "transfer id already applied with another body";
    InstitutionExists => "INSTITUTION_EXISTS", "institution id is taken";
    InstitutionNameTaken => "INSTITUTION_NAME_TAKEN", "another institution has this name (compared ignoring case)";
    InstitutionNotFound => "INSTITUTION_NOT_FOUND", "institution does not exist";
    RoleRequired => "ROLE_REQUIRED", "institution lacks the role for this action";
    Sanctioned => "SANCTIONED", "identity is on the sanctions list";
    CardAlreadyBound => "CARD_ALREADY_BOUND", "card is already bound to this account";
    CardNotBound => "CARD_NOT_BOUND", "card is not bound to this account";
    TooManyCards => "TOO_MANY_CARDS", "account has the most cards allowed";
    CardAuthorizationsExceeded => "CARD_AUTHORIZATIONS_EXCEEDED", "wallet has the most card payments waiting for their bank";
    OrderExists => "ORDER_EXISTS", "order id is taken";
    OrderNotFound => "ORDER_NOT_FOUND", "order does not exist";
    OrderExpired => "ORDER_EXPIRED", "order expired";
    OrderNotPayable => "ORDER_NOT_PAYABLE", "order is already paid, held or cancelled";
    OrderNotCancellable => "ORDER_NOT_CANCELLABLE", "order is paid or already cancelled";
    OrderNotHeld => "ORDER_NOT_HELD", "order has no held payment";
    OrderNotPaid => "ORDER_NOT_PAID", "order has no completed payment to refund";
    NotPayer => "NOT_PAYER", "only the payer may do this";
    RefundExceedsPaid => "REFUND_EXCEEDS_PAID", "refunds would exceed what was paid";
    PaymentCodeUsed => "PAYMENT_CODE_USED", "payment code was already used";
    PaymentCodeExpired => "PAYMENT_CODE_EXPIRED", "payment code expired";
    PaymentCodeNotYetValid => "PAYMENT_CODE_NOT_YET_VALID", "payment code is issued later than now";
    PaymentCodeWrongMerchant => "PAYMENT_CODE_WRONG_MERCHANT", "payment code names another merchant";
    PaymentCodeExceeded => "PAYMENT_CODE_EXCEEDED", "amount above the payment code's maximum";
    FeeAboveSchedule => "FEE_ABOVE_SCHEDULE", "merchant fee rate above the fee schedule";
    BillExists => "BILL_EXISTS", "bill id is taken";
    BillNotFound => "BILL_NOT_FOUND", "bill does not exist";
    BillAlreadyPaid => "BILL_ALREADY_PAID", "bill was already paid";
    BillAmountMismatch => "BILL_AMOUNT_MISMATCH", "amount differs from the amount due";
    RateNotFound => "RATE_NOT_FOUND", "no rate published for this pair by this provider";
    RateExpired => "RATE_EXPIRED", "rate is outside its validity window";
    FxSlippage => "FX_SLIPPAGE", "converted amount beyond the sender's bound";
    CorridorLimitExceeded => "CORRIDOR_LIMIT_EXCEEDED", "amount above the corridor's limit";
    CorridorClosed => "CORRIDOR_CLOSED", "no corridor between these currencies";
    NothingToSettle => "NOTHING_TO_SETTLE", "no open obligations";
    CycleNotFound => "CYCLE_NOT_FOUND", "settlement cycle does not exist";
    NotAReceiver => "NOT_A_RECEIVER", "institution has no net credit in this cycle";
    AlreadyConfirmed => "ALREADY_CONFIRMED", "institution already confirmed this cycle";
    GovernanceQuorum => "GOVERNANCE_QUORUM", "too few governance signers";
    RecoveryPending => "RECOVERY_PENDING", "a recovery of this account is already announced";
    RecoveryNotFound => "RECOVERY_NOT_FOUND", "no recovery of this account is announced";
    KeyRevoked => "KEY_REVOKED", "the institution's key was revoked by governance: it signs nothing until replaced";
    PaymentNotFound => "PAYMENT_NOT_FOUND", "no static-QR or payment-code payment with this transfer id";
    BillNotPaid => "BILL_NOT_PAID", "bill has no payment";
    DisputeExists => "DISPUTE_EXISTS", "this payment was already disputed";
    DisputeNotFound => "DISPUTE_NOT_FOUND", "no dispute of this payment";
    DisputeNotOpen => "DISPUTE_NOT_OPEN", "the dispute was already resolved";
    DisputeOpen => "DISPUTE_OPEN", "the payment is under dispute";
    DisputeWindowClosed => "DISPUTE_WINDOW_CLOSED", "the payment is older than the dispute window";
    NothingToDispute => "NOTHING_TO_DISPUTE", "the payment was refunded in full";
    RefundRequestExists => "REFUND_REQUEST_EXISTS", "the order has a refund request waiting";
    RefundRequestNotFound => "REFUND_REQUEST_NOT_FOUND", "the order has no refund request waiting";
    TravelRuleRequired => "TRAVEL_RULE_REQUIRED", "a transfer this large must carry sealed travel-rule data";
    TravelRuleRecipients => "TRAVEL_RULE_RECIPIENTS", "travel-rule data must be sealed to the beneficiary's institution and a regulator, under their registered keys";
    EncryptionKeyMissing => "ENCRYPTION_KEY_MISSING", "an institution the data must be sealed to has no encryption key registered";
}

/// Why a block could not be executed. Unlike a [`Rejection`], this is the node's problem:
/// it must not commit the block and must stop or retry.
#[derive(Debug, thiserror::Error)]
pub enum ExecutionError {
    #[error("state store failed: {0}")]
    Store(#[from] StoreError),
    #[error("state holds undecodable bytes at key {key:02x?}")]
    Corrupt { key: Vec<u8> },
    #[error("genesis is invalid: {0}")]
    Genesis(String),
    #[error("store is not empty; genesis applies only to an empty store")]
    NotEmpty,
    #[error("no genesis in the store")]
    NoGenesis,
    #[error(
        "block {height} does not follow the chain head (expected {expected_height}, with time not before the head's)"
    )]
    BlockOutOfOrder { expected_height: u64, height: u64 },
    #[error("ledger state tree: {0}")]
    Tree(String),
}

/// A failure of the node's storage backend, reported by a [`crate::StateStore`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct StoreError(pub String);

/// Why transaction bytes were refused before verification.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    #[error("transaction is {len} bytes, limit {max}")]
    TooLarge { len: usize, max: usize },
    #[error("malformed encoding: {0}")]
    Malformed(String),
    #[error("encoding is not canonical")]
    NotCanonical,
    #[error("field out of limits: {0}")]
    Limit(&'static str),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_unique_and_upper_snake() {
        let mut codes: Vec<&str> = Rejection::ALL.iter().map(|r| r.code()).collect();
        assert!(
            codes
                .iter()
                .all(|c| c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_'))
        );
        codes.sort_unstable();
        let n = codes.len();
        codes.dedup();
        assert_eq!(codes.len(), n);
    }

    #[test]
    fn every_code_is_documented_in_the_readme() {
        let readme = include_str!("../README.md");
        for r in Rejection::ALL {
            assert!(
                readme.contains(&format!("`{}`", r.code())),
                "{} is not in contracts/README.md",
                r.code()
            );
        }
    }
}
