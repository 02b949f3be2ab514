//! A consumer's wallet: registration, cards, top-up and withdrawal, payments, transfers,
//! payment codes; balance and history.

use super::*;
use tally_contracts::AccountKind;

pub(super) async fn run(client: &mut Client, command: WalletCommand) -> Result<Step, CommandError> {
    Ok(Step::Send(Box::new(match command {
        WalletCommand::Register {
            signer,
            cosigner_key,
            institution,
            currency,
            tier,
            identity,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let currency = money::currency(&currency)?;
            money::exponent(currency)?;
            let kind = TxKind::RegisterAccount {
                account: AccountId(signer.account),
                key: key.public_key(),
                currency,
                institution: InstitutionId(institution),
                tier,
                identity: identity.digest()?,
            };
            plan(
                "register",
                sender,
                vec![key, read_key(&cosigner_key)?],
                kind,
            )
            .words(format!(
                "wallet {} ({currency}, tier {tier}) opened at institution {institution}",
                signer.account
            ))
            .expect("AccountRegistered")
        }
        WalletCommand::BindCard {
            signer,
            cosigner_key,
            bank,
            card,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let kind = TxKind::BindCard {
                card: card_token(&card)?,
                bank: InstitutionId(bank),
            };
            plan(
                "bind-card",
                sender,
                vec![key, read_key(&cosigner_key)?],
                kind,
            )
            .words(format!(
                "a card of bank {bank} bound to wallet {}",
                signer.account
            ))
            .expect("CardBound")
        }
        WalletCommand::TopUp {
            signer,
            cosigner_key,
            card,
            amount,
            id,
        } => {
            card_movement(
                client,
                Direction::TopUp,
                &signer,
                &cosigner_key,
                &card,
                &amount,
                &id,
            )
            .await?
        }
        WalletCommand::Withdraw {
            signer,
            cosigner_key,
            card,
            amount,
            id,
        } => {
            card_movement(
                client,
                Direction::Withdraw,
                &signer,
                &cosigner_key,
                &card,
                &amount,
                &id,
            )
            .await?
        }
        WalletCommand::Balance { account } => return balance(client, account).await,
        WalletCommand::History {
            account,
            limit,
            before,
        } => return history(client, account, limit, before).await,
        WalletCommand::Transfer {
            signer,
            to,
            amount,
            memo,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let to_account = customer_account(to, "--to")?;
            let memo = note_of("--memo", memo.as_deref())?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let words = if memo.is_empty() {
                format!("{money} from account {} to account {to}", signer.account)
            } else {
                format!(
                    "{money} from account {} to account {to}, memo {:?}",
                    signer.account,
                    memo.as_str()
                )
            };
            let kind = TxKind::Transfer {
                id: transfer_id(&id)?,
                to: to_account,
                amount: money.minor,
                memo,
            };
            plan("transfer", sender, vec![key], kind)
                .words(words)
                .expect("TransferReceived")
        }
        WalletCommand::PayOrder {
            signer,
            order,
            card,
            cosigner_key,
            escrow_minutes,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let record: AtHeight<Order> = client
                .record(&format!("/v1/orders/{order}"), &format!("order {order}"))
                .await?;
            let price = Money {
                minor: record.record.amount,
                currency: record.record.currency,
            };
            let source = match &card {
                Some(card) => PaymentSource::Card(card_token(card)?),
                None => PaymentSource::Balance,
            };
            let escrow_ms = match escrow_minutes {
                Some(0) => return Err(input("--escrow-minutes must be above 0")),
                Some(m) => Some(m.saturating_mul(MS_PER_MINUTE)),
                None => None,
            };
            let mut keys = vec![key];
            if let Some(path) = &cosigner_key {
                keys.push(read_key(path)?);
            }
            let how = match (card.is_some(), escrow_ms.is_some()) {
                (false, false) => "from the balance",
                (false, true) => "from the balance into escrow",
                (true, false) => "by card",
                (true, true) => "by card into escrow",
            };
            let kind = TxKind::PayOrder {
                id: transfer_id(&id)?,
                order: OrderId(order),
                source,
                escrow_ms,
            };
            plan("pay-order", sender, keys, kind).words(format!(
                "order {order} of merchant {}: {price} paid {how}",
                record.record.merchant.0
            ))
        }
        WalletCommand::PayMerchant {
            signer,
            merchant,
            amount,
            reference,
            id,
        } => {
            let (sender, key) = account_party(&signer, "--account")?;
            let merchant_account = customer_account(merchant, "--merchant")?;
            let reference = note_of("--reference", reference.as_deref())?;
            let money = amount_in(&amount, currency_of(client, signer.account).await?)?;
            let words = if reference.is_empty() {
                format!(
                    "{money} from account {} to merchant {merchant}",
                    signer.account
                )
            } else {
                format!(
                    "{money} from account {} to merchant {merchant}, reference {:?}",
                    signer.account,
                    reference.as_str()
                )
            };
            let kind = TxKind::PayMerchant {
                id: transfer_id(&id)?,
                merchant: merchant_account,
                amount: money.minor,
                reference,
            };
            plan("pay-merchant", sender, vec![key], kind)
                .words(words)
                .expect("MerchantPaid")
        }
        WalletCommand::ShowCode {
            signer,
            max_amount,
            currency,
            valid_minutes,
            code_nonce,
            merchant,
        } => {
            return show_code(
                client,
                &signer,
                &max_amount,
                currency.as_deref(),
                valid_minutes,
                code_nonce,
                merchant,
            )
            .await;
        }
        WalletCommand::CancelRecovery { signer } => {
            let (sender, key) = account_party(&signer, "--account")?;
            plan("cancel-recovery", sender, vec![key], TxKind::CancelRecovery)
                .words(format!(
                    "the recovery announced for account {} is cancelled; its key stays",
                    signer.account
                ))
                .expect("RecoveryCancelled")
        }
        WalletCommand::ConfirmReceipt { signer, order } => {
            let (sender, key) = account_party(&signer, "--account")?;
            plan(
                "confirm-receipt",
                sender,
                vec![key],
                TxKind::ConfirmReceipt {
                    order: OrderId(order),
                },
            )
            .words(format!(
                "order {order} received; the escrow goes to the merchant"
            ))
            .expect("PaymentCompleted")
        }
        WalletCommand::CancelOrder { signer, order } => {
            let (sender, key) = account_party(&signer, "--account")?;
            plan(
                "cancel-order",
                sender,
                vec![key],
                TxKind::CancelOrder {
                    order: OrderId(order),
                },
            )
            .words(format!(
                "your held payment for order {order} is voided; the order is open again"
            ))
            .expect("PaymentVoided")
        }
        WalletCommand::Dispute {
            signer,
            disputed,
            reason,
            id,
        } => disputes::open(&signer, &disputed, reason, &id)?,
        WalletCommand::RequestRefund {
            signer,
            order,
            amount,
        } => disputes::request_refund(client, &signer, order, &amount).await?,
    })))
}

