use std::path::Path;

use tally_contracts::{AccountId, Currency, InstitutionId, Memo, Party, TransferId, TxKind};
use tally_crypto::{Hash, SigningKey};
use tally_sdk::money::Money;
use tally_sdk::{AccountView, Api, Credential, Submitter, new_key};

/// Bank `bank` opens a CNY wallet for a new customer, whose device key never leaves the
/// phone, and wallet `payer` sends it 25.00 CNY. Answers the new wallet's balance.
pub async fn open_wallet_and_pay(
    (node_url, ca_file, chain_id): (&str, &Path, &str),
    (bank, bank_key): (InstitutionId, &SigningKey),
    (payer, payer_key): (AccountId, &SigningKey),
    (customer, kyc_digest): (AccountId, Hash),
) -> Result<i128, Box<dyn std::error::Error>> {
    let api = Api::from_url(node_url, Some(ca_file))?;
    let mut ledger = Submitter::new(api.clone(), chain_id.to_string());
    let device = new_key()?;
    let open = TxKind::RegisterAccount {
        account: customer,
        key: device.public_key(),
        currency: Currency::CNY,
        institution: bank,
        tier: 1,
        identity: kyc_digest,
    };
    // The customer's device and the bank both sign the opening.
    let signers = [&device, bank_key];
    ledger
        .send(Party::Account(customer), &signers, open)
        .await?
        .accepted()?;
    let amount = Money::parse_positive("25.00 CNY", Some(Currency::CNY))?;
    let pay = TxKind::Transfer {
        id: TransferId(customer.0), // the payer's idempotency key: one welcome transfer
        to: customer,
        amount: amount.minor,
        memo: Memo::new("welcome").unwrap_or_default(),
    };
    let paid = ledger
        .send(Party::Account(payer), &[payer_key], pay)
        .await?;
    println!("paid {amount} in block {:?}", paid.accepted()?.height);
    // Only the wallet's holder (or its bank, or a regulator) may read it.
    let wallet = api.signed_as(Credential::of_party(Party::Account(customer), device));
    let view: AccountView = wallet
        .get_json(&format!("/v1/accounts/{}", customer.0))
        .await?;
    Ok(view.balance)
}
