//! `tally verify`: reads a ledger record with its proof from one node and believes it only if
//! the proof holds up to a quorum of the validators it trusts ([`crate::proof`]): those the
//! genesis names, then each validator-set change it follows from the same node, every one
//! certified by the set before it. Says "verified at height h" and what the record holds, or
//! why not.

use tally_contracts::commitment::{ProvenRecord, decode_record};
use tally_contracts::{Account, Hold};

use super::*;
use crate::genesis::GenesisFile;
use crate::proof::{
    ProofCheckError, ProvenEvent, ReceiptProof, RecordProof, TrustedValidators, ValidatorChanges,
};

pub(super) async fn run(client: &Client, command: VerifyCommand) -> Result<Report, CommandError> {
    let (record, name, path, trust) = match command {
        VerifyCommand::Transaction { hash, trust } => {
            return transaction(client, &hash, &trust).await;
        }
        VerifyCommand::Account { id, trust } => (
            ProvenRecord::Account(AccountId(id)),
            format!("account {id}"),
            format!("/v1/accounts/{id}/proof"),
            trust,
        ),
        VerifyCommand::Order { id, trust } => (
            ProvenRecord::Order(OrderId(id)),
            format!("order {id}"),
            format!("/v1/orders/{id}/proof"),
            trust,
        ),
        VerifyCommand::Bill { id, trust } => (
            ProvenRecord::Bill(BillId(id)),
            format!("bill {id}"),
            format!("/v1/bills/{id}/proof"),
            trust,
        ),
        VerifyCommand::Hold { id, trust } => (
            ProvenRecord::Hold(TransferId(id)),
            format!("hold {id}"),
            format!("/v1/holds/{id}/proof"),
            trust,
        ),
    };
    let (genesis, trusted) = trusted(client, &trust).await?;
    let raw = client.read_raw(&path, &name).await?;
    let answer: RecordProof = serde_json::from_str(&raw)
        .map_err(|e| ProofCheckError::Malformed(format!("{name}: {e}")))?;
    let key = record.key();
    let validators = trusted.at(answer.height.saturating_add(1))?;
    let (value, height) = answer.verify(&genesis.chain_id, validators, &key)?;
    let text = match value {
        None => format!("{name} proven ABSENT at height {height}"),
        Some(bytes) => {
            let what = describe(record, &key, &bytes)
                .map_err(|e| ProofCheckError::Malformed(format!("{name}'s record: {e}")))?;
            format!("{name} verified at height {height}: {what}")
        }
    };
    let signers = answer.certified.certificate.signatures.len();
    Ok(Report {
        text: format!(
            "{text} (proof checked up to the certificate of block {}, {signers} of {} validators of chain {})",
            answer.certified.header.height,
            validators.len(),
            genesis.chain_id
        ),
        json: json!({
            "verified": true,
            "height": height,
            "present": answer.value.is_some(),
            "answer": serde_json::from_str::<serde_json::Value>(&raw).unwrap_or_default(),
        })
        .to_string(),
    })
}

/// The most pages of validator changes followed: far beyond any real chain's governance, a
/// bound on what a node that keeps answering "there is more" can make the client read.
const CHANGE_PAGES_MAX: usize = 10_000;

