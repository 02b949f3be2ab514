//! Events and payment codes as people read them and pass them on.

use super::*;

/// An event in words; amounts in `currency` (the account's the reader looks at).
pub fn event_words(event: &Event, currency: Currency) -> String {
    let m = |amount: Amount| format!("{} {currency}", format_minor(i128::from(amount), currency));
    match event {
        Event::AccountRegistered {
            account,
            institution,
            tier,
        } => format!(
            "account {} registered at institution {} (tier {tier})",
            account.0, institution.0
        ),
        Event::CardBound { account, bank } => {
            format!("card of bank {} bound to {}", bank.0, account.0)
        }
        Event::ToppedUp {
            account, amount, ..
        } => format!("{} topped up to {}", m(*amount), account.0),
        Event::Withdrawn {
            account, amount, ..
        } => {
            format!("{} withdrawn from {}", m(*amount), account.0)
        }
        Event::TransferReceived {
            from,
            to,
            amount,
            memo,
            ..
        } if memo.is_empty() => format!("{} from {} to {}", m(*amount), from.0, to.0),
        // Debug quoting: a memo is free text, shown so its end is plain.
        Event::TransferReceived {
            from,
            to,
            amount,
            memo,
            ..
        } => format!(
            "{} from {} to {}, memo {:?}",
            m(*amount),
            from.0,
            to.0,
            memo.as_str()
        ),
        Event::OrderCreated { order, amount, .. } => {
            format!("order {} created for {}", order.0, m(*amount))
        }
        Event::PaymentCompleted {
            order,
            merchant,
            amount,
            ..
        } => format!(
            "order {} paid: {} to merchant {}",
            order.0,
            m(*amount),
            merchant.0
        ),
        Event::PaymentHeld { order, amount, .. } => {
            format!("{} held in escrow for order {}", m(*amount), order.0)
        }
        Event::PaymentVoided { order, amount, .. } => {
            format!(
                "{} released back to the payer (order {})",
                m(*amount),
                order.0
            )
        }
        Event::OrderCancelled { order } => format!("order {} cancelled", order.0),
        Event::Refunded {
            order,
            amount,
            refunded_total,
            ..
        } => format!(
            "{} refunded for order {} ({} in all)",
            m(*amount),
            order.0,
            m(*refunded_total)
        ),
        Event::CollectedByCode {
            payer,
            merchant,
            amount,
            ..
        } => format!(
            "{} collected by code from {} by merchant {}",
            m(*amount),
            payer.0,
            merchant.0
        ),
        Event::MerchantPaid {
            payer,
            merchant,
            amount,
            ..
        } => format!("{} from {} to merchant {}", m(*amount), payer.0, merchant.0),
        Event::MerchantSettled { bank, net, fee, .. } => {
            format!("{} settled to bank {}, fee {}", m(*net), bank.0, m(*fee))
        }
        Event::BillIssued { bill, amount, .. } => {
            format!("bill {} issued for {}", bill.0, m(*amount))
        }
        Event::BillPaid { bill, amount, .. } => format!("bill {} paid: {}", bill.0, m(*amount)),
        Event::RemittanceCredited {
            debited,
            debit_currency,
            credited,
            credit_currency,
            beneficiary,
            ..
        } => format!(
            "{} {debit_currency} debited, {} {credit_currency} credited to {}",
            format_minor(i128::from(*debited), *debit_currency),
            format_minor(i128::from(*credited), *credit_currency),
            beneficiary.0
        ),
        Event::AccountFrozen { account, .. } => format!("account {} frozen", account.0),
        Event::AccountUnfrozen { account } => format!("account {} unfrozen", account.0),
        Event::RecoveryAnnounced {
            account,
            institution,
            due_ms,
            ..
        } => format!(
            "institution {} announced a new key for account {}: it takes over at block time \
             {due_ms} (ms) unless the account's current key cancels it",
            institution.0, account.0
        ),
        Event::RecoveryCancelled { account, .. } => {
            format!("the recovery of account {} is cancelled", account.0)
        }
        Event::AccountRecovered { account, .. } => {
            format!("account {} now signs with its recovered key", account.0)
        }
        other => format!("{other:?}"),
    }
}

/// Payment codes travel as text: a prefix and the hex of the code with its signature.
pub fn encode_payment_code(code: &PaymentCode, signature: &Signature) -> String {
    let bytes = postcard::to_allocvec(&(code, signature)).unwrap_or_default();
    format!("{PAYMENT_CODE_PREFIX}{}", hex::encode(bytes))
}

