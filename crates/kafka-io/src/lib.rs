//! Kafka consumer and producer on rskafka, plus an in-process transport.
//!
//! This crate is a placeholder in the workspace layout; its capability lands with its own issue.
#![deny(missing_docs)]
