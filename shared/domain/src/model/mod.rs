//! What the marketplace is made of: products, streams, offers and job runs (`market`), users
//! with their preferences and badges (`users`), ids (`id`), times (`time`) and the jobs'
//! names and schedules (`schedule`).

pub(crate) mod error;
pub mod events;
pub mod id;
pub(crate) mod market;
pub(crate) mod schedule;
pub mod time;
pub mod users;
