//! A regulator: freezes, sanctions, tier (account class) limits and the travel-rule threshold
//! (governance changes).

use super::*;
use tally_contracts::NO_CAP;

pub(super) async fn run(
    _client: &mut Client,
    command: RegulatorCommand,
) -> Result<Plan, CommandError> {
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
            yearly_max,
            cross_border_yearly_max,
            currency,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let currency = optional_currency(currency.as_deref())?
                .or_else(|| Money::written_currency(&single_max))
                .ok_or_else(|| MoneyError::NoCurrency(single_max.clone()))?;
            let single = Money::parse_positive(&single_max, Some(currency))?;
            let daily = Money::parse_positive(&daily_max, Some(currency))?;
            let cap = |text: &str| -> Result<Option<Money>, CommandError> {
                if text.trim().eq_ignore_ascii_case("none") {
                    Ok(None)
                } else {
                    Ok(Some(Money::parse_positive(text, Some(currency))?))
                }
            };
            let yearly = cap(&yearly_max)?;
            let abroad = cap(&cross_border_yearly_max)?;
            if daily.minor < single.minor {
                return Err(input("--daily-max is below --single-max"));
            }
            if yearly.as_ref().is_some_and(|y| y.minor < daily.minor) {
                return Err(input("--yearly-max is below --daily-max"));
            }
            let mut keys = vec![key];
            for path in &cosigner_key {
                keys.push(read_key(path)?);
            }
            let minor = |cap: &Option<Money>| cap.as_ref().map_or(NO_CAP, |m| m.minor);
            let kind = TxKind::Govern(GovernanceAction::SetTierLimits {
                tier,
                single_max: single.minor,
                daily_max: daily.minor,
                yearly_max: minor(&yearly),
                cross_border_yearly_max: minor(&abroad),
            });
            let told = |cap: &Option<Money>| {
                cap.as_ref()
                    .map_or("no limit".to_string(), |m| m.to_string())
            };
            plan("set-limits", sender, keys, kind)
                .words(format!(
                    "tier {tier}: at most {single} a payment; a person at most {daily} a day and {} a year at one institution, {} a year abroad",
                    told(&yearly),
                    told(&abroad)
                ))
                .expect("GovernanceApplied")
        }
        RegulatorCommand::SetTravelRuleThreshold {
            signer,
            cosigner_key,
            threshold,
            currency,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let currency = optional_currency(currency.as_deref())?
                .or_else(|| Money::written_currency(&threshold))
                .ok_or_else(|| MoneyError::NoCurrency(threshold.clone()))?;
            let (minor, told) = if threshold.trim().eq_ignore_ascii_case("none") {
                (
                    NO_CAP,
                    format!("{currency} remittances need no travel-rule data"),
                )
            } else {
                let money = Money::parse_positive(&threshold, Some(currency))?;
                (
                    money.minor,
                    format!("remittances out of {currency} from {money} carry travel-rule data"),
                )
            };
            let mut keys = vec![key];
            for path in &cosigner_key {
                keys.push(read_key(path)?);
            }
            let kind = TxKind::Govern(GovernanceAction::SetTravelRuleThreshold {
                currency,
                threshold: minor,
            });
            plan("set-travel-rule-threshold", sender, keys, kind)
                .words(told)
                .expect("GovernanceApplied")
        }
        RegulatorCommand::Sanction { signer, identity } => {
            let (sender, key) = institution_party(&signer)?;
            let kind = TxKind::AddSanction {
                identity: identity.digest()?,
            };
            plan("sanction", sender, vec![key], kind)
                .words("identity added to the sanctions list")
                .expect("SanctionAdded")
        }
        RegulatorCommand::Unsanction { signer, identity } => {
            let (sender, key) = institution_party(&signer)?;
            let kind = TxKind::RemoveSanction {
                identity: identity.digest()?,
            };
            plan("unsanction", sender, vec![key], kind)
                .words("identity removed from the sanctions list")
                .expect("SanctionRemoved")
        }
    })
}
