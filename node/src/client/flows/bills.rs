//! Utility bills: a biller registered by its acquirer, bills issued and paid.

use super::*;

pub(super) async fn run(client: &mut Client, command: BillCommand) -> Result<Step, CommandError> {
    Ok(Step::Send(Box::new(match command {
        BillCommand::RegisterBiller {
            signer,
            cosigner_key,
            biller,
            currency,
            identity,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let biller_key = read_key(&cosigner_key)?;
            let currency = money::currency(&currency)?;
            money::exponent(currency)?;
            let kind = TxKind::RegisterBiller {
                account: customer_account(biller, "--biller")?,
                key: biller_key.public_key(),
                currency,
                identity: identity.digest()?,
            };
            plan("register-biller", sender, vec![key, biller_key], kind)
                .words(format!(
                    "biller {biller} ({currency}) registered by acquirer {}",
                    signer.institution
                ))
                .expect("BillerRegistered")
        }
        BillCommand::Issue {
            signer,
            bill,
            customer,
            amount,
            due_days,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let due_minutes = due_days
                .checked_mul(24 * 60)
                .ok_or_else(|| input("--due-days is too large"))?;
            let kind = TxKind::IssueBill {
                bill: BillId(bill),
                customer: digest_of(CUSTOMER_DOMAIN, &customer),
                amount: money.minor,
                due_ms: minutes_from_now(
                    due_minutes.max(1),
                    "--due-days",
                    u64::MAX / MS_PER_MINUTE,
                )?,
            };
            plan("issue-bill", sender, vec![key], kind)
                .words(format!(
                    "bill {bill} of {money} issued by biller {}",
                    signer.account
                ))
                .expect("BillIssued")
        }
        BillCommand::Pay {
            signer,
            bill,
            amount,
            currency,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let record: AtHeight<Bill> = client
                .record(&format!("/v1/bills/{bill}"), &format!("bill {bill}"))
                .await?;
            let due = Money {
                minor: record.record.amount,
                currency: record.record.currency,
            };
            let money = match amount {
                Some(text) => amount_in(
                    &AmountArg {
                        amount: text,
                        currency,
                    },
                    due.currency,
                )?,
                None => due,
            };
            let kind = TxKind::PayBill {
                id: transfer_id(&id)?,
                bill: BillId(bill),
                amount: money.minor,
            };
            plan("pay-bill", sender, vec![key], kind)
                .words(format!(
                    "bill {bill} of biller {}: {money} paid by account {}",
                    record.record.biller.0, signer.account
                ))
                .expect("BillPaid")
        }
        BillCommand::Show { bill } => {
            let raw = client
                .read_raw(&format!("/v1/bills/{bill}"), &format!("bill {bill}"))
                .await?;
            let view: AtHeight<Bill> = parse(&raw, "a bill")?;
            let b = view.record;
            let due = Money {
                minor: b.amount,
                currency: b.currency,
            };
            let state = match b.paid_by {
                Some(payer) => format!("paid by account {}", payer.0),
                None => "unpaid".to_string(),
            };
            return Ok(Step::Read(Report {
                text: format!(
                    "bill {bill} of biller {} at height {}: {due}, {state}",
                    b.biller.0, view.height
                ),
                json: raw,
            }));
        }
    })))
}