enum Direction {
    TopUp,
    Withdraw,
}

async fn card_movement(
    client: &Client,
    direction: Direction,
    signer: &AccountSigner,
    cosigner_key: &Path,
    card: &str,
    amount: &AmountArg,
    id: &TransferIdArg,
) -> Result<Plan, CommandError> {
    let (sender, key) = account_party(signer, "--account")?;
    let money = amount_in(amount, currency_of(client, signer.account).await?)?;
    let (id, card) = (transfer_id(id)?, card_token(card)?);
    let keys = vec![key, read_key(cosigner_key)?];
    Ok(match direction {
        Direction::TopUp => plan(
            "top-up",
            sender,
            keys,
            TxKind::TopUp {
                id,
                card,
                amount: money.minor,
            },
        )
        .words(format!(
            "{money} from the card's bank into wallet {}",
            signer.account
        ))
        .expect("ToppedUp"),
        Direction::Withdraw => plan(
            "withdraw",
            sender,
            keys,
            TxKind::Withdraw {
                id,
                card,
                amount: money.minor,
            },
        )
        .words(format!(
            "{money} from wallet {} back to the card's bank",
            signer.account
        ))
        .expect("Withdrawn"),
    })
}

async fn balance(client: &Client, account: u128) -> Result<Step, CommandError> {
    let raw = client
        .read_raw(
            &format!("/v1/accounts/{account}"),
            &format!("account {account}"),
        )
        .await?;
    let view: AccountView = parse(&raw, "an account")?;
    let currency = view.account.currency;
    let mut text = format!(
        "account {account} ({:?}, {currency}, institution {}) at height {}: balance {} {currency}, available {} {currency}",
        view.account.kind,
        view.account.institution.0,
        view.height,
        format_minor(view.balance, currency),
        format_minor(view.available, currency),
    );
    if view.account.frozen {
        text.push_str("; FROZEN");
    }
    Ok(Step::Read(Report { text, json: raw }))
}

