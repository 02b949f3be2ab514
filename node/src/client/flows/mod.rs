//! The `tally` client commands, one per flow of the payment process: each reads its inputs
//! (account and institution ids, key files, amounts in major units), builds the flow's
//! transaction, signs it with the sender's key and any co-signer's, submits it, waits for the
//! commit, and tells the outcome in words or as JSON. Read commands (balance, history, orders,
//! bills, rates, positions) read the API.
//!
//! - `args`: the commands and their options (clap); one enum per area.
//! - `wallet`, `merchant`, `bills`, `fx` (FX rates and remittances), `regulator`,
//!   `governance`, `interbank`, `disputes` (disputes and refund requests), `travel`
//!   (encryption keys, travel-rule data): each area's transaction builders and reads;
//!   `webhooks`: the --as party's webhook subscriptions.
//! - `words`: events and payment codes as people read and pass them on.
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
use tally_crypto::{Hash, IdentitySecret, KeyFile, Signature, SigningKey};

use tally_sdk::ClientError;
use tally_sdk::api::{Api, Receipt};
use tally_sdk::money::{self, Money, MoneyError, format_minor};
use tally_sdk::submitter::{AccountView, AtHeight, Submitter};

mod args;
mod bills;
mod disputes;
mod fx;
mod governance;
mod interbank;
mod merchant;
mod regulator;
mod travel;
mod verify;
mod wallet;
mod webhooks;
mod words;

