//! The client commands and their options, one enum per area: what `tally <area> --help` shows.

use super::*;

/// Where the node is and how to speak to it; taken by every client command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The node's HTTP API (https://HOST:PORT; http:// only where the node serves plain HTTP).
    #[arg(
        long,
        env = "TALLY_API",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub api: String,
    /// The CA certificate (PEM) that signed the node's TLS certificate; needed for https.
    #[arg(long, env = "TALLY_CA_CERT", value_name = "FILE", global = true)]
    pub ca_cert: Option<std::path::PathBuf>,
    /// Who reads: `account:ID` or `institution:ID`; each read is signed with --as-key.
    /// Transactions are sent as their sender, with the sender's key, without it.
    #[arg(long = "as", env = "TALLY_AS", value_name = "PARTY", global = true)]
    pub as_party: Option<String>,
    /// The key file of the --as party (its device key, or its institution key).
    #[arg(long, env = "TALLY_AS_KEY", value_name = "FILE", global = true)]
    pub as_key: Option<std::path::PathBuf>,
    /// The chain id to sign for; read from the node's latest block when not given.
    #[arg(long, env = "TALLY_CHAIN_ID", global = true)]
    pub chain_id: Option<String>,
    /// Print the outcome as JSON on standard output.
    #[arg(long, global = true)]
    pub json: bool,
}

/// A wallet, merchant or biller account acting: its id and its device key.
#[derive(Debug, Clone, Args)]
pub struct AccountSigner {
    /// The account that signs and sends.
    #[arg(long, value_name = "ID")]
    pub account: u128,
    /// The account's device key file.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
}

/// An institution acting: its id and its key.
#[derive(Debug, Clone, Args)]
pub struct InstitutionSigner {
    /// The institution that signs and sends.
    #[arg(long, value_name = "ID")]
    pub institution: u32,
    /// The institution's key file.
    #[arg(long, value_name = "FILE")]
    pub key: PathBuf,
}

/// A person's (or business's) verified identity, as the ledger keeps it: digested with the
/// identity secret the KYC institutions and the regulator share, so the digest cannot be
/// reversed by guessing and matches across banks.
#[derive(Debug, Clone, Args)]
pub struct IdentityArg {
    /// The verified identity: a name, ID number or phone (digested with the identity
    /// secret; never stored in clear), or a digest as 64 hex digits, taken as it is.
    #[arg(long)]
    pub identity: String,
    /// The identity secret's file (made by `tally keys identity-secret`; held by the KYC
    /// institutions and the regulator only).
    #[arg(long, env = "TALLY_IDENTITY_SECRET", value_name = "FILE")]
    pub identity_secret: Option<PathBuf>,
}

/// An amount: "12.50 CNY", or "12.50" with `--currency`.
#[derive(Debug, Clone, Args)]
pub struct AmountArg {
    /// The amount in major units, with its currency ("12.50 CNY") or with --currency.
    #[arg(long, value_name = "AMOUNT", allow_hyphen_values = true)]
    pub amount: String,
    /// The currency of --amount, when it does not say.
    #[arg(long, value_name = "CODE")]
    pub currency: Option<String>,
}

/// A client-chosen transfer id; a random one when not given. Reusing one applies the
/// transfer at most once.
#[derive(Debug, Clone, Args)]
pub struct TransferIdArg {
    /// The transfer's id (idempotency key); random when not given.
    #[arg(long = "transfer-id", value_name = "ID")]
    pub transfer_id: Option<u128>,
}

/// The completed payment a dispute is about: exactly one of these.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct DisputedArg {
    /// A paid order.
    #[arg(long, value_name = "ID")]
    pub order: Option<u128>,
    /// A paid bill.
    #[arg(long, value_name = "ID")]
    pub bill: Option<u128>,
    /// A static-QR or payment-code payment, by its transfer id.
    #[arg(long, value_name = "ID")]
    pub payment: Option<u128>,
}

/// Why a payer disputes a payment.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DisputeReasonArg {
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

/// How a deciding institution ends a dispute.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum DisputeOutcomeArg {
    /// The held amount goes back where the payment came from.
    Refund,
    /// The held amount is released to the merchant.
    Release,
}

