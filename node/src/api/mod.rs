//! The HTTP API under `/v1` (axum): being built; see issue 5.
