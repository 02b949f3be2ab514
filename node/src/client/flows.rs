//! The `tally` client commands, one per flow of the payment process: each reads its inputs
//! (account and institution ids, key files, amounts in major units), builds the flow's
//! transaction, signs it with the sender's key and any co-signer's, submits it, waits for the
//! commit, and tells the outcome in words or as JSON. Read commands (balance, history, orders,
//! bills, rates, positions) read the API.
//!
//! Every input from outside (arguments, key files, the node's answers) is checked, and a
//! mistake is a [`CommandError`] in words; a transaction the ledger refused is
//! [`CommandError::Refused`] with its stable code.

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tally_contracts::fx::RATE_SCALE;
use tally_contracts::{
    AccountId, Amount, Bill, BillId, CardToken, Currency, CycleId, Event, FxAmount,
    GovernanceAction, InstitutionId, Order, OrderId, Party, PaymentCode, PaymentSource, TransferId,
    TxKind,
};
use tally_crypto::{Hash, KeyFile, Signature, SigningKey};

use super::ClientError;
use super::api::{Api, Receipt};
use super::money::{self, Money, MoneyError, format_minor};
use super::submitter::{AccountView, AtHeight, Submitter};

/// The longest a payment code may live (the ledger's bound).
const PAYMENT_CODE_VALID_MINUTES_MAX: u64 = 10;
/// The longest an FX rate may be valid (the ledger's bound).
const FX_RATE_VALID_MINUTES_MAX: u64 = 24 * 60;
/// The longest an order may stay open (the ledger's bound).
const ORDER_VALID_MINUTES_MAX: u64 = 30 * 24 * 60;
/// The most history entries one page shows (the API's bound).
const HISTORY_LIMIT_MAX: usize = 100;
/// The largest payment code text accepted: the encoded code is ~150 bytes.
const PAYMENT_CODE_HEX_CHARS_MAX: usize = 1_024;
/// Domain tags under which free text becomes the 32-byte digests the ledger keeps.
const IDENTITY_DOMAIN: &str = "tally-identity";
const CARD_DOMAIN: &str = "tally-card-token";
const CUSTOMER_DOMAIN: &str = "tally-customer-reference";
const ITEMS_DOMAIN: &str = "tally-order-items";
const REASON_DOMAIN: &str = "tally-case-reference";
const MS_PER_MINUTE: u64 = 60_000;
/// How payment codes are written: a prefix, then the hex of the code and its signature.
const PAYMENT_CODE_PREFIX: &str = "tallycode:";

/// What can go wrong in a client command.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("{0}")]
    Input(String),
    #[error(transparent)]
    Money(#[from] MoneyError),
    #[error("key file {path}: {detail}")]
    KeyFile { path: PathBuf, detail: String },
    #[error(transparent)]
    Client(#[from] ClientError),
    /// The ledger executed the transaction and refused it.
    #[error(
        "refused: {} ({}); {} {} at height {}",
        .0.code,
        .0.message,
        .0.what,
        .0.hash,
        .0.height
    )]
    Refused(Box<Refusal>),
}

/// A transaction the ledger executed and refused, and what the command tells of it.
#[derive(Debug)]
pub struct Refusal {
    /// The ledger's stable rejection code.
    pub code: String,
    pub message: String,
    /// The command's name for the transaction.
    pub what: String,
    pub hash: Hash,
    /// The committing height, or "?" when the node did not say.
    pub height: String,
    pub report: Report,
}

fn input(message: impl Into<String>) -> CommandError {
    CommandError::Input(message.into())
}

/// What a command tells: words for people, JSON for programs.
#[derive(Debug, Clone)]
pub struct Report {
    pub text: String,
    /// The JSON text: the node's own answer for reads (ids above 2^64 survive), the receipt
    /// for transactions.
    pub json: String,
}

