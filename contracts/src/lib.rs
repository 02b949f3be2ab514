//! The settlement ledger and the native payment contracts.
