//! Interbank settlement: netting open obligations into a cycle, and confirming receipt.

use super::*;

pub(super) async fn run(
    client: &mut Client,
    command: InstitutionCommand,
) -> Result<Step, CommandError> {
    Ok(Step::Send(Box::new(match command {
        InstitutionCommand::RecoverAccount {
            signer,
            target,
            new_key,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let new_key = read_key(&new_key)?;
            let kind = TxKind::RecoverAccount {
                account: AccountId(target),
                new_key: new_key.public_key(),
            };
            plan("recover-account", sender, vec![key, new_key], kind)
                .words(format!(
                    "recovery of account {target} announced: the new key takes over after \
                     the delay unless the account's current key cancels it"
                ))
                .expect("RecoveryAnnounced")
        }
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
        InstitutionCommand::DecideDispute {
            signer,
            disputed,
            outcome,
        } => disputes::decide(&signer, &disputed, outcome)?,
        InstitutionCommand::SetEncryptionKey {
            signer,
            encryption_key,
        } => travel::set_encryption_key(&signer, &encryption_key)?,
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
