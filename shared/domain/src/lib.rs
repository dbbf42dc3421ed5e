//! The marketplace's domain, in folders by role (each imports only the ones above it):
//!
//! * [`model`]: what the marketplace is made of — products, streams, offers, feed items, job
//!   runs (`market`, stable JSON names), users with their preferences, badges and profile
//!   changes ([`users`]), the domain events and their envelope, the one id rule
//!   ([`Id::parse`]), times ([`time`]), the jobs' names and schedules, the errors.
//! * [`ports`]: what the services need from outside — the source of truth, one narrow port
//!   per area ([`ProductStore`], [`FeedStore`], [`StreamStore`], [`OfferStore`],
//!   [`ViewStore`], [`UserStore`], [`JobLog`]; [`Store`] is all of them, as an adapter provides
//!   them), the [`EventPublisher`], and the push's connections and poster.
//! * [`rules`]: rules that hold wherever data lives — geohash cells ([`geo`]) and feed ranking
//!   (`ranking`, the same for both store adapters).
//! * [`adapters`]: [`DynamoStore`] (`adapters/dynamo/`: `mod` and `io` shared, then one file per
//!   port it implements: `feeds`, `streams`, `offers`, `views`, `users`, `job_log`,
//!   `connections`) and [`MemoryStore`], which pass one contract suite;
//!   [`EventBridgePublisher`] and [`InProcessBus`]; [`ManagementApiPoster`].
//! * [`services`]: [`services::Marketplace`], what every endpoint does, one file per area
//!   (`feeds`, `products`, `users`, `streams`, `offers`, `admin`), with `keys` (every cache key
//!   and policy), the view ledger and the offer index (the Redis state they own).
//! * [`jobs`]: the scheduled and event-driven jobs, one file each, every run recorded by one
//!   wrapper, each bounded by a [`jobs::Deadline`].
//! * [`push`]: the live refresh push (the message an event calls for, delivery to the
//!   subscribed connections, the WebSocket routes' answers).
//! * [`tables`]: table and index definitions (the ones `template.yaml` declares); [`seed`]:
//!   the demo data; [`config`]: table names, bus name, backend choice, the AWS SDK setup.
//!
//! `store`, `events`, `time`, `users` and `geo` are also named at the crate root, as callers
//! use them.

#![warn(unreachable_pub)]

// Public namespaces are the modules callers name (`services::Marketplace`, `seed::generate`,
// `geo::plan_cells`, …); the rest is private, its public part re-exported below.
pub mod adapters;
pub mod config;
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

/// Events as callers name them: the events, the port and its two adapters.
pub mod events {
    pub use crate::adapters::eventbridge::EventBridgePublisher;
    pub use crate::adapters::in_process::InProcessBus;
    pub use crate::model::events::*;
    pub use crate::ports::events::*;
}

/// The source of truth as callers name it: the [`Store`] ports and their query types, and the
/// feed ranking both adapters share.
pub mod store {
    pub use crate::ports::store::*;
    pub use crate::rules::ranking::*;
}

pub use adapters::dynamo::DynamoStore;
pub use adapters::management_api::ManagementApiPoster;
pub use adapters::memory::MemoryStore;
pub use config::{DataBackend, DataConfig};
pub use events::{DomainEvent, Envelope, EventBridgePublisher, EventHandler, EventPublisher, InProcessBus};
pub use model::error::{EventError, StoreError};
pub use model::id::{Id, InvalidId};
pub use model::market::*;
pub use ports::store::{
    view_chunks, ChunkOutcome, CommunityQuery, DiscoverQuery, ExpireOutcome, FeedPage, FeedSort, FeedStore, JobLog,
    OfferStore, PageRequest, ProductStore, Store, StreamStore, UserStore, ViewChunk, ViewStore,
};
pub use tables::TableNames;
