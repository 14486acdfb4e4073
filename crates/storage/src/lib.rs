//! Redis cache, MongoDB history and an embedded durable store.
//!
//! This crate is a placeholder in the workspace layout; its capability lands with its own issue.
#![deny(missing_docs)]
