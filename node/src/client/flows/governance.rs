//! Governance: an institution's key replaced or revoked, and the account recovery delay, by
//! a quorum of the governance keys.

use tally_contracts::RECOVERY_DELAY_MS_MAX;

use super::*;

pub(super) fn run(command: GovernanceCommand) -> Result<Plan, CommandError> {
    Ok(match command {
        GovernanceCommand::ReplaceInstitutionKey {
            signer,
            cosigner_key,
            target,
            new_key,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let new_key = read_key(&new_key)?;
            let public = new_key.public_key();
            let mut keys = vec![key, new_key];
            for path in &cosigner_key {
                keys.push(read_key(path)?);
            }
            let kind = TxKind::Govern(GovernanceAction::ReplaceInstitutionKey {
                institution: InstitutionId(target),
                new_key: public,
            });
            plan("replace-institution-key", sender, keys, kind)
                .words(format!(
                    "institution {target} now signs with {}; its old key signs nothing",
                    public.to_hex()
                ))
                .expect("GovernanceApplied")
        }
        GovernanceCommand::SetRecoveryDelay {
            signer,
            cosigner_key,
            hours,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let delay_ms = hours
                .checked_mul(3_600_000)
                .filter(|ms| (1..=RECOVERY_DELAY_MS_MAX).contains(ms))
                .ok_or_else(|| input("--hours: 1 to 720"))?;
            let mut keys = vec![key];
            for path in &cosigner_key {
                keys.push(read_key(path)?);
            }
            let kind = TxKind::Govern(GovernanceAction::SetRecoveryDelay { delay_ms });
            plan("set-recovery-delay", sender, keys, kind)
                .words(format!(
                    "account recoveries announced from now on take effect {hours} h later"
                ))
                .expect("GovernanceApplied")
        }
        GovernanceCommand::RevokeInstitutionKey {
            signer,
            cosigner_key,
            target,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let mut keys = vec![key];
            for path in &cosigner_key {
                keys.push(read_key(path)?);
            }
            let kind = TxKind::Govern(GovernanceAction::RevokeInstitutionKey {
                institution: InstitutionId(target),
            });
            plan("revoke-institution-key", sender, keys, kind)
                .words(format!(
                    "institution {target}'s key revoked: it signs nothing until replaced"
                ))
                .expect("GovernanceApplied")
        }
    })
}