pub fn decode_payment_code(text: &str) -> Result<(PaymentCode, Signature), CommandError> {
    let bad = |why: &str| input(format!("--code is not a payment code: {why}"));
    let text = text.trim();
    if text.len() > PAYMENT_CODE_HEX_CHARS_MAX {
        return Err(bad("too long"));
    }
    let hex_part = text
        .strip_prefix(PAYMENT_CODE_PREFIX)
        .ok_or_else(|| bad("it does not start with tallycode:"))?;
    let bytes = hex::decode(hex_part).map_err(|_| bad("not hex"))?;
    let (decoded, rest): ((PaymentCode, Signature), &[u8]) =
        postcard::take_from_bytes(&bytes).map_err(|_| bad("damaged"))?;
    if !rest.is_empty() {
        return Err(bad("trailing bytes"));
    }
    Ok(decoded)
}

/// What a few flows learn only from their events: the cycle's number and positions, a
/// merchant's net and fee, a remittance's amounts.
pub(super) fn extra_lines(events: &[Event], currency: Option<Currency>) -> Vec<String> {
    events
        .iter()
        .filter_map(|event| match event {
            Event::SettlementCycleOpened { cycle, positions } => {
                let told: Vec<String> = positions
                    .iter()
                    .filter(|p| p.net != 0)
                    .map(|p| {
                        format!(
                            "institution {} {} {}",
                            p.institution.0,
                            format_minor(p.net, p.currency),
                            p.currency
                        )
                    })
                    .collect();
                Some(format!(
                    "settlement cycle {} opened: {}",
                    cycle.0,
                    told.join(", ")
                ))
            }
            Event::SettlementClosed { cycle } => {
                Some(format!("settlement cycle {} closed", cycle.0))
            }
            Event::MerchantSettled { net, fee, bank, .. } => Some(match currency {
                Some(c) => format!(
                    "{} {c} to bank {}, {} {c} fee to the platform",
                    format_minor(i128::from(*net), c),
                    bank.0,
                    format_minor(i128::from(*fee), c)
                ),
                None => format!("net {net}, fee {fee} (minor units) to bank {}", bank.0),
            }),
            Event::RemittanceCredited { .. } => Some(event_words(event, Currency::CNY)),
            _ => None,
        })
        .collect()
}

/// An event's variant name, as its `Debug` form begins.
pub fn event_name(event: &Event) -> String {
    format!("{event:?}")
        .chars()
        .take_while(char::is_ascii_alphanumeric)
        .collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn payment_codes_travel_as_text_and_back() {
        let key = SigningKey::from_seed([7; 32]);
        let code = PaymentCode {
            payer: AccountId(1_001),
            payer_key: key.public_key(),
            max_amount: 10_000,
            issued_at_ms: 1_799_999_700_000,
            expires_at_ms: 1_800_000_000_000,
            code_nonce: u64::MAX,
            merchant: Some(AccountId(u128::MAX >> 1)),
        };
        let signature = code.sign(&key, "tally-test");
        let text = encode_payment_code(&code, &signature);
        assert!(text.starts_with(PAYMENT_CODE_PREFIX));
        let (back, back_signature) = decode_payment_code(&text).unwrap();
        assert_eq!((back, back_signature), (code, signature));
        for bad in [
            "",
            "tallycode:",
            "tallycode:zz",
            &text[..text.len() - 2],
            &format!("{text}00"),
            &text.replace(PAYMENT_CODE_PREFIX, "code:"),
            &format!(
                "{PAYMENT_CODE_PREFIX}{}",
                "00".repeat(PAYMENT_CODE_HEX_CHARS_MAX)
            ),
        ] {
            assert!(decode_payment_code(bad).is_err(), "{bad:?} was taken");
        }
    }

    #[test]
    fn event_names_are_their_variants() {
        let event = Event::TransferReceived {
            id: TransferId(u128::MAX),
            from: AccountId(1),
            to: AccountId(2),
            amount: 5,
            memo: tally_contracts::Memo::NONE,
        };
        assert_eq!(event_name(&event), "TransferReceived");
        assert_eq!(event_words(&event, Currency::CNY), "0.05 CNY from 1 to 2");
        let with_memo = Event::TransferReceived {
            id: TransferId(1),
            from: AccountId(1),
            to: AccountId(2),
            amount: 5,
            memo: tally_contracts::Memo::new("rent, May").unwrap_or_default(),
        };
        assert_eq!(
            event_words(&with_memo, Currency::CNY),
            "0.05 CNY from 1 to 2, memo \"rent, May\""
        );
    }
}
