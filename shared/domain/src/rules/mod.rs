//! Business rules that hold whatever stores or caches them: where a location falls (geohash
//! cells) and how feeds rank.

pub mod geo;
pub mod ranking;
