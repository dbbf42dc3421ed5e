//! The marketplace's domain: models, the [`Store`] and [`EventPublisher`] ports with their
//! DynamoDB/EventBridge and in-memory adapters, demo data, and configuration.
//!
//! * [`models`]: Product, User, Stream, Offer, FeedItem, JobRun (stable JSON names).
//! * [`store`]: the source of truth; [`DynamoStore`] and [`MemoryStore`] pass one contract suite.
//! * [`events`]: StreamStatusChanged, ProductUpdated, OfferExpired; [`EventBridgePublisher`],
//!   [`InProcessBus`].
//! * [`tables`]: table and index definitions (the same ones `template.yaml` declares).
//! * [`seed`]: the demo data set.
//! * [`config`]: table names, bus name, backend choice, the AWS SDK configuration.

pub mod config;
pub mod error;
pub mod events;
pub mod geo;
pub mod id;
pub mod jobs;
pub mod models;
pub mod seed;
pub mod services;
pub mod store;
pub mod tables;
pub mod time;

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
