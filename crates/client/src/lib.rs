//! The qadf-stream client: [`StreamingClient`] (`client.rs`: the upstream entry point and its
//! statistics), the consumer path (`consumer.rs`), the simulated monitoring source (`sim.rs`), the
//! demo (`demo.rs`) and the live dashboard (`dashboard/`: the feed, its wire format and the page server).
//!
//! ```
//! use qadf_client::sim::{SimConfig, Simulator};
//! use qadf_core_types::Timestamp;
//!
//! let mut sim = Simulator::new(SimConfig { part_size_mm: 1.0, ..SimConfig::default() }, Timestamp::EPOCH);
//! assert_eq!(sim.layer(0).len(), 100);
//! ```
#![deny(missing_docs)]

pub use client::{ClientError, StreamingClient};
pub use consumer::{ConsumerError, ConsumerReport, ConsumerSinks};

pub mod checks;
mod client;
mod consumer;
pub mod dashboard;
pub mod demo;
pub mod sim;
