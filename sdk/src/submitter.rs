//! Signing and submitting on behalf of several senders, each with its own nonce.
//!
//! The node tells a sender's nonce only to that sender (and its institution, and the
//! regulator), so the submitter reads it signed as the sender, with the sender's own key
//! (the transaction's first). It submits as the party its API is signed as, if any (the
//! receipt then shows what that party may see), else as the sender; a sender the chain
//! does not know yet (an account being registered) submits without credentials, and the
//! answer shows what that sender may see.

use std::collections::BTreeMap;

use hyper::StatusCode;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tally_contracts::{Party, Transaction, TxKind};
use tally_crypto::SigningKey;

pub use tally_wire::ledger::{AccountView, AtHeight};

use crate::ClientError;
use crate::api::{Api, Credential, Receipt};

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

#[derive(Debug, Deserialize)]
struct InstitutionRecord {
    institution: tally_contracts::Institution,
}

impl Submitter {
    pub fn new(api: Api, chain_id: String) -> Submitter {
        Submitter {
            api,
            chain_id,
            nonces: BTreeMap::new(),
        }
    }

    /// The sender's next nonce, remembered or read from the chain as the sender, and
    /// whether the chain knows the sender (a new account has nonce 0 and no key yet).
    async fn next_nonce(
        &mut self,
        sender: Party,
        as_sender: &Api,
    ) -> Result<(u64, bool), ClientError> {
        if let Some(n) = self.nonces.get(&party_key(sender)) {
            return Ok((*n, true));
        }
        match sender {
            Party::Institution(id) => {
                let view: AtHeight<InstitutionRecord> = as_sender
                    .get_json(&format!("/v1/institutions/{}", id.0))
                    .await?;
                Ok((view.record.institution.nonce, true))
            }
            Party::Account(id) => {
                let answer = as_sender.get(&format!("/v1/accounts/{}", id.0)).await?;
                let unknown = answer.status == StatusCode::NOT_FOUND
                    || (answer.status == StatusCode::UNAUTHORIZED
                        && answer.error().api_code() == Some("UNKNOWN_PARTY"));
                if unknown {
                    Ok((0, false))
                } else {
                    Ok((answer.json::<AccountView>()?.account.holder.nonce, true))
                }
            }
        }
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
        let as_sender = match keys.first() {
            Some(key) => self
                .api
                .signed_as(Credential::of_party(sender, (*key).clone())),
            None => self.api.anonymous(),
        };
        let (nonce, known) = self.next_nonce(sender, &as_sender).await?;
        let signed = Transaction {
            chain_id: self.chain_id.clone(),
            sender,
            nonce,
            kind,
        }
        .sign(keys);
        let result = if self.api.keyid().is_some() {
            self.api.submit(&signed).await
        } else if known {
            as_sender.submit(&signed).await
        } else {
            // Sent unsigned (the ledger has no key for the sender yet); read as the sender
            // once the block that opens it is committed.
            self.api.submit_read_as(&signed, &as_sender).await
        };
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
