//! Low-latency stage pipeline: quality checkpoints, alerts, parallel streams, latency metrics.
//!
//! This crate is a placeholder in the workspace layout; its capability lands with its own issue.
#![deny(missing_docs)]
