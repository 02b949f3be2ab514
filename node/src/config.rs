//! The node's configuration file (placeholder until the next commit).
