//! The marketplace's domain, in folders by role (each imports only the ones above it):
//!
//! * [`model`]: what the marketplace is made of — products, streams, offers, feed items, job
//!   runs (`market`, stable JSON names), users with their preferences, badges and profile
//!   changes ([`users`]), the one id rule ([`Id::parse`]), times ([`time`]) and the jobs'
//!   names and schedules.
//! * [`ports`]: what the services need from outside — the [`Store`] (the source of truth).
//! * [`rules`]: rules that hold wherever data lives — geohash cells ([`geo`]) and feed ranking
//!   (`ranking`, the same for both store adapters).
//! * [`adapters`]: [`DynamoStore`] (`adapters/dynamo/`: `mod`, `io`, `feeds`, `offers`,
//!   `views`, `users`, `connections`) and [`MemoryStore`], which pass one contract suite.
//! * [`services`]: [`services::Marketplace`], what every endpoint does, one file per area
//!   (`feeds`, `products`, `users`, `streams`, `offers`, `admin`), with `keys` (every cache key
//!   and policy), the view ledger and the offer index (the Redis state they own).
//! * [`jobs`]: the scheduled and event-driven jobs, one file each, every run recorded by one
//!   wrapper, each bounded by a [`jobs::Deadline`].
//! * [`events`]: StreamStatusChanged, ProductUpdated, OfferExpired, the [`EventPublisher`]
//!   port with [`EventBridgePublisher`] and [`InProcessBus`]; [`push`]: the live refresh push
//!   (the message an event calls for, the WebSocket connections, the Management API poster).
//! * [`tables`]: table and index definitions (the ones `template.yaml` declares); [`seed`]:
//!   the demo data; [`config`]: table names, bus name, backend choice, the AWS SDK setup.
//!
//! `store`, `time`, `users` and `geo` are also named at the crate root, as callers use them.

#![warn(unreachable_pub)]

// Public namespaces are the modules callers name (`services::Marketplace`, `seed::generate`,
// `geo::plan_cells`, …); the rest is private, its public part re-exported below.
pub mod adapters;
pub mod config;
mod error;
pub mod events;
pub mod jobs;
pub mod model;
pub mod ports;
pub mod push;
pub mod rules;
pub mod seed;
pub mod services;
pub mod tables;

pub use model::{time, users};
pub use rules::geo;

/// The source of truth as callers name it: the [`Store`] port and its query types, and the
/// feed ranking both adapters share.
pub mod store {
    pub use crate::ports::store::*;
    pub use crate::rules::ranking::*;
}

pub use adapters::dynamo::DynamoStore;
pub use adapters::memory::MemoryStore;
pub use config::{DataBackend, DataConfig};
pub use error::{EventError, StoreError};
pub use events::{DomainEvent, Envelope, EventBridgePublisher, EventHandler, EventPublisher, InProcessBus};
pub use model::id::{Id, InvalidId};
pub use model::market::*;
pub use ports::store::{
    view_chunks, ChunkOutcome, CommunityQuery, DiscoverQuery, ExpireOutcome, FeedPage, FeedSort, PageRequest, Store,
    ViewChunk,
};
pub use tables::TableNames;
