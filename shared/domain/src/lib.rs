//! The marketplace's domain: models, the [`Store`] and [`EventPublisher`] ports with their
//! DynamoDB/EventBridge and in-memory adapters, demo data, and configuration.
//!
//! * `models`: Product, User, Stream, Offer, FeedItem, JobRun (stable JSON names); `id`:
//!   the one id rule ([`Id::parse`]).
//! * [`store`]: the source of truth; [`DynamoStore`] (`store/dynamo/`: `mod`, `io`, `feeds`,
//!   `offers`, `views`, `users`, `connections`) and [`MemoryStore`] pass one contract suite.
//! * [`services`]: [`services::Marketplace`], what every endpoint does, one room per area:
//!   `feeds`, `products`, `users`, `streams`, `offers`, `admin`, with `error` and `keys` (every
//!   cache key and policy of the marketplace). It checks ownership itself (`Forbidden`), and
//!   keeps its clients to itself.
//! * [`jobs`]: the scheduled and event-driven jobs, one room each (`view_sync`,
//!   `offer_expiry`, `cleanup`, `cache_events`), named once by [`jobs::Job`], every run
//!   recorded by one wrapper; `deadline` their time budget.
//! * [`events`]: StreamStatusChanged, ProductUpdated, OfferExpired; [`EventBridgePublisher`],
//!   [`InProcessBus`].
//! * [`users`]: preferences, profile changes and their validation, seller figures, the badges
//!   and what earns each; [`push`]: the live refresh push (the message an event calls for, the
//!   WebSocket connections, delivery through the Management API).
//! * [`tables`]: table and index definitions (the same ones `template.yaml` declares).
//! * [`seed`]: the demo data set.
//! * [`config`]: table names, bus name, backend choice, the AWS SDK configuration.

#![warn(unreachable_pub)]

// Public namespaces are the modules callers name (`services::Marketplace`, `seed::generate`,
// `geo::plan_cells`, …); the rest is private, its public part re-exported below.
pub mod config;
mod error;
pub mod events;
pub mod geo;
mod id;
pub mod jobs;
mod models;
pub mod push;
mod schedule;
pub mod seed;
pub mod services;
pub mod store;
pub mod tables;
pub mod time;
pub mod users;

pub use config::{DataBackend, DataConfig};
pub use error::{EventError, StoreError};
pub use events::{DomainEvent, Envelope, EventBridgePublisher, EventHandler, EventPublisher, InProcessBus};
pub use id::{Id, InvalidId};
pub use models::*;
pub use store::dynamo::DynamoStore;
pub use store::memory::MemoryStore;
pub use store::{
    view_chunks, ChunkOutcome, CommunityQuery, DiscoverQuery, ExpireOutcome, FeedPage, FeedSort, PageRequest, Store,
    ViewChunk,
};
pub use tables::TableNames;
