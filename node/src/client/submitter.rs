//! Signing and submitting on behalf of several senders, each with its own nonce.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tally_contracts::{Party, Transaction, TxKind};
use tally_crypto::SigningKey;

use super::ClientError;
use super::api::{Api, Receipt};

/// Signs and submits on behalf of several senders, keeping each sender's next nonce.
/// A sender's first nonce is read from the chain, so a client can join a running network.
#[derive(Debug)]
pub struct Submitter {
    pub api: Api,
    pub chain_id: String,
    nonces: BTreeMap<PartyKey, u64>,
}

/// `Party` is not ordered; this is its sort key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum PartyKey {
    Account(u128),
    Institution(u32),
}

fn party_key(party: Party) -> PartyKey {
    match party {
        Party::Account(a) => PartyKey::Account(a.0),
        Party::Institution(i) => PartyKey::Institution(i.0),
    }
}

/// A record as the API answers it: the record and the committed height it was read at.
#[derive(Debug, Deserialize)]
pub struct AtHeight<T> {
    pub height: u64,
    pub record: T,
}

#[derive(Debug, Deserialize)]
struct InstitutionRecord {
    institution: tally_contracts::Institution,
}

/// `/v1/accounts/{id}`: an account with its balances at a height.
#[derive(Debug, Clone, Deserialize, serde::Serialize)]
pub struct AccountView {
    pub height: u64,
    pub account: tally_contracts::Account,
    pub balance: i128,
    pub available: i128,
}

impl Submitter {
    pub fn new(api: Api, chain_id: String) -> Submitter {
        Submitter {
            api,
            chain_id,
            nonces: BTreeMap::new(),
        }
    }

    /// The sender's next nonce: remembered, or read from the chain (0 for a new account).
    async fn next_nonce(&mut self, sender: Party) -> Result<u64, ClientError> {
        if let Some(n) = self.nonces.get(&party_key(sender)) {
            return Ok(*n);
        }
        let nonce = match sender {
            Party::Institution(id) => {
                let view: AtHeight<InstitutionRecord> = self
                    .api
                    .get_json(&format!("/v1/institutions/{}", id.0))
                    .await?;
                view.record.institution.nonce
            }
            Party::Account(id) => {
                let answer = self.api.get(&format!("/v1/accounts/{}", id.0)).await?;
                if answer.status == StatusCode::NOT_FOUND {
                    0
                } else {
                    answer.json::<AccountView>()?.account.holder.nonce
                }
            }
        };
        Ok(nonce)
    }

    /// Signs `kind` as `sender` (first key) with any co-signers, submits it, and waits for
    /// its receipt. The nonce advances whenever the ledger executed the transaction, even
    /// when it refused it; a submission the node did not take leaves it where it was.
    pub async fn send(
        &mut self,
        sender: Party,
        keys: &[&SigningKey],
        kind: TxKind,
    ) -> Result<Receipt, ClientError> {
        let nonce = self.next_nonce(sender).await?;
        let signed = Transaction {
            chain_id: self.chain_id.clone(),
            sender,
            nonce,
            kind,
        }
        .sign(keys);
        let result = self.api.submit(&signed).await;
        match &result {
            Ok(receipt) if !nonce_not_used(&receipt.code) => {
                self.nonces
                    .insert(party_key(sender), nonce.saturating_add(1));
            }
            // Unknown whether it was used: read it again next time.
            _ => {
                self.nonces.remove(&party_key(sender));
            }
        }
        result
    }

    pub async fn account(
        &self,
        id: tally_contracts::AccountId,
    ) -> Result<AccountView, ClientError> {
        self.api.get_json(&format!("/v1/accounts/{}", id.0)).await
    }

    /// `/v1/{what}/{id}`'s record.
    pub async fn record<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        let view: AtHeight<T> = self.api.get_json(path).await?;
        Ok(view.record)
    }
}

/// Rejections made before the nonce is consumed (see the contracts' README).
fn nonce_not_used(code: &str) -> bool {
    matches!(
        code,
        "WRONG_CHAIN" | "UNKNOWN_SENDER" | "NONCE_REPLAYED" | "NONCE_OUT_OF_ORDER" | "WRONG_SIGNER"
    )
}

/// A new key from the OS random source.
pub fn new_key() -> Result<SigningKey, ClientError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(|e| ClientError::Randomness(e.to_string()))?;
    let key = SigningKey::from_seed(seed);
    zeroize::Zeroize::zeroize(&mut seed);
    Ok(key)
}
