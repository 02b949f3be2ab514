//! The double-entry ledger in the style of TigerBeetle: accounts with posted and pending
//! debits and credits, transfers between accounts of one currency, holds (pending
//! transfers) that are posted or voided, and linked groups that apply whole or not at all.

pub(crate) mod accounts;
pub(crate) mod transfers;