/// Where the node is and how to speak to it; taken by every client command.
#[derive(Debug, Clone, Args)]
pub struct Connection {
    /// The node's HTTP API (http://HOST:PORT).
    #[arg(
        long,
        env = "TALLY_API",
        default_value = "http://127.0.0.1:8080",
        global = true
    )]
    pub api: String,
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
        /// The verified identity (hashed; never stored in clear).
        #[arg(long)]
        identity: String,
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
        /// How long it stays good (at most 10 minutes).
        #[arg(long, default_value_t = 5)]
        valid_minutes: u64,
        /// The code's one-time number; random when not given.
        #[arg(long)]
        code_nonce: Option<u64>,
    },
    /// Confirm an escrowed order arrived: the merchant is paid.
    ConfirmReceipt {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
    },
    /// Cancel an order paid into escrow: the money stays in the wallet.
    CancelOrder {
        #[command(flatten)]
        signer: AccountSigner,
        #[arg(long, value_name = "ID")]
        order: u128,
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
        #[arg(long)]
        identity: String,
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
        #[arg(long)]
        identity: String,
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
    /// Set a KYC tier's single and daily limits: a governance change, co-signed by enough
    /// governance keys (repeat --cosigner-key).
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
        /// The most that may leave an account in a day.
        #[arg(long, value_name = "AMOUNT")]
        daily_max: String,
        /// The currency whose decimals the limits are written in.
        #[arg(long, value_name = "CODE")]
        currency: Option<String>,
    },
    /// Put an identity on the sanctions list.
    Sanction {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long)]
        identity: String,
    },
    /// Take an identity off the sanctions list.
    Unsanction {
        #[command(flatten)]
        signer: InstitutionSigner,
        #[arg(long)]
        identity: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum InstitutionCommand {
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
}

/// One client command, by area.
#[derive(Debug)]
pub enum ClientCommand {
    Wallet(WalletCommand),
    Merchant(MerchantCommand),
    Bill(BillCommand),
    Fx(FxCommand),
    Remit(Box<RemitCommand>),
    Regulator(RegulatorCommand),
    Institution(InstitutionCommand),
}

/// A transaction ready to sign: who sends it, whose keys sign, and what it does in words.
struct Plan {
    /// The command's name in outcomes ("transfer").
    what: &'static str,
    sender: Party,
    keys: Vec<SigningKey>,
    kind: TxKind,
    /// What it does, for the outcome line.
    words: String,
    /// The event a success must carry.
    expect: Option<&'static str>,
    /// The currency its amounts are in, where one applies.
    currency: Option<Currency>,
}

/// Runs one client command against the node at `connection.api`.
pub async fn run(connection: &Connection, command: ClientCommand) -> Result<Report, CommandError> {
    let api = Api::new(api_address(&connection.api)?);
    let mut client = Client {
        api,
        chain_id: connection.chain_id.clone(),
    };
    let plan = match command {
        ClientCommand::Wallet(c) => match wallet(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::Merchant(c) => match merchant(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::Bill(c) => match bill(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::Fx(c) => match fx(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::Remit(c) => remit(&mut client, *c).await?,
        ClientCommand::Regulator(c) => regulator(&mut client, c).await?,
        ClientCommand::Institution(c) => match institution(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
    };
    send(&mut client, plan).await
}

/// `http://HOST:PORT` (or `HOST:PORT`) as a socket address.
pub fn api_address(text: &str) -> Result<SocketAddr, CommandError> {
    let rest = text.trim();
    if rest.starts_with("https://") {
        return Err(input(format!(
            "--api {text}: this client speaks plain HTTP; put TLS in front of the node's loopback API"
        )));
    }
    let rest = rest.strip_prefix("http://").unwrap_or(rest);
    let rest = rest.trim_end_matches('/');
    if rest.contains('/') {
        return Err(input(format!(
            "--api {text}: give only the node's address, like http://127.0.0.1:8080"
        )));
    }
    rest.to_socket_addrs()
        .map_err(|e| input(format!("--api {text}: {e}")))?
        .next()
        .ok_or_else(|| input(format!("--api {text}: no address")))
}

struct Client {
    api: Api,
    chain_id: Option<String>,
}

#[derive(Deserialize)]
struct LatestHeader {
    chain_id: String,
    time_ms: u64,
}

#[derive(Deserialize)]
struct LatestBlock {
    header: LatestHeader,
}

impl Client {
    /// The chain id given, or the one in the node's latest block.
    async fn chain_id(&mut self) -> Result<String, CommandError> {
        if let Some(id) = &self.chain_id {
            return Ok(id.clone());
        }
        let latest = self.latest().await?;
        self.chain_id = Some(latest.header.chain_id.clone());
        Ok(latest.header.chain_id)
    }

    async fn latest(&self) -> Result<LatestBlock, CommandError> {
        self.api
            .get_json::<LatestBlock>("/v1/blocks/latest")
            .await
            .map_err(|e| match e.api_code() {
                Some("NOT_FOUND") => input("the node has committed no block yet; try again"),
                _ => e.into(),
            })
    }

    /// `GET path`'s body as text; a 404 is "`what` does not exist".
    async fn read_raw(&self, path: &str, what: &str) -> Result<String, CommandError> {
        let answer = self.api.get(path).await?;
        if answer.status != hyper::StatusCode::OK {
            return Err(not_found(answer.error(), what));
        }
        String::from_utf8(answer.body.to_vec())
            .map_err(|_| ClientError::Answer(format!("{what}: an answer that is not UTF-8")).into())
    }

    async fn account(&self, id: u128) -> Result<AccountView, CommandError> {
        let path = format!("/v1/accounts/{id}");
        self.api
            .get_json::<AccountView>(&path)
            .await
            .map_err(|e| not_found(e, &format!("account {id}")))
    }

    async fn record<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        what: &str,
    ) -> Result<AtHeight<T>, CommandError> {
        self.api
            .get_json::<AtHeight<T>>(path)
            .await
            .map_err(|e| not_found(e, what))
    }
}

fn not_found(e: ClientError, what: &str) -> CommandError {
    match e.api_code() {
        Some("NOT_FOUND") => input(format!("{what} does not exist on the chain")),
        _ => e.into(),
    }
}

enum Step {
    Read(Report),
    Send(Box<Plan>),
}

fn read_key(path: &Path) -> Result<SigningKey, CommandError> {
    KeyFile::read(path).map_err(|e| CommandError::KeyFile {
        path: path.to_path_buf(),
        detail: e.to_string(),
    })
}

/// Free text as a 32-byte digest, or 64 hex digits taken as they are.
fn digest_of(domain: &str, text: &str) -> Hash {
    match Hash::from_hex(text.trim()) {
        Ok(hash) if text.trim().len() == 64 => hash,
        _ => Hash::digest(domain, text.as_bytes()),
    }
}

fn card_token(text: &str) -> Result<CardToken, CommandError> {
    if text.trim().is_empty() {
        return Err(input("--card is empty"));
    }
    Ok(CardToken(digest_of(CARD_DOMAIN, text).0))
}

fn customer_account(id: u128, flag: &str) -> Result<AccountId, CommandError> {
    let account = AccountId(id);
    if !account.is_customer_id() {
        return Err(input(format!(
            "{flag} {id}: account ids below 2^127 are for customers, merchants and billers"
        )));
    }
    Ok(account)
}

fn transfer_id(arg: &TransferIdArg) -> Result<TransferId, CommandError> {
    match arg.transfer_id {
        Some(id) => Ok(TransferId(id)),
        None => {
            let mut bytes = [0u8; 16];
            getrandom::fill(&mut bytes)
                .map_err(|e| CommandError::Client(ClientError::Randomness(e.to_string())))?;
            Ok(TransferId(u128::from_be_bytes(bytes)))
        }
    }
}

fn random_u64() -> Result<u64, CommandError> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes)
        .map_err(|e| CommandError::Client(ClientError::Randomness(e.to_string())))?;
    Ok(u64::from_be_bytes(bytes))
}

fn optional_currency(text: Option<&str>) -> Result<Option<Currency>, CommandError> {
    Ok(text.map(money::currency).transpose()?)
}

/// An amount in the currency of `account`: a different written currency is refused here,
/// before the ledger would.
fn amount_in(arg: &AmountArg, currency: Currency) -> Result<Money, CommandError> {
    let given = optional_currency(arg.currency.as_deref())?;
    if let Some(given) = given.filter(|g| *g != currency) {
        return Err(MoneyError::CurrencyMismatch {
            amount: arg.amount.clone(),
            given: given.to_string(),
            expected: currency.to_string(),
        }
        .into());
    }
    Ok(Money::parse_positive(&arg.amount, Some(currency))?)
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn minutes_from_now(minutes: u64, flag: &str, max: u64) -> Result<u64, CommandError> {
    if minutes == 0 || minutes > max {
        return Err(input(format!("{flag} must be 1..={max}")));
    }
    Ok(now_ms().saturating_add(minutes.saturating_mul(MS_PER_MINUTE)))
}

/// The account's currency, read from the chain: amounts are checked against it.
async fn currency_of(client: &Client, account: u128) -> Result<Currency, CommandError> {
    Ok(client.account(account).await?.account.currency)
}

fn account_party(signer: &AccountSigner, flag: &str) -> Result<(Party, SigningKey), CommandError> {
    let account = customer_account(signer.account, flag)?;
    Ok((Party::Account(account), read_key(&signer.key)?))
}

fn institution_party(signer: &InstitutionSigner) -> Result<(Party, SigningKey), CommandError> {
    Ok((
        Party::Institution(InstitutionId(signer.institution)),
        read_key(&signer.key)?,
    ))
}

fn plan(what: &'static str, sender: Party, keys: Vec<SigningKey>, kind: TxKind) -> Plan {
    Plan {
        what,
        sender,
        keys,
        kind,
        words: String::new(),
        expect: None,
        currency: None,
    }
}

impl Plan {
    fn words(mut self, words: impl Into<String>) -> Plan {
        self.words = words.into();
        self
    }

    fn expect(mut self, event: &'static str) -> Plan {
        self.expect = Some(event);
        self
    }

    fn in_currency(mut self, currency: Currency) -> Plan {
        self.currency = Some(currency);
        self
    }
}

async fn wallet(client: &mut Client, command: WalletCommand) -> Result<Step, CommandError> {
    Ok(Step::Send(Box::new(match command {
        WalletCommand::Register {
            signer,
            cosigner_key,
            institution,
            currency,
            tier,
            identity,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let currency = money::currency(&currency)?;
            money::exponent(currency)?;
            let kind = TxKind::RegisterAccount {
                account: AccountId(signer.account),
                key: key.public_key(),
                currency,
                institution: InstitutionId(institution),
                tier,
                identity: digest_of(IDENTITY_DOMAIN, &identity),
            };
            plan(
                "register",
                sender,
                vec![key, read_key(&cosigner_key)?],
                kind,
            )
            .words(format!(
                "wallet {} ({currency}, tier {tier}) opened at institution {institution}",
                signer.account
            ))
            .expect("AccountRegistered")
        }
        WalletCommand::BindCard {
            signer,
            cosigner_key,
            bank,
            card,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let kind = TxKind::BindCard {
                card: card_token(&card)?,
                bank: InstitutionId(bank),
            };
            plan(
                "bind-card",
                sender,
                vec![key, read_key(&cosigner_key)?],
                kind,
            )
            .words(format!(
                "a card of bank {bank} bound to wallet {}",
                signer.account
            ))
            .expect("CardBound")
        }
        WalletCommand::TopUp {
            signer,
            cosigner_key,
            card,
            amount,
            id,
        } => {
            card_movement(
                client,
                Direction::TopUp,
                &signer,
                &cosigner_key,
                &card,
                &amount,
                &id,
            )
            .await?
        }
        WalletCommand::Withdraw {
            signer,
            cosigner_key,
            card,
            amount,
            id,
        } => {
            card_movement(
                client,
                Direction::Withdraw,
                &signer,
                &cosigner_key,
                &card,
                &amount,
                &id,
            )
            .await?
        }
        WalletCommand::Balance { account } => return balance(client, account).await,
        WalletCommand::History {
            account,
            limit,
            before,
        } => return history(client, account, limit, before).await,
        WalletCommand::Transfer {
            signer,
            to,
            amount,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let to_account = customer_account(to, "--to")?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let kind = TxKind::Transfer {
                id: transfer_id(&id)?,
                to: to_account,
                amount: money.minor,
            };
            plan("transfer", sender, vec![key], kind)
                .words(format!(
                    "{money} from account {} to account {to}",
                    signer.account
                ))
                .expect("TransferReceived")
        }
        WalletCommand::PayOrder {
            signer,
            order,
            card,
            cosigner_key,
            escrow_minutes,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let record: AtHeight<Order> = client
                .record(&format!("/v1/orders/{order}"), &format!("order {order}"))
                .await?;
            let price = Money {
                minor: record.record.amount,
                currency: record.record.currency,
            };
            let source = match &card {
                Some(card) => PaymentSource::Card(card_token(card)?),
                None => PaymentSource::Balance,
            };
            let escrow_ms = match escrow_minutes {
                Some(0) => return Err(input("--escrow-minutes must be above 0")),
                Some(m) => Some(m.saturating_mul(MS_PER_MINUTE)),
                None => None,
            };
            let mut keys = vec![key];
            if let Some(path) = &cosigner_key {
                keys.push(read_key(path)?);
            }
            let how = match (card.is_some(), escrow_ms.is_some()) {
                (false, false) => "from the balance",
                (false, true) => "from the balance into escrow",
                (true, false) => "by card",
                (true, true) => "by card into escrow",
            };
            let kind = TxKind::PayOrder {
                id: transfer_id(&id)?,
                order: OrderId(order),
                source,
                escrow_ms,
            };
            plan("pay-order", sender, keys, kind).words(format!(
                "order {order} of merchant {}: {price} paid {how}",
                record.record.merchant.0
            ))
        }
        WalletCommand::PayMerchant {
            signer,
            merchant,
            amount,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let merchant_account = customer_account(merchant, "--merchant")?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let kind = TxKind::PayMerchant {
                id: transfer_id(&id)?,
                merchant: merchant_account,
                amount: money.minor,
            };
            plan("pay-merchant", sender, vec![key], kind)
                .words(format!(
                    "{money} from account {} to merchant {merchant}",
                    signer.account
                ))
                .expect("MerchantPaid")
        }
        WalletCommand::ShowCode {
            signer,
            max_amount,
            currency,
            valid_minutes,
            code_nonce,
        } => {
            return show_code(
                client,
                &signer,
                &max_amount,
                currency.as_deref(),
                valid_minutes,
                code_nonce,
            )
            .await;
        }
        WalletCommand::ConfirmReceipt { signer, order } => {
            let (sender, key) = account_party(&signer, "--account")?;
            plan(
                "confirm-receipt",
                sender,
                vec![key],
                TxKind::ConfirmReceipt {
                    order: OrderId(order),
                },
            )
            .words(format!(
                "order {order} received; the escrow goes to the merchant"
            ))
            .expect("PaymentCompleted")
        }
        WalletCommand::CancelOrder { signer, order } => {
            let (sender, key) = account_party(&signer, "--account")?;
            plan(
                "cancel-order",
                sender,
                vec![key],
                TxKind::CancelOrder {
                    order: OrderId(order),
                },
            )
            .words(format!("order {order} cancelled; the escrow is released"))
            .expect("OrderCancelled")
        }
    })))
}

enum Direction {
    TopUp,
    Withdraw,
}

async fn card_movement(
    client: &Client,
    direction: Direction,
    signer: &AccountSigner,
    cosigner_key: &Path,
    card: &str,
    amount: &AmountArg,
    id: &TransferIdArg,
) -> Result<Plan, CommandError> {
    let (sender, key) = account_party(signer, "--account")?;
    let money = amount_in(amount, currency_of(client, signer.account).await?)?;
    let (id, card) = (transfer_id(id)?, card_token(card)?);
    let keys = vec![key, read_key(cosigner_key)?];
    Ok(match direction {
        Direction::TopUp => plan(
            "top-up",
            sender,
            keys,
            TxKind::TopUp {
                id,
                card,
                amount: money.minor,
            },
        )
        .words(format!(
            "{money} from the card's bank into wallet {}",
            signer.account
        ))
        .expect("ToppedUp"),
        Direction::Withdraw => plan(
            "withdraw",
            sender,
            keys,
            TxKind::Withdraw {
                id,
                card,
                amount: money.minor,
            },
        )
        .words(format!(
            "{money} from wallet {} back to the card's bank",
            signer.account
        ))
        .expect("Withdrawn"),
    })
}

async fn balance(client: &Client, account: u128) -> Result<Step, CommandError> {
    let raw = client
        .read_raw(
            &format!("/v1/accounts/{account}"),
            &format!("account {account}"),
        )
        .await?;
    let view: AccountView = parse(&raw, "an account")?;
    let currency = view.account.currency;
    let mut text = format!(
        "account {account} ({:?}, {currency}, institution {}) at height {}: balance {} {currency}, available {} {currency}",
        view.account.kind,
        view.account.institution.0,
        view.height,
        format_minor(view.balance, currency),
        format_minor(view.available, currency),
    );
    if view.account.frozen {
        text.push_str("; FROZEN");
    }
    Ok(Step::Read(Report { text, json: raw }))
}

async fn history(
    client: &Client,
    account: u128,
    limit: usize,
    before: Option<String>,
) -> Result<Step, CommandError> {
    if limit == 0 || limit > HISTORY_LIMIT_MAX {
        return Err(input(format!("--limit must be 1..={HISTORY_LIMIT_MAX}")));
    }
    let mut path = format!("/v1/accounts/{account}/history?limit={limit}");
    if let Some(before) = &before {
        let valid = before
            .split_once(':')
            .is_some_and(|(h, i)| h.parse::<u64>().is_ok() && i.parse::<u32>().is_ok());
        if !valid {
            return Err(input(format!(
                "--before {before:?}: write it as HEIGHT:INDEX"
            )));
        }
        path.push_str(&format!("&before={before}"));
    }
    let currency = currency_of(client, account).await?;
    let raw = client
        .read_raw(&path, &format!("account {account}"))
        .await?;
    let page: serde_json::Value = parse(&raw, "a history page")?;
    let entries = page
        .get("entries")
        .and_then(|e| e.as_array())
        .ok_or_else(|| ClientError::Answer("a history page without entries".to_string()))?;
    let mut lines = vec![format!(
        "account {account}: {} entr{}, newest first",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" }
    )];
    for entry in entries {
        let field = |name: &str| entry.get(name).cloned().unwrap_or(serde_json::Value::Null);
        let kind = entry
            .pointer("/transaction/tx/kind")
            .map(kind_name)
            .unwrap_or_else(|| "?".to_string());
        let events: Vec<Event> = serde_json::from_value(field("events")).unwrap_or_default();
        let told: Vec<String> = events.iter().map(|e| event_words(e, currency)).collect();
        lines.push(format!(
            "  {}:{}  {kind}  {}  {}",
            field("height"),
            field("index"),
            field("code").as_str().unwrap_or("?"),
            told.join("; ")
        ));
    }
    if let Some(next) = page.get("next_before").and_then(|n| n.as_str()) {
        lines.push(format!("  older entries: --before {next}"));
    }
    Ok(Step::Read(Report {
        text: lines.join("\n"),
        json: raw,
    }))
}

/// The variant name of a transaction kind as serde writes it: `"SettlementCycle"` or
/// `{"Transfer": {...}}`.
fn kind_name(kind: &serde_json::Value) -> String {
    match kind {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
        _ => "?".to_string(),
    }
}

/// An event in words; amounts in `currency` (the account's the reader looks at).
pub fn event_words(event: &Event, currency: Currency) -> String {
    let m = |amount: Amount| format!("{} {currency}", format_minor(i128::from(amount), currency));
    match event {
        Event::AccountRegistered {
            account,
            institution,
            tier,
        } => format!(
            "account {} registered at institution {} (tier {tier})",
            account.0, institution.0
        ),
        Event::CardBound { account, bank } => {
            format!("card of bank {} bound to {}", bank.0, account.0)
        }
        Event::ToppedUp {
            account, amount, ..
        } => format!("{} topped up to {}", m(*amount), account.0),
        Event::Withdrawn {
            account, amount, ..
        } => {
            format!("{} withdrawn from {}", m(*amount), account.0)
        }
        Event::TransferReceived {
            from, to, amount, ..
        } => format!("{} from {} to {}", m(*amount), from.0, to.0),
        Event::OrderCreated { order, amount, .. } => {
            format!("order {} created for {}", order.0, m(*amount))
        }
        Event::PaymentCompleted {
            order,
            merchant,
            amount,
            ..
        } => format!(
            "order {} paid: {} to merchant {}",
            order.0,
            m(*amount),
            merchant.0
        ),
        Event::PaymentHeld { order, amount, .. } => {
            format!("{} held in escrow for order {}", m(*amount), order.0)
        }
        Event::PaymentVoided { order, amount, .. } => {
            format!(
                "{} released back to the payer (order {})",
                m(*amount),
                order.0
            )
        }
        Event::OrderCancelled { order } => format!("order {} cancelled", order.0),
        Event::Refunded {
            order,
            amount,
            refunded_total,
            ..
        } => format!(
            "{} refunded for order {} ({} in all)",
            m(*amount),
            order.0,
            m(*refunded_total)
        ),
        Event::CollectedByCode {
            payer,
            merchant,
            amount,
            ..
        } => format!(
            "{} collected by code from {} by merchant {}",
            m(*amount),
            payer.0,
            merchant.0
        ),
        Event::MerchantPaid {
            payer,
            merchant,
            amount,
            ..
        } => format!("{} from {} to merchant {}", m(*amount), payer.0, merchant.0),
        Event::MerchantSettled { bank, net, fee, .. } => {
            format!("{} settled to bank {}, fee {}", m(*net), bank.0, m(*fee))
        }
        Event::BillIssued { bill, amount, .. } => {
            format!("bill {} issued for {}", bill.0, m(*amount))
        }
        Event::BillPaid { bill, amount, .. } => format!("bill {} paid: {}", bill.0, m(*amount)),
        Event::RemittanceCredited {
            debited,
            debit_currency,
            credited,
            credit_currency,
            beneficiary,
            ..
        } => format!(
            "{} {debit_currency} debited, {} {credit_currency} credited to {}",
            format_minor(i128::from(*debited), *debit_currency),
            format_minor(i128::from(*credited), *credit_currency),
            beneficiary.0
        ),
        Event::AccountFrozen { account, .. } => format!("account {} frozen", account.0),
        Event::AccountUnfrozen { account } => format!("account {} unfrozen", account.0),
        other => format!("{other:?}"),
    }
}

/// Payment codes travel as text: a prefix and the hex of the code with its signature.
pub fn encode_payment_code(code: &PaymentCode, signature: &Signature) -> String {
    let bytes = postcard::to_allocvec(&(code, signature)).unwrap_or_default();
    format!("{PAYMENT_CODE_PREFIX}{}", hex::encode(bytes))
}

pub fn decode_payment_code(text: &str) -> Result<(PaymentCode, Signature), CommandError> {
    let bad = |why: &str| input(format!("--code is not a payment code: {why}"));
    let text = text.trim();
    if text.len() > PAYMENT_CODE_HEX_CHARS_MAX {
        return Err(bad("too long"));
    }
    let hex_part = text
        .strip_prefix(PAYMENT_CODE_PREFIX)
        .ok_or_else(|| bad("it does not start with tallycode:"))?;
    let bytes = hex::decode(hex_part).map_err(|_| bad("not hex"))?;
    let (decoded, rest): ((PaymentCode, Signature), &[u8]) =
        postcard::take_from_bytes(&bytes).map_err(|_| bad("damaged"))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(decoded)
}

async fn show_code(
    client: &mut Client,
    signer: &AccountSigner,
    max_amount: &str,
    currency: Option<&str>,
    valid_minutes: u64,
    code_nonce: Option<u64>,
) -> Result<Step, CommandError> {
    let payer = customer_account(signer.account, "--account")?;
    let key = read_key(&signer.key)?;
    let view = client.account(signer.account).await?;
    if view.account.holder.key != key.public_key() {
        return Err(input(format!(
            "{} is not account {}'s current device key: a code signed with it would be refused",
            signer.key.display(),
            signer.account
        )));
    }
    let max = amount_in(
        &AmountArg {
            amount: max_amount.to_string(),
            currency: currency.map(str::to_string),
        },
        view.account.currency,
    )?;
    let expires_at_ms = minutes_from_now(
        valid_minutes,
        "--valid-minutes",
        PAYMENT_CODE_VALID_MINUTES_MAX,
    )?;
    let code_nonce = match code_nonce {
        Some(n) => n,
        None => random_u64()?,
    };
    #[derive(Deserialize)]
    struct CodeState {
        used: bool,
    }
    let state: AtHeight<CodeState> = client
        .record(
            &format!("/v1/payment-codes/{}/{code_nonce}", key.public_key()),
            "payment code",
        )
        .await?;
    if state.record.used {
        return Err(input(format!(
            "code number {code_nonce} of this key was already used; choose another --code-nonce"
        )));
    }
    let code = PaymentCode {
        payer,
        payer_key: key.public_key(),
        max_amount: max.minor,
        expires_at_ms,
        code_nonce,
    };
    let chain_id = client.chain_id().await?;
    let signature = code.sign(&key, &chain_id);
    let text = encode_payment_code(&code, &signature);
    Ok(Step::Read(Report {
        text: format!(
            "payment code of account {}, up to {max}, good once for {valid_minutes} minute(s):\n{text}",
            signer.account
        ),
        json: to_json(&json!({
            "payment_code": text,
            "payer": signer.account.to_string(),
            "max_amount": max.minor,
            "currency": max.currency.to_string(),
            "expires_at_ms": expires_at_ms,
            "code_nonce": code_nonce,
        })),
    }))
}

async fn merchant(client: &mut Client, command: MerchantCommand) -> Result<Step, CommandError> {
    Ok(Step::Send(Box::new(match command {
        MerchantCommand::Register {
            signer,
            cosigner_key,
            merchant,
            currency,
            fee_bps,
            identity,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let merchant_key = read_key(&cosigner_key)?;
            let currency = money::currency(&currency)?;
            money::exponent(currency)?;
            let kind = TxKind::RegisterMerchant {
                account: customer_account(merchant, "--merchant")?,
                key: merchant_key.public_key(),
                currency,
                fee_bps,
                identity: digest_of(IDENTITY_DOMAIN, &identity),
            };
            plan("register-merchant", sender, vec![key, merchant_key], kind)
                .words(format!(
                    "merchant {merchant} ({currency}, fee {fee_bps} bps) registered by acquirer {}",
                    signer.institution
                ))
                .expect("MerchantRegistered")
        }
        MerchantCommand::CreateOrder {
            signer,
            order,
            amount,
            expires_minutes,
            items,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let kind = TxKind::CreateOrder {
                order: OrderId(order),
                amount: money.minor,
                currency: money.currency,
                expires_at_ms: minutes_from_now(
                    expires_minutes,
                    "--expires-minutes",
                    ORDER_VALID_MINUTES_MAX,
                )?,
                items: digest_of(ITEMS_DOMAIN, &items),
            };
            plan("create-order", sender, vec![key], kind)
                .words(format!(
                    "order {order} of merchant {} for {money}",
                    signer.account
                ))
                .expect("OrderCreated")
        }
        MerchantCommand::Collect {
            signer,
            code,
            amount,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let (code, code_signature) = decode_payment_code(&code)?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let kind = TxKind::CollectByCode {
                id: transfer_id(&id)?,
                code,
                code_signature,
                amount: money.minor,
            };
            plan("collect", sender, vec![key], kind)
                .words(format!(
                    "{money} collected from account {} by merchant {}",
                    code.payer.0, signer.account
                ))
                .expect("CollectedByCode")
        }
        MerchantCommand::Cancel { signer, order } => {
            let (sender, key) = account_party(&signer, "--account")?;
            plan(
                "cancel-order",
                sender,
                vec![key],
                TxKind::CancelOrder {
                    order: OrderId(order),
                },
            )
            .words(format!("order {order} cancelled"))
            .expect("OrderCancelled")
        }
        MerchantCommand::Refund {
            signer,
            order,
            amount,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let kind = TxKind::Refund {
                id: transfer_id(&id)?,
                order: OrderId(order),
                amount: money.minor,
            };
            plan("refund", sender, vec![key], kind)
                .words(format!("{money} refunded on order {order}"))
                .expect("Refunded")
        }
        MerchantCommand::Settle {
            signer,
            amount,
            currency,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let view = client.account(signer.account).await?;
            let money = match amount {
                Some(text) => amount_in(
                    &AmountArg {
                        amount: text,
                        currency,
                    },
                    view.account.currency,
                )?,
                None => {
                    let minor = Amount::try_from(view.balance)
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| {
                            input(format!("merchant {} has nothing to settle", signer.account))
                        })?;
                    Money {
                        minor,
                        currency: view.account.currency,
                    }
                }
            };
            let kind = TxKind::SettleMerchant {
                id: transfer_id(&id)?,
                amount: money.minor,
            };
            plan("settle", sender, vec![key], kind)
                .words(format!(
                    "{money} of merchant {} settled to its bank",
                    signer.account
                ))
                .expect("MerchantSettled")
                .in_currency(money.currency)
        }
        MerchantCommand::Order { order } => {
            let raw = client
                .read_raw(&format!("/v1/orders/{order}"), &format!("order {order}"))
                .await?;
            let view: AtHeight<Order> = parse(&raw, "an order")?;
            let o = view.record;
            let price = Money {
                minor: o.amount,
                currency: o.currency,
            };
            let paid = format_minor(i128::from(o.paid), o.currency);
            let refunded = format_minor(i128::from(o.refunded), o.currency);
            return Ok(Step::Read(Report {
                text: format!(
                    "order {order} of merchant {} at height {}: {price}, {:?}; paid {paid}, refunded {refunded}",
                    o.merchant.0, view.height, o.status
                ),
                json: raw,
            }));
        }
    })))
}

async fn bill(client: &mut Client, command: BillCommand) -> Result<Step, CommandError> {
    Ok(Step::Send(Box::new(match command {
        BillCommand::RegisterBiller {
            signer,
            cosigner_key,
            biller,
            currency,
            identity,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let biller_key = read_key(&cosigner_key)?;
            let currency = money::currency(&currency)?;
            money::exponent(currency)?;
            let kind = TxKind::RegisterBiller {
                account: customer_account(biller, "--biller")?,
                key: biller_key.public_key(),
                currency,
                identity: digest_of(IDENTITY_DOMAIN, &identity),
            };
            plan("register-biller", sender, vec![key, biller_key], kind)
                .words(format!(
                    "biller {biller} ({currency}) registered by acquirer {}",
                    signer.institution
                ))
                .expect("BillerRegistered")
        }
        BillCommand::Issue {
            signer,
            bill,
            customer,
            amount,
            due_days,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let due_minutes = due_days
                .checked_mul(24 * 60)
                .ok_or_else(|| input("--due-days is too large"))?;
            let kind = TxKind::IssueBill {
                bill: BillId(bill),
                customer: digest_of(CUSTOMER_DOMAIN, &customer),
                amount: money.minor,
                due_ms: minutes_from_now(
                    due_minutes.max(1),
                    "--due-days",
                    u64::MAX / MS_PER_MINUTE,
                )?,
            };
            plan("issue-bill", sender, vec![key], kind)
                .words(format!(
                    "bill {bill} of {money} issued by biller {}",
                    signer.account
                ))
                .expect("BillIssued")
        }
        BillCommand::Pay {
            signer,
            bill,
            amount,
            currency,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let record: AtHeight<Bill> = client
                .record(&format!("/v1/bills/{bill}"), &format!("bill {bill}"))
                .await?;
            let due = Money {
                minor: record.record.amount,
                currency: record.record.currency,
            };
            let money = match amount {
                Some(text) => amount_in(
                    &AmountArg {
                        amount: text,
                        currency,
                    },
                    due.currency,
                )?,
                None => due,
            };
            let kind = TxKind::PayBill {
                id: transfer_id(&id)?,
                bill: BillId(bill),
                amount: money.minor,
            };
            plan("pay-bill", sender, vec![key], kind)
                .words(format!(
                    "bill {bill} of biller {}: {money} paid by account {}",
                    record.record.biller.0, signer.account
                ))
                .expect("BillPaid")
        }
        BillCommand::Show { bill } => {
            let raw = client
                .read_raw(&format!("/v1/bills/{bill}"), &format!("bill {bill}"))
                .await?;
            let view: AtHeight<Bill> = parse(&raw, "a bill")?;
            let b = view.record;
            let due = Money {
                minor: b.amount,
                currency: b.currency,
            };
            let state = match b.paid_by {
                Some(payer) => format!("paid by account {}", payer.0),
                None => "unpaid".to_string(),
            };
            return Ok(Step::Read(Report {
                text: format!(
                    "bill {bill} of biller {} at height {}: {due}, {state}",
                    b.biller.0, view.height
                ),
                json: raw,
            }));
        }
    })))
}

#[derive(Debug, Deserialize, Serialize)]
struct RateView {
    provider: InstitutionId,
    base: Currency,
    quote: Currency,
    rate: u64,
    scale: u64,
    valid_from_ms: u64,
    valid_until_ms: u64,
}

#[derive(Debug, Deserialize)]
struct Rates {
    rates: Vec<RateView>,
}

async fn fx(client: &mut Client, command: FxCommand) -> Result<Step, CommandError> {
    match command {
        FxCommand::PublishRate {
            signer,
            base,
            quote,
            rate,
            valid_minutes,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let (base, quote) = (money::currency(&base)?, money::currency(&quote)?);
            let ledger_rate = money::rate_to_ledger(&rate, base, quote, RATE_SCALE)?;
            if valid_minutes == 0 || valid_minutes > FX_RATE_VALID_MINUTES_MAX {
                return Err(input(format!(
                    "--valid-minutes must be 1..={FX_RATE_VALID_MINUTES_MAX}"
                )));
            }
            // Valid from the last block's time: the next block is never earlier.
            let from = client.latest().await?.header.time_ms;
            let until = from.saturating_add(valid_minutes.saturating_mul(MS_PER_MINUTE));
            let kind = TxKind::PublishFxRate {
                base,
                quote,
                rate: ledger_rate,
                valid_from_ms: from,
                valid_until_ms: until,
            };
            let plan = plan("publish-rate", sender, vec![key], kind)
                .words(format!(
                    "{base}→{quote} at {rate} from provider {} for {valid_minutes} minute(s)",
                    signer.institution
                ))
                .expect("FxRatePublished");
            Ok(Step::Send(Box::new(plan)))
        }
        FxCommand::Rates {
            provider,
            base,
            quote,
        } => {
            let mut query = Vec::new();
            if let Some(p) = provider {
                query.push(format!("provider={p}"));
            }
            if let Some(b) = base {
                query.push(format!("base={}", money::currency(&b)?));
            }
            if let Some(q) = quote {
                query.push(format!("quote={}", money::currency(&q)?));
            }
            let path = format!("/v1/fx-rates?{}", query.join("&"));
            let raw = client.read_raw(&path, "the rates").await?;
            let view: AtHeight<Rates> = parse(&raw, "the rates")?;
            let mut lines = vec![format!(
                "{} rate(s) at height {}",
                view.record.rates.len(),
                view.height
            )];
            for r in &view.record.rates {
                lines.push(format!(
                    "  provider {}: {}→{} {} quote minor units per base minor unit (÷{}), valid {}..{} ms",
                    r.provider.0, r.base, r.quote, r.rate, r.scale, r.valid_from_ms, r.valid_until_ms
                ));
            }
            Ok(Step::Read(Report {
                text: lines.join("\n"),
                json: raw,
            }))
        }
    }
}

async fn remit(client: &mut Client, command: RemitCommand) -> Result<Plan, CommandError> {
    let (sender, key) = account_party(&command.signer, "--account")?;
    let beneficiary = customer_account(command.to, "--to")?;
    let from_currency = currency_of(client, command.signer.account).await?;
    let to_currency = currency_of(client, command.to).await?;
    let parse = |text: &str, currency: Currency| -> Result<Money, CommandError> {
        Ok(Money::parse_positive(text, Some(currency))?)
    };
    // The published rate, for a bound the sender left out.
    let rate = || async {
        let path = format!(
            "/v1/fx-rates?provider={}&base={from_currency}&quote={to_currency}",
            command.provider
        );
        let view: AtHeight<Rates> = client.api.get_json(&path).await?;
        view.record
            .rates
            .into_iter()
            .next()
            .map(|r| u128::from(r.rate))
            .filter(|r| *r > 0)
            .ok_or_else(|| {
                input(format!(
                    "provider {} publishes no {from_currency}→{to_currency} rate; give both bounds",
                    command.provider
                ))
            })
    };
    let scale = u128::from(RATE_SCALE);
    let overflow = || input("the amount is too large to convert");
    let (amount, words) = match (&command.send, &command.receive) {
        (Some(send), _) => {
            let debit = parse(send, from_currency)?;
            let min_credit = match &command.min_receive {
                Some(text) => parse(text, to_currency)?.minor,
                None => {
                    let credit = u128::from(debit.minor)
                        .checked_mul(rate().await?)
                        .ok_or_else(overflow)?
                        / scale;
                    Amount::try_from(credit).map_err(|_| overflow())?
                }
            };
            let least = Money {
                minor: min_credit,
                currency: to_currency,
            };
            (
                FxAmount::Send {
                    debit: debit.minor,
                    min_credit,
                },
                format!("{debit} sent, at least {least} to account {}", command.to),
            )
        }
        (None, Some(receive)) => {
            let credit = parse(receive, to_currency)?;
            let max_debit = match &command.max_send {
                Some(text) => parse(text, from_currency)?.minor,
                None => {
                    let rate = rate().await?;
                    let debit = u128::from(credit.minor)
                        .checked_mul(scale)
                        .and_then(|x| x.checked_add(rate - 1))
                        .ok_or_else(overflow)?
                        / rate;
                    Amount::try_from(debit).map_err(|_| overflow())?
                }
            };
            let most = Money {
                minor: max_debit,
                currency: from_currency,
            };
            (
                FxAmount::Receive {
                    credit: credit.minor,
                    max_debit,
                },
                format!("{credit} to account {} for at most {most}", command.to),
            )
        }
        (None, None) => return Err(input("give --send or --receive")),
    };
    let kind = TxKind::CrossBorderTransfer {
        id: transfer_id(&command.id)?,
        provider: InstitutionId(command.provider),
        beneficiary,
        amount,
    };
    Ok(plan("remit", sender, vec![key], kind)
        .words(words)
        .expect("RemittanceCredited"))
}

async fn regulator(_client: &mut Client, command: RegulatorCommand) -> Result<Plan, CommandError> {
    Ok(match command {
        RegulatorCommand::Freeze {
            signer,
            target,
            reason,
        } => {
            let (sender, key) = institution_party(&signer)?;
            if reason.trim().is_empty() {
                return Err(input("--reason is empty: name the case"));
            }
            let kind = TxKind::Freeze {
                account: AccountId(target),
                reason: digest_of(REASON_DOMAIN, &reason),
            };
            plan("freeze", sender, vec![key], kind)
                .words(format!("account {target} frozen ({reason})"))
                .expect("AccountFrozen")
        }
        RegulatorCommand::Unfreeze { signer, target } => {
            let (sender, key) = institution_party(&signer)?;
            let kind = TxKind::Unfreeze {
                account: AccountId(target),
            };
            plan("unfreeze", sender, vec![key], kind)
                .words(format!("account {target} unfrozen"))
                .expect("AccountUnfrozen")
        }
        RegulatorCommand::SetLimits {
            signer,
            cosigner_key,
            tier,
            single_max,
            daily_max,
            currency,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let currency = optional_currency(currency.as_deref())?
                .or_else(|| Money::written_currency(&single_max))
                .ok_or_else(|| MoneyError::NoCurrency(single_max.clone()))?;
            let single = Money::parse_positive(&single_max, Some(currency))?;
            let daily = Money::parse_positive(&daily_max, Some(currency))?;
            if daily.minor < single.minor {
                return Err(input("--daily-max is below --single-max"));
            }
            let mut keys = vec![key];
            for path in &cosigner_key {
                keys.push(read_key(path)?);
            }
            let kind = TxKind::Govern(GovernanceAction::SetTierLimits {
                tier,
                single_max: single.minor,
                daily_max: daily.minor,
            });
            plan("set-limits", sender, keys, kind)
                .words(format!(
                    "tier {tier}: at most {single} a payment, {daily} a day"
                ))
                .expect("GovernanceApplied")
        }
        RegulatorCommand::Sanction { signer, identity } => {
            let (sender, key) = institution_party(&signer)?;
            let kind = TxKind::AddSanction {
                identity: digest_of(IDENTITY_DOMAIN, &identity),
            };
            plan("sanction", sender, vec![key], kind)
                .words("identity added to the sanctions list")
                .expect("SanctionAdded")
        }
        RegulatorCommand::Unsanction { signer, identity } => {
            let (sender, key) = institution_party(&signer)?;
            let kind = TxKind::RemoveSanction {
                identity: digest_of(IDENTITY_DOMAIN, &identity),
            };
            plan("unsanction", sender, vec![key], kind)
                .words("identity removed from the sanctions list")
                .expect("SanctionRemoved")
        }
    })
}

async fn institution(
    client: &mut Client,
    command: InstitutionCommand,
) -> Result<Step, CommandError> {
    Ok(Step::Send(Box::new(match command {
        InstitutionCommand::SettleCycle { signer } => {
            let (sender, key) = institution_party(&signer)?;
            plan("settle-cycle", sender, vec![key], TxKind::SettlementCycle)
                .words(format!(
                    "open obligations netted by institution {}",
                    signer.institution
                ))
                .expect("SettlementCycleOpened")
        }
        InstitutionCommand::Confirm { signer, cycle } => {
            let (sender, key) = institution_party(&signer)?;
            plan(
                "confirm-settlement",
                sender,
                vec![key],
                TxKind::ConfirmSettlement {
                    cycle: CycleId(cycle),
                },
            )
            .words(format!(
                "institution {} confirmed receipt for cycle {cycle}",
                signer.institution
            ))
            .expect("SettlementConfirmed")
        }
        InstitutionCommand::Show { institution } => {
            let raw = client
                .read_raw(
                    &format!("/v1/institutions/{institution}"),
                    &format!("institution {institution}"),
                )
                .await?;
            let value: serde_json::Value = parse(&raw, "an institution")?;
            let positions = value
                .pointer("/record/positions")
                .cloned()
                .unwrap_or_default();
            let positions: Vec<tally_contracts::NetPosition> =
                serde_json::from_value(positions).unwrap_or_default();
            let told: Vec<String> = positions
                .iter()
                .map(|p| format!("{} {}", format_minor(p.net, p.currency), p.currency))
                .collect();
            let open = value
                .pointer("/record/open_obligations")
                .and_then(|o| o.as_array())
                .map_or(0, Vec::len);
            return Ok(Step::Read(Report {
                text: format!(
                    "institution {institution} at height {}: {open} open obligation(s); net if settled now: {}",
                    value.get("height").cloned().unwrap_or_default(),
                    if told.is_empty() {
                        "nothing".to_string()
                    } else {
                        told.join(", ")
                    }
                ),
                json: raw,
            }));
        }
        InstitutionCommand::Cycle { cycle } => {
            let raw = client
                .read_raw(
                    &format!("/v1/settlement-cycles/{cycle}"),
                    &format!("settlement cycle {cycle}"),
                )
                .await?;
            let value: serde_json::Value = parse(&raw, "a settlement cycle")?;
            let awaiting = value
                .pointer("/record/awaiting")
                .cloned()
                .unwrap_or_default();
            let awaiting: Vec<InstitutionId> = serde_json::from_value(awaiting).unwrap_or_default();
            let names: Vec<String> = awaiting.iter().map(|i| i.0.to_string()).collect();
            return Ok(Step::Read(Report {
                text: if names.is_empty() {
                    format!("settlement cycle {cycle}: closed, every receiver confirmed")
                } else {
                    format!(
                        "settlement cycle {cycle}: awaiting confirmation by institution(s) {}",
                        names.join(", ")
                    )
                },
                json: raw,
            }));
        }
    })))
}

/// Signs, submits, waits for the commit, and tells the outcome.
async fn send(client: &mut Client, plan: Plan) -> Result<Report, CommandError> {
    let chain_id = client.chain_id().await?;
    let mut submitter = Submitter::new(client.api, chain_id);
    let keys: Vec<&SigningKey> = plan.keys.iter().collect();
    let receipt = submitter.send(plan.sender, &keys, plan.kind).await?;
    let height = receipt
        .height
        .map_or_else(|| "?".to_string(), |h| h.to_string());
    let json = receipt_json(plan.what, &plan.words, &receipt);
    if !receipt.is_ok() {
        return Err(CommandError::Refused(Box::new(Refusal {
            code: receipt.code.clone(),
            message: receipt.message.clone().unwrap_or_default(),
            what: plan.what.to_string(),
            hash: receipt.hash,
            height,
            report: Report {
                text: String::new(),
                json,
            },
        })));
    }
    if let Some(expected) = plan.expect
        && !receipt.events.iter().any(|e| event_name(e) == expected)
    {
        return Err(ClientError::MissingEvent(expected.to_string()).into());
    }
    let short = receipt.hash.to_hex();
    let mut text = format!(
        "{} {}… committed at height {height}: {}",
        plan.what,
        short.get(..12).unwrap_or(&short),
        plan.words
    );
    for line in extra_lines(&receipt.events, plan.currency) {
        text.push_str("\n  ");
        text.push_str(&line);
    }
    Ok(Report { text, json })
}

/// What a few flows learn only from their events: the cycle's number and positions, a
/// merchant's net and fee, a remittance's amounts.
fn extra_lines(events: &[Event], currency: Option<Currency>) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::SettlementCycleOpened { cycle, positions } => {
                let told: Vec<String> = positions
                    .iter()
                    .filter(|p| p.net != 0)
                    .map(|p| {
                        format!(
                            "institution {} {} {}",
                            p.institution.0,
                            format_minor(p.net, p.currency),
                            p.currency
                        )
                    })
                    .collect();
                Some(format!(
                    "settlement cycle {} opened: {}",
                    cycle.0,
                    told.join(", ")
                ))
            }
            Event::SettlementClosed { cycle } => {
                Some(format!("settlement cycle {} closed", cycle.0))
            }
            Event::MerchantSettled { net, fee, bank, .. } => Some(match currency {
                Some(c) => format!(
                    "{} {c} to bank {}, {} {c} fee to the platform",
                    format_minor(i128::from(*net), c),
                    bank.0,
                    format_minor(i128::from(*fee), c)
                ),
                None => format!("net {net}, fee {fee} (minor units) to bank {}", bank.0),
            }),
            Event::RemittanceCredited { .. } => Some(event_words(event, Currency::CNY)),
            _ => None,
        })
        .collect()
}

