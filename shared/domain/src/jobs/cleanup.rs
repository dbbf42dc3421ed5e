//! cache-cleanup: the nightly sweep and the expiry index rebuilt from DynamoDB.

use serde::Serialize;

use super::{recorded, Deadline, Job, JobError};
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
/// The sweep runs first; the expiry index is rebuilt and pruned only if `deadline` still
/// leaves a budget (else the next night does it: the index's readers rebuild it anyway when
/// it is lost, and check every offer's status).
pub async fn cleanup(m: &Marketplace, deadline: &Deadline) -> Result<CleanupReport, JobError> {
    recorded(m, Job::CacheCleanup, async {
        let memory_before = m.cache().server_info().await?.used_memory;
        let swept = m.cache().sweep(&[NS_VIEWS, NS_OFFERS]).await?;
        let (reindexed, orphans) = if deadline.allows_work() {
            repair_offer_index(m).await?
        } else {
            tracing::warn!("no time left to repair the expiry index; the next run does");
            (0, Vec::new())
        };
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

/// Rebuilds the expiry index from DynamoDB, then drops the entries whose offer is gone or no
/// longer pending: how many it holds, and the dropped ids.
async fn repair_offer_index(m: &Marketplace) -> Result<(usize, Vec<String>), JobError> {
    let reindexed = m.repair_expiry_index().await?;
    let mut orphans = Vec::new();
    let everything: Vec<String> = m.offer_index().entries().await?.into_keys().collect();
    for chunk in everything.chunks(100) {
        let ids: Vec<String> = chunk.to_vec();
        let offers = m.store().offers.get_offers(&ids).await?;
        for (id, offer) in ids.into_iter().zip(offers) {
            if offer.is_none_or(|o| o.status != crate::model::market::OfferStatus::Pending) {
                orphans.push(id);
            }
        }
    }
    m.offer_index().remove(&orphans).await?;
    Ok((reindexed, orphans))
}