/// A ledger record to check with its proof (`tally verify`).
#[derive(Debug, Subcommand)]
pub enum VerifyCommand {
    /// An account: its balance, limits and flags.
    Account {
        #[arg(long, value_name = "ID")]
        id: u128,
        #[command(flatten)]
        trust: Trust,
    },
    /// A merchant order.
    Order {
        #[arg(long, value_name = "ID")]
        id: u128,
        #[command(flatten)]
        trust: Trust,
    },
    /// A bill.
    Bill {
        #[arg(long, value_name = "ID")]
        id: u128,
        #[command(flatten)]
        trust: Trust,
    },
    /// A hold (funds set aside by a payment, an authorization or a dispute).
    Hold {
        #[arg(long, value_name = "ID")]
        id: u128,
        #[command(flatten)]
        trust: Trust,
    },
    /// A committed transaction's receipt: its result and the events the asker may read.
    Transaction {
        /// The transaction's hash (64 hex digits), as its submission answered.
        #[arg(long, value_name = "HASH")]
        hash: String,
        #[command(flatten)]
        trust: Trust,
    },
}

/// What a proof is checked against: the chain's genesis, which names the chain and the
/// validators whose quorum must have signed.
#[derive(Debug, Clone, Args)]
pub struct Trust {
    /// The chain's genesis file (JSON), as every node starts from.
    #[arg(long, env = "TALLY_GENESIS", value_name = "FILE")]
    pub genesis: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum WalletCommand {
    /// Open a wallet at a KYC institution, which co-signs.
    Register {
        #[command(flatten)]
        signer: AccountSigner,
        /// The KYC institution's key file (co-signs).
        #[arg(long, value_name = "FILE")]
        cosigner_key: PathBuf,
        /// The institution that verified the holder and holds the wallet.
        #[arg(long, value_name = "ID")]
        institution: u32,
        #[arg(long, value_name = "CODE")]
        currency: String,
        /// The KYC tier (its limits are the chain's).
        #[arg(long, default_value_t = 0)]
        tier: u8,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Bind a bank-issued card token to the wallet; the bank co-signs.
    BindCard {
        #[command(flatten)]
        signer: AccountSigner,
        /// The card bank's key file (co-signs).
        #[arg(long, value_name = "FILE")]
        cosigner_key: PathBuf,
        /// The card's bank.
        #[arg(long, value_name = "ID")]
        bank: u32,
        /// The bank's card token: 64 hex digits, or a reference that is hashed into one.
        #[arg(long)]
        card: String,
    },
    /// Move money from a bound card's bank into the wallet; the bank co-signs.
    TopUp {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "FILE")]
        cosigner_key: PathBuf,
        #[arg(long)]
        card: String,
        #[command(flatten)]
        amount: AmountArg,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Move money from the wallet back to a bound card's bank; the bank co-signs.
    Withdraw {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "FILE")]
        cosigner_key: PathBuf,
        #[arg(long)]
        card: String,
        #[command(flatten)]
        amount: AmountArg,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Show an account's balances and limits.
    Balance {
        #[arg(long, value_name = "ID")]
        account: u128,
    },
    /// Show an account's transactions, newest first.
    History {
        #[arg(long, value_name = "ID")]
        account: u128,
        /// How many entries (at most 100).
        #[arg(long, default_value_t = 20)]
        limit: usize,
        /// Entries older than this position ("HEIGHT:INDEX", from a previous page).
        #[arg(long)]
        before: Option<String>,
    },
    /// Send money to another wallet (at any institution).
    Transfer {
        #[command(flatten)]
        signer: AccountSigner,
        /// The receiving wallet.
        #[arg(long, value_name = "ID")]
        to: u128,
        #[command(flatten)]
        amount: AmountArg,
        /// A note the receiver reads with the money: at most 64 bytes of UTF-8, no control
        /// characters. It is stored on chain in clear.
        #[arg(long, value_name = "TEXT")]
        memo: Option<String>,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Pay a merchant's order from the balance or a bound card, at once or into escrow.
    PayOrder {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
        /// Pay with this bound card instead of the balance.
        #[arg(long)]
        card: Option<String>,
        /// The card bank's key file, when paying by card (co-signs).
        #[arg(long, value_name = "FILE")]
        cosigner_key: Option<PathBuf>,
        /// Hold the money in escrow until confirmed receipt, at most this many minutes.
        #[arg(long, value_name = "MINUTES")]
        escrow_minutes: Option<u64>,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Pay a merchant by the id in its QR code.
    PayMerchant {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        merchant: u128,
        #[command(flatten)]
        amount: AmountArg,
        /// The merchant's reference from its QR code (till, order), so it can match the
        /// payment: at most 64 bytes of UTF-8, no control characters; stored in clear.
        #[arg(long, value_name = "TEXT")]
        reference: Option<String>,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Make a one-time payment code for a merchant to collect with (offline payment).
    ShowCode {
        #[command(flatten)]
        signer: AccountSigner,
        /// The most the merchant may collect with it.
        #[arg(long, value_name = "AMOUNT")]
        max_amount: String,
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
        /// How long it stays good from now (the chain's latest block time), at most 10
        /// minutes.
        #[arg(long, default_value_t = 5)]
        valid_minutes: u64,
        /// The code's one-time number; random when not given.
        #[arg(long)]
        code_nonce: Option<u64>,
        /// The merchant the code is for: no other merchant can collect it.
        #[arg(long, value_name = "ID")]
        merchant: Option<u128>,
    },
    /// Cancel a recovery your institution announced for this account (you did not ask for
    /// it): signed with the account's current key, before the recovery is due.
    CancelRecovery {
        #[command(flatten)]
        signer: AccountSigner,
    },
    /// Confirm an escrowed order arrived: the merchant is paid.
    ConfirmReceipt {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
    },
    /// Void your own held payment (escrow or a card payment awaiting the bank): the money
    /// stays with you and the merchant's order is open again.
    CancelOrder {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
    },
    /// Dispute a completed payment you made (within the chain's dispute window): the amount
    /// is held from the merchant until the card's bank or your wallet's institution decides.
    Dispute {
        #[command(flatten)]
        signer: AccountSigner,
        #[command(flatten)]
        disputed: DisputedArg,
        #[arg(long, value_enum)]
        reason: DisputeReasonArg,
        /// The id of the hold on the disputed amount; random when not given.
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Ask the merchant of an order you paid to refund part or all of it.
    RequestRefund {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
        #[command(flatten)]
        amount: AmountArg,
    },
}

#[derive(Debug, Subcommand)]
pub enum MerchantCommand {
    /// Register a merchant at its acquiring bank: the bank sends, the merchant's key co-signs.
    Register {
        #[command(flatten)]
        signer: InstitutionSigner,
        /// The merchant's key file (co-signs; the merchant signs with it from then on).
        #[arg(long, value_name = "FILE")]
        cosigner_key: PathBuf,
        /// The merchant account's id.
        #[arg(long = "merchant", value_name = "ID")]
        merchant: u128,
        #[arg(long, value_name = "CODE")]
        currency: String,
        /// The platform's fee on settlement, in basis points.
        #[arg(long, default_value_t = 0)]
        fee_bps: u16,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Create an order for a customer to pay.
    CreateOrder {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
        #[command(flatten)]
        amount: AmountArg,
        /// Minutes until the order expires (at most 30 days).
        #[arg(long, default_value_t = 60)]
        expires_minutes: u64,
        /// What was ordered (hashed).
        #[arg(long, default_value = "")]
        items: String,
    },
    /// Collect a payment with the code a customer shows.
    Collect {
        #[command(flatten)]
        signer: AccountSigner,
        /// The customer's code (from `tally wallet show-code`).
        #[arg(long)]
        code: String,
        #[command(flatten)]
        amount: AmountArg,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Cancel an open or escrowed order.
    Cancel {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
    },
    /// Refund part or all of a paid order.
    Refund {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
        #[command(flatten)]
        amount: AmountArg,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Settle takings to the acquiring bank, less the platform's fee.
    Settle {
        #[command(flatten)]
        signer: AccountSigner,
        /// How much; the whole balance when not given.
        #[arg(long, value_name = "AMOUNT")]
        amount: Option<String>,
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Show an order.
    Order {
        #[arg(long, value_name = "ID")]
        order: u128,
    },
    /// Accept the payer's refund request on an order: the refund is made at once.
    AcceptRefund {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Refuse the payer's refund request on an order.
    RefuseRefund {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
    },
}

#[derive(Debug, Subcommand)]
pub enum BillCommand {
    /// Register a biller at its acquiring bank: the bank sends, the biller's key co-signs.
    RegisterBiller {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long, value_name = "FILE")]
        cosigner_key: PathBuf,
        #[arg(long = "biller", value_name = "ID")]
        biller: u128,
        #[arg(long, value_name = "CODE")]
        currency: String,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Issue a bill to a customer.
    Issue {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        bill: u128,
        /// The biller's customer reference (hashed).
        #[arg(long)]
        customer: String,
        #[command(flatten)]
        amount: AmountArg,
        /// Days until it is due.
        #[arg(long, default_value_t = 14)]
        due_days: u64,
    },
    /// Pay a bill: exactly the amount due (read from the chain when not given).
    Pay {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        bill: u128,
        #[arg(long, value_name = "AMOUNT")]
        amount: Option<String>,
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
        #[command(flatten)]
        id: TransferIdArg,
    },
    /// Show a bill.
    Show {
        #[arg(long, value_name = "ID")]
        bill: u128,
    },
}

#[derive(Debug, Subcommand)]
pub enum FxCommand {
    /// Publish a rate (quote per base, in major units, e.g. 1.0850), valid from now.
    PublishRate {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long, value_name = "CODE")]
        base: String,
        #[arg(long, value_name = "CODE")]
        quote: String,
        /// Units of the quote currency per unit of the base currency.
        #[arg(long)]
        rate: String,
        /// Minutes it stays valid (at most a day).
        #[arg(long, default_value_t = 60)]
        valid_minutes: u64,
    },
    /// Show the published rates.
    Rates {
        #[arg(long, value_name = "ID")]
        provider: Option<u32>,
        #[arg(long, value_name = "CODE")]
        base: Option<String>,
        #[arg(long, value_name = "CODE")]
        quote: Option<String>,
    },
}

/// Send money abroad: debit in the wallet's currency, credit the beneficiary in theirs at
/// the provider's published rate, both in one block or neither.
#[derive(Debug, Args)]
pub struct RemitCommand {
    #[command(flatten)]
    pub signer: AccountSigner,
    /// The FX provider.
    #[arg(long, value_name = "ID")]
    pub provider: u32,
    /// The beneficiary's wallet.
    #[arg(long, value_name = "ID")]
    pub to: u128,
    /// Debit exactly this ("100.00 CNY").
    #[arg(long, value_name = "AMOUNT", conflicts_with_all = ["receive", "max_send"])]
    pub send: Option<String>,
    /// With --send: the least the beneficiary must get; the published rate's amount when
    /// not given.
    #[arg(long, value_name = "AMOUNT", requires = "send")]
    pub min_receive: Option<String>,
    /// Credit exactly this ("108.50 HKD").
    #[arg(long, value_name = "AMOUNT", required_unless_present = "send")]
    pub receive: Option<String>,
    /// With --receive: the most to be debited; the published rate's amount when not given.
    #[arg(long, value_name = "AMOUNT", requires = "receive")]
    pub max_send: Option<String>,
    #[command(flatten)]
    pub id: TransferIdArg,
    #[command(flatten)]
    pub travel_rule: TravelRuleArgs,
}

/// Travel-rule data: who sends and who receives, sealed (HPKE) to the beneficiary's
/// institution and to `--regulator`, under the keys they registered. Required by the chain
/// from its threshold; never on chain in clear.
#[derive(Debug, Clone, Default, Args)]
pub struct TravelRuleArgs {
    /// The regulator the data is sealed to, beside the beneficiary's institution.
    #[arg(long, value_name = "ID")]
    pub regulator: Option<u32>,
    #[arg(long, value_name = "NAME")]
    pub originator_name: Option<String>,
    /// The originator's account as the institutions know it; the sending account's id when
    /// not given.
    #[arg(long, value_name = "ACCOUNT")]
    pub originator_account: Option<String>,
    #[arg(long, value_name = "ADDRESS")]
    pub originator_address: Option<String>,
    #[arg(long, value_name = "NAME")]
    pub beneficiary_name: Option<String>,
    /// The beneficiary's account as the institutions know it; --to when not given.
    #[arg(long, value_name = "ACCOUNT")]
    pub beneficiary_account: Option<String>,
    #[arg(long, value_name = "ADDRESS")]
    pub beneficiary_address: Option<String>,
}

/// `tally webhook ...`: the --as party's webhook subscriptions on the node.
#[derive(Debug, Subcommand)]
pub enum WebhookCommand {
    /// Register a URL the node POSTs the party's committed events to, signed by the node.
    Subscribe {
        /// Where to deliver (http or https, at an origin the node's operator allows).
        #[arg(long)]
        url: String,
        /// Only events touching this account.
        #[arg(long, value_name = "ID")]
        account: Option<u128>,
        /// Only events of this merchant.
        #[arg(long, value_name = "ID")]
        merchant: Option<u128>,
        /// Only events naming this institution.
        #[arg(long, value_name = "ID")]
        institution: Option<u32>,
        /// Only events of this kind (repeat for several), e.g. PaymentCompleted.
        #[arg(long = "kind", value_name = "KIND")]
        kinds: Vec<String>,
        /// The first event to deliver, `height:index` (default: the next block's).
        #[arg(long, value_name = "ID")]
        from: Option<String>,
    },
    /// The party's subscriptions, with their cursors and states.
    List,
    /// One subscription.
    Show {
        #[arg(value_name = "ID")]
        id: u64,
    },
    /// Move a subscription's cursor to an event (or keep it) and resume it if paused.
    Replay {
        #[arg(value_name = "ID")]
        id: u64,
        /// The first event to deliver again, `height:index`.
        #[arg(long, value_name = "ID")]
        from: Option<String>,
    },
    /// Remove a subscription: no more deliveries.
    Remove {
        #[arg(value_name = "ID")]
        id: u64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TravelRuleCommand {
    /// Open the travel-rule data of a committed remittance with an institution's X25519
    /// secret key file: the beneficiary's institution, or a regulator.
    Open {
        /// The remittance's transaction hash (from `tally remit`).
        #[arg(long, value_name = "HASH")]
        tx: String,
        /// The institution whose copy to open.
        #[arg(long, value_name = "ID")]
        institution: u32,
        /// That institution's X25519 key file (from `tally institution set-encryption-key`).
        #[arg(long, value_name = "FILE")]
        secret_key: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum RegulatorCommand {
    /// Freeze an account: it can neither send nor receive.
    Freeze {
        #[command(flatten)]
        signer: InstitutionSigner,
        /// The account to freeze.
        #[arg(long = "target", value_name = "ID")]
        target: u128,
        /// The case reference (hashed).
        #[arg(long)]
        reason: String,
    },
    /// Unfreeze an account.
    Unfreeze {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long = "target", value_name = "ID")]
        target: u128,
    },
    /// Set a KYC tier's (account class's) limits: a payment, and a person's day and year at
    /// one institution and year abroad. A governance change, co-signed by enough governance
    /// keys (repeat --cosigner-key).
    SetLimits {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long, value_name = "FILE")]
        cosigner_key: Vec<PathBuf>,
        #[arg(long)]
        tier: u8,
        /// The most one payment may move ("5000.00 CNY").
        #[arg(long, value_name = "AMOUNT")]
        single_max: String,
        /// The most a person may send in a day from its wallets at one institution.
        #[arg(long, value_name = "AMOUNT")]
        daily_max: String,
        /// The most a person may send in a calendar year (UTC) from its wallets at one
        /// institution, or "none".
        #[arg(long, value_name = "AMOUNT")]
        yearly_max: String,
        /// The most a person may send abroad in a calendar year (UTC), or "none".
        #[arg(long, value_name = "AMOUNT")]
        cross_border_yearly_max: String,
        /// The currency whose decimals the limits are written in.
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
    },
    /// Set from which amount a cross-border transfer out of a currency must carry
    /// travel-rule data ("none" takes the requirement away). A governance change,
    /// co-signed by enough governance keys (repeat --cosigner-key).
    SetTravelRuleThreshold {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long, value_name = "FILE")]
        cosigner_key: Vec<PathBuf>,
        /// The threshold ("5000.00 CNY"), or "none" with --currency.
        #[arg(long, value_name = "AMOUNT")]
        threshold: String,
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
    },
    /// Put an identity on the sanctions list.
    Sanction {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// Take an identity off the sanctions list.
    Unsanction {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[command(flatten)]
        identity: IdentityArg,
    },
    /// The alerts to triage, from an audit node (read as the regulator: --as
    /// institution:ID --as-key FILE): open ones first, each with its key and the time the
    /// node first listed it.
    Alerts {
        /// Movements of at least this many minor units are large (default 5000000).
        #[arg(long, value_name = "MINOR_UNITS")]
        threshold: Option<u64>,
        /// The range's first block (default: 1,000 blocks below its last).
        #[arg(long, value_name = "HEIGHT")]
        from: Option<u64>,
        /// The range's last block (default: the head).
        #[arg(long, value_name = "HEIGHT")]
        to: Option<u64>,
    },
    /// Acknowledge an alert on the audit node that listed it (as the regulator: --as,
    /// --as-key). Once: the first acknowledgement stays as written.
    Acknowledge {
        /// The alert's key, as `tally regulator alerts` lists it.
        #[arg(long = "alert", value_name = "KEY")]
        alert: String,
        /// What was done about it (at most 500 bytes).
        #[arg(long, default_value = "")]
        note: String,
    },
}

/// Governance changes: sent by an institution, co-signed by enough governance keys (repeat
/// --cosigner-key).
#[derive(Debug, Subcommand)]
pub enum GovernanceCommand {
    /// Give an institution a new key (its old one compromised or lost): the old key signs
    /// nothing, and the API refuses it, from the block that commits this. The new key
    /// co-signs; the old key does not count toward the quorum.
    ReplaceInstitutionKey {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long, value_name = "FILE")]
        cosigner_key: Vec<PathBuf>,
        /// The institution whose key is replaced.
        #[arg(long = "target", value_name = "ID")]
        target: u32,
        /// The new key's file (it co-signs: proof that it is held).
        #[arg(long, value_name = "FILE")]
        new_key: PathBuf,
    },
    /// How long an account recovery waits, announced, before the new key takes over.
    SetRecoveryDelay {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long, value_name = "FILE")]
        cosigner_key: Vec<PathBuf>,
        /// The delay in hours of block time (at most 720).
        #[arg(long)]
        hours: u64,
    },
    /// Revoke an institution's key: it signs nothing until its key is replaced; its
    /// accounts and obligations stay.
    RevokeInstitutionKey {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long, value_name = "FILE")]
        cosigner_key: Vec<PathBuf>,
        /// The institution whose key is revoked.
        #[arg(long = "target", value_name = "ID")]
        target: u32,
    },
    /// Change the validator set: add validators, change their power or remove them, from a
    /// height ahead. Validators holding more than 2/3 of the power in force sign it (one
    /// --validator-key each); every validator checks it before voting for the block that
    /// carries it, and `tally verify` follows it.
    ChangeValidators(ValidatorChangeArgs),
}