async fn history(
    client: &Client,
    account: u128,
    limit: usize,
    before: Option<String>,
) -> Result<Step, CommandError> {
    if limit == 0 || limit > HISTORY_LIMIT_MAX {
        return Err(input(format!("--limit must be 1..={HISTORY_LIMIT_MAX}")));
    }
    let mut path = format!("/v1/accounts/{account}/history?limit={limit}");
    if let Some(before) = &before {
        let valid = before
            .split_once(':')
            .is_some_and(|(h, i)| h.parse::<u64>().is_ok() && i.parse::<u32>().is_ok());
        if !valid {
            return Err(input(format!(
                "--before {before:?}: write it as HEIGHT:INDEX"
            )));
        }
        path.push_str(&format!("&before={before}"));
    }
    let currency = currency_of(client, account).await?;
    let raw = client
        .read_raw(&path, &format!("account {account}"))
        .await?;
    let page: serde_json::Value = parse(&raw, "a history page")?;
    let entries = page
        .get("entries")
        .and_then(|e| e.as_array())
        .ok_or_else(|| ClientError::Answer("a history page without entries".to_string()))?;
    // The events are read from the text, not from `entries`: a JSON value holds numbers
    // as 64-bit at most, and transfer ids are 128-bit, so an event read back from it would
    // not decode and its words would be lost.
    #[derive(Deserialize)]
    struct Told {
        events: Vec<Event>,
    }
    #[derive(Deserialize)]
    struct ToldPage {
        entries: Vec<Told>,
    }
    let told_page: Option<ToldPage> = serde_json::from_str(&raw).ok();
    let mut lines = vec![format!(
        "account {account}: {} entr{}, newest first",
        entries.len(),
        if entries.len() == 1 { "y" } else { "ies" }
    )];
    for (i, entry) in entries.iter().enumerate() {
        let field = |name: &str| entry.get(name).cloned().unwrap_or(serde_json::Value::Null);
        let kind = entry
            .pointer("/transaction/tx/kind")
            .map(kind_name)
            .unwrap_or_else(|| "?".to_string());
        let events = told_page
            .as_ref()
            .and_then(|p| p.entries.get(i))
            .map_or(&[][..], |t| t.events.as_slice());
        let told: Vec<String> = events.iter().map(|e| event_words(e, currency)).collect();
        lines.push(format!(
            "  {}:{}  {kind}  {}  {}",
            field("height"),
            field("index"),
            field("code").as_str().unwrap_or("?"),
            told.join("; ")
        ));
    }
    if let Some(next) = page.get("next_before").and_then(|n| n.as_str()) {
        lines.push(format!("  older entries: --before {next}"));
    }
    Ok(Step::Read(Report {
        text: lines.join("\n"),
        json: raw,
    }))
}

