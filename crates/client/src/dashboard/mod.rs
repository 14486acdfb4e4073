//! The live dashboard: a feed of versioned JSON frames ([`protocol`]) built from the client's
//! per-layer maps, layer summaries, alerts and statistics ([`feed`]), served with the page to
//! browsers ([`server`]).

pub mod feed;
pub mod protocol;
pub mod server;

pub use feed::{FeedStatistics, LiveFeed, LiveOptions, View};
pub use protocol::{BuildRow, Frame, Health, LayerAnswer, MapFrame, MapTile, PROTOCOL_VERSION};
pub use server::DashboardServer;
