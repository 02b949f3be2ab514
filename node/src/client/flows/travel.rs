//! Travel-rule data in the client: an institution registers the X25519 key it receives
//! under; a remittance's sender seals the data to the beneficiary's institution and a
//! regulator; they open their copies. The sealing itself is `tally_sdk::travel_rule`.

use super::*;
use tally_contracts::{EncryptionKey, Institution, SealedTravelRule};
use tally_sdk::travel_rule::{
    self, Binding, PartyDetails, SecretKey, TravelRuleData, TravelRuleError,
};

/// `tally institution set-encryption-key`: the key file's public key, registered; a new
/// key file first when there is none.
pub(super) fn set_encryption_key(
    signer: &InstitutionSigner,
    file: &Path,
) -> Result<Plan, CommandError> {
    let (sender, key) = institution_party(signer)?;
    let (secret, made) = if file.exists() {
        (SecretKey::read(file)?, false)
    } else {
        let secret = SecretKey::generate()?;
        secret.write_new(file)?;
        (secret, true)
    };
    let public = secret.public();
    let kind = TxKind::SetEncryptionKey { key: public };
    Ok(plan("set-encryption-key", sender, vec![key], kind)
        .words(format!(
            "institution {} receives travel-rule data under {}{}",
            signer.institution,
            public.to_hex(),
            if made {
                format!(" (new key file {})", file.display())
            } else {
                String::new()
            }
        ))
        .expect("EncryptionKeySet"))
}

#[derive(Deserialize)]
struct InstitutionRecord {
    institution: Institution,
}

async fn registered_key(client: &Client, id: InstitutionId) -> Result<EncryptionKey, CommandError> {
    let view: AtHeight<InstitutionRecord> = client
        .record(
            &format!("/v1/institutions/{}", id.0),
            &format!("institution {}", id.0),
        )
        .await?;
    view.record.institution.encryption_key.ok_or_else(|| {
        input(format!(
            "institution {} has registered no encryption key: travel-rule data cannot be sealed to it",
            id.0
        ))
    })
}

fn given(value: &Option<String>, flag: &str) -> Result<String, CommandError> {
    match value.as_deref().map(str::trim) {
        Some(text) if !text.is_empty() => Ok(text.to_string()),
        _ => Err(input(format!("travel-rule data needs {flag}"))),
    }
}

/// The sealed copies for a remittance, or none when no travel-rule data was given (the
/// ledger refuses that above its threshold).
pub(super) async fn seal_for_remittance(
    client: &mut Client,
    args: &TravelRuleArgs,
    transfer: TransferId,
    sender: AccountId,
    beneficiary: AccountId,
) -> Result<Vec<SealedTravelRule>, CommandError> {
    let any = [
        &args.originator_name,
        &args.originator_account,
        &args.originator_address,
        &args.beneficiary_name,
        &args.beneficiary_account,
        &args.beneficiary_address,
    ]
    .iter()
    .any(|v| v.is_some())
        || args.regulator.is_some();
    if !any {
        return Ok(Vec::new());
    }
    let regulator = InstitutionId(
        args.regulator
            .ok_or_else(|| input("travel-rule data needs --regulator"))?,
    );
    let data = TravelRuleData {
        originator: PartyDetails {
            name: given(&args.originator_name, "--originator-name")?,
            account: args
                .originator_account
                .clone()
                .unwrap_or_else(|| sender.0.to_string()),
            address: given(&args.originator_address, "--originator-address")?,
        },
        beneficiary: PartyDetails {
            name: given(&args.beneficiary_name, "--beneficiary-name")?,
            account: args
                .beneficiary_account
                .clone()
                .unwrap_or_else(|| beneficiary.0.to_string()),
            address: given(&args.beneficiary_address, "--beneficiary-address")?,
        },
    };
    let binding = Binding {
        chain_id: client.chain_id().await?,
        transfer,
        sender,
        beneficiary,
    };
    let beneficiary_bank = client.account(beneficiary.0).await?.account.institution;
    let mut recipients = vec![beneficiary_bank, regulator];
    recipients.sort();
    recipients.dedup();
    let mut copies = Vec::with_capacity(recipients.len());
    for recipient in recipients {
        let key = registered_key(client, recipient).await?;
        copies.push(travel_rule::seal(&data, recipient, key, &binding)?);
    }
    Ok(copies)
}

#[derive(Deserialize)]
struct TravelRuleView {
    hash: Hash,
    height: u64,
    chain_id: String,
    transfer: TransferId,
    sender: AccountId,
    beneficiary: AccountId,
    copies: Vec<SealedTravelRule>,
}

/// `tally travel-rule open`.
pub(super) async fn open(
    client: &mut Client,
    command: TravelRuleCommand,
) -> Result<Report, CommandError> {
    let TravelRuleCommand::Open {
        tx,
        institution,
        secret_key,
    } = command;
    let hash = Hash::from_hex(tx.trim())
        .map_err(|_| input(format!("--tx {tx}: a transaction hash is 64 hex digits")))?;
    let raw = client
        .read_raw(
            &format!("/v1/travel-rule/{}", hash.to_hex()),
            &format!("travel-rule data of transaction {}", hash.to_hex()),
        )
        .await?;
    let view: TravelRuleView = parse(&raw, "travel-rule data")?;
    if view.hash != hash {
        return Err(ClientError::Answer("travel-rule data of another transaction".into()).into());
    }
    let copy = view
        .copies
        .iter()
        .find(|c| c.recipient == InstitutionId(institution))
        .ok_or_else(|| {
            let to: Vec<String> = view
                .copies
                .iter()
                .map(|c| c.recipient.0.to_string())
                .collect();
            input(format!(
                "transaction {} carries no travel-rule copy for institution {institution} \
                 (copies readable here: {})",
                hash.to_hex(),
                to.join(", ")
            ))
        })?;
    let secret = SecretKey::read(&secret_key)?;
    let binding = Binding {
        chain_id: view.chain_id.clone(),
        transfer: view.transfer,
        sender: view.sender,
        beneficiary: view.beneficiary,
    };
    let data = travel_rule::open(copy, &secret, &binding)?;
    let side = |p: &PartyDetails| format!("{} (account {}), {}", p.name, p.account, p.address);
    let text = format!(
        "travel-rule data of transfer {} (transaction {}… at height {}), opened by institution {institution}\n  originator:  {}\n  beneficiary: {}",
        view.transfer.0,
        hash.to_hex().get(..12).unwrap_or_default(),
        view.height,
        side(&data.originator),
        side(&data.beneficiary)
    );
    // Written from the values: a 128-bit transfer id keeps every digit.
    #[derive(Serialize)]
    struct Opened<'a> {
        hash: Hash,
        height: u64,
        transfer: TransferId,
        institution: u32,
        travel_rule: &'a TravelRuleData,
    }
    let json = to_json(&Opened {
        hash,
        height: view.height,
        transfer: view.transfer,
        institution,
        travel_rule: &data,
    });
    Ok(Report { text, json })
}

impl From<TravelRuleError> for CommandError {
    fn from(e: TravelRuleError) -> CommandError {
        CommandError::TravelRule(e)
    }
}