/// A receipt as the command's JSON answer.
#[derive(Serialize)]
struct ReceiptJson<'a> {
    command: &'a str,
    outcome: &'a str,
    code: &'a str,
    message: Option<&'a str>,
    hash: Hash,
    height: Option<u64>,
    summary: &'a str,
    events: &'a [Event],
}

fn receipt_json(what: &str, words: &str, receipt: &Receipt) -> String {
    to_json(&ReceiptJson {
        command: what,
        outcome: if receipt.is_ok() {
            "committed"
        } else {
            "refused"
        },
        code: &receipt.code,
        message: receipt.message.as_deref(),
        hash: receipt.hash,
        height: receipt.height,
        summary: words,
        events: &receipt.events,
    })
}

/// JSON text; written straight from the values, so 128-bit ids keep every digit.
fn to_json(value: &impl Serialize) -> String {
    serde_json::to_string_pretty(value)
        .unwrap_or_else(|e| format!("{{\"error\": \"cannot write JSON: {e}\"}}"))
}

/// A node's answer as `T`.
fn parse<T: serde::de::DeserializeOwned>(raw: &str, what: &str) -> Result<T, CommandError> {
    serde_json::from_str(raw)
        .map_err(|e| ClientError::Answer(format!("{what} of another shape: {e}")).into())
}

/// An event's variant name, as its `Debug` form begins.
pub fn event_name(event: &Event) -> String {
    format!("{event:?}")
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}
