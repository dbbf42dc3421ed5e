//! cache-cleanup: the nightly sweep and the expiry index rebuilt from DynamoDB.

use serde::Serialize;

use super::{recorded, Job, JobError};
use crate::services::keys::*;
use crate::services::Marketplace;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize)]
pub struct CleanupReport {
    pub scanned: usize,
    /// Live cache entries per namespace after the sweep (what the stats endpoint reports).
    pub entries: std::collections::BTreeMap<String, u64>,
    /// Keys that can never be served: no TTL, other key version, old epoch or generation.
    pub deleted_expired: usize,
    /// Expiry-index entries whose offer is gone or settled.
    pub deleted_orphans: usize,
    /// PENDING offers in the rebuilt expiry index (rebuilt from DynamoDB every night, so that
    /// entries Redis lost come back).
    pub reindexed: usize,
    pub memory_before: u64,
    pub memory_after: u64,
}

/// The nightly sweep (SCAN on every node, never KEYS) plus pruning the expiry index.
pub async fn cleanup(m: &Marketplace) -> Result<CleanupReport, JobError> {
    recorded(m, Job::CacheCleanup, async {
        let memory_before = m.cache().server_info().await?.used_memory;
        let swept = m.cache().sweep(&[NS_VIEWS, NS_OFFERS]).await?;
        let reindexed = m.repair_expiry_index().await?;
        let mut orphans = Vec::new();
        let everything: Vec<String> = m.offer_index().entries().await?.into_keys().collect();
        for chunk in everything.chunks(100) {
            let ids: Vec<String> = chunk.to_vec();
            let offers = m.store().get_offers(&ids).await?;
            for (id, offer) in ids.into_iter().zip(offers) {
                if offer.is_none_or(|o| o.status != crate::models::OfferStatus::Pending) {
                    orphans.push(id);
                }
            }
        }
        m.offer_index().remove(&orphans).await?;
        let memory_after = m.cache().server_info().await?.used_memory;
        Ok(CleanupReport {
            scanned: swept.scanned,
            deleted_expired: swept.deleted(),
            entries: swept.entries,
            deleted_orphans: orphans.len(),
            reindexed,
            memory_before,
            memory_after,
        })
    })
    .await
}
