//! Governance: an institution's key replaced or revoked, and the account recovery delay, by
//! a quorum of the governance keys; and the validator set changed, by a quorum of the
//! validators in force.

use tally_consensus::{Validator, ValidatorSet};
use tally_contracts::RECOVERY_DELAY_MS_MAX;
use tally_crypto::PublicKey;

use super::*;
use crate::validator_update::{ValidatorChange, ValidatorUpdate};

/// The fewest heights ahead a change may take effect from the latest block: the chain takes
/// it at the next height, and it must wait 3 heights there.
const EFFECTIVE_IN_MIN: u64 = 4;
/// How long the command waits for a block to carry the change.
const CARRIED_WAIT_MS: u64 = 30_000;

#[derive(Deserialize)]
struct SetView {
    from_height: u64,
    validators: Vec<Validator>,
}

#[derive(Deserialize)]
struct ValidatorsView {
    height: u64,
    in_force: Option<SetView>,
    scheduled: Vec<SetView>,
}

/// `tally governance change-validators`: the newest set the node knows (in force, or the last
/// scheduled), changed as asked, signed by each validator key given, submitted, and followed
/// until a block carries it.
pub(super) async fn change_validators(
    client: &mut Client,
    args: ValidatorChangeArgs,
) -> Result<Report, CommandError> {
    if args.set.is_empty() && args.remove.is_empty() {
        return Err(input("name a change: --set KEY:POWER or --remove KEY"));
    }
    if args.effective_in < EFFECTIVE_IN_MIN {
        return Err(input(format!(
            "--effective-in {}: at least {EFFECTIVE_IN_MIN}",
            args.effective_in
        )));
    }
    let keys = args
        .validator_keys
        .iter()
        .map(|path| read_key(path))
        .collect::<Result<Vec<_>, _>>()?;
    let view: ValidatorsView = client.api.get_json("/v1/validators").await?;
    let base = view
        .scheduled
        .last()
        .or(view.in_force.as_ref())
        .ok_or_else(|| input("the node does not know its validator set"))?;
    let mut validators = base.validators.clone();
    for key in &args.remove {
        let public_key =
            PublicKey::from_hex(key).map_err(|e| input(format!("--remove {key}: the key: {e}")))?;
        let before = validators.len();
        validators.retain(|v| v.public_key != public_key);
        if validators.len() == before {
            return Err(input(format!(
                "--remove {key}: not a validator of the newest set"
            )));
        }
    }
    for entry in &args.set {
        let (key, power) = entry
            .split_once(':')
            .ok_or_else(|| input(format!("--set {entry}: write KEY:POWER")))?;
        let public_key =
            PublicKey::from_hex(key).map_err(|e| input(format!("--set {entry}: the key: {e}")))?;
        let power: u64 = power.parse().ok().filter(|p| *p > 0).ok_or_else(|| {
            input(format!(
                "--set {entry}: the power is a whole number above 0"
            ))
        })?;
        match validators.iter_mut().find(|v| v.public_key == public_key) {
            Some(v) => v.power = power,
            None => validators.push(Validator { public_key, power }),
        }
    }
    // The set must be a valid one (not empty, no key twice, powers that add up) before anyone
    // signs it.
    let set =
        ValidatorSet::new(validators.clone()).map_err(|e| input(format!("the new set: {e}")))?;
    let effective_height = view
        .height
        .saturating_add(args.effective_in)
        .max(base.from_height.saturating_add(1));
    let chain_id = client.chain_id().await?;
    let change = ValidatorChange {
        effective_height,
        validators,
    };
    let key_refs: Vec<&SigningKey> = keys.iter().collect();
    let update = ValidatorUpdate::sign(change, &chain_id, &key_refs);
    let body = serde_json::to_vec(&update)
        .map_err(|e| input(format!("the change does not encode: {e}")))?;
    let answer = client
        .api
        .request(
            hyper::Method::POST,
            "/v1/validators/updates",
            &[("content-type", "application/json")],
            body,
        )
        .await?;
    if answer.status != hyper::StatusCode::ACCEPTED {
        return Err(answer.error().into());
    }
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_millis(CARRIED_WAIT_MS);
    loop {
        let now: ValidatorsView = client.api.get_json("/v1/validators").await?;
        let known = now
            .scheduled
            .iter()
            .chain(now.in_force.as_ref())
            .any(|s| s.from_height == effective_height);
        if known {
            break;
        }
        if tokio::time::Instant::now() > deadline {
            return Err(input(format!(
                "the node holds the change but no block carried it within {} s (at height {});                  it takes effect at {effective_height} if one does before height {}",
                CARRIED_WAIT_MS / 1000,
                now.height,
                effective_height.saturating_sub(3)
            )));
        }
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
    }
    let members: Vec<String> = set
        .validators()
        .iter()
        .map(|v| format!("{}:{}", v.public_key.to_hex(), v.power))
        .collect();
    Ok(Report {
        text: format!(
            "validator set change scheduled: from height {effective_height}, {} validators              (power {}, a quorum is {}): {}",
            set.len(),
            set.power_total(),
            set.quorum_power(),
            members.join(", ")
        ),
        json: json!({
            "effective_height": effective_height,
            "validators": set.validators(),
        })
        .to_string(),
    })
}

pub(super) fn run(command: GovernanceCommand) -> Result<Plan, CommandError> {
    Ok(match command {
        GovernanceCommand::ChangeValidators(_) => {
            return Err(input("a validator-set change is not a ledger transaction"));
        }
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
