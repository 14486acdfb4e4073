//! The qadf-stream client: [`StreamingClient`] (`client.rs`: the upstream entry point and its
//! statistics), ingest (`ingest/`: the delivery loop from a `MessageSource` to the stores, the one
//! commit path), `qadf-stream schema check` (`schema_check.rs`), the simulated monitoring source (`sim.rs`), the
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
pub use ingest::{ConsumerError, ConsumerReport, ConsumerSinks, Ingest, Notices};

pub mod builds;
pub mod checks;
mod client;
pub mod dashboard;
pub mod demo;
mod ingest;
pub mod layer_maps;
pub mod logging;
pub mod ops;
pub mod schema_check;
pub mod sim;