#[derive(Debug, Args)]
pub struct ValidatorChangeArgs {
    /// A key file of a validator in force that signs the change (repeat).
    #[arg(long = "validator-key", value_name = "FILE", required = true)]
    pub validator_keys: Vec<PathBuf>,
    /// Add a validator, or change its power: PUBLIC_KEY:POWER, the key in hex (repeat).
    #[arg(long = "set", value_name = "KEY:POWER")]
    pub set: Vec<String>,
    /// Remove a validator, by its public key in hex (repeat). Removals apply first, then
    /// --set, in the order given: a validator set again after its removal (or a new one)
    /// takes the last index.
    #[arg(long = "remove", value_name = "KEY")]
    pub remove: Vec<String>,
    /// How many heights after the latest block the new set first signs (at least 4: the
    /// change must be in a block 3 heights before it takes effect).
    #[arg(long, default_value_t = 10)]
    pub effective_in: u64,
}

#[derive(Debug, Subcommand)]
pub enum InstitutionCommand {
    /// Announce the recovery of a customer's lost device key (after verifying the person):
    /// the new key takes over after the delay governance set, unless the account's current
    /// key cancels it first (`tally wallet cancel-recovery`). The new key co-signs.
    RecoverAccount {
        #[command(flatten)]
        signer: InstitutionSigner,
        /// The customer's account.
        #[arg(long = "target", value_name = "ID")]
        target: u128,
        /// The customer's new device key file.
        #[arg(long, value_name = "FILE")]
        new_key: PathBuf,
    },
    /// Net all open interbank obligations into a settlement cycle.
    SettleCycle {
        #[command(flatten)]
        signer: InstitutionSigner,
    },
    /// Confirm receipt of a cycle's net amount (a receiver of the cycle).
    Confirm {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long, value_name = "ID")]
        cycle: u64,
    },
    /// Show an institution's open obligations and net positions.
    Show {
        #[arg(long, value_name = "ID")]
        institution: u32,
    },
    /// Show a settlement cycle.
    Cycle {
        #[arg(long, value_name = "ID")]
        cycle: u64,
    },
    /// Decide a dispute of a payment made with your card or from a wallet you hold.
    DecideDispute {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[command(flatten)]
        disputed: DisputedArg,
        #[arg(long, value_enum)]
        outcome: DisputeOutcomeArg,
    },
    /// Register the X25519 key the institution receives travel-rule data under: read from
    /// the key file, or made into a new one (mode 0600) when the file does not exist.
    SetEncryptionKey {
        #[command(flatten)]
        signer: InstitutionSigner,
        /// The X25519 key pair file.
        #[arg(long, value_name = "FILE")]
        encryption_key: PathBuf,
    },
}