pub use args::*;
use words::extra_lines;
pub use words::{decode_payment_code, encode_payment_code, event_name, event_words};

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
    #[error(transparent)]
    TravelRule(tally_sdk::travel_rule::TravelRuleError),
    /// A proven record the client does not believe.
    #[error("NOT VERIFIED: {0}")]
    NotVerified(#[from] crate::proof::ProofCheckError),
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

/// One client command, by area.
#[derive(Debug)]
pub enum ClientCommand {
    Wallet(WalletCommand),
    Merchant(MerchantCommand),
    Bill(BillCommand),
    Fx(FxCommand),
    Remit(Box<RemitCommand>),
    Regulator(RegulatorCommand),
    Governance(GovernanceCommand),
    Institution(InstitutionCommand),
    TravelRule(TravelRuleCommand),
    Verify(VerifyCommand),
    Webhook(WebhookCommand),
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
    let api = connect(connection)?;
    let mut client = Client {
        api,
        chain_id: connection.chain_id.clone(),
    };
    let plan = match command {
        ClientCommand::Wallet(c) => match wallet::run(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::Merchant(c) => match merchant::run(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::Bill(c) => match bills::run(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::Fx(c) => match fx::run(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::Remit(c) => fx::remit(&mut client, *c).await?,
        ClientCommand::Regulator(c) => match regulator::run(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::Governance(GovernanceCommand::ChangeValidators(c)) => {
            return governance::change_validators(&mut client, c).await;
        }
        ClientCommand::Governance(c) => governance::run(c)?,
        ClientCommand::Institution(c) => match interbank::run(&mut client, c).await? {
            Step::Read(report) => return Ok(report),
            Step::Send(plan) => *plan,
        },
        ClientCommand::TravelRule(c) => return travel::open(&mut client, c).await,
        ClientCommand::Verify(c) => return verify::run(&client, c).await,
        ClientCommand::Webhook(c) => return webhooks::run(&client, c).await,
    };
    send(&mut client, plan).await
}

/// The node's API as `connection` says: its URL, the CA to trust, and the party to read as.
fn connect(connection: &Connection) -> Result<Api, CommandError> {
    let api = Api::from_url(&connection.api, connection.ca_cert.as_deref())?;
    match (&connection.as_party, &connection.as_key) {
        (None, None) => Ok(api),
        (Some(party), Some(file)) => {
            let keyid = tally_sdk::KeyId::parse(party).ok_or_else(|| {
                input(format!(
                    "--as {party}: name the party as account:ID or institution:ID"
                ))
            })?;
            Ok(api.signed_as(tally_sdk::Credential::new(keyid, read_key(file)?)))
        }
        _ => Err(input("--as and --as-key go together")),
    }
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

impl IdentityArg {
    /// The digest the ledger keeps: 64 hex digits as they are, otherwise the text keyed
    /// with the identity secret (an unkeyed hash of an ID number is reversed by trying
    /// every ID number).
    fn digest(&self) -> Result<Hash, CommandError> {
        let text = self.identity.trim();
        if text.is_empty() {
            return Err(input("--identity is empty"));
        }
        if text.len() == 64
            && let Ok(hash) = Hash::from_hex(text)
        {
            return Ok(hash);
        }
        let path = self.identity_secret.as_deref().ok_or_else(|| {
            input(
                "--identity-secret FILE (or TALLY_IDENTITY_SECRET) is needed to digest an \
                 identity: the secret the KYC institutions and the regulator share",
            )
        })?;
        let secret = IdentitySecret::read(path).map_err(|e| CommandError::KeyFile {
            path: path.to_path_buf(),
            detail: e.to_string(),
        })?;
        Ok(identity_digest(&secret, text))
    }
}

/// A person's identity digest under the identity secret: the same at every bank and for
/// the regulator, for the same text.
pub fn identity_digest(secret: &IdentitySecret, text: &str) -> Hash {
    secret.digest(IDENTITY_DOMAIN, text.trim().as_bytes())
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

fn minutes_from_now(minutes: u64, flag: &str, max: u64) -> Result<u64, CommandError> {
    if minutes == 0 || minutes > max {
        return Err(input(format!("{flag} must be 1..={max}")));
    }
    Ok(crate::clock::now_ms().saturating_add(minutes.saturating_mul(MS_PER_MINUTE)))
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

/// Signs, submits, waits for the commit, and tells the outcome.
async fn send(client: &mut Client, plan: Plan) -> Result<Report, CommandError> {
    let chain_id = client.chain_id().await?;
    let mut submitter = Submitter::new(client.api.clone(), chain_id);
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

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    use tally_crypto::HashBuilder;

    #[test]
    fn api_addresses_are_plain_http_host_and_port() {
        let expected: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        for text in [
            "http://127.0.0.1:8080",
            "127.0.0.1:8080",
            "http://127.0.0.1:8080/",
        ] {
            assert_eq!(api_address(text).unwrap(), expected, "{text}");
        }
        for bad in [
            "https://127.0.0.1:8080",
            "http://127.0.0.1:8080/v1",
            "127.0.0.1",
            "",
        ] {
            assert!(api_address(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn free_text_becomes_a_digest_and_hex_stays_itself() {
        let hex = "ab".repeat(32);
        assert_eq!(digest_of(CARD_DOMAIN, &hex).to_hex(), hex);
        assert_ne!(
            digest_of(CARD_DOMAIN, "alice-card"),
            digest_of(CARD_DOMAIN, "bob-card")
        );
        assert!(card_token(" ").is_err());
        assert!(customer_account(1 << 127, "--to").is_err());
        assert!(customer_account(7, "--to").is_ok());
    }

    /// What the issue asks of identity digests: the value that reaches the chain for a
    /// known ID number is none of its unkeyed hashes, and two banks' registrations of the
    /// same person and the regulator's sanction of that person carry the same digest.
    #[tokio::test]
    async fn one_person_has_one_keyed_digest_at_two_banks_and_in_the_regulators_sanction() {
        let dir = std::env::temp_dir().join(format!("tally-identity-flow-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let secret = dir.join("identity.secret");
        IdentitySecret::from_bytes([42; 32])
            .write_new(&secret)
            .unwrap();
        let key_file = |name: &str, seed: u8| {
            let path = dir.join(name);
            KeyFile::write_new(&SigningKey::from_seed([seed; 32]), &path).unwrap();
            path
        };
        let id_number = "110101199003077777";
        let identity = IdentityArg {
            identity: id_number.into(),
            identity_secret: Some(secret.clone()),
        };
        let mut client = Client {
            api: Api::from_url("http://127.0.0.1:9", None).unwrap(),
            chain_id: Some("t".into()),
        };
        let mut registered = Vec::new();
        for (account, bank) in [(7u128, 1u32), (8, 2)] {
            let command = WalletCommand::Register {
                signer: AccountSigner {
                    account,
                    key: key_file(&format!("wallet-{account}.key"), account as u8),
                },
                cosigner_key: key_file(&format!("bank-{bank}.key"), bank as u8),
                institution: bank,
                currency: "CNY".into(),
                tier: 0,
                identity: identity.clone(),
            };
            let Step::Send(plan) = wallet::run(&mut client, command).await.unwrap() else {
                panic!("a registration is a transaction");
            };
            let TxKind::RegisterAccount { identity, .. } = plan.kind else {
                panic!("not a registration: {:?}", plan.kind);
            };
            registered.push(identity);
        }
        let sanction = RegulatorCommand::Sanction {
            signer: InstitutionSigner {
                institution: 5,
                key: key_file("regulator.key", 5),
            },
            identity: identity.clone(),
        };
        let Step::Send(plan) = regulator::run(&mut client, sanction).await.unwrap() else {
            panic!("a sanction is a transaction");
        };
        let TxKind::AddSanction { identity: listed } = plan.kind else {
            panic!("not a sanction: {:?}", plan.kind);
        };
        assert_eq!(registered, vec![listed, listed]);
        for unkeyed in [
            Hash::digest(IDENTITY_DOMAIN, id_number.as_bytes()),
            Hash::digest("tally-devnet-identity", id_number.as_bytes()),
            HashBuilder::new(IDENTITY_DOMAIN)
                .update(id_number.as_bytes())
                .finish(),
        ] {
            assert_ne!(listed, unkeyed);
        }
        // No secret, no digest: the client never falls back to an unkeyed hash.
        let without = IdentityArg {
            identity: id_number.into(),
            identity_secret: None,
        };
        assert!(without.digest().is_err());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
