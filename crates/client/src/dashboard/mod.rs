//! The live dashboard: a feed of versioned JSON frames ([`protocol`]) built from the client's voxel
//! grids, alerts and statistics ([`feed`]), served with the page to browsers ([`server`]).

pub mod feed;
pub mod protocol;
pub mod server;

pub use feed::{FeedStatistics, LiveFeed, LiveOptions};
pub use protocol::{Frame, Heatmap, PROTOCOL_VERSION, Progress, Tile};
pub use server::DashboardServer;
