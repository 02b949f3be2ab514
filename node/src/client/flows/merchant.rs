//! A merchant: registration by its acquirer, orders, collecting by code, refunds, settlement.

use super::*;

pub(super) async fn run(
    client: &mut Client,
    command: MerchantCommand,
) -> Result<Step, CommandError> {
    Ok(Step::Send(Box::new(match command {
        MerchantCommand::Register {
            signer,
            cosigner_key,
            merchant,
            currency,
            fee_bps,
            identity,
        } => {
            let (sender, key) = institution_party(&signer)?;
            let merchant_key = read_key(&cosigner_key)?;
            let currency = money::currency(&currency)?;
            money::exponent(currency)?;
            let kind = TxKind::RegisterMerchant {
                account: customer_account(merchant, "--merchant")?,
                key: merchant_key.public_key(),
                currency,
                fee_bps,
                identity: identity.digest()?,
            };
            plan("register-merchant", sender, vec![key, merchant_key], kind)
                .words(format!(
                    "merchant {merchant} ({currency}, fee {fee_bps} bps) registered by acquirer {}",
                    signer.institution
                ))
                .expect("MerchantRegistered")
        }
        MerchantCommand::CreateOrder {
            signer,
            order,
            amount,
            expires_minutes,
            items,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let kind = TxKind::CreateOrder {
                order: OrderId(order),
                amount: money.minor,
                currency: money.currency,
                expires_at_ms: minutes_from_now(
                    expires_minutes,
                    "--expires-minutes",
                    ORDER_VALID_MINUTES_MAX,
                )?,
                items: digest_of(ITEMS_DOMAIN, &items),
            };
            plan("create-order", sender, vec![key], kind)
                .words(format!(
                    "order {order} of merchant {} for {money}",
                    signer.account
                ))
                .expect("OrderCreated")
        }
        MerchantCommand::Collect {
            signer,
            code,
            amount,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let (code, code_signature) = decode_payment_code(&code)?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let kind = TxKind::CollectByCode {
                id: transfer_id(&id)?,
                code,
                code_signature,
                amount: money.minor,
            };
            plan("collect", sender, vec![key], kind)
                .words(format!(
                    "{money} collected from account {} by merchant {}",
                    code.payer.0, signer.account
                ))
                .expect("CollectedByCode")
        }
        MerchantCommand::Cancel { signer, order } => {
            let (sender, key) = account_party(&signer, "--account")?;
            plan(
                "cancel-order",
                sender,
                vec![key],
                TxKind::CancelOrder {
                    order: OrderId(order),
                },
            )
            .words(format!("order {order} cancelled"))
            .expect("OrderCancelled")
        }
        MerchantCommand::AcceptRefund { signer, order, id } => {
            disputes::answer_refund(&signer, order, Some(&id))?
        }
        MerchantCommand::RefuseRefund { signer, order } => {
            disputes::answer_refund(&signer, order, None)?
        }
        MerchantCommand::Refund {
            signer,
            order,
            amount,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let kind = TxKind::Refund {
                id: transfer_id(&id)?,
                order: OrderId(order),
                amount: money.minor,
            };
            plan("refund", sender, vec![key], kind)
                .words(format!("{money} refunded on order {order}"))
                .expect("Refunded")
        }
        MerchantCommand::Settle {
            signer,
            amount,
            currency,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let view = client.account(signer.account).await?;
            let money = match amount {
                Some(text) => amount_in(
                    &AmountArg {
                        amount: text,
                        currency,
                    },
                    view.account.currency,
                )?,
                None => {
                    let minor = Amount::try_from(view.balance)
                        .ok()
                        .filter(|b| *b > 0)
                        .ok_or_else(|| {
                            input(format!("merchant {} has nothing to settle", signer.account))
                        })?;
                    Money {
                        minor,
                        currency: view.account.currency,
                    }
                }
            };
            let kind = TxKind::SettleMerchant {
                id: transfer_id(&id)?,
                amount: money.minor,
            };
            plan("settle", sender, vec![key], kind)
                .words(format!(
                    "{money} of merchant {} settled to its bank",
                    signer.account
                ))
                .expect("MerchantSettled")
                .in_currency(money.currency)
        }
        MerchantCommand::Order { order } => {
            let raw = client
                .read_raw(&format!("/v1/orders/{order}"), &format!("order {order}"))
                .await?;
            let view: AtHeight<Order> = parse(&raw, "an order")?;
            let o = view.record;
            let price = Money {
                minor: o.amount,
                currency: o.currency,
            };
            let paid = format_minor(i128::from(o.paid), o.currency);
            let refunded = format_minor(i128::from(o.refunded), o.currency);
            return Ok(Step::Read(Report {
                text: format!(
                    "order {order} of merchant {} at height {}: {price}, {:?}; paid {paid}, refunded {refunded}",
                    o.merchant.0, view.height, o.status
                ),
                json: raw,
            }));
        }
    })))
}
