//! offer-expiry: due offers from DynamoDB, expired and announced at least once.

use std::collections::HashSet;

use futures::StreamExt;
use serde::Serialize;

use super::{recorded, Deadline, Job, JobError};
use crate::model::error::StoreError;
use crate::model::events::{DomainEvent, OfferExpired};
use crate::model::market::{Offer, OfferStatus};
use crate::model::time;
use crate::ports::store::ExpireOutcome;
use crate::services::Marketplace;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct OfferExpiryReport {
    /// Due offers read from the due-offer index.
    pub processed: usize,
    /// Marked EXPIRED by this run.
    pub updated: usize,
    /// OfferExpired published (for offers expired by this run or by one whose publishing failed).
    pub announced: usize,
    /// Extended between being read as due and the conditional write: left PENDING.
    pub not_due: usize,
    /// Settled otherwise (accepted, rejected, …) or gone: taken out of the index.
    pub orphans: usize,
    pub errors: usize,
    /// Expired but not announced (publishing failed): the next run publishes them.
    pub unannounced: usize,
}

/// Expires due offers, reading them from DynamoDB's due-offer index (not from Redis, which may
/// have lost them): each marked EXPIRED only if still PENDING and due (16 at a time); then
/// OfferExpired published for every expired offer not yet announced, with a stable event id;
/// only once that succeeded does the offer leave the due index (and the Redis index). A run
/// that fails to publish leaves them for the next: at least once.
/// No page starts once `deadline` leaves no budget; what is left is the next run's.
pub async fn expire_offers(m: &Marketplace, deadline: &Deadline) -> Result<OfferExpiryReport, JobError> {
    recorded(m, Job::OfferExpiry, expire_offers_inner(m, deadline)).await
}

async fn expire_offers_inner(m: &Marketplace, deadline: &Deadline) -> Result<OfferExpiryReport, JobError> {
    let now = time::now();
    let mut report = OfferExpiryReport::default();
    // Offers this run could not finish: they stay due for the next run and are not read again.
    let mut stuck: HashSet<String> = HashSet::new();
    while deadline.allows_work() {
        let due = m.store().offers.offers_due_by(now, 500 + stuck.len()).await?;
        let page: Vec<Offer> = due.into_iter().filter(|o| !stuck.contains(&o.id)).collect();
        if page.is_empty() {
            break;
        }
        report.processed += page.len();
        let outcomes: Vec<(Offer, Result<ExpireOutcome, StoreError>)> = futures::stream::iter(page)
            .map(|o| async move {
                let r = match o.status {
                    OfferStatus::Pending => m.store().offers.expire_offer(&o.id, now).await,
                    // Expired by an earlier run whose OfferExpired did not go out.
                    OfferStatus::Expired => Ok(ExpireOutcome::NotPending(OfferStatus::Expired)),
                    other => Ok(ExpireOutcome::NotPending(other)),
                };
                (o, r)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let (mut to_announce, mut retire) = (Vec::new(), Vec::new());
        for (offer, outcome) in outcomes {
            match outcome {
                Ok(ExpireOutcome::Expired(o)) => {
                    report.updated += 1;
                    to_announce.push(o);
                }
                Ok(ExpireOutcome::NotPending(OfferStatus::Expired)) => to_announce.push(offer),
                Ok(ExpireOutcome::NotPending(_)) | Ok(ExpireOutcome::Missing) => {
                    report.orphans += 1;
                    retire.push(offer.id);
                }
                Ok(ExpireOutcome::NotDue(_)) => report.not_due += 1,
                Err(e) => {
                    tracing::warn!(offer = %offer.id, error = %e, "offer not expired; left for the next run");
                    report.errors += 1;
                    stuck.insert(offer.id);
                }
            }
        }
        let events: Vec<DomainEvent> =
            to_announce.iter().map(|o| DomainEvent::OfferExpired(OfferExpired::of(o))).collect();
        let mut published = 0;
        for (batch, offers) in events.chunks(100).zip(to_announce.chunks(100)) {
            match m.events().publish(batch).await {
                Ok(()) => {
                    published += batch.len();
                    retire.extend(offers.iter().map(|o| o.id.clone()));
                }
                Err(e) => {
                    tracing::error!(error = %e, offers = offers.len(), "OfferExpired not published; the next run retries");
                    report.unannounced += offers.len();
                    stuck.extend(offers.iter().map(|o| o.id.clone()));
                }
            }
        }
        report.announced += published;
        // Out of the due index only after the event is out; then out of the Redis index.
        let retired: Vec<(String, Result<(), StoreError>)> = futures::stream::iter(retire)
            .map(|id| async move {
                let r = m.store().offers.offer_announced(&id).await;
                (id, r)
            })
            .buffer_unordered(16)
            .collect()
            .await;
        let mut done = Vec::with_capacity(retired.len());
        for (id, r) in retired {
            match r {
                Ok(()) => done.push(id),
                Err(e) => {
                    tracing::warn!(offer = %id, error = %e, "announced offer left in the due index; the next run retires it");
                    report.errors += 1;
                    stuck.insert(id);
                }
            }
        }
        if let Err(e) = m.offer_index().remove(&done).await {
            tracing::warn!(error = %e, "expiry index not updated; the nightly repair prunes it");
        }
    }
    Ok(report)
}
