//! The domain's ports: what the services need from the outside, in domain words.

pub mod events;
pub mod push;
pub mod store;
