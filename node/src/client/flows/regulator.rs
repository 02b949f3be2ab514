//! A regulator: freezes, sanctions, tier (account class) limits and the travel-rule threshold
//! (governance changes); the audit node's alerts, listed and acknowledged.

use super::*;
use tally_contracts::NO_CAP;

pub(super) async fn run(
    client: &mut Client,
    command: RegulatorCommand,
) -> Result<Step, CommandError> {
    Ok(Step::Send(Box::new(match command {
        RegulatorCommand::Alerts {
            threshold,
            from,
            to,
        } => return alerts(client, threshold, from, to).await.map(Step::Read),
        RegulatorCommand::Acknowledge { alert, note } => {
            return acknowledge(client, &alert, &note).await.map(Step::Read);
        }
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
    })))
}

/// A time as `YYYY-MM-DD HH:MM:SSZ` (UTC), from milliseconds since the epoch.
fn utc(ms: u64) -> String {
    let seconds = ms / 1000;
    let (days, in_day) = (seconds / 86_400, seconds % 86_400);
    // Days to a civil date (the proleptic Gregorian calendar), in 400-year eras.
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02}Z",
        in_day / 3_600,
        in_day % 3_600 / 60,
        in_day % 60
    )
}

#[derive(serde::Deserialize)]
struct Acknowledged {
    by: u32,
    at_ms: u64,
    note: String,
}

#[derive(serde::Deserialize)]
struct ListedAlert {
    key: String,
    kind: String,
    summary: String,
    first_seen_ms: Option<u64>,
    acknowledged: Option<Acknowledged>,
}

#[derive(serde::Deserialize)]
struct ListedAlerts {
    open: usize,
    alerts: Vec<ListedAlert>,
    truncated: bool,
}

async fn alerts(
    client: &Client,
    threshold: Option<u64>,
    from: Option<u64>,
    to: Option<u64>,
) -> Result<Report, CommandError> {
    let query: Vec<String> = [("threshold", threshold), ("from", from), ("to", to)]
        .into_iter()
        .filter_map(|(name, value)| value.map(|v| format!("{name}={v}")))
        .collect();
    let raw = client
        .read_raw(
            &format!("/v1/audit/alerts?{}", query.join("&")),
            "the alerts",
        )
        .await?;
    let listed: ListedAlerts = parse(&raw, "the alerts")?;
    let mut lines = vec![format!(
        "{} open of {} alert(s){}",
        listed.open,
        listed.alerts.len(),
        if listed.truncated {
            " (a source stopped at its bound: narrow the range)"
        } else {
            ""
        }
    )];
    for a in &listed.alerts {
        let state = match &a.acknowledged {
            None => "open".to_string(),
            Some(ack) => format!(
                "acknowledged by institution {} at {}{}",
                ack.by,
                utc(ack.at_ms),
                if ack.note.is_empty() {
                    String::new()
                } else {
                    format!(": {}", ack.note)
                }
            ),
        };
        let seen = a.first_seen_ms.map_or_else(
            || "triage kept on the audit node".to_string(),
            |ms| format!("first seen {}", utc(ms)),
        );
        lines.push(format!(
            "{state} · {} · {} · {seen} · key {}",
            a.kind, a.summary, a.key
        ));
    }
    Ok(Report {
        text: lines.join("\n"),
        json: raw,
    })
}

async fn acknowledge(client: &Client, key: &str, note: &str) -> Result<Report, CommandError> {
    let body = serde_json::json!({ "key": key, "note": note });
    let answer = client
        .api
        .request(
            hyper::Method::POST,
            "/v1/audit/alerts/acknowledge",
            &[("content-type", "application/json")],
            body.to_string().into_bytes(),
        )
        .await?;
    if answer.status != hyper::StatusCode::OK {
        return Err(answer.error().into());
    }
    let json = String::from_utf8_lossy(&answer.body).into_owned();
    Ok(Report {
        text: format!("alert {key} acknowledged"),
        json,
    })
}

#[cfg(test)]
mod tests {
    use super::utc;

    #[test]
    fn utc_writes_civil_dates_across_leap_years_and_centuries() {
        assert_eq!(utc(0), "1970-01-01 00:00:00Z");
        // 2000-02-29 (a leap day of a century divisible by 400), 12:34:56.
        assert_eq!(utc(951_827_696_000), "2000-02-29 12:34:56Z");
        assert_eq!(utc(1_796_601_599_999), "2026-12-06 23:59:59Z");
        assert_eq!(utc(4_107_542_400_000), "2100-03-01 00:00:00Z");
    }
}
