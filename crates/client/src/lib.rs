//! The qadf-stream client: the simulated monitoring source and the demo that runs the pipeline on
//! embedded defaults. (`StreamingClient`, the Kafka/storage wiring and the live view grow here.)
//!
//! ```
//! use qadf_client::sim::{SimConfig, Simulator};
//! use qadf_core_types::Timestamp;
//!
//! let mut sim = Simulator::new(SimConfig { part_size_mm: 1.0, ..SimConfig::default() }, Timestamp::EPOCH);
//! assert_eq!(sim.layer(0).len(), 100);
//! ```
#![deny(missing_docs)]

pub mod demo;
pub mod sim;