/// The variant name of a transaction kind as serde writes it: `"SettlementCycle"` or
/// `{"Transfer": {...}}`.
fn kind_name(kind: &serde_json::Value) -> String {
    match kind {
        serde_json::Value::String(s) => s.clone(),
        serde_json::Value::Object(map) => map.keys().next().cloned().unwrap_or_default(),
        _ => "?".to_string(),
    }
}

async fn show_code(
    client: &mut Client,
    signer: &AccountSigner,
    max_amount: &str,
    currency: Option<&str>,
    valid_minutes: u64,
    code_nonce: Option<u64>,
    merchant: Option<u128>,
) -> Result<Step, CommandError> {
    let payer = customer_account(signer.account, "--account")?;
    let key = read_key(&signer.key)?;
    let view = client.account(signer.account).await?;
    if view.account.holder.key != key.public_key() {
        return Err(input(format!(
            "{} is not account {}'s current device key: a code signed with it would be refused",
            signer.key.display(),
            signer.account
        )));
    }
    let max = amount_in(
        &AmountArg {
            amount: max_amount.to_string(),
            currency: currency.map(str::to_string),
        },
        view.account.currency,
    )?;
    if valid_minutes == 0 || valid_minutes > PAYMENT_CODE_VALID_MINUTES_MAX {
        return Err(input(format!(
            "--valid-minutes must be 1..={PAYMENT_CODE_VALID_MINUTES_MAX}"
        )));
    }
    let merchant = match merchant {
        None => None,
        Some(id) => {
            let view = client.account(id).await?;
            if view.account.kind != AccountKind::Merchant {
                return Err(input(format!(
                    "--merchant {id} is not a merchant's account"
                )));
            }
            Some(AccountId(id))
        }
    };
    // Good from the chain's latest block time, which no later block precedes: a code
    // stamped with this device's clock could be ahead of the chain and not good yet.
    let issued_at_ms = client.latest().await?.header.time_ms;
    let expires_at_ms = issued_at_ms.saturating_add(valid_minutes * MS_PER_MINUTE);
    let code_nonce = match code_nonce {
        Some(n) => n,
        None => random_u64()?,
    };
    #[derive(Deserialize)]
    struct CodeState {
        used: bool,
    }
    let state: AtHeight<CodeState> = client
        .record(
            &format!("/v1/payment-codes/{}/{code_nonce}", key.public_key()),
            "payment code",
        )
        .await?;
    if state.record.used {
        return Err(input(format!(
            "code number {code_nonce} of this key was already used; choose another --code-nonce"
        )));
    }
    let code = PaymentCode {
        payer,
        payer_key: key.public_key(),
        max_amount: max.minor,
        issued_at_ms,
        expires_at_ms,
        code_nonce,
        merchant,
    };
    let chain_id = client.chain_id().await?;
    let signature = code.sign(&key, &chain_id);
    let text = encode_payment_code(&code, &signature);
    let for_whom = merchant.map_or(String::new(), |m| format!(" for merchant {}", m.0));
    Ok(Step::Read(Report {
        text: format!(
            "payment code of account {}, up to {max}{for_whom}, good once for {valid_minutes} minute(s):\n{text}",
            signer.account
        ),
        json: to_json(&json!({
            "payment_code": text,
            "payer": signer.account.to_string(),
            "max_amount": max.minor,
            "currency": max.currency.to_string(),
            "issued_at_ms": issued_at_ms,
            "expires_at_ms": expires_at_ms,
            "code_nonce": code_nonce,
            "merchant": merchant.map(|m| m.0.to_string()),
        })),
    }))
}

/// `--memo` or `--reference` as the ledger takes it. An empty text is none: the ledger has
/// one spelling of "none".
fn note_of(flag: &str, text: Option<&str>) -> Result<tally_contracts::Memo, CommandError> {
    let text = text.unwrap_or_default();
    tally_contracts::Memo::new(text).ok_or_else(|| {
        input(format!(
            "{flag}: at most {} bytes of UTF-8 and no control characters ({} bytes given)",
            tally_contracts::MEMO_BYTES_MAX,
            text.len()
        ))
    })
}
