//! Where a transaction stands (`GET /v1/transactions/{hash}`, and a submission's answer).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use tally_crypto::Hash;

use crate::events::EventView;

/// Where a transaction stands, as answered by the API.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case", try_from = "TxFields")]
pub enum TxView {
    /// In the node's mempool.
    Pending { hash: Hash },
    /// In a committed block: executed, and accepted (`OK`) or refused.
    Committed {
        hash: Hash,
        height: u64,
        index: u32,
        /// `"OK"`, or the ledger's stable rejection code.
        code: Cow<'static, str>,
        /// The events the transaction caused (none when refused) that the reader may see.
        events: Vec<EventView>,
    },
    /// Neither: never seen, dropped, or not yet gossiped here.
    Unknown { hash: Hash },
}

/// A [`TxView`] read field by field: serde reads an internally tagged enum through a buffer
/// that holds no `u128`, and events carry `u128` account ids.
#[derive(Deserialize)]
struct TxFields {
    status: String,
    hash: Hash,
    height: Option<u64>,
    index: Option<u32>,
    code: Option<String>,
    #[serde(default)]
    events: Vec<EventView>,
}

impl TryFrom<TxFields> for TxView {
    type Error = String;

    fn try_from(f: TxFields) -> Result<TxView, String> {
        match (f.status.as_str(), f.height, f.index, f.code) {
            ("pending", ..) => Ok(TxView::Pending { hash: f.hash }),
            ("unknown", ..) => Ok(TxView::Unknown { hash: f.hash }),
            ("committed", Some(height), Some(index), Some(code)) => Ok(TxView::Committed {
                hash: f.hash,
                height,
                index,
                code: Cow::Owned(code),
                events: f.events,
            }),
            ("committed", ..) => {
                Err("a committed transaction names its height, index and code".to_string())
            }
            (status, ..) => Err(format!("unknown transaction status {status:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tally_contracts::{AccountId, Event, Memo, TransferId};

    #[test]
    fn a_view_reads_back_as_written_with_its_events() {
        let hash = Hash::digest("test", b"tx");
        let event = Event::TransferReceived {
            id: TransferId(u128::MAX),
            from: AccountId(u128::MAX - 1),
            to: AccountId(7),
            amount: 5,
            memo: Memo::NONE,
        };
        let committed = TxView::Committed {
            hash,
            height: 3,
            index: 1,
            code: Cow::Borrowed("OK"),
            events: vec![EventView {
                id: "3:0".to_string(),
                height: 3,
                index: 0,
                kind: Cow::Borrowed("TransferReceived"),
                tx: Some(hash),
                event,
            }],
        };
        for view in [
            committed,
            TxView::Pending { hash },
            TxView::Unknown { hash },
        ] {
            let json = serde_json::to_string(&view).unwrap_or_default();
            let back: Result<TxView, _> = serde_json::from_str(&json);
            assert_eq!(back.ok(), Some(view), "{json}");
        }
        let missing = format!(r#"{{"status":"committed","hash":"{hash}","height":3}}"#);
        assert!(serde_json::from_str::<TxView>(&missing).is_err());
        let other = format!(r#"{{"status":"lost","hash":"{hash}"}}"#);
        assert!(serde_json::from_str::<TxView>(&other).is_err());
    }
}