/// The genesis the client trusts, and the validator sets it trusts from there: the genesis
/// set, and each change the node serves that the set before it certified.
async fn trusted(
    client: &Client,
    trust: &Trust,
) -> Result<(GenesisFile, TrustedValidators), CommandError> {
    let genesis = GenesisFile::load(&trust.genesis)
        .map_err(|e| input(format!("--genesis {}: {e}", trust.genesis.display())))?;
    let validators = genesis
        .validator_set()
        .map_err(|e| input(format!("--genesis {}: {e}", trust.genesis.display())))?;
    let mut trusted = TrustedValidators::genesis(&genesis.chain_id, validators);
    let mut from = 1u64;
    for _ in 0..CHANGE_PAGES_MAX {
        let raw = client
            .read_raw(
                &format!("/v1/validators/changes?from_height={from}"),
                "the validator changes",
            )
            .await?;
        let page: ValidatorChanges = serde_json::from_str(&raw)
            .map_err(|e| ProofCheckError::Malformed(format!("the validator changes: {e}")))?;
        for carried in &page.changes {
            trusted.follow(carried)?;
        }
        match page.next_from_height {
            // Each page must move forward, or a node could keep the client reading forever.
            Some(next) if next > from && !page.changes.is_empty() => from = next,
            Some(_) => {
                return Err(ProofCheckError::Malformed(
                    "the validator changes' next page does not move forward".to_string(),
                )
                .into());
            }
            None => return Ok((genesis, trusted)),
        }
    }
    Err(ProofCheckError::Malformed("the validator changes do not end".to_string()).into())
}

async fn transaction(client: &Client, hash: &str, trust: &Trust) -> Result<Report, CommandError> {
    let tx = Hash::from_hex(hash).map_err(|e| input(format!("--hash {hash}: {e}")))?;
    let (genesis, trusted) = trusted(client, trust).await?;
    let name = format!("transaction {tx}");
    let raw = client
        .read_raw(&format!("/v1/transactions/{tx}/proof"), &name)
        .await?;
    let answer: ReceiptProof = serde_json::from_str(&raw)
        .map_err(|e| ProofCheckError::Malformed(format!("{name}: {e}")))?;
    let validators = trusted.at(answer.height.saturating_add(1))?;
    let height = answer.verify(&genesis.chain_id, validators, tx)?;
    let outcome = match &answer.result {
        Ok(()) => "OK".to_string(),
        Err(rejection) => format!("refused {}", rejection.code()),
    };
    let shown: Vec<String> = answer
        .events
        .iter()
        .filter_map(|e| match e {
            ProvenEvent::Shown(event) => Some(event_name(event).to_string()),
            ProvenEvent::Hidden(_) => None,
        })
        .collect();
    Ok(Report {
        text: format!(
            "{name} verified committed at height {height}: {outcome}; events {} of {} shown: {} \
             (proof checked up to the certificate of block {}, {} of {} validators of chain {})",
            shown.len(),
            answer.events.len(),
            shown.join(", "),
            answer.certified.header.height,
            answer.certified.certificate.signatures.len(),
            validators.len(),
            genesis.chain_id
        ),
        json: json!({
            "verified": true,
            "height": height,
            "answer": serde_json::from_str::<serde_json::Value>(&raw).unwrap_or_default(),
        })
        .to_string(),
    })
}

/// What a verified record holds, in words.
fn describe(
    record: ProvenRecord,
    key: &[u8],
    bytes: &[u8],
) -> Result<String, tally_contracts::ExecutionError> {
    Ok(match record {
        ProvenRecord::Account(_) => {
            let a: Account = decode_record(key, bytes)?;
            let c = a.currency;
            format!(
                "balance {} {c}, available {} {c}{}",
                format_minor(a.balance(), c),
                format_minor(a.available(), c),
                if a.frozen { "; FROZEN" } else { "" }
            )
        }
        ProvenRecord::Order(_) => {
            let o: Order = decode_record(key, bytes)?;
            format!(
                "{:?}, {} {} to merchant {}",
                o.status,
                format_minor(i128::from(o.amount), o.currency),
                o.currency,
                o.merchant.0
            )
        }
        ProvenRecord::Bill(_) => {
            let b: Bill = decode_record(key, bytes)?;
            match b.paid_by {
                Some(payer) => format!("paid by account {}", payer.0),
                None => "unpaid".to_string(),
            }
        }
        ProvenRecord::Hold(_) => {
            let h: Hold = decode_record(key, bytes)?;
            format!(
                "{} held from account {} for account {}",
                h.amount, h.debit.0, h.credit.0
            )
        }
    })
}
