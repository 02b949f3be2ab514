//! Cross-border: an FX provider's rates, and remittances at them (payment versus payment).

use super::*;

use tally_wire::ledger::Rates;

pub(super) async fn run(client: &mut Client, command: FxCommand) -> Result<Step, CommandError> {
    match command {
        FxCommand::PublishRate {
            signer,
            base,
            quote,
            rate,
            valid_minutes,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let (base, quote) = (money::currency(&base)?, money::currency(&quote)?);
            let ledger_rate = money::rate_to_ledger(&rate, base, quote, RATE_SCALE)?;
            if valid_minutes == 0 || valid_minutes > FX_RATE_VALID_MINUTES_MAX {
                return Err(input(format!(
                    "--valid-minutes must be 1..={FX_RATE_VALID_MINUTES_MAX}"
                )));
            }
            // Valid from the last block's time: the next block is never earlier.
            let from = client.latest().await?.header.time_ms;
            let until = from.saturating_add(valid_minutes.saturating_mul(MS_PER_MINUTE));
            let kind = TxKind::PublishFxRate {
                base,
                quote,
                rate: ledger_rate,
                valid_from_ms: from,
                valid_until_ms: until,
            };
            let plan = plan("publish-rate", sender, vec![key], kind)
                .words(format!(
                    "{base}→{quote} at {rate} from provider {} for {valid_minutes} minute(s)",
                    signer.institution
                ))
                .expect("FxRatePublished");
            Ok(Step::Send(Box::new(plan)))
        }
        FxCommand::Rates {
            provider,
            base,
            quote,
        } => {
            let mut query = Vec::new();
            if let Some(p) = provider {
                query.push(format!("provider={p}"));
            }
            if let Some(b) = base {
                query.push(format!("base={}", money::currency(&b)?));
            }
            if let Some(q) = quote {
                query.push(format!("quote={}", money::currency(&q)?));
            }
            let path = format!("/v1/fx-rates?{}", query.join("&"));
            let raw = client.read_raw(&path, "the rates").await?;
            let view: AtHeight<Rates> = parse(&raw, "the rates")?;
            let mut lines = vec![format!(
                "{} rate(s) at height {}",
                view.record.rates.len(),
                view.height
            )];
            for r in &view.record.rates {
                lines.push(format!(
                    "  provider {}: {}→{} {} quote minor units per base minor unit (÷{}), valid {}..{} ms",
                    r.provider.0, r.base, r.quote, r.rate, r.scale, r.valid_from_ms, r.valid_until_ms
                ));
            }
            Ok(Step::Read(Report {
                text: lines.join("\n"),
                json: raw,
            }))
        }
    }
}

pub(super) async fn remit(
    client: &mut Client,
    command: RemitCommand,
) -> Result<Plan, CommandError> {
    let (sender, key) = account_party(&command.signer, "--account")?;
    let beneficiary = customer_account(command.to, "--to")?;
    let from_currency = currency_of(client, command.signer.account).await?;
    let to_currency = currency_of(client, command.to).await?;
    let parse = |text: &str, currency: Currency| -> Result<Money, CommandError> {
        Ok(Money::parse_positive(text, Some(currency))?)
    };
    // The published rate, for a bound the sender left out.
    let rate = || async {
        let path = format!(
            "/v1/fx-rates?provider={}&base={from_currency}&quote={to_currency}",
            command.provider
        );
        let view: AtHeight<Rates> = client.api.get_json(&path).await?;
        view.record
            .rates
            .into_iter()
            .next()
            .map(|r| u128::from(r.rate))
            .filter(|r| *r > 0)
            .ok_or_else(|| {
                input(format!(
                    "provider {} publishes no {from_currency}→{to_currency} rate; give both bounds",
                    command.provider
                ))
            })
    };
    let scale = u128::from(RATE_SCALE);
    let overflow = || input("the amount is too large to convert");
    let (amount, words) = match (&command.send, &command.receive) {
        (Some(send), _) => {
            let debit = parse(send, from_currency)?;
            let min_credit = match &command.min_receive {
                Some(text) => parse(text, to_currency)?.minor,
                None => {
                    let credit = u128::from(debit.minor)
                        .checked_mul(rate().await?)
                        .ok_or_else(overflow)?
                        / scale;
                    Amount::try_from(credit).map_err(|_| overflow())?
                }
            };
            let least = Money {
                minor: min_credit,
                currency: to_currency,
            };
            (
                FxAmount::Send {
                    debit: debit.minor,
                    min_credit,
                },
                format!("{debit} sent, at least {least} to account {}", command.to),
            )
        }
        (None, Some(receive)) => {
            let credit = parse(receive, to_currency)?;
            let max_debit = match &command.max_send {
                Some(text) => parse(text, from_currency)?.minor,
                None => {
                    let rate = rate().await?;
                    let debit = u128::from(credit.minor)
                        .checked_mul(scale)
                        .and_then(|x| x.checked_add(rate - 1))
                        .ok_or_else(overflow)?
                        / rate;
                    Amount::try_from(debit).map_err(|_| overflow())?
                }
            };
            let most = Money {
                minor: max_debit,
                currency: from_currency,
            };
            (
                FxAmount::Receive {
                    credit: credit.minor,
                    max_debit,
                },
                format!("{credit} to account {} for at most {most}", command.to),
            )
        }
        (None, None) => return Err(input("give --send or --receive")),
    };
    let id = transfer_id(&command.id)?;
    let sender_account = AccountId(command.signer.account);
    let travel_rule = travel::seal_for_remittance(
        client,
        &command.travel_rule,
        id,
        sender_account,
        beneficiary,
    )
    .await?;
    let sealed_to: Vec<String> = travel_rule
        .iter()
        .map(|c| c.recipient.0.to_string())
        .collect();
    let words = if sealed_to.is_empty() {
        words
    } else {
        format!(
            "{words}; travel-rule data sealed to institution(s) {}",
            sealed_to.join(", ")
        )
    };
    let kind = TxKind::CrossBorderTransfer {
        id,
        provider: InstitutionId(command.provider),
        beneficiary,
        amount,
        travel_rule,
    };
    Ok(plan("remit", sender, vec![key], kind)
        .words(words)
        .expect("RemittanceCredited"))
}
