//! `tally webhook ...`: the --as party's webhook subscriptions, read and changed over the
//! API (`tally_sdk::webhook`); each answer told in words, or the node's JSON with --json.

use super::*;
use tally_sdk::webhook::{NewSubscription, SubscriptionView};

fn words(s: &SubscriptionView) -> String {
    let mut filter: Vec<String> = Vec::new();
    for (name, value) in [
        ("account", &s.account),
        ("merchant", &s.merchant),
        ("institution", &s.institution),
    ] {
        if let Some(v) = value {
            filter.push(format!("{name} {v}"));
        }
    }
    if !s.kinds.is_empty() {
        filter.push(s.kinds.join(","));
    }
    let filter = if filter.is_empty() {
        "every event it may see".to_string()
    } else {
        filter.join(", ")
    };
    let mut text = format!(
        "webhook {} to {} ({filter}): {}, next event {}, {} delivered; signed by {}",
        s.id, s.url, s.status, s.next, s.delivered, s.signed_by
    );
    if let Some(reason) = &s.paused_reason {
        text.push_str(&format!("\n  paused: {reason}"));
    }
    if let Some(error) = &s.last_error {
        text.push_str(&format!("\n  last failure: {error}"));
    }
    text
}

fn report(views: &[SubscriptionView], json: String) -> Report {
    let text = if views.is_empty() {
        "no webhooks".to_string()
    } else {
        views.iter().map(words).collect::<Vec<_>>().join("\n")
    };
    Report { text, json }
}

fn json_of(value: &impl Serialize) -> String {
    serde_json::to_string(value).unwrap_or_default()
}

pub(super) async fn run(client: &Client, command: WebhookCommand) -> Result<Report, CommandError> {
    let api = &client.api;
    match command {
        WebhookCommand::Subscribe {
            url,
            account,
            merchant,
            institution,
            kinds,
            from,
        } => {
            let made = api
                .subscribe_webhook(&NewSubscription {
                    url,
                    account: account.map(|a| a.to_string()),
                    merchant: merchant.map(|m| m.to_string()),
                    institution: institution.map(|i| i.to_string()),
                    kinds,
                    from,
                })
                .await?;
            Ok(report(std::slice::from_ref(&made), json_of(&made)))
        }
        WebhookCommand::List => {
            let held = api.webhooks().await?;
            Ok(report(&held, json_of(&json!({ "subscriptions": held }))))
        }
        WebhookCommand::Show { id } => {
            let found = api.webhook(id).await?;
            Ok(report(std::slice::from_ref(&found), json_of(&found)))
        }
        WebhookCommand::Replay { id, from } => {
            let replayed = api.replay_webhook(id, from.as_deref()).await?;
            Ok(report(std::slice::from_ref(&replayed), json_of(&replayed)))
        }
        WebhookCommand::Remove { id } => {
            api.remove_webhook(id).await?;
            Ok(Report {
                text: format!("webhook {id} removed"),
                json: json_of(&json!({ "removed": id })),
            })
        }
    }
}
